/**
 * Git LFS after checkout: pointer files (`version https://git-lfs.github.com/spec/v1`, `oid
 * sha256:...`, `size N`) are resolved through the LFS batch API (`POST <repo>.git/info/lfs/objects/batch`,
 * operation download, transfer basic), each object is streamed next to its pointer, verified by size
 * and sha256, and renamed over it, so a file is either the pointer or the whole verified object.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { lstat, open, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { request, type Dispatcher } from 'undici';
import { authFailed, describeError, forbidden, integrity, network, notFound, StorageError } from '../errors.js';
import type { Logger } from '../log.js';
import { discardBody, httpRequest } from '../net/http-client.js';
import { eachConcurrently } from '../transfer/each-concurrently.js';

const POINTER_MAX_BYTES = 1024;
const POINTER = /^version https:\/\/git-lfs\.github\.com\/spec\/v1\n(?:[a-z0-9.-]+ [^\n]*\n)*$/;
const BATCH_SIZE = 100;
const CONCURRENCY = 4;

export interface LfsPointer {
  /** Absolute path of the pointer file. */
  file: string;
  oid: string;
  size: number;
}

export interface LfsContext {
  /** The repository URL without credentials (`https://host/org/repo.git`). */
  repoUrl: string;
  displayUri: string;
  dispatcher: Dispatcher;
  /** `Basic ...` when credentials are known; sent to the LFS server of the same origin only. */
  authorization: string | undefined;
  log: Logger;
  signal: AbortSignal;
}

export function parsePointer(text: string): { oid: string; size: number } | undefined {
  if (!POINTER.test(text)) return undefined;
  const oid = /^oid sha256:([0-9a-f]{64})$/m.exec(text)?.[1];
  const size = /^size ([0-9]{1,15})$/m.exec(text)?.[1];
  return oid === undefined || size === undefined ? undefined : { oid, size: Number(size) };
}

/** Every LFS pointer file under root (the `.git` directory skipped, links not followed). */
export async function findPointers(root: string): Promise<LfsPointer[]> {
  const found: LfsPointer[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory() && !(dir === root && entry.name === '.git')) await walk(full);
      if (!entry.isFile()) continue;
      const info = await lstat(full);
      if (info.size >= POINTER_MAX_BYTES || info.size < 40) continue;
      const handle = await open(full, 'r');
      try {
        const pointer = parsePointer((await handle.readFile()).toString('utf8'));
        if (pointer !== undefined) found.push({ file: full, ...pointer });
      } finally {
        await handle.close();
      }
    }
  };
  await walk(root);
  return found;
}

interface BatchAnswer {
  objects?: {
    oid: string;
    size: number;
    actions?: { download?: { href: string; header?: Record<string, string> } };
    error?: { code: number; message: string };
  }[];
  message?: string;
}

function lfsEndpoint(repoUrl: string): string {
  const base = repoUrl.replace(/\/+$/, '');
  return `${base.endsWith('.git') ? base : `${base}.git`}/info/lfs`;
}

async function batch(pointers: readonly LfsPointer[], ctx: LfsContext): Promise<BatchAnswer> {
  const url = `${lfsEndpoint(ctx.repoUrl)}/objects/batch`;
  const body = JSON.stringify({
    operation: 'download', transfers: ['basic'], hash_algo: 'sha256',
    objects: pointers.map(({ oid, size }) => ({ oid, size })),
  });
  let response: Dispatcher.ResponseData;
  try {
    response = await request(url, {
      dispatcher: ctx.dispatcher, method: 'POST', body, signal: ctx.signal,
      headers: {
        accept: 'application/vnd.git-lfs+json', 'content-type': 'application/vnd.git-lfs+json',
        ...(ctx.authorization === undefined ? {} : { authorization: ctx.authorization }),
      },
    });
  } catch (err) {
    throw network(`Git LFS batch request for ${ctx.displayUri} failed: ${describeError(err)}`, { cause: err });
  }
  const status = response.statusCode;
  if (status !== 200) {
    discardBody(response.body);
    const where = `Git LFS batch API of ${ctx.displayUri}`;
    if (status === 401) throw authFailed(`${where}: authentication failed (HTTP 401). Verify GIT_USERNAME/GIT_PASSWORD.`);
    if (status === 403) throw forbidden(`${where}: access denied (HTTP 403).`);
    if (status === 404) throw notFound(`${where}: not found (HTTP 404); the server may not support Git LFS.`);
    throw network(`${where} answered HTTP ${String(status)}`, { retryable: status >= 500 || status === 429 });
  }
  try {
    return (await response.body.json()) as BatchAnswer;
  } catch (err) {
    throw network(`Git LFS batch API of ${ctx.displayUri} sent an invalid answer: ${describeError(err)}`, { cause: err });
  }
}

