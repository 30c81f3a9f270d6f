import type { Readable } from 'node:stream';
import type { Logger } from '../log.js';
import type { Settings } from '../settings/settings.js';

/**
 * Checksum algorithms the engine can verify. `git-sha1` is git's blob hash ("blob <size>\0" +
 * bytes); `crc32` and `crc32c` are the 32-bit values as 8 hex digits, big-endian (as S3 and GCS
 * send them in base64). `hdfs-md5md5crc32c` / `hdfs-md5md5crc32` are HDFS's MD5-of-block-MD5s of
 * chunk CRCs, as its serialized form (bytesPerCRC, crcPerBlock, MD5); they need `layout`.
 */
export type ChecksumAlgorithm = 'md5' | 'sha1' | 'sha256' | 'git-sha1' | 'crc32' | 'crc32c' | 'hdfs-md5md5crc32c' | 'hdfs-md5md5crc32';

/** A digest as the backend reports it, always lower-case hex. */
export interface Checksum {
  algorithm: ChecksumAlgorithm;
  hex: string;
  /**
   * For digests that depend on how the store cut the bytes up: chunk and block sizes in bytes, and
   * when the blocks are not all `blockSize` long (concatenated or appended files), each block's length.
   */
  layout?: { bytesPerCrc: number; blockSize: number; blockLengths?: number[] | undefined } | undefined;
}

/** Half-open byte range [start, end). */
export interface ByteRange {
  start: number;
  end: number;
}

/** One object as a backend lists it. */
export interface RemoteObject {
  /** The backend's full key (or path) for the object; passed back to read(). */
  key: string;
  /** Size in bytes, when the backend knows it before reading. */
  size: number | undefined;
  /**
   * The digest to verify. A source may clear it while reading when a response shows it does not
   * apply (an S3 ETag is not an MD5 for SSE-KMS objects); the engine checks it when the file completes.
   */
  checksum?: Checksum | undefined;
  /** An identity of this version of the object (ETag, generation); a partial download of another version is not resumed. */
  version?: string | undefined;
}

export interface ObjectSourceCapabilities {
  /** read() honours byte ranges, so large objects can be fetched in parallel parts and resumed. */
  ranges: boolean;
}

/**
 * A backend that can list objects and read byte ranges: S3, GCS, Azure, WebHDFS, HTTP, hubs, local copy.
 * It authenticates, lists and reads; the engine does everything else.
 */
export interface ObjectSource {
  readonly kind: 'object';
  /** Backend name for messages: "S3", "HTTP", "local". */
  readonly name: string;
  /** The URI with secrets removed, for logs and errors. */
  readonly displayUri: string;
  /**
   * The key prefix the URI names. An object whose key equals it is a single-object download;
   * otherwise every object under `prefix/` (a directory boundary) is downloaded. Empty means everything.
   */
  readonly prefix: string;
  readonly capabilities: ObjectSourceCapabilities;
  list(signal: AbortSignal): AsyncIterable<RemoteObject>;
  /** A stream of exactly the requested bytes (the whole object when range is undefined). */
  read(obj: RemoteObject, range: ByteRange | undefined, signal: AbortSignal): Promise<Readable>;
  /** Releases connections; called once after the transfer. */
  close?(): Promise<void>;
}

export interface Summary {
  files: number;
  bytes: number;
}

/** What a source needs from the run: settings, a logger, the cancellation signal. */
export interface Context {
  settings: Settings;
  log: Logger;
  signal: AbortSignal;
}

/** A backend that produces a directory tree itself: git clone, OCI layers, local symlinks. */
export interface TreeSource {
  readonly kind: 'tree';
  readonly name: string;
  readonly displayUri: string;
  materialize(dest: string, ctx: Context): Promise<Summary>;
  close?(): Promise<void>;
}

export type Source = ObjectSource | TreeSource;
