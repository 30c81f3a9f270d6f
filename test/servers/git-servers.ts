// Real git servers for the Git source: `git daemon` (git://) and `git http-backend` (smart HTTP) behind
// a small Node server, plus a Git LFS batch endpoint, over a fixture repository built with the git CLI.
//
// HTTP locations (`http://127.0.0.1:PORT`):
//   /git/<repo>/...                      smart HTTP, anonymous
//   /private/<repo>/...                  smart HTTP, Basic auth GIT_TEST_USER / GIT_TEST_PASSWORD (401 otherwise)
//   /{git,private}/<repo>/info/lfs/objects/batch   LFS batch API (download, basic transfer)
//   /lfs-objects/<oid>                   LFS object bytes; requires the header the batch answer names
//   /__ready                             204
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, listenOnLoopback } from './ports.js';

export const GIT_TEST_USER = 'modeluser';
export const GIT_TEST_PASSWORD = 'g1t-s3cret-pw';
const LFS_OBJECT_TOKEN = 'lfs-download-token-42';

export interface GitFixture {
  /** Files of the default branch (main), path -> bytes, the LFS file as its real content. */
  main: Map<string, Buffer>;
  /** Files at tag v1.0. */
  v1: Map<string, Buffer>;
  /** Path of the LFS-tracked file in main. */
  lfsPath: string;
}

export interface GitServers {
  /** `http://127.0.0.1:PORT` */
  httpUrl: string;
  /** `git://127.0.0.1:PORT` */
  daemonUrl: string;
  fixture: GitFixture;
  /** Requests the HTTP server saw, "METHOD path" (for assertions about LFS use). */
  requests: string[];
  stop(): Promise<void>;
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, env: { ...process.env, ...env }, timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

function bytes(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed * 2654435761 >>> 0;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 16;
  }
  return out;
}

/** Builds `<base>/models.git` (bare): v1.0 tag on the first commit, nested dirs, a binary, an LFS pointer. */
async function buildFixture(base: string, lfsObjects: Map<string, Buffer>): Promise<GitFixture> {
  const work = path.join(base, '..', 'work');
  await mkdir(work, { recursive: true });
  const env = {
    GIT_AUTHOR_NAME: 'Test', GIT_AUTHOR_EMAIL: 't@example.com', GIT_COMMITTER_NAME: 'Test', GIT_COMMITTER_EMAIL: 't@example.com',
    GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null',
  };
  const git = (...args: string[]): Promise<string> => run('git', args, work, env);
  const put = async (files: Map<string, Buffer>): Promise<void> => {
    for (const [rel, content] of files) {
      await mkdir(path.dirname(path.join(work, rel)), { recursive: true });
      await writeFile(path.join(work, rel), content);
    }
  };
  await git('init', '-q', '-b', 'main', '.');
  const v1 = new Map([['README.md', Buffer.from('version one\n')], ['config.json', Buffer.from('{"v":1}\n')]]);
  await put(v1);
  await git('add', '-A');
  await git('commit', '-q', '-m', 'v1');
  await git('tag', '-a', 'v1.0', '-m', 'release 1.0');

  const lfsContent = bytes(150_000, 7);
  const oid = createHash('sha256').update(lfsContent).digest('hex');
  lfsObjects.set(oid, lfsContent);
  const lfsPath = 'weights/model.safetensors';
  const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${oid}\nsize ${lfsContent.length}\n`;
  const main = new Map([
    ['README.md', Buffer.from('version two\n')],
    ['config.json', Buffer.from('{"v":2}\n')],
    ['deep/er/nested dir/file.txt', Buffer.from('nested\n')],
    ['bin/model.bin', bytes(300_000, 3)],
    ['.gitattributes', Buffer.from('*.safetensors filter=lfs diff=lfs merge=lfs -text\n')],
  ]);
  await put(main);
  await put(new Map([[lfsPath, Buffer.from(pointer)]]));
  await git('add', '-A');
  await git('commit', '-q', '-m', 'v2');
  await run('git', ['clone', '-q', '--bare', work, path.join(base, 'models.git')], base, env);
  main.set(lfsPath, lfsContent);
  return { main, v1, lfsPath };
}

function basicOk(req: IncomingMessage): boolean {
  const expected = `Basic ${Buffer.from(`${GIT_TEST_USER}:${GIT_TEST_PASSWORD}`).toString('base64')}`;
  return req.headers.authorization === expected;
}

/** Runs `git http-backend` as a CGI for one request; both bodies are piped, so backpressure holds. */
function cgi(req: IncomingMessage, res: ServerResponse, base: string, pathInfo: string, query: string): void {
  const child = spawn('git', ['http-backend'], {
    env: {
      PATH: process.env.PATH, GIT_PROJECT_ROOT: base, GIT_HTTP_EXPORT_ALL: '1', PATH_INFO: pathInfo, QUERY_STRING: query,
      REQUEST_METHOD: req.method ?? 'GET', CONTENT_TYPE: req.headers['content-type'] ?? '', REMOTE_ADDR: '127.0.0.1',
      ...(req.headers['content-length'] === undefined ? {} : { CONTENT_LENGTH: req.headers['content-length'] }),
      ...(typeof req.headers['git-protocol'] === 'string' ? { GIT_PROTOCOL: req.headers['git-protocol'] } : {}),
      ...(typeof req.headers['content-encoding'] === 'string' ? { HTTP_CONTENT_ENCODING: req.headers['content-encoding'] } : {}),
    },
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  req.pipe(child.stdin);
  child.stdin.on('error', () => undefined);
  let head = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    head = Buffer.concat([head, chunk]);
    const crlf = head.indexOf('\r\n\r\n');
    const lf = head.indexOf('\n\n');
    const end = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf + 4 : lf >= 0 ? lf + 2 : -1;
    if (end < 0) return;
    child.stdout.off('data', onData);
    let status = 200;
    const headers: Record<string, string> = {};
    for (const line of head.subarray(0, end).toString('latin1').split(/\r?\n/)) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim();
      const value = line.slice(colon + 1).trim();
      if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10);
      else headers[name] = value;
    }
    res.writeHead(status, headers);
    res.write(head.subarray(end));
    child.stdout.pipe(res);
  };
  child.stdout.on('data', onData);
  child.on('error', () => { res.destroy(); });
  child.on('close', () => { if (!res.headersSent) { res.writeHead(502); res.end(); } });
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function lfsBatch(req: IncomingMessage, res: ServerResponse, origin: string, objects: Map<string, Buffer>): void {
  readBody(req).then((text) => {
    const body = JSON.parse(text) as { operation?: string; objects?: { oid: string; size: number }[] };
    const answer = (body.objects ?? []).map(({ oid, size }) => {
      const content = objects.get(oid);
      if (content === undefined) return { oid, size, error: { code: 404, message: 'Object does not exist' } };
      return {
        oid, size: content.length, authenticated: true,
        actions: { download: { href: `${origin}/lfs-objects/${oid}`, header: { Authorization: `RemoteAuth ${LFS_OBJECT_TOKEN}` }, expires_in: 3600 } },
      };
    });
    res.writeHead(200, { 'content-type': 'application/vnd.git-lfs+json' });
    res.end(JSON.stringify({ transfer: 'basic', objects: answer, hash_algo: 'sha256' }));
  }, () => { res.destroy(); });
}

async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`git daemon exited with ${String(child.exitCode)}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => { socket.destroy(); resolve(true); });
      socket.on('error', () => { resolve(false); });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error('git daemon did not listen');
    await sleep(30);
  }
}

