/**
 * The conformance suite on Azure Blob, against Azurite. Sources are made the way the CLI makes
 * them: the real-looking URI is parsed, and AZURE_STORAGE_BLOB_ENDPOINT points the client at Azurite.
 */
import { silentLogger } from '../../src/log.js';
import { loadSettings, type Settings } from '../../src/settings/settings.js';
import { createSource } from '../../src/sources/registry.js';
import type { ObjectSource } from '../../src/sources/types.js';
import { parseStorageUri } from '../../src/uri/index.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, WRONG_KEY, type AzuriteServer } from '../servers/azurite.js';
import { runConformance } from './suite.js';

const CONTAINER = 'conformance';
let azurite: AzuriteServer | undefined;

async function sourceFor(prefix: string, settings: Settings, key: string): Promise<ObjectSource> {
  if (azurite === undefined) throw new Error('setup did not run');
  // The suite's settings carry transfer options; the Azure part comes from this environment.
  const azure = loadSettings({ AZURE_STORAGE_BLOB_ENDPOINT: azurite.blobEndpoint, AZURE_STORAGE_ACCESS_KEY: key }).azure;
  const location = parseStorageUri(`https://${AZURITE_ACCOUNT}.blob.core.windows.net/${CONTAINER}/${prefix.split('/').map(encodeURIComponent).join('/')}`);
  const source = await createSource(location, { ...settings, azure }, silentLogger);
  if (source.kind !== 'object') throw new Error('expected an object source');
  return source;
}

runConformance({
  name: 'Azure Blob (Azurite)',
  capabilities: { directoryMarkers: true, auth: true },
  async setup(objects) {
    azurite = await startAzurite();
    await azurite.createContainer(CONTAINER, objects);
  },
  source: (prefix, settings) => sourceFor(prefix, settings, AZURITE_KEY),
  sourceWithBadCredentials: (prefix, settings) => sourceFor(prefix, settings, WRONG_KEY),
  async teardown() {
    await azurite?.stop();
  },
});
