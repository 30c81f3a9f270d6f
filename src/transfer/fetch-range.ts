/**
 * Fetches one byte range of one object into its file at the right offsets, surviving transient
 * failures: each retry resumes from the last byte written, a stream that goes quiet for the idle
 * timeout is abandoned, and a body shorter or longer than asked for is never taken as complete.
 */
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { describeError, errorCode, integrity, isRetryable, localIO, network, StorageError } from '../errors.js';
import type { Logger } from '../log.js';
import { readTimeoutText } from '../net/timeouts.js';
import type { ObjectSource, RemoteObject } from '../sources/types.js';
import { backoffDelay, cancelled, sleep } from './retry.js';

/** Network chunks are gathered into writes of this size: fewer syscalls, bounded memory per stream. */
const WRITE_BUFFER_BYTES = 1 << 19;
/** An attempt that made progress does not use up an attempt, but a server that trickles and resets forever must still end. */
const MAX_ATTEMPTS_WITH_PROGRESS_FACTOR = 20;

export interface RangeJob {
  source: ObjectSource;
  object: RemoteObject;
  handle: FileHandle;
  localPath: string;
  start: number;
  /** Exclusive end; undefined when the size is unknown (read to the end of the stream). */
  end: number | undefined;
  /** Bytes already written from `start` (resumed work). */
  done: number;
  /** Whether to ask for a byte range; without one a retry starts the object over. */
  ranged: boolean;
  /** Called after each write with its offset and bytes, in order within this range. */
  onWrite(offset: number, bytes: Uint8Array): void;
  /** Called when an unranged retry starts the object over from byte 0. */
  onRestart(): Promise<void>;
}

export interface RetryPolicy {
  maxAttempts: number;
  idleTimeoutMs: number;
}

async function writeFully(handle: FileHandle, buffer: Buffer, length: number, position: number, path: string): Promise<void> {
  let written = 0;
  try {
    while (written < length) {
      const { bytesWritten } = await handle.write(buffer, written, length - written, position + written);
      written += bytesWritten;
    }
  } catch (err) {
    const reason = errorCode(err) === 'ENOSPC' ? 'no space left on device' : describeError(err);
    throw localIO(`cannot write ${path}: ${reason}`, err);
  }
}

/**
 * Full-size write buffers are reused across ranges: a large file is many ranges, and a fresh pair
 * per range would leave a MiB of garbage per range for the GC to catch up with, on top of the
 * socket's own. Bounded, so a burst of streams does not pin memory for the rest of the run.
 */
const spareBuffers: Buffer[] = [];
const MAX_SPARE_BUFFERS = 32;

function takeBuffer(size: number): Buffer {
  return (size === WRITE_BUFFER_BYTES ? spareBuffers.pop() : undefined) ?? Buffer.allocUnsafe(size);
}

function giveBack(buffer: Buffer): void {
  if (buffer.length === WRITE_BUFFER_BYTES && spareBuffers.length < MAX_SPARE_BUFFERS) spareBuffers.push(buffer);
}

/**
 * Two write buffers per stream: one fills from the network while the other is being written, so
 * the socket keeps flowing during disk writes (one buffer would stall the sender on every write).
 * `job.done` advances only when a write has landed, in order.
 */
class DoubleBufferedWriter {
  private filling: Buffer;
  private spare: Buffer;
  private filled = 0;
  /** Bytes from the range start handed to writes, landed or in flight. */
  private queued: number;
  private inFlight: Promise<void> | undefined;

  constructor(private readonly job: RangeJob, size: number) {
    this.filling = takeBuffer(size);
    this.spare = takeBuffer(size);
    this.queued = job.done;
  }

  get pendingBytes(): number {
    return this.queued - this.job.done + this.filled;
  }

  async push(raw: Buffer): Promise<void> {
    let chunk = raw;
    while (chunk.length > 0) {
      const n = Math.min(chunk.length, this.filling.length - this.filled);
      chunk.copy(this.filling, this.filled, 0, n);
      this.filled += n;
      chunk = chunk.subarray(n);
      if (this.filled === this.filling.length) await this.flush();
    }
  }

