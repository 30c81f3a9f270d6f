/**
 * A single file over HTTP(S). The first request asks for byte 0 only: its answer tells the size,
 * whether ranges work (so the engine can fetch in parallel and resume), and whether the server
 * answered with a web page instead of a model.
 */
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { integrity, invalidInput } from '../errors.js';
import { base64ToHex } from '../transfer/checksum.js';
import { createDispatcher, discardBody, headerValue, httpRequest, type HttpResponse } from '../net/http-client.js';
import { statusError } from '../net/http-status.js';
import type { Settings } from '../settings/settings.js';
import { redactUri } from '../uri/redact.js';
import type { ByteRange, Checksum, ObjectSource, ObjectSourceCapabilities, RemoteObject } from './types.js';

function fileNameOf(url: URL): string {
  const last = url.pathname.split('/').pop() ?? '';
  let name: string;
  try {
    name = decodeURIComponent(last);
  } catch {
    name = last;
  }
  if (name === '' || name === '.' || name === '..') throw invalidInput(`the URL ${redactUri(url.href)} names no file: it must end with a file name`);
  return name;
}

/** `Content-MD5` or an RFC 3230 `Digest` header, when the server offers one. */
function checksumOf(response: HttpResponse): Checksum | undefined {
  const md5 = headerValue(response.headers, 'content-md5');
  if (md5 !== undefined) return { algorithm: 'md5', hex: base64ToHex(md5) };
  const digest = headerValue(response.headers, 'digest');
  const sha256 = digest === undefined ? undefined : /(?:^|,)\s*sha-256=([A-Za-z0-9+/=]+)/i.exec(digest)?.[1];
  return sha256 === undefined ? undefined : { algorithm: 'sha256', hex: base64ToHex(sha256) };
}

export class HttpSource implements ObjectSource {
  readonly kind = 'object';
  readonly name = 'HTTP';
  readonly displayUri: string;
  readonly prefix: string;
  capabilities: ObjectSourceCapabilities = { ranges: false };
  private readonly url: URL;
  private readonly dispatcher: Dispatcher;
  private readonly headers: Record<string, string>;

  constructor(url: URL, settings: Settings) {
    this.url = url;
    this.displayUri = redactUri(url.href);
    this.prefix = fileNameOf(url);
    this.headers = { ...settings.net.headersByHost.get(url.hostname.toLowerCase()) };
    if (url.username !== '' || url.password !== '') {
      const user = decodeURIComponent(url.username);
      const pass = decodeURIComponent(url.password);
      this.headers.authorization = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
      this.url = new URL(url.href);
      this.url.username = '';
      this.url.password = '';
    }
    this.dispatcher = createDispatcher({ net: settings.net });
  }

  private async get(range: string | undefined, signal: AbortSignal, probe = false): Promise<HttpResponse> {
    const response = await httpRequest(this.dispatcher, this.url, {
      headers: range === undefined ? {} : { range },
      originHeaders: this.headers,
      signal,
    }, this.name, this.displayUri);
    // A probe of an empty file: "Range Not Satisfiable" with Content-Range "bytes */0".
    const emptyProbe = probe && response.statusCode === 416 && headerValue(response.headers, 'content-range') === 'bytes */0';
    if (response.statusCode !== 200 && response.statusCode !== 206 && !emptyProbe) {
      discardBody(response.body);
      throw statusError(response.statusCode, this.name, this.displayUri, response.headers['retry-after']);
    }
    const type = headerValue(response.headers, 'content-type') ?? '';
    if (/^text\/html\b/i.test(type)) {
      discardBody(response.body);
      throw invalidInput(`HTTP server answered ${this.displayUri} with an HTML page, not a model file. Check the URL and any login it needs (the <hostname>-headers variable).`);
    }
    return response;
  }

  async *list(signal: AbortSignal): AsyncIterable<RemoteObject> {
    const response = await this.get('bytes=0-0', signal, true);
    discardBody(response.body);
    if (response.statusCode === 416) {
      yield { key: this.prefix, size: 0 };
      return;
    }
    const contentRange = /^bytes \d+-\d+\/(\d+)$/.exec(headerValue(response.headers, 'content-range') ?? '');
    const length = headerValue(response.headers, 'content-length');
    let size: number | undefined;
    if (response.statusCode === 206 && contentRange?.[1] !== undefined) {
      size = Number(contentRange[1]);
      this.capabilities = { ranges: true };
    } else if (response.statusCode === 200 && length !== undefined && /^\d+$/.test(length)) {
      size = Number(length);
    }
    const etag = headerValue(response.headers, 'etag');
    yield {
      key: this.prefix,
      size,
      checksum: checksumOf(response),
      version: etag ?? headerValue(response.headers, 'last-modified'),
    };
  }

  async read(_obj: RemoteObject, range: ByteRange | undefined, signal: AbortSignal): Promise<Readable> {
    const response = await this.get(range === undefined ? undefined : `bytes=${range.start}-${range.end - 1}`, signal);
    if (range !== undefined) {
      const start = /^bytes (\d+)-/.exec(headerValue(response.headers, 'content-range') ?? '')?.[1];
      if (response.statusCode !== 206 || start === undefined || Number(start) !== range.start) {
        discardBody(response.body);
        throw integrity(`HTTP server ignored the byte range requested for ${this.displayUri}`, { retryable: true });
      }
    }
    return response.body;
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}
