/**
 * Streaming digests for verification. A file's hash is fed in order from offset 0: inline while
 * the first part streams in, then from disk for whatever later parts wrote (see file-job.ts).
 */
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import type { Checksum } from '../sources/types.js';

interface Digest {
  update(bytes: Uint8Array): void;
  hex(): string;
}

const crcHex = (value: number): string => (value >>> 0).toString(16).padStart(8, '0');

/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82f63b78) sliced by 8: eight 256-entry tables in one
 * array, so a 512-byte HDFS chunk is 64 steps of eight table lookups, with no allocation per chunk.
 */
const CRC32C_TABLE = ((): Uint32Array => {
  const table = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = (c & 1) !== 0 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    for (let t = 1; t < 8; t++) {
      const previous = table[(t - 1) * 256 + n] ?? 0;
      table[t * 256 + n] = (previous >>> 8) ^ (table[previous & 0xff] ?? 0);
    }
  }
  return table;
})();

/** Continues a CRC-32C (`crc` as returned before, 0 to start) over bytes[start, end), like zlib's crc32(). */
export function crc32cOf(bytes: Uint8Array, start = 0, end = bytes.length, crc = 0): number {
  return crc32cOfView(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), start, end, crc);
}

/** crc32cOf over a view made once per buffer: eight bytes a step read as two little-endian words. */
function crc32cOfView(view: DataView, start: number, end: number, crc: number): number {
  const t = CRC32C_TABLE;
  let c = ~crc;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const low = c ^ view.getInt32(i, true);
    const high = view.getInt32(i + 4, true);
    c = (t[1792 + (low & 0xff)] ?? 0) ^ (t[1536 + ((low >>> 8) & 0xff)] ?? 0) ^ (t[1280 + ((low >>> 16) & 0xff)] ?? 0) ^ (t[1024 + (low >>> 24)] ?? 0)
      ^ (t[768 + (high & 0xff)] ?? 0) ^ (t[512 + ((high >>> 8) & 0xff)] ?? 0) ^ (t[256 + ((high >>> 16) & 0xff)] ?? 0) ^ (t[high >>> 24] ?? 0);
  }
  for (; i < end; i++) c = (t[(c ^ view.getUint8(i)) & 0xff] ?? 0) ^ (c >>> 8);
  return ~c >>> 0;
}

/**
 * HDFS's file checksum (Hadoop's MD5MD5CRC32FileChecksum, as GETFILECHECKSUM publishes it). Each
 * block (of `blockSize` bytes, or of its own length from `blockLengths` where the file's blocks are
 * uneven: concatenated, or appended with new blocks) is cut into chunks of `bytesPerCrc` (the last of a block may be
 * shorter); the block's digest is the MD5 of its chunks' CRCs, 4 big-endian bytes each. The file's
 * MD5 is over the block MD5s as the HDFS client collects them: in a byte array that starts at 32
 * bytes and doubles when full, all of which it digests, zero padding included. The hex is the
 * serialized value: bytesPerCrc (int32), the first block's CRC count (int64; 0 unless the file has
 * more than one block), the MD5. A file with no block is the fixed value HDFS returns for it: 0, 0, MD5 of 32 zero bytes.
 */
class HdfsFileDigest implements Digest {
  private readonly crc: 'crc32' | 'crc32c';
  private readonly bytesPerCrc: number;
  private readonly blockSize: number;
  private readonly blockLengths: readonly number[];
  /** Length of the current block: its entry in blockLengths, else blockSize. */
  private blockEnd: number;
  /** The current block's CRCs not yet fed to its MD5. */
  private readonly crcs = Buffer.alloc(8192);
  private crcBytes = 0;
  private chunkCrc = 0;
  private chunkFill = 0;
  private blockFill = 0;
  private blockCrcCount = 0;
  private blockHash = createHash('md5');
  private readonly blockMd5s: Buffer[] = [];
  private firstBlockCrcCount = 0;

  constructor(crc: 'crc32' | 'crc32c', layout: Checksum['layout']) {
    const { bytesPerCrc, blockSize, blockLengths = [] } = layout ?? { bytesPerCrc: 0, blockSize: 0 };
    if (!Number.isSafeInteger(bytesPerCrc) || !Number.isSafeInteger(blockSize) || bytesPerCrc < 0 || blockSize < bytesPerCrc) {
      throw new Error(`an HDFS checksum needs whole bytesPerCrc and blockSize (got ${bytesPerCrc}, ${blockSize})`);
    }
    // A block of 0 bytes would never end; the source leaves such files to the size check.
    if (!blockLengths.every((n) => Number.isSafeInteger(n) && n > 0)) throw new Error('an HDFS checksum needs positive whole block lengths');
    this.bytesPerCrc = bytesPerCrc;
    this.blockSize = blockSize;
    this.blockLengths = blockLengths;
    this.blockEnd = blockLengths[0] ?? blockSize;
    this.crc = crc;
  }

