/**
 * Crash and restart: a 2 GiB download from a real nginx is killed with SIGKILL at seeded random
 * points, each restart continuing where the journal says, some restarts killed again before they
 * get far (bursts: one during start-up, then ones shortly after the download has begun), until a
 * last run completes. Every kill must cost little: of the bytes that
 * had landed in the `.part` file before the kill, the next run may fetch again at most 10% (the
 * journal is saved every 8 MiB and every second, so what a kill loses is bounded in bytes). The
 * result must be byte-identical, and nothing may ever sit under the final name before it is complete.
 *
 * What had landed is read from the `.part` file itself after the kill: every 256 KiB of the
 * fixture starts with a distinct block, so the blocks present past the journal's claims show how
 * far each part had really been written (to within 256 KiB per part being written). What nginx
 * sent is counted too ($body_bytes_sent; each process fetches through its own /run<N>/ prefix):
 * it also includes bytes still in socket buffers at the kill, which no downloader can keep.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { baseEnv, CLI, runCli } from '../helpers/cli.js';
import { record } from '../helpers/reliability.js';
import { tempDir } from '../helpers/tree.js';
import { startNginx, type NginxServer } from '../servers/nginx.js';

const TOTAL = 2 * 2 ** 30;
/** The fixture is sparse: a distinct 4 KiB block at the start of every 256 KiB, zeros between,
 * so it is written in two seconds yet a range landing at a wrong offset still shows. */
const STRIDE = 256 * 1024;
const BLOCK = 4096;
const SEED = 20_261_128;
const PROGRESS_KILLS = 10;
/** After these progress kills, the restarts are themselves killed this many times in a row. */
const BURST_AFTER = new Set([2, 6]);
const BURST_LENGTH = 3;
const MAX_REFETCH_SHARE = 0.1;
const NAME = 'big.bin';

/** mulberry32: a tiny seeded generator, so a failing kill schedule can be replayed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function markerBlocks(): Buffer {
  const key = createHash('sha256').update(`crash-restart:${SEED}`).digest().subarray(0, 16);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc((TOTAL / STRIDE) * BLOCK));
}

async function writeFixture(file: string, markers: Buffer): Promise<void> {
  const handle = await open(file, 'w');
  try {
    await handle.truncate(TOTAL);
    for (let i = 0; i < TOTAL / STRIDE; i++) await handle.write(markers, i * BLOCK, BLOCK, i * STRIDE);
  } finally {
    await handle.close();
  }
}

/** Compares a downloaded file with the fixture's generator, chunk by chunk (no second 2 GiB read). */
async function identicalToFixture(file: string, markers: Buffer): Promise<boolean> {
  const chunk = 32 * STRIDE;
  const actual = Buffer.allocUnsafe(chunk);
  const expected = Buffer.alloc(chunk);
  const handle = await open(file, 'r');
  try {
    if ((await handle.stat()).size !== TOTAL) return false;
    for (let offset = 0; offset < TOTAL; offset += chunk) {
      const { bytesRead } = await handle.read(actual, 0, chunk, offset);
      if (bytesRead !== chunk) return false;
      expected.fill(0);
      for (let s = 0; s < chunk / STRIDE; s++) {
        const index = (offset + s * STRIDE) / STRIDE;
        markers.copy(expected, s * STRIDE, index * BLOCK, (index + 1) * BLOCK);
      }
      if (!actual.equals(expected)) return false;
    }
    return true;
  } finally {
    await handle.close();
  }
}

interface Journal { partSize: number; done: number[] }

async function readJournal(dest: string): Promise<Journal | undefined> {
  try {
    return JSON.parse(await readFile(path.join(dest, `${NAME}.part.json`), 'utf8')) as Journal;
  } catch {
    return undefined; // none yet
  }
}

const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);

/** Bytes the journal says are done; 0 when there is none yet. */
async function journalBytes(dest: string): Promise<number> {
  return sum((await readJournal(dest))?.done ?? []);
}

