/**
 * One large file over HTTP from a local nginx, side by side: this tool, curl and wget, each under
 * /usr/bin/time -v (wall, CPU, peak RSS), every result verified by sha256; the ceiling is nginx
 * read by parallel ranged curls into /dev/null. Then a kill -9 halfway and a re-run, to measure
 * how much of the finished work the resume saves.
 *
 *   npm run bench:http -- [--gib 2] [--runs 2]
 */
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { startNginx } from '../test/servers/nginx.js';
import { randomBytes } from '../test/helpers/tree.js';
import { sha256File, summarise, table, timed, type Measure } from './measure.js';

const { values } = parseArgs({ options: { gib: { type: 'string', default: '2' }, runs: { type: 'string', default: '2' } } });
const RUNS = Number(values.runs);
const CLI = path.resolve('dist/storage-initializer.cjs');
const MiB = 2 ** 20;

const journalDone = (journal: string): number =>
  (JSON.parse(readFileSync(journal, 'utf8')) as { done: number[] }).done.reduce((a, b) => a + b, 0);

const work = await mkdtemp(path.join(tmpdir(), 'si-bench-http-'));
try {
  const root = path.join(work, 'root');
  await mkdir(root);
  const file = path.join(root, 'model.bin');
  const size = Number(values.gib) * 2 ** 30;
  const out = createWriteStream(file);
  for (let written = 0, seed = 1; written < size; written += 64 * MiB, seed++) {
    if (!out.write(randomBytes(Math.min(64 * MiB, size - written), seed))) await new Promise<void>((r) => out.once('drain', () => { r(); }));
  }
  await new Promise<void>((r) => out.end(() => { r(); }));
  const expected = await sha256File(file);
  const nginx = await startNginx({ root });
  const url = `${nginx.httpUrl}/model.bin`;
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' };

  const tools: [string, (dest: string) => [string, string[]]][] = [
    ['storage-initializer', (dest) => [process.execPath, [CLI, '--no-progress', url, dest]]],
    ['curl (1 stream)', (dest) => ['curl', ['-sf', '-o', path.join(dest, 'model.bin'), '--create-dirs', url]]],
    ['wget (1 stream)', (dest) => ['wget', ['-q', '-P', dest, url]]],
  ];
  const results = new Map<string, Measure>();
  for (const [name, command] of tools) {
    const runs: Measure[] = [];
    for (let i = 0; i < RUNS; i++) {
      const dest = path.join(work, 'out');
      await rm(dest, { recursive: true, force: true });
      await mkdir(dest, { recursive: true });
      const [cmd, args] = command(dest);
      runs.push(timed(cmd, args, env));
      if (await sha256File(path.join(dest, 'model.bin')) !== expected) throw new Error(`${name}: bytes differ`);
    }
    results.set(name, summarise(runs));
  }
  await rm(path.join(work, 'out'), { recursive: true, force: true });

  const streams = 8;
  const part = Math.ceil(size / streams);
  const started = Date.now();
  await Promise.all(Array.from({ length: streams }, (_, i) => new Promise((resolve) => {
    spawn('curl', ['-sf', '-o', '/dev/null', '-r', `${i * part}-${Math.min(size, (i + 1) * part) - 1}`, url]).on('close', resolve);
  })));
  const ceiling = size / MiB / ((Date.now() - started) / 1000);
  console.log(`\n${values.gib} GiB file over HTTP from nginx on loopback, ${RUNS} run(s) each, all verified by sha256\n`);
  console.log(table(size, results, 'storage-initializer', ceiling));

  // Kill -9 halfway, then re-run: how much is fetched again?
  const dest = path.join(work, 'killed');
  const child = spawn(process.execPath, [CLI, '--no-progress', url, dest], { env, stdio: 'ignore' });
  const journal = path.join(dest, 'model.bin.part.json');
  for (;;) {
    await delay(20);
    try {
      if (existsSync(journal) && journalDone(journal) >= size / 2) break;
    } catch { /* being replaced */ }
  }
  child.kill('SIGKILL');
  await new Promise((r) => child.on('close', r));
  const recorded = journalDone(journal);
  const rerun = spawnSync(process.execPath, [CLI, '--no-progress', url, dest], { env, encoding: 'utf8' });
  const fetched = Number(/fetched_bytes=(\d+)/.exec(rerun.stderr)?.[1]);
  const resumedLine = /resuming .*/.exec(rerun.stderr)?.[0] ?? '(no resume line)';
  const same = (await sha256File(path.join(dest, 'model.bin'))) === expected;
  console.log(`\nkill -9 after ${(recorded / MiB).toFixed(0)} MiB recorded; re-run: "${resumedLine}", fetched ${(fetched / MiB).toFixed(0)} MiB of ${(size / MiB).toFixed(0)} MiB (${((fetched / size) * 100).toFixed(1)}%), byte-identical: ${same}`);
  await nginx.stop();
} finally {
  await rm(work, { recursive: true, force: true });
}
