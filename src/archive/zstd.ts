import type { Duplex } from 'node:stream';
import zlib from 'node:zlib';
import { Decompress } from 'fzstd';
import xxhash, { type XXHash, type XXHashAPI } from 'xxhash-wasm';
import { ArchiveFormatError } from './format.js';
import { PullTransform } from './pull-transform.js';

/*
 * zstd decompression. Node >= 22.15 has it in zlib (native, fast, bounded); Node 20 does not, so
 * there we use fzstd's pure-JS streaming decoder behind a guard that reads the frame structure
 * itself, because fzstd alone would:
 *  - allocate whatever window a frame header asks for (up to 2 GiB) and copy the whole window
 *    after every 128 KiB block (a 128 MiB window decoded at ~7 MB/s here);
 *  - turn one pushed chunk into unbounded output (a 4-byte RLE block is 128 KiB of output, so a
 *    64 KiB chunk could become gigabytes before we can apply backpressure).
 *  - ignore the frames' content checksums, so a flipped byte in a stored block went unnoticed.
 * The guard refuses windows above 128 MiB (the zstd CLI's own default decoding limit), cuts the
 * input so that one push yields at most ~1 MiB, and cuts at each frame's end so its output can be
 * checked against the frame's checksum (low 32 bits of XXH64, via xxhash-wasm).
 */

const MAX_WINDOW = 128 * 1024 * 1024;
const MAX_BLOCK = 128 * 1024;
const OUTPUT_PER_PUSH = 1024 * 1024;

const corrupt = (detail: string) => new ArchiveFormatError(`zstd data is corrupt (${detail})`);

type GuardState = 'magic' | 'skippableSize' | 'skip' | 'descriptor' | 'header' | 'blockHeader' | 'blockBody' | 'checksum';

/** A piece of input to push; `frameEnd` is set when the piece ends a frame. */
export interface GuardSlice {
  data: Uint8Array;
  frameEnd?: { checksum: number | undefined };
}

/**
 * Follows zstd's frame layout (frames, skippable frames, block headers) without decoding, checks
 * window sizes, and splits the input where the output produced so far would pass OUTPUT_PER_PUSH.
 */
export class ZstdFrameGuard {
  private state: GuardState = 'magic';
  private field: number[] = []; // bytes of the fixed-size field being read
  private need = 4; // size of that field
  private skip = 0; // bytes of a body to pass over
  private checksum = false;
  private lastBlock = false;
  private blockOutput = 0;
  private outputSincePush = 0;
  private sawFrame = false;
  private frameEnded: { checksum: number | undefined } | undefined;

  /** Splits a chunk into the slices to push, one by one, into the decoder. */
  *split(chunk: Uint8Array): Generator<GuardSlice> {
    let start = 0;
    let i = 0;
    while (i < chunk.length) {
      if (this.state === 'skip' || this.state === 'blockBody') {
        const take = Math.min(this.skip, chunk.length - i);
        i += take;
        this.skip -= take;
        if (this.skip === 0) this.endOfBody();
      } else {
        this.field.push(chunk[i++] ?? 0);
        if (this.field.length === this.need) {
          const field = this.field;
          this.field = [];
          this.onField(field);
        }
      }
      if (this.frameEnded !== undefined || this.outputSincePush >= OUTPUT_PER_PUSH) {
        yield { data: chunk.subarray(start, i), frameEnd: this.frameEnded };
        start = i;
        this.outputSincePush = 0;
        this.frameEnded = undefined;
      }
    }
    if (start < chunk.length) yield { data: chunk.subarray(start) };
  }

  /** Whether the input ended between frames. */
  complete(): boolean {
    return this.sawFrame && this.state === 'magic' && this.field.length === 0;
  }

  private expect(state: GuardState, bytes: number): void {
    this.state = state;
    this.need = bytes;
  }

  private onField(b: number[]): void {
    const byte = (k: number) => b[k] ?? 0;
    switch (this.state) {
      case 'magic': {
        const magic = (byte(0) | (byte(1) << 8) | (byte(2) << 16) | (byte(3) << 24)) >>> 0;
        if (magic === 0xfd2fb528) {
          this.sawFrame = true;
          this.expect('descriptor', 1);
        } else if ((magic & 0xfffffff0) >>> 0 === 0x184d2a50) {
          this.sawFrame = true;
          this.expect('skippableSize', 4);
        } else {
          throw this.sawFrame ? corrupt('unexpected data after a frame') : new ArchiveFormatError('not zstd data');
        }
        return;
      }
      case 'skippableSize':
        this.skip = (byte(0) | (byte(1) << 8) | (byte(2) << 16) | (byte(3) << 24)) >>> 0;
        this.state = 'skip';
        if (this.skip === 0) this.endOfBody();
        return;
      case 'descriptor': {
        const d = byte(0);
        if ((d & 0x08) !== 0) throw corrupt('reserved frame header bit set');
        const singleSegment = (d & 0x20) !== 0;
        const fcsFlag = d >> 6;
        this.checksum = (d & 0x04) !== 0;
        const dictBytes = [0, 1, 2, 4][d & 3] ?? 0;
        const fcsBytes = fcsFlag === 0 ? (singleSegment ? 1 : 0) : 1 << fcsFlag;
        // Keep the descriptor as byte 0 of the header field so onField('header') sees it all.
        this.field = [d];
        this.expect('header', 1 + (singleSegment ? 0 : 1) + dictBytes + fcsBytes);
        return;
      }
      case 'header':
        this.onFieldHeader(b);
        return;
      case 'blockHeader': {
        const h = byte(0) | (byte(1) << 8) | (byte(2) << 16);
        this.lastBlock = (h & 1) === 1;
        const type = (h >> 1) & 3;
        const size = h >>> 3;
        if (type === 3) throw corrupt('reserved block type');
        if (size > MAX_BLOCK) throw corrupt('block larger than 128 KiB');
        // Raw and RLE blocks produce `size` bytes; a compressed block at most MAX_BLOCK.
        this.blockOutput = type === 2 ? MAX_BLOCK : size;
        this.skip = type === 1 ? 1 : size;
        this.state = 'blockBody';
        if (this.skip === 0) this.endOfBody();
        return;
      }
      case 'checksum':
        this.frameEnded = { checksum: (byte(0) | (byte(1) << 8) | (byte(2) << 16) | (byte(3) << 24)) >>> 0 };
        this.expect('magic', 4);
        return;
      case 'skip':
      case 'blockBody':
        return;
    }
  }

