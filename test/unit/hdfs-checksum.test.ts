/**
 * HDFS's file checksum (hdfs-md5md5crc32c / hdfs-md5md5crc32) against a reference written here
 * from the definition, the slow and obvious way (a bytewise CRC-32C table, Buffer slices, Java's
 * byte-array growth spelled out), for sizes around the chunk and block boundaries and for uneven
 * blocks (concatenated or appended files); HDFS's fixed value for an empty file; which
 * GETFILECHECKSUM answers the WebHDFS source hands the engine; and the block lengths it reads from
 * GETFILEBLOCKLOCATIONS and GET_BLOCK_LOCATIONS answers.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import { blockLengthsFrom, checksumFromFileChecksum, spansBlocks } from '../../src/sources/webhdfs-checksum.js';
import type { Checksum } from '../../src/sources/types.js';
import { crc32cOf, SequentialHasher } from '../../src/transfer/checksum.js';
import { randomBytes } from '../helpers/tree.js';

const CRC32C_BYTEWISE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = (c & 1) !== 0 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  return c >>> 0;
});

function crc32cReference(bytes: Buffer): number {
  let c = 0xffffffff;
  for (const byte of bytes) c = (CRC32C_BYTEWISE[(c ^ byte) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const md5 = (bytes: Buffer): Buffer => createHash('md5').update(bytes).digest();

/** A file's blocks: `blockSize` bytes each but the last. */
function evenBlocks(size: number, blockSize: number): number[] {
  const blocks: number[] = [];
  for (let start = 0; start < size; start += blockSize) blocks.push(Math.min(blockSize, size - start));
  return blocks;
}

/**
 * MD5MD5CRC32FileChecksum as HDFS computes it (FileChecksumHelper + MD5MD5CRC32FileChecksum.write),
 * over blocks of `blockSize` bytes or of the given lengths; crcPerBlock is the first block's CRC count.
 */
function hdfsReference(data: Buffer, bytesPerCrc: number, blocks: number | number[], crc: (b: Buffer) => number): string {
  const blockMd5s: Buffer[] = [];
  const crcsPerBlock: number[] = [];
  const lengths = typeof blocks === 'number' ? evenBlocks(data.length, blocks) : blocks;
  assert.equal(lengths.reduce((a, n) => a + n, 0), data.length);
  for (let i = 0, start = 0; i < lengths.length; start += lengths[i] ?? 0, i++) {
    const block = data.subarray(start, start + (lengths[i] ?? 0));
    const crcs: Buffer[] = [];
    for (let at = 0; at < block.length; at += bytesPerCrc) {
      const value = Buffer.alloc(4);
      value.writeUInt32BE(crc(block.subarray(at, at + bytesPerCrc)));
      crcs.push(value);
    }
    crcsPerBlock.push(crcs.length);
    blockMd5s.push(md5(Buffer.concat(crcs)));
  }
  // DataOutputBuffer: a ByteArrayOutputStream of 32 bytes grown to max(2x, needed); getData() is all of it.
  let buffer = Buffer.alloc(32);
  let count = 0;
  for (const blockMd5 of blockMd5s) {
    if (count + 16 > buffer.length) buffer = Buffer.concat([buffer, Buffer.alloc(Math.max(buffer.length * 2, count + 16) - buffer.length)]);
    blockMd5.copy(buffer, count);
    count += 16;
  }
  const out = Buffer.alloc(28);
  out.writeInt32BE(data.length === 0 ? 0 : bytesPerCrc, 0);
  out.writeBigInt64BE(BigInt(blockMd5s.length > 1 ? crcsPerBlock[0] ?? 0 : 0), 4);
  md5(buffer).copy(out, 12);
  return out.toString('hex');
}

/** The engine's digest: fed `inline` bytes in uneven pieces (as ranges land), the rest read back from disk. */
async function engineDigest(checksum: Checksum, data: Buffer, inline: number): Promise<string> {
  const file = path.join(tmpdir(), `si-hdfs-checksum-${process.pid}-${data.length}-${inline}`);
  await writeFile(file, data);
  const handle = await open(file, 'r');
  try {
    const hasher = new SequentialHasher(checksum, data.length);
    for (let at = 0, step = 1; at < inline; at += step, step = step * 3 + 1) hasher.feed(at, data.subarray(at, Math.min(at + step, inline)));
    return await hasher.finish(handle, data.length);
  } finally {
    await handle.close();
    await rm(file, { force: true });
  }
}

