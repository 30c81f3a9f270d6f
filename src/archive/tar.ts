import { Writable } from 'node:stream';
import { Parser, type ReadEntry } from 'tar';
import { ArchiveFormatError } from './format.js';
import type { ExtractionBudget } from './limits.js';
import { refuseEntry, type EntryWriter } from './writer.js';

/**
 * The end of a pipeline that parses tar with node-tar's streaming Parser and writes each entry
 * itself through EntryWriter. node-tar's own extractor is not used: it silently rewrites
 * suspicious paths, where we want a refusal that names the entry.
 *
 * Order and memory: the parser emits the next entry only when the current one's data has been
 * read, entries are handled one after the other (a hard link needs its target complete), and a
 * chunk is not acknowledged until the parser can take more, so at most a chunk or two is
 * buffered whatever the archive holds.
 *
 * Every parser complaint (bad checksum, truncated data, not a tar at all) fails the extraction;
 * node-tar reports them as warnings and would carry on.
 */
export class TarSink extends Writable {
  private readonly parser: Parser;
  private chain: Promise<void> = Promise.resolve();
  private failure: Error | undefined;
  /** The callback of a write waiting for the parser's 'drain'. */
  private writeWaiting: ((err?: Error | null) => void) | undefined;
  /** The callback of _final waiting for the parser's 'end' and the last entry. */
  private finalWaiting: ((err?: Error | null) => void) | undefined;
  private sawFirstChunk = false;
  /** Bytes of tar data received: a tar is whole 512-byte blocks, and node-tar drops a partial last one silently. */
  private received = 0;
  /** The entry whose data is being written, to cut short on failure. */
  private current: ReadEntry | undefined;
  /** Aborts the entry write in progress when the sink fails or is destroyed. */
  private readonly stopEntries = new AbortController();
  private readonly entrySignal: AbortSignal;

