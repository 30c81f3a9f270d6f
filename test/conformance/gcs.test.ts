/** The conformance suite on the GCS source against the GCS double, authenticated with a service-account key. */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { silentLogger } from '../../src/log.js';
import { loadGcsSettings } from '../../src/settings/gcs.js';
import type { Settings } from '../../src/settings/settings.js';
import { GcsSource } from '../../src/sources/gcs.js';
import { tempDir } from '../helpers/tree.js';
import { startGcsDouble, type GcsDouble } from '../servers/gcs-double.js';
import { runConformance } from './suite.js';

const BUCKET = 'conformance';
let gcs: GcsDouble | undefined;
let work: Awaited<ReturnType<typeof tempDir>> | undefined;
let goodKey = '';
let badKey = '';

function sourceWith(keyFile: string, prefix: string, settings: Settings): Promise<GcsSource> {
  if (gcs === undefined) throw new Error('setup did not run');
  // The gcs part of the settings as the CLI would load it from the environment.
  const gcsSettings = loadGcsSettings({ STORAGE_EMULATOR_HOST: gcs.url, GOOGLE_APPLICATION_CREDENTIALS: keyFile });
  return Promise.resolve(new GcsSource(BUCKET, prefix, { ...settings, gcs: gcsSettings }, silentLogger));
}

runConformance({
  name: 'GCS (JSON API double, service-account key)',
  capabilities: { directoryMarkers: true, auth: true },
  async setup(objects) {
    gcs = await startGcsDouble();
    work = await tempDir('si-gcs-conf-');
    gcs.createBucket(BUCKET);
    for (const [key, content] of objects) gcs.putObject(BUCKET, key, content);
    goodKey = path.join(work.dir, 'key.json');
    badKey = path.join(work.dir, 'unknown-key.json');
    await writeFile(goodKey, JSON.stringify(gcs.createServiceAccount()));
    await writeFile(badKey, JSON.stringify(gcs.unknownServiceAccount()));
  },
  source: (prefix, settings) => sourceWith(goodKey, prefix, settings),
  sourceWithBadCredentials: (prefix, settings) => sourceWith(badKey, prefix, settings),
  async teardown() {
    await gcs?.stop();
    await work?.[Symbol.asyncDispose]();
  },
});
