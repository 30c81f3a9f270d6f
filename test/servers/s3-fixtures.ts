// Fixtures for the S3 test servers (fauxqs.ts, swift.ts): a client configured the way both accept,
// uploading a tree of objects, and making a bucket public where a server can express it.
//
// Anonymous access, per server (details in the headers of fauxqs.ts and swift.ts):
//   fauxqs  checks no signature at all: an unsigned S3 request reads any bucket, "public" or not.
//           It can express "anonymous access to a public bucket works", never "... to a private
//           bucket is refused". PutBucketAcl is a no-op there.
//   Swift   s3api ignores unsigned requests (they reach Swift's native API, which answers 400/412 on
//           S3 paths), so anonymous S3 requests are refused for every bucket, public or not.
//           PutBucketAcl public-read does make the bucket readable anonymously through the Swift
//           URL (`${swiftUrl}/bucket/key`: 200, private 401), not through S3.
// So "anonymous refused on a private bucket" can be tested against Swift, "anonymous works on a
// public bucket" only against fauxqs (where it works on every bucket).
import { createHash } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  PutBucketAclCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from '@aws-sdk/client-s3';

export interface S3ClientOptions {
  readonly endpoint: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
  /** Default us-east-1. */
  readonly region?: string;
  /** Default 3 (the SDK's). Use 1 to see the first failure. */
  readonly maxAttempts?: number;
}

/**
 * A path-style client for a test server. Checksums are only computed when an operation requires
 * them (Swift refuses the SDK's default aws-chunked uploads with trailing checksums).
 */
export function s3Client(o: S3ClientOptions): S3Client {
  return new S3Client({
    endpoint: o.endpoint,
    region: o.region ?? 'us-east-1',
    forcePathStyle: true,
    credentials: {
      accessKeyId: o.accessKeyId,
      secretAccessKey: o.secretAccessKey,
      ...(o.sessionToken === undefined ? {} : { sessionToken: o.sessionToken }),
    },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...(o.maxAttempts === undefined ? {} : { maxAttempts: o.maxAttempts }),
  });
}

export interface UploadTreeOptions {
  /** Objects larger than this go as multipart. Default 8 MiB (fauxqs refuses bodies > 11 MiB). */
  readonly multipartThreshold?: number;
  /** Part size of multipart uploads, 5-8 MiB for both servers. Default 8 MiB. */
  readonly partSize?: number;
  /** Objects uploaded at once. Default 4. */
  readonly concurrency?: number;
}

const MiB = 1024 * 1024;

/** The ETag S3 gives an object uploaded in parts of `partSize` (quoted), or its MD5 when it is one PUT. */
export function expectedEtag(body: Buffer, options: UploadTreeOptions = {}): string {
  const threshold = options.multipartThreshold ?? 8 * MiB;
  const partSize = options.partSize ?? 8 * MiB;
  if (body.length <= threshold) return `"${createHash('md5').update(body).digest('hex')}"`;
  const digests: Buffer[] = [];
  for (let offset = 0; offset < body.length; offset += partSize) {
    digests.push(createHash('md5').update(body.subarray(offset, offset + partSize)).digest());
  }
  return `"${createHash('md5').update(Buffer.concat(digests)).digest('hex')}-${digests.length}"`;
}

/** Creates `bucket` unless it exists already (on either server). */
export async function ensureBucket(client: S3Client, bucket: string): Promise<void> {
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (err) {
    if (err instanceof S3ServiceException && (err.name === 'BucketAlreadyOwnedByYou' || err.name === 'BucketAlreadyExists')) {
      return;
    }
    throw err;
  }
}

async function uploadMultipart(client: S3Client, bucket: string, key: string, body: Buffer, partSize: number): Promise<string> {
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
  if (UploadId === undefined) throw new Error(`CreateMultipartUpload of ${key} returned no UploadId`);
  try {
    const parts: { PartNumber: number; ETag: string }[] = [];
    for (let offset = 0, n = 1; offset < body.length; offset += partSize, n++) {
      const { ETag } = await client.send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: key,
          UploadId,
          PartNumber: n,
          Body: body.subarray(offset, offset + partSize),
        }),
      );
      if (ETag === undefined) throw new Error(`UploadPart ${String(n)} of ${key} returned no ETag`);
      parts.push({ PartNumber: n, ETag });
    }
    const done = await client.send(
      new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }),
    );
    return done.ETag ?? '';
  } catch (err) {
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId })).catch(() => undefined);
    throw err;
  }
}

/**
 * Creates `bucket` if needed and uploads every entry of `tree` (key -> content) as a Buffer:
 * one PutObject up to `multipartThreshold`, multipart above it. Keys ending in '/' become 0-byte
 * directory markers (their content is ignored). Resolves to the ETag the server returned per key.
 */
export async function uploadTree(
  client: S3Client,
  bucket: string,
  tree: ReadonlyMap<string, Buffer>,
  options: UploadTreeOptions = {},
): Promise<Map<string, string>> {
  const threshold = options.multipartThreshold ?? 8 * MiB;
  const partSize = options.partSize ?? 8 * MiB;
  await ensureBucket(client, bucket);
  const etags = new Map<string, string>();
  const entries = [...tree];
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < entries.length; i = next++) {
      const entry = entries[i];
      if (entry === undefined) break;
      const [key, content] = entry;
      const body = key.endsWith('/') ? Buffer.alloc(0) : content;
      if (body.length > threshold) {
        etags.set(key, await uploadMultipart(client, bucket, key, body, partSize));
      } else {
        const { ETag } = await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
        etags.set(key, ETag ?? '');
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 4) }, worker));
  return etags;
}

/**
 * Sends PutBucketAcl `public-read`. On Swift this makes the bucket readable anonymously through the
 * Swift URL only; on fauxqs it changes nothing (everything is already readable anonymously). See
 * the header of this file for what each server can express.
 */
export async function makeBucketPublic(client: S3Client, bucket: string): Promise<void> {
  await client.send(new PutBucketAclCommand({ Bucket: bucket, ACL: 'public-read' }));
}