  /** Starts writing what is buffered, after the previous write has landed. */
  async flush(): Promise<void> {
    await this.inFlight;
    if (this.filled === 0) return;
    const job = this.job;
    const buffer = this.filling;
    const length = this.filled;
    const offset = job.start + this.queued;
    this.queued += length;
    this.filling = this.spare;
    this.spare = buffer;
    this.filled = 0;
    this.inFlight = writeFully(job.handle, buffer, length, offset, job.localPath).then(() => {
      job.done += length;
      job.onWrite(offset, buffer.subarray(0, length));
    });
    // Awaited by the next flush or close; until then a failed write (ENOSPC) must not count as unhandled.
    void this.inFlight.catch(() => undefined);
  }

  /** Writes everything buffered and waits for it to land. */
  async close(): Promise<void> {
    await this.flush();
    await this.inFlight;
  }

  /** Hands the buffers back once nothing is buffered or being written. */
  release(): void {
    giveBack(this.filling);
    giveBack(this.spare);
  }
}

/** Copies a stream into the file from `job.start + job.done`, advancing `job.done` as writes land. */
async function drain(job: RangeJob, stream: Readable, idleTimeoutMs: number, abortAttempt: (err: Error) => void): Promise<void> {
  const expected = job.end === undefined ? undefined : job.end - job.start;
  const writer = new DoubleBufferedWriter(job, expected === undefined ? WRITE_BUFFER_BYTES : Math.max(1, Math.min(WRITE_BUFFER_BYTES, expected - job.done)));
  const idle = setTimeout(() => {
    const err = network(`${job.source.displayUri}: ${readTimeoutText(idleTimeoutMs)}`);
    abortAttempt(err);
    stream.destroy(err);
  }, idleTimeoutMs);
  try {
    for await (const raw of stream) {
      idle.refresh();
      const chunk = raw as Buffer;
      if (expected !== undefined && job.done + writer.pendingBytes + chunk.length > expected) {
        throw integrity(`${job.source.name} sent more bytes than requested for ${job.object.key}`, { retryable: true });
      }
      await writer.push(chunk);
    }
    await writer.close();
  } finally {
    clearTimeout(idle);
    // Bytes received before a failure are still good: keep them so the retry resumes after them.
    // Buffers go back only after a clean close: a failed write may still hold one.
    await writer.close().then(() => { writer.release(); }, () => undefined);
  }
  if (expected !== undefined && job.done < expected) {
    throw network(`${job.source.name} ended the body of ${job.object.key} early (${job.done} of ${expected} bytes)`);
  }
}

export async function fetchRange(job: RangeJob, policy: RetryPolicy, signal: AbortSignal, log: Logger): Promise<void> {
  let failures = 0;
  let attempts = 0;
  for (;;) {
    if (job.end !== undefined && job.start + job.done >= job.end) return;
    if (signal.aborted) throw cancelled(signal);
    if (!job.ranged && job.done > 0) {
      job.done = 0; // no ranges: the only way to resume is to start over
      await job.onRestart();
    }
    const attempt = new AbortController();
    const onAbort = (): void => { attempt.abort(signal.reason); };
    signal.addEventListener('abort', onAbort, { once: true });
    const doneBefore = job.done;
    attempts++;
    try {
      const range = job.ranged && job.end !== undefined ? { start: job.start + job.done, end: job.end } : undefined;
      const stream = await job.source.read(job.object, range, attempt.signal);
      await drain(job, stream, policy.idleTimeoutMs, (err) => { attempt.abort(err); });
      return;
    } catch (err) {
      // The run may have been stopped while this attempt was awaited.
      if (signal.aborted as boolean) throw cancelled(signal);
      const failure = attempt.signal.aborted && attempt.signal.reason instanceof StorageError ? attempt.signal.reason : err;
      if (!isRetryable(failure)) throw failure;
      if (job.done === doneBefore) failures++;
      if (failures >= policy.maxAttempts || attempts >= policy.maxAttempts * MAX_ATTEMPTS_WITH_PROGRESS_FACTOR) {
        throw new StorageError(failure instanceof StorageError ? failure.kind : 'Network',
          `${describeError(failure)} (gave up after ${attempts} attempts)`, { cause: failure });
      }
      const delay = backoffDelay(failures, failure instanceof StorageError ? failure.retryAfterMs : undefined);
      log.warn(`retrying ${job.object.key} from byte ${job.start + job.done} in ${(delay / 1000).toFixed(1)} s: ${describeError(failure)}`);
      await sleep(delay, signal);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }
}
