import { createReadStream } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describeError, errorCode, invalidInput, localIO, StorageError } from '../errors.js';
import type { Summary } from '../sources/types.js';
import { createDecompressor } from './decompress.js';
import { ArchiveFormatError, archiveFormatFromName, codecOf, detectCodec, readHead, type ArchiveFormat, type Codec } from './format.js';
import { ExtractionBudget, type ArchiveLimits } from './limits.js';
import { TarSink } from './tar.js';
import { EntryWriter } from './writer.js';
import { extractZip } from './zip.js';

/** What was unpacked: `files` counts regular files and links (not directories), `bytes` the data written. */
export interface ExtractResult extends Summary {
  format: ArchiveFormat;
}

const CODEC_NAMES: Record<Codec, string> = {
  zip: 'a zip archive',
  tar: 'an uncompressed tar archive',
  gzip: 'gzip data',
  bzip2: 'bzip2 data',
  xz: 'xz data',
  zstd: 'zstd data',
};

/**
 * Unpacks `file` into the existing or new directory `dest`, refusing anything that would land
 * outside it (see EntryWriter) and stopping at the first limit crossed.
 *
 * The format comes from the file name (archiveFormatFromName); the first bytes must then show the
 * same codec, or the file is refused rather than guessed at. Everything is streamed, so memory
 * stays bounded whatever the archive's size.
 *
 * On failure the promise rejects with a StorageError: InvalidInput for a refused entry, a crossed
 * limit or invalid data ("Failed to unpack archive file NAME. The file format is not valid: ..."),
 * LocalIO for a local write or read failure, Cancelled when `signal` aborts. Entries written before
 * the failure stay in `dest`; this function removes nothing, so the caller should extract into a
 * directory of its own and discard it on failure.
 */
export async function extractArchive(file: string, dest: string, limits: ArchiveLimits, signal: AbortSignal): Promise<ExtractResult> {
  const name = path.basename(file);
  try {
    signal.throwIfAborted();
    const format = archiveFormatFromName(name);
    if (format === undefined) throw new ArchiveFormatError('the name does not end in a known archive extension');
    const expected = codecOf(format);
    const actual = detectCodec(await readHead(file));
    // Old (pre-POSIX) tar archives carry no magic; for them the parser's header checksums decide.
    if (actual !== expected && !(expected === 'tar' && actual === undefined)) {
      throw new ArchiveFormatError(`the name says ${format} but the content is ${actual === undefined ? 'not a known archive or compression format' : CODEC_NAMES[actual]}`);
    }
    const archiveBytes = (await stat(file)).size;
    await mkdir(dest, { recursive: true });
    const budget = new ExtractionBudget(limits, archiveBytes);
    const writer = new EntryWriter(dest, budget);
    if (expected === 'zip') {
      await extractZip(file, writer, budget, limits, signal);
    } else {
      const stages: Duplex[] = expected === 'tar' ? [] : [createDecompressor(expected)];
      const sink = new TarSink(writer, budget, signal);
      try {
        await pipeline([createReadStream(file), ...stages, sink], { signal });
      } finally {
        // A failed pipeline settles before the entry being written has closed its file.
        await sink.settled();
      }
    }
    return { files: writer.files, bytes: budget.bytes, format };
  } catch (err) {
    throw asStorageError(err, name, signal);
  }
}

/** One clear StorageError for whatever stopped the extraction. */
function asStorageError(err: unknown, name: string, signal: AbortSignal): StorageError {
  if (signal.aborted || (err instanceof Error && err.name === 'AbortError')) {
    return new StorageError('Cancelled', `Unpacking archive file ${name} was cancelled`, { cause: err });
  }
  if (err instanceof ArchiveFormatError) {
    return invalidInput(`Failed to unpack archive file ${name}. The file format is not valid: ${err.message}`, err);
  }
  if (err instanceof StorageError) {
    return new StorageError(err.kind, `Failed to unpack archive file ${name}: ${err.message}`, { cause: err, retryable: err.retryable });
  }
  // A system call's failure (reading the archive, writing to disk) is local, not the archive's fault.
  if (typeof err === 'object' && err !== null && 'syscall' in err && errorCode(err) !== undefined) {
    return localIO(`Failed to unpack archive file ${name}: ${describeError(err)}`, err);
  }
  // Anything else came from a decoder or parser meeting data it does not accept.
  return invalidInput(`Failed to unpack archive file ${name}. The file format is not valid: ${describeError(err)}`, err);
}
