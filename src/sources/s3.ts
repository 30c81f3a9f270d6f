/**
 * S3 and S3-compatible stores (MinIO, Ceph, Swift s3api, ...): ListObjectsV2 pages and ranged
 * GetObject, pinned to the listed ETag so an object replaced mid-download fails instead of mixing.
 * Integrity: the MD5 ETag of single-part uploads, or the full-object checksum S3 stores for the
 * object (CRC32, CRC32C, SHA-1, SHA-256), learned with one HEAD for multipart objects.
 */
import {
  GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, type HeadObjectCommandOutput, type S3Client,
} from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import type { Settings } from '../settings/settings.js';
import { base64ToHex } from '../transfer/checksum.js';
import { createS3Client } from './s3-client.js';
import { s3Error, type S3Timeouts } from './s3-errors.js';
import type { ByteRange, Checksum, ObjectSource, RemoteObject } from './types.js';

const MD5_ETAG = /^"?([0-9a-f]{32})"?$/i;

/** The strongest full-object checksum a HEAD reports; composite (per-part) checksums cannot check a whole file. */
function fullObjectChecksum(head: HeadObjectCommandOutput): Checksum | undefined {
  if (head.ChecksumType !== undefined && head.ChecksumType !== 'FULL_OBJECT') return undefined;
  const candidates: [Checksum['algorithm'], string | undefined][] = [
    ['sha256', head.ChecksumSHA256], ['sha1', head.ChecksumSHA1], ['crc32c', head.ChecksumCRC32C], ['crc32', head.ChecksumCRC32],
  ];
  for (const [algorithm, value] of candidates) {
    if (value !== undefined && !value.includes('-')) return { algorithm, hex: base64ToHex(value) };
  }
  return undefined;
}

export class S3Source implements ObjectSource {
  readonly kind = 'object';
  readonly name = 'S3';
  readonly displayUri: string;
  readonly prefix: string;
  readonly capabilities = { ranges: true };
  private readonly bucket: string;
  private readonly client: S3Client;
  private readonly timeouts: S3Timeouts;
  /** Objects whose checksum is their ETag: an MD5 only for unencrypted or SSE-S3 objects. */
  private readonly etagChecksums = new WeakSet<RemoteObject>();

  constructor(bucket: string, key: string, settings: Settings) {
    this.bucket = bucket;
    this.prefix = key.replace(/\/+$/, '');
    this.displayUri = `s3://${bucket}/${key}`;
    this.client = createS3Client(settings);
    this.timeouts = settings.s3;
  }

  async *list(signal: AbortSignal): AsyncIterable<RemoteObject> {
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, ContinuationToken: token }), { abortSignal: signal });
      } catch (err) {
        throw s3Error(err, this.displayUri, this.timeouts);
      }
      for (const entry of page.Contents ?? []) {
        if (entry.Key === undefined) continue;
        const object: RemoteObject = { key: entry.Key, size: entry.Size, version: entry.ETag };
        const md5 = MD5_ETAG.exec(entry.ETag ?? '')?.[1];
        if (md5 !== undefined) {
          object.checksum = { algorithm: 'md5', hex: md5.toLowerCase() };
          this.etagChecksums.add(object);
        } else if ((entry.Size ?? 0) > 0) {
          object.checksum = await this.storedChecksum(entry.Key, signal);
        }
        yield object;
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  private async storedChecksum(key: string, signal: AbortSignal): Promise<Checksum | undefined> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key, ChecksumMode: 'ENABLED' }), { abortSignal: signal });
      return fullObjectChecksum(head);
    } catch (err) {
      throw s3Error(err, `s3://${this.bucket}/${key}`, this.timeouts);
    }
  }

  async read(obj: RemoteObject, range: ByteRange | undefined, signal: AbortSignal): Promise<Readable> {
    let output;
    try {
      output = await this.client.send(new GetObjectCommand({
        Bucket: this.bucket,
        Key: obj.key,
        Range: range === undefined ? undefined : `bytes=${range.start}-${range.end - 1}`,
        IfMatch: obj.version,
      }), { abortSignal: signal });
    } catch (err) {
      throw s3Error(err, `s3://${this.bucket}/${obj.key}`, this.timeouts);
    }
    // SSE-KMS and SSE-C objects have ETags that are not the MD5 of their bytes.
    const encrypted = (output.ServerSideEncryption !== undefined && output.ServerSideEncryption !== 'AES256') || output.SSECustomerAlgorithm !== undefined;
    if (encrypted && this.etagChecksums.has(obj)) obj.checksum = undefined;
    return output.Body as Readable;
  }

  close(): Promise<void> {
    this.client.destroy();
    return Promise.resolve();
  }
}
