/**
 * What the object-store benchmarks (s3.ts, gcs.ts, azure.ts) share: their flags, the two fixture
 * trees, the run-verify-summarise loop over the tools, and the ceiling (parallel ranged curl).
 */
import { spawn } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { hashOf, randomBytes, type Tree } from '../test/helpers/tree.js';
import { hashDir, sameTree, summarise, table, timedAsync, type Measure } from './measure.js';

const MiB = 2 ** 20;

/** A model as it sits in a hub or bucket: `files` weight shards of `gib` GiB each, plus the small config and tokenizer files. */
export function llmWorkload(files: number, gib: number): Tree {
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

/** `count` files of 32 KiB each: the per-object overhead dominates. */
export function smallWorkload(count: number): Tree {
  const tree: Tree = new Map();
  for (let i = 0; i < count; i++) tree.set(`small/shard-${String(i).padStart(5, '0')}.bin`, randomBytes(32 * 1024, 1000 + i));
  return tree;
}

/** The tree as it lands under DEST when `prefix/` is downloaded: keys relative to the prefix. */
export function underPrefix(tree: Tree, prefix: string): Tree {
  return new Map([...tree].map(([k, v]) => [k.slice(prefix.length + 1), v]));
}

export function totalBytes(tree: Tree): number {
  return [...tree.values()].reduce((sum, b) => sum + b.length, 0);
}

/** The largest file of the tree (what the ceiling reads), or undefined for an empty tree. */
export function biggest(tree: Tree): [string, Buffer] | undefined {
  return [...tree].sort((a, b) => b[1].length - a[1].length)[0];
}

/** MiB/s of `streams` parallel ranged curls of one URL into /dev/null: what the server can give. */
export async function ceiling(url: string, size: number, streams = 8): Promise<number> {
  const part = Math.ceil(size / streams);
  const started = Date.now();
  await Promise.all(Array.from({ length: streams }, (_, i) => new Promise<void>((resolve, reject) => {
    spawn('curl', ['-sf', '-o', '/dev/null', '-r', `${i * part}-${Math.min(size, (i + 1) * part) - 1}`, url]).on('close', (code) => {
      // A refused or failed read would otherwise pass for a very fast one.
      if (code === 0) resolve();
      else reject(new Error(`ceiling: curl exited ${String(code)} reading ${url.split('?')[0] ?? ''}`));
    });
  })));
  return size / MiB / ((Date.now() - started) / 1000);
}

/** The flags every object-store benchmark takes (see bench/README.md). */
export function benchArgs(): { runs: number; llmGib: number; llmFiles: number; small: number; dest: string | undefined } {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '3' },
      'llm-gib': { type: 'string', default: '1' },
      'llm-files': { type: 'string', default: '3' },
      small: { type: 'string', default: '2000' },
      dest: { type: 'string' },
    },
  });
  return { runs: Number(values.runs), llmGib: Number(values['llm-gib']), llmFiles: Number(values['llm-files']), small: Number(values.small), dest: values.dest };
}

/** One downloader under test. */
export interface Tool {
  name: string;
  /** The command that downloads the bucket/container prefix `prefix` into `dest`. */
  command(prefix: string, dest: string): [string, string[]];
  /** Where the prefix's files land (`gcloud storage cp -r` puts them in dest/PREFIX); dest itself by default. */
  root?(prefix: string, dest: string): string;
  /** Added to the shared environment for this tool only. */
  env?: NodeJS.ProcessEnv;
}

export interface Bench {
  /** Scratch directory: every run downloads into WORK/out, emptied first. */
  work: string;
  runs: number;
  /** The environment every tool runs with (nothing of this process leaks in). */
  env: NodeJS.ProcessEnv;
  tools: readonly Tool[];
  /** Puts the tree (keys are object names) into the store under test. */
  upload(tree: Tree): Promise<unknown>;
  /** A URL plain curl can read the object from (public, or signed), for the ceiling. */
  ceilingUrl(key: string): string;
}

/** The two workloads, built only when their turn comes (a tree is held in memory while it runs). */
export function workloads(args: ReturnType<typeof benchArgs>): [string, string, () => Tree][] {
  return [
    ['LLM-like', 'llm', () => llmWorkload(args.llmFiles, args.llmGib)],
    ['many small files', 'small', () => smallWorkload(args.small)],
  ];
}

/** Each workload: upload, every tool RUNS times (each run verified by sha256), the ceiling (LLM-like only), a markdown table. */
export async function runBench(bench: Bench, list: readonly [string, string, () => Tree][]): Promise<void> {
  for (const [title, prefix, make] of list) {
    const tree = make();
    await bench.upload(tree);
    const expected = hashOf(underPrefix(tree, prefix));
    const bytes = totalBytes(tree);
    const results = new Map<string, Measure>();
    for (const tool of bench.tools) {
      const runs: Measure[] = [];
      for (let i = 0; i < bench.runs; i++) {
        const dest = path.join(bench.work, 'out');
        await rm(dest, { recursive: true, force: true });
        await mkdir(dest, { recursive: true });
        const [cmd, args] = tool.command(prefix, dest);
        runs.push(await timedAsync(cmd, args, { ...bench.env, ...tool.env }));
        if (!sameTree(await hashDir(tool.root?.(prefix, dest) ?? dest), expected)) throw new Error(`${tool.name}: the downloaded tree differs from the fixture`);
      }
      results.set(tool.name, summarise(runs));
    }
    // The ceiling row is shown for the large-file workload only (for 32 KiB files it measures curl's start-up).
    const largest = title === 'LLM-like' ? biggest(tree) : undefined;
    const top = largest === undefined ? undefined : await ceiling(bench.ceilingUrl(largest[0]), largest[1].length);
    console.log(`\n### ${title}: ${tree.size} files, ${(bytes / MiB).toFixed(0)} MiB, ${bench.runs} run(s) per tool, every run verified\n`);
    console.log(table(bytes, results, 'storage-initializer', top));
  }
}
