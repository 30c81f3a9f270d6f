/**
 * The conformance suite on Azure File, against the File REST double (proved faithful with the
 * official SDK in test/unit/azure-file-double.test.ts). Sources are made as the CLI makes them: the
 * real-looking URI is parsed, and AZURE_STORAGE_FILE_ENDPOINT points the client at the double.
 */
import { silentLogger } from '../../src/log.js';
import { loadSettings, type Settings } from '../../src/settings/settings.js';
import { createSource } from '../../src/sources/registry.js';
import type { ObjectSource } from '../../src/sources/types.js';
import { parseStorageUri } from '../../src/uri/index.js';
import { FILE_ACCOUNT, FILE_KEY, startAzureFileDouble, type AzureFileDouble } from '../servers/azure-file-double.js';
import { runConformance } from './suite.js';

const SHARE = 'conformance';
const WRONG_KEY = Buffer.alloc(64, 7).toString('base64');
let double: AzureFileDouble | undefined;

async function sourceFor(prefix: string, settings: Settings, key: string): Promise<ObjectSource> {
  if (double === undefined) throw new Error('setup did not run');
  const azure = loadSettings({ AZURE_STORAGE_FILE_ENDPOINT: double.endpoint, AZURE_STORAGE_ACCESS_KEY: key }).azure;
  const location = parseStorageUri(`https://${FILE_ACCOUNT}.file.core.windows.net/${SHARE}/${prefix.split('/').map(encodeURIComponent).join('/')}`);
  const source = await createSource(location, { ...settings, azure }, silentLogger);
  if (source.kind !== 'object') throw new Error('expected an object source');
  return source;
}

runConformance({
  name: 'Azure File (REST double)',
  // A share has real (empty) directories, which the walk must pass over like markers.
  capabilities: { directoryMarkers: true, auth: true },
  async setup(objects) {
    // Pages of 400 (the service's cap is 5000), so the 1,100-file listing takes three pages.
    double = await startAzureFileDouble({ maxResults: 400 });
    double.addShare(SHARE, objects);
  },
  source: (prefix, settings) => sourceFor(prefix, settings, FILE_KEY),
  sourceWithBadCredentials: (prefix, settings) => sourceFor(prefix, settings, WRONG_KEY),
  async teardown() {
    await double?.stop();
  },
});
