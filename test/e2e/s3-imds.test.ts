/**
 * S3 credentials from the EC2 instance metadata service, end to end with the bundled CLI: the
 * SDK's instance-metadata provider runs inside the S3 backend bundle (dist/backends/s3.cjs), asks
 * the IMDS double for an IMDSv2 token and the instance profile's credentials, and signs for Swift's
 * s3api, which checks SigV4. Swift ignores x-amz-security-token (it has no STS), so a pass-through
 * proxy in front of it checks that every S3 request carried the session token IMDS handed out.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startFaultProxy, type FaultProxy } from '../servers/fault-proxy.js';
import { startImds, type ImdsCredentials, type ImdsServer } from '../servers/imds-double.js';
import { s3Client, uploadTree } from '../servers/s3-fixtures.js';
import { startSwift, SWIFT_ACCESS_KEY_ID, SWIFT_SECRET_ACCESS_KEY, type SwiftServer } from '../servers/swift.js';
import { failsWith, runCli, type CliResult } from '../helpers/cli.js';
import { skipWithout } from '../helpers/system.js';
import { freshDest, hashOf, hashTree, randomBytes, tempDir, type Tree } from '../helpers/tree.js';

const MODEL: Tree = new Map([
  ['models/iris/model.bin', randomBytes(2 * 2 ** 20 + 7, 41)],
  ['models/iris/config.json', Buffer.from('{"k":1}')],
  ['models/iris/__init__.py', Buffer.alloc(0)],
]);
const IRIS: Tree = new Map([...MODEL].map(([k, v]) => [k.slice('models/iris/'.length), v]));

const ROLE = 'model-reader';
const SESSION_TOKEN = 'IQoJb3JpZ2luX2VjEImds-session-token-value';
/** What EC2 hands out for an instance profile; here the one key pair Swift's tempauth accepts. */
const SWIFT_CREDENTIALS: ImdsCredentials = { accessKeyId: SWIFT_ACCESS_KEY_ID, secretAccessKey: SWIFT_SECRET_ACCESS_KEY, sessionToken: SESSION_TOKEN };

/** Asserts that no credential of the run (IMDS tokens included) appears in its output. */
function printsNoSecret(result: CliResult, imds: ImdsServer, secretAccessKey: string): void {
  const text = result.stdout + result.stderr;
  for (const secret of [secretAccessKey, SESSION_TOKEN, ...imds.issuedTokens]) assert.ok(!text.includes(secret), `a secret is in the output:\n${text}`);
}

