/**
 * Tar archives written byte by byte, so a test controls every name, type, mode, link target and
 * declared size exactly (base-256 for sizes octal cannot hold), with no committed binaries.
 */

export interface TarEntry {
  name: string;
  /** '0' file, '1' hard link, '2' symlink, '3' char device, '4' block device, '5' dir, '6' FIFO, 'x' pax header. */
  type?: string;
  data?: Buffer;
  /** Declared size when it should differ from data.length. */
  size?: bigint | number;
  linkname?: string;
  /** Default 0755 for directories, 0644 otherwise. */
  mode?: number;
}

function writeNumber(header: Buffer, offset: number, length: number, value: bigint): void {
  if (value < 8n ** BigInt(length - 1)) {
    header.write(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, length, 'latin1');
    return;
  }
  // GNU base-256: the high bit of the first byte set, then the value big-endian.
  header.fill(0, offset, offset + length);
  header[offset] = 0x80;
  let rest = value;
  for (let i = offset + length - 1; i > offset; i--) {
    header[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
}

export function tarHeader(entry: TarEntry): Buffer {
  const header = Buffer.alloc(512);
  header.write(entry.name, 0, 100, 'utf8');
  writeNumber(header, 100, 8, BigInt(entry.mode ?? (entry.type === '5' ? 0o755 : 0o644)));
  writeNumber(header, 108, 8, 0n);
  writeNumber(header, 116, 8, 0n);
  writeNumber(header, 124, 12, BigInt(entry.size ?? entry.data?.length ?? 0));
  writeNumber(header, 136, 12, 1_700_000_000n);
  header.write('        ', 148, 8, 'latin1');
  header.write(entry.type ?? '0', 156, 1, 'latin1');
  if (entry.linkname !== undefined) header.write(entry.linkname, 157, 100, 'utf8');
  header.write('ustar\u000000', 257, 8, 'latin1');
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return header;
}

/** The entries, each padded to 512 bytes, then (unless `end` is false) the two zero blocks. */
export function tarBytes(entries: readonly TarEntry[], { end = true } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    parts.push(tarHeader(entry));
    if (entry.data !== undefined && entry.data.length > 0) parts.push(entry.data, Buffer.alloc((512 - (entry.data.length % 512)) % 512));
  }
  if (end) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}
