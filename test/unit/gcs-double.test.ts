/**
 * The GCS double is faithful: Google's own clients (@google-cloud/storage and `gcloud storage`)
 * list and download from it, and check its hashes; its token endpoint verifies signed JWTs.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, createSign } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Storage } from '@google-cloud/storage';
import { skipWithout } from '../helpers/system.js';
import { randomBytes, tempDir } from '../helpers/tree.js';
import { GCS_READ_SCOPE, startGcsDouble, type GcsDouble, type ServiceAccountKey } from '../servers/gcs-double.js';

const BLOB = randomBytes(300_000, 21);

function jwt(key: ServiceAccountKey, claims: Record<string, unknown> = {}): string {
  const now = Math.floor(Date.now() / 1000);
  const enc = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  const unsigned = `${enc({ alg: 'RS256', typ: 'JWT' })}.${enc({ iss: key.client_email, scope: GCS_READ_SCOPE, aud: key.token_uri, iat: now, exp: now + 3600, ...claims })}`;
  return `${unsigned}.${createSign('RSA-SHA256').update(unsigned).sign(key.private_key).toString('base64url')}`;
}

async function exchange(key: ServiceAccountKey, assertion: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(key.token_uri, {
    method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion }),
  });
  return { status: res.status, body: await res.json() as Record<string, unknown> };
}

describe('GCS double', () => {
  let gcs: GcsDouble;
  let work: Awaited<ReturnType<typeof tempDir>>;

  before(async () => {
    work = await tempDir('si-gcs-double-');
    gcs = await startGcsDouble();
    gcs.createBucket('public-models', { public: true });
    gcs.createBucket('private-models');
    gcs.putObject('public-models', 'iris/model.bin', BLOB);
    gcs.putObject('public-models', 'iris/composite.bin', BLOB.subarray(0, 1000), { composite: true });
    for (let i = 0; i < 1005; i++) gcs.putObject('public-models', `many/f${String(i).padStart(4, '0')}`, Buffer.from(String(i)));
    gcs.putObject('private-models', 'secret.bin', Buffer.from('private'));
  });
  after(async () => {
    await gcs.stop();
    await work[Symbol.asyncDispose]();
  });

  it('@google-cloud/storage downloads (validating crc32c and md5) and lists with pagination', async () => {
    const storage = new Storage({ apiEndpoint: gcs.url, projectId: 'double-project' });
    const bucket = storage.bucket('public-models');
    const [bytes] = await bucket.file('iris/model.bin').download({ validation: 'crc32c' });
    assert.ok(bytes.equals(BLOB));
    const [md5Checked] = await bucket.file('iris/model.bin').download({ validation: 'md5' });
    assert.ok(md5Checked.equals(BLOB));
    const [files] = await bucket.getFiles({ prefix: 'iris/' });
    assert.deepEqual(files.map((f) => f.name), ['iris/composite.bin', 'iris/model.bin']);
    const [many] = await bucket.getFiles({ prefix: 'many/' });
    assert.equal(many.length, 1005);
    const [metadata] = await bucket.file('iris/model.bin').getMetadata();
    assert.equal(metadata.size, String(BLOB.length));
    assert.equal(metadata.md5Hash, createHash('md5').update(BLOB).digest('base64'));
    const [, , apiResponse] = await bucket.getFiles({ prefix: 'many/', autoPaginate: false, maxResults: 2000 });
    assert.ok(typeof (apiResponse as { nextPageToken?: unknown }).nextPageToken === 'string', 'a page holds at most 1000 entries');
  });

  it('@google-cloud/storage is refused a private bucket anonymously with GCS\'s JSON error', async () => {
    const storage = new Storage({ apiEndpoint: gcs.url, projectId: 'double-project' });
    await assert.rejects(storage.bucket('private-models').file('secret.bin').download(), (err: unknown) =>
      err instanceof Error && 'code' in err && err.code === 401 && /Anonymous caller does not have storage\.objects\.get access/.test(err.message));
    await assert.rejects(storage.bucket('no-such-bucket').getFiles(), (err: unknown) =>
      err instanceof Error && 'code' in err && err.code === 404 && /bucket does not exist/.test(err.message));
  });

  it('gcloud storage cp downloads byte-identical and gcloud storage ls lists', { skip: skipWithout('gcloud', { notInstalledByCi: true }), timeout: 90_000 }, async () => {
    const config = path.join(work.dir, 'gcloud-config');
    await mkdir(config);
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: work.dir, CLOUDSDK_CONFIG: config,
      CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE: `${gcs.url}/`, CLOUDSDK_AUTH_DISABLE_CREDENTIALS: 'true',
      CLOUDSDK_CORE_DISABLE_PROMPTS: '1', CLOUDSDK_CORE_PROJECT: 'double-project',
    };
    const gcloud = (args: string[]): Promise<string> => new Promise((resolve, reject) => {
      execFile('gcloud', args, { env, timeout: 60_000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`gcloud ${args.join(' ')} failed: ${err.message}\n${stderr}`));
        else resolve(stdout);
      });
    });
    const target = path.join(work.dir, 'x.bin');
    const composite = path.join(work.dir, 'c.bin');
    await Promise.all([
      gcloud(['storage', 'cp', 'gs://public-models/iris/model.bin', target]),
      gcloud(['storage', 'cp', 'gs://public-models/iris/composite.bin', composite]),
    ]);
    assert.ok((await readFile(target)).equals(BLOB));
    assert.ok((await readFile(composite)).equals(BLOB.subarray(0, 1000)));
    const listed = await gcloud(['storage', 'ls', 'gs://public-models/iris/']);
    assert.deepEqual(listed.trim().split('\n'), ['gs://public-models/iris/composite.bin', 'gs://public-models/iris/model.bin']);
  });

  it('serves ranges (206, Content-Range, 416) with x-goog-hash and x-goog-generation', async () => {
    const media = `${gcs.url}/storage/v1/b/public-models/o/${encodeURIComponent('iris/model.bin')}?alt=media`;
    const part = await fetch(media, { headers: { range: 'bytes=100-199' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 100-199/${BLOB.length}`);
    assert.ok(Buffer.from(await part.arrayBuffer()).equals(BLOB.subarray(100, 200)));
    const hash = part.headers.get('x-goog-hash') ?? '';
    assert.match(hash, /^crc32c=[A-Za-z0-9+/=]{8},md5=/);
    assert.match(part.headers.get('x-goog-generation') ?? '', /^\d+$/);
    const beyond = await fetch(media, { headers: { range: `bytes=${BLOB.length}-` } });
    assert.equal(beyond.status, 416);
    assert.equal(beyond.headers.get('content-range'), `bytes */${BLOB.length}`);
    const stale = await fetch(`${media}&generation=1`);
    assert.equal(stale.status, 404);
    const body = await stale.json() as { error: { code: number; errors: unknown[] } };
    assert.equal(body.error.code, 404);
    assert.equal(body.error.errors.length, 1);
  });

  it('token endpoint: a signed JWT of a known service account gets a token that opens the private bucket', async () => {
    const key = gcs.createServiceAccount();
    const ok = await exchange(key, jwt(key));
    assert.equal(ok.status, 200);
    assert.equal(ok.body.token_type, 'Bearer');
    const token = String(ok.body.access_token);
    const read = await fetch(`${gcs.url}/storage/v1/b/private-models/o/secret.bin?alt=media`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(await read.text(), 'private');
    const bogus = await fetch(`${gcs.url}/storage/v1/b/private-models/o/secret.bin?alt=media`, { headers: { authorization: 'Bearer nope' } });
    assert.equal(bogus.status, 401);

    const forged = gcs.unknownServiceAccount(key.client_email);
    assert.deepEqual((await exchange(key, jwt(forged))).body, { error: 'invalid_grant', error_description: 'Invalid JWT Signature.' });
    assert.equal((await exchange(key, jwt(gcs.unknownServiceAccount()))).body.error, 'invalid_grant');
    assert.equal((await exchange(key, jwt(key, { aud: 'https://oauth2.googleapis.com/token' }))).body.error, 'invalid_grant');
    assert.equal((await exchange(key, jwt(key, { scope: 'https://www.googleapis.com/auth/userinfo.email' }))).body.error, 'invalid_scope');
  });

  it('accepts simple uploads from an authorized caller', async () => {
    const key = gcs.createServiceAccount();
    const token = String((await exchange(key, jwt(key))).body.access_token);
    const res = await fetch(`${gcs.url}/upload/storage/v1/b/private-models/o?uploadType=media&name=${encodeURIComponent('up/é.txt')}`, {
      method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'text/plain' }, body: 'uploaded',
    });
    assert.equal(res.status, 200);
    const meta = await fetch(`${gcs.url}/storage/v1/b/private-models/o/${encodeURIComponent('up/é.txt')}`, { headers: { authorization: `Bearer ${token}` } });
    const json = await meta.json() as { size: string; md5Hash: string };
    assert.equal(json.size, '8');
    assert.equal(json.md5Hash, createHash('md5').update('uploaded').digest('base64'));
  });
});
