import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable, type Duplex } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, describe, it } from 'node:test';
import zlib from 'node:zlib';
import { createBunzip2 } from '../../src/archive/bzip2.js';
import { ArchiveFormatError } from '../../src/archive/format.js';
import { ExtractionBudget, RATIO_GRACE_BYTES } from '../../src/archive/limits.js';
import { PullTransform } from '../../src/archive/pull-transform.js';
import { createFzstdDecompress, createZstdDecompress, ZstdFrameGuard } from '../../src/archive/zstd.js';
import { StorageError } from '../../src/errors.js';
import { skipWithout } from '../helpers/system.js';

/* The decoders on their own, against the system bzip2 and zstd (Debian: bzip2, zstd). */

const root = await mkdtemp(path.join(os.tmpdir(), 'archive-codecs-'));
after(() => rm(root, { recursive: true, force: true }));

const compress = (tool: string, args: string[], input: Buffer) => execFileSync(tool, args, { input, maxBuffer: 1 << 30 });
const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Runs data through a decoder in 64 KiB chunks; returns the output's digest and length. */
async function decode(decoder: Duplex, data: Buffer): Promise<{ digest: string; length: number }> {
  const hash = createHash('sha256');
  let length = 0;
  function* chunks() {
    for (let i = 0; i < data.length; i += 65536) yield data.subarray(i, i + 65536);
  }
  await pipeline(Readable.from(chunks()), decoder, new Writable({
    write(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      length += chunk.length;
      callback();
    },
  }));
  return { digest: hash.digest('hex'), length };
}

const samples: [string, Buffer][] = [
  ['random', randomBytes(1_500_000)],
  ['zeros (long runs, the RLE count path)', Buffer.alloc(3_000_000)],
  ['text', Buffer.from('the quick brown fox jumps over the lazy dog\n'.repeat(40_000))],
  ['runs of 4..300 equal bytes', Buffer.concat(Array.from({ length: 3000 }, (_, i) => Buffer.alloc(4 + (i % 297), i % 256)))],
  ['one byte', Buffer.from('x')],
  ['empty', Buffer.alloc(0)],
];

describe('bzip2 decoder', { skip: skipWithout('bzip2') }, () => {
  for (const [title, data] of samples) {
    it(`decodes ${title} like bzip2 does`, async () => {
      for (const level of ['-1', '-9']) {
        const out = await decode(createBunzip2(), compress('bzip2', [level, '-c'], data));
        assert.equal(out.length, data.length);
        assert.equal(out.digest, sha(data));
      }
    });
  }

  it('decodes concatenated streams (as pbzip2 writes them)', async () => {
    const a = randomBytes(300_000);
    const b = Buffer.from('second stream\n'.repeat(10_000));
    const out = await decode(createBunzip2(), Buffer.concat([compress('bzip2', ['-c'], a), compress('bzip2', ['-c'], b)]));
    assert.equal(out.digest, sha(Buffer.concat([a, b])));
  });

  const rejects = async (data: Buffer, pattern: RegExp) => {
    await assert.rejects(decode(createBunzip2(), data), (err: unknown) => {
      assert.ok(err instanceof ArchiveFormatError, String(err));
      assert.match(err.message, pattern);
      return true;
    });
  };
  const valid = compress('bzip2', ['-c'], Buffer.from('hello world\n'.repeat(50_000)));

  it('rejects truncated data', async () => {
    await rejects(valid.subarray(0, valid.length - 10), /bzip2 data is (truncated|corrupt)/);
    await rejects(valid.subarray(0, 20), /bzip2 data is truncated/);
  });
  it('rejects a flipped byte (block checksum)', async () => {
    const bad = Buffer.from(valid);
    bad[Math.floor(bad.length / 2)] = (bad[Math.floor(bad.length / 2)] ?? 0) ^ 0x10;
    await rejects(bad, /bzip2 data is corrupt/);
  });
  it('rejects trailing garbage and non-bzip2 data', async () => {
    await rejects(Buffer.concat([valid, Buffer.from('garbage')]), /unexpected data after the end of the bzip2 stream/);
    await rejects(Buffer.from('definitely not bzip2'), /not bzip2 data/);
  });
});

