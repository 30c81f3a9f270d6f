import { open } from 'node:fs/promises';
import path from 'node:path';

/** The archive kinds we unpack after a single-file download. */
export type ArchiveFormat = 'zip' | 'tar' | 'tar.gz' | 'tar.bz2' | 'tar.xz' | 'tar.zst';

/** The outer layer of a file, as its first bytes say. 'tar' means plain, uncompressed tar. */
export type Codec = 'zip' | 'tar' | 'gzip' | 'bzip2' | 'xz' | 'zstd';

/**
 * Data that is not what its format promises (bad magic, corrupt stream, truncated archive).
 * extractArchive turns it into one "The file format is not valid" InvalidInput error; keeping it a
 * distinct class lets that mapping tell format problems from local I/O failures.
 */
export class ArchiveFormatError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ArchiveFormatError';
  }
}

// Longest suffix first, so "x.tar.gz" is not taken for a plain ".gz" (which we do not unpack).
const SUFFIXES: readonly (readonly [string, ArchiveFormat])[] = [
  ['.tar.gz', 'tar.gz'], ['.tgz', 'tar.gz'],
  ['.tar.bz2', 'tar.bz2'], ['.tbz2', 'tar.bz2'],
  ['.tar.xz', 'tar.xz'], ['.txz', 'tar.xz'],
  ['.tar.zst', 'tar.zst'], ['.tzst', 'tar.zst'],
  ['.tar', 'tar'],
  ['.zip', 'zip'],
];

/**
 * The archive format a file name announces, or undefined when the name is not an archive's.
 * Decided by name only, on purpose: model.pt, .npz or .keras files are zip containers inside, and
 * must stay as downloaded.
 */
export function archiveFormatFromName(fileName: string): ArchiveFormat | undefined {
  const lower = path.basename(fileName).toLowerCase();
  for (const [suffix, format] of SUFFIXES) {
    // A name that is only the suffix (".zip") is a hidden file, not an archive.
    if (lower.endsWith(suffix) && lower.length > suffix.length) return format;
  }
  return undefined;
}

/** The codec a format's bytes must start with. */
export function codecOf(format: ArchiveFormat): Codec {
  switch (format) {
    case 'zip': return 'zip';
    case 'tar': return 'tar';
    case 'tar.gz': return 'gzip';
    case 'tar.bz2': return 'bzip2';
    case 'tar.xz': return 'xz';
    case 'tar.zst': return 'zstd';
  }
}

/** The format a codec implies when only the bytes are known (compressed data is assumed to hold tar). */
function formatOf(codec: Codec): ArchiveFormat {
  switch (codec) {
    case 'zip': return 'zip';
    case 'tar': return 'tar';
    case 'gzip': return 'tar.gz';
    case 'bzip2': return 'tar.bz2';
    case 'xz': return 'tar.xz';
    case 'zstd': return 'tar.zst';
  }
}

/** How many leading bytes detectCodec needs to see everything it checks (tar's magic sits at 257). */
export const SNIFF_BYTES = 512;

const startsWith = (head: Uint8Array, magic: readonly number[], offset = 0) =>
  head.length >= offset + magic.length && magic.every((byte, i) => head[offset + i] === byte);

/** Names the codec from a file's first bytes (see SNIFF_BYTES), or undefined for anything else. */
export function detectCodec(head: Uint8Array): Codec | undefined {
  if (startsWith(head, [0x1f, 0x8b])) return 'gzip';
  // "BZh" then the block size digit 1-9.
  if (startsWith(head, [0x42, 0x5a, 0x68]) && head.length > 3 && (head[3] ?? 0) >= 0x31 && (head[3] ?? 0) <= 0x39) return 'bzip2';
  if (startsWith(head, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return 'xz';
  if (startsWith(head, [0x28, 0xb5, 0x2f, 0xfd])) return 'zstd';
  // A local file header, or the end record of an empty zip.
  if (startsWith(head, [0x50, 0x4b, 0x03, 0x04]) || startsWith(head, [0x50, 0x4b, 0x05, 0x06])) return 'zip';
  // POSIX "ustar\0" and GNU "ustar  " both begin with these five bytes.
  if (startsWith(head, [0x75, 0x73, 0x74, 0x61, 0x72], 257)) return 'tar';
  return undefined;
}

/** Reads the first SNIFF_BYTES of a file. */
export async function readHead(file: string): Promise<Buffer> {
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, SNIFF_BYTES, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** The archive format a file's bytes show, whatever its name; undefined when they show none. */
export async function sniffArchiveFormat(file: string): Promise<ArchiveFormat | undefined> {
  const codec = detectCodec(await readHead(file));
  return codec === undefined ? undefined : formatOf(codec);
}
