/**
 * A faithful double of the Google Cloud Storage JSON API on 127.0.0.1 (no GCS emulator can be
 * installed here). It speaks what our source, @google-cloud/storage and `gcloud storage` use:
 *
 *   GET  /storage/v1/b/B                      bucket metadata
 *   GET  /storage/v1/b/B/o?prefix&delimiter&pageToken&maxResults   object list (1000 a page by default)
 *   GET  /storage/v1/b/B/o/NAME               object metadata (size, md5Hash, crc32c, generation)
 *   GET  /storage/v1/b/B/o/NAME?alt=media     bytes, with Range (206 + Content-Range, 416), x-goog-hash,
 *   GET  /download/storage/v1/b/B/o/NAME?alt=media   x-goog-generation; `generation=` pins a version
 *   POST /upload/storage/v1/b/B/o?uploadType=media&name=NAME   simple upload
 *   POST /token                               OAuth 2.0 JWT-bearer grant (RS256 checked against the
 *                                             public keys of the service accounts created here)
 *   GET  /computeMetadata/v1/...              a GCE metadata server (when `metadata` is on)
 *
 * Errors are GCS's JSON shape: {"error":{"code":404,"message":"...","errors":[{...}]}}.
 * Private buckets answer 401 to anonymous or invalid bearer tokens; public ones are readable by all;
 * a bucket with `readers` answers 403 to other service accounts.
 */
