/**
 * Streaming digests for verification. A file's hash is fed in order from offset 0: inline while
 * the first part streams in, then from disk for whatever later parts wrote (see download-file.ts).
 */
import { createHash, type Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { Checksum } from '../sources/types.js';

export class SequentialHasher {
  readonly checksum: Checksum;
  private readonly hash: Hash;
  /** Bytes fed so far; always the length of the verified prefix [0, position). */
  position = 0;

  constructor(checksum: Checksum, size: number) {
    this.checksum = checksum;
    if (checksum.algorithm === 'git-sha1') {
      this.hash = createHash('sha1');
      this.hash.update(`blob ${size}\0`);
    } else {
      this.hash = createHash(checksum.algorithm);
    }
  }

  /** Feeds bytes that start at `offset`; ignored unless they continue the hashed prefix. */
  feed(offset: number, bytes: Uint8Array): void {
    if (offset !== this.position) return;
    this.hash.update(bytes);
    this.position += bytes.length;
  }

  /** Reads [position, size) back from the file, then compares. Returns the actual hex digest. */
  async finish(handle: FileHandle, size: number): Promise<string> {
    const buffer = Buffer.allocUnsafe(Math.min(4 * 2 ** 20, Math.max(size - this.position, 1)));
    while (this.position < size) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, size - this.position), this.position);
      if (bytesRead === 0) break;
      this.hash.update(buffer.subarray(0, bytesRead));
      this.position += bytesRead;
    }
    return this.hash.digest('hex');
  }
}

/** Base64 digests (Content-MD5, x-goog-hash) to the lower-case hex the engine compares. */
export function base64ToHex(value: string): string {
  return Buffer.from(value, 'base64').toString('hex');
}
