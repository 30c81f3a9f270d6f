// A faithful double of the Azure Files REST API, for what a downloader uses (there is no Azurite
// File service). Path-style like Azurite: http://127.0.0.1:PORT/ACCOUNT/SHARE/dir/file.
//
//   GET  /ACCOUNT/SHARE[/DIR]?restype=directory&comp=list[&prefix][&marker][&maxresults]
//        List Directories and Files: XML EnumerationResults, one page of at most maxresults
//        (default and cap 5000) entries in name order, NextMarker for the next page.
//   GET  /ACCOUNT/SHARE/PATH      Get File: 200 whole, or 206 for `x-ms-range`/`Range: bytes=a-b`
//        (x-ms-range wins), 416 InvalidRange beyond the end. Content-MD5 on whole-file answers,
//        x-ms-content-md5 (the whole file's) on ranged ones.
//   HEAD /ACCOUNT/SHARE/PATH      Get File Properties: Content-Length, Content-MD5, ETag, x-ms-type.
//
// Authorization, as the service checks it:
//   - Shared Key: `Authorization: SharedKey ACCOUNT:SIG`, SIG recomputed from the request per the
//     "Authorize with Shared Key" spec (verb, standard headers, x-ms-* headers, canonical resource).
//   - Service SAS (sr=s share, sr=f file): `sig` recomputed per "Create a service SAS" for Files;
//     expiry, start and permissions (l to list, r to read) enforced.
//   - Nothing: 401 NoAuthenticationInformation (shares have no anonymous access).
// Errors are XML <Error><Code/><Message/></Error> with the x-ms-error-code header.
import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Tree } from '../helpers/tree.js';
import { listenOnLoopback } from './ports.js';

export const FILE_ACCOUNT = 'devstoreaccount1';
/** The same well-known development key Azurite uses. */
export const FILE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

interface StoredFile { content: Buffer; md5: string | undefined; etag: string; modified: string }
interface Share { files: Map<string, StoredFile>; dirs: Set<string> }

export interface AzureFileDouble {
  /** `http://127.0.0.1:PORT/devstoreaccount1` (what AZURE_STORAGE_FILE_ENDPOINT takes). */
  readonly endpoint: string;
  /** Requests served so far, as `METHOD path?query STATUS`. */
  readonly requests: string[];
  /** Stores a share; a key ending in '/' is an (empty) directory. Content-MD5 is stored unless md5 is false. */
  addShare(name: string, tree: Tree, options?: { md5?: boolean }): void;
  /** The next Get File answer sends its headers and only `bytes` of its body, then drops the connection. */
  cutNextRead(bytes: number): void;
  stop(): Promise<void>;
}

const xml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function fail(res: ServerResponse, status: number, code: string, message: string, head = false): void {
  const body = `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${xml(message)}\nRequestId:${randomUUID()}\nTime:${new Date().toISOString()}</Message></Error>`;
  res.writeHead(status, { 'x-ms-error-code': code, 'content-type': 'application/xml', 'content-length': head ? 0 : Buffer.byteLength(body) });
  res.end(head ? undefined : body);
}

function header(req: IncomingMessage, name: string): string {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v ?? '';
}

/** "Authorize with Shared Key", Blob/Queue/File services, version 2009-09-19 and later. */
export function sharedKeyStringToSign(req: IncomingMessage, account: string, rawPath: string, query: URLSearchParams): string {
  const length = header(req, 'content-length');
  const standard = [
    req.method ?? 'GET',
    header(req, 'content-encoding'), header(req, 'content-language'), length === '0' ? '' : length,
    header(req, 'content-md5'), header(req, 'content-type'),
    header(req, 'x-ms-date') === '' ? header(req, 'date') : '',
    header(req, 'if-modified-since'), header(req, 'if-match'), header(req, 'if-none-match'), header(req, 'if-unmodified-since'),
    header(req, 'range'),
  ];
  const msHeaders = Object.keys(req.headers).filter((n) => n.startsWith('x-ms-')).sort()
    .map((n) => `${n}:${header(req, n).replace(/\s+/g, ' ').trim()}\n`).join('');
  const params = new Map<string, string[]>();
  for (const [k, v] of query) params.set(k.toLowerCase(), [...(params.get(k.toLowerCase()) ?? []), v]);
  const canonicalQuery = [...params.keys()].sort().map((k) => `\n${k}:${(params.get(k) ?? []).sort().join(',')}`).join('');
  return `${standard.join('\n')}\n${msHeaders}/${account}${rawPath}${canonicalQuery}`;
}

