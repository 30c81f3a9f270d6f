import type { Duplex } from 'node:stream';
import { ArchiveFormatError } from './format.js';
import { PullTransform } from './pull-transform.js';

/*
 * A streaming bzip2 decoder with bounded memory, written from the format description.
 *
 * Why not a package: unbzip2-stream collects each block's output in a JS array of numbers (a
 * block of zero runs expands ~45x: 200 MB of zeros took 2.1 GB RSS here) and decoded random data
 * at ~2 MB/s; seek-bzip and compressjs decode whole buffers. This decoder keeps at most one
 * compressed block (a valid one is < 2.3 MB) and one Uint32Array of the block size (<= 3.6 MB),
 * and hands out at most 64 KiB at a time, so the consumer's backpressure is honoured even inside a
 * block made of long runs.
 *
 * Layers undone per block: Huffman (up to 6 tables, switched every 50 symbols) -> RUNA/RUNB run
 * lengths + move-to-front -> Burrows-Wheeler -> the initial run-length coding (4 equal bytes and
 * a count). Block CRCs and the combined stream CRC are checked; concatenated streams (pbzip2) are
 * decoded one after the other.
 */

const GROUP_SIZE = 50;
const MAX_CODE_LEN = 20;
const MAX_SELECTORS = 18002; // bzip2 1.0.8 reads but ignores selectors past this
const OUTPUT_CHUNK = 64 * 1024;
/**
 * Compressed input gathered before a block is decoded. A valid block is at most 900,001 symbols
 * of <= 20 bits plus < 40 kB of tables, so a block that does not fit in this much is corrupt, and
 * a block is never decoded twice for want of input (except at the very end of the data).
 */
const ATTEMPT_BYTES = 2_500_000;

const CRC_TABLE = (() => {
  const table = new Int32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i << 24;
    for (let k = 0; k < 8; k++) c = c & 0x80000000 ? (c << 1) ^ 0x04c11db7 : c << 1;
    table[i] = c;
  }
  return table;
})();

const corrupt = (detail: string) => new ArchiveFormatError(`bzip2 data is corrupt (${detail})`);

/** Thrown by the bit reader when the gathered input ends inside a unit; the unit is retried later. */
class NeedMoreInput extends Error {}
const NEED_MORE = new NeedMoreInput('need more input');

/** MSB-first bit reader over gathered input; a mark/reset pair lets a unit be parsed again. */
class BitReader {
  private buf: Uint8Array = new Uint8Array(0);
  private pos = 0;
  private bitBuf = 0;
  private bitCount = 0;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;

  append(chunk: Uint8Array): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
  }

  /** Unread whole bytes, gathered or pending. */
  available(): number {
    return this.buf.length - this.pos + this.pendingBytes;
  }

  /** Joins pending chunks onto the unread rest; called between units only, so no mark is live. */
  gather(): void {
    if (this.pending.length === 0) return;
    this.buf = Buffer.concat([this.buf.subarray(this.pos), ...this.pending]);
    this.pos = 0;
    this.pending = [];
    this.pendingBytes = 0;
  }

  mark(): [number, number, number] {
    return [this.pos, this.bitBuf, this.bitCount];
  }

  reset([pos, bitBuf, bitCount]: [number, number, number]): void {
    this.pos = pos;
    this.bitBuf = bitBuf;
    this.bitCount = bitCount;
  }

  /** Reads n <= 24 bits. */
  bits(n: number): number {
    while (this.bitCount < n) {
      if (this.pos >= this.buf.length) throw NEED_MORE;
      this.bitBuf = (this.bitBuf << 8) | (this.buf[this.pos++] ?? 0);
      this.bitCount += 8;
    }
    this.bitCount -= n;
    const value = (this.bitBuf >>> this.bitCount) & ((1 << n) - 1);
    this.bitBuf &= (1 << this.bitCount) - 1;
    return value;
  }

  /** Drops the bits left in the current byte: streams start on a byte boundary. */
  alignToByte(): void {
    this.bitCount -= this.bitCount % 8;
    this.bitBuf &= (1 << this.bitCount) - 1;
  }

}

