/** Shared benchmark plumbing: run a command under /usr/bin/time -v, verify a tree, summarise runs. */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';

const MiB = 2 ** 20;

export interface Measure {
  wall: number;
  cpu: number;
  rssMiB: number;
}

export function timed(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv): Measure {
  const result = spawnSync('/usr/bin/time', ['-v', cmd, ...args], { encoding: 'utf8', env, maxBuffer: 64 * MiB });
  if (result.status !== 0) throw new Error(`${cmd} failed (${String(result.status)}): ${result.stderr.slice(-1500)}`);
  return parseTime(result.stderr);
}

/**
 * As timed, without blocking this process: for servers that run inside the benchmark's own event
 * loop (the GCS double), which a spawnSync would starve.
 */
export async function timedAsync(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<Measure> {
  const child = spawn('/usr/bin/time', ['-v', cmd, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => { stderr = (stderr + chunk).slice(-64 * 1024); });
  const status = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (status !== 0) throw new Error(`${cmd} failed (${String(status)}): ${stderr.slice(-1500)}`);
  return parseTime(stderr);
}

/** The wall, CPU and peak RSS that GNU time -v printed last on stderr. */
function parseTime(stderr: string): Measure {
  const field = (name: string): string => new RegExp(`${name}: (.+)`).exec(stderr)?.[1]?.trim() ?? '0';
  const clock = field('Elapsed \\(wall clock\\) time \\(h:mm:ss or m:ss\\)').split(':').map(Number);
  const wall = clock.reduce((acc, part) => acc * 60 + part, 0);
  return {
    wall,
    cpu: Number(field('User time \\(seconds\\)')) + Number(field('System time \\(seconds\\)')),
    rssMiB: Number(field('Maximum resident set size \\(kbytes\\)')) / 1024,
  };
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * MiB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** relative path -> sha256 of every file under root. */
export async function hashDir(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const key = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) await walk(path.join(dir, entry.name), key);
      else out.set(key, await sha256File(path.join(dir, entry.name)));
    }
  };
  await walk(root, '');
  return out;
}

export function sameTree(a: Map<string, string>, b: Map<string, string>): boolean {
  return a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

export function summarise(runs: readonly Measure[]): Measure {
  return { wall: median(runs.map((r) => r.wall)), cpu: median(runs.map((r) => r.cpu)), rssMiB: Math.max(...runs.map((r) => r.rssMiB)) };
}

/** A markdown table: one row per tool, with the ratio of its wall time to ours. */
export function table(bytes: number, results: ReadonlyMap<string, Measure>, ours: string, ceilingMiBps?: number): string {
  const base = results.get(ours);
  const rows = ['| tool | wall s (median) | CPU s | peak RSS MiB | MiB/s | tool time / ours |', '|---|---|---|---|---|---|'];
  for (const [name, m] of results) {
    const ratio = base === undefined ? '-' : `${(m.wall / base.wall).toFixed(2)}x`;
    rows.push(`| ${name} | ${m.wall.toFixed(2)} | ${m.cpu.toFixed(2)} | ${m.rssMiB.toFixed(0)} | ${(bytes / MiB / m.wall).toFixed(0)} | ${ratio} |`);
  }
  if (ceilingMiBps !== undefined) {
    const share = base === undefined ? '' : ` (ours: ${((bytes / MiB / base.wall / ceilingMiBps) * 100).toFixed(0)}% of it)`;
    rows.push(`| ceiling: server to /dev/null, parallel ranged curl${share} | | | | ${ceilingMiBps.toFixed(0)} | |`);
  }
  return rows.join('\n');
}
