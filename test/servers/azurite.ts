// Azurite (Microsoft's Azure Storage emulator) blob service as a child process, in memory, on a
// free 127.0.0.1 port; plus fixture helpers that use the official SDK to create containers and
// upload trees (with Content-MD5 set, so downloads are verified against it).
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BlobServiceClient, StorageSharedKeyCredential, type PublicAccessType } from '@azure/storage-blob';
import type { Tree } from '../helpers/tree.js';
import { exited, killChild, killProcess, track } from './children.js';
import { freePort, retryOnPortClash } from './ports.js';

/** The emulator's well-known development account (public, documented by Microsoft). */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
/** A valid base64 key that is not the account's: the server must refuse it. */
export const WRONG_KEY = Buffer.alloc(64, 7).toString('base64');

export interface AzuriteServer {
  /** `http://127.0.0.1:PORT/devstoreaccount1` (what AZURE_STORAGE_BLOB_ENDPOINT takes). */
  readonly blobEndpoint: string;
  readonly port: number;
  readonly pid: number;
  /** A service client signed with the account key, for fixtures. */
  readonly service: BlobServiceClient;
  /** Creates a container (`access`: undefined private, 'blob' or 'container' public) and uploads the tree into it. */
  createContainer(name: string, tree: Tree, access?: PublicAccessType): Promise<void>;
  /** SIGTERM (SIGKILL after 5 s) this child only, wait for its exit. Idempotent. */
  stop(): Promise<void>;
}

const MAIN = resolve('node_modules/azurite/dist/src/blob/main.js');

/** Any HTTP answer (Azurite says 400/403 to a bare GET) means it is listening. */
function answers(port: number): Promise<boolean> {
  return new Promise((done) => {
    const req = request({ host: '127.0.0.1', port, path: `/${AZURITE_ACCOUNT}?comp=list`, timeout: 1000, agent: false }, (res) => {
      res.resume();
      done(true);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => { done(false); });
    req.end();
  });
}

export async function uploadTree(service: BlobServiceClient, container: string, tree: Tree): Promise<void> {
  const client = service.getContainerClient(container);
  const entries = [...tree];
  // Parallel in small batches: the conformance fixture has over a thousand objects.
  for (let i = 0; i < entries.length; i += 64) {
    await Promise.all(entries.slice(i, i + 64).map(async ([key, content]) => {
      const md5 = createHash('md5').update(content).digest();
      await client.getBlockBlobClient(key).uploadData(content, { blobHTTPHeaders: { blobContentMD5: md5 } });
    }));
  }
}

async function startOnce(): Promise<AzuriteServer> {
  const port = await freePort();
  // --inMemoryPersistence refuses --location; the working directory is a throwaway in case anything is written.
  const cwd = await mkdtemp(join(tmpdir(), 'azurite-'));
  const child = spawn(process.execPath, [
    MAIN, '--blobHost', '127.0.0.1', '--blobPort', String(port), '--silent', '--disableTelemetry', '--skipApiVersionCheck', '--inMemoryPersistence',
  ], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const append = (chunk: Buffer): void => { output = (output + chunk.toString('utf8')).slice(-20_000); };
  child.stdout.on('data', append);
  child.stderr.on('data', append);
  track(child, killProcess); // not detached: signal azurite alone
  try {
    const deadline = Date.now() + 20_000;
    while (!(await answers(port))) {
      if (exited(child)) throw new Error(`azurite exited (${String(child.exitCode ?? child.signalCode)}):\n${output}`);
      if (Date.now() > deadline) throw new Error(`azurite did not answer on port ${port}:\n${output}`);
      await sleep(50);
    }
  } catch (err) {
    await killChild(child, killProcess);
    await rm(cwd, { recursive: true, force: true });
    throw err;
  }
  const blobEndpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  const service = new BlobServiceClient(blobEndpoint, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY));
  let stopping: Promise<void> | undefined;
  return {
    blobEndpoint,
    port,
    pid: child.pid ?? -1,
    service,
    async createContainer(name, tree, access) {
      await service.getContainerClient(name).create(access === undefined ? {} : { access });
      await uploadTree(service, name, tree);
    },
    stop() {
      stopping ??= (async () => {
        await killChild(child, killProcess);
        await rm(cwd, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
}

/** Starts Azurite's blob service; retries with a new port if another process took the first. */
export function startAzurite(): Promise<AzuriteServer> {
  return retryOnPortClash(startOnce, /EADDRINUSE/);
}