import { crc32c } from '@aws-crypto/crc32c';
import { createHash, createVerify, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { listenOnLoopback } from './ports.js';

export const GCS_READ_SCOPE = 'https://www.googleapis.com/auth/devstorage.read_only';
const STORAGE_SCOPES = [GCS_READ_SCOPE, 'https://www.googleapis.com/auth/devstorage.full_control',
  'https://www.googleapis.com/auth/devstorage.read_write', 'https://www.googleapis.com/auth/cloud-platform'];

export interface ServiceAccountKey {
  type: 'service_account';
  project_id: string;
  private_key_id: string;
  private_key: string;
  client_email: string;
  client_id: string;
  token_uri: string;
}

interface StoredObject {
  name: string;
  data: Buffer;
  generation: string;
  md5: string | undefined;
  crc32c: string;
  updated: string;
  contentType: string;
}

interface Bucket {
  public: boolean;
  readers: Set<string> | undefined;
  objects: Map<string, StoredObject>;
}

export interface RequestRecord {
  method: string;
  path: string;
  query: URLSearchParams;
  range: string | undefined;
  authorized: boolean;
}

export interface GcsDouble {
  /** `http://127.0.0.1:PORT` (what STORAGE_EMULATOR_HOST or apiEndpoint takes). */
  readonly url: string;
  readonly port: number;
  /** The token endpoint service-account keys made here point at. */
  readonly tokenUri: string;
  readonly requests: RequestRecord[];
  /** Tokens issued by /token and the metadata server. */
  tokensIssued: number;
  createBucket(name: string, options?: { public?: boolean; readers?: string[] }): void;
  /** Stores an object; `composite` objects have a crc32c but no md5, as in GCS. */
  putObject(bucket: string, name: string, data: Buffer, options?: { composite?: boolean; contentType?: string }): StoredObject;
  /** A key this double trusts (signed JWTs verify against its public key). */
  createServiceAccount(email?: string): ServiceAccountKey;
  /** A well-formed key the double has never seen (its JWTs are refused). */
  unknownServiceAccount(email?: string): ServiceAccountKey;
  /** The next media read of this object has one byte flipped. */
  corruptNextRead(bucket: string, name: string): void;
  stop(): Promise<void>;
}

const b64 = (data: Buffer): string => data.toString('base64');

function crc32cBase64(data: Buffer): string {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(crc32c(data) >>> 0);
  return b64(out);
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function sendError(res: ServerResponse, code: number, message: string, reason: string, extra: Record<string, string> = {}): void {
  sendJson(res, code, { error: { code, message, errors: [{ message, domain: 'global', reason, ...extra }] } },
    code === 401 ? { 'www-authenticate': 'Bearer realm="https://accounts.google.com/"' } : {});
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Parses `bytes=a-b`, `bytes=a-`, `bytes=-n` against a size: [start, endInclusive], 'unsatisfiable', or undefined (ignored). */
function parseRange(header: string | undefined, size: number): [number, number] | 'unsatisfiable' | undefined {
  const m = header === undefined ? null : /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (m === null) return undefined;
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return undefined;
  if (a === '') {
    const n = Number(b);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return [Math.max(0, size - n), size - 1];
  }
  const start = Number(a);
  if (start >= size) return 'unsatisfiable';
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  return end < start ? undefined : [start, end];
}

function newKeyPair(email: string, tokenUri: string): { key: ServiceAccountKey; publicKey: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const key: ServiceAccountKey = {
    type: 'service_account', project_id: 'double-project', private_key_id: randomBytes(20).toString('hex'),
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), client_email: email,
    client_id: String(100000000000000000000n + BigInt(randomBytes(6).readUIntBE(0, 6))), token_uri: tokenUri,
  };
  return { key, publicKey };
}

export async function startGcsDouble(options: { metadata?: boolean; tokenLifetimeSeconds?: number } = {}): Promise<GcsDouble> {
  const buckets = new Map<string, Bucket>();
  const publicKeys = new Map<string, KeyObject>();
  const tokens = new Map<string, string>(); // access token -> account email
  const corrupt = new Set<string>();
  let generation = 1_700_000_000_000_000;
  let url = '';

  const issueToken = (email: string): Record<string, unknown> => {
    const token = `ya29.double-${randomBytes(24).toString('base64url')}`;
    tokens.set(token, email);
    double.tokensIssued++;
    return { access_token: token, expires_in: options.tokenLifetimeSeconds ?? 3599, token_type: 'Bearer' };
  };

  const resource = (bucket: string, o: StoredObject): Record<string, unknown> => ({
    kind: 'storage#object', id: `${bucket}/${o.name}/${o.generation}`,
    selfLink: `${url}/storage/v1/b/${bucket}/o/${encodeURIComponent(o.name)}`,
    mediaLink: `${url}/download/storage/v1/b/${bucket}/o/${encodeURIComponent(o.name)}?generation=${o.generation}&alt=media`,
    name: o.name, bucket, generation: o.generation, metageneration: '1', contentType: o.contentType,
    storageClass: 'STANDARD', size: String(o.data.length), crc32c: o.crc32c, etag: `C${o.generation.slice(-8)}EAE=`,
    timeCreated: o.updated, updated: o.updated, timeStorageClassUpdated: o.updated,
    ...(o.md5 === undefined ? { componentCount: 2 } : { md5Hash: o.md5 }),
  });

  const handleToken = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const form = new URLSearchParams((await readBody(req)).toString('utf8'));
    const oauthError = (error: string, description: string): void => { sendJson(res, 400, { error, error_description: description }); };
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') { oauthError('unsupported_grant_type', 'Invalid grant_type'); return; }
    const parts = (form.get('assertion') ?? '').split('.');
    let header: Record<string, unknown>;
    let claims: Record<string, unknown>;
    try {
      header = JSON.parse(Buffer.from(parts[0] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
      claims = JSON.parse(Buffer.from(parts[1] ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
    } catch { oauthError('invalid_request', 'Invalid JWT'); return; }
    if (parts.length !== 3 || header.alg !== 'RS256') { oauthError('invalid_request', 'Invalid JWT: unsupported algorithm'); return; }
    const publicKey = typeof claims.iss === 'string' ? publicKeys.get(claims.iss) : undefined;
    if (publicKey === undefined) { oauthError('invalid_grant', 'Invalid grant: account not found'); return; }
    const signed = createVerify('RSA-SHA256').update(`${parts[0] ?? ''}.${parts[1] ?? ''}`).verify(publicKey, Buffer.from(parts[2] ?? '', 'base64url'));
    if (!signed) { oauthError('invalid_grant', 'Invalid JWT Signature.'); return; }
    const now = Date.now() / 1000;
    if (claims.aud !== `${url}/token`) { oauthError('invalid_grant', 'Invalid JWT: audience is not this token endpoint'); return; }
    if (typeof claims.iat !== 'number' || typeof claims.exp !== 'number' || claims.exp - claims.iat > 3600 || claims.exp < now || claims.iat > now + 300) {
      oauthError('invalid_grant', 'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.'); return;
    }
    const scopes = typeof claims.scope === 'string' ? claims.scope.split(' ') : [];
    if (!scopes.some((s) => STORAGE_SCOPES.includes(s))) { oauthError('invalid_scope', 'Invalid OAuth scope or ID token audience provided.'); return; }
    sendJson(res, 200, issueToken(claims.iss as string));
  };

  const handleMetadata = (req: IncomingMessage, res: ServerResponse, path: string): void => {
    if (options.metadata !== true) { res.writeHead(404).end(); return; }
    if (req.headers['metadata-flavor'] !== 'Google') { res.writeHead(403).end('Missing Metadata-Flavor:Google header.'); return; }
    const flavor = { 'metadata-flavor': 'Google' };
    if (path === '/computeMetadata/v1/instance/service-accounts/default/token') { sendJson(res, 200, issueToken('workload@double-project.iam.gserviceaccount.com'), flavor); return; }
    if (path === '/computeMetadata/v1/project/project-id') { res.writeHead(200, { ...flavor, 'content-type': 'application/text' }).end('double-project'); return; }
    if (path === '/computeMetadata/v1/instance' || path === '/computeMetadata/v1/instance/') { res.writeHead(200, { ...flavor, 'content-type': 'application/text' }).end('attributes/\nservice-accounts/\n'); return; }
    res.writeHead(404, flavor).end();
  };

  const sendMedia = (req: IncomingMessage, res: ServerResponse, bucketName: string, o: StoredObject): void => {
    const size = o.data.length;
    const headers: Record<string, string> = {
      'content-type': o.contentType, 'accept-ranges': 'bytes', etag: `"${o.generation}"`,
      'x-goog-generation': o.generation, 'x-goog-metageneration': '1', 'x-goog-stored-content-length': String(size),
      'x-goog-stored-content-encoding': 'identity', 'x-goog-storage-class': 'STANDARD',
      'x-goog-hash': o.md5 === undefined ? `crc32c=${o.crc32c}` : `crc32c=${o.crc32c},md5=${o.md5}`,
    };
    const range = parseRange(req.headers.range, size);
    if (range === 'unsatisfiable') {
      sendJson(res, 416, { error: { code: 416, message: 'The requested range cannot be satisfied.', errors: [{ message: 'The requested range cannot be satisfied.', domain: 'global', reason: 'requestedRangeNotSatisfiable' }] } },
        { 'content-range': `bytes */${size}` });
      return;
    }
    let body = range === undefined ? o.data : o.data.subarray(range[0], range[1] + 1);
    if (corrupt.delete(`${bucketName}/${o.name}`) && body.length > 0) {
      body = Buffer.from(body);
      const i = Math.floor(body.length / 2);
      body[i] = (body[i] ?? 0) ^ 0xff;
    }
    if (range !== undefined) headers['content-range'] = `bytes ${range[0]}-${range[1]}/${size}`;
    res.writeHead(range === undefined ? 200 : 206, { ...headers, 'content-length': String(body.length) });
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  const list = (res: ServerResponse, bucketName: string, bucket: Bucket, q: URLSearchParams): void => {
    const prefix = q.get('prefix') ?? '';
    const delimiter = q.get('delimiter') ?? '';
    const max = Math.min(Math.max(Number(q.get('maxResults') ?? 1000) || 1000, 1), 1000);
    const after = q.get('pageToken') === null ? undefined : Buffer.from(q.get('pageToken') ?? '', 'base64url').toString('utf8');
    const names = [...bucket.objects.keys()].filter((n) => n.startsWith(prefix))
      .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const items: Record<string, unknown>[] = [];
    const prefixes: string[] = [];
    let last: string | undefined;
    let more = false;
    for (const name of names) {
      const cut = delimiter === '' ? -1 : name.indexOf(delimiter, prefix.length);
      const entry = cut === -1 ? name : name.slice(0, cut + delimiter.length);
      if (after !== undefined && Buffer.compare(Buffer.from(entry), Buffer.from(after)) <= 0) continue;
      if (entry === last) continue;
      if (items.length + prefixes.length >= max) { more = true; break; }
      const o = bucket.objects.get(name);
      if (cut === -1 && o !== undefined) items.push(resource(bucketName, o));
      else prefixes.push(entry);
      last = entry;
    }
    const page: Record<string, unknown> = { kind: 'storage#objects' };
    if (more && last !== undefined) page.nextPageToken = Buffer.from(last).toString('base64url');
    if (prefixes.length > 0) page.prefixes = prefixes;
    if (items.length > 0) page.items = items;
    sendJson(res, 200, page);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const raw = req.url ?? '/';
    const q = new URL(raw, 'http://x').searchParams;
    const path = raw.split('?')[0] ?? '/';
    const auth = req.headers.authorization;
    const bearer = auth?.startsWith('Bearer ') === true ? auth.slice(7) : undefined;
    const account = bearer === undefined ? undefined : tokens.get(bearer);
    double.requests.push({ method: req.method ?? 'GET', path: decodeURIComponent(path), query: q, range: req.headers.range, authorized: account !== undefined });

    if (req.method === 'POST' && path === '/token') { await handleToken(req, res); return; }
    if (path.startsWith('/computeMetadata/')) { handleMetadata(req, res, path); return; }
    const m = /^\/(?:(upload|download)\/)?storage\/v1\/b\/([^/]+)(?:\/o(?:\/(.+))?)?$/.exec(path);
    if (m === null) { sendError(res, 404, 'Not Found', 'notFound'); return; }
    const [, kind, rawBucket = '', rawName] = m;
    const bucketName = decodeURIComponent(rawBucket);
    if (bearer !== undefined && account === undefined) { sendError(res, 401, 'Invalid Credentials', 'authError', { locationType: 'header', location: 'Authorization' }); return; }
    const bucket = buckets.get(bucketName);
    if (bucket === undefined) { sendError(res, 404, 'The specified bucket does not exist.', 'notFound'); return; }
    const permission = req.method === 'POST' ? 'storage.objects.create' : rawName === undefined && path.includes('/o') ? 'storage.objects.list' : 'storage.objects.get';
    if (account === undefined && !(bucket.public && req.method !== 'POST')) {
      sendError(res, 401, `Anonymous caller does not have ${permission} access to the Google Cloud Storage bucket. Permission '${permission}' denied on resource (or it may not exist).`, 'required', { locationType: 'header', location: 'Authorization' });
      return;
    }
    if (account !== undefined && bucket.readers !== undefined && !bucket.readers.has(account)) {
      sendError(res, 403, `${account} does not have ${permission} access to the Google Cloud Storage bucket. Permission '${permission}' denied on resource (or it may not exist).`, 'forbidden');
      return;
    }
    if (req.method === 'POST' && kind === 'upload' && rawName === undefined) {
      const name = q.get('name');
      if (q.get('uploadType') !== 'media' || name === null) { sendError(res, 400, 'Only uploadType=media with a name is supported by this double', 'invalid'); return; }
      sendJson(res, 200, resource(bucketName, double.putObject(bucketName, name, await readBody(req), { contentType: req.headers['content-type'] ?? 'application/octet-stream' })));
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') { sendError(res, 405, 'Method not allowed', 'methodNotAllowed'); return; }
    if (rawName === undefined) {
      if (path.endsWith('/o')) list(res, bucketName, bucket, q);
      else sendJson(res, 200, { kind: 'storage#bucket', id: bucketName, name: bucketName, location: 'US', storageClass: 'STANDARD', metageneration: '1' });
      return;
    }
    const name = decodeURIComponent(rawName);
    const o = bucket.objects.get(name);
    const wanted = q.get('generation');
    if (o === undefined || (wanted !== null && wanted !== o.generation)) { sendError(res, 404, `No such object: ${bucketName}/${name}`, 'notFound'); return; }
    if (q.get('alt') === 'media' || kind === 'download') sendMedia(req, res, bucketName, o);
    else sendJson(res, 200, resource(bucketName, o));
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => { if (!res.headersSent) sendError(res, 500, String(err), 'backendError'); else res.destroy(); });
  });
  const port = await listenOnLoopback(server);
  url = `http://127.0.0.1:${port}`;

  const double: GcsDouble = {
    url, port, tokenUri: `${url}/token`, requests: [], tokensIssued: 0,
    createBucket(name, opts = {}) {
      buckets.set(name, { public: opts.public ?? false, readers: opts.readers === undefined ? undefined : new Set(opts.readers), objects: new Map() });
    },
    putObject(bucketName, name, data, opts = {}) {
      const bucket = buckets.get(bucketName);
      if (bucket === undefined) throw new Error(`no bucket ${bucketName}`);
      const o: StoredObject = {
        name, data: Buffer.from(data), generation: String(++generation), crc32c: crc32cBase64(data),
        md5: opts.composite === true ? undefined : b64(createHash('md5').update(data).digest()),
        updated: new Date().toISOString(), contentType: opts.contentType ?? 'application/octet-stream',
      };
      bucket.objects.set(name, o);
      return o;
    },
    createServiceAccount(email = `loader-${randomBytes(3).toString('hex')}@double-project.iam.gserviceaccount.com`) {
      const { key, publicKey } = newKeyPair(email, `${url}/token`);
      publicKeys.set(email, publicKey);
      return key;
    },
    unknownServiceAccount(email = 'stranger@other-project.iam.gserviceaccount.com') {
      return newKeyPair(email, `${url}/token`).key;
    },
    corruptNextRead(bucketName, name) { corrupt.add(`${bucketName}/${name}`); },
    stop: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => { resolve(); }); }),
  };
  return double;
}
