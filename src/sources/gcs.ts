/**
 * Google Cloud Storage through the JSON API: list objects under a prefix (paged), read a byte
 * range of one generation. Checksums come from the listing (md5, or crc32c for composite objects
 * that have no md5), so the engine verifies every file.
 */
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { integrity, invalidInput, notFound, StorageError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { createDispatcher, discardBody, headerValue, httpRequest, type HttpResponse } from '../net/http-client.js';
import { statusError } from '../net/http-status.js';
import type { Settings } from '../settings/settings.js';
import { base64ToHex } from '../transfer/checksum.js';
import { resolveGcsCredentials, type GcsCredentials } from './gcs-auth.js';
import type { ByteRange, Checksum, ObjectSource, ObjectSourceCapabilities, RemoteObject } from './types.js';

const LIST_FIELDS = 'items(name,size,md5Hash,crc32c,generation),nextPageToken';
const MAX_ERROR_BODY = 4096;

interface GcsItem {
  name: string;
  size: string;
  md5Hash?: string;
  crc32c?: string;
  generation?: string;
}

function isItem(value: unknown): value is GcsItem {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.name === 'string' && typeof v.size === 'string' && /^\d+$/.test(v.size)
    && (v.md5Hash === undefined || typeof v.md5Hash === 'string')
    && (v.crc32c === undefined || typeof v.crc32c === 'string')
    && (v.generation === undefined || typeof v.generation === 'string');
}

/** md5 when GCS has one (it has none for composite objects), else crc32c. */
function checksumOf(item: GcsItem): Checksum | undefined {
  if (item.md5Hash !== undefined && item.md5Hash !== '') return { algorithm: 'md5', hex: base64ToHex(item.md5Hash) };
  if (item.crc32c !== undefined && item.crc32c !== '') return { algorithm: 'crc32c', hex: base64ToHex(item.crc32c) };
  return undefined;
}

/** GCS's own error message from a JSON error body, as one bounded line. */
async function gcsMessage(response: HttpResponse): Promise<string | undefined> {
  try {
    const text = (await response.body.text()).slice(0, MAX_ERROR_BODY);
    const parsed: unknown = JSON.parse(text);
    const message = (parsed as { error?: { message?: unknown } } | null)?.error?.message;
    return typeof message === 'string' ? message.replace(/\s+/g, ' ').replace(/\.+$/, '').slice(0, 300) : undefined;
  } catch {
    return undefined;
  }
}

export class GcsSource implements ObjectSource {
  readonly kind = 'object';
  readonly name = 'GCS';
  readonly displayUri: string;
  readonly prefix: string;
  readonly capabilities: ObjectSourceCapabilities = { ranges: true };
  private readonly bucket: string;
  private readonly endpoint: string;
  private readonly dispatcher: Dispatcher;
  private readonly settings: Settings;
  private readonly log: Logger;
  private credentials: Promise<GcsCredentials> | undefined;

  constructor(bucket: string, key: string, settings: Settings, log: Logger = silentLogger) {
    if (bucket === '') throw invalidInput('gs:// URI names no bucket');
    this.bucket = bucket;
    this.prefix = key.replace(/\/+$/, '');
    this.displayUri = `gs://${bucket}/${this.prefix}`;
    this.endpoint = settings.gcs.endpoint;
    this.settings = settings;
    this.log = log;
    this.dispatcher = createDispatcher({ net: settings.net });
  }

  /** Resolved once per source; a failed lookup (metadata server not answering yet) is tried again on the next call. */
  private resolveCredentials(): Promise<GcsCredentials> {
    this.credentials ??= resolveGcsCredentials(this.settings.gcs, this.dispatcher, this.log).catch((err: unknown) => {
      this.credentials = undefined;
      throw err;
    });
    return this.credentials;
  }

  private async get(url: URL, range: ByteRange | undefined, signal: AbortSignal): Promise<{ response: HttpResponse; credentials: GcsCredentials }> {
    const credentials = await this.resolveCredentials();
    const token = await credentials.token(signal);
    const response = await httpRequest(this.dispatcher, url, {
      headers: range === undefined ? {} : { range: `bytes=${range.start}-${range.end - 1}` },
      originHeaders: token === undefined ? {} : { authorization: `Bearer ${token}` },
      signal,
    }, this.name, this.displayUri);
    return { response, credentials };
  }

  /** A typed, one-line error for a failed request, naming the bucket and what to check. */
  private async failure(response: HttpResponse, credentials: GcsCredentials, listing: boolean): Promise<StorageError> {
    const status = response.statusCode;
    const said = await gcsMessage(response);
    const detail = said === undefined ? '' : ` (GCS: ${said})`;
    if (status === 401 || status === 403) {
      const what = status === 401 ? 'authentication failed' : 'access denied';
      const kind = status === 401 ? 'AuthFailed' : 'Forbidden';
      const advice = credentials.anonymous
        ? `No Google credentials were found and bucket ${this.bucket} is not public: set GOOGLE_APPLICATION_CREDENTIALS to a service-account key, or give the pod a workload identity.`
        : `Used ${credentials.description}: check GOOGLE_APPLICATION_CREDENTIALS / workload identity, and that it may read bucket ${this.bucket} (roles/storage.objectViewer).`;
      return new StorageError(kind, `GCS ${what} for ${this.displayUri}${detail}. ${advice}`);
    }
    if (status === 404 && listing) return notFound(`GCS bucket ${this.bucket} not found (${this.displayUri})${detail}. Check the bucket name in the storage URI.`);
    return statusError(status, this.name, this.displayUri, response.headers['retry-after']);
  }

  private bucketUrl(): string {
    return `${this.endpoint}/storage/v1/b/${encodeURIComponent(this.bucket)}/o`;
  }

  async *list(signal: AbortSignal): AsyncIterable<RemoteObject> {
    let pageToken: string | undefined;
    do {
      const url = new URL(this.bucketUrl());
      if (this.prefix !== '') url.searchParams.set('prefix', this.prefix);
      url.searchParams.set('fields', LIST_FIELDS);
      if (pageToken !== undefined) url.searchParams.set('pageToken', pageToken);
      const { response, credentials } = await this.get(url, undefined, signal);
      if (response.statusCode !== 200) throw await this.failure(response, credentials, true);
      let page: unknown;
      try {
        page = await response.body.json();
      } catch (err) {
        throw new StorageError('Network', `GCS sent an unreadable object listing for ${this.displayUri}`, { retryable: true, cause: err });
      }
      const { items, nextPageToken } = (typeof page === 'object' && page !== null ? page : {}) as { items?: unknown; nextPageToken?: unknown };
      if (items !== undefined && !Array.isArray(items)) throw invalidInput(`GCS object listing for ${this.displayUri} has no items array`);
      for (const item of items ?? []) {
        if (!isItem(item)) throw invalidInput(`GCS object listing for ${this.displayUri} has an entry without name or size`);
        yield { key: item.name, size: Number(item.size), checksum: checksumOf(item), version: item.generation };
      }
      pageToken = typeof nextPageToken === 'string' && nextPageToken !== '' ? nextPageToken : undefined;
    } while (pageToken !== undefined);
  }

  async read(obj: RemoteObject, range: ByteRange | undefined, signal: AbortSignal): Promise<Readable> {
    const url = new URL(`${this.bucketUrl()}/${encodeURIComponent(obj.key)}`);
    url.searchParams.set('alt', 'media');
    // Pinning the generation makes every part (and a resumed download) read the same bytes.
    if (obj.version !== undefined) url.searchParams.set('generation', obj.version);
    const { response, credentials } = await this.get(url, range, signal);
    if (response.statusCode === 404 && obj.version !== undefined) {
      discardBody(response.body);
      throw notFound(`GCS object gs://${this.bucket}/${obj.key} generation ${obj.version} no longer exists: it was replaced or deleted during the download. Run again.`);
    }
    if (response.statusCode !== 200 && response.statusCode !== 206) throw await this.failure(response, credentials, false);
    if (range !== undefined) {
      const start = /^bytes (\d+)-/.exec(headerValue(response.headers, 'content-range') ?? '')?.[1];
      if (response.statusCode !== 206 || start === undefined || Number(start) !== range.start) {
        discardBody(response.body);
        throw integrity(`GCS ignored the byte range requested for gs://${this.bucket}/${obj.key}`, { retryable: true });
      }
    }
    return response.body;
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}
