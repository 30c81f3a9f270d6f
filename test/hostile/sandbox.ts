/**
 * The hostile corpus's common ground: a sandbox per case (DEST inside a fresh directory whose other
 * contents are sentinels), a snapshot of everything outside DEST taken before and after the run,
 * and the judgement of a CLI run (exit 0 or 1, one error line, no stack trace, no hang).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { errorLines, type CliResult } from '../helpers/cli.js';
import { record } from '../helpers/reliability.js';

export type Outcome = 'error' | 'safe';

/** A V8 stack frame, the mark of an exception that escaped the CLI's one-line error handling. */
const STACK_FRAME = /^\s+at .+(:\d+:\d+\)?|\(native\))$/m;

export interface Sandbox {
  /** The case directory: DEST's parent, holding the sentinels. */
  readonly dir: string;
  /** Not created: the CLI makes it, as KServe's emptyDir would already exist or not. */
  readonly dest: string;
  /** Everything under `dir` except DEST, as path -> kind/size/digest (or link target). */
  snapshot(): Promise<Map<string, string>>;
}

/** A root for one test file's sandboxes, removed by the returned dispose. */
export async function sandboxRoot(prefix: string): Promise<{ root: string; dispose(): Promise<void> }> {
  const root = await mkdtemp(path.join(tmpdir(), prefix));
  return { root, dispose: () => rm(root, { recursive: true, force: true }) };
}

let counter = 0;

/** `<root>/case-N/{dest, sentinel.txt, outside/keep.txt}`; DEST's siblings must survive any run. */
export async function newSandbox(root: string): Promise<Sandbox> {
  const dir = path.join(root, `case-${++counter}`);
  await mkdir(path.join(dir, 'outside'), { recursive: true });
  await writeFile(path.join(dir, 'sentinel.txt'), 'sentinel\n');
  await writeFile(path.join(dir, 'outside', 'keep.txt'), 'keep\n');
  const dest = path.join(dir, 'dest');
  return { dir, dest, snapshot: () => snapshotExcept(dir, dest) };
}

async function snapshotExcept(dir: string, skip: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (current: string): Promise<void> => {
    for (const name of (await readdir(current)).sort()) {
      const full = path.join(current, name);
      if (full === skip) continue;
      const rel = path.relative(dir, full);
      const info = await lstat(full);
      if (info.isSymbolicLink()) out.set(rel, `link ${await readlink(full)}`);
      else if (info.isDirectory()) {
        out.set(rel, 'dir');
        await walk(full);
      } else if (info.isFile()) out.set(rel, `file ${info.size} ${createHash('sha256').update(await readFile(full)).digest('hex')}`);
      else out.set(rel, `special ${info.mode}`);
    }
  };
  await walk(dir);
  return out;
}

/**
 * Whether anything escaped: the snapshot outside DEST changed, or one of `markers` (file names a
 * hostile input tried to plant far outside, e.g. through `../../../../tmp/NAME`) exists in the
 * sandbox root's parents or /tmp.
 */
export async function escaped(box: Sandbox, before: Map<string, string>, markers: readonly string[] = []): Promise<boolean> {
  const after = await box.snapshot();
  if (JSON.stringify([...before]) !== JSON.stringify([...after])) return true;
  const places = new Set([path.dirname(box.dir), path.dirname(path.dirname(box.dir)), tmpdir(), '/tmp', '/']);
  return markers.some((marker) => [...places].some((place) => existsSync(path.join(place, marker))));
}

/**
 * The CLI's verdict on a hostile input, asserted to be clean: exit 0 (safe) or exit 1 with exactly
 * one error line (error), never a signal (a hang the timeout killed), never a stack trace.
 */
export function verdict(result: CliResult): Outcome {
  assert.equal(result.signal, null, `killed by ${String(result.signal)} (a hang?):\n${result.stderr}`);
  assert.ok(result.code === 0 || result.code === 1, `exit code ${String(result.code)}:\n${result.stderr}`);
  assert.doesNotMatch(result.stderr, STACK_FRAME, 'a stack trace reached the log');
  assert.doesNotMatch(result.stderr, /Uncaught|UnhandledPromiseRejection|unhandled/i);
  if (result.code === 0) return 'safe';
  const errors = errorLines(result);
  assert.equal(errors.length, 1, `expected one error line:\n${result.stderr}`);
  return 'error';
}

/** Records the case for the reliability report and fails it when anything escaped. */
export function report(category: string, name: string, outcome: Outcome, didEscape: boolean): void {
  record('hostile', { category, case: name, outcome, escaped: didEscape });
  assert.equal(didEscape, false, `${category}/${name}: something was written outside DEST`);
}

/** The error line of a failed run (for pattern checks), or '' for a successful one. */
export function errorLine(result: CliResult): string {
  return errorLines(result)[0] ?? '';
}
