// A faithful double of the Hugging Face Hub's HTTP API, for the parts a downloader uses (no Hub
// can be installed locally). It speaks as huggingface.co does (checked with @huggingface/hub in
// test/unit/hub-double.test.ts):
//
//   GET /api/models/O/R/revision/REV          model info: sha (the commit), siblings, private, gated
//   GET /api/models/O/R/tree/REV[/DIR]        entries {type, oid, size, path, lfs?}; `recursive=true`
//                                             descends; pages of `pageSize`, next page in `Link: <..>; rel="next"`
//   GET|HEAD /O/R/resolve/REV/PATH            small files: the bytes (Range honoured), ETag = git blob sha1;
//                                             LFS files: 302 to the CDN with X-Linked-Etag (sha256), X-Linked-Size
//   every answer of a revision carries X-Repo-Commit; errors carry X-Error-Code as the Hub's do:
//   RepoNotFound (401 without a token, 404 with one), RevisionNotFound, EntryNotFound (404), GatedRepo
//   (401 without a token, 403 with one not granted access); an unknown token is 401.
//
// The CDN is a second server (another origin), like cdn-lfs.hf.co: it serves LFS blobs by sha256
// behind a signed URL (a wrong signature is 403). It ignores an Authorization header, as the real
// CloudFront does, but logs it (`requests`), so tests can prove a client never sent the token there.
// All files at or above `lfsThreshold` bytes are LFS files.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { listenOnLoopback } from './ports.js';

export type Files = ReadonlyMap<string, Buffer>;

export interface HfRepoOptions {
  /** Hidden from everyone but `readers`: the Hub answers RepoNotFound. */
  private?: boolean;
  /** Listed publicly, but files only for `readers` (GatedRepo). */
  gated?: boolean;
  readers?: readonly string[];
}

interface FileRecord { content: Buffer; oid: string; sha256: string; lfs: boolean; pointerSize: number }
interface Commit { sha: string; files: Map<string, FileRecord>; date: string }
interface Repo { id: string; options: HfRepoOptions; refs: Map<string, string>; commits: Map<string, Commit> }

export interface LoggedRequest { server: 'hub' | 'cdn'; method: string; path: string; authorization: string | undefined; range: string | undefined }

const gitSha1 = (content: Buffer): string =>
  createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');

export class HfDouble {
  url = '';
  cdnUrl = '';
  pageSize: number;
  lfsThreshold: number;
  readonly tokens = new Set<string>();
  readonly requests: LoggedRequest[] = [];
  readonly faults: Fault[] = [];
  private readonly repos = new Map<string, Repo>();
  private readonly blobs = new Map<string, Buffer>();
  private readonly corrupt = new Set<string>();
  private readonly secret = randomBytes(16);
  private servers: Listening[] = [];
  private commitCounter = 0;

  constructor(options: { pageSize?: number; lfsThreshold?: number; tokens?: readonly string[] } = {}) {
    this.pageSize = options.pageSize ?? 50;
    this.lfsThreshold = options.lfsThreshold ?? 1024;
    for (const token of options.tokens ?? []) this.tokens.add(token);
  }

