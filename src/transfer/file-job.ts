/**
 * One file of a download: decides whether it is already complete or can be resumed, splits it into
 * ranged parts, tracks their progress in the resume journal, and publishes it under its final name
 * only once its size and checksum are verified.
 */
import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { errorCode, integrity, localFailure } from '../errors.js';
import type { Logger } from '../log.js';
import type { ObjectSource } from '../sources/types.js';
import { SequentialHasher } from './checksum.js';
import type { ExistingFiles } from './existing-files.js';
import type { RangeJob } from './fetch-range.js';
import type { PlannedFile } from './plan.js';
import { objectIdentity, readJournal, removeJournal, writeJournal, type JournalState } from './resume-journal.js';

const JOURNAL_INTERVAL_MS = 1000;
/**
 * Also saved after this much progress, so what a kill -9 costs is bounded in bytes whatever the
 * network's speed (at 1 GB/s a second is a gigabyte to fetch again).
 */
const JOURNAL_BYTES = 8 * 2 ** 20;

export const PART_SUFFIX = '.part';

export interface FileJobOptions {
  /** What the destination held at the start; files it did not hold need no lookups. */
  existing: ExistingFiles;
  partSize: number;
  log: Logger;
  /** Counts bytes as they land, for progress. */
  onBytes(n: number): void;
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    const s = await stat(path);
    return s.isFile() ? s.size : undefined;
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return undefined;
    throw localFailure('inspect', path, err);
  }
}

export class FileJob {
  readonly file: PlannedFile;
  readonly partPath: string;
  readonly ranges: RangeJob[] = [];
  /** Bytes that were already on disk from an earlier run. */
  resumedBytes = 0;
  private readonly source: ObjectSource;
  private readonly options: FileJobOptions;
  private handle: FileHandle | undefined;
  private hasher: SequentialHasher | undefined;
  private journal: JournalState | undefined;
  private journalDirty = false;
  private journalWrite: Promise<void> = Promise.resolve();
  private lastJournalAt = 0;
  private bytesSinceJournal = 0;
  private journalSaving = false;
  /** Whether a journal file may exist, so finishing knows whether to remove one. */
  private journalOnDisk = false;
  private pending = 0;

  private constructor(source: ObjectSource, file: PlannedFile, options: FileJobOptions) {
    this.source = source;
    this.file = file;
    this.options = options;
    this.partPath = `${file.localPath}${PART_SUFFIX}`;
  }

  /**
   * Prepares a file, or returns 'complete' when a file of the expected size already sits under the
   * final name (a restarted init container must not fetch it again; only verified files get there).
   */
  static async prepare(source: ObjectSource, file: PlannedFile, options: FileJobOptions): Promise<FileJob | 'complete'> {
    const size = file.object.size;
    if (size !== undefined && options.existing.mayExist(file.relativePath) && (await sizeOf(file.localPath)) === size) return 'complete';
    const job = new FileJob(source, file, options);
    await job.open();
    return job;
  }

  private async open(): Promise<void> {
    const { object } = this.file;
    const size = object.size;
    const resumable = this.source.capabilities.ranges && size !== undefined;
    let partCount = resumable && size > this.options.partSize ? Math.ceil(size / this.options.partSize) : 1;
    let partSize = partCount === 1 ? Math.max(size ?? 0, 1) : this.options.partSize;
    let done: number[] = new Array<number>(partCount).fill(0);

    const hasJournal = resumable && this.options.existing.mayExist(`${this.file.relativePath}${PART_SUFFIX}.json`);
    const previous = hasJournal ? await readJournal(this.partPath) : 'absent';
    if (typeof previous === 'object' && await this.canResume(previous)) {
      // The earlier run's part layout wins, so a changed --part-size does not waste its work.
      partSize = previous.partSize;
      partCount = previous.done.length;
      done = previous.done;
      this.handle = await this.openFile('r+');
      this.resumedBytes = done.reduce((a, b) => a + b, 0);
    } else {
      if (previous !== 'absent') await removeJournal(this.partPath);
      this.handle = await this.openFile('w+');
      // Parts written out of order need the full length for the resume check; one part extends it itself.
      if (size !== undefined && partCount > 1) {
        await this.handle.truncate(size).catch(async (err: unknown) => {
          await this.discard(); // an empty .part would only be in the way
          throw localFailure('write', this.partPath, err, size);
        });
      }
    }
    if (resumable) this.journal = { size, identity: objectIdentity(object), partSize, done };
    // A file that completes within the first interval never needs a journal.
    this.lastJournalAt = Date.now();
    this.journalOnDisk = this.resumedBytes > 0 || typeof previous === 'object';
    if (object.checksum !== undefined && size !== undefined) this.hasher = new SequentialHasher(object.checksum, size);

    for (let i = 0; i < partCount; i++) {
      const start = i * partSize;
      const end = size === undefined ? undefined : start + this.partLength(i, partCount, partSize);
      const range: RangeJob = {
        source: this.source, object, handle: this.handle, localPath: this.partPath,
        start, end, done: done[i] ?? 0, ranged: resumable,
        onWrite: (offset, bytes) => {
          this.hasher?.feed(offset, bytes);
          this.options.onBytes(bytes.length);
          this.recordProgress(i, range.done, bytes.length);
        },
        onRestart: async () => {
          if (object.checksum !== undefined && size !== undefined) this.hasher = new SequentialHasher(object.checksum, size);
          if (size === undefined) await range.handle.truncate(0);
        },
      };
      if (end === undefined || range.start + range.done < end) this.ranges.push(range);
    }
    this.pending = this.ranges.length;
  }