/** A zstd frame header: magic, descriptor (no checksum, not single-segment), window byte. */
const frameHeader = (windowByte: number) => Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, windowByte]);
/** A block header: last flag, type (0 raw, 1 RLE, 2 compressed), size. */
const blockHeader = (last: boolean, type: number, size: number) => {
  const h = (size << 3) | (type << 1) | (last ? 1 : 0);
  return Buffer.from([h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff]);
};

describe('zstd decoding (fzstd behind the frame guard)', () => {
  const skip = skipWithout('zstd');
  for (const [title, data] of samples) {
    it(`decodes ${title} like zstd does`, { skip }, async () => {
      for (const level of ['-1', '-19']) {
        const out = await decode(createFzstdDecompress(), compress('zstd', [level, '-q', '-c'], data));
        assert.equal(out.length, data.length);
        assert.equal(out.digest, sha(data));
      }
    });
  }

  it('decodes several frames and skippable frames', { skip }, async () => {
    const a = randomBytes(200_000);
    const b = Buffer.from('frame two\n'.repeat(20_000));
    const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18]), Buffer.from([3, 0, 0, 0]), Buffer.from('abc')]);
    const input = Buffer.concat([compress('zstd', ['-q', '-c'], a), skippable, compress('zstd', ['-q', '-c', '--no-check'], b)]);
    assert.equal((await decode(createFzstdDecompress(), input)).digest, sha(Buffer.concat([a, b])));
  });

  it('uses the native decoder where Node has one, with the same result', { skip: typeof (zlib as Record<string, unknown>).createZstdDecompress === 'function' ? skip : 'this Node has no native zstd' }, async () => {
    const data = randomBytes(100_000);
    assert.equal((await decode(createZstdDecompress(), compress('zstd', ['-q', '-c'], data))).digest, sha(data));
  });

  const rejects = async (data: Buffer, pattern: RegExp) => {
    await assert.rejects(decode(createFzstdDecompress(), data), (err: unknown) => {
      assert.ok(err instanceof ArchiveFormatError, String(err));
      assert.match(err.message, pattern);
      return true;
    });
  };

  it('rejects a flipped byte in stored data through the content checksum', { skip }, async () => {
    const valid = compress('zstd', ['-q', '-c'], randomBytes(300_000));
    const bad = Buffer.from(valid);
    bad[150_000] = (bad[150_000] ?? 0) ^ 0x01;
    await rejects(bad, /zstd data is corrupt \(content checksum mismatch\)/);
  });

  it('rejects truncated data and trailing garbage', { skip }, async () => {
    const valid = compress('zstd', ['-q', '-c'], Buffer.from('some text\n'.repeat(100_000)));
    await rejects(valid.subarray(0, Math.floor(valid.length / 2)), /zstd data is truncated/);
    await rejects(Buffer.concat([valid, Buffer.from('junk')]), /unexpected data after a frame/);
  });

  it('refuses a frame asking for a window above 128 MiB before allocating it', async () => {
    // Window byte: exponent (31 - 10) << 3 means a 2 GiB window.
    const bomb = Buffer.concat([frameHeader((31 - 10) << 3), blockHeader(true, 0, 1), Buffer.from('x')]);
    await rejects(bomb, /needs a 2048 MiB window, more than the 128 MiB allowed/);
  });

  it('decodes RLE blocks, cutting the input so one push yields at most ~1 MiB', async () => {
    // 2,000 RLE blocks of 128 KiB: 250 MiB of output from 8 kB of input.
    const blocks = Array.from({ length: 2000 }, (_, i) => Buffer.concat([blockHeader(i === 1999, 1, 128 * 1024), Buffer.from([0x61])]));
    const input = Buffer.concat([frameHeader((17 - 10) << 3), ...blocks]);
    const guard = new ZstdFrameGuard();
    const slices = [...guard.split(input)];
    assert.ok(slices.length >= 250, `only ${slices.length} slices`);
    for (const slice of slices) assert.ok(slice.data.length <= 6 + 9 * 4, 'each slice holds at most 9 RLE blocks (~1.1 MiB of output)');
    assert.ok(guard.complete());
    const out = await decode(createFzstdDecompress(), input);
    assert.equal(out.length, 2000 * 128 * 1024);
  });

  it('rejects reserved block types and oversized blocks', async () => {
    await rejects(Buffer.concat([frameHeader(0x40), blockHeader(true, 3, 10)]), /reserved block type/);
    await rejects(Buffer.concat([frameHeader(0x40), blockHeader(true, 0, 200_000)]), /block larger than 128 KiB/);
    await rejects(Buffer.from('not zstd at all'), /not zstd data/);
  });
});

