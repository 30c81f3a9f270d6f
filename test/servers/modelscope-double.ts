// A double of ModelScope's model-file API, the two calls its Python SDK makes to download a model
// (as of 2025; no official JS client exists to prove it against, so the shapes follow the SDK):
//
//   GET /api/v1/models/OWNER/NAME/repo/files?Revision=REV&Recursive=true
//       -> 200 {Code: 200, Data: {Files: [{Name, Path, Type: 'blob'|'tree', Size, Sha256, Revision, IsLFS, ...}]},
//              Message: 'success', RequestId, Success: true}
//   GET|HEAD /api/v1/models/OWNER/NAME/repo?Revision=REV&FilePath=PATH    the bytes, Range honoured
//
// Assumptions where the SDK does not tell (documented, as the real service may word them
// differently): an unknown model or revision is HTTP 404 with {Code, Message, Success: false}; a
// private model without a valid `m_session_id` cookie (the SDK's way of sending the token) is 401.
// Files[].Revision is the commit the listing was made at, and downloads accept it as a revision.
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { listen, sendBytes, sendJson, takeFault, type Fault, type Files, type Listening, type LoggedRequest } from './hf-double.js';

interface MsFile { content: Buffer; sha256: string }
interface MsModel { private: boolean; readers: readonly string[]; refs: Map<string, string>; commits: Map<string, Map<string, MsFile>> }

export class ModelScopeDouble {
  url = '';
  readonly tokens = new Set<string>();
  readonly requests: LoggedRequest[] = [];
  readonly faults: Fault[] = [];
  private readonly models = new Map<string, MsModel>();
  private readonly corrupt = new Set<string>();
  private server: Listening | undefined;
  private counter = 0;

  constructor(options: { tokens?: readonly string[] } = {}) {
    for (const token of options.tokens ?? []) this.tokens.add(token);
  }

  async start(): Promise<this> {
    this.server = await listen((req, res, url) => { this.handle(req, res, url); });
    this.url = this.server.url;
    return this;
  }

  async stop(): Promise<void> {
    await this.server?.close();
  }

  /** A model whose `master` holds `files`; returns the commit id. */
  addModel(id: string, files: Files, options: { private?: boolean; readers?: readonly string[] } = {}): string {
    this.models.set(id, { private: options.private === true, readers: options.readers ?? [], refs: new Map(), commits: new Map() });
    return this.commit(id, 'master', files);
  }

  hasModel(id: string): boolean {
    return this.models.has(id);
  }

  commit(id: string, ref: string, files: Files): string {
    const model = this.models.get(id);
    if (model === undefined) throw new Error(`no model ${id}`);
    const sha = createHash('sha1').update(`${id}\0${ref}\0${++this.counter}`).digest('hex');
    const records = new Map<string, MsFile>();
    for (const [path, content] of files) records.set(path, { content, sha256: createHash('sha256').update(content).digest('hex') });
    model.commits.set(sha, records);
    model.refs.set(ref, sha);
    return sha;
  }

  corruptOnce(id: string, path: string): void {
    const model = this.models.get(id);
    const file = model?.commits.get(model.refs.get('master') ?? '')?.get(path);
    if (file === undefined) throw new Error(`no file ${path} in ${id}`);
    this.corrupt.add(file.sha256);
  }

  private fail(res: ServerResponse, status: number, code: number, message: string): void {
    sendJson(res, status, { Code: code, Message: message, RequestId: randomBytes(8).toString('hex'), Success: false });
  }

  private handle(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const cookie = /(?:^|;\s*)m_session_id=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
    this.requests.push({ server: 'hub', method: req.method ?? 'GET', path: url.pathname + url.search, authorization: cookie, range: req.headers.range });
    const injected = takeFault(this.faults, url.pathname);
    if (injected !== undefined) { this.fail(res, injected, injected, 'injected failure'); return; }
    const route = /^\/api\/v1\/models\/([^/]+\/[^/]+)\/repo(\/files)?$/.exec(url.pathname);
    if (route === null) { this.fail(res, 404, 404, 'not found'); return; }
    const id = route[1] ?? '';
    const model = this.models.get(id);
    if (model === undefined) { this.fail(res, 404, 10010205001, `model ${id} not found`); return; }
    if (model.private && (cookie === undefined || !this.tokens.has(cookie) || !model.readers.includes(cookie))) {
      this.fail(res, 401, 10010101, 'Unauthorized, please login first or check your access token'); return;
    }
    const revision = url.searchParams.get('Revision') ?? 'master';
    const commitId = model.refs.get(revision) ?? revision;
    const commit = model.commits.get(commitId);
    if (commit === undefined) { this.fail(res, 404, 10010205002, `revision ${revision} not found`); return; }
    if (route[2] !== undefined) { this.list(res, url, commitId, commit); return; }
    const path = url.searchParams.get('FilePath') ?? '';
    const file = commit.get(path);
    if (file === undefined) { this.fail(res, 404, 10010205003, `file ${path} not found`); return; }
    const corrupt = req.method !== 'HEAD' && this.corrupt.delete(file.sha256);
    sendBytes(req, res, file.content, { 'content-type': 'application/octet-stream', etag: `"${file.sha256}"` }, corrupt);
  }

  private list(res: ServerResponse, url: URL, commitId: string, commit: Map<string, MsFile>): void {
    const recursive = url.searchParams.get('Recursive') === 'true';
    const entries = new Map<string, unknown>();
    const common = { CommitMessage: 'upload', CommittedDate: 1735689600, CommitterName: 'double', InCheck: false, Revision: commitId };
    for (const [path, file] of [...commit].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const parts = path.split('/');
      const dirs = recursive ? parts.length - 1 : Math.min(1, parts.length - 1);
      for (let i = 1; i <= dirs; i++) {
        const dir = parts.slice(0, i).join('/');
        entries.set(dir, { ...common, Id: '', IsLFS: false, Mode: '040000', Name: parts[i - 1], Path: dir, Sha256: '', Size: 0, Type: 'tree' });
      }
      if (!recursive && parts.length > 1) continue;
      entries.set(path, {
        ...common, Id: createHash('sha1').update(file.content).digest('hex'), IsLFS: file.content.length >= 1024, Mode: '100644',
        Name: parts[parts.length - 1], Path: path, Sha256: file.sha256, Size: file.content.length, Type: 'blob',
      });
    }
    sendJson(res, 200, { Code: 200, Data: { Files: [...entries.values()], IsVisual: 0 }, Message: 'success', RequestId: randomBytes(8).toString('hex'), Success: true });
  }
}

export async function startModelScopeDouble(options: { tokens?: readonly string[] } = {}): Promise<ModelScopeDouble> {
  return new ModelScopeDouble(options).start();
}
