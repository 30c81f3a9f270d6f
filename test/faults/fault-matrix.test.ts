/**
 * The fault matrix: every object source, every fault, the built CLI through fault proxies in front
 * of the source's real server. Each run must end with a byte-identical tree, or exit 1 with one
 * clear error line; in both cases no file under its final name may be wrong. A source that
 * publishes no checksum cannot see a flipped byte: that cell is asserted to be undetectable, so
 * the gap shows in the report (and this test fails the day it is closed, to be updated).
 * Every cell is recorded for docs/reliability.md (scripts/reliability-report.mjs).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { noFaults } from '../servers/fault-proxy.js';
import { errorLines, runCli, type CliResult } from '../helpers/cli.js';
import { record } from '../helpers/reliability.js';
import { freshDest, tempDir } from '../helpers/tree.js';
import { judgeTree, retriesLogged, type TreeVerdict } from './judge.js';
import { MATRIX_SOURCES, PART_SIZE, type MatrixSource, type StartedSource } from './matrix.js';
import { cellSchedule, MATRIX_FAULTS, planCell, seedLabel, type CellPlan, type MatrixFault } from './schedules.js';

/** A low idle timeout keeps the stall cells short; the backoff between attempts stays the real one. */
const ENV = { STORAGE_INITIALIZER_READ_TIMEOUT: '1' };

type Outcome = 'identical' | 'clean-error' | 'undetectable' | 'broken';

interface CellRun {
  result: CliResult;
  verdict: TreeVerdict;
  outcome: Outcome;
  requests: number;
  injected: number;
}

function outcomeOf(result: CliResult, verdict: TreeVerdict): Outcome {
  const clean = verdict.wrong.length === 0;
  if (result.code === 0) {
    if (!clean) return 'undetectable';
    return verdict.missing.length === 0 && verdict.workFiles.length === 0 ? 'identical' : 'broken';
  }
  return result.code === 1 && clean && errorLines(result).length === 1 ? 'clean-error' : 'broken';
}

async function runCell(source: StartedSource, work: string, fault: MatrixFault | undefined, plan: CellPlan | undefined): Promise<CellRun> {
  const schedule = fault === undefined || plan === undefined ? () => noFaults : cellSchedule(fault, plan);
  const connection = await source.connect(schedule);
  const dest = freshDest(work);
  let result: CliResult;
  try {
    result = await runCli(['--part-size', PART_SIZE, '--concurrency', '2', ...connection.args(dest)], { env: { ...ENV, ...connection.env }, timeoutMs: 90_000 });
  } finally {
    await Promise.all(connection.proxies.map((p) => p.stop()));
  }
  const verdict = await judgeTree(dest, source.expected);
  const requests = connection.proxies.reduce((n, p) => n + p.stats.requests, 0);
  const injected = connection.proxies.reduce((n, p) => n + p.stats.requests - p.stats.faults.none, 0);
  return { result, verdict, outcome: outcomeOf(result, verdict), requests, injected };
}

function recordCell(source: MatrixSource, fault: string, plan: CellPlan | undefined, run: CellRun, baseline: number): void {
  record('fault-matrix', {
    source: source.name,
    fault,
    // Row and column positions, so the report keeps the matrix's order whatever order cells finished in.
    sourceOrder: MATRIX_SOURCES.indexOf(source),
    faultOrder: MATRIX_FAULTS.findIndex((f) => f.name === fault),
    seed: plan === undefined ? null : `0x${plan.seed.toString(16).padStart(8, '0')}`,
    target: plan?.target ?? null,
    outcome: run.outcome,
    exitCode: run.result.code,
    retries: retriesLogged(run.result),
    faultsInjected: run.injected,
    requests: run.requests,
    extraRequests: run.requests - baseline,
    filesVerified: run.verdict.filesVerified,
    bytesVerified: run.verdict.bytesVerified,
    bytesLost: run.verdict.bytesLost,
    verifies: source.verifies,
    detectsCorruption: source.detectsCorruption,
    error: errorLines(run.result)[0]?.replace(/^\S+ ERROR /, '') ?? null,
  });
}

/** What a cell must show; the messages carry the CLI's stderr to explain a failure. */
function assertCell(source: MatrixSource, fault: MatrixFault, run: CellRun): void {
  const why = `${run.outcome}, exit ${String(run.result.code)}, wrong: ${run.verdict.wrong.join(', ')}, missing: ${run.verdict.missing.join(', ')}\n${run.result.stderr}`;
  assert.ok(run.injected >= 1, `the fault was never injected (${run.requests} requests)\n${run.result.stderr}`);
  const corrupts = fault.fault.kind === 'flip-byte';
  if (corrupts && !source.detectsCorruption) {
    // No checksum to check: the flipped byte lands in a file that looks complete. Shown, not hidden.
    assert.equal(run.outcome, 'undetectable', why);
    assert.ok(run.verdict.bytesLost >= 1 && run.verdict.bytesLost <= run.injected, why);
    return;
  }
  if (fault.expect === 'identical') {
    assert.equal(run.outcome, 'identical', why);
    return;
  }
  assert.ok(run.outcome === 'identical' || run.outcome === 'clean-error', why);
  if (run.outcome === 'clean-error') {
    const line = errorLines(run.result)[0] ?? '';
    assert.match(line, corrupts ? /mismatch .*also on a second download/ : /503|Service Unavailable|unavailable/i, why);
  }
}

/** FAULT_MATRIX_SOURCE=s3 runs only the rows whose name contains it (for working on one source). */
const only = process.env.FAULT_MATRIX_SOURCE;
const sources = MATRIX_SOURCES.filter((source) => only === undefined || source.name.includes(only));

describe('fault matrix: faults x sources through the built CLI', { concurrency: 2 }, () => {
  for (const source of sources) {
    // The control run comes first: it is the baseline the fault runs' extra requests are counted against.
    describe(source.name, { skip: source.skip(), concurrency: 1 }, () => {
      let work: Awaited<ReturnType<typeof tempDir>>;
      let started: StartedSource;
      let baseline = 0;

      before(async () => {
        work = await tempDir('si-fault-matrix-');
        started = await source.start(work.dir);
      });
      after(async () => {
        await started.stop();
        await work[Symbol.asyncDispose]();
      });

      it('control: no fault, byte-identical', async () => {
        const run = await runCell(started, work.dir, undefined, undefined);
        baseline = run.requests;
        recordCell(source, 'none', undefined, run, baseline);
        assert.equal(run.outcome, 'identical', run.result.stderr);
        assert.equal(retriesLogged(run.result), 0, run.result.stderr);
      });

      describe('faults', { concurrency: 2 }, () => {
        for (const fault of MATRIX_FAULTS) {
          const plan = planCell(source.name, fault.name);
          it(`${fault.name} (${seedLabel(plan)})`, async () => {
            const run = await runCell(started, work.dir, fault, plan);
            recordCell(source, fault.name, plan, run, baseline);
            assertCell(source, fault, run);
          });
        }
      });
    });
  }
});
