/**
 * Hostile archives written byte by byte (no committed binaries): tar headers with any type, name,
 * link target and declared size (base-256 for the huge ones), pax records, and zips whose central
 * directory may lie about sizes, modes and offsets. Decompression bombs are built from one small
 * deflate chunk repeated, so gigabytes of zeros are declared without ever being in memory.
 */
import zlib from 'node:zlib';
import type { TarEntry } from '../helpers/tar-bytes.js';

export { tarBytes, tarHeader, type TarEntry } from '../helpers/tar-bytes.js';

/** A pax extended header entry carrying `records` (e.g. path=../../x) for the entry after it. */
export function paxEntry(records: Record<string, string>): TarEntry {
  let body = '';
  for (const [key, value] of Object.entries(records)) {
    const tail = ` ${key}=${value}\n`;
    let length = tail.length + 1;
    while (`${length}${tail}`.length !== length) length = `${length}${tail}`.length;
    body += `${length}${tail}`;
  }
  return { name: 'PaxHeader', type: 'x', data: Buffer.from(body, 'utf8') };
}

export interface ZipEntry {
  name: string;
  data?: Buffer;
  /** Raw deflate body (method 8), for bombs. */
  compressed?: Buffer;
  /** Unix st_mode stored in the external attributes (links, devices, FIFOs). */
  mode?: number;
  /** What the headers declare, when it should differ from data.length. */
  uncompressedSize?: number;
  crc?: number;
  /** Point this central entry at the local entry of an earlier one (overlapping bombs). */
  sameDataAs?: number;
}

/** A zip; entries with `sameDataAs` get a central record only, pointing at another's local header. */
export function zipBytes(entries: readonly ZipEntry[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  const offsets: number[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = Buffer.from(entry.name, 'utf8');
    const data = entry.data ?? Buffer.alloc(0);
    const method = entry.compressed === undefined ? 0 : 8;
    const body = entry.compressed ?? data;
    const crc = entry.crc ?? zlib.crc32(data);
    const size = entry.uncompressedSize ?? data.length;
    const mode = entry.mode ?? (entry.name.endsWith('/') ? 0o040755 : 0o100644);
    let localOffset = offset;
    if (entry.sameDataAs === undefined) {
      const local = Buffer.alloc(30);
      local.writeUInt32LE(0x04034b50, 0);
      local.writeUInt16LE(20, 4);
      local.writeUInt16LE(0x800, 6);
      local.writeUInt16LE(method, 8);
      local.writeUInt16LE(0x21, 12);
      local.writeUInt32LE(crc >>> 0, 14);
      local.writeUInt32LE(body.length, 18);
      local.writeUInt32LE(size, 22);
      local.writeUInt16LE(name.length, 26);
      locals.push(local, name, body);
      offset += local.length + name.length + body.length;
    } else {
      localOffset = offsets[entry.sameDataAs] ?? 0;
    }
    offsets.push(localOffset);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 30, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x800, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc >>> 0, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE((mode << 16) >>> 0, 38);
    central.writeUInt32LE(localOffset, 42);
    centrals.push(central, name);
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

const ZERO_CHUNK = 1 << 20;

/**
 * A raw deflate stream of `prefix` then `chunks` MiB of zeros, about 1 KiB per MiB: one
 * sync-flushed chunk repeated (its back-references stay inside its own copy, so any copy decodes
 * to zeros wherever it lands), then a final empty block. Gigabytes declared, a few megabytes sent.
 */
export function deflatedZeros(chunks: number, prefix: Uint8Array = new Uint8Array(0)): Buffer {
  const sync = { level: 9, finishFlush: zlib.constants.Z_SYNC_FLUSH };
  const chunk = zlib.deflateRawSync(Buffer.alloc(ZERO_CHUNK), sync);
  const parts: Uint8Array[] = prefix.length > 0 ? [zlib.deflateRawSync(prefix, sync)] : [];
  for (let i = 0; i < chunks; i++) parts.push(chunk);
  parts.push(zlib.deflateRawSync(Buffer.alloc(0)));
  return Buffer.concat(parts);
}

/** A gzip member around a raw deflate stream. Its trailer (CRC, size) is zeros: a bomb is stopped long before it is read. */
export function gzipMember(deflated: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]), deflated, Buffer.alloc(8)]);
}
