/**
 * The transfer engine: list -> plan -> fetch every file (parts of large files in parallel) with
 * bounded concurrency, retries and resume, verification and atomic publication. Every object
 * source goes through here; backends never write files.
 */
import { mkdir } from 'node:fs/promises';
import { describeError, isOutOfSpace, localFailure, StorageError } from '../errors.js';
import type { Context, ObjectSource, RemoteObject } from '../sources/types.js';
import { ExistingFiles } from './existing-files.js';
import { fetchRange, type RangeJob } from './fetch-range.js';
import { FileJob } from './file-job.js';
import { planDownloads, type Plan, type PlannedFile } from './plan.js';
import { formatBytes, Progress } from './progress.js';
import { cancelled, withRetry } from './retry.js';
import { SafeDirectories } from './safe-path.js';

export interface TransferResult {
  plan: Plan;
  files: number;
  bytes: number;
  fetchedBytes: number;
  reusedBytes: number;
  seconds: number;
}

interface Task {
  job: FileJob;
  range: RangeJob;
}

/** A promise with its resolve function (Promise.withResolvers needs Node 22). */
function signalPromise(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((r) => { resolve = r; });
  return { promise, resolve };
}

async function listAll(source: ObjectSource, signal: AbortSignal): Promise<RemoteObject[]> {
  const objects: RemoteObject[] = [];
  for await (const object of source.list(signal)) objects.push(object);
  return objects;
}

async function ensureDestination(dest: string): Promise<void> {
  try {
    await mkdir(dest, { recursive: true });
  } catch (err) {
    throw localFailure('create destination', dest, err);
  }
}

export async function transferObjects(source: ObjectSource, dest: string, ctx: Context): Promise<TransferResult> {
  const { settings, log } = ctx;
  const objects = await withRetry(`listing ${source.displayUri}`, settings.transfer.maxAttempts, ctx.signal, log, () => listAll(source, ctx.signal));
  const plan = planDownloads(source, objects, { dest, allow: settings.patterns.allow, ignore: settings.patterns.ignore });
  log.info(`found ${plan.files.length} file(s), ${formatBytes(plan.totalBytes)} in ${source.displayUri}`);
  await ensureDestination(dest);

  const tty = settings.transfer.progressBar && settings.log.format === 'text' && process.stderr.isTTY ? process.stderr : undefined;
  const progress = new Progress({ log, intervalMs: settings.transfer.progressIntervalMs, tty });
  progress.start(plan.files.length, plan.totalBytes);

  // One controller for the whole run: the first fatal failure stops every other stream.
  const run = new AbortController();
  const stopRun = (): void => { run.abort(ctx.signal.reason); };
  ctx.signal.addEventListener('abort', stopRun, { once: true });
  const directories = new SafeDirectories(dest);
  const openJobs = new Set<FileJob>();
  const policy = { maxAttempts: settings.transfer.maxAttempts, idleTimeoutMs: settings.transfer.idleTimeoutMs };
  const existing = await ExistingFiles.scan(dest);
  const jobOptions = { partSize: settings.transfer.partSize, log, existing, onBytes: (n: number) => { progress.addBytes(n); } };

  let skipped = 0;
  const prepare = async (file: PlannedFile): Promise<FileJob | undefined> => {
    await directories.ensureParents(file.segments);
    const job = await FileJob.prepare(source, file, jobOptions);
    if (job === 'complete') {
      log.debug(`skipping ${file.relativePath}: already complete`);
      skipped++;
      progress.reusedBytes += file.object.size ?? 0;
      progress.fileDone();
      return undefined;
    }
    if (job.resumedBytes > 0) {
      log.info(`resuming ${file.relativePath}: ${formatBytes(job.resumedBytes)} already downloaded`);
      progress.reusedBytes += job.resumedBytes;
    }
    openJobs.add(job);
    return job;
  };

  const finish = async (job: FileJob): Promise<void> => {
    try {
      await job.finish();
    } catch (err) {
      // Corrupted in transit (a flipped byte): fetch the whole file once more before giving up.
      if (!(err instanceof StorageError && err.kind === 'Integrity' && err.retryable)) throw err;
      log.warn(`${describeError(err)}; downloading ${job.file.relativePath} again`);
      openJobs.delete(job);
      const again = await FileJob.prepare(source, job.file, jobOptions);
      if (again === 'complete') throw err;
      openJobs.add(again);
      for (const range of again.ranges) await fetchRange(range, policy, run.signal, log);
      await again.finish().catch((second: unknown) => {
        throw second instanceof StorageError ? new StorageError(second.kind, `${second.message} (also on a second download)`) : second;
      });
      job = again;
    }
    openJobs.delete(job);
    progress.fileDone();
    log.debug(`downloaded ${job.file.relativePath}`);
  };

  // Workers take ranges of files already opened first, then open the next file, so the parts of a
  // large file spread over all workers while small files are prepared in parallel.
  const ready: Task[] = [];
  let nextFile = 0;
  let preparing = 0;
  // Workers with nothing to do wait here while another is opening a file whose parts may follow.
  let prepared = signalPromise();
  const worker = async (): Promise<void> => {
    while (!run.signal.aborted) {
      const task = ready.shift();
      if (task !== undefined) {
        await fetchRange(task.range, policy, run.signal, log).catch((err: unknown) => {
          // The operator needs the amount to free, which only the whole run knows.
          if (!isOutOfSpace(err)) throw err;
          throw localFailure('write', task.range.localPath, err, plan.totalBytes - progress.fetchedBytes - progress.reusedBytes);
        });
        if (task.job.rangeFinished()) await finish(task.job);
        continue;
      }
      const file = plan.files[nextFile];
      if (file === undefined) {
        if (preparing === 0) return;
        await prepared.promise;
        continue;
      }
      nextFile++;
      preparing++;
      let job: FileJob | undefined;
      try {
        job = await prepare(file);
      } finally {
        preparing--;
        const opened = job;
        if (opened !== undefined) ready.push(...opened.ranges.map((range) => ({ job: opened, range })));
        prepared.resolve();
        prepared = signalPromise();
      }
      if (job !== undefined && job.ranges.length === 0) await finish(job); // 0-byte files and fully resumed ones
    }
  };

  let failure: Error | undefined;
  const workers = Array.from({ length: settings.transfer.concurrency }, () =>
    worker().catch((err: unknown) => {
      failure ??= err instanceof Error ? err : new Error(String(err));
      run.abort(err);
    }));
  await Promise.all(workers);
  ctx.signal.removeEventListener('abort', stopRun);
  progress.stop();
  await Promise.all([...openJobs].map((job) => job.suspend()));
  if (ctx.signal.aborted) {
    // A stopped run (deadline, SIGTERM) says how far it got; the partial files stay for the next run.
    const stopped = cancelled(ctx.signal);
    throw new StorageError(stopped.kind, `${stopped.message} after ${formatBytes(progress.fetchedBytes + progress.reusedBytes)} of ${formatBytes(plan.totalBytes)}`, { cause: stopped });
  }
  if (failure !== undefined) throw failure;
  if (skipped > 0) log.info(`skipped ${skipped} file(s) already complete from an earlier run (${formatBytes(progress.reusedBytes)} reused)`);

  const seconds = progress.elapsedSeconds();
  return {
    plan,
    files: plan.files.length,
    bytes: progress.fetchedBytes + progress.reusedBytes,
    fetchedBytes: progress.fetchedBytes,
    reusedBytes: progress.reusedBytes,
    seconds,
  };
}
