/**
 * Listings: a huge one (100k keys through the planner in a child process with a deadline, and
 * 2k files through the CLI), and a property test that holds the planner to a reference model for
 * arbitrary key sets: every planned path inside DEST, no two files at one path, file/directory
 * clashes and temporary-name clashes refused. Case is significant: `Model.bin` and `model.bin` are
 * two files, as they are on the pod's (Linux) filesystem.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { StorageError } from '../../src/errors.js';
import type { RemoteObject } from '../../src/sources/types.js';
import { planDownloads } from '../../src/transfer/plan.js';
import { runCli } from '../helpers/cli.js';
import { hashTree } from '../helpers/tree.js';
import { escaped, newSandbox, report, sandboxRoot, verdict } from './sandbox.js';

const DEST = '/sandbox/dest';

/** Runs `code` (an ESM module body, TypeScript allowed) in a child with tsx; kills it at the deadline. */
function runChild(code: string, deadlineMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); }, deadlineMs);
    child.on('error', reject);
    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      resolve({ code: exitCode, signal, stdout, stderr });
    });
  });
}

describe('huge listings', () => {
  let sandboxes: Awaited<ReturnType<typeof sandboxRoot>>;
  before(async () => { sandboxes = await sandboxRoot('si-hostile-listing-'); });
  after(() => sandboxes.dispose());

  it('plans 100k keys (flat, deep, and sharing one long directory) within a deadline', async (t) => {
    const plan = path.resolve('src/transfer/plan.ts');
    // Shapes that would expose quadratic work: one flat directory, one deep chain of directories,
    // and many files under one long shared path (each directory prefix checked against every file).
    const code = `
      import { planDownloads } from ${JSON.stringify(plan)};
      const shapes = {
        flat: (i) => 'm/f' + i + '.bin',
        deep: (i) => 'm/' + Array.from({ length: 40 }, (_, d) => 'd' + d).join('/') + '/f' + i,
        shared: (i) => 'm/' + 'long-directory-name/'.repeat(12) + (i % 500) + '/f' + i,
      };
      const out = {};
      for (const [name, key] of Object.entries(shapes)) {
        const objects = Array.from({ length: 100000 }, (_, i) => ({ key: key(i), size: 1 }));
        const start = performance.now();
        const result = planDownloads({ prefix: 'm', displayUri: 's3://b/m', name: 'S3' }, objects, { dest: '/sandbox/dest', allow: [], ignore: [] });
        out[name] = { files: result.files.length, ms: Math.round(performance.now() - start), heapMiB: Math.round(process.memoryUsage().heapUsed / 2 ** 20) };
      }
      process.stdout.write(JSON.stringify(out));
    `;
    const result = await runChild(code, 120_000);
    assert.equal(result.signal, null, 'the planner did not finish within 120 s (quadratic work?)');
    assert.equal(result.code, 0, result.stderr);
    const numbers = JSON.parse(result.stdout) as Record<string, { files: number; ms: number }>;
    for (const shape of ['flat', 'deep', 'shared']) assert.equal(numbers[shape]?.files, 100_000);
    t.diagnostic(`planner on 100k keys: ${result.stdout}`);
    report('listing', 'planner on 100k keys x 3 shapes', 'safe', false);
  });

  it('copies 2k files from a local source through the CLI', async (t) => {
    const box = await newSandbox(sandboxes.root);
    const src = path.join(box.dir, 'source');
    for (let d = 0; d < 20; d++) {
      await mkdir(path.join(src, `d${d}`), { recursive: true });
      await Promise.all(Array.from({ length: 100 }, (_, f) => writeFile(path.join(src, `d${d}`, `f${f}`), `${d}/${f}`)));
    }
    const before = await box.snapshot();
    const start = Date.now();
    const result = await runCli(['--local-mode', 'copy', src, box.dest], { timeoutMs: 120_000 });
    const outcome = verdict(result);
    t.diagnostic(`2k files through the CLI in ${Date.now() - start} ms`);
    report('listing', '2k files through the CLI', outcome, await escaped(box, before));
    assert.equal(outcome, 'safe', result.stderr);
    assert.equal((await hashTree(box.dest)).size, 2000);
  });
});

// ---------- the planner against a reference model ----------

const PREFIX = 'p';

/** What the planner must make of a key below the prefix: a path, or undefined when refused. */
function modelPath(rel: string): string | undefined {
  if (rel.includes('\0') || rel.includes('\\') || rel.startsWith('/') || /^[A-Za-z]:/.test(rel)) return undefined;
  const segments = rel.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.length === 0 || segments.includes('..')) return undefined;
  if (segments.some((s) => Buffer.byteLength(s) > 255) || Buffer.byteLength(segments[segments.length - 1] ?? '') > 250) return undefined;
  return segments.join('/');
}

