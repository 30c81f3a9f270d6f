/**
 * A Hugging Face Hub model repository (`hf://OWNER/MODEL[:REVISION]`) over the Hub's HTTP API.
 *
 * The revision (default `main`) is resolved to a commit once, and the listing and every read name
 * that commit: a branch that moves during a long download cannot mix two versions of the model.
 * LFS files are verified by their sha256 (the LFS oid), small files by their git blob sha1.
 * Reads of LFS files are redirected to a CDN; the token goes to the Hub only, never there.
 */
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { authFailed, forbidden, invalidInput, network, notFound, StorageError } from '../errors.js';
import { createDispatcher, headerValue, httpRequest, type HttpResponse } from '../net/http-client.js';
import { statusError } from '../net/http-status.js';
import type { Settings } from '../settings/settings.js';
import type { Location } from '../uri/location.js';
import { checkedBody, encodePath, errorMessage, getBytes, isHex, nextLink, readJson } from './hub-http.js';
import type { ByteRange, ObjectSource, ObjectSourceCapabilities, RemoteObject } from './types.js';

const NAME = 'Hugging Face';
const DEFAULT_REVISION = 'main';

/** One entry of `GET /api/models/OWNER/MODEL/tree/REV`, as far as we rely on it. */
interface TreeEntry {
  type: string;
  path: string;
  size: number;
  oid?: unknown;
  lfs?: { oid?: unknown; size?: unknown } | null;
}

function isTreeEntry(value: unknown): value is TreeEntry {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.type === 'string' && typeof v.path === 'string' && typeof v.size === 'number' && Number.isSafeInteger(v.size) && v.size >= 0;
}

/** A listing entry as a remote object: LFS files carry a sha256, plain git files a blob sha1. */
export function hfObject(entry: TreeEntry): RemoteObject {
  const lfs = entry.lfs ?? undefined;
  if (lfs !== undefined && isHex(lfs.oid, 64)) {
    const size = typeof lfs.size === 'number' ? lfs.size : entry.size;
    const sha256 = lfs.oid.toLowerCase();
    return { key: entry.path, size, checksum: { algorithm: 'sha256', hex: sha256 }, version: sha256 };
  }
  if (isHex(entry.oid, 40)) {
    const oid = entry.oid.toLowerCase();
    return { key: entry.path, size: entry.size, checksum: { algorithm: 'git-sha1', hex: oid }, version: oid };
  }
  return { key: entry.path, size: entry.size };
}

export class HuggingFaceSource implements ObjectSource {
  readonly kind = 'object';
  readonly name = NAME;
  readonly displayUri: string;
  /** A hub URI names a whole repository. */
  readonly prefix = '';
  readonly capabilities: ObjectSourceCapabilities = { ranges: true };
  private readonly repo: string;
  private readonly revision: string;
  private readonly endpoint: string;
  private readonly credentials: Record<string, string>;
  private readonly hasToken: boolean;
  private readonly dispatcher: Dispatcher;
  /** The commit the revision named when the listing started; every read is pinned to it. */
  private commit: string | undefined;

  constructor(location: Extract<Location, { scheme: 'hf' }>, settings: Settings) {
    this.repo = location.repo;
    this.revision = location.revision ?? DEFAULT_REVISION;
    this.displayUri = `hf://${location.repo}${location.revision === undefined ? '' : `:${location.revision}`}`;
    this.endpoint = settings.hubs.hf.endpoint;
    const token = settings.hubs.hf.token;
    this.hasToken = token !== undefined;
    this.credentials = token === undefined ? {} : { authorization: `Bearer ${token}` };
    this.dispatcher = createDispatcher({ net: settings.net });
  }

  /** A request to the Hub itself (API or resolve); anything but 2xx becomes a typed error. */
  private async hub(url: URL, signal: AbortSignal, context: { path?: string }): Promise<HttpResponse> {
    const response = await httpRequest(this.dispatcher, url, { headers: { accept: 'application/json' }, originHeaders: this.credentials, signal }, NAME, this.displayUri);
    if (response.statusCode >= 200 && response.statusCode < 300) return response;
    throw await this.failure(response, context);
  }

