/**
 * What WebHDFS's GETFILECHECKSUM answer can be verified as. HDFS publishes one of:
 *
 * - `MD5-of-<crcPerBlock>MD5-of-<bytesPerCRC>CRC32C` (or `...CRC32`), the default: an MD5 of the
 *   blocks' MD5s of their chunk CRCs. The engine recomputes it from the bytes given the chunk and
 *   block sizes, which holds only while every block but the last is `blockSize` long. That is so
 *   unless a file was concatenated or appended to with new blocks; the published crcPerBlock (CRCs
 *   in the first block, or 0 for a file of one block) shows many such files, and those are left to
 *   the size check. Erasure-coded files digest block groups, not blocks: size check too.
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

/** The checksum to verify `status`'s file by, or why there is none (for a debug line). */
export function checksumFromFileChecksum(value: unknown, status: ChecksumFileStatus): Checksum | string {
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
  const blocks = Math.ceil(status.length / blockSize);
  if (crcPerBlock !== (blocks > 1 ? Math.ceil(blockSize / bytesPerCrc) : 0)) return `its blocks are not all ${blockSize} bytes (concatenated, or appended with new blocks)`;
  return { algorithm: md5md5[3] === 'CRC32C' ? 'hdfs-md5md5crc32c' : 'hdfs-md5md5crc32', hex, layout: { bytesPerCrc, blockSize } };
}
