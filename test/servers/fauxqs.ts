// fauxqs (npm, in-memory S3/SQS/SNS emulator) as a child process on 127.0.0.1, for fast S3 tests.
//
// Its CLI listens on 0.0.0.0, so the child runs a tiny inline ESM script that imports `buildApp`
// from fauxqs/dist/app.js (a Fastify app) and listens on 127.0.0.1 port 0; the child prints the
// port it got, so there is no free-port race. The child exits when its stdin closes, i.e. when
// this process dies without calling stop(). Start-up takes ~0.3 s.
//
// What fauxqs 1.9.2 does (seen here, with @aws-sdk/client-s3 3.1175):
// - No authentication at all: any credentials, a wrong secret, or no signature (anonymous) are
//   accepted for every bucket. It cannot express "anonymous access to a private bucket is
//   refused"; PutBucketAcl is routed to CreateBucket (answers 200, changes nothing) and
//   GetBucketAcl to ListObjects (the SDK parses it as an empty ACL).
// - Request body limit 11 MiB: bigger PutObject/UploadPart bodies get 413. Upload big fixtures
//   as multipart with 5-8 MiB parts (s3-fixtures.ts does).
// - aws-chunked (streaming SigV4 / trailing checksum) bodies are decoded.
// - ETag: quoted hex MD5 for single PUTs; `"<md5 of the concatenated binary part MD5s>-<n>"` for
//   multipart, as on AWS. The minimum part size is not enforced.
// - No flexible checksums: x-amz-checksum-* request headers are ignored, never stored, never
//   returned (not even with x-amz-checksum-mode: ENABLED). HeadObject/GetObject ignore partNumber.
// - Ranges: `bytes=a-b` (end clamped), `bytes=a-` and `bytes=-n` work; a suffix longer than the
//   object (`bytes=-100` on 11 bytes) gives 416 InvalidRange, where AWS and Swift answer 206 with
//   the whole object. Start beyond the end gives 416 with `Content-Range: bytes */size`.
// - ListObjectsV2 pagination works (MaxKeys, NextContinuationToken = base64 of the last key;
//   StartAfter, Delimiter/CommonPrefixes); EncodingType=url is ignored (keys are returned raw).
//   ListObjects (v1) with Marker/NextMarker works too.
// - LastModified in listings has millisecond precision; in HEAD/GET headers whole seconds.
// - Virtual-hosted addressing is rewritten from the Host header unless it is an IP or a
//   dot-less name, so 127.0.0.1 + forcePathStyle is the way to address it.
// - Content-Type defaults to application/octet-stream; x-amz-meta-* is kept.
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { exited, killChild, killGroup, track } from './children.js';

export interface FauxqsServer {
  /** `http://127.0.0.1:PORT` (no trailing slash). */
  readonly endpoint: string;
  readonly port: number;
  /** Process id of the child (the leader of its own process group). */
  readonly pid: number;
  /** SIGTERM the child's process group (SIGKILL after 5 s) and wait for it to exit. Idempotent. */
  stop(): Promise<void>;
}

export interface FauxqsOptions {
  /** How long to wait for the child to listen. Default 15 s. */
  readonly startTimeoutMs?: number;
}

// Runs in the child: argv[1] is the file URL of fauxqs/dist/app.js.
const CHILD_SCRIPT = `
const { buildApp } = await import(process.argv[1]);
const app = buildApp({ logger: false });
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
process.stdout.write('FAUXQS_LISTENING ' + address.port + '\\n');
let closing = false;
const shutdown = () => {
  if (closing) return;
  closing = true;
  app.close().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.stdin.on('end', shutdown);
process.stdin.on('error', shutdown);
process.stdin.resume();
`;

/** Starts fauxqs on a free 127.0.0.1 port and resolves once it listens. */
export async function startFauxqs(options: FauxqsOptions = {}): Promise<FauxqsServer> {
  // The package's only export, ".", is dist/app.js (the subpath itself is not exported).
  const appUrl = import.meta.resolve('fauxqs');
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD_SCRIPT, appUrl], {
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
    env,
  });
  track(child, killGroup); // detached: its own process group
  let output = '';
  let port: number | undefined;
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
    if (output.length > 65_536) output = output.slice(-65_536);
    const m = /FAUXQS_LISTENING (\d+)/.exec(output);
    if (m?.[1] !== undefined) port ??= Number(m[1]);
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString('utf8');
    if (output.length > 65_536) output = output.slice(-65_536);
  });
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });

  try {
    const deadline = Date.now() + (options.startTimeoutMs ?? 15_000);
    while (port === undefined) {
      if (spawnError) throw new Error(`fauxqs: could not start node: ${spawnError.message}`);
      if (exited(child)) throw new Error(`fauxqs exited (${String(child.exitCode ?? child.signalCode)}) before listening:\n${output}`);
      if (Date.now() > deadline) throw new Error(`fauxqs did not listen within the timeout:\n${output}`);
      await sleep(10);
    }
  } catch (err) {
    await killChild(child, killGroup);
    throw err;
  }

  const listenPort = port;
  let stopping: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${listenPort}`,
    port: listenPort,
    pid: child.pid ?? -1,
    stop: () => {
      stopping ??= killChild(child, killGroup);
      return stopping;
    },
  };
}
