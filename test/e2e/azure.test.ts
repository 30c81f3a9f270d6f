/**
 * Azure end to end: the bundled CLI, given real-looking Azure URIs, with the endpoint overrides
 * pointing it at Azurite (Blob) and the File REST double. Every credential path the tests can
 * reach without Entra ID: account key, SAS in the URI, connection string, anonymous.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ContainerSASPermissions, generateBlobSASQueryParameters, StorageSharedKeyCredential } from '@azure/storage-blob';
import { generateFileSASQueryParameters, ShareSASPermissions, StorageSharedKeyCredential as FileKey } from '@azure/storage-file-share';
import { failsWith, runCli, type CliResult } from '../helpers/cli.js';
import { freshDest, hashOf, hashTree, randomBytes, tempDir, type Tree } from '../helpers/tree.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, WRONG_KEY, type AzuriteServer } from '../servers/azurite.js';
import { FILE_ACCOUNT, FILE_KEY, startAzureFileDouble, type AzureFileDouble } from '../servers/azure-file-double.js';
import { generateCa } from '../servers/tls.js';

const MODEL: Tree = new Map([
  ['model/weights.bin', randomBytes(300_000, 21)],
  ['model/config.json', Buffer.from('{"architecture":"demo"}')],
  ['model/tokenizer/vocab 词表.txt', Buffer.from('a\nb\n')],
  ['model/__init__.py', Buffer.alloc(0)],
]);
const UNDER_MODEL = new Map([...MODEL].map(([k, v]) => [k.slice('model/'.length), v]));
const BLOB = (container: string, rest = 'model'): string => `https://${AZURITE_ACCOUNT}.blob.core.windows.net/${container}/${rest}`;
const FILE = (rest = 'model'): string => `https://${FILE_ACCOUNT}.file.core.windows.net/models/${rest}`;

describe('azure (CLI against Azurite and the File double)', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let azurite: AzuriteServer;
  let files: AzureFileDouble;
  let blobEnv: Record<string, string>;
  let fileEnv: Record<string, string>;

  before(async () => {
    work = await tempDir('si-azure-');
    [azurite, files] = await Promise.all([startAzurite(), startAzureFileDouble()]);
    await Promise.all([
      azurite.createContainer('private', MODEL),
      azurite.createContainer('public', MODEL, 'container'),
      azurite.createContainer('blobonly', MODEL, 'blob'),
    ]);
    files.addShare('models', MODEL);
    blobEnv = { AZURE_STORAGE_BLOB_ENDPOINT: azurite.blobEndpoint };
    fileEnv = { AZURE_STORAGE_FILE_ENDPOINT: files.endpoint };
  });

  after(async () => {
    await Promise.all([azurite.stop(), files.stop()]);
    await work[Symbol.asyncDispose]();
  });

  async function download(uri: string, env: Record<string, string>): Promise<{ result: CliResult; got: Map<string, string> }> {
    const dest = freshDest(work.dir);
    const result = await runCli(['--part-size', '64KiB', uri, dest], { env });
    return { result, got: await hashTree(dest).catch(() => new Map<string, string>()) };
  }

  const succeeds = ({ result, got }: { result: CliResult; got: Map<string, string> }, expected: Tree = UNDER_MODEL): void => {
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(got, hashOf(expected));
  };


  const noSecret = (result: CliResult, ...secrets: string[]): void => {
    for (const secret of secrets) assert.ok(!result.stderr.includes(secret) && !result.stdout.includes(secret), 'a secret was printed');
  };

  it('Blob: downloads a private container prefix with the account key, in ranged parts', async () => {
    const run = await download(BLOB('private'), { ...blobEnv, AZURE_STORAGE_ACCESS_KEY: AZURITE_KEY });
    succeeds(run);
    noSecret(run.result, AZURITE_KEY);
  });

  it('Blob: downloads with a SAS in the URI, and never prints its signature', async () => {
    const sas = generateBlobSASQueryParameters({
      containerName: 'private', permissions: ContainerSASPermissions.parse('rl'), expiresOn: new Date(Date.now() + 3600_000),
    }, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY));
    const run = await download(`${BLOB('private')}?${sas.toString()}`, blobEnv);
    succeeds(run);
    noSecret(run.result, sas.signature, encodeURIComponent(sas.signature));
  });

  it('Blob: takes the key and endpoint from AZURE_STORAGE_CONNECTION_STRING', async () => {
    const connection = `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${azurite.blobEndpoint};`;
    succeeds(await download(BLOB('private', 'model/config.json'), { AZURE_STORAGE_CONNECTION_STRING: connection }),
      new Map([['config.json', MODEL.get('model/config.json') ?? Buffer.alloc(0)]]));
  });

  it('Blob: a wrong account key is one clear error line naming Azure', async () => {
    const { result } = await download(BLOB('private'), { ...blobEnv, AZURE_STORAGE_ACCESS_KEY: WRONG_KEY });
    failsWith(result, /Azure Blob .*(denied|authentication).*AZURE_STORAGE_ACCESS_KEY/);
    noSecret(result, WRONG_KEY);
  });

  it('Blob: a public container downloads anonymously', async () => {
    succeeds(await download(BLOB('public'), blobEnv));
  });

  it('Blob: a single blob of a blob-level public container downloads anonymously (no listing allowed)', async () => {
    succeeds(await download(BLOB('blobonly', 'model/weights.bin'), blobEnv), new Map([['weights.bin', MODEL.get('model/weights.bin') ?? Buffer.alloc(0)]]));
  });

  it('Blob: a private container without credentials is a clear error', async () => {
    const { result } = await download(BLOB('private'), blobEnv);
    failsWith(result, /Azure Blob .*credentials/);
  });

  it("File: trusts KServe's CA bundle for an HTTPS endpoint with a private CA", async () => {
    const tls = await generateCa(path.join(work.dir, 'tls'));
    const caMount = path.join(work.dir, 'ca-mount');
    await mkdir(caMount, { recursive: true });
    await copyFile(tls.caCertFile, path.join(caMount, 'cabundle.crt'));
    const secure = await startAzureFileDouble({ tls });
    try {
      secure.addShare('models', MODEL);
      const env = { AZURE_STORAGE_FILE_ENDPOINT: secure.endpoint, AZURE_STORAGE_ACCESS_KEY: FILE_KEY };
      succeeds(await download(FILE(), { ...env, CA_BUNDLE_CONFIGMAP_NAME: 'cabundle', CA_BUNDLE_VOLUME_MOUNT_POINT: caMount }));
      const { result } = await download(FILE(), env);
      assert.equal(result.code, 1, 'an unknown CA is refused without the bundle');
    } finally {
      await secure.stop();
    }
  });

  it('File: downloads a share directory with the account key (keys relative to the URI path)', async () => {
    const run = await download(FILE(), { ...fileEnv, AZURE_STORAGE_ACCESS_KEY: FILE_KEY });
    succeeds(run);
    noSecret(run.result, FILE_KEY);
  });

  it('File: downloads with a share SAS in the URI, and a single file', async () => {
    const sas = generateFileSASQueryParameters({
      shareName: 'models', permissions: ShareSASPermissions.parse('rl'), expiresOn: new Date(Date.now() + 3600_000),
    }, new FileKey(FILE_ACCOUNT, FILE_KEY));
    const run = await download(`${FILE()}?${sas.toString()}`, fileEnv);
    succeeds(run);
    noSecret(run.result, sas.signature, encodeURIComponent(sas.signature));
    succeeds(await download(`${FILE('model/tokenizer/vocab%20%E8%AF%8D%E8%A1%A8.txt')}?${sas.toString()}`, fileEnv),
      new Map([['vocab 词表.txt', MODEL.get('model/tokenizer/vocab 词表.txt') ?? Buffer.alloc(0)]]));
  });

  it('File: a wrong key, and no credentials, are one clear error line naming Azure File', async () => {
    failsWith((await download(FILE(), { ...fileEnv, AZURE_STORAGE_ACCESS_KEY: WRONG_KEY })).result, /Azure File .*denied.*AZURE_STORAGE_ACCESS_KEY/);
    failsWith((await download(FILE(), fileEnv)).result, /Azure File authentication failed.*No credentials/);
  });

  it('File: a missing path is "No model found"', async () => {
    failsWith((await download(FILE('nope'), { ...fileEnv, AZURE_STORAGE_ACCESS_KEY: FILE_KEY })).result, /No model found/);
  });
});
