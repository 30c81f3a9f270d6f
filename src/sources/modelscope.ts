/**
 * A ModelScope model repository (`modelscope://OWNER/MODEL[:REVISION]`) over ModelScope's HTTP API,
 * the calls its Python SDK makes (as of 2025):
 *
 *   GET {endpoint}/api/v1/models/OWNER/MODEL/repo/files?Revision=REV&Recursive=true
 *       -> {Code: 200, Data: {Files: [{Path, Name, Size, Sha256, Type: 'blob'|'tree', Revision}]}}
 *   GET {endpoint}/api/v1/models/OWNER/MODEL/repo?Revision=REV&FilePath=PATH   (honours Range)
 *
 * The token (`MODELSCOPE_API_TOKEN`) is sent as the `m_session_id` cookie, as the SDK sends it,
 * and only to the API's own origin. Every file is verified by the Sha256 the listing gives.
 * Each read names the Revision the listing gave for that file (the commit it was listed at), so a
 * branch that moves mid-download cannot slip in other bytes; the sha256 check catches it if the
 * server reports a branch name there instead. The default revision is `master`, the SDK's default.
 */
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { authFailed, forbidden, invalidInput, notFound, type StorageError } from '../errors.js';
import { createDispatcher, httpRequest, type HttpResponse } from '../net/http-client.js';
import { statusError } from '../net/http-status.js';
import type { Settings } from '../settings/settings.js';
import type { Location } from '../uri/location.js';
import { checkedBody, errorMessage, getBytes, isHex, readJson } from './hub-http.js';
import type { ByteRange, ObjectSource, ObjectSourceCapabilities, RemoteObject } from './types.js';

const NAME = 'ModelScope';
const DEFAULT_REVISION = 'master';

interface FileEntry {
  Path: string;
  Type: string;
  Size: number;
  Sha256?: unknown;
  Revision?: unknown;
}

function isFileEntry(value: unknown): value is FileEntry {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.Path === 'string' && typeof v.Type === 'string' && typeof v.Size === 'number' && Number.isSafeInteger(v.Size) && v.Size >= 0;
}

/** `Data.Files` of a listing answer, or undefined when the answer has another shape. */
function filesOf(answer: unknown): { code: unknown; message: unknown; files: unknown[] | undefined } {
  if (typeof answer !== 'object' || answer === null) return { code: undefined, message: undefined, files: undefined };
  const a = answer as Record<string, unknown>;
  const data = a.Data;
  const files = typeof data === 'object' && data !== null && 'Files' in data ? (data as Record<string, unknown>).Files : undefined;
  return { code: a.Code, message: a.Message, files: Array.isArray(files) ? files as unknown[] : undefined };
}

export class ModelScopeSource implements ObjectSource {
  readonly kind = 'object';
  readonly name = NAME;
  readonly displayUri: string;
  readonly prefix = '';
  readonly capabilities: ObjectSourceCapabilities = { ranges: true };
  private readonly repo: string;
  private readonly revision: string;
  private readonly endpoint: string;
  private readonly credentials: Record<string, string>;
  private readonly hasToken: boolean;
  private readonly dispatcher: Dispatcher;
  /** Path -> the revision the listing gave for it. */
  private readonly fileRevisions = new Map<string, string>();

  constructor(location: Extract<Location, { scheme: 'modelscope' }>, settings: Settings) {
    this.repo = location.repo;
    this.revision = location.revision ?? DEFAULT_REVISION;
    this.displayUri = `modelscope://${location.repo}${location.revision === undefined ? '' : `:${location.revision}`}`;
    this.endpoint = settings.hubs.modelscope.endpoint;
    const token = settings.hubs.modelscope.token;
    this.hasToken = token !== undefined;
    this.credentials = token === undefined ? {} : { cookie: `m_session_id=${token}` };
    this.dispatcher = createDispatcher({ net: settings.net });
  }

  private async failure(response: HttpResponse, path?: string): Promise<StorageError> {
    const status = response.statusCode;
    const message = await errorMessage(response, 'Message');
    const detail = message === undefined ? '' : ` (${message})`;
    const model = `${NAME} model ${this.repo}`;
    if (status === 401 || status === 403) {
      const make = status === 401 ? authFailed : forbidden;
      return make(this.hasToken
        ? `${NAME} refused access to ${this.displayUri}${detail}. Check that the token in MODELSCOPE_API_TOKEN may read it.`
        : `${model} needs authentication${detail}: set MODELSCOPE_API_TOKEN to a token that can read it.`);
    }
    if (status === 404) {
      return notFound(path !== undefined
        ? `${model} has no file ${path} at revision ${this.fileRevisions.get(path) ?? this.revision}${detail}.`
        : `${model} or its revision "${this.revision}" not found at ${this.endpoint}${detail}. Check the name and revision${this.hasToken ? '' : '; a private model needs MODELSCOPE_API_TOKEN'}.`);
    }
    return statusError(status, NAME, this.displayUri, response.headers['retry-after']);
  }

  async *list(signal: AbortSignal): AsyncIterable<RemoteObject> {
    const query = new URLSearchParams({ Revision: this.revision, Recursive: 'true' });
    const url = new URL(`${this.endpoint}/api/v1/models/${this.repo}/repo/files?${query.toString()}`);
    const response = await httpRequest(this.dispatcher, url, { headers: { accept: 'application/json' }, originHeaders: this.credentials, signal }, NAME, this.displayUri);
    if (response.statusCode !== 200) throw await this.failure(response);
    const { code, message, files } = filesOf(await readJson(response, NAME, this.displayUri));
    if (code !== 200 || files === undefined) {
      const why = typeof message === 'string' && message !== '' ? `: ${message}` : '';
      throw invalidInput(`${NAME} could not list ${this.displayUri} (code ${String(code)}${why}). Is ${this.endpoint} a ModelScope endpoint?`);
    }
    for (const entry of files) {
      if (!isFileEntry(entry) || entry.Type !== 'blob') continue;
      const revision = typeof entry.Revision === 'string' && entry.Revision !== '' ? entry.Revision : this.revision;
      this.fileRevisions.set(entry.Path, revision);
      const sha256 = isHex(entry.Sha256, 64) ? entry.Sha256.toLowerCase() : undefined;
      yield {
        key: entry.Path,
        size: entry.Size,
        checksum: sha256 === undefined ? undefined : { algorithm: 'sha256', hex: sha256 },
        version: sha256 ?? revision,
      };
    }
  }

  async read(obj: RemoteObject, range: ByteRange | undefined, signal: AbortSignal): Promise<Readable> {
    const query = new URLSearchParams({ Revision: this.fileRevisions.get(obj.key) ?? this.revision, FilePath: obj.key });
    const url = new URL(`${this.endpoint}/api/v1/models/${this.repo}/repo?${query.toString()}`);
    const response = await getBytes(this.dispatcher, url, range, this.credentials, signal, NAME, this.displayUri);
    if (response.statusCode !== 200 && response.statusCode !== 206) throw await this.failure(response, obj.key);
    return checkedBody(response, range, NAME, obj.key);
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}
