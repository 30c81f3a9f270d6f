/**
 * The Azure File double is faithful enough to test against: the official @azure/storage-file-share
 * SDK (not our source) lists it recursively with pagination, reads properties and ranges, signs
 * with Shared Key and SAS that the double verifies, and parses its errors.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  AnonymousCredential, generateFileSASQueryParameters, RestError, ShareClient, ShareSASPermissions, StorageSharedKeyCredential,
} from '@azure/storage-file-share';
import { FILE_ACCOUNT, FILE_KEY, startAzureFileDouble, type AzureFileDouble } from '../servers/azure-file-double.js';
import { randomBytes } from '../helpers/tree.js';

const BIG = randomBytes(100_000, 9);
const TREE = new Map([
  ['models/config.json', Buffer.from('{}')],
  ['models/a/b/c/deep 深.bin', BIG],
  ['models/empty/', Buffer.alloc(0)],
  ...Array.from({ length: 25 }, (_, i) => [`models/many/f${String(i).padStart(2, '0')}.txt`, Buffer.from(`file ${i}`)] as [string, Buffer]),
]);

async function walk(share: ShareClient, start: string): Promise<string[]> {
  const found: string[] = [];
  const queue = [start];
  for (let dir = queue.shift(); dir !== undefined; dir = queue.shift()) {
    const client = dir === '' ? share.rootDirectoryClient : share.getDirectoryClient(dir);
    for await (const page of client.listFilesAndDirectories({ includeEtag: true }).byPage({ maxPageSize: 10 })) {
      for (const d of page.segment.directoryItems) queue.push(`${dir}/${d.name}`);
      for (const f of page.segment.fileItems) found.push(`${dir}/${f.name}`);
    }
  }
  return found.sort();
}

describe('azure file double, checked with the official SDK', () => {
  let double: AzureFileDouble;
  let share: ShareClient;
  const key = new StorageSharedKeyCredential(FILE_ACCOUNT, FILE_KEY);

  before(async () => {
    double = await startAzureFileDouble();
    double.addShare('models-share', TREE);
    share = new ShareClient(`${double.endpoint}/models-share`, key, { retryOptions: { maxTries: 1 } });
  });
  after(() => double.stop());

  it('lists recursively with Shared Key, following NextMarker across pages', async () => {
    const before = double.requests.length;
    const expected = [...TREE.keys()].filter((k) => !k.endsWith('/')).sort();
    assert.deepEqual(await walk(share, 'models'), expected);
    const listings = double.requests.slice(before).filter((r) => r.includes('comp=list'));
    assert.ok(listings.some((r) => /marker=/.test(r)), 'expected a paginated listing');
    assert.ok(listings.every((r) => r.endsWith(' 200')));
  });

  it('reports Content-MD5, size and ETag in Get File Properties', async () => {
    const props = await share.rootDirectoryClient.getFileClient('models/a/b/c/deep 深.bin').getProperties();
    assert.equal(props.contentLength, BIG.length);
    assert.ok(props.contentMD5 !== undefined && props.contentMD5.length === 16);
    assert.match(props.etag ?? '', /^"0x8D/);
  });

  it('downloads a byte range (206) and the whole file', async () => {
    const file = share.rootDirectoryClient.getFileClient('models/a/b/c/deep 深.bin');
    const part = await file.downloadToBuffer(1000, 5000);
    assert.deepEqual(part, BIG.subarray(1000, 6000));
    const ranged = await file.download(70_000, 100);
    assert.equal(ranged.contentLength, 100);
    assert.equal(ranged.contentRange, `bytes 70000-70099/${BIG.length}`);
    assert.deepEqual(await file.downloadToBuffer(), BIG);
  });

  it('accepts a service SAS for the share and checks its permissions and signature', async () => {
    const sas = (permissions: string, signingKey = key): string => generateFileSASQueryParameters({
      shareName: 'models-share', permissions: ShareSASPermissions.parse(permissions), expiresOn: new Date(Date.now() + 3600_000),
    }, signingKey).toString();
    const viaSas = (token: string): ShareClient => new ShareClient(`${double.endpoint}/models-share?${token}`, new AnonymousCredential(), { retryOptions: { maxTries: 1 } });
    assert.equal((await walk(viaSas(sas('rl')), 'models')).length, TREE.size - 1);
    await assert.rejects(walk(viaSas(sas('r')), 'models'), (err: unknown) => err instanceof RestError && err.statusCode === 403 && err.code === 'AuthorizationPermissionMismatch');
    const forged = sas('rl', new StorageSharedKeyCredential(FILE_ACCOUNT, Buffer.alloc(64, 1).toString('base64')));
    await assert.rejects(walk(viaSas(forged), 'models'), (err: unknown) => err instanceof RestError && err.statusCode === 403 && err.code === 'AuthenticationFailed');
  });

  it('refuses a wrong key (403) and no credentials (401), with x-ms-error-code the SDK parses', async () => {
    const wrong = new ShareClient(`${double.endpoint}/models-share`, new StorageSharedKeyCredential(FILE_ACCOUNT, Buffer.alloc(64, 2).toString('base64')), { retryOptions: { maxTries: 1 } });
    await assert.rejects(wrong.rootDirectoryClient.getFileClient('models/config.json').getProperties(), (err: unknown) => err instanceof RestError && err.statusCode === 403);
    const anonymous = new ShareClient(`${double.endpoint}/models-share`, new AnonymousCredential(), { retryOptions: { maxTries: 1 } });
    await assert.rejects(anonymous.getDirectoryClient('models').listFilesAndDirectories().next(), (err: unknown) => err instanceof RestError && err.statusCode === 401 && err.code === 'NoAuthenticationInformation');
  });

  it('answers 404 for a missing file or directory', async () => {
    await assert.rejects(share.rootDirectoryClient.getFileClient('models/nope.bin').download(0), (err: unknown) => err instanceof RestError && err.statusCode === 404 && err.code === 'ResourceNotFound');
    await assert.rejects(share.getDirectoryClient('nope').listFilesAndDirectories().next(), (err: unknown) => err instanceof RestError && err.statusCode === 404);
  });
});
