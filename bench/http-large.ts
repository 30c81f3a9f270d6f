/**
 * One large file over HTTP from a local nginx, side by side: this tool, curl and wget, each under
 * /usr/bin/time -v (wall, CPU, peak RSS), every result verified by sha256; the ceiling is nginx
 * read by parallel ranged curls into /dev/null. Then a kill -9 halfway and a re-run, to measure
 * how much of the finished work the resume saves.
 *
 *   npx tsx bench/http-large.ts [--gib 2] [--runs 2]
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { startNginx } from '../test/servers/nginx.js';
import { randomBytes } from '../test/helpers/tree.js';

const { values } = parseArgs({ options: { gib: { type: 'string', default: '2' }, runs: { type: 'string', default: '2' } } });
const GIB = Number(values.gib);
const RUNS = Number(values.runs);
const CLI = path.resolve('dist/storage-initializer.cjs');
const MiB = 2 ** 20;

interface Measure { wall: number; cpu: number; rssMiB: number }

function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Measure {
  const result = spawnSync('/usr/bin/time', ['-v', cmd, ...args], { encoding: 'utf8', env, maxBuffer: 64 * MiB });
  if (result.status !== 0) throw new Error(`${cmd} failed: ${result.stderr.slice(-2000)}`);
  const field = (name: string): string => new RegExp(`${name}: (.+)`).exec(result.stderr)?.[1]?.trim() ?? '0';
  const [m, s] = field('Elapsed \\(wall clock\\) time \\(h:mm:ss or m:ss\\)').split(':').slice(-2);
  return {
    wall: Number(m) * 60 + Number(s),
    cpu: Number(field('User time \\(seconds\\)')) + Number(field('System time \\(seconds\\)')),
    rssMiB: Number(field('Maximum resident set size \\(kbytes\\)')) / 1024,
  };
}

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * MiB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

const work = await mkdtemp(path.join(tmpdir(), 'si-bench-'));
try {
  const root = path.join(work, 'root');
  await mkdir(root);
  const file = path.join(root, 'model.bin');
  const size = GIB * 2 ** 30;
  const out = createWriteStream(file);
  for (let written = 0, seed = 1; written < size; written += 64 * MiB, seed++) {
    if (!out.write(randomBytes(Math.min(64 * MiB, size - written), seed))) await new Promise<void>((r) => out.once('drain', () => { r(); }));
  }
  await new Promise<void>((r) => out.end(() => { r(); }));
  const expected = await sha256(file);
  const nginx = await startNginx({ root });
  const url = `${nginx.httpUrl}/model.bin`;
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' };

  const tools: [string, (dest: string) => [string, string[]]][] = [
    ['storage-initializer', (dest) => [process.execPath, [CLI, '--no-progress', url, dest]]],
    ['curl (1 stream)', (dest) => ['curl', ['-sf', '-o', path.join(dest, 'model.bin'), '--create-dirs', url]]],
    ['wget (1 stream)', (dest) => ['wget', ['-q', '-P', dest, url]]],
  ];
  const rows: string[] = [];
  const results = new Map<string, Measure>();
  for (const [name, command] of tools) {
    const runs: Measure[] = [];
    for (let i = 0; i < RUNS; i++) {
      const dest = path.join(work, 'out');
      rmSync(dest, { recursive: true, force: true });
      await mkdir(dest, { recursive: true });
      const [cmd, args] = command(dest);
      runs.push(timed(cmd, args, env));
      if (await sha256(path.join(dest, 'model.bin')) !== expected) throw new Error(`${name}: bytes differ`);
    }
    const m = { wall: median(runs.map((r) => r.wall)), cpu: median(runs.map((r) => r.cpu)), rssMiB: Math.max(...runs.map((r) => r.rssMiB)) };
    results.set(name, m);
  }
  rmSync(path.join(work, 'out'), { recursive: true, force: true });

  // Ceiling: 8 parallel ranged curls into /dev/null.
  const streams = 8;
  const part = Math.ceil(size / streams);
  const ceilingStart = Date.now();
  await Promise.all(Array.from({ length: streams }, (_, i) => new Promise((resolve) => {
    spawn('curl', ['-sf', '-o', '/dev/null', '-r', `${i * part}-${Math.min(size, (i + 1) * part) - 1}`, url]).on('close', resolve);
  })));
  const ceiling = size / MiB / ((Date.now() - ceilingStart) / 1000);

  const ours = results.get('storage-initializer');
  rows.push('| tool | wall s (median) | CPU s | peak RSS MiB | MiB/s | ours vs tool |', '|---|---|---|---|---|---|');
  for (const [name, m] of results) {
    const rate = size / MiB / m.wall;
    rows.push(`| ${name} | ${m.wall.toFixed(2)} | ${m.cpu.toFixed(2)} | ${m.rssMiB.toFixed(0)} | ${rate.toFixed(0)} | ${ours ? (m.wall / ours.wall).toFixed(2) : '-'}x |`);
  }
  rows.push(`| ceiling: ${streams} ranged curls to /dev/null | | | | ${ceiling.toFixed(0)} | |`);
  console.log(`\n${GIB} GiB file over HTTP from nginx on loopback, ${RUNS} run(s) each, all verified by sha256\n`);
  console.log(rows.join('\n'));

  // Kill -9 halfway, then re-run: how much is fetched again?
  const dest = path.join(work, 'killed');
  const child = spawn(process.execPath, [CLI, '--no-progress', url, dest], { env, stdio: 'ignore' });
  const journal = path.join(dest, 'model.bin.part.json');
  for (;;) {
    await delay(20);
    if (!existsSync(journal)) continue;
    try {
      const done = (JSON.parse(readFileSync(journal, 'utf8')) as { done: number[] }).done.reduce((a, b) => a + b, 0);
      if (done >= size / 2) break;
    } catch { /* being replaced */ }
  }
  child.kill('SIGKILL');
  await new Promise((r) => child.on('close', r));
  const partBytes = (JSON.parse(readFileSync(journal, 'utf8')) as { done: number[] }).done.reduce((a, b) => a + b, 0);
  const rerun = spawnSync(process.execPath, [CLI, '--no-progress', url, dest], { env, encoding: 'utf8' });
  const fetched = Number(/fetched_bytes=(\d+)/.exec(rerun.stderr)?.[1]);
  const resumedLine = /resuming .*/.exec(rerun.stderr)?.[0] ?? '(no resume line)';
  const same = (await sha256(path.join(dest, 'model.bin'))) === expected;
  console.log(`\nkill -9 after ${(partBytes / MiB).toFixed(0)} MiB recorded; re-run: "${resumedLine}", fetched ${(fetched / MiB).toFixed(0)} MiB of ${(size / MiB).toFixed(0)} MiB (${((fetched / size) * 100).toFixed(1)}%), byte-identical: ${same}`);
  await nginx.stop();
} finally {
  rmSync(work, { recursive: true, force: true });
}