  update(bytes: Uint8Array): void {
    if (bytes.length > 0 && this.bytesPerCrc === 0) throw new Error('an HDFS checksum with bytesPerCrc 0 covers only an empty file');
    const view = this.crc === 'crc32c' ? new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength) : undefined;
    let i = 0;
    while (i < bytes.length) {
      // A chunk ends at bytesPerCrc or at the end of its block, whichever comes first.
      const n = Math.min(this.bytesPerCrc - this.chunkFill, this.blockEnd - this.blockFill, bytes.length - i);
      this.chunkCrc = view === undefined ? crc32(bytes.subarray(i, i + n), this.chunkCrc) : crc32cOfView(view, i, i + n, this.chunkCrc);
      i += n;
      this.chunkFill += n;
      this.blockFill += n;
      if (this.chunkFill === this.bytesPerCrc || this.blockFill === this.blockEnd) this.endChunk();
      if (this.blockFill === this.blockEnd) this.endBlock();
    }
  }

  private endChunk(): void {
    if (this.crcBytes === this.crcs.length) this.flushCrcs();
    this.crcs.writeUInt32BE(this.chunkCrc, this.crcBytes);
    this.crcBytes += 4;
    this.blockCrcCount++;
    this.chunkCrc = 0;
    this.chunkFill = 0;
  }

  private flushCrcs(): void {
    this.blockHash.update(this.crcs.subarray(0, this.crcBytes));
    this.crcBytes = 0;
  }

  private endBlock(): void {
    this.flushCrcs();
    this.blockMd5s.push(this.blockHash.digest());
    if (this.blockMd5s.length === 1) this.firstBlockCrcCount = this.blockCrcCount;
    this.blockHash = createHash('md5');
    this.blockCrcCount = 0;
    this.blockFill = 0;
    this.blockEnd = this.blockLengths[this.blockMd5s.length] ?? this.blockSize;
  }

  hex(): string {
    if (this.chunkFill > 0) this.endChunk();
    if (this.blockFill > 0) this.endBlock();
    const blocks = this.blockMd5s.length;
    let capacity = 32;
    while (capacity < 16 * blocks) capacity *= 2;
    const collected = Buffer.alloc(capacity);
    this.blockMd5s.forEach((md5, i) => { md5.copy(collected, 16 * i); });
    const header = Buffer.alloc(12);
    header.writeInt32BE(blocks === 0 ? 0 : this.bytesPerCrc, 0);
    header.writeBigInt64BE(BigInt(blocks > 1 ? this.firstBlockCrcCount : 0), 4);
    return Buffer.concat([header, createHash('md5').update(collected).digest()]).toString('hex');
  }
}

function createDigest(checksum: Checksum, size: number): Digest {
  const algorithm = checksum.algorithm;
  switch (algorithm) {
    case 'crc32': {
      let value = 0;
      return { update: (bytes) => { value = crc32(bytes, value); }, hex: () => crcHex(value) };
    }
    case 'crc32c': {
      let value = 0;
      return { update: (bytes) => { value = crc32cOf(bytes, 0, bytes.length, value); }, hex: () => crcHex(value) };
    }
    case 'hdfs-md5md5crc32c':
      return new HdfsFileDigest('crc32c', checksum.layout);
    case 'hdfs-md5md5crc32':
      return new HdfsFileDigest('crc32', checksum.layout);
    case 'git-sha1': {
      const hash = createHash('sha1').update(`blob ${size}\0`);
      return { update: (bytes) => { hash.update(bytes); }, hex: () => hash.digest('hex') };
    }
    default: {
      const hash = createHash(algorithm);
      return { update: (bytes) => { hash.update(bytes); }, hex: () => hash.digest('hex') };
    }
  }
}

export class SequentialHasher {
  readonly checksum: Checksum;
  private readonly digest: Digest;
  /** Bytes fed so far; always the length of the verified prefix [0, position). */
  position = 0;

  constructor(checksum: Checksum, size: number) {
    this.checksum = checksum;
    this.digest = createDigest(checksum, size);
  }

  /** Feeds bytes that start at `offset`; ignored unless they continue the hashed prefix. */
  feed(offset: number, bytes: Uint8Array): void {
    if (offset !== this.position) return;
    this.digest.update(bytes);
    this.position += bytes.length;
  }

  /** Reads [position, size) back from the file and returns the hex digest of the whole file. */
  async finish(handle: FileHandle, size: number): Promise<string> {
    const buffer = Buffer.allocUnsafe(Math.min(4 * 2 ** 20, Math.max(size - this.position, 1)));
    while (this.position < size) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, size - this.position), this.position);
      if (bytesRead === 0) break;
      this.digest.update(buffer.subarray(0, bytesRead));
      this.position += bytesRead;
    }
    return this.digest.hex();
  }
}

/** Base64 digests (Content-MD5, x-goog-hash, x-amz-checksum-*) to the lower-case hex the engine compares. */
export function base64ToHex(value: string): string {
  return Buffer.from(value, 'base64').toString('hex');
}
