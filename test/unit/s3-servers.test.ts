// Self-tests of the S3 servers the suite starts itself (test/servers/): fauxqs (in-memory, no auth),
// OpenStack Swift with s3api (checks SigV4), and the STS double for web-identity credentials.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  type S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { startFauxqs, type FauxqsServer } from '../servers/fauxqs.js';
import { expectedEtag, makeBucketPublic, s3Client, uploadTree } from '../servers/s3-fixtures.js';
import { startSts } from '../servers/sts.js';
import { startSwift, type SwiftServer } from '../servers/swift.js';

const MiB = 1024 * 1024;

/** Deterministic pseudo-random bytes (so a failure reproduces). */
function pseudoRandom(size: number, seed: string): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(seed).digest();
  for (let offset = 0; offset < size; offset += block.length) {
    block.copy(out, offset);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

const BIG = pseudoRandom(20 * MiB, 'big');
const TREE = new Map<string, Buffer>([
  ['model/config.json', Buffer.from('{"name":"tiny"}\n')],
  ['model/empty/', Buffer.alloc(0)],
  ['model/weights/big.bin', BIG],
  ['model/weights/small.bin', pseudoRandom(3000, 'small')],
  ['model/z.txt', Buffer.from('last\n')],
  ['readme.md', Buffer.from('# test\n')],
]);

function pgrep(pattern: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('pgrep', ['-af', pattern], (err, stdout) => {
      if (err && err.code !== 1) reject(new Error(`pgrep failed: ${err.message}`));
      else resolve(stdout.trim());
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function getBytes(client: S3Client, bucket: string, key: string, range?: string): Promise<{ body: Buffer; contentRange?: string | undefined; etag?: string | undefined }> {
  const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key, ...(range === undefined ? {} : { Range: range }) }));
  assert.ok(res.Body, 'GetObject has a body');
  return { body: Buffer.from(await res.Body.transformToByteArray()), contentRange: res.ContentRange, etag: res.ETag };
}

async function listAll(client: S3Client, bucket: string, maxKeys: number): Promise<{ keys: string[]; pages: number }> {
  const keys: string[] = [];
  let token: string | undefined;
  let pages = 0;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, MaxKeys: maxKeys, ...(token === undefined ? {} : { ContinuationToken: token }) }),
    );
    pages++;
    assert.ok((page.Contents ?? []).length <= maxKeys);
    for (const o of page.Contents ?? []) if (o.Key !== undefined) keys.push(o.Key);
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    assert.ok(pages < 100, 'pagination terminates');
  } while (token !== undefined);
  return { keys, pages };
}

/** The checks both S3 servers must pass. */
function commonS3Tests(client: () => S3Client): void {
  const bucket = 'models-bucket';

  it('uploads a tree with a 20 MiB multipart object and returns S3 ETags', async () => {
    const etags = await uploadTree(client(), bucket, TREE);
    for (const [key, content] of TREE) {
      const body = key.endsWith('/') ? Buffer.alloc(0) : content;
      assert.equal(etags.get(key), expectedEtag(body), key);
    }
    assert.match(etags.get('model/weights/big.bin') ?? '', /^"[0-9a-f]{32}-3"$/);
    const head = await client().send(new HeadObjectCommand({ Bucket: bucket, Key: 'model/weights/big.bin' }));
    assert.equal(head.ContentLength, BIG.length);
    assert.equal(head.ETag, expectedEtag(BIG));
    // Uploading again (bucket exists) works.
    await uploadTree(client(), bucket, new Map([['readme.md', Buffer.from('# test\n')]]));
  });

  it('lists with pagination (MaxKeys 2)', async () => {
    const { keys, pages } = await listAll(client(), bucket, 2);
    assert.deepEqual(keys, [...TREE.keys()].sort());
    assert.equal(pages, 3);
  });

  it('returns exact bytes for whole and ranged GETs', async () => {
    const whole = await getBytes(client(), bucket, 'model/weights/big.bin');
    assert.ok(whole.body.equals(BIG));
    // Across the first part boundary (8 MiB).
    const a = 8 * MiB - 100;
    const r1 = await getBytes(client(), bucket, 'model/weights/big.bin', `bytes=${a}-${a + 299}`);
    assert.ok(r1.body.equals(BIG.subarray(a, a + 300)));
    assert.equal(r1.contentRange, `bytes ${a}-${a + 299}/${BIG.length}`);
    const r2 = await getBytes(client(), bucket, 'model/weights/big.bin', 'bytes=-10');
    assert.ok(r2.body.equals(BIG.subarray(BIG.length - 10)));
    assert.equal(r2.contentRange, `bytes ${BIG.length - 10}-${BIG.length - 1}/${BIG.length}`);
    const r3 = await getBytes(client(), bucket, 'model/weights/small.bin', 'bytes=2990-');
    assert.ok(r3.body.equals((TREE.get('model/weights/small.bin') ?? Buffer.alloc(0)).subarray(2990)));
    const marker = await getBytes(client(), bucket, 'model/empty/');
    assert.equal(marker.body.length, 0);
  });
}

