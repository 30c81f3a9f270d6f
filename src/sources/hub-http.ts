/**
 * What the Hugging Face and ModelScope sources share: JSON answers read with a size bound, ranged
 * reads checked against what was asked, `Link` pagination, and percent-encoded repository paths.
 */
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { integrity, network, StorageError } from '../errors.js';
import { discardBody, headerValue, httpRequest, type HttpResponse } from '../net/http-client.js';
import type { ByteRange } from './types.js';

/** A listing page larger than this is not a listing (a proxy's error page, a runaway body). */
const MAX_JSON_BYTES = 64 * 2 ** 20;

/** A repository path with each segment percent-encoded, '/' kept: `a b/模型.bin` -> `a%20b/%E6%A8%A1%E5%9E%8B.bin`. */
export function encodePath(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

export function isHex(text: unknown, length: number): text is string {
  return typeof text === 'string' && text.length === length && /^[0-9a-f]+$/i.test(text);
}

/** A server's message made safe for one log line. */
export function oneLine(text: string, max = 200): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}...` : flat;
}

/** The `rel="next"` target of an RFC 8288 Link header. */
export function nextLink(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(/,(?=\s*<)/)) {
    const match = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
    if (match?.[1] !== undefined && /(?:^|;)\s*rel\s*=\s*"?next"?\s*(?:;|$)/i.test(match[2] ?? '')) return match[1];
  }
  return undefined;
}

/** The whole body as text, refusing bodies over the bound. */
export async function readText(response: HttpResponse, backend: string, displayUri: string): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of response.body) {
      const buffer = chunk as Buffer;
      total += buffer.length;
      if (total > MAX_JSON_BYTES) {
        discardBody(response.body);
        throw network(`${backend} answer for ${displayUri} is larger than ${MAX_JSON_BYTES} bytes`, { retryable: false });
      }
      chunks.push(buffer);
    }
  } catch (err) {
    if (err instanceof StorageError) throw err;
    throw network(`${backend} answer for ${displayUri} broke off`, { cause: err });
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A JSON answer; a body that is not JSON (a truncated page, a proxy's HTML) may heal on a retry. */
export async function readJson(response: HttpResponse, backend: string, displayUri: string): Promise<unknown> {
  const text = await readText(response, backend, displayUri);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw network(`${backend} answered ${displayUri} with something that is not JSON: ${oneLine(text, 80)}`);
  }
}

/** A JSON error body's message field, when there is one (both hubs send one). */
export async function errorMessage(response: HttpResponse, field: string): Promise<string | undefined> {
  try {
    const text = await readText(response, '', '');
    const parsed = JSON.parse(text) as unknown;
    if (typeof parsed === 'object' && parsed !== null && field in parsed) {
      const value = (parsed as Record<string, unknown>)[field];
      if (typeof value === 'string' && value !== '') return oneLine(value);
    }
  } catch {
    // No usable message: the status code speaks alone.
  }
  return undefined;
}

export function rangeHeader(range: ByteRange | undefined): Record<string, string> {
  return range === undefined ? {} : { range: `bytes=${range.start}-${range.end - 1}` };
}

/**
 * GET a file's bytes. The range goes in the plain headers, so it is sent again after a redirect to
 * the CDN; credentials go in originHeaders, so they are not.
 */
export async function getBytes(
  dispatcher: Dispatcher,
  url: URL,
  range: ByteRange | undefined,
  credentials: Record<string, string>,
  signal: AbortSignal,
  backend: string,
  displayUri: string,
): Promise<HttpResponse> {
  return httpRequest(dispatcher, url, { headers: rangeHeader(range), originHeaders: credentials, signal }, backend, displayUri);
}

/** The body of a successful read, once it is certain to hold exactly the bytes asked for. */
export function checkedBody(response: HttpResponse, range: ByteRange | undefined, backend: string, key: string): Readable {
  if (range !== undefined) {
    const start = /^bytes (\d+)-/.exec(headerValue(response.headers, 'content-range') ?? '')?.[1];
    if (response.statusCode !== 206 || start === undefined || Number(start) !== range.start) {
      discardBody(response.body);
      throw integrity(`${backend} server ignored the byte range requested for ${key}`, { retryable: true });
    }
  }
  return response.body;
}
