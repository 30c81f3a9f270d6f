/**
 * AzureFileSource details the conformance suite does not reach: a connection dropped mid-body is
 * resumed by the engine (the SDK's own retries are off), Content-MD5 is what verifies, and a file
 * without one still downloads.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../src/log.js';
import { loadSettings } from '../../src/settings/settings.js';
import { AzureFileSource } from '../../src/sources/azure-file.js';
import { transferObjects } from '../../src/transfer/engine.js';
import { parseStorageUri } from '../../src/uri/index.js';
import { hashOf, hashTree, randomBytes, tempDir } from '../helpers/tree.js';
import { FILE_ACCOUNT, FILE_KEY, startAzureFileDouble, type AzureFileDouble } from '../servers/azure-file-double.js';

const BIG = randomBytes(200_000, 4);

describe('AzureFileSource', () => {
  let double: AzureFileDouble;
  const settings = (): ReturnType<typeof loadSettings> => loadSettings({
    AZURE_STORAGE_FILE_ENDPOINT: double.endpoint, AZURE_STORAGE_ACCESS_KEY: FILE_KEY, STORAGE_INITIALIZER_PART_SIZE: '64KiB', STORAGE_INITIALIZER_CONCURRENCY: '1',
  }, { progress: false });
  const source = (path: string): Promise<AzureFileSource> => {
    const location = parseStorageUri(`https://${FILE_ACCOUNT}.file.core.windows.net/share/${path}`);
    if (location.scheme !== 'azure-file') throw new Error('not an Azure File URI');
    return AzureFileSource.create(location, settings());
  };

  before(async () => {
    double = await startAzureFileDouble();
    double.addShare('share', new Map([['m/big.bin', BIG]]));
  });
  after(() => double.stop());

  it('lists Content-MD5 and ETag from Get File Properties', async () => {
    const objects = [];
    for await (const o of (await source('m')).list(new AbortController().signal)) objects.push(o);
    const [only, ...others] = objects;
    assert.ok(only !== undefined && others.length === 0);
    assert.equal(only.checksum?.algorithm, 'md5');
    assert.match(only.version ?? '', /^"0x8D/);
  });

  it('resumes a body cut off mid-range from the byte where it stopped', async () => {
    await using dest = await tempDir();
    double.cutNextRead(10_000);
    const before = double.requests.length;
    await transferObjects(await source('m/big.bin'), dest.dir, { settings: settings(), log: silentLogger, signal: new AbortController().signal });
    assert.deepEqual(await hashTree(dest.dir), hashOf(new Map([['big.bin', BIG]])));
    const gets = double.requests.slice(before).filter((r) => r.startsWith('GET /devstoreaccount1/share/m/big.bin'));
    assert.ok(gets.length >= 5, `expected 4 parts plus a resumed one, got ${gets.length}`);
  });

  it('downloads a file that has no Content-MD5 (size is still checked)', async () => {
    double.addShare('share', new Map([['m/plain.bin', Buffer.from('no md5 here')]]), { md5: false });
    await using dest = await tempDir();
    await transferObjects(await source('m/plain.bin'), dest.dir, { settings: settings(), log: silentLogger, signal: new AbortController().signal });
    assert.deepEqual(await hashTree(dest.dir), hashOf(new Map([['plain.bin', Buffer.from('no md5 here')]])));
  });
});
