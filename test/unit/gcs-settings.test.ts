/** GCS settings from the environment, and what the GCS source reports per object. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { text } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import { crc32c } from '@aws-crypto/crc32c';
import { StorageError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { GCS_DEFAULT_ENDPOINT, loadGcsSettings } from '../../src/settings/gcs.js';
import { loadSettings } from '../../src/settings/settings.js';
import { GcsSource } from '../../src/sources/gcs.js';
import type { RemoteObject } from '../../src/sources/types.js';
import { tempDir } from '../helpers/tree.js';
import { startGcsDouble } from '../servers/gcs-double.js';

describe('GCS settings', () => {
  it('uses storage.googleapis.com unless STORAGE_EMULATOR_HOST or gcloud\'s override says otherwise', () => {
    assert.equal(loadGcsSettings({}).endpoint, GCS_DEFAULT_ENDPOINT);
    assert.equal(loadGcsSettings({ STORAGE_EMULATOR_HOST: 'localhost:4443' }).endpoint, 'http://localhost:4443');
    assert.equal(loadGcsSettings({ STORAGE_EMULATOR_HOST: 'https://gcs.internal:8443/' }).endpoint, 'https://gcs.internal:8443');
    assert.equal(loadGcsSettings({ CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE: 'https://storage.private.example/storage/v1/' }).endpoint, 'https://storage.private.example');
    assert.equal(loadGcsSettings({ STORAGE_EMULATOR_HOST: 'http://a:1', CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE: 'http://b:2' }).endpointOrigin, 'STORAGE_EMULATOR_HOST');
    assert.throws(() => loadGcsSettings({ STORAGE_EMULATOR_HOST: 'ftp://x' }), (err: unknown) => err instanceof StorageError && err.kind === 'InvalidInput');
  });

  it('finds credentials where Application Default Credentials look', () => {
    const s = loadGcsSettings({ GOOGLE_APPLICATION_CREDENTIALS: '/var/secrets/key.json', HOME: '/home/u', GCE_METADATA_HOST: '10.0.0.1:8080' });
    assert.equal(s.credentialsFile, '/var/secrets/key.json');
    assert.equal(s.adcFile, '/home/u/.config/gcloud/application_default_credentials.json');
    assert.equal(s.metadataHost, '10.0.0.1:8080');
    assert.equal(loadGcsSettings({ CLOUDSDK_CONFIG: '/cfg' }).adcFile, '/cfg/application_default_credentials.json');
    assert.equal(loadSettings({ STORAGE_EMULATOR_HOST: '127.0.0.1:9' }).gcs.endpoint, 'http://127.0.0.1:9');
  });
});

describe('GCS source', () => {
  it('reports md5 when GCS has one, crc32c for composite objects, the generation as version, and reads exact ranges', async () => {
    const gcs = await startGcsDouble();
    await using work = await tempDir('si-gcs-unit-');
    try {
      gcs.createBucket('b');
      const plain = gcs.putObject('b', 'm/plain.bin', Buffer.from('0123456789'));
      const composite = gcs.putObject('b', 'm/composite.bin', Buffer.from('abcdefghij'), { composite: true });
      const keyFile = path.join(work.dir, 'key.json');
      await writeFile(keyFile, JSON.stringify(gcs.createServiceAccount()));
      const settings = loadSettings({ STORAGE_EMULATOR_HOST: gcs.url, GOOGLE_APPLICATION_CREDENTIALS: keyFile, HOME: work.dir });
      const source = new GcsSource('b', 'm/', settings, silentLogger);
      assert.equal(source.prefix, 'm');
      const signal = new AbortController().signal;
      const listed: RemoteObject[] = [];
      for await (const o of source.list(signal)) listed.push(o);
      const crc = Buffer.alloc(4);
      crc.writeUInt32BE(crc32c(Buffer.from('abcdefghij')) >>> 0);
      assert.deepEqual(listed, [
        { key: 'm/composite.bin', size: 10, checksum: { algorithm: 'crc32c', hex: crc.toString('hex') }, version: composite.generation },
        { key: 'm/plain.bin', size: 10, checksum: { algorithm: 'md5', hex: createHash('md5').update('0123456789').digest('hex') }, version: plain.generation },
      ]);
      const plainObject = listed[1] ?? assert.fail('listed');
      assert.equal(await text(await source.read(plainObject, { start: 3, end: 7 }, signal)), '3456');
      assert.equal(await text(await source.read(plainObject, undefined, signal)), '0123456789');
      gcs.putObject('b', 'm/plain.bin', Buffer.from('replaced!!'));
      await assert.rejects(source.read(plainObject, undefined, signal), (err: unknown) =>
        err instanceof StorageError && err.kind === 'NotFound' && /replaced or deleted during the download/.test(err.message));
      assert.equal(gcs.tokensIssued, 1);
      await source.close();
    } finally {
      await gcs.stop();
    }
  });

  it('fetches a new token when the cached one is about to expire', async () => {
    const gcs = await startGcsDouble({ tokenLifetimeSeconds: 60 });
    await using work = await tempDir('si-gcs-unit-');
    try {
      gcs.createBucket('b');
      gcs.putObject('b', 'm/a.bin', Buffer.from('a'));
      const keyFile = path.join(work.dir, 'key.json');
      await writeFile(keyFile, JSON.stringify(gcs.createServiceAccount()));
      const source = new GcsSource('b', 'm', loadSettings({ STORAGE_EMULATOR_HOST: gcs.url, GOOGLE_APPLICATION_CREDENTIALS: keyFile }), silentLogger);
      const signal = new AbortController().signal;
      for (let i = 0; i < 2; i++) for await (const o of source.list(signal)) assert.equal(o.key, 'm/a.bin');
      assert.equal(gcs.tokensIssued, 2, 'a token within five minutes of expiry is replaced');
      await source.close();
    } finally {
      await gcs.stop();
    }
  });
});
