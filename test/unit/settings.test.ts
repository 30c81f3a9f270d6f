import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StorageError } from '../../src/errors.js';
import { loadSettings } from '../../src/settings/settings.js';
import { parseBytes, parsePatternList } from '../../src/settings/values.js';

function rejectsNaming(fn: () => unknown, name: string): void {
  assert.throws(fn, (err: unknown) => err instanceof StorageError && err.kind === 'InvalidInput' && err.message.includes(name));
}

describe('settings', () => {
  it('has upstream defaults', () => {
    const s = loadSettings({});
    assert.equal(s.s3.maxAttempts, 3);
    assert.equal(s.s3.connectTimeoutMs, 15_000);
    assert.equal(s.s3.readTimeoutMs, 30_000);
    assert.equal(s.s3.maxFileConcurrency, 4);
    assert.equal(s.s3.verifySsl, true);
    assert.equal(s.localMode, 'symlink');
    assert.equal(s.log.format, 'text');
    assert.deepEqual(s.net.caFiles, []);
  });

  it('names the variable of an invalid value', () => {
    rejectsNaming(() => loadSettings({ S3_MAX_ATTEMPTS: 'abc' }), 'S3_MAX_ATTEMPTS');
    rejectsNaming(() => loadSettings({ S3_VERIFY_SSL: 'maybe' }), 'S3_VERIFY_SSL');
    rejectsNaming(() => loadSettings({ S3_READ_TIMEOUT: '-1' }), 'S3_READ_TIMEOUT');
    rejectsNaming(() => loadSettings({ STORAGE_INITIALIZER_PART_SIZE: '12 parsecs' }), 'STORAGE_INITIALIZER_PART_SIZE');
    rejectsNaming(() => loadSettings({ STORAGE_CONFIG: '{"type": "s3",' }), 'STORAGE_CONFIG');
    rejectsNaming(() => loadSettings({ STORAGE_CONFIG: '[1,2]' }), 'STORAGE_CONFIG');
    rejectsNaming(() => loadSettings({ STORAGE_OVERRIDE_CONFIG: 'nope' }), 'STORAGE_OVERRIDE_CONFIG');
    rejectsNaming(() => loadSettings({ STORAGE_ALLOW_PATTERNS: '[1]' }), 'STORAGE_ALLOW_PATTERNS');
    rejectsNaming(() => loadSettings({ 'example.com-headers': '{"X-Key": ' }), 'example.com-headers');
    rejectsNaming(() => loadSettings({ 'example.com-headers': '{"X-Key": "a\\r\\nInjected: 1"}' }), 'example.com-headers');
  });

  it('lets flags override the environment and names the flag in errors', () => {
    const s = loadSettings({ STORAGE_INITIALIZER_CONCURRENCY: '3' }, { concurrency: '12', logFormat: 'json', partSize: '8MiB' });
    assert.equal(s.transfer.concurrency, 12);
    assert.equal(s.log.format, 'json');
    assert.equal(s.transfer.partSize, 8 * 2 ** 20);
    rejectsNaming(() => loadSettings({}, { concurrency: '0' }), '--concurrency');
    rejectsNaming(() => loadSettings({}, { logLevel: 'loud' }), '--log-level');
  });

  it('maps STORAGE_CONFIG type s3 (merged with the override) over the environment', () => {
    const s = loadSettings({
      AWS_ACCESS_KEY_ID: 'env-key',
      STORAGE_CONFIG: JSON.stringify({ type: 's3', access_key_id: 'cfg-key', secret_access_key: 'cfg-secret', endpoint_url: 'http://minio:9000', region: 'eu-west-1', verify_ssl: '0', anonymous: false }),
      STORAGE_OVERRIDE_CONFIG: JSON.stringify({ region: 'us-east-2' }),
    });
    assert.equal(s.s3.accessKeyId, 'cfg-key');
    assert.equal(s.s3.secretAccessKey, 'cfg-secret');
    assert.equal(s.s3.endpoint, 'http://minio:9000');
    assert.equal(s.s3.region, 'us-east-2');
    assert.equal(s.s3.verifySsl, false);
    assert.equal(s.s3.anonymous, false);
    assert.ok(s.secrets.includes('cfg-secret'));
  });

  it('builds the S3 endpoint from S3_ENDPOINT and S3_USE_HTTPS, and maps AWS_DEFAULT_REGION', () => {
    const s = loadSettings({ S3_ENDPOINT: 'minio.local:9000', S3_USE_HTTPS: '0', AWS_DEFAULT_REGION: 'ap-south-1' });
    assert.equal(s.s3.endpoint, 'http://minio.local:9000');
    assert.equal(s.s3.region, 'ap-south-1');
    assert.equal(loadSettings({ AWS_REGION: 'a', AWS_DEFAULT_REGION: 'b' }).s3.region, 'a');
  });

  it('trusts the KServe CA bundle only when the ConfigMap is named', () => {
    assert.deepEqual(loadSettings({ CA_BUNDLE_VOLUME_MOUNT_POINT: '/x' }).net.caFiles, []);
    assert.deepEqual(loadSettings({ CA_BUNDLE_CONFIGMAP_NAME: 'cabundle' }).net.caFiles, ['/etc/ssl/custom-certs/cabundle.crt']);
    assert.deepEqual(loadSettings({ CA_BUNDLE_CONFIGMAP_NAME: 'c', CA_BUNDLE_VOLUME_MOUNT_POINT: '/certs/' }).net.caFiles, ['/certs/cabundle.crt']);
  });

  it('reads <hostname>-headers and treats their values as secrets', () => {
    const s = loadSettings({ 'models.example.com-headers': '{"Authorization": "Bearer abc123"}' });
    assert.deepEqual(s.net.headersByHost.get('models.example.com'), { Authorization: 'Bearer abc123' });
    assert.ok(s.secrets.includes('Bearer abc123'));
  });

  it('accepts booleans as JSON booleans or strings', () => {
    assert.equal(loadSettings({ STORAGE_CONFIG: '{"type":"s3","anonymous":true}' }).s3.anonymous, true);
    assert.equal(loadSettings({ STORAGE_CONFIG: '{"type":"s3","anonymous":"True"}' }).s3.anonymous, true);
    assert.equal(loadSettings({ awsAnonymousCredential: 'false' }).s3.anonymous, false);
  });

  it('parses pattern lists as JSON array, JSON string or comma list', () => {
    assert.deepEqual(parsePatternList('X', '["a.json", "b/*"]'), ['a.json', 'b/*']);
    assert.deepEqual(parsePatternList('X', '"*.bin"'), ['*.bin']);
    assert.deepEqual(parsePatternList('X', 'a.json, *.txt'), ['a.json', '*.txt']);
    assert.deepEqual(parsePatternList('X', undefined), []);
  });

  it('parses byte sizes with units', () => {
    assert.equal(parseBytes('X', '16MiB', 0, 1), 16 * 2 ** 20);
    assert.equal(parseBytes('X', '1.5GB', 0, 1), 1.5e9);
    assert.equal(parseBytes('X', '4096', 0, 1), 4096);
    assert.equal(parseBytes('X', undefined, 7, 1), 7);
  });
});
