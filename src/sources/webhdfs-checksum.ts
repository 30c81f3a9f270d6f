/**
 * What WebHDFS's GETFILECHECKSUM answer can be verified as. HDFS publishes one of:
 *
 * - `MD5-of-<crcPerBlock>MD5-of-<bytesPerCRC>CRC32C` (or `...CRC32`), the default: an MD5 of the
 *   blocks' MD5s of their chunk CRCs. The engine recomputes it from the bytes given the chunk size
 *   and where each block ends. A file of one block needs no more. A file of several blocks usually
 *   has every block but the last `blockSize` long, but not when it was concatenated or appended to
 *   with new blocks, and nothing in the answer tells (crcPerBlock counts only the first block's
 *   CRCs, or is 0 for a single block): so its block lengths, from the namenode's block locations,
 *   must come with it, or it is left to the size check. Erasure-coded files digest block groups,
 *   not blocks: size check too.
 * - `COMPOSITE-CRC32C` (or `-CRC32`), with dfs.checksum.combine.mode=COMPOSITE_CRC: a CRC of the
 *   whole file whatever its layout, which is the plain CRC of its bytes.
 *
 * The `bytes` hex is Hadoop's serialization buffer as a whole, so it may run on past `length`
 * bytes (zeros); only the first `length` bytes are the value.
 */
import type { Checksum } from './types.js';

/** The FileStatus fields the choice depends on. */
export interface ChecksumFileStatus {
  length: number;
  blockSize?: unknown;
  ecBit?: unknown;
  ecPolicy?: unknown;
}

/**
 * Whether verifying by `value` needs the file's block lengths: an MD5-of-MD5 answer for a file of
 * more than one block (Hadoop reports a crcPerBlock other than 0 only then; a file longer than its
 * block size has more than one block whatever it reports).
 */
export function spansBlocks(value: unknown, status: ChecksumFileStatus): boolean {
  const algorithm = typeof value === 'object' && value !== null ? (value as Record<string, unknown>).algorithm : undefined;
  const md5md5 = typeof algorithm === 'string' ? /^MD5-of-(\d+)MD5-of-/.exec(algorithm) : null;
  if (md5md5 === null) return false;
  return md5md5[1] !== '0' || (typeof status.blockSize === 'number' && status.length > status.blockSize);
}

/**
 * The lengths of a file's blocks, in order, from a GETFILEBLOCKLOCATIONS answer
 * (`{"BlockLocations":{"BlockLocation":[{"offset","length",...}]}}`, Hadoop 3.2+) or a
 * GET_BLOCK_LOCATIONS one (`{"LocatedBlocks":{"locatedBlocks":[{"startOffset","block":{"numBytes"}}]}}`),
 * or why they cannot be trusted: each block must start where the one before it ended.
 */
export function blockLengthsFrom(answer: Record<string, unknown>): number[] | string {
  const field = (value: unknown, name: string): unknown => (typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[name] : undefined);
  const locations = field(answer.BlockLocations, 'BlockLocation');
  const located = field(answer.LocatedBlocks, 'locatedBlocks');
  let blocks: { offset: unknown; length: unknown }[];
  if (Array.isArray(locations)) blocks = locations.map((b) => ({ offset: field(b, 'offset'), length: field(b, 'length') }));
  else if (Array.isArray(located)) blocks = located.map((b) => ({ offset: field(b, 'startOffset'), length: field(field(b, 'block'), 'numBytes') }));
  else return 'the answer has no block list';
  const lengths: number[] = [];
  let at = 0;
  for (const { offset, length } of blocks) {
    if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0) return 'its block list has a malformed length';
    if (offset !== at) return `its block list has a block at ${String(offset)} where ${at} was expected`;
    lengths.push(length);
    at += length;
  }
  return lengths;
}

/**
 * The checksum to verify `status`'s file by, or why there is none (for a debug line).
 * `blockLengths` are the file's block lengths (blockLengthsFrom), needed when spansBlocks says so.
 */
export function checksumFromFileChecksum(value: unknown, status: ChecksumFileStatus, blockLengths?: readonly number[]): Checksum | string {
  if (typeof value !== 'object' || value === null) return 'the answer has no FileChecksum';
  const { algorithm, bytes, length } = value as Record<string, unknown>;
  if (typeof algorithm !== 'string' || typeof bytes !== 'string' || typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0
    || !/^(?:[0-9a-fA-F]{2})*$/.test(bytes) || bytes.length < 2 * length) {
    return 'its FileChecksum is malformed';
  }
  const hex = bytes.slice(0, 2 * length).toLowerCase();
  const composite = /^COMPOSITE-(CRC32C?)$/.exec(algorithm);
  if (composite !== null && length === 4) return { algorithm: composite[1] === 'CRC32C' ? 'crc32c' : 'crc32', hex };
  const md5md5 = /^MD5-of-(\d+)MD5-of-(\d+)(CRC32C?)$/.exec(algorithm);
  if (md5md5 === null || length !== 28) return `its checksum algorithm ${algorithm} is not one this client computes`;
  const bytesPerCrc = Number.parseInt(hex.slice(0, 8), 16);
  const crcPerBlock = Number(BigInt(`0x${hex.slice(8, 24)}`));
  if (String(bytesPerCrc) !== md5md5[2] || String(crcPerBlock) !== md5md5[1]) return `its FileChecksum ${algorithm} disagrees with its bytes`;
  if (status.ecBit === true || (typeof status.ecPolicy === 'string' && status.ecPolicy !== '')) return 'it is erasure-coded (its checksum digests block groups)';
  const blockSize = status.blockSize;
  if (typeof blockSize !== 'number' || !Number.isSafeInteger(blockSize) || bytesPerCrc <= 0 || blockSize < bytesPerCrc) {
    return `its block size (${String(blockSize)}) or bytes per CRC (${bytesPerCrc}) is unusable`;
  }
  const digest = md5md5[3] === 'CRC32C' ? 'hdfs-md5md5crc32c' : 'hdfs-md5md5crc32';
  if (blockLengths === undefined) {
    if (crcPerBlock !== 0 || status.length > blockSize) return 'it has several blocks and their lengths are unknown';
    return { algorithm: digest, hex, layout: { bytesPerCrc, blockSize } };
  }
  const total = blockLengths.reduce((sum, n) => sum + n, 0);
  if (total !== status.length) return `its blocks add up to ${total} bytes, not its length ${status.length} (it changed while listed)`;
  if (blockLengths.includes(0)) return 'it has an empty block';
  const first = blockLengths[0] ?? 0;
  if (crcPerBlock !== (blockLengths.length > 1 ? Math.ceil(first / bytesPerCrc) : 0)) {
    return `its FileChecksum (${crcPerBlock} CRCs in the first block) disagrees with its ${blockLengths.length} blocks (the first of ${first} bytes)`;
  }
  const even = blockLengths.every((n, i) => (i === blockLengths.length - 1 ? n <= blockSize : n === blockSize));
  return { algorithm: digest, hex, layout: even ? { bytesPerCrc, blockSize } : { bytesPerCrc, blockSize, blockLengths: [...blockLengths] } };
}