/**
 * Bytes that had really landed in the part file: per part, the journal's claim extended over every
 * following 256 KiB whose marker block is there (the rest of the fixture is zeros, which a sparse
 * `.part` reads as too, so this is a lower bound by less than 256 KiB per part).
 */
async function landedBytes(partFile: string, journal: Journal, markers: Buffer): Promise<number> {
  const handle = await open(partFile, 'r');
  const block = Buffer.allocUnsafe(BLOCK);
  try {
    let landed = 0;
    for (const [i, done] of journal.done.entries()) {
      const start = i * journal.partSize;
      const end = Math.min(TOTAL, start + journal.partSize);
      let reached = start + done;
      for (let s = Math.ceil(reached / STRIDE) * STRIDE; s + BLOCK <= end; s += STRIDE) {
        await handle.read(block, 0, BLOCK, s);
        const index = s / STRIDE;
        if (!block.equals(markers.subarray(index * BLOCK, (index + 1) * BLOCK))) break;
        reached = s + BLOCK;
      }
      landed += reached - start;
    }
    return landed;
  } finally {
    await handle.close();
  }
}

/** Bytes nginx sent per /run<N>/ prefix, killed connections included. */
function bytesSentByRun(accessLog: string): Map<number, number> {
  const sent = new Map<number, number>();
  for (const match of accessLog.matchAll(/^"GET \/run(\d+)\/\S+ HTTP\/[\d.]+" \d+ (\d+) /gm)) {
    const run = Number(match[1]);
    sent.set(run, (sent.get(run) ?? 0) + Number(match[2]));
  }
  return sent;
}

/**
 * progress: once the journal passes `target`, then after up to 100 ms more (so not always right
 * after a journal write); early: `afterMs` after the process starts (start-up, listing);
 * started: `afterMs` after its first request reached nginx (opening the file, the first parts).
 */
type Kill = { kind: 'progress'; target: number } | { kind: 'early' | 'started'; afterMs: number };

/**
 * Progress kills spread over the file, bursts after some of them. The first comes after 12.5%:
 * what a kill loses is bounded in bytes (the journal's 8 MiB, plus what lands while a journal
 * write is under way), so 10% of a smaller amount would measure the machine's load, not the design.
 */
function killSchedule(random: () => number): Kill[] {
  const kills: Kill[] = [];
  const spacing = TOTAL / (PROGRESS_KILLS + 2);
  for (let k = 0; k < PROGRESS_KILLS; k++) {
    kills.push({ kind: 'progress', target: Math.round((k + 1.5 + random() / 2) * spacing) });
    if (BURST_AFTER.has(k)) {
      kills.push({ kind: 'early', afterMs: 50 + Math.round(random() * 300) });
      for (let b = 1; b < BURST_LENGTH; b++) kills.push({ kind: 'started', afterMs: Math.round(random() * 600) });
    }
  }
  return kills;
}

interface KilledRun {
  run: number;
  kind: Kill['kind'];
  journalBefore: number;
  killedAfterBytes: number;
  /** Bytes in the part file when the process died. */
  landed: number;
  journalAfter: number;
}