  /** The Hub's answer as one line that says what to do; HF names the cause in `x-error-code`. */
  private async failure(response: HttpResponse, context: { path?: string }): Promise<StorageError> {
    const status = response.statusCode;
    const code = headerValue(response.headers, 'x-error-code');
    const message = await errorMessage(response, 'error');
    const model = `${NAME} model ${this.repo}`;
    const page = `${this.endpoint}/${this.repo}`;
    if (response.url.origin !== new URL(this.endpoint).origin) {
      // The CDN refused a signed URL (expired, throttled): a new redirect from the Hub may work.
      return network(`${NAME} download server answered HTTP ${status} for ${context.path ?? 'a file'} of ${this.displayUri}`);
    }
    switch (code) {
      case 'GatedRepo':
        return status === 403
          ? forbidden(`${model} is gated and the account of HF_TOKEN has not been granted access: request it at ${page}`)
          : authFailed(`${model} is gated: set HF_TOKEN to a token of an account that was granted access at ${page}`);
      case 'RepoNotFound':
        return notFound(this.hasToken
          ? `${model} not found at ${this.endpoint}, or the token in HF_TOKEN may not read it. Check the name and the token.`
          : `${model} not found at ${this.endpoint}. Check the name; if the repository is private or gated, set HF_TOKEN to a token that can read it.`);
      case 'RevisionNotFound':
        return notFound(`${model} has no revision "${this.revision}" (a branch, tag or commit). Check the revision after ":" in ${this.displayUri}.`);
      case 'EntryNotFound':
        return notFound(`${model} has no file ${context.path ?? ''} at commit ${this.commit ?? this.revision}.`);
      default:
        break;
    }
    const detail = message === undefined ? '' : ` (${message})`;
    if (status === 401) {
      return authFailed(this.hasToken
        ? `${NAME} refused the token in HF_TOKEN for ${this.displayUri}${detail}. Check HF_TOKEN.`
        : `${NAME} requires authentication for ${this.displayUri}${detail}: set HF_TOKEN.`);
    }
    if (status === 403) return forbidden(`${NAME} denied access to ${this.displayUri}${detail}. Check that the account of HF_TOKEN may read it.`);
    return statusError(status, NAME, this.displayUri, response.headers['retry-after']);
  }

  private async resolveCommit(signal: AbortSignal): Promise<string> {
    const url = new URL(`${this.endpoint}/api/models/${this.repo}/revision/${encodeURIComponent(this.revision)}?expand=sha`);
    const info = await readJson(await this.hub(url, signal, {}), NAME, this.displayUri);
    const sha = typeof info === 'object' && info !== null && 'sha' in info ? info.sha : undefined;
    if (!isHex(sha, 40)) throw invalidInput(`${NAME} answered ${this.displayUri} without a commit sha: is HF_ENDPOINT (${this.endpoint}) a Hugging Face Hub?`);
    return sha.toLowerCase();
  }

  async *list(signal: AbortSignal): AsyncIterable<RemoteObject> {
    const commit = await this.resolveCommit(signal);
    this.commit = commit;
    const origin = new URL(this.endpoint).origin;
    let url: URL | undefined = new URL(`${this.endpoint}/api/models/${this.repo}/tree/${commit}?recursive=true&expand=false`);
    while (url !== undefined) {
      const response = await this.hub(url, signal, {});
      const next = nextLink(headerValue(response.headers, 'link'));
      const page = await readJson(response, NAME, this.displayUri);
      if (!Array.isArray(page)) throw invalidInput(`${NAME} listing of ${this.displayUri} is not a list of files: is HF_ENDPOINT (${this.endpoint}) a Hugging Face Hub?`);
      for (const entry of page) {
        if (isTreeEntry(entry) && entry.type === 'file') yield hfObject(entry);
      }
      url = next === undefined ? undefined : new URL(next, url);
      // The token goes with every page; a next page elsewhere would carry it away.
      if (url !== undefined && url.origin !== origin) throw invalidInput(`${NAME} listing of ${this.displayUri} points to another server (${url.origin}); refusing to send HF_TOKEN there`);
    }
  }

  async read(obj: RemoteObject, range: ByteRange | undefined, signal: AbortSignal): Promise<Readable> {
    this.commit ??= await this.resolveCommit(signal);
    const url = new URL(`${this.endpoint}/${this.repo}/resolve/${this.commit}/${encodePath(obj.key)}`);
    const response = await getBytes(this.dispatcher, url, range, this.credentials, signal, NAME, this.displayUri);
    if (response.statusCode !== 200 && response.statusCode !== 206) throw await this.failure(response, { path: obj.key });
    return checkedBody(response, range, NAME, obj.key);
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}
