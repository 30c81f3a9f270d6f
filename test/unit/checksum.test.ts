import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { Checksum } from '../../src/sources/types.js';
import { SequentialHasher } from '../../src/transfer/checksum.js';

async function digestOf(checksum: Checksum, data: Buffer, inlineBytes: number): Promise<string> {
  const file = path.join(tmpdir(), `si-checksum-${process.pid}-${checksum.algorithm}`);
  await writeFile(file, data);
  const handle = await open(file, 'r');
  try {
    const hasher = new SequentialHasher(checksum, data.length);
    hasher.feed(0, data.subarray(0, inlineBytes)); // the first part, inline
    hasher.feed(inlineBytes + 5, data.subarray(inlineBytes + 5)); // out of order: ignored, read back
    return await hasher.finish(handle, data.length);
  } finally {
    await handle.close();
    await rm(file, { force: true });
  }
}

describe('SequentialHasher', () => {
  const data = Buffer.from('The quick brown fox jumps over the lazy dog');
  const cases: [Checksum['algorithm'], string][] = [
    ['md5', createHash('md5').update(data).digest('hex')],
    ['sha256', createHash('sha256').update(data).digest('hex')],
    ['git-sha1', createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex')],
    ['crc32', '414fa339'],
    ['crc32c', '22620404'],
  ];
  for (const [algorithm, expected] of cases) {
    it(`computes ${algorithm} from inline bytes plus the rest read back from disk`, async () => {
      assert.equal(await digestOf({ algorithm, hex: expected }, data, 10), expected);
    });
  }
});
