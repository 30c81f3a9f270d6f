/**
 * The same S3 prefix downloaded side by side by this tool, rclone and aws-cli v2, from fauxqs (the
 * fast in-memory S3) on loopback. Every run is verified file by file (sha256). Reports median
 * wall time, CPU time, peak RSS, MiB/s and each peer's time relative to ours, plus the ceiling:
 * the server read by parallel ranged curls into /dev/null.
 *
 *   npm run bench -- [--runs 3] [--llm-gib 1] [--llm-files 3] [--small 2000] [--dest DIR]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startFauxqs } from '../test/servers/fauxqs.js';
import { s3Client, uploadTree } from '../test/servers/s3-fixtures.js';
import { benchArgs, runBench, workloads, type Tool } from './workloads.js';

const args = benchArgs();
const CLI = path.resolve('dist/storage-initializer.cjs');
const KEY = 'bench-key';
const SECRET = 'bench-secret';

const server = await startFauxqs();
const work = args.dest ?? await mkdtemp(path.join(tmpdir(), 'si-bench-s3-'));
try {
  const env = {
    PATH: process.env.PATH ?? '', HOME: work, AWS_ENDPOINT_URL: server.endpoint,
    AWS_ACCESS_KEY_ID: KEY, AWS_SECRET_ACCESS_KEY: SECRET, AWS_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true',
  };
  const endpoint = server.endpoint;
  const tools: Tool[] = [
    { name: 'storage-initializer', command: (prefix, dest) => [process.execPath, [CLI, '--no-progress', `s3://bench/${prefix}`, dest]] },
    {
      name: 'rclone 1.60',
      command: (prefix, dest) => ['rclone', ['copy', `:s3:bench/${prefix}`, dest, '--s3-provider', 'Other', '--s3-endpoint', endpoint,
        '--s3-access-key-id', KEY, '--s3-secret-access-key', SECRET, '--s3-force-path-style', '--transfers', '8', '--multi-thread-streams', '8', '--checkers', '16']],
      env: { AWS_CA_BUNDLE: '' },
    },
    { name: 'aws-cli v2', command: (prefix, dest) => ['/usr/bin/aws', ['s3', 'cp', '--recursive', '--only-show-errors', '--endpoint-url', endpoint, `s3://bench/${prefix}`, dest]] },
  ];
  const client = s3Client({ endpoint, accessKeyId: KEY, secretAccessKey: SECRET, region: 'us-east-1' });
  await runBench({
    work, runs: args.runs, env, tools,
    upload: (tree) => uploadTree(client, 'bench', tree),
    ceilingUrl: (key) => `${endpoint}/bench/${key}`,
  }, workloads(args));
} finally {
  await server.stop();
  if (args.dest === undefined) await rm(work, { recursive: true, force: true });
}