  private onFieldHeader(b: number[]): void {
    const d = b[0] ?? 0;
    const singleSegment = (d & 0x20) !== 0;
    const fcsFlag = d >> 6;
    const dictBytes = [0, 1, 2, 4][d & 3] ?? 0;
    let window: number;
    if (singleSegment) {
      // The window is the content size, stored after the (absent) window byte and dictionary id.
      const at = 1 + dictBytes;
      const fcsBytes = fcsFlag === 0 ? 1 : 1 << fcsFlag;
      let size = 0;
      for (let k = fcsBytes - 1; k >= 0; k--) size = size * 256 + (b[at + k] ?? 0);
      window = fcsFlag === 1 ? size + 256 : size;
    } else {
      const w = b[1] ?? 0;
      const base = 2 ** (10 + (w >> 3));
      window = base + (base / 8) * (w & 7);
    }
    if (window > MAX_WINDOW) {
      throw new ArchiveFormatError(`zstd frame needs a ${Math.ceil(window / 2 ** 20)} MiB window, more than the 128 MiB allowed`);
    }
    this.expect('blockHeader', 3);
  }

  private endOfBody(): void {
    if (this.state === 'skip') {
      // A skippable frame ends like any frame (fzstd skips it itself), with nothing to check.
      this.frameEnded = { checksum: undefined };
      this.expect('magic', 4);
      return;
    }
    this.outputSincePush += this.blockOutput;
    if (!this.lastBlock) this.expect('blockHeader', 3);
    else if (this.checksum) this.expect('checksum', 4);
    else {
      this.frameEnded = { checksum: undefined };
      this.expect('magic', 4);
    }
  }
}

/** fzstd reports failures with numeric codes; these say what they mean. */
function describeFzstdError(err: unknown): string {
  const code = typeof err === 'object' && err !== null && 'code' in err ? err.code : undefined;
  switch (code) {
    case 1: return 'window too large';
    case 5: return 'unexpected end of data';
    default: return err instanceof Error ? err.message : String(err);
  }
}

/**
 * fzstd driven through the guard, one fzstd instance per frame. fzstd holds back small inputs
 * (under 18 bytes) until more arrive, so output cannot be matched to frames by timing; pushing a
 * frame's last slice as `final` makes it flush everything of that frame, whose output is then
 * complete and can be compared with the frame's checksum.
 */
export class FzstdDecoder {
  private readonly guard = new ZstdFrameGuard();
  private decoder = this.newDecoder();
  private out: Buffer[] = [];
  private hash: XXHash<bigint>;

  constructor(private readonly xxh: XXHashAPI) {
    this.hash = xxh.create64();
  }

  *write(chunk: Uint8Array): Generator<Buffer> {
    for (const slice of this.guard.split(chunk)) {
      yield* this.push(slice.data, slice.frameEnd !== undefined);
      if (slice.frameEnd === undefined) continue;
      const expected = slice.frameEnd.checksum;
      if (expected !== undefined && Number(this.hash.digest() & 0xffffffffn) !== expected) throw corrupt('content checksum mismatch');
      this.hash = this.xxh.create64();
      this.decoder = this.newDecoder();
    }
  }

  *end(): Generator<Buffer> {
    // Every complete frame was flushed as it ended; anything else is a cut-off frame.
    if (!this.guard.complete()) throw new ArchiveFormatError('zstd data is truncated');
    yield* [];
  }

  private newDecoder(): Decompress {
    // fzstd hands out views of its own window; copy them before the next push overwrites them.
    return new Decompress((data) => { if (data.length > 0) this.out.push(Buffer.from(data)); });
  }

  private push(slice: Uint8Array, final: boolean): Buffer[] {
    try {
      this.decoder.push(slice, final);
    } catch (err) {
      this.out = [];
      throw corrupt(describeFzstdError(err));
    }
    const ready = this.out;
    this.out = [];
    for (const piece of ready) this.hash.update(piece);
    return ready;
  }
}

let xxhashApi: Promise<XXHashAPI> | undefined;

/** Pure-JS zstd decompression (fzstd) with the frame guard; exported for tests on any Node. */
export function createFzstdDecompress(): Duplex {
  return new PullTransform(async () => new FzstdDecoder(await (xxhashApi ??= xxhash())));
}

type ZstdFactory = () => Duplex;

/** zlib's native zstd decoder where this Node has one (22.15+, 24), found without naming a version. */
function nativeZstd(): ZstdFactory | undefined {
  const candidate: unknown = (zlib as Record<string, unknown>).createZstdDecompress;
  return typeof candidate === 'function' ? () => (candidate as ZstdFactory)() : undefined;
}

/** A Duplex that decompresses zstd, for use inside stream.pipeline. */
export function createZstdDecompress(): Duplex {
  return (nativeZstd() ?? createFzstdDecompress)();
}
