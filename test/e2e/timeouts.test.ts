/**
 * Timeouts reach every backend's client. Two stalls, each against every source's CLI invocation:
 *  - a server that accepts the connection and never answers (the listing/metadata phase hangs):
 *    the idle-read timeout (STORAGE_INITIALIZER_READ_TIMEOUT, S3_READ_TIMEOUT for S3) must end it;
 *  - a connect that never completes: a listening socket whose accept queue is full, so the kernel
 *    drops further SYNs. Node always accepts, so the listener is a tiny python3 process that never
 *    calls accept(). (An unroutable address does not work in every sandbox: some answer at once.)
 *    The connect timeout (STORAGE_INITIALIZER_CONNECT_TIMEOUT, S3_CONNECT_TIMEOUT) must end it.
 * Each run must exit 1 with one error line naming the timeout and the variable to raise. There is
 * no timing assertion beyond the hang guard of runCli.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { failsWith, runCli } from '../helpers/cli.js';
import { skipWithout } from '../helpers/system.js';
import { freshDest, tempDir } from '../helpers/tree.js';
import { listenOnLoopback } from '../servers/ports.js';

/** Generous: with 1 s timeouts and one attempt, every case ends in a few seconds. */
const HANG_GUARD_MS = 30_000;
const PYTHON_BLACKHOLE = [
  'import socket, sys, time',
  's = socket.socket()',
  "s.bind(('127.0.0.1', 0))",
  's.listen(0)',
  'print(s.getsockname()[1], flush=True)',
  'sys.stdin.read()',
].join('\n');

interface Silent { port: number; server: Server; sockets: Set<Socket> }

/** Accepts every connection and never writes a byte (nor closes). */
async function startSilentServer(): Promise<Silent> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  return { port: await listenOnLoopback(server), server, sockets };
}

interface Blackhole { port: number; child: ChildProcess; held: Socket[] }

/** A listener whose accept queue is full: a further connect sends SYNs that are never answered. */
async function startBlackhole(): Promise<Blackhole> {
  const child = spawn('python3', ['-c', PYTHON_BLACKHOLE], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.stdout.setEncoding('utf8').once('data', (line: string) => { resolve(Number(line.trim())); });
  });
  // Fill the queue (backlog 0 still queues one or two): connect until one does not complete.
  const held: Socket[] = [];
  for (let i = 0; i < 8; i++) {
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('error', () => undefined);
    held.push(socket);
    const connected = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => { resolve(false); }, 500);
      socket.once('connect', () => { clearTimeout(timer); resolve(true); });
    });
    if (!connected) return { port, child, held };
  }
  throw new Error('the accept queue never filled; connects to it would not stall');
}

/** How to point each source at 127.0.0.1:PORT, and which variables govern its timeouts. */
interface Case {
  source: string;
  uri(port: number): string;
  env(port: number): Promise<Record<string, string>> | Record<string, string>;
  connectVar: string;
  readVar: string;
}