/** Canonical Huffman decoding table of one coding group. */
interface HuffmanTable {
  minLen: number;
  maxLen: number;
  first: Int32Array; // first code of each length
  count: Int32Array; // codes of each length
  offset: Int32Array; // index in perm of the first symbol of each length
  perm: Uint16Array; // symbols ordered by (length, symbol)
}

function buildTable(lengths: Uint8Array, alphaSize: number): HuffmanTable {
  const count = new Int32Array(MAX_CODE_LEN + 2);
  let minLen = MAX_CODE_LEN;
  let maxLen = 0;
  for (let s = 0; s < alphaSize; s++) {
    const len = lengths[s] ?? 0;
    count[len] = (count[len] ?? 0) + 1;
    if (len < minLen) minLen = len;
    if (len > maxLen) maxLen = len;
  }
  const first = new Int32Array(MAX_CODE_LEN + 2);
  const offset = new Int32Array(MAX_CODE_LEN + 2);
  let code = 0;
  let index = 0;
  for (let len = 1; len <= MAX_CODE_LEN; len++) {
    first[len] = code;
    offset[len] = index;
    const n = count[len] ?? 0;
    code = (code + n) << 1;
    index += n;
  }
  const perm = new Uint16Array(alphaSize);
  const next = Int32Array.from(offset);
  for (let s = 0; s < alphaSize; s++) {
    const len = lengths[s] ?? 0;
    const at = next[len] ?? 0;
    perm[at] = s;
    next[len] = at + 1;
  }
  return { minLen, maxLen, first, count, offset, perm };
}

export class Bzip2Decoder {
  private readonly reader = new BitReader();
  private phase: 'streamHeader' | 'blockOrEnd' | 'output' | 'afterStream' = 'streamHeader';
  private blockSizeMax = 0;
  private tt = new Uint32Array(0);
  private streamCrc = 0;
  // Output state of the current block.
  private blockCrc = 0;
  private crc = 0;
  private tPos = 0;
  private remaining = 0;
  private lastByte = -1;
  private runLength = 0;
  private pendingCopies = 0;
  private pendingByte = 0;

  /** Takes compressed bytes; yields what can be decoded now. */
  *write(chunk: Uint8Array): Generator<Buffer> {
    this.reader.append(chunk);
    yield* this.run(false);
  }

  /** Ends the input; yields the rest, or throws if the data stops early. */
  *end(): Generator<Buffer> {
    yield* this.run(true);
    if (this.phase !== 'afterStream') throw new ArchiveFormatError('bzip2 data is truncated');
  }

  private *run(ended: boolean): Generator<Buffer> {
    for (;;) {
      if (this.phase === 'output') {
        yield* this.produce();
        continue;
      }
      if (!ended && this.reader.available() < ATTEMPT_BYTES) return;
      this.reader.gather();
      if (this.phase === 'afterStream' && this.reader.available() === 0) return;
      const mark = this.reader.mark();
      try {
        this.parseUnit();
      } catch (err) {
        if (err !== NEED_MORE) throw err;
        this.reader.reset(mark);
        if (ended) throw new ArchiveFormatError('bzip2 data is truncated');
        throw corrupt('a block is larger than the format allows');
      }
    }
  }

  /** Parses one stream header, block, or end-of-stream record from the gathered input. */
  private parseUnit(): void {
    const r = this.reader;
    if (this.phase === 'streamHeader' || this.phase === 'afterStream') {
      if (r.bits(8) !== 0x42 || r.bits(8) !== 0x5a || r.bits(8) !== 0x68) {
        throw this.phase === 'afterStream'
          ? new ArchiveFormatError('unexpected data after the end of the bzip2 stream')
          : new ArchiveFormatError('not bzip2 data');
      }
      const level = r.bits(8) - 0x30;
      if (level < 1 || level > 9) throw corrupt('bad block size in the header');
      this.blockSizeMax = level * 100_000;
      if (this.tt.length !== this.blockSizeMax) this.tt = new Uint32Array(this.blockSizeMax);
      this.streamCrc = 0;
      this.phase = 'blockOrEnd';
      return;
    }
    const magicHi = r.bits(24);
    const magicLo = r.bits(24);
    if (magicHi === 0x177245 && magicLo === 0x385090) {
      const expected = ((r.bits(16) << 16) | r.bits(16)) >>> 0;
      if (expected !== this.streamCrc) throw corrupt('stream checksum mismatch');
      r.alignToByte();
      this.phase = 'afterStream';
      return;
    }
    if (magicHi !== 0x314159 || magicLo !== 0x265359) throw corrupt('bad block signature');
    this.readBlock();
    this.phase = 'output';
  }