const hmac = (key: string, text: string): Buffer => createHmac('sha256', Buffer.from(key, 'base64')).update(text, 'utf8').digest();

function sameSignature(expected: Buffer, given: string): boolean {
  const g = Buffer.from(given, 'base64');
  return g.length === expected.length && timingSafeEqual(g, expected);
}

type Verdict = { ok: true } | { ok: false; status: number; code: string; message: string };

function checkSas(query: URLSearchParams, account: string, key: string, share: string, path: string, need: 'r' | 'l'): Verdict {
  const denied = (message: string, code = 'AuthenticationFailed', status = 403): Verdict => ({ ok: false, status, code, message });
  const q = (n: string): string => query.get(n) ?? '';
  if (q('ss') !== '') return denied('account SAS is not supported by this double');
  const sr = q('sr');
  if (sr !== 's' && sr !== 'f') return denied('Signed resource must be s or f');
  const resource = `/file/${account}/${share}${sr === 'f' ? `/${path}` : ''}`;
  const toSign = [q('sp'), q('st'), q('se'), resource, q('si'), q('sip'), q('spr'), q('sv'), q('rscc'), q('rscd'), q('rsce'), q('rscl'), q('rsct')].join('\n');
  if (!sameSignature(hmac(key, toSign), q('sig'))) return denied(`Signature did not match. String to sign used was ${toSign.split('\n').join(' | ')}`);
  const now = Date.now();
  if (q('se') === '' || Date.parse(q('se')) < now) return denied('Signed expiry time has to be after the current time');
  if (q('st') !== '' && Date.parse(q('st')) > now) return denied('Signed start time is in the future');
  if (sr === 'f' && need === 'l') return denied('A file SAS cannot list a directory', 'AuthorizationResourceTypeMismatch');
  if (!q('sp').includes(need)) return denied('This request is not authorized to perform this operation using this permission.', 'AuthorizationPermissionMismatch');
  return { ok: true };
}

function authorize(req: IncomingMessage, rawPath: string, query: URLSearchParams, share: string, path: string, need: 'r' | 'l'): Verdict {
  const auth = header(req, 'authorization');
  if (auth.startsWith('SharedKey ')) {
    const [account, sig] = auth.slice('SharedKey '.length).split(':');
    if (account !== FILE_ACCOUNT || sig === undefined) return { ok: false, status: 403, code: 'AuthenticationFailed', message: 'Unknown account' };
    const expected = hmac(FILE_KEY, sharedKeyStringToSign(req, FILE_ACCOUNT, rawPath, query));
    return sameSignature(expected, sig) ? { ok: true }
      : { ok: false, status: 403, code: 'AuthenticationFailed', message: 'Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.' };
  }
  if (auth !== '') return { ok: false, status: 401, code: 'InvalidAuthenticationInfo', message: 'Authentication information is not given in the correct format.' };
  if (query.has('sig')) return checkSas(query, FILE_ACCOUNT, FILE_KEY, share, path, need);
  return { ok: false, status: 401, code: 'NoAuthenticationInformation', message: 'Server failed to authenticate the request. Please refer to the information in the www-authenticate header.' };
}