async function download(pointer: LfsPointer, href: string, header: Record<string, string>, ctx: LfsContext): Promise<void> {
  const shown = path.basename(pointer.file);
  const url = new URL(href);
  const sameOrigin = url.origin === new URL(ctx.repoUrl).origin;
  const hasAuth = Object.keys(header).some((name) => name.toLowerCase() === 'authorization');
  const originHeaders = { ...header, ...(!hasAuth && sameOrigin && ctx.authorization !== undefined ? { authorization: ctx.authorization } : {}) };
  const response = await httpRequest(ctx.dispatcher, url, { originHeaders, signal: ctx.signal }, 'Git LFS', `object of ${shown}`);
  if (response.statusCode !== 200) {
    discardBody(response.body);
    const message = `Git LFS download of ${shown} (${ctx.displayUri}) failed: HTTP ${String(response.statusCode)}`;
    if (response.statusCode === 401) throw authFailed(message);
    if (response.statusCode === 403) throw forbidden(message);
    if (response.statusCode === 404) throw notFound(message);
    throw network(message, { retryable: response.statusCode >= 500 });
  }
  const part = `${pointer.file}.lfs-${randomBytes(4).toString('hex')}.part`;
  const hash = createHash('sha256');
  let bytes = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      hash.update(chunk);
      if (bytes > pointer.size) { done(integrity(`Git LFS object for ${shown} is larger than its pointer's ${String(pointer.size)} bytes`)); return; }
      done(null, chunk);
    },
  });
  try {
    const mode = (await lstat(pointer.file)).mode & 0o777;
    await pipeline(response.body, meter, createWriteStream(part, { mode }), { signal: ctx.signal });
    if (bytes !== pointer.size) throw integrity(`Git LFS object for ${shown} has ${String(bytes)} bytes, its pointer says ${String(pointer.size)}`, { retryable: true });
    const digest = hash.digest('hex');
    if (digest !== pointer.oid) throw integrity(`Git LFS object for ${shown} has sha256 ${digest}, its pointer says ${pointer.oid}`);
    await rename(part, pointer.file);
  } catch (err) {
    await rm(part, { force: true });
    if (err instanceof StorageError) throw err;
    throw network(`Git LFS download of ${shown} (${ctx.displayUri}) failed: ${describeError(err)}`, { cause: err });
  }
}

/** Replaces every pointer by its verified object. Returns the bytes fetched. */
export async function fetchLfsObjects(pointers: readonly LfsPointer[], ctx: LfsContext): Promise<number> {
  let fetched = 0;
  for (let i = 0; i < pointers.length; i += BATCH_SIZE) {
    const group = pointers.slice(i, i + BATCH_SIZE);
    const answer = await batch(group, ctx);
    const byOid = new Map((answer.objects ?? []).map((o) => [o.oid, o]));
    await eachConcurrently(group, CONCURRENCY, async (pointer) => {
      const object = byOid.get(pointer.oid);
      const shown = path.basename(pointer.file);
      if (object?.error !== undefined) {
        const message = `Git LFS object for ${shown} (${ctx.displayUri}) is not available: ${object.error.message}`;
        throw object.error.code === 404 || object.error.code === 410 ? notFound(message) : network(message, { retryable: false });
      }
      const action = object?.actions?.download;
      if (action === undefined) throw notFound(`Git LFS server gave no download for ${shown} (${ctx.displayUri})`);
      await download(pointer, action.href, action.header ?? {}, ctx);
      fetched += pointer.size;
      ctx.log.debug(`fetched Git LFS object ${pointer.oid} for ${shown}`, { bytes: pointer.size });
    });
  }
  return fetched;
}