  private readBlock(): void {
    const r = this.reader;
    this.blockCrc = ((r.bits(16) << 16) | r.bits(16)) >>> 0;
    if (r.bits(1) !== 0) throw corrupt('randomised blocks (bzip2 0.9.0) are not supported');
    const origPtr = r.bits(24);

    // Which byte values occur: 16 flags for ranges of 16, then 16 flags per range in use.
    const seqToUnseq = new Uint8Array(256);
    let inUse = 0;
    const ranges = r.bits(16);
    for (let i = 0; i < 16; i++) {
      if ((ranges & (0x8000 >>> i)) === 0) continue;
      const flags = r.bits(16);
      for (let j = 0; j < 16; j++) if ((flags & (0x8000 >>> j)) !== 0) seqToUnseq[inUse++] = i * 16 + j;
    }
    if (inUse === 0) throw corrupt('no symbols in use');
    const alphaSize = inUse + 2;
    const eob = inUse + 1;

    const nGroups = r.bits(3);
    if (nGroups < 2 || nGroups > 6) throw corrupt('bad number of Huffman tables');
    const nSelectors = r.bits(15);
    if (nSelectors < 1) throw corrupt('no selectors');
    const groupMtf = [0, 1, 2, 3, 4, 5];
    const kept = Math.min(nSelectors, MAX_SELECTORS);
    const selectors = new Uint8Array(kept);
    for (let i = 0; i < nSelectors; i++) {
      let j = 0;
      while (r.bits(1) === 1) if (++j >= nGroups) throw corrupt('bad selector');
      const group = groupMtf[j] ?? 0;
      groupMtf.splice(j, 1);
      groupMtf.unshift(group);
      if (i < kept) selectors[i] = group;
    }

    const tables: HuffmanTable[] = [];
    const lengths = new Uint8Array(alphaSize);
    for (let g = 0; g < nGroups; g++) {
      let len = r.bits(5);
      for (let s = 0; s < alphaSize; s++) {
        for (;;) {
          if (len < 1 || len > MAX_CODE_LEN) throw corrupt('bad Huffman code length');
          if (r.bits(1) === 0) break;
          len += r.bits(1) === 0 ? 1 : -1;
        }
        lengths[s] = len;
      }
      tables.push(buildTable(lengths, alphaSize));
    }

    // Huffman symbols -> run lengths and move-to-front -> the BWT'd block, into tt's low bytes.
    const tt = this.tt;
    const max = this.blockSizeMax;
    const counts = new Int32Array(256);
    const mtf = new Uint8Array(256);
    for (let i = 0; i < 256; i++) mtf[i] = i;
    let nblock = 0;
    let groupIndex = -1;
    let groupLeft = 0;
    let table = tables[0] as HuffmanTable;
    const nextSymbol = (): number => {
      if (groupLeft === 0) {
        groupIndex++;
        if (groupIndex >= kept) throw corrupt('ran out of selectors');
        table = tables[selectors[groupIndex] ?? 0] as HuffmanTable;
        groupLeft = GROUP_SIZE;
      }
      groupLeft--;
      let len = table.minLen;
      let code = r.bits(len);
      for (;;) {
        const firstCode = table.first[len] ?? 0;
        if (code >= firstCode && code - firstCode < (table.count[len] ?? 0)) {
          return table.perm[(table.offset[len] ?? 0) + code - firstCode] ?? 0;
        }
        if (++len > table.maxLen) throw corrupt('bad Huffman code');
        code = (code << 1) | r.bits(1);
      }
    };

    let sym = nextSymbol();
    for (;;) {
      if (sym <= 1) {
        // RUNA (0) / RUNB (1): a bijective base-2 run length of the byte at the front of the MTF list.
        let run = 0;
        let weight = 1;
        do {
          if (weight > max) throw corrupt('run too long');
          run += (sym + 1) * weight;
          weight <<= 1;
          sym = nextSymbol();
        } while (sym <= 1);
        if (nblock + run > max) throw corrupt('block longer than its declared size');
        const byte = seqToUnseq[mtf[0] ?? 0] ?? 0;
        counts[byte] = (counts[byte] ?? 0) + run;
        tt.fill(byte, nblock, nblock + run);
        nblock += run;
        continue;
      }
      if (sym === eob) break;
      if (sym > eob) throw corrupt('bad symbol');
      if (nblock >= max) throw corrupt('block longer than its declared size');
      const index = sym - 1;
      const value = mtf[index] ?? 0;
      mtf.copyWithin(1, 0, index);
      mtf[0] = value;
      const byte = seqToUnseq[value] ?? 0;
      counts[byte] = (counts[byte] ?? 0) + 1;
      tt[nblock++] = byte;
      sym = nextSymbol();
    }
    if (origPtr >= nblock) throw corrupt('bad block origin');

    // Inverse BWT: link each position to its successor in the upper 24 bits of tt.
    let sum = 0;
    for (let i = 0; i < 256; i++) {
      const c = counts[i] ?? 0;
      counts[i] = sum;
      sum += c;
    }
    for (let i = 0; i < nblock; i++) {
      const byte = (tt[i] ?? 0) & 0xff;
      const at = counts[byte] ?? 0;
      tt[at] = (tt[at] ?? 0) | (i << 8);
      counts[byte] = at + 1;
    }
    this.tPos = (tt[origPtr] ?? 0) >>> 8;
    this.remaining = nblock;
    this.crc = -1;
    this.lastByte = -1;
    this.runLength = 0;
    this.pendingCopies = 0;
  }