describe('HDFS file checksum digest', () => {
  it('CRC-32C has the standard check value and continues across pieces', () => {
    assert.equal(crc32cOf(Buffer.from('123456789')).toString(16), 'e3069283');
    const data = randomBytes(10_000, 3);
    assert.equal(crc32cOf(data, 4321, data.length, crc32cOf(data, 0, 4321)), crc32cReference(data));
  });

  it('gives HDFS\'s fixed value for an empty file (MD5 of 32 zero bytes)', async () => {
    const hex = await engineDigest({ algorithm: 'hdfs-md5md5crc32', hex: '', layout: { bytesPerCrc: 0, blockSize: 0 } }, Buffer.alloc(0), 0);
    assert.equal(hex, `${'0'.repeat(24)}70bc8f4b72a86921468bf8e8441dce51`);
  });

  const bytesPerCrc = 512;
  const blockSize = 4 * 1024;
  const sizes = [0, 1, 511, 512, 513, blockSize - 1, blockSize, blockSize + 1, 3 * blockSize, 3 * blockSize + 700, 5 * blockSize + 1, 9 * blockSize];
  for (const [algorithm, crc] of [['hdfs-md5md5crc32c', crc32cReference], ['hdfs-md5md5crc32', (b: Buffer) => crc32(b)]] as const) {
    for (const size of sizes) {
      it(`${algorithm} of ${size} bytes (blocks of ${blockSize}, ${bytesPerCrc} bytes per CRC) matches the reference`, async () => {
        const data = randomBytes(size, size + 7);
        const expected = hdfsReference(data, bytesPerCrc, blockSize, crc);
        const checksum: Checksum = { algorithm, hex: expected, layout: { bytesPerCrc, blockSize } };
        assert.equal(await engineDigest(checksum, data, Math.floor(size / 3)), expected);
        assert.equal(await engineDigest(checksum, data, size), expected);
      });
    }
  }

  it('cuts chunks at block ends when the block size is not a multiple of bytesPerCrc', async () => {
    const data = randomBytes(2500, 9);
    const expected = hdfsReference(data, 300, 1000, crc32cReference);
    assert.equal(await engineDigest({ algorithm: 'hdfs-md5md5crc32c', hex: expected, layout: { bytesPerCrc: 300, blockSize: 1000 } }, data, 777), expected);
  });

  // As concat (blocks of the source files as they were) and appends with NEW_BLOCK leave them.
  const uneven: [string, number[]][] = [
    ['a short block in the middle', [blockSize, 1000, blockSize, 777]],
    ['a short first block', [1500, blockSize, blockSize]],
    ['short blocks only, not multiples of bytesPerCrc', [513, 1, 511, 2049, 4000]],
    ['full blocks then two partial ones', [blockSize, blockSize, blockSize - 1, 5]],
  ];
  for (const [algorithm, crc] of [['hdfs-md5md5crc32c', crc32cReference], ['hdfs-md5md5crc32', (b: Buffer) => crc32(b)]] as const) {
    for (const [name, blockLengths] of uneven) {
      it(`${algorithm} of uneven blocks (${name}) matches the reference with the blocks' lengths, and not without them`, async () => {
        const size = blockLengths.reduce((a, n) => a + n, 0);
        const data = randomBytes(size, size + 13);
        const expected = hdfsReference(data, bytesPerCrc, blockLengths, crc);
        const checksum: Checksum = { algorithm, hex: expected, layout: { bytesPerCrc, blockSize, blockLengths } };
        assert.equal(await engineDigest(checksum, data, Math.floor(size / 2)), expected);
        assert.equal(await engineDigest(checksum, data, size), expected);
        assert.equal(await engineDigest(checksum, data, 0), expected);
        // What verification without the lengths computed, and so failed a good download.
        assert.notEqual(await engineDigest({ algorithm, hex: expected, layout: { bytesPerCrc, blockSize } }, data, 0), expected);
      });
    }
  }

  it('digests even blocks listed explicitly as it does from the block size', async () => {
    const data = randomBytes(3 * blockSize + 300, 17);
    const expected = hdfsReference(data, bytesPerCrc, blockSize, crc32cReference);
    const listed: Checksum = { algorithm: 'hdfs-md5md5crc32c', hex: expected, layout: { bytesPerCrc, blockSize, blockLengths: evenBlocks(data.length, blockSize) } };
    assert.equal(await engineDigest(listed, data, 1234), expected);
  });

  it('refuses a block length of 0 (it would never end)', () => {
    assert.throws(() => new SequentialHasher({ algorithm: 'hdfs-md5md5crc32c', hex: '', layout: { bytesPerCrc, blockSize, blockLengths: [blockSize, 0, 5] } }, blockSize + 5),
      /positive whole block lengths/);
  });

  it('notices one flipped byte', async () => {
    const data = randomBytes(3 * blockSize + 5, 11);
    const expected = hdfsReference(data, bytesPerCrc, blockSize, crc32cReference);
    const flipped = Buffer.from(data);
    flipped[blockSize + 100] = (flipped[blockSize + 100] ?? 0) ^ 0xff;
    assert.notEqual(await engineDigest({ algorithm: 'hdfs-md5md5crc32c', hex: expected, layout: { bytesPerCrc, blockSize } }, flipped, 0), expected);
  });
});

