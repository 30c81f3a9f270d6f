/**
 * Streaming digests for verification. A file's hash is fed in order from offset 0: inline while
 * the first part streams in, then from disk for whatever later parts wrote (see file-job.ts).
 */
import { Crc32c } from '@aws-crypto/crc32c';
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import type { Checksum, ChecksumAlgorithm } from '../sources/types.js';

interface Digest {
  update(bytes: Uint8Array): void;
  hex(): string;
}

const crcHex = (value: number): string => (value >>> 0).toString(16).padStart(8, '0');

function createDigest(algorithm: ChecksumAlgorithm, size: number): Digest {
  switch (algorithm) {
    case 'crc32': {
      let value = 0;
      return { update: (bytes) => { value = crc32(bytes, value); }, hex: () => crcHex(value) };
    }
    case 'crc32c': {
      const crc = new Crc32c();
      return { update: (bytes) => { crc.update(bytes); }, hex: () => crcHex(crc.digest()) };
    }
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
    this.digest = createDigest(checksum.algorithm, size);
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