describe('timeouts reach every backend (CLI against stalled servers)', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let silent: Silent;
  let blackhole: Blackhole | undefined;
  const python = skipWithout('python3');

  before(async () => {
    work = await tempDir('si-timeouts-');
    silent = await startSilentServer();
    if (python === false) blackhole = await startBlackhole();
  });

  after(async () => {
    for (const socket of silent.sockets) socket.destroy();
    silent.server.close();
    if (blackhole !== undefined) {
      for (const socket of blackhole.held) socket.destroy();
      blackhole.child.kill('SIGKILL');
    }
    await work[Symbol.asyncDispose]();
  });

  const hdfsSecretDir = async (port: number): Promise<string> => {
    const dir = path.join(work.dir, 'hdfs', String(port));
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'HDFS_NAMENODE'), `http://127.0.0.1:${port}`);
    return dir;
  };
  const noDockerConfig = (): string => path.join(work.dir, 'no-docker-config.json');

  const cases: Case[] = [
    { source: 'http', uri: (p) => `http://127.0.0.1:${p}/model.bin`, env: () => ({}), connectVar: 'STORAGE_INITIALIZER_CONNECT_TIMEOUT', readVar: 'STORAGE_INITIALIZER_READ_TIMEOUT' },
    {
      source: 's3', uri: () => 's3://bucket/models', connectVar: 'S3_CONNECT_TIMEOUT', readVar: 'S3_READ_TIMEOUT',
      env: (p) => ({ AWS_ENDPOINT_URL: `http://127.0.0.1:${p}`, AWS_ACCESS_KEY_ID: 'AKIDTIMEOUT', AWS_SECRET_ACCESS_KEY: 'timeout-secret', AWS_REGION: 'us-east-1' }),
    },
    {
      source: 'gcs', uri: () => 'gs://bucket/models', connectVar: 'STORAGE_INITIALIZER_CONNECT_TIMEOUT', readVar: 'STORAGE_INITIALIZER_READ_TIMEOUT',
      env: (p) => ({ STORAGE_EMULATOR_HOST: `http://127.0.0.1:${p}`, GCE_METADATA_HOST: `127.0.0.1:${p}`, CLOUDSDK_CONFIG: path.join(work.dir, 'gcloud') }),
    },
    {
      source: 'azure-blob', uri: () => 'https://devstoreaccount1.blob.core.windows.net/models/model', connectVar: 'STORAGE_INITIALIZER_CONNECT_TIMEOUT', readVar: 'STORAGE_INITIALIZER_READ_TIMEOUT',
      env: (p) => ({ AZURE_STORAGE_BLOB_ENDPOINT: `http://127.0.0.1:${p}/devstoreaccount1` }),
    },
    {
      source: 'azure-file', uri: () => 'https://devstoreaccount1.file.core.windows.net/models/model', connectVar: 'STORAGE_INITIALIZER_CONNECT_TIMEOUT', readVar: 'STORAGE_INITIALIZER_READ_TIMEOUT',
      env: (p) => ({ AZURE_STORAGE_FILE_ENDPOINT: `http://127.0.0.1:${p}/devstoreaccount1` }),
    },
    { source: 'huggingface', uri: () => 'hf://org/model', env: (p) => ({ HF_ENDPOINT: `http://127.0.0.1:${p}` }), connectVar: 'STORAGE_INITIALIZER_CONNECT_TIMEOUT', readVar: 'STORAGE_INITIALIZER_READ_TIMEOUT' },
    { source: 'modelscope', uri: () => 'modelscope://org/model', env: (p) => ({ MODELSCOPE_ENDPOINT: `http://127.0.0.1:${p}` }), connectVar: 'STORAGE_INITIALIZER_CONNECT_TIMEOUT', readVar: 'STORAGE_INITIALIZER_READ_TIMEOUT' },
    {
      source: 'webhdfs', uri: () => 'hdfs:///user/models', connectVar: 'STORAGE_INITIALIZER_CONNECT_TIMEOUT', readVar: 'STORAGE_INITIALIZER_READ_TIMEOUT',
      env: async (p) => ({ HDFS_SECRET_DIR: await hdfsSecretDir(p) }),
    },
    { source: 'git-http', uri: (p) => `http://127.0.0.1:${p}/repo.git`, env: () => ({}), connectVar: 'STORAGE_INITIALIZER_CONNECT_TIMEOUT', readVar: 'STORAGE_INITIALIZER_READ_TIMEOUT' },
    { source: 'git-daemon', uri: (p) => `git://127.0.0.1:${p}/repo`, env: () => ({}), connectVar: 'STORAGE_INITIALIZER_CONNECT_TIMEOUT', readVar: 'STORAGE_INITIALIZER_READ_TIMEOUT' },
    {
      source: 'oci', uri: (p) => `oci://127.0.0.1:${p}/org/model:v1`, connectVar: 'STORAGE_INITIALIZER_CONNECT_TIMEOUT', readVar: 'STORAGE_INITIALIZER_READ_TIMEOUT',
      env: (p) => ({ KSERVE_OCI_INSECURE_REGISTRY: `127.0.0.1:${p}`, KSERVE_OCI_DOCKER_CONFIG: noDockerConfig() }),
    },
  ];

  /** 1 s timeouts and one attempt each, so a case ends quickly whichever layer retries. */
  const quick = (c: Case): Record<string, string> => ({
    STORAGE_INITIALIZER_CONNECT_TIMEOUT: '1', STORAGE_INITIALIZER_READ_TIMEOUT: '1', S3_CONNECT_TIMEOUT: '1', S3_READ_TIMEOUT: '1',
    STORAGE_INITIALIZER_MAX_ATTEMPTS: '1', S3_MAX_ATTEMPTS: '1', [c.connectVar]: '1', [c.readVar]: '1',
  });

  for (const c of cases) {
    it(`${c.source}: a server that accepts and never answers ends with the read timeout`, async () => {
      const dest = freshDest(work.dir);
      const result = await runCli([c.uri(silent.port), dest], { env: { ...quick(c), ...await c.env(silent.port) }, timeoutMs: HANG_GUARD_MS });
      assert.equal(result.signal, null, `hung: ${result.stderr}`);
      const line = failsWith(result, /time/i);
      assert.match(line, new RegExp(c.readVar), line);
    });

    it(`${c.source}: a connect that never completes ends with the connect timeout`, { skip: python }, async () => {
      assert.ok(blackhole !== undefined);
      const dest = freshDest(work.dir);
      const result = await runCli([c.uri(blackhole.port), dest], { env: { ...quick(c), ...await c.env(blackhole.port) }, timeoutMs: HANG_GUARD_MS });
      assert.equal(result.signal, null, `hung: ${result.stderr}`);
      const line = failsWith(result, /time/i);
      assert.match(line, new RegExp(c.connectVar), line);
    });
  }
});