describe('S3 test servers', { concurrency: false }, () => {
  let fauxqs: FauxqsServer;
  let swift: SwiftServer;
  let fauxqsClient: S3Client;
  let swiftClient: S3Client;

  before(async () => {
    // Start both at once: Swift takes a few seconds.
    [fauxqs, swift] = await Promise.all([startFauxqs(), startSwift()]);
    fauxqsClient = s3Client({ endpoint: fauxqs.endpoint, accessKeyId: 'any', secretAccessKey: 'any' });
    swiftClient = s3Client(swift);
  });

  after(async () => {
    fauxqsClient.destroy();
    swiftClient.destroy();
    await Promise.all([fauxqs.stop(), swift.stop()]);
  });

  describe('fauxqs', () => {
    commonS3Tests(() => fauxqsClient);

    it('accepts any credentials and unsigned requests (no ACLs)', async () => {
      const other = s3Client({ endpoint: fauxqs.endpoint, accessKeyId: 'x', secretAccessKey: 'wrong', maxAttempts: 1 });
      try {
        await other.send(new ListBucketsCommand({}));
      } finally {
        other.destroy();
      }
      await makeBucketPublic(fauxqsClient, 'models-bucket');
      const res = await fetch(`${fauxqs.endpoint}/models-bucket/readme.md`);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), '# test\n');
    });

    it('stop() leaves no process behind', async () => {
      const server = await startFauxqs();
      assert.ok(alive(server.pid));
      await server.stop();
      assert.equal(alive(server.pid), false);
      await server.stop(); // idempotent
    });
  });

  describe('swift', () => {
    commonS3Tests(() => swiftClient);

    it('refuses a wrong secret with 403 SignatureDoesNotMatch', async () => {
      const bad = s3Client({ ...swift, secretAccessKey: 'not-the-secret', maxAttempts: 1 });
      try {
        await assert.rejects(bad.send(new ListBucketsCommand({})), (err: unknown) => {
          assert.ok(err instanceof S3ServiceException);
          assert.equal(err.name, 'SignatureDoesNotMatch');
          assert.equal(err.$metadata.httpStatusCode, 403);
          return true;
        });
      } finally {
        bad.destroy();
      }
    });

    it('refuses unsigned S3 requests; public-read opens only the Swift URL', async () => {
      await uploadTree(swiftClient, 'public-bucket', new Map([['a.txt', Buffer.from('hello')]]));
      await makeBucketPublic(swiftClient, 'public-bucket');
      const s3Path = await fetch(`${swift.endpoint}/public-bucket/a.txt`);
      assert.ok(s3Path.status >= 400, `unsigned S3 GET: ${String(s3Path.status)}`);
      await s3Path.arrayBuffer();
      const pub = await fetch(`${swift.swiftUrl}/public-bucket/a.txt`);
      assert.equal(pub.status, 200);
      assert.equal(await pub.text(), 'hello');
      const priv = await fetch(`${swift.swiftUrl}/models-bucket/readme.md`);
      assert.equal(priv.status, 401);
      await priv.arrayBuffer();
    });

    // Last of this group: stops the shared server (after() then finds it stopped).
    it('started quickly and stop() leaves no process behind', async (t) => {
      t.diagnostic(`swift start-up: ${String(swift.startupMs)} ms`);
      // ~3-8 s here (2 vCPU); generous bound for a loaded CI machine.
      assert.ok(swift.startupMs < 20_000, `start-up took ${String(swift.startupMs)} ms`);
      assert.notEqual(await pgrep(swift.dir), '');
      await swift.stop();
      assert.equal(await pgrep(swift.dir), '');
      for (const pid of swift.pids) assert.equal(alive(pid), false, `pid ${String(pid)}`);
      await swift.stop(); // idempotent
    });
  });

  describe('sts double', () => {
    const roleArn = 'arn:aws:iam::123456789012:role/model-reader';
    const creds = { accessKeyId: 'ASIASTSDOUBLE0000001', secretAccessKey: 'sts-secret', sessionToken: 'sts-session-token' };
    const token = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6a3NlcnZlOm1vZGVsIiwiYXVkIjoic3RzLmFtYXpvbmF3cy5jb20ifQ.';

    /** Runs the SDK's default credential chain in a child process, as our CLI would run. */
    async function sdkInChild(stsEndpoint: string, tokenContent: string): Promise<Record<string, unknown>> {
      const dir = await mkdtemp(join(tmpdir(), 'sts-test-'));
      try {
        const tokenFile = join(dir, 'token');
        await writeFile(tokenFile, tokenContent);
        const script = `
          const { S3Client, ListBucketsCommand } = await import(process.argv[1]);
          const client = new S3Client({ endpoint: process.argv[2], forcePathStyle: true });
          let seen = {};
          client.middlewareStack.add((next) => async (args) => {
            seen = { authorization: args.request.headers.authorization, securityToken: args.request.headers['x-amz-security-token'] };
            return next(args);
          }, { step: 'deserialize', name: 'spy' });
          try {
            const c = await client.config.credentials();
            await client.send(new ListBucketsCommand({}));
            console.log(JSON.stringify({ accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey,
              sessionToken: c.sessionToken, expiration: c.expiration, ...seen }));
          } catch (err) {
            console.log(JSON.stringify({ error: err.name, message: err.message }));
          }`;
        const out = await new Promise<string>((resolve, reject) => {
          const child = spawn(
            process.execPath,
            ['--input-type=module', '-e', script, import.meta.resolve('@aws-sdk/client-s3'), fauxqs.endpoint],
            {
              stdio: ['ignore', 'pipe', 'pipe'],
              env: {
                PATH: process.env.PATH ?? '/usr/bin:/bin',
                HOME: dir,
                NODE_NO_WARNINGS: '1',
                AWS_CONFIG_FILE: join(dir, 'none'),
                AWS_SHARED_CREDENTIALS_FILE: join(dir, 'none'),
                AWS_EC2_METADATA_DISABLED: 'true',
                AWS_REGION: 'us-east-1',
                AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile,
                AWS_ROLE_ARN: roleArn,
                AWS_ENDPOINT_URL_STS: stsEndpoint,
              },
            },
          );
          let stdout = '';
          let stderr = '';
          child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
          child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
          child.once('error', reject);
          child.once('exit', (code) => {
            if (code === 0) resolve(stdout);
            else reject(new Error(`child exited ${String(code)}:\n${stdout}\n${stderr}`));
          });
        });
        return JSON.parse(out.trim().split('\n').pop() ?? '{}') as Record<string, unknown>;
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }

    it('issues credentials to the SDK web-identity provider (AWS_ENDPOINT_URL_STS)', async () => {
      const sts = await startSts({ roleArn, ...creds, expectedToken: token });
      try {
        const got = await sdkInChild(sts.endpoint, token);
        assert.equal(got.error, undefined, JSON.stringify(got));
        assert.equal(got.accessKeyId, creds.accessKeyId);
        assert.equal(got.secretAccessKey, creds.secretAccessKey);
        assert.equal(got.sessionToken, creds.sessionToken);
        const expiresIn = new Date(String(got.expiration)).getTime() - Date.now();
        assert.ok(expiresIn > 55 * 60_000 && expiresIn <= 3600_000, `expires in ${String(expiresIn)} ms`);
        assert.match(String(got.authorization), new RegExp(`Credential=${creds.accessKeyId}/`));
        assert.equal(got.securityToken, creds.sessionToken);
        assert.equal(sts.calls, 1);
        const req = sts.requests[0];
        assert.equal(req?.Action, 'AssumeRoleWithWebIdentity');
        assert.equal(req.Version, '2011-06-15');
        assert.equal(req.RoleArn, roleArn);
        assert.equal(req.WebIdentityToken, token);
        assert.ok((req.RoleSessionName ?? '').length > 0);
      } finally {
        await sts.stop();
      }
    });

    it('refuses a wrong token with 403 InvalidIdentityToken', async () => {
      const sts = await startSts({ roleArn, ...creds, expectedToken: token });
      try {
        const got = await sdkInChild(sts.endpoint, 'not-the-token');
        // The SDK names the modeled error InvalidIdentityTokenException (the wire code is InvalidIdentityToken).
        assert.equal(got.error, 'InvalidIdentityTokenException', JSON.stringify(got));
        assert.ok(sts.calls >= 1);

        const res = await fetch(sts.endpoint, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({
            Action: 'AssumeRoleWithWebIdentity',
            Version: '2011-06-15',
            RoleArn: roleArn,
            RoleSessionName: 's',
            WebIdentityToken: 'wrong',
          }).toString(),
        });
        assert.equal(res.status, 403);
        const xml = await res.text();
        assert.match(xml, /<ErrorResponse[^>]*>\s*<Error>\s*<Type>Sender<\/Type>\s*<Code>InvalidIdentityToken<\/Code>/);
      } finally {
        await sts.stop();
      }
    });
  });
});