describe('WebHDFS GETFILECHECKSUM answers', () => {
  const MB128 = 134217728;
  // 28 bytes of value, then the 4 zero bytes of Hadoop's 32-byte serialization buffer.
  const md5Answer = (crcPerBlock: number, crc = 'CRC32C'): Record<string, unknown> => ({
    algorithm: `MD5-of-${crcPerBlock}MD5-of-512${crc}`,
    bytes: `00000200${crcPerBlock.toString(16).padStart(16, '0')}${'ab'.repeat(16)}00000000`,
    length: 28,
  });

  it('an MD5-of-MD5-of-CRC32C answer for a file of one block, with no block lengths needed', () => {
    assert.equal(spansBlocks(md5Answer(0), { length: 1000, blockSize: MB128 }), false);
    assert.deepEqual(checksumFromFileChecksum(md5Answer(0), { length: 1000, blockSize: MB128 }),
      { algorithm: 'hdfs-md5md5crc32c', hex: `00000200${'0'.repeat(16)}${'ab'.repeat(16)}`, layout: { bytesPerCrc: 512, blockSize: MB128 } });
  });

  it('an answer for several blocks with their lengths: the block size when they are even, the lengths when not', () => {
    const status = { length: 3 * MB128 + 1, blockSize: MB128 };
    assert.equal(spansBlocks(md5Answer(262144, 'CRC32'), status), true);
    const even = checksumFromFileChecksum(md5Answer(262144, 'CRC32'), status, [MB128, MB128, MB128, 1]);
    assert.deepEqual(typeof even === 'object' && [even.algorithm, even.hex.length, even.layout], ['hdfs-md5md5crc32', 56, { bytesPerCrc: 512, blockSize: MB128 }]);
    // A concatenation whose first block is full: crcPerBlock is the same as for even blocks.
    const lengths = [MB128, 1000, MB128, MB128 - 999];
    const concat = checksumFromFileChecksum(md5Answer(262144), status, lengths);
    assert.deepEqual(typeof concat === 'object' && concat.layout, { bytesPerCrc: 512, blockSize: MB128, blockLengths: lengths });
    // Shorter than one block, yet two blocks (crcPerBlock counts the first one's CRCs).
    assert.equal(spansBlocks(md5Answer(3), { length: 1500, blockSize: MB128 }), true);
    const small = checksumFromFileChecksum(md5Answer(3), { length: 1500, blockSize: MB128 }, [1100, 400]);
    assert.deepEqual(typeof small === 'object' && small.layout, { bytesPerCrc: 512, blockSize: MB128, blockLengths: [1100, 400] });
    // A composite CRC does not depend on the blocks.
    assert.equal(spansBlocks({ algorithm: 'COMPOSITE-CRC32C', bytes: '1A2B3C4D', length: 4 }, status), false);
  });

  it('a composite CRC answer as the plain CRC of the bytes', () => {
    assert.deepEqual(checksumFromFileChecksum({ algorithm: 'COMPOSITE-CRC32C', bytes: '1A2B3C4D', length: 4 }, { length: 5, blockSize: MB128 }),
      { algorithm: 'crc32c', hex: '1a2b3c4d' });
  });

  it('leaves to the size check what cannot be recomputed from the bytes and the block size', () => {
    const why = (value: unknown, status: Parameters<typeof checksumFromFileChecksum>[1], blockLengths?: number[]): string => {
      const result = checksumFromFileChecksum(value, status, blockLengths);
      assert.equal(typeof result, 'string', JSON.stringify(result));
      return result as string;
    };
    assert.match(why(null, { length: 5 }), /no FileChecksum/);
    assert.match(why({ algorithm: 'MD5-of-0MD5-of-512CRC32C', bytes: 'xyz', length: 28 }, { length: 5 }), /malformed/);
    assert.match(why({ algorithm: 'SHA-256', bytes: '00'.repeat(32), length: 32 }, { length: 5 }), /SHA-256 is not one/);
    assert.match(why({ algorithm: 'MD5-of-0MD5-of-512CRC32C', bytes: '00000100'.padEnd(56, '0'), length: 28 }, { length: 5, blockSize: MB128 }), /disagrees/);
    assert.match(why(md5Answer(0), { length: 5 }), /block size/);
    assert.match(why(md5Answer(0), { length: 5, blockSize: MB128, ecBit: true }), /erasure-coded/);
    // Several blocks whose lengths are unknown, or do not fit the answer or the file.
    assert.match(why(md5Answer(2), { length: 1500, blockSize: MB128 }), /several blocks and their lengths are unknown/);
    assert.match(why(md5Answer(0), { length: 2 * MB128, blockSize: MB128 }), /several blocks and their lengths are unknown/);
    assert.match(why(md5Answer(262144), { length: 2 * MB128, blockSize: MB128 }, [MB128, MB128 - 1]), /add up to 268435455 bytes, not its length 268435456/);
    assert.match(why(md5Answer(100), { length: 2 * MB128, blockSize: MB128 }, [MB128, MB128]), /100 CRCs in the first block\) disagrees with its 2 blocks/);
    assert.match(why(md5Answer(0), { length: 1500, blockSize: MB128 }, [1000, 500]), /disagrees/);
    assert.match(why(md5Answer(2), { length: 1500, blockSize: MB128 }, [1000, 0, 500]), /empty block/);
  });

  it('reads block lengths from GETFILEBLOCKLOCATIONS and GET_BLOCK_LOCATIONS answers', () => {
    const location = (offset: number, length: number): Record<string, unknown> =>
      ({ cachedHosts: [], corrupt: false, hosts: ['dn1'], length, names: ['10.0.0.1:9866'], offset, storageTypes: ['DISK'], topologyPaths: ['/default-rack/10.0.0.1:9866'] });
    assert.deepEqual(blockLengthsFrom({ BlockLocations: { BlockLocation: [location(0, MB128), location(MB128, 1000), location(MB128 + 1000, 7)] } }), [MB128, 1000, 7]);
    assert.deepEqual(blockLengthsFrom({ BlockLocations: { BlockLocation: [] } }), []);
    const located = (startOffset: number, numBytes: number): Record<string, unknown> =>
      ({ block: { blockId: 1073741825, blockPoolId: 'BP-1', generationStamp: 1001, numBytes }, blockToken: { urlString: 'AA' }, cachedLocations: [], isCorrupt: false, locations: [], startOffset });
    assert.deepEqual(blockLengthsFrom({ LocatedBlocks: { fileLength: 1600, isLastBlockComplete: true, isUnderConstruction: false, lastLocatedBlock: located(1500, 100), locatedBlocks: [located(0, 1500), located(1500, 100)] } }), [1500, 100]);
    assert.match(blockLengthsFrom({ FileStatus: {} }) as string, /no block list/);
    assert.match(blockLengthsFrom({ BlockLocations: { BlockLocation: [location(0, 10), location(20, 10)] } }) as string, /block at 20 where 10 was expected/);
    assert.match(blockLengthsFrom({ BlockLocations: { BlockLocation: [location(10, 10)] } }) as string, /block at 10 where 0/);
    assert.match(blockLengthsFrom({ LocatedBlocks: { locatedBlocks: [{ startOffset: 0, block: {} }] } }) as string, /malformed length/);
  });
});
