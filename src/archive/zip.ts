import type { Readable } from 'node:stream';
import zlib from 'node:zlib';
import yauzl, { type Entry, type ZipFile } from 'yauzl';
import { invalidInput } from '../errors.js';
import { ArchiveFormatError } from './format.js';
import type { ArchiveLimits, ExtractionBudget } from './limits.js';
import { refuseEntry, type EntryWriter } from './writer.js';

/** Unix file types in the upper 16 bits of a zip entry's external attributes (st_mode). */
const S_IFMT = 0o170000;
const FILE_TYPES: Record<number, string> = {
  0o010000: 'a FIFO (named pipe)',
  0o020000: 'a character device',
  0o060000: 'a block device',
  0o140000: 'a socket',
};
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
/** Longer symlink targets than this are not paths (PATH_MAX); refusing them bounds the read. */
const MAX_LINK_TARGET = 4096;

/** A yauzl complaint as our format error, unless it is a local I/O failure (which keeps its code). */
function zipError(err: unknown, context: string): Error {
  if (err instanceof ArchiveFormatError) return err;
  if (err instanceof Error && 'syscall' in err) return err;
  return new ArchiveFormatError(`${context}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

/**
 * Unpacks a zip with yauzl, which only parses: every entry is written by EntryWriter, under the
 * same rules as tar. yauzl's own name checks are bypassed (decodeStrings: false, then its
 * decoder by hand) so a hostile name gets our refusal message rather than a bare "invalid
 * relative path". yauzl does not verify CRC-32s; we do, while the data streams to disk.
 */
export async function extractZip(file: string, writer: EntryWriter, budget: ExtractionBudget, limits: ArchiveLimits, signal: AbortSignal): Promise<void> {
  let zip: ZipFile;
  try {
    zip = await yauzl.openPromise(file, { lazyEntries: true, validateEntrySizes: true, decodeStrings: false, autoClose: false });
  } catch (err) {
    throw zipError(err, 'zip data is invalid');
  }
  // yauzl may report a failure while no entry is awaited; an 'error' without a listener would
  // be an uncaught exception, so one listener stays for the whole extraction.
  let failure: unknown;
  zip.on('error', (err: unknown) => { failure ??= err; });
  try {
    if (zip.entryCount > limits.maxEntries) {
      throw invalidInput(`the archive has ${zip.entryCount} entries, more than the limit of ${limits.maxEntries}`);
    }
    for (;;) {
      signal.throwIfAborted();
      const entry = await nextEntry(zip, () => failure);
      if (entry === undefined) return;
      await extractEntry(zip, entry, writer, budget, signal);
    }
  } finally {
    zip.close();
  }
}

/** The next central-directory entry, or undefined after the last. */
function nextEntry(zip: ZipFile, failed: () => unknown): Promise<Entry | undefined> {
  return new Promise((resolve, reject) => {
    const earlier = failed();
    if (earlier !== undefined) {
      reject(zipError(earlier, 'zip data is invalid'));
      return;
    }
    const done = () => {
      zip.off('entry', onEntry);
      zip.off('end', onEnd);
      zip.off('error', onError);
    };
    const onEntry = (entry: Entry) => { done(); resolve(entry); };
    const onEnd = () => { done(); resolve(undefined); };
    const onError = (err: unknown) => { done(); reject(zipError(err, 'zip data is invalid')); };
    zip.on('entry', onEntry);
    zip.on('end', onEnd);
    zip.on('error', onError);
    zip.readEntry();
  });
}

async function extractEntry(zip: ZipFile, entry: Entry, writer: EntryWriter, budget: ExtractionBudget, signal: AbortSignal): Promise<void> {
  const name = entryName(entry);
  budget.addEntry(name);
  const mode = (entry.externalFileAttributes >>> 16) & 0xffff;
  const type = mode & S_IFMT;
  const special = FILE_TYPES[type];
  if (special !== undefined) throw refuseEntry(name, `it is ${special}`);
  if (type === S_IFLNK) {
    if (entry.uncompressedSize > MAX_LINK_TARGET) throw refuseEntry(name, `it is a symbolic link with a target longer than ${MAX_LINK_TARGET} bytes`);
    const chunks: Buffer[] = [];
    for await (const chunk of checked(await openEntry(zip, entry, name), entry, name)) chunks.push(chunk);
    await writer.symlink(name, Buffer.concat(chunks).toString('utf8'));
    return;
  }
  if (name.endsWith('/') || type === S_IFDIR) {
    await writer.directory(name);
    return;
  }
  if (entry.isEncrypted()) throw refuseEntry(name, 'it is encrypted');
  if (entry.compressionMethod !== 0 && entry.compressionMethod !== 8) {
    throw refuseEntry(name, `it uses compression method ${entry.compressionMethod} (only stored and deflate are supported)`);
  }
  budget.checkDeclared(name, entry.uncompressedSize);
  await writer.file(name, (mode & 0o111) !== 0, checked(await openEntry(zip, entry, name), entry, name), signal);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The entry's name: yauzl's decoding (UTF-8 when flagged, the Info-ZIP unicode path field, else
 * CP437) with backslashes made slashes, minus its validation, which would refuse with a bare
 * message. One exception: Info-ZIP's zip on Linux stores UTF-8 names without the UTF-8 flag, so an
 * unflagged name that is valid UTF-8 is read as UTF-8 (CP437 text almost never is).
 */
function entryName(entry: Entry): string {
  const flagged = (entry.generalPurposeBitFlag & 0x800) !== 0;
  if (!flagged && !entry.extraFields.some((field) => field.id === 0x7075)) {
    try {
      return utf8.decode(entry.fileNameRaw).replace(/\\/g, '/');
    } catch {
      // not UTF-8: CP437 below
    }
  }
  return yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, entry.fileNameRaw, entry.extraFields, false);
}

/** An entry's data stream, and the first error it emitted, if any. */
interface OpenedEntry {
  stream: Readable;
  error: { value?: unknown };
}

async function openEntry(zip: ZipFile, entry: Entry, name: string): Promise<OpenedEntry> {
  const stream = await zip.openReadStreamPromise(entry).catch((err: unknown) => {
    throw zipError(err, `zip entry ${JSON.stringify(name)} cannot be read`);
  });
  // The stream starts inflating at once, so it can fail before anyone reads: yauzl's size check,
  // or an inflate error that yauzl re-emits by hand (the stream then never ends). Unheard, the
  // first would be an uncaught exception and the second a hang; `checked` reports both.
  const opened: OpenedEntry = { stream, error: {} };
  stream.on('error', (err: unknown) => { opened.error.value ??= err; });
  return opened;
}

/** An entry's data, with yauzl's errors made ours and the CRC-32 checked at the end. */
async function* checked({ stream, error }: OpenedEntry, entry: Entry, name: string): AsyncGenerator<Buffer> {
  let crc = 0;
  try {
    if (error.value !== undefined) throw zipError(error.value, `zip entry ${JSON.stringify(name)} is corrupt`);
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      crc = zlib.crc32(chunk, crc);
      yield chunk;
    }
  } catch (err) {
    throw zipError(err, `zip entry ${JSON.stringify(name)} is corrupt`);
  } finally {
    stream.destroy();
  }
  if (crc >>> 0 !== entry.crc32 >>> 0) throw new ArchiveFormatError(`zip entry ${JSON.stringify(name)} is corrupt: CRC-32 mismatch`);
}
