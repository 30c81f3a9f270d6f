/**
 * The same S3 prefix downloaded side by side by this tool, rclone and aws-cli v2, from fauxqs (the
 * fast in-memory S3) on loopback. Every run is verified file by file (sha256). Reports median
 * wall time, CPU time, peak RSS, MiB/s and each peer's time relative to ours, plus the ceiling:
 * the server read by parallel ranged curls into /dev/null.
 *
 *   npm run bench -- [--runs 3] [--llm-gib 1] [--llm-files 3] [--small 2000] [--dest DIR]
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startFauxqs } from '../test/servers/fauxqs.js';
import { s3Client, uploadTree } from '../test/servers/s3-fixtures.js';
import { randomBytes, hashOf, type Tree } from '../test/helpers/tree.js';
import { hashDir, sameTree, summarise, table, timed, type Measure } from './measure.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    'llm-gib': { type: 'string', default: '1' },
    'llm-files': { type: 'string', default: '3' },
    small: { type: 'string', default: '2000' },
    dest: { type: 'string' },
  },
});
const RUNS = Number(values.runs);
const MiB = 2 ** 20;
const CLI = path.resolve('dist/storage-initializer.cjs');
const KEY = 'bench-key';
const SECRET = 'bench-secret';

function llmWorkload(files: number, gib: number): Tree {
  const tree: Tree = new Map();
  for (let i = 1; i <= files; i++) {
    tree.set(`llm/model-0000${i}-of-0000${files}.safetensors`, randomBytes(Math.round(gib * 2 ** 30), 100 + i));
  }
  tree.set('llm/config.json', Buffer.from(JSON.stringify({ architectures: ['LlamaForCausalLM'], hidden_size: 4096 })));
  tree.set('llm/generation_config.json', Buffer.from('{"do_sample":true}'));
  tree.set('llm/tokenizer.json', randomBytes(9 * MiB, 99));
  tree.set('llm/tokenizer_config.json', Buffer.from('{"model_max_length":8192}'));
  tree.set('llm/model.safetensors.index.json', randomBytes(30_000, 98));
  return tree;
}

function smallWorkload(count: number): Tree {
  const tree: Tree = new Map();
  for (let i = 0; i < count; i++) tree.set(`small/shard-${String(i).padStart(5, '0')}.bin`, randomBytes(32 * 1024, 1000 + i));
  return tree;
}

async function ceiling(endpoint: string, bucket: string, key: string, size: number): Promise<number> {
  const streams = 8;
  const part = Math.ceil(size / streams);
  const started = Date.now();
  await Promise.all(Array.from({ length: streams }, (_, i) => new Promise((resolve) => {
    spawn('curl', ['-sf', '-o', '/dev/null', '-r', `${i * part}-${Math.min(size, (i + 1) * part) - 1}`, `${endpoint}/${bucket}/${key}`]).on('close', resolve);
  })));
  return size / MiB / ((Date.now() - started) / 1000);
}

const server = await startFauxqs();
const work = values.dest ?? await mkdtemp(path.join(tmpdir(), 'si-bench-s3-'));
try {
  const env = {
    PATH: process.env.PATH ?? '', HOME: work, AWS_ENDPOINT_URL: server.endpoint,
    AWS_ACCESS_KEY_ID: KEY, AWS_SECRET_ACCESS_KEY: SECRET, AWS_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true',
  };
  const endpoint = server.endpoint;
  const tools: [string, (prefix: string, dest: string) => [string, string[]]][] = [
    ['storage-initializer', (prefix, dest) => [process.execPath, [CLI, '--no-progress', `s3://bench/${prefix}`, dest]]],
    ['rclone 1.60', (prefix, dest) => ['rclone', ['copy', `:s3:bench/${prefix}`, dest, '--s3-provider', 'Other', '--s3-endpoint', endpoint,
      '--s3-access-key-id', KEY, '--s3-secret-access-key', SECRET, '--s3-force-path-style', '--transfers', '8', '--multi-thread-streams', '8', '--checkers', '16']]],
    ['aws-cli v2', (prefix, dest) => ['/usr/bin/aws', ['s3', 'cp', '--recursive', '--only-show-errors', '--endpoint-url', endpoint, `s3://bench/${prefix}`, dest]]],
  ];
  const client = s3Client({ endpoint, accessKeyId: KEY, secretAccessKey: SECRET, region: 'us-east-1' });
  const workloads: [string, string, Tree][] = [
    ['LLM-like', 'llm', llmWorkload(Number(values['llm-files']), Number(values['llm-gib']))],
    ['many small files', 'small', smallWorkload(Number(values.small))],
  ];
  for (const [title, prefix, tree] of workloads) {
    await uploadTree(client, 'bench', tree);
    const expected = hashOf(new Map([...tree].map(([k, v]) => [k.slice(prefix.length + 1), v])));
    const bytes = [...tree.values()].reduce((sum, b) => sum + b.length, 0);
    const results = new Map<string, Measure>();
    for (const [name, command] of tools) {
      const runs: Measure[] = [];
      for (let i = 0; i < RUNS; i++) {
        const dest = path.join(work, 'out');
        await rm(dest, { recursive: true, force: true });
        await mkdir(dest, { recursive: true });
        const [cmd, args] = command(prefix, dest);
        runs.push(timed(cmd, args, { ...env, ...(name.startsWith('rclone') ? { AWS_CA_BUNDLE: '' } : {}) }));
        if (!sameTree(await hashDir(dest), expected)) throw new Error(`${name}: the downloaded tree differs from the fixture`);
      }
      results.set(name, summarise(runs));
    }
    const biggest = [...tree].sort((a, b) => b[1].length - a[1].length)[0];
    const top = biggest === undefined ? undefined : await ceiling(endpoint, 'bench', biggest[0], biggest[1].length);
    console.log(`\n### ${title}: ${tree.size} files, ${(bytes / MiB).toFixed(0)} MiB, ${RUNS} run(s) per tool, every run verified\n`);
    console.log(table(bytes, results, 'storage-initializer', title === 'LLM-like' ? top : undefined));
  }
} finally {
  await server.stop();
  if (values.dest === undefined) await rm(work, { recursive: true, force: true });
}