  /** Emits the current block in chunks of at most OUTPUT_CHUNK bytes. */
  private *produce(): Generator<Buffer> {
    while (this.remaining > 0 || this.pendingCopies > 0) {
      const out = Buffer.allocUnsafe(OUTPUT_CHUNK);
      const n = this.fill(out);
      yield n === OUTPUT_CHUNK ? out : out.subarray(0, n);
    }
    const computed = ~this.crc >>> 0;
    if (computed !== this.blockCrc) throw corrupt('block checksum mismatch');
    this.streamCrc = (((this.streamCrc << 1) | (this.streamCrc >>> 31)) ^ this.blockCrc) >>> 0;
    this.phase = 'blockOrEnd';
  }

  /**
   * Walks the inverse-BWT links into `out`, undoing the initial run-length coding, and returns the
   * bytes written. A plain method with local state: this is the hot loop.
   */
  private fill(out: Buffer): number {
    const tt = this.tt;
    const limit = out.length;
    let { crc, tPos, remaining, lastByte, runLength, pendingCopies } = this;
    const pendingByte = this.pendingByte;
    let n = 0;
    if (pendingCopies > 0) {
      const copies = Math.min(pendingCopies, limit);
      out.fill(pendingByte, 0, copies);
      for (let k = 0; k < copies; k++) crc = (crc << 8) ^ (CRC_TABLE[((crc >>> 24) ^ pendingByte) & 0xff] ?? 0);
      n = copies;
      pendingCopies -= copies;
    }
    while (n < limit && remaining > 0) {
      const link = tt[tPos] ?? 0;
      const byte = link & 0xff;
      tPos = link >>> 8;
      remaining--;
      if (runLength === 4) {
        // After four equal bytes comes a count of further copies, not a byte of data.
        const copies = Math.min(byte, limit - n);
        out.fill(lastByte, n, n + copies);
        for (let k = 0; k < copies; k++) crc = (crc << 8) ^ (CRC_TABLE[((crc >>> 24) ^ lastByte) & 0xff] ?? 0);
        n += copies;
        pendingCopies = byte - copies;
        this.pendingByte = lastByte;
        runLength = 0;
        lastByte = -1;
        continue;
      }
      if (byte === lastByte) runLength++;
      else {
        lastByte = byte;
        runLength = 1;
      }
      out[n++] = byte;
      crc = (crc << 8) ^ (CRC_TABLE[((crc >>> 24) ^ byte) & 0xff] ?? 0);
    }
    Object.assign(this, { crc, tPos, remaining, lastByte, runLength, pendingCopies });
    return n;
  }
}

/** A Duplex that decompresses bzip2, for use inside stream.pipeline. */
export function createBunzip2(): Duplex {
  return new PullTransform(() => new Bzip2Decoder());
}
