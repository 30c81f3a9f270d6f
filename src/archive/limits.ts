import { Transform } from 'node:stream';
import { invalidInput } from '../errors.js';

/** Caps on what one archive may unpack to; exceeding any of them fails the extraction. */
export interface ArchiveLimits {
  /** Bytes written for all entries together. */
  maxBytes: number;
  /** Entries of any kind (files, directories, links). */
  maxEntries: number;
  /** Extracted bytes per archive byte, enforced once RATIO_GRACE_BYTES have been extracted. */
  maxRatio: number;
}

/** Below this much output the ratio is not checked: small archives of small files compress well legitimately. */
export const RATIO_GRACE_BYTES = 64 * 1024 * 1024;

const show = (name: string) => JSON.stringify(name.length > 200 ? `${name.slice(0, 200)}...` : name);

/**
 * Counts entries and bytes as they are written, and throws the InvalidInput error naming the
 * entry at which a limit was crossed. Bytes are counted as written, not as declared, so a header
 * that lies about a size cannot get more through than the limit.
 */
export class ExtractionBudget {
  entries = 0;
  bytes = 0;

  constructor(
    private readonly limits: ArchiveLimits,
    private readonly archiveBytes: number,
  ) {}

  /** Counts one more entry. */
  addEntry(name: string): void {
    this.entries++;
    if (this.entries > this.limits.maxEntries) {
      throw invalidInput(`the archive has more than ${this.limits.maxEntries} entries (the limit), at entry ${show(name)}`);
    }
  }

  /** Refuses early an entry whose declared size alone would pass maxBytes. */
  checkDeclared(name: string, size: number): void {
    if (size > this.limits.maxBytes - this.bytes) {
      throw invalidInput(`refusing archive entry ${show(name)}: it declares ${size} bytes, more than the ${this.limits.maxBytes - this.bytes} bytes left under the limit of ${this.limits.maxBytes}`);
    }
  }

  /** Counts bytes just written for an entry. */
  addBytes(name: string, n: number): void {
    this.bytes += n;
    if (this.bytes > this.limits.maxBytes) {
      throw invalidInput(`the archive unpacks to more than ${this.limits.maxBytes} bytes (the limit), at entry ${show(name)}`);
    }
    if (this.bytes > RATIO_GRACE_BYTES && this.bytes > this.limits.maxRatio * Math.max(this.archiveBytes, 1)) {
      throw invalidInput(`the archive unpacks to more than ${this.limits.maxRatio} times its own size of ${this.archiveBytes} bytes (the limit; a decompression bomb?), at entry ${show(name)}`);
    }
  }

  /** A pass-through stream that counts an entry's data against the budget as it flows to disk. */
  meter(name: string): Transform {
    return new Transform({
      transform: (chunk: Buffer, _encoding, callback) => {
        try {
          this.addBytes(name, chunk.length);
          callback(null, chunk);
        } catch (err) {
          callback(err as Error);
        }
      },
    });
  }
}