describe('PullTransform', () => {
  it('produces output only as fast as it is read', async () => {
    let produced = 0;
    const decoder = {
      *write(): Generator<Buffer> {
        for (let i = 0; i < 1000; i++) {
          produced++;
          yield Buffer.alloc(64 * 1024);
        }
      },
      *end(): Generator<Buffer> { /* nothing more */ },
    };
    const stream = new PullTransform(() => decoder);
    stream.write(Buffer.from('x'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(produced <= 8, `produced ${produced} chunks with nobody reading`);
    let read = 0;
    stream.end();
    for await (const chunk of stream as AsyncIterable<Buffer>) read += chunk.length;
    assert.equal(read, 1000 * 64 * 1024);
  });

  it('finishes when the last input is decoded under backpressure (no hang at the end)', { timeout: 10_000 }, async () => {
    // The last write's callback then runs inside a read, which starts _final at once.
    const stream = new PullTransform(() => ({
      *write(): Generator<Buffer> { for (let i = 0; i < 20; i++) yield Buffer.alloc(64 * 1024, i); },
      *end(): Generator<Buffer> { yield Buffer.from('tail'); },
    }));
    let total = 0;
    await pipeline(Readable.from(Array.from({ length: 5 }, () => Buffer.from('x'))), stream, new Writable({
      highWaterMark: 1,
      write(chunk: Buffer, _encoding, callback) {
        total += chunk.length;
        setImmediate(callback);
      },
    }));
    assert.equal(total, 5 * 20 * 64 * 1024 + 4);
  });

  it('turns a decoder exception into a stream error, and can be destroyed at any point', async () => {
    const failing = new PullTransform(() => ({
      *write(): Generator<Buffer> { yield Buffer.from('a'); throw new ArchiveFormatError('broken'); },
      *end(): Generator<Buffer> { /* nothing */ },
    }));
    await assert.rejects(pipeline(Readable.from([Buffer.from('x')]), failing, new Writable({ write(_c, _e, cb) { cb(); } })), /broken/);
    const idle = new PullTransform(() => ({ *write(): Generator<Buffer> { yield Buffer.alloc(1); }, *end(): Generator<Buffer> { /* nothing */ } }));
    const closed = new Promise((resolve) => idle.on('close', resolve));
    idle.destroy();
    await closed;
  });
});

describe('ExtractionBudget', () => {
  it('counts bytes as they pass, and fails at the limit naming the entry', async () => {
    const budget = new ExtractionBudget({ maxBytes: 1000, maxEntries: 10, maxRatio: 1e9 }, 1);
    const out: Buffer[] = [];
    await assert.rejects(
      pipeline(Readable.from([Buffer.alloc(600), Buffer.alloc(600)]), budget.meter('big'), new Writable({ write(c: Buffer, _e, cb) { out.push(c); cb(); } })),
      (err: unknown) => err instanceof StorageError && err.kind === 'InvalidInput' && /more than 1000 bytes .*"big"/.test(err.message),
    );
    assert.equal(Buffer.concat(out).length, 600, 'the chunk that crossed the limit was not passed on');
  });

  it('checks the ratio only past the grace size', () => {
    const budget = new ExtractionBudget({ maxBytes: 2 ** 40, maxEntries: 10, maxRatio: 2 }, 1000);
    budget.addBytes('a', RATIO_GRACE_BYTES);
    assert.throws(() => { budget.addBytes('a', 1); }, /more than 2 times its own size of 1000 bytes/);
  });

  it('counts entries', () => {
    const budget = new ExtractionBudget({ maxBytes: 100, maxEntries: 2, maxRatio: 2 }, 1000);
    budget.addEntry('a');
    budget.addEntry('b');
    assert.throws(() => { budget.addEntry('c'); }, /more than 2 entries .*"c"/);
  });
});