  /** Whether a journal describes this very object and its claims fit the partial file on disk. */
  private async canResume(journal: JournalState): Promise<boolean> {
    const size = this.file.object.size;
    if (size === undefined || journal.identity !== objectIdentity(this.file.object) || journal.size !== size) return false;
    if (journal.partSize < 1 || journal.done.length !== Math.max(1, Math.ceil(size / journal.partSize))) return false;
    const onDisk = await sizeOf(this.partPath);
    if (onDisk === undefined) return false;
    return journal.done.every((d, i) => d <= this.partLength(i, journal.done.length, journal.partSize) && i * journal.partSize + d <= onDisk);
  }

  private partLength(index: number, count: number, partSize: number): number {
    const size = this.file.object.size ?? 0;
    return index === count - 1 ? size - index * partSize : partSize;
  }

  private async openFile(flags: 'w+' | 'r+'): Promise<FileHandle> {
    try {
      return await open(this.partPath, flags);
    } catch (err) {
      throw localFailure('write', this.partPath, err);
    }
  }

  private recordProgress(index: number, done: number, bytes: number): void {
    if (this.journal === undefined) return;
    this.journal.done[index] = done;
    this.journalDirty = true;
    this.bytesSinceJournal += bytes;
    // On a slow file system saves are skipped while one is in flight rather than queued up.
    if (this.journalSaving) return;
    const now = Date.now();
    if (now - this.lastJournalAt >= JOURNAL_INTERVAL_MS || this.bytesSinceJournal >= JOURNAL_BYTES) {
      this.lastJournalAt = now;
      this.saveJournal();
    }
  }

  private saveJournal(): void {
    const journal = this.journal;
    if (journal === undefined || !this.journalDirty) return;
    this.journalDirty = false;
    this.bytesSinceJournal = 0;
    const snapshot = { ...journal, done: [...journal.done] };
    this.journalOnDisk = true;
    this.journalSaving = true;
    // Chained, so two saves never race on the temporary file; a failed save only costs re-fetching.
    this.journalWrite = this.journalWrite.then(() => writeJournal(this.partPath, snapshot)).catch(() => undefined)
      .finally(() => { this.journalSaving = false; });
  }

  /** Marks one range finished; true when it was the last one. */
  rangeFinished(): boolean {
    this.pending--;
    return this.pending === 0;
  }

  /**
   * After a failure or cancellation: keeps a resumable partial file and its journal for the next
   * run, and removes one that could only be started over.
   */
  async suspend(): Promise<void> {
    if (this.journal === undefined) {
      await this.discard();
      return;
    }
    this.saveJournal();
    await this.journalWrite;
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
  }

  /** Verifies size and checksum, then moves the file to its final name. */
  async finish(): Promise<void> {
    const handle = this.handle;
    if (handle === undefined) throw new Error(`file ${this.partPath} finished twice`);
    const { object } = this.file;
    try {
      const actualSize = (await handle.stat()).size;
      if (object.size !== undefined && actualSize !== object.size) {
        throw integrity(`size mismatch for ${this.file.relativePath}: expected ${object.size} bytes, got ${actualSize}`, { retryable: true });
      }
      // Only while the source still vouches for the checksum (see RemoteObject.checksum).
      if (this.hasher !== undefined && object.checksum !== undefined) {
        const actual = await this.hasher.finish(handle, actualSize);
        if (actual !== this.hasher.checksum.hex) {
          throw integrity(`${this.hasher.checksum.algorithm} mismatch for ${this.file.relativePath}: expected ${this.hasher.checksum.hex}, got ${actual}`, { retryable: true });
        }
      }
    } catch (err) {
      await this.discard();
      throw err;
    }
    await handle.close();
    this.handle = undefined;
    await this.journalWrite;
    try {
      await rename(this.partPath, this.file.localPath);
    } catch (err) {
      throw localFailure(`rename ${this.partPath} to`, this.file.localPath, err);
    }
    if (this.journalOnDisk) await removeJournal(this.partPath);
  }

  /** Throws the partial file away: its bytes cannot be trusted. */
  async discard(): Promise<void> {
    this.journal = undefined;
    await this.journalWrite;
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
    await rm(this.partPath, { force: true });
    if (this.journalOnDisk) await removeJournal(this.partPath);
  }
}
