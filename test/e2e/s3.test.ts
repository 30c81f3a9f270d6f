/**
 * The S3 backend end to end with the bundled CLI: fauxqs for the contract's environment forms and
 * faults, Swift's s3api where real signature checks matter, and an STS double for IRSA.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { faultsInOrder, startFaultProxy, type Fault } from '../servers/fault-proxy.js';
import { startForwardProxy } from '../servers/forward-proxy.js';
import { startFauxqs } from '../servers/fauxqs.js';
import { s3Client, uploadTree } from '../servers/s3-fixtures.js';
import { startSts } from '../servers/sts.js';
import { startSwift } from '../servers/swift.js';
import { failsWith, runCli } from '../helpers/cli.js';
import { freshDest, hashOf, hashTree, randomBytes, tempDir, type Tree } from '../helpers/tree.js';

const MODEL: Tree = new Map([
  ['models/iris/model.bin', randomBytes(3 * 2 ** 20 + 5, 31)],
  ['models/iris/config.json', Buffer.from('{"k":1}')],
  ['models/iris/__init__.py', Buffer.alloc(0)],
  ['models/iris2/model.bin', Buffer.from('sibling: never downloaded')],
  ['models/single.onnx', randomBytes(1000, 32)],
  ['hostile/a/../../../escape.txt', Buffer.from('must not escape')],
]);
const IRIS: Tree = new Map([...MODEL].filter(([k]) => k.startsWith('models/iris/')).map(([k, v]) => [k.slice('models/iris/'.length), v]));

describe('S3 backend (fauxqs)', () => {
  let fauxqs: Awaited<ReturnType<typeof startFauxqs>>;
  let work: Awaited<ReturnType<typeof tempDir>>;
  const keys = { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'fauxqs-secret-value' };

  before(async () => {
    work = await tempDir('si-s3-');
    fauxqs = await startFauxqs();
    await uploadTree(s3Client({ endpoint: fauxqs.endpoint, accessKeyId: 'a', secretAccessKey: 'b', region: 'us-east-1' }), 'bucket', MODEL);
  });
  after(async () => {
    await fauxqs.stop();
    await work[Symbol.asyncDispose]();
  });

  const dest = (): string => freshDest(work.dir);
  const env = (): Record<string, string> => ({ AWS_ENDPOINT_URL: fauxqs.endpoint, ...keys });

  it('downloads a prefix as a directory (never the iris2 sibling), keeping 0-byte files', async () => {
    const out = dest();
    const result = await runCli(['--part-size', '1MiB', 's3://bucket/models/iris', out], { env: env() });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await hashTree(out), hashOf(IRIS));
    assert.ok(!result.stderr.includes(keys.AWS_SECRET_ACCESS_KEY));
  });

  it('downloads an object whose key equals the URI to DEST/<basename>', async () => {
    const out = dest();
    const result = await runCli(['s3://bucket/models/single.onnx', out], { env: env() });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual([...(await hashTree(out)).keys()], ['single.onnx']);
  });

  it('takes credentials and endpoint from STORAGE_CONFIG, and S3_ENDPOINT with S3_USE_HTTPS=0', async () => {
    const config = JSON.stringify({ type: 's3', endpoint_url: fauxqs.endpoint, access_key_id: 'cfg-key', secret_access_key: 'cfg-secret-value', region: 'us-east-1' });
    const viaConfig = await runCli(['s3://bucket/models/iris', dest()], { env: { STORAGE_CONFIG: config } });
    assert.equal(viaConfig.code, 0, viaConfig.stderr);
    assert.ok(!viaConfig.stderr.includes('cfg-secret-value'));
    const viaHost = await runCli(['s3://bucket/models/iris', dest()], { env: { ...keys, S3_ENDPOINT: new URL(fauxqs.endpoint).host, S3_USE_HTTPS: '0', AWS_DEFAULT_REGION: 'eu-west-1' } });
    assert.equal(viaHost.code, 0, viaHost.stderr);
  });

  it('refuses a key with ".." segments and writes nothing outside DEST', async () => {
    const out = dest();
    failsWith(await runCli(['s3://bucket/hostile', out], { env: env() }), /refusing object key .*\.\./);
    assert.deepEqual(await readdir(path.dirname(out)), ['models']);
    assert.deepEqual(await readdir(out), []);
  });

  it('says "No model found" for an empty prefix and names a missing bucket', async () => {
    failsWith(await runCli(['s3://bucket/models/nothing-here', dest()], { env: env() }), /No model found in s3:\/\/bucket\/models\/nothing-here/);
    failsWith(await runCli(['s3://no-such-bucket/models', dest()], { env: env() }), /S3 bucket not found for s3:\/\/no-such-bucket\/models/);
  });

  it('sends unsigned requests with awsAnonymousCredential=true (a public bucket)', async () => {
    const signed: boolean[] = [];
    const proxy = await startFaultProxy({ upstream: fauxqs.endpoint, schedule: (req) => { signed.push(req.headers.authorization !== undefined); return { kind: 'none' }; } });
    try {
      const out = dest();
      const result = await runCli(['s3://bucket/models/iris', out], { env: { AWS_ENDPOINT_URL: proxy.url, awsAnonymousCredential: 'true' } });
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(await hashTree(out), hashOf(IRIS));
      assert.ok(signed.length > 0 && signed.every((s) => !s), 'no request carried an Authorization header');
    } finally {
      await proxy.stop();
    }
  });

  it('tunnels through HTTP_PROXY, and around it for NO_PROXY', async () => {
    const proxy = await startForwardProxy();
    try {
      const through = await runCli(['s3://bucket/models/iris', dest()], { env: { ...env(), HTTP_PROXY: proxy.url } });
      assert.equal(through.code, 0, through.stderr);
      assert.ok(proxy.seen.includes(`CONNECT ${new URL(fauxqs.endpoint).host}`), proxy.seen.join('\n'));
      const seen = proxy.seen.length;
      const around = await runCli(['s3://bucket/models/iris', dest()], { env: { ...env(), HTTP_PROXY: proxy.url, NO_PROXY: '127.0.0.1' } });
      assert.equal(around.code, 0, around.stderr);
      assert.equal(proxy.seen.length, seen);
    } finally {
      await proxy.stop();
    }
  });

  it('obtains credentials through an IRSA web identity token from STS', async () => {
    const sts = await startSts({ roleArn: 'arn:aws:iam::123456789012:role/model-reader', accessKeyId: 'ASIAEXAMPLE', secretAccessKey: 'sts-secret', sessionToken: 'sts-session-token', expectedToken: 'projected-sa-token' });
    try {
      const tokenFile = path.join(work.dir, 'token');
      await writeFile(tokenFile, 'projected-sa-token');
      const irsa = { AWS_ENDPOINT_URL: fauxqs.endpoint, AWS_ROLE_ARN: 'arn:aws:iam::123456789012:role/model-reader', AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile, AWS_ENDPOINT_URL_STS: sts.endpoint, AWS_REGION: 'us-east-1' };
      const result = await runCli(['s3://bucket/models/iris', dest()], { env: irsa });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(sts.calls, 1);
      await writeFile(tokenFile, 'a-wrong-token');
      const refused = await runCli(['s3://bucket/models/iris', dest()], { env: irsa });
      assert.equal(refused.code, 1);
      assert.ok(!refused.stderr.includes('a-wrong-token'));
    } finally {
      await sts.stop();
    }
  });

  it('survives resets, 503 SlowDown and short bodies through a faulty proxy, byte-identical', async () => {
    const faults: Fault[] = [
      { kind: 'reset-mid-body', afterBytes: 200_000 },
      { kind: 'status', status: 503, body: '<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>', headers: { 'content-type': 'application/xml' } },
      { kind: 'truncate', afterBytes: 100_000 },
      { kind: 'stall', afterBytes: 10_000 },
    ];
    const proxy = await startFaultProxy({ upstream: fauxqs.endpoint, schedule: faultsInOrder(faults, { match: (r) => r.method === 'GET' && r.range !== undefined }) });
    try {
      const out = dest();
      const result = await runCli(['--part-size', '1MiB', 's3://bucket/models/iris', out], { env: { ...env(), AWS_ENDPOINT_URL: proxy.url, STORAGE_INITIALIZER_READ_TIMEOUT: '1' } });
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(await hashTree(out), hashOf(IRIS));
      assert.ok(proxy.stats.faults['reset-mid-body'] >= 1 && proxy.stats.faults.status >= 1);
      assert.equal(await readFile(path.join(out, 'model.bin')).then((b) => b.length), IRIS.get('model.bin')?.length);
    } finally {
      await proxy.stop();
    }
  });
});

describe('S3 backend (Swift s3api, signatures checked)', () => {
  let swift: Awaited<ReturnType<typeof startSwift>>;
  let work: Awaited<ReturnType<typeof tempDir>>;

  before(async () => {
    work = await tempDir('si-swift-');
    swift = await startSwift();
    await uploadTree(s3Client(swift), 'bucket', MODEL);
  });
  after(async () => {
    await swift.stop();
    await work[Symbol.asyncDispose]();
  });

  const dest = (): string => freshDest(work.dir);

  it('downloads with the right secret', async () => {
    const out = dest();
    const result = await runCli(['s3://bucket/models/iris', out], { env: { AWS_ENDPOINT_URL: swift.endpoint, AWS_ACCESS_KEY_ID: swift.accessKeyId, AWS_SECRET_ACCESS_KEY: swift.secretAccessKey } });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await hashTree(out), hashOf(IRIS));
  });

  it('says "authentication failed" naming S3 for a wrong secret, without printing it', async () => {
    const result = await runCli(['s3://bucket/models/iris', dest()], { env: { AWS_ENDPOINT_URL: swift.endpoint, AWS_ACCESS_KEY_ID: swift.accessKeyId, AWS_SECRET_ACCESS_KEY: 'wrong-secret-value', S3_MAX_ATTEMPTS: '1' } });
    failsWith(result, /S3 authentication failed for s3:\/\/bucket\/models\/iris \(SignatureDoesNotMatch\)/);
    assert.ok(!result.stderr.includes('wrong-secret-value'));
  });
});