type Expected = { kind: 'files'; paths: string[] } | { kind: 'refused' } | { kind: 'not-found' };

function expectedPlan(keys: readonly string[]): Expected {
  const rels = keys.filter((k) => !k.endsWith('/') && k.startsWith(`${PREFIX}/`)).map((k) => k.slice(PREFIX.length + 1)).filter((r) => r !== '');
  if (rels.length === 0) return { kind: 'not-found' };
  const paths = rels.map(modelPath);
  if (paths.some((p) => p === undefined)) return { kind: 'refused' };
  const files = paths as string[];
  const set = new Set(files);
  if (set.size !== files.length) return { kind: 'refused' };
  for (const file of files) {
    const parts = file.split('/');
    for (let i = 1; i < parts.length; i++) if (set.has(parts.slice(0, i).join('/'))) return { kind: 'refused' };
    if ((file.endsWith('.part') && set.has(file.slice(0, -5))) || (file.endsWith('.part.json') && set.has(file.slice(0, -10)))) return { kind: 'refused' };
  }
  return { kind: 'files', paths: files };
}

describe('the planner on arbitrary key sets (fast-check)', () => {
  const segment = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom('a', 'A', 'b', 'B', 'model.bin', 'Model.bin', 'x.part', 'x', 'x.part.json', '模型', 'e\u0301', '\u00e9') },
    { weight: 2, arbitrary: fc.constantFrom('.', '..', '', '...', ' ') },
    { weight: 1, arbitrary: fc.constantFrom('a\\b', 'c:', 'C:x', 'n\0l', 'x'.repeat(251), 'y'.repeat(256), '\n') },
    { weight: 1, arbitrary: fc.string({ maxLength: 6 }) },
  );
  const rel = fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => s.join('/'));
  const key = fc.oneof(
    { weight: 8, arbitrary: rel.map((r) => `${PREFIX}/${r}`) },
    { weight: 1, arbitrary: rel.map((r) => `${PREFIX}2/${r}`) },
    { weight: 1, arbitrary: rel.map((r) => `/${r}`) },
  );

  it('agrees with the reference model, and every planned path stays in DEST', () => {
    fc.assert(
      fc.property(fc.array(key, { maxLength: 12 }), (keys) => {
        const expected = expectedPlan(keys);
        const objects = keys.map((k): RemoteObject => ({ key: k, size: 1 }));
        let planned: string[] | undefined;
        try {
          const plan = planDownloads({ prefix: PREFIX, displayUri: 's3://b/p', name: 'S3' }, objects, { dest: DEST, allow: [], ignore: [] });
          planned = plan.files.map((f) => f.relativePath);
          for (const file of plan.files) {
            assert.ok(file.localPath.startsWith(`${DEST}/`), file.localPath);
            assert.equal(path.posix.normalize(file.localPath), file.localPath);
            assert.equal(file.localPath, `${DEST}/${file.relativePath}`);
          }
        } catch (err) {
          assert.ok(err instanceof StorageError, `not a StorageError: ${String(err)}`);
          assert.doesNotMatch(err.message, /[\r\n]/);
          assert.equal(err.kind === 'NotFound' ? 'not-found' : err.kind === 'InvalidInput' ? 'refused' : err.kind, expected.kind, `${err.message} for ${JSON.stringify(keys)}`);
          return;
        }
        assert.equal(expected.kind, 'files', `planned ${JSON.stringify(planned)} for ${JSON.stringify(keys)}`);
        assert.deepEqual(planned, expected.paths);
        assert.equal(new Set(planned).size, planned.length, 'two files at one path');
      }),
      { numRuns: 4000 },
    );
    report('listing', 'planner property: 4000 arbitrary key sets', 'safe', false);
  });

  it('keeps names that differ only in case (or Unicode normalization) as separate files', () => {
    const plan = planDownloads({ prefix: PREFIX, displayUri: 's3://b/p', name: 'S3' }, ['p/Model.bin', 'p/model.bin', 'p/MODEL.BIN', 'p/caf\u00e9', 'p/cafe\u0301'].map((k) => ({ key: k, size: 1 })), { dest: DEST, allow: [], ignore: [] });
    assert.equal(new Set(plan.files.map((f) => f.localPath)).size, 5);
    report('listing', 'case and normalization twins', 'safe', false);
  });
});
