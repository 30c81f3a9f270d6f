/**
 * The GCS source end to end: the bundled CLI against the GCS double (STORAGE_EMULATOR_HOST), with a
 * service-account key, anonymously, through the metadata server (workload identity), and failing
 * in one clear line when credentials are missing, wrong or not allowed.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { failsWith, runCli, type CliResult } from '../helpers/cli.js';
import { freshDest, hashOf, hashTree, randomBytes, tempDir, type Tree } from '../helpers/tree.js';
import { startGcsDouble, type GcsDouble, type ServiceAccountKey } from '../servers/gcs-double.js';

const TREE: Tree = new Map([
  ['models/iris/model.bin', randomBytes(300_000, 31)],
  ['models/iris/config.json', Buffer.from('{"framework":"sklearn"}')],
  ['models/iris/sub dir/ünï.txt', Buffer.from('nested\n')],
  ['models/iris/__init__.py', Buffer.alloc(0)],
  ['models/iris2/other.bin', Buffer.from('must not be downloaded')],
]);
const COMPOSITE = randomBytes(200_000, 32);

describe('gcs source (CLI against the GCS double)', () => {
  let gcs: GcsDouble;
  let work: Awaited<ReturnType<typeof tempDir>>;
  let key: ServiceAccountKey;
  let keyFile: string;
  let forgedKeyFile: string;
  let outsiderKeyFile: string;
  let home: string;

  before(async () => {
    work = await tempDir('si-gcs-e2e-');
    gcs = await startGcsDouble();
    for (const bucket of ['private-models', 'public-models']) {
      gcs.createBucket(bucket, { public: bucket === 'public-models' });
      for (const [name, content] of TREE) gcs.putObject(bucket, name, content);
    }
    gcs.putObject('private-models', 'composite/weights.bin', COMPOSITE, { composite: true });
    key = gcs.createServiceAccount('loader@double-project.iam.gserviceaccount.com');
    keyFile = path.join(work.dir, 'key.json');
    forgedKeyFile = path.join(work.dir, 'forged.json');
    outsiderKeyFile = path.join(work.dir, 'outsider.json');
    await writeFile(keyFile, JSON.stringify(key));
    // The right account name, the wrong private key: the token endpoint refuses the signature.
    await writeFile(forgedKeyFile, JSON.stringify(gcs.unknownServiceAccount(key.client_email)));
    await writeFile(outsiderKeyFile, JSON.stringify(gcs.createServiceAccount('outsider@double-project.iam.gserviceaccount.com')));
    gcs.createBucket('readers-only', { readers: [key.client_email] });
    gcs.putObject('readers-only', 'm/model.bin', Buffer.from('restricted'));
    // An empty HOME and gcloud config: no ADC file of this machine leaks in.
    home = path.join(work.dir, 'home');
    await mkdir(home);
  });

  after(async () => {
    await gcs.stop();
    await work[Symbol.asyncDispose]();
  });

  /** The environment of a pod pointed at the double; the metadata host is the double too (no metadata server unless it says so). */
  const env = (extra: Record<string, string> = {}, server: GcsDouble = gcs): Record<string, string> => ({
    HOME: home, CLOUDSDK_CONFIG: path.join(home, 'gcloud'), STORAGE_EMULATOR_HOST: server.url,
    GCE_METADATA_HOST: `127.0.0.1:${server.port}`, ...extra,
  });

  async function download(uri: string, environment: Record<string, string>, args: string[] = []): Promise<{ result: CliResult; files: Map<string, string> }> {
    const dest = freshDest(path.join(work.dir, 'out'));
    const result = await runCli([...args, uri, dest], { env: environment });
    return { result, files: await hashTree(dest).catch(() => new Map<string, string>()) };
  }

  const under = (prefix: string): Map<string, string> =>
    hashOf(new Map([...TREE].filter(([k]) => k.startsWith(`${prefix}/`)).map(([k, v]) => [k.slice(prefix.length + 1), v])));


  const leaksNoSecret = (result: CliResult): void => {
    const body = key.private_key.split('\n')[1] ?? 'unreachable';
    assert.ok(!result.stderr.includes(body) && !result.stdout.includes(body), 'private key material in the output');
    assert.ok(!/ya29\.double-/.test(result.stderr), 'an access token in the output');
  };

  it('downloads a prefix with a service-account key (token_uri honoured, one token per run, ranged parts)', async () => {
    const tokensBefore = gcs.tokensIssued;
    const requestsBefore = gcs.requests.length;
    const { result, files } = await download('gs://private-models/models/iris', env({ GOOGLE_APPLICATION_CREDENTIALS: keyFile }), ['--part-size', '64KiB', '--log-level', 'debug']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, under('models/iris'));
    assert.equal(gcs.tokensIssued - tokensBefore, 1, 'the access token is fetched once');
    const media = gcs.requests.slice(requestsBefore).filter((r) => r.query.get('alt') === 'media' && r.path.endsWith('/model.bin'));
    assert.ok(media.length >= 5 && media.every((r) => r.authorized && r.range !== undefined && r.query.get('generation') !== null), 'ranged, authorized, generation-pinned reads');
    assert.match(result.stderr, /Successfully copied gs:\/\/private-models\/models\/iris to/);
    leaksNoSecret(result);
  });

  it('downloads anonymously from a public bucket when no credentials exist, and says so', async () => {
    const { result, files } = await download('gs://public-models/models/iris/', env());
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, under('models/iris'));
    assert.match(result.stderr, /INFO GCS: no Google credentials found .*anonymous access/);
  });

  it('downloads a single object to DEST/<basename>', async () => {
    const { result, files } = await download('gs://public-models/models/iris/config.json', env());
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, hashOf(new Map([['config.json', TREE.get('models/iris/config.json') ?? Buffer.alloc(0)]])));
  });

  it('gets a token from the metadata server (GKE workload identity) when no key is given', async () => {
    const withMetadata = await startGcsDouble({ metadata: true });
    try {
      withMetadata.createBucket('wi-models');
      withMetadata.putObject('wi-models', 'm/model.bin', Buffer.from('workload identity'));
      const { result, files } = await download('gs://wi-models/m', env({}, withMetadata));
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(files, hashOf(new Map([['model.bin', Buffer.from('workload identity')]])));
      assert.equal(withMetadata.tokensIssued, 1);
    } finally {
      await withMetadata.stop();
    }
  });

  it('fails in one line naming GCS, the URI and what to check, for a private bucket without credentials', async () => {
    const { result } = await download('gs://private-models/models/iris', env());
    const line = failsWith(result, /GCS authentication failed for gs:\/\/private-models\/models\/iris.*GOOGLE_APPLICATION_CREDENTIALS.*workload identity/);
    assert.match(line, /bucket private-models is not public/);
  });

  it('fails in one line for a key the token endpoint refuses, without printing the key', async () => {
    const { result } = await download('gs://private-models/models/iris', env({ GOOGLE_APPLICATION_CREDENTIALS: forgedKeyFile }));
    failsWith(result, /GCS authentication failed: the token endpoint .* refused the service account loader@double-project\.iam\.gserviceaccount\.com .*Invalid JWT Signature.*GOOGLE_APPLICATION_CREDENTIALS/);
    leaksNoSecret(result);
  });

  it('fails in one line when the account may not read the bucket (403), and for a missing bucket', async () => {
    const denied = await download('gs://readers-only/m', env({ GOOGLE_APPLICATION_CREDENTIALS: outsiderKeyFile }));
    failsWith(denied.result, /GCS access denied for gs:\/\/readers-only\/m .*outsider@double-project.*roles\/storage\.objectViewer/);
    const missing = await download('gs://no-such-bucket/m', env({ GOOGLE_APPLICATION_CREDENTIALS: keyFile }));
    failsWith(missing.result, /GCS bucket no-such-bucket not found/);
  });

  it('catches a corrupted byte with crc32c (a composite object has no md5) and downloads the file again', async () => {
    gcs.corruptNextRead('private-models', 'composite/weights.bin');
    const before = gcs.requests.length;
    const { result, files } = await download('gs://private-models/composite', env({ GOOGLE_APPLICATION_CREDENTIALS: keyFile }));
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, hashOf(new Map([['weights.bin', COMPOSITE]])));
    assert.match(result.stderr, /WARN .*crc32c.*downloading weights\.bin again/i);
    assert.equal(gcs.requests.slice(before).filter((r) => r.query.get('alt') === 'media').length, 2);
  });
});