export async function startGitServers(): Promise<GitServers> {
  const root = await mkdtemp(path.join(tmpdir(), 'git-servers-'));
  const base = path.join(root, 'repos');
  await mkdir(base);
  const lfsObjects = new Map<string, Buffer>();
  const fixture = await buildFixture(base, lfsObjects);
  const requests: string[] = [];

  let origin = '';
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    requests.push(`${req.method ?? ''} ${url.pathname}`);
    if (url.pathname === '/__ready') { res.writeHead(204); res.end(); return; }
    const object = /^\/lfs-objects\/([0-9a-f]{64})$/.exec(url.pathname);
    if (object !== null) {
      const content = lfsObjects.get(object[1] ?? '');
      if (req.headers.authorization !== `RemoteAuth ${LFS_OBJECT_TOKEN}`) { res.writeHead(401); res.end(); return; }
      if (content === undefined) { res.writeHead(404); res.end(); return; }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': content.length });
      res.end(content);
      return;
    }
    const match = /^\/(git|private)(\/.*)$/.exec(url.pathname);
    if (match === null) { res.writeHead(404); res.end('not found\n'); return; }
    if (match[1] === 'private' && !basicOk(req)) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="git"' });
      res.end('authentication required\n');
      return;
    }
    const pathInfo = match[2] ?? '/';
    if (req.method === 'POST' && pathInfo.endsWith('/info/lfs/objects/batch')) { lfsBatch(req, res, origin, lfsObjects); return; }
    cgi(req, res, base, pathInfo, url.search.slice(1));
  });
  origin = `http://127.0.0.1:${await listenOnLoopback(server)}`;

  const daemonPort = await freePort();
  const daemon = spawn('git', ['daemon', '--export-all', '--reuseaddr', `--base-path=${base}`, '--listen=127.0.0.1', `--port=${daemonPort}`, base], {
    stdio: ['ignore', 'ignore', 'ignore'],
  });
  const killDaemon = (): void => { daemon.kill('SIGKILL'); };
  process.once('exit', killDaemon);
  await waitForPort(daemonPort, daemon);

  let stopping: Promise<void> | undefined;
  return {
    httpUrl: origin,
    daemonUrl: `git://127.0.0.1:${daemonPort}`,
    fixture,
    requests,
    stop: () => {
      stopping ??= (async () => {
        process.off('exit', killDaemon);
        const exited = new Promise((resolve) => { daemon.once('exit', resolve); });
        if (daemon.exitCode === null) { daemon.kill('SIGTERM'); await exited; }
        server.closeAllConnections();
        await new Promise((resolve) => { server.close(resolve); });
        await rm(root, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}
