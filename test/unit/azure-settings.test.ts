/** Azure settings, the credential order of the contract, and SDK errors -> typed errors. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RestError } from '@azure/storage-blob';
import { StorageError } from '../../src/errors.js';
import { loadAzureSettings, parseConnectionString } from '../../src/settings/azure.js';
import { loadSettings } from '../../src/settings/settings.js';
import { azureAuth, azureError, joinUrl } from '../../src/sources/azure-common.js';

const KEY = Buffer.alloc(64, 3).toString('base64');

describe('azure settings', () => {
  it('copies AZ_* to AZURE_* without touching process.env, AZURE_* winning', () => {
    const s = loadAzureSettings({ AZ_TENANT_ID: 't1', AZ_CLIENT_ID: 'c1', AZ_CLIENT_SECRET: 's1', AZURE_CLIENT_ID: 'c2' });
    assert.deepEqual([s.tenantId, s.clientId, s.clientSecret], ['t1', 'c2', 's1']);
    assert.equal(process.env.AZURE_TENANT_ID, undefined);
  });

  it('reads the concurrency knobs (4 each) and validates them', () => {
    assert.deepEqual([loadAzureSettings({}).maxFileConcurrency, loadAzureSettings({}).maxChunkConcurrency], [4, 4]);
    assert.throws(() => loadAzureSettings({ AZURE_MAX_FILE_CONCURRENCY: 'x' }), /AZURE_MAX_FILE_CONCURRENCY/);
  });

  it('normalizes endpoint overrides and refuses ones with credentials', () => {
    assert.equal(loadAzureSettings({ AZURE_STORAGE_BLOB_ENDPOINT: 'http://127.0.0.1:10000/devstoreaccount1/' }).blobEndpoint, 'http://127.0.0.1:10000/devstoreaccount1');
    assert.throws(() => loadAzureSettings({ AZURE_STORAGE_FILE_ENDPOINT: 'ftp://x' }), /AZURE_STORAGE_FILE_ENDPOINT/);
    assert.throws(() => loadAzureSettings({ AZURE_STORAGE_BLOB_ENDPOINT: 'https://h/acct?sig=abc' }), /must not carry credentials/);
  });

  it('parses connection strings (explicit endpoints, or derived from EndpointSuffix) without echoing them', () => {
    const c = parseConnectionString(`DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=${KEY};EndpointSuffix=core.windows.net`);
    assert.deepEqual([c.accountName, c.accountKey, c.blobEndpoint, c.fileEndpoint], ['acct', KEY, 'https://acct.blob.core.windows.net', 'https://acct.file.core.windows.net']);
    const sas = parseConnectionString('BlobEndpoint=http://127.0.0.1:1/a;SharedAccessSignature=?sv=1&sig=abc=');
    assert.deepEqual([sas.blobEndpoint, sas.sas], ['http://127.0.0.1:1/a', 'sv=1&sig=abc=']);
    assert.throws(() => parseConnectionString(`AccountName=a;${KEY.replace(/=/g, '')}`), (err: unknown) => err instanceof StorageError && !err.message.includes(KEY));
  });

  it('masks the connection string and the secret variables in logs', () => {
    const s = loadSettings({ AZURE_STORAGE_CONNECTION_STRING: `AccountName=a;AccountKey=${KEY}`, AZ_CLIENT_SECRET: 'client-secret-1' });
    assert.ok(s.secrets.includes(`AccountName=a;AccountKey=${KEY}`));
    assert.ok(s.secrets.includes('client-secret-1'));
  });
});

describe('azure credential order', () => {
  const auth = (env: Record<string, string>, sas?: string) => azureAuth(loadAzureSettings(env), 'acct', sas);

  it('a client id selects the token chain: service principal, workload identity, managed identity', async () => {
    const all = await auth({ AZ_TENANT_ID: 't', AZ_CLIENT_ID: 'c', AZ_CLIENT_SECRET: 's', AZURE_FEDERATED_TOKEN_FILE: '/var/run/token', AZURE_STORAGE_ACCESS_KEY: KEY }, 'sig=x');
    assert.equal(all.kind === 'token' && all.describe, 'service principal, then workload identity, then managed identity');
    const mi = await auth({ AZURE_CLIENT_ID: 'c' });
    assert.equal(mi.kind === 'token' && mi.describe, 'managed identity');
  });

  it('then the account key (env, or the connection string of the same account), then a SAS, then anonymous', async () => {
    assert.deepEqual(await auth({ AZURE_STORAGE_ACCESS_KEY: KEY }, 'sig=x'), { kind: 'key', accountName: 'acct', accountKey: KEY });
    assert.equal((await auth({ AZURE_STORAGE_CONNECTION_STRING: `AccountName=acct;AccountKey=${KEY}` })).kind, 'key');
    // Another account's key would only sign requests the service refuses.
    assert.equal((await auth({ AZURE_STORAGE_CONNECTION_STRING: `AccountName=other;AccountKey=${KEY}` })).kind, 'anonymous');
    assert.deepEqual(await auth({}, 'sv=1&sig=x'), { kind: 'sas', sas: 'sv=1&sig=x' });
    assert.deepEqual(await auth({}), { kind: 'anonymous' });
  });
});

describe('azure errors', () => {
  const restError = (status: number, code: string, headers: Record<string, string> = {}): RestError =>
    new RestError('failed https://a.blob.core.windows.net/c/x?sv=1&sig=SECRETSIG', {
      statusCode: status, code,
      response: { headers: { get: (n: string) => headers[n] } } as unknown as NonNullable<RestError['response']>,
    });
  const map = (err: unknown) => azureError(err, 'Azure Blob', 'https://a.blob.core.windows.net/c/x?sig=***', { kind: 'anonymous' });

  it('maps status codes to typed errors, retrying only 429/5xx, honouring Retry-After', () => {
    const throttled = map(restError(503, 'ServerBusy', { 'retry-after': '2', 'x-ms-error-code': 'ServerBusy' }));
    assert.ok(throttled instanceof StorageError && throttled.kind === 'Network' && throttled.retryable && throttled.retryAfterMs === 2000);
    const denied = map(restError(403, 'AuthorizationFailure'));
    assert.ok(denied instanceof StorageError && denied.kind === 'Forbidden' && !denied.retryable && /No credentials were given/.test(denied.message));
    const missing = map(restError(404, 'ContainerNotFound'));
    assert.ok(missing instanceof StorageError && missing.kind === 'NotFound' && /ContainerNotFound/.test(missing.message));
    for (const e of [throttled, denied, missing]) assert.ok(e instanceof Error && !e.message.includes('SECRETSIG'));
  });

  it('maps socket failures to retryable network errors with no SAS signature in the message', () => {
    const refused = map(new RestError('connect ECONNREFUSED 127.0.0.1:1 for https://h/c?sig=SECRETSIG', { code: 'ECONNREFUSED' }));
    assert.ok(refused instanceof StorageError && refused.retryable && !refused.message.includes('SECRETSIG'));
  });

  it('joins names with every segment encoded', () => {
    assert.equal(joinUrl('http://h/acct', 'c', 'a b/模型#1.bin'), 'http://h/acct/c/a%20b/%E6%A8%A1%E5%9E%8B%231.bin');
  });
});