  constructor(
    private readonly writer: EntryWriter,
    private readonly budget: ExtractionBudget,
    signal: AbortSignal,
  ) {
    super();
    this.entrySignal = AbortSignal.any([signal, this.stopEntries.signal]);
    // zstd: false keeps node-tar from sniffing zstd itself (on Node 20 its zstd path throws an
    // uncaught error); decompression is done before the parser, always.
    this.parser = new Parser({ zstd: false });
    this.parser.on('entry', (entry: ReadEntry) => { this.enqueue(entry); });
    this.parser.on('ignoredEntry', (entry: ReadEntry) => {
      entry.resume();
      this.fail(entry.meta
        ? new ArchiveFormatError(`a tar ${entry.type} header is larger than 1 MiB`)
        : refuseEntry(entry.path, `its tar entry type (${entry.type}) is not supported`));
    });
    this.parser.on('warn', (_code: string, message: string) => {
      this.fail(new ArchiveFormatError(`tar data is invalid: ${message}`));
    });
    this.parser.on('error', (err: Error) => {
      this.fail(new ArchiveFormatError(`tar data is invalid: ${err.message}`, { cause: err }));
    });
    this.parser.on('drain', () => { this.release(); });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.failure !== undefined) {
      callback(this.failure);
      return;
    }
    if (!this.sawFirstChunk) {
      this.sawFirstChunk = true;
      // node-tar gunzips by itself when the data starts like gzip; a tar does not start so.
      if (chunk[0] === 0x1f && chunk[1] === 0x8b) {
        callback(new ArchiveFormatError('the data inside is compressed again instead of being a tar archive'));
        return;
      }
    }
    this.received += chunk.length;
    let ready: boolean;
    try {
      ready = this.parser.write(chunk);
    } catch (err) {
      callback(new ArchiveFormatError(`tar data is invalid: ${(err as Error).message}`, { cause: err }));
      return;
    }
    // Writing may have emitted a warning or error that failed the extraction.
    const failure = this.failedWith();
    if (failure !== undefined) callback(failure);
    else if (ready) callback();
    else this.writeWaiting = callback;
  }

  override _final(callback: (err?: Error | null) => void): void {
    if (this.failure !== undefined) {
      callback(this.failure);
      return;
    }
    if (this.received % 512 !== 0) {
      callback(new ArchiveFormatError(`the tar data ends inside a 512-byte block after ${this.received} bytes: the archive is truncated`));
      return;
    }
    // The parser's 'end' comes after every entry it emitted has ended; then the last entry's
    // writing still has to finish.
    this.finalWaiting = callback;
    this.parser.once('end', () => {
      void this.chain.then(() => {
        const waiting = this.finalWaiting;
        this.finalWaiting = undefined;
        waiting?.(this.failure);
      });
    });
    this.parser.end();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    // On abort or a failure anywhere in the pipeline: take no new entries, end the data of the
    // one being written (its write then finishes and closes its file), and report only once that
    // is done, so nothing is left writing after extractArchive has returned.
    if (err !== null) this.failure ??= err;
    this.parser.removeAllListeners('entry');
    this.stopEntries.abort(err ?? new Error('the tar stream was closed'));
    this.current?.destroy();
    void this.chain.then(() => { callback(err); });
  }

  /** Resolves once every entry handed to the writer is done with (written, refused or aborted). */
  settled(): Promise<void> {
    return this.chain;
  }

  private enqueue(entry: ReadEntry): void {
    this.chain = this.chain.then(async () => {
      if (this.failure !== undefined) return;
      await this.handle(entry);
    }).catch((err: unknown) => {
      this.fail(err instanceof Error ? err : new Error(String(err)));
    });
  }

  private async handle(entry: ReadEntry): Promise<void> {
    const name = entry.path;
    this.budget.addEntry(name);
    switch (entry.type) {
      case 'File':
      case 'OldFile':
      case 'ContiguousFile': {
        this.budget.checkDeclared(name, entry.size);
        const executable = ((entry.mode ?? 0) & 0o111) !== 0;
        this.current = entry;
        let written: number;
        try {
          written = await this.writer.file(name, executable, readAll(entry), this.entrySignal);
        } finally {
          this.current = undefined;
        }
        if (this.failure !== undefined) return;
        if (written !== entry.size) {
          throw new ArchiveFormatError(`tar data is truncated: entry ${JSON.stringify(name)} has ${written} of its ${entry.size} bytes`);
        }
        return;
      }
      case 'Directory':
      case 'GNUDumpDir':
        entry.resume();
        await this.writer.directory(name);
        return;
      case 'SymbolicLink':
        entry.resume();
        await this.writer.symlink(name, entry.linkpath ?? '');
        return;
      case 'Link':
        entry.resume();
        await this.writer.hardlink(name, entry.linkpath ?? '');
        return;
      case 'CharacterDevice':
        throw refuseEntry(name, 'it is a character device');
      case 'BlockDevice':
        throw refuseEntry(name, 'it is a block device');
      case 'FIFO':
        throw refuseEntry(name, 'it is a FIFO (named pipe)');
      default:
        throw refuseEntry(name, `its tar entry type (${entry.type}) is not supported`);
    }
  }

  private fail(err: Error): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    const waiting = this.writeWaiting ?? this.finalWaiting;
    this.writeWaiting = undefined;
    this.finalWaiting = undefined;
    if (waiting !== undefined) waiting(err);
    else this.destroy(err);
  }

  /** The failure so far; a method, so checks after calls that may fail are not narrowed away. */
  private failedWith(): Error | undefined {
    return this.failure;
  }

  private release(): void {
    const waiting = this.writeWaiting;
    this.writeWaiting = undefined;
    waiting?.(this.failure);
  }
}

/**
 * An entry's data as a plain async iterable. Handing the Minipass stream itself to
 * stream.pipeline would make pipeline treat it as a Node stream, which it only resembles.
 */
async function* readAll(entry: ReadEntry): AsyncGenerator<Buffer> {
  for await (const chunk of entry) yield chunk;
}