  async start(): Promise<this> {
    const hub = await listen((req, res, url) => { this.hub(req, res, url); });
    const cdn = await listen((req, res, url) => { this.cdn(req, res, url); });
    this.servers = [hub, cdn];
    this.url = hub.url;
    this.cdnUrl = cdn.url;
    return this;
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.close()));
  }

  /** Creates (or replaces) a repository whose `main` holds `files`; returns the commit sha. */
  addRepo(id: string, files: Files, options: HfRepoOptions = {}): string {
    this.repos.set(id, { id, options, refs: new Map(), commits: new Map() });
    return this.commit(id, 'main', files);
  }

  hasRepo(id: string): boolean {
    return this.repos.has(id);
  }

  /** A new commit on a branch (created or moved) or a tag; returns its sha. */
  commit(id: string, ref: string, files: Files): string {
    const repo = this.repos.get(id);
    if (repo === undefined) throw new Error(`no repo ${id}`);
    const sha = createHash('sha1').update(`${id}\0${ref}\0${++this.commitCounter}`).digest('hex');
    const records = new Map<string, FileRecord>();
    for (const [path, content] of files) {
      const sha256 = createHash('sha256').update(content).digest('hex');
      const lfs = content.length >= this.lfsThreshold;
      const pointer = Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${content.length}\n`);
      if (lfs) this.blobs.set(sha256, content);
      records.set(path, { content, sha256, lfs, oid: gitSha1(lfs ? pointer : content), pointerSize: pointer.length });
    }
    repo.commits.set(sha, { sha, files: records, date: new Date(Date.UTC(2025, 0, 1) + this.commitCounter * 1000).toISOString() });
    repo.refs.set(ref, sha);
    return sha;
  }

  /** The next download of this file (any request for its bytes) gets one flipped byte. */
  corruptOnce(id: string, path: string): void {
    const file = this.resolveRef(id, 'main')?.files.get(path);
    if (file === undefined) throw new Error(`no file ${path} in ${id}`);
    this.corrupt.add(file.sha256);
  }

  private resolveRef(id: string, rev: string): Commit | undefined {
    const repo = this.repos.get(id);
    const sha = repo?.refs.get(rev) ?? rev;
    return repo?.commits.get(sha);
  }

  private log(server: 'hub' | 'cdn', req: IncomingMessage, url: URL): void {
    this.requests.push({ server, method: req.method ?? 'GET', path: url.pathname + url.search, authorization: req.headers.authorization, range: req.headers.range });
  }

  private hub(req: IncomingMessage, res: ServerResponse, url: URL): void {
    this.log('hub', req, url);
    const injected = takeFault(this.faults, url.pathname);
    if (injected !== undefined) { sendJson(res, injected, { error: 'injected failure' }); return; }
    const auth = req.headers.authorization;
    const token = auth === undefined ? undefined : /^Bearer (.+)$/.exec(auth)?.[1];
    if (auth !== undefined && (token === undefined || !this.tokens.has(token))) {
      sendJson(res, 401, { error: 'Invalid credentials in Authorization header' }); return;
    }
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/(revision|tree)\/([^/]+)(\/.*)?$/.exec(url.pathname);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const id = api?.[1] ?? resolve?.[1];
    if (id === undefined) { sendJson(res, 404, { error: 'Not Found' }); return; }
    const repo = this.repos.get(id);
    const reader = token !== undefined && (repo?.options.readers ?? []).includes(token);
    if (repo === undefined || (repo.options.private === true && !reader)) {
      sendJson(res, token === undefined ? 401 : 404, { error: 'Repository not found' }, { 'x-error-code': 'RepoNotFound' }); return;
    }
    const rev = decodeURIComponent(api?.[3] ?? resolve?.[2] ?? '');
    const commit = this.resolveRef(id, rev);
    if (commit === undefined) { sendJson(res, 404, { error: `Invalid rev id: ${rev}` }, { 'x-error-code': 'RevisionNotFound' }); return; }
    const headers = { 'x-repo-commit': commit.sha, 'x-request-id': randomBytes(8).toString('hex') };
    if (api?.[2] === 'revision') { sendJson(res, 200, this.info(repo, commit), headers); return; }
    if (api !== null) { this.tree(res, url, repo, commit, decodeURIComponent(api[4] ?? '').replace(/^\/+/, ''), headers); return; }
    if (repo.options.gated === true && !reader) {
      const message = token === undefined
        ? `Access to model ${id} is restricted. You must have access to it and be authenticated to access it. Please log in.`
        : `Access to model ${id} is restricted and you are not in the authorized list. Visit ${this.url}/${id} to ask for access.`;
      sendJson(res, token === undefined ? 401 : 403, { error: message }, { 'x-error-code': 'GatedRepo', ...headers });
      return;
    }
    const path = (resolve?.[3] ?? '').split('/').map(decodeURIComponent).join('/');
    const file = commit.files.get(path);
    if (file === undefined) { sendJson(res, 404, { error: 'Entry not found' }, { 'x-error-code': 'EntryNotFound', ...headers }); return; }
    if (file.lfs) {
      const expires = '3600';
      const signature = createHmac('sha256', this.secret).update(`${file.sha256}:${expires}`).digest('hex');
      res.writeHead(302, {
        ...headers,
        location: `${this.cdnUrl}/repos/${file.sha256}?X-Amz-Expires=${expires}&X-Amz-Signature=${signature}`,
        etag: `"${file.sha256}"`,
        'x-linked-etag': `"${file.sha256}"`,
        'x-linked-size': String(file.content.length),
        'content-length': '0',
      });
      res.end();
      return;
    }
    const type = path.endsWith('.json') ? 'application/json' : path.endsWith('.txt') || path.endsWith('.md') ? 'text/plain; charset=utf-8' : 'application/octet-stream';
    sendBytes(req, res, file.content, { ...headers, etag: `"${file.oid}"`, 'content-type': type }, this.takeCorrupt(req, file.sha256));
  }

  private takeCorrupt(req: IncomingMessage, sha256: string): boolean {
    return req.method !== 'HEAD' && this.corrupt.delete(sha256);
  }

  private info(repo: Repo, commit: Commit): unknown {
    return {
      _id: createHash('md5').update(repo.id).digest('hex').slice(0, 24),
      id: repo.id,
      modelId: repo.id,
      author: repo.id.split('/')[0],
      sha: commit.sha,
      lastModified: commit.date,
      private: repo.options.private === true,
      gated: repo.options.gated === true ? 'manual' : false,
      disabled: false,
      downloads: 0,
      likes: 0,
      tags: [],
      siblings: [...commit.files.keys()].sort().map((rfilename) => ({ rfilename })),
    };
  }

  private tree(res: ServerResponse, url: URL, repo: Repo, commit: Commit, dir: string, headers: Record<string, string>): void {
    const recursive = url.searchParams.get('recursive') === 'true';
    const under = dir === '' ? '' : `${dir}/`;
    const entries = new Map<string, unknown>();
    for (const [path, file] of [...commit.files].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (!path.startsWith(under)) continue;
      const parts = path.slice(under.length).split('/');
      const dirs = recursive ? parts.length - 1 : Math.min(1, parts.length - 1);
      for (let i = 1; i <= dirs; i++) {
        const d = under + parts.slice(0, i).join('/');
        entries.set(d, { type: 'directory', oid: createHash('sha1').update(`tree:${commit.sha}:${d}`).digest('hex'), size: 0, path: d });
      }
      if (!recursive && parts.length > 1) continue;
      entries.set(path, {
        type: 'file', oid: file.oid, size: file.content.length, path,
        ...(file.lfs ? { lfs: { oid: file.sha256, size: file.content.length, pointerSize: file.pointerSize } } : {}),
      });
    }
    if (dir !== '' && entries.size === 0) { sendJson(res, 404, { error: `Entry not found: ${dir}` }, { 'x-error-code': 'EntryNotFound', ...headers }); return; }
    const all = [...entries.values()];
    const offset = Number(Buffer.from(url.searchParams.get('cursor') ?? '', 'base64url').toString() || '0');
    const page = all.slice(offset, offset + this.pageSize);
    const extra: Record<string, string> = { ...headers };
    if (offset + this.pageSize < all.length) {
      const next = new URL(url.pathname + url.search, this.url);
      next.searchParams.set('cursor', Buffer.from(String(offset + this.pageSize)).toString('base64url'));
      extra.link = `<${next.href}>; rel="next"`;
    }
    sendJson(res, 200, page, extra);
  }

  private cdn(req: IncomingMessage, res: ServerResponse, url: URL): void {
    this.log('cdn', req, url);
    const injected = takeFault(this.faults, url.pathname);
    if (injected !== undefined) { sendJson(res, injected, { error: 'injected failure' }); return; }
    const sha256 = /^\/repos\/([0-9a-f]{64})$/.exec(url.pathname)?.[1] ?? '';
    const expires = url.searchParams.get('X-Amz-Expires') ?? '';
    const expected = createHmac('sha256', this.secret).update(`${sha256}:${expires}`).digest('hex');
    const blob = this.blobs.get(sha256);
    if (blob === undefined || url.searchParams.get('X-Amz-Signature') !== expected) {
      res.writeHead(403, { 'content-type': 'application/xml' }).end('<Error><Code>AccessDenied</Code></Error>');
      return;
    }
    sendBytes(req, res, blob, { etag: `"${sha256}"`, 'content-type': 'application/octet-stream', 'x-cache': 'Miss from cloudfront' }, this.takeCorrupt(req, sha256));
  }
}

/**
 * The conformance suite asks for sources by key prefix, but a hub URI names a whole repository.
 * A binding therefore makes one repository per prefix, holding exactly what the prefix names:
 * the objects under it (keys relative to it), or a single object under its base name.
 */
export function repoForPrefix(objects: Files, prefix: string): { name: string; files: Map<string, Buffer> } {
  const trimmed = prefix.replace(/\/+$/, '');
  const files = new Map<string, Buffer>();
  const single = objects.get(trimmed);
  if (single !== undefined) {
    files.set(trimmed.slice(trimmed.lastIndexOf('/') + 1), single);
  } else {
    for (const [key, content] of objects) {
      if (key.startsWith(`${trimmed}/`) && !key.endsWith('/')) files.set(key.slice(trimmed.length + 1), content);
    }
  }
  const [owner = 'conf', ...rest] = trimmed.split('/');
  return { name: `${owner}/${rest.length === 0 ? 'root' : rest.join('_')}`, files };
}

export async function startHfDouble(options: ConstructorParameters<typeof HfDouble>[0] = {}): Promise<HfDouble> {
  return new HfDouble(options).start();
}

// ---- shared with the ModelScope double ----


export type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => void;

export interface Listening {
  url: string;
  close(): Promise<void>;
}

export async function listen(handler: Handler): Promise<Listening> {
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    try {
      handler(req, res, url);
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err));
    }
  });
  const port = await listenOnLoopback(server);
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => { resolve(); });
    }),
  };
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/**
 * Answers with `content`, honouring a single `Range: bytes=a-b` (also `a-` and `-n`) as real object
 * stores do: 206 with Content-Range, or 416 when nothing of the range exists.
 * `corrupt` flips the first byte sent (a transfer gone wrong).
 */
export function sendBytes(req: IncomingMessage, res: ServerResponse, content: Buffer, headers: Record<string, string>, corrupt = false): void {
  const size = content.length;
  const base = { 'accept-ranges': 'bytes', ...headers };
  const range = req.headers.range;
  let start = 0;
  let end = size; // exclusive
  let status = 200;
  if (range !== undefined) {
    const match = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
    if (match !== null && (match[1] !== '' || match[2] !== '')) {
      if (match[1] === '') {
        start = Math.max(0, size - Number(match[2]));
      } else {
        start = Number(match[1]);
        end = match[2] === '' ? size : Math.min(size, Number(match[2]) + 1);
      }
      if (start >= size || start >= end) {
        res.writeHead(416, { ...base, 'content-range': `bytes */${size}` }).end();
        return;
      }
      status = 206;
    }
  }
  const body = Buffer.from(content.subarray(start, end));
  if (corrupt && body.length > 0) body[0] = (body[0] ?? 0) ^ 0xff;
  res.writeHead(status, {
    ...base,
    'content-length': String(body.length),
    ...(status === 206 ? { 'content-range': `bytes ${start}-${end - 1}/${size}` } : {}),
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** Injected failures: the next `count` requests whose path matches get `status`. */
export interface Fault {
  match: RegExp;
  status: number;
  count: number;
}

export function takeFault(faults: Fault[], path: string): number | undefined {
  const fault = faults.find((f) => f.count > 0 && f.match.test(path));
  if (fault === undefined) return undefined;
  fault.count--;
  return fault.status;
}