describe('crash and restart (kill -9 during a 2 GiB download)', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let nginx: NginxServer;
  let markers: Buffer;

  before(async () => {
    work = await tempDir('si-crash-');
    const root = path.join(work.dir, 'root');
    await mkdir(root);
    markers = markerBlocks();
    await writeFixture(path.join(root, NAME), markers);
    nginx = await startNginx({ root, extraConfig: `location ~ ^/run[0-9]+/(.+)$ { alias ${root}/$1; }` });
  });

  after(async () => {
    await nginx.stop();
    await work[Symbol.asyncDispose]();
  });

  it('restarts after every kill, fetching again less than 10% of what was done, and ends byte-identical', { timeout: 10 * 60_000 }, async (t) => {
    const started = Date.now();
    const random = seeded(SEED);
    const dest = path.join(work.dir, 'models');
    const url = (run: number): string => `${nginx.httpUrl}/run${run}/${NAME}`;
    const killed: KilledRun[] = [];

    let run = 0;
    for (const kill of killSchedule(random)) {
      run++;
      const journalBefore = await journalBytes(dest);
      const child = spawn(process.execPath, [CLI, url(run), dest], { env: baseEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
      const closed = new Promise<void>((resolve) => child.on('close', () => { resolve(); }));
      const process_ = { exited: false };
      void closed.then(() => { process_.exited = true; });

      let killedAfterBytes = journalBefore;
      if (kill.kind === 'progress') {
        // A restart that starts past the target is killed once it has made progress of its own.
        const target = Math.max(kill.target, journalBefore + 1);
        while (!process_.exited && (killedAfterBytes = await journalBytes(dest)) < target) await delay(20);
        // At a random moment after the journal passed the target, not right after a journal write.
        await delay(Math.round(random() * 100));
      } else {
        const request = `"GET /run${run}/`;
        if (kill.kind === 'started') while (!process_.exited && !(await nginx.readAccessLog()).includes(request)) await delay(20);
        await delay(kill.afterMs);
        killedAfterBytes = await journalBytes(dest);
      }
      assert.ok(!process_.exited, `run ${run} ended before it was killed:\n${stderr}`);
      child.kill('SIGKILL');
      await closed;

      // A kill between writing the journal's temporary file and renaming it may leave that file too.
      const left = (await readdir(dest)).filter((name) => name !== `${NAME}.part.json.tmp`).sort();
      assert.deepEqual(left, [`${NAME}.part`, `${NAME}.part.json`], `after run ${run}: nothing under the final name`);
      const journal = await readJournal(dest);
      assert.ok(journal !== undefined, `after run ${run}: a journal`);
      const landed = await landedBytes(path.join(dest, `${NAME}.part`), journal, markers);
      killed.push({ run, kind: kill.kind, journalBefore, killedAfterBytes, landed, journalAfter: sum(journal.done) });
    }

    run++;
    const resumeFrom = await journalBytes(dest);
    const last = await runCli([url(run), dest], { timeoutMs: 5 * 60_000 });
    assert.equal(last.code, 0, last.stderr);
    const fetched = Number(/fetched_bytes=(\d+)/.exec(last.stderr)?.[1]);
    assert.equal(fetched, TOTAL - resumeFrom, 'the last run fetches exactly what the journal did not claim');
    assert.deepEqual(await readdir(dest), [NAME]);
    const downloadSeconds = (Date.now() - started) / 1000;
    const identical = await identicalToFixture(path.join(dest, NAME), markers);
    assert.ok(identical, 'byte-identical after all the kills');

    const sent = bytesSentByRun(await nginx.readAccessLog());
    const trials = killed.map((k, trial) => ({
      trial, kind: k.kind, killedAfterBytes: k.killedAfterBytes,
      refetchedBytes: k.landed - k.journalAfter, doneBeforeKillBytes: k.landed,
      sentInRunBytes: sent.get(k.run) ?? 0,
      totalBytes: TOTAL, identical,
    }));
    for (const entry of trials) record('crash-restart', entry);
    const sentTotal = sum([...sent.values()]);
    t.diagnostic(`${killed.length} kills over ${run} runs, ${downloadSeconds.toFixed(1)} s from first start to last exit; ` +
      `nginx sent ${sentTotal} bytes for ${TOTAL} (${(100 * (sentTotal / TOTAL - 1)).toFixed(1)}% more, socket buffers included)`);
    for (const [i, k] of killed.entries()) {
      const entry = trials[i];
      assert.ok(entry !== undefined);
      assert.ok(k.journalAfter >= k.journalBefore, `run ${k.run}: the journal never goes back`);
      assert.ok(entry.refetchedBytes <= MAX_REFETCH_SHARE * entry.doneBeforeKillBytes,
        `run ${k.run} (${k.kind}): ${entry.refetchedBytes} of ${entry.doneBeforeKillBytes} bytes written before the kill have to be fetched again`);
    }
  });
});