function listPage(res: ServerResponse, share: Share, shareName: string, dir: string, query: URLSearchParams, cap: number): void {
  const prefix = query.get('prefix') ?? '';
  const marker = query.get('marker') ?? '';
  const max = Math.min(cap, Math.max(1, Number(query.get('maxresults') ?? cap) || cap));
  const base = dir === '' ? '' : `${dir}/`;
  const entries = new Map<string, 'File' | 'Directory'>();
  const collect = (path: string, kind: 'File' | 'Directory'): void => {
    if (!path.startsWith(base)) return;
    const rest = path.slice(base.length);
    const slash = rest.indexOf('/');
    if (slash < 0) entries.set(rest, kind);
    else entries.set(rest.slice(0, slash), 'Directory');
  };
  for (const path of share.files.keys()) collect(path, 'File');
  for (const path of share.dirs) collect(path, 'Directory');
  const names = [...entries.keys()].filter((n) => n !== '' && n.startsWith(prefix) && n >= marker).sort();
  const page = names.slice(0, max);
  const next = names[max] ?? '';
  const items = page.map((name) => {
    const kind = entries.get(name);
    const file = kind === 'File' ? share.files.get(base + name) : undefined;
    const props = file === undefined ? '<Properties />' : `<Properties><Content-Length>${file.content.length}</Content-Length><Etag>${file.etag}</Etag><Last-Modified>${file.modified}</Last-Modified></Properties>`;
    return `<${kind ?? 'File'}><Name>${xml(name)}</Name>${props}</${kind ?? 'File'}>`;
  }).join('');
  const body = `<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="http://127.0.0.1/${FILE_ACCOUNT}/" ShareName="${xml(shareName)}" DirectoryPath="${xml(dir)}">` +
    `${prefix === '' ? '' : `<Prefix>${xml(prefix)}</Prefix>`}${marker === '' ? '' : `<Marker>${xml(marker)}</Marker>`}<MaxResults>${max}</MaxResults>` +
    `<Entries>${items}</Entries><NextMarker>${xml(next)}</NextMarker></EnumerationResults>`;
  res.writeHead(200, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function fileProperties(file: StoredFile): Record<string, string | number> {
  return {
    'x-ms-type': 'File', etag: file.etag, 'last-modified': file.modified, 'accept-ranges': 'bytes',
    'content-type': 'application/octet-stream', 'x-ms-server-encrypted': 'true',
  };
}

interface Faults { cutAfter: number | undefined }

function send(res: ServerResponse, body: Buffer, faults: Faults): void {
  const cut = faults.cutAfter;
  if (cut === undefined) { res.end(body); return; }
  faults.cutAfter = undefined;
  res.write(body.subarray(0, cut), () => { res.socket?.destroy(); });
}

function serveFile(req: IncomingMessage, res: ServerResponse, file: StoredFile, faults: Faults): void {
  const head = req.method === 'HEAD';
  const range = header(req, 'x-ms-range') || header(req, 'range');
  const size = file.content.length;
  if (range === '') {
    res.writeHead(200, { ...fileProperties(file), 'content-length': size, ...(file.md5 === undefined ? {} : { 'content-md5': file.md5 }) });
    if (head) res.end(); else send(res, file.content, faults);
    return;
  }
  const m = /^bytes=(\d+)-(\d*)$/.exec(range);
  if (m === null) { fail(res, 400, 'InvalidHeaderValue', 'The value for one of the HTTP headers is not in the correct format.', head); return; }
  const start = Number(m[1]);
  const end = m[2] === '' || m[2] === undefined ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) { fail(res, 416, 'InvalidRange', 'The range specified is invalid for the current size of the resource.', head); return; }
  res.writeHead(206, {
    ...fileProperties(file), 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${size}`,
    ...(file.md5 === undefined ? {} : { 'x-ms-content-md5': file.md5 }),
  });
  if (head) res.end(); else send(res, file.content.subarray(start, end + 1), faults);
}

function handle(shares: Map<string, Share>, cap: number, faults: Faults, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://double');
  const rawPath = url.pathname;
  const segments = rawPath.split('/').slice(1).map(decodeURIComponent);
  const [account = '', shareName = '', ...rest] = segments;
  const path = rest.filter((s) => s !== '').join('/');
  const query = url.searchParams;
  const head = req.method === 'HEAD';
  res.setHeader('x-ms-request-id', randomUUID());
  res.setHeader('x-ms-version', header(req, 'x-ms-version') || '2025-05-05');
  res.setHeader('server', 'azure-file-double');
  if (account !== FILE_ACCOUNT) { fail(res, 400, 'InvalidUri', 'The requested URI does not represent any resource on the server.', head); return; }
  if (req.method !== 'GET' && req.method !== 'HEAD') { fail(res, 405, 'UnsupportedHttpVerb', 'The resource does not support the specified HTTP verb.', head); return; }
  const listing = query.get('restype') === 'directory' && query.get('comp') === 'list';
  const verdict = authorize(req, rawPath, query, shareName, path, listing ? 'l' : 'r');
  if (!verdict.ok) { fail(res, verdict.status, verdict.code, verdict.message, head); return; }
  const share = shares.get(shareName);
  if (share === undefined) { fail(res, 404, 'ShareNotFound', 'The specified share does not exist.', head); return; }
  if (listing) {
    if (path !== '' && !share.dirs.has(path)) {
      fail(res, 404, share.files.has(path) ? 'ResourceNotFound' : 'ParentNotFound', 'The specified resource does not exist.', head);
      return;
    }
    listPage(res, share, shareName, path, query, cap);
    return;
  }
  if (query.has('restype') || query.has('comp')) { fail(res, 400, 'UnsupportedQueryParameter', 'One of the query parameters specified in the request URI is not supported.', head); return; }
  const file = share.files.get(path);
  if (file === undefined) { fail(res, 404, 'ResourceNotFound', 'The specified resource does not exist.', head); return; }
  serveFile(req, res, file, faults);
}

/**
 * `maxResults` lowers the service's page cap (5000) so a test can exercise pagination with fewer
 * entries; `tls` serves HTTPS with that certificate (for custom-CA tests).
 */
export async function startAzureFileDouble(options: { maxResults?: number; tls?: { certFile: string; keyFile: string } } = {}): Promise<AzureFileDouble> {
  const cap = Math.min(5000, options.maxResults ?? 5000);
  const shares = new Map<string, Share>();
  const requests: string[] = [];
  const faults: Faults = { cutAfter: undefined };
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    res.on('finish', () => { requests.push(`${req.method ?? ''} ${req.url ?? ''} ${res.statusCode}`); });
    try {
      handle(shares, cap, faults, req, res);
    } catch (err) {
      fail(res, 500, 'InternalError', err instanceof Error ? err.message : String(err));
    }
  };
  const tls = options.tls;
  const server: Server = tls === undefined ? createServer(onRequest)
    : createTlsServer({ cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) }, onRequest);
  const port = await listenOnLoopback(server);
  let modified = 0;
  return {
    endpoint: `${tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}/${FILE_ACCOUNT}`,
    requests,
    addShare(name, tree, options = {}) {
      const share: Share = { files: new Map(), dirs: new Set() };
      for (const [key, content] of tree) {
        const parts = key.split('/').filter((s) => s !== '');
        for (let i = 1; i < parts.length; i++) share.dirs.add(parts.slice(0, i).join('/'));
        if (key.endsWith('/')) { share.dirs.add(parts.join('/')); continue; }
        const md5 = options.md5 === false ? undefined : createHash('md5').update(content).digest('base64');
        const etag = `"0x8D${createHash('sha1').update(content).digest('hex').slice(0, 13).toUpperCase()}"`;
        share.files.set(parts.join('/'), { content, md5, etag, modified: new Date(Date.UTC(2024, 0, 1, 0, 0, modified++ % 60)).toUTCString() });
      }
      shares.set(name, share);
    },
    cutNextRead(bytes) { faults.cutAfter = bytes; },
    stop: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => { resolve(); });
    }),
  };
}