describe('IMDS double', () => {
  it('issues IMDSv2 tokens and refuses GETs without one unless IMDSv1 is allowed', async () => {
    const imds = await startImds({ role: ROLE, credentials: SWIFT_CREDENTIALS });
    const v1 = await startImds({ role: ROLE, credentials: SWIFT_CREDENTIALS, allowV1: true });
    try {
      const list = `${imds.endpoint}/latest/meta-data/iam/security-credentials/`;
      assert.equal((await fetch(`${imds.endpoint}/latest/api/token`, { method: 'PUT' })).status, 400);
      assert.equal((await fetch(`${imds.endpoint}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '21601' } })).status, 400);
      assert.equal((await fetch(list)).status, 401);
      assert.equal((await fetch(list, { headers: { 'x-aws-ec2-metadata-token': 'not-issued' } })).status, 401);
      const put = await fetch(`${imds.endpoint}/latest/api/token`, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } });
      assert.equal(put.status, 200);
      assert.equal(put.headers.get('x-aws-ec2-metadata-token-ttl-seconds'), '60');
      const token = await put.text();
      const role = await fetch(list, { headers: { 'x-aws-ec2-metadata-token': token } });
      assert.equal(await role.text(), ROLE);
      const document = await fetch(`${list}${ROLE}`, { headers: { 'x-aws-ec2-metadata-token': token } }).then(async (r) => (await r.json()) as Record<string, string>);
      assert.equal(document.Code, 'Success');
      assert.equal(document.Type, 'AWS-HMAC');
      assert.equal(document.Token, SESSION_TOKEN);
      assert.match(document.Expiration ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      const region = await fetch(`${imds.endpoint}/latest/meta-data/placement/region`, { headers: { 'x-aws-ec2-metadata-token': token } });
      assert.equal(await region.text(), 'us-east-1');
      assert.deepEqual(imds.counts, { tokenPuts: 1, roleListGets: 1, credentialGets: 1, regionGets: 1, unauthorized: 2 });
      assert.equal((await fetch(`${v1.endpoint}/latest/meta-data/iam/security-credentials/`)).status, 200);
    } finally {
      await imds.stop();
      await v1.stop();
    }
  });
});

describe('S3 credentials from the EC2 instance metadata service (Swift s3api)', { skip: skipWithout('swift-proxy-server') }, () => {
  let swift: SwiftServer;
  let proxy: FaultProxy;
  let work: Awaited<ReturnType<typeof tempDir>>;
  /** The x-amz-security-token of every S3 request that reached Swift, in order. */
  let tokensSeen: (string | undefined)[] = [];

  before(async () => {
    work = await tempDir('si-imds-');
    swift = await startSwift();
    await uploadTree(s3Client(swift), 'bucket', MODEL);
    proxy = await startFaultProxy({
      upstream: swift.endpoint,
      schedule: (req) => {
        const token = req.headers['x-amz-security-token'];
        tokensSeen.push(typeof token === 'string' ? token : undefined);
        return { kind: 'none' };
      },
    });
  });
  after(async () => {
    await proxy.stop();
    await swift.stop();
    await work[Symbol.asyncDispose]();
  });

  /**
   * Nothing but IMDS can supply credentials: no AWS_* keys, no role for IRSA, no container
   * credentials, shared config files that do not exist, IMDS not disabled. Debug level, so a
   * secret the SDK or our log would print shows.
   */
  const env = (imdsEndpoint: string): Record<string, string> => ({
    AWS_ENDPOINT_URL: proxy.url,
    AWS_EC2_METADATA_SERVICE_ENDPOINT: imdsEndpoint,
    AWS_CONFIG_FILE: path.join(work.dir, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: path.join(work.dir, 'no-aws-credentials'),
    S3_MAX_ATTEMPTS: '1',
    STORAGE_INITIALIZER_LOG_LEVEL: 'debug',
  });

  it('downloads with the instance profile credentials over IMDSv2, byte-identical, printing no secret', async () => {
    const imds = await startImds({ role: ROLE, credentials: SWIFT_CREDENTIALS });
    tokensSeen = [];
    try {
      const out = freshDest(work.dir);
      const result = await runCli(['--part-size', '1MiB', 's3://bucket/models/iris', out], { env: env(imds.endpoint) });
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(await hashTree(out), hashOf(IRIS));
      assert.ok(imds.counts.tokenPuts >= 1, JSON.stringify(imds.requests));
      assert.ok(imds.counts.roleListGets >= 1 && imds.counts.credentialGets >= 1, JSON.stringify(imds.requests));
      assert.equal(imds.counts.unauthorized, 0, JSON.stringify(imds.requests));
      assert.ok(imds.requests.filter((r) => r.method === 'GET').every((r) => r.auth === 'v2'));
      assert.ok(tokensSeen.length >= 4, `S3 requests seen: ${String(tokensSeen.length)}`); // a listing and three objects
      assert.deepEqual(new Set(tokensSeen), new Set([SESSION_TOKEN]));
      printsNoSecret(result, imds, SWIFT_SECRET_ACCESS_KEY);
    } finally {
      await imds.stop();
    }
  });

  // The SDK's own IMDS client for the region imports node:http lazily; inside a backend bundle an
  // import() left in place fails, the SDK swallows the error, and the region is never asked for.
  it('asks IMDS for the instance region with AWS_DEFAULTS_MODE=auto, and downloads', async () => {
    const imds = await startImds({ role: ROLE, credentials: SWIFT_CREDENTIALS });
    try {
      const out = freshDest(work.dir);
      const result = await runCli(['s3://bucket/models/iris', out], { env: { ...env(imds.endpoint), AWS_DEFAULTS_MODE: 'auto' } });
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(await hashTree(out), hashOf(IRIS));
      assert.ok(imds.counts.regionGets >= 1, JSON.stringify(imds.requests));
      assert.equal(imds.counts.unauthorized, 0, JSON.stringify(imds.requests));
      printsNoSecret(result, imds, SWIFT_SECRET_ACCESS_KEY);
    } finally {
      await imds.stop();
    }
  });

  it('fails as an authentication error when IMDS hands out a secret Swift does not accept', async () => {
    const wrongSecret = 'imds-wrong-secret-value';
    const imds = await startImds({ role: ROLE, credentials: { ...SWIFT_CREDENTIALS, secretAccessKey: wrongSecret } });
    try {
      const result = await runCli(['s3://bucket/models/iris', freshDest(work.dir)], { env: env(imds.endpoint) });
      failsWith(result, /S3 authentication failed for s3:\/\/bucket\/models\/iris \(SignatureDoesNotMatch\)/);
      assert.ok(imds.counts.credentialGets >= 1);
      printsNoSecret(result, imds, wrongSecret);
    } finally {
      await imds.stop();
    }
  });

  it('says in one line that no credentials were found when IMDS has none for the role', async () => {
    const imds = await startImds({ role: ROLE, credentials: SWIFT_CREDENTIALS, credentialsAvailable: false });
    tokensSeen = [];
    try {
      const result = await runCli(['s3://bucket/models/iris', freshDest(work.dir)], { env: env(imds.endpoint) });
      failsWith(result, /^.*S3 authentication failed for s3:\/\/bucket\/models\/iris: no AWS credentials found\. .*$/);
      assert.ok(imds.counts.tokenPuts >= 1 && imds.counts.credentialGets >= 1, JSON.stringify(imds.requests));
      assert.ok(imds.requests.some((r) => r.status === 404 && r.path.endsWith(`/${ROLE}`)));
      assert.deepEqual(tokensSeen, [], 'nothing is sent to S3 without credentials');
      printsNoSecret(result, imds, SWIFT_SECRET_ACCESS_KEY);
    } finally {
      await imds.stop();
    }
  });
});
