/**
 * The conformance suite on the ModelScope source against its double (test/servers/modelscope-double.ts).
 * As for Hugging Face, each prefix becomes its own private model holding what the prefix names
 * (repoForPrefix); a missing prefix is an empty model.
 */
import { ModelScopeSource } from '../../src/sources/modelscope.js';
import type { Settings } from '../../src/settings/settings.js';
import { repoForPrefix, type Files } from '../servers/hf-double.js';
import { startModelScopeDouble, type ModelScopeDouble } from '../servers/modelscope-double.js';
import { runConformance } from './suite.js';

const TOKEN = 'ms-conformance-reader-token';
let hub: ModelScopeDouble | undefined;
let fixture: Files = new Map();

function sourceFor(prefix: string, settings: Settings, token: string): ModelScopeSource {
  if (hub === undefined) throw new Error('setup did not run');
  const { name, files } = repoForPrefix(fixture, prefix);
  if (!hub.hasModel(name)) hub.addModel(name, files, { private: true, readers: [TOKEN] });
  return new ModelScopeSource({ scheme: 'modelscope', repo: name }, { ...settings, hubs: { ...settings.hubs, modelscope: { endpoint: hub.url, token } } });
}

runConformance({
  name: 'ModelScope (double)',
  capabilities: { directoryMarkers: false, auth: true },
  async setup(objects) {
    fixture = objects;
    hub = await startModelScopeDouble({ tokens: [TOKEN] });
  },
  source: (prefix, settings) => Promise.resolve(sourceFor(prefix, settings, TOKEN)),
  sourceWithBadCredentials: (prefix, settings) => Promise.resolve(sourceFor(prefix, settings, 'ms-not-a-valid-token')),
  async teardown() {
    const requests = hub?.requests ?? [];
    await hub?.stop();
    // Every file read named the commit the listing gave, never the moving branch.
    const unpinned = requests.filter((r) => r.path.includes('FilePath=') && !/Revision=[0-9a-f]{40}&/.test(r.path));
    if (unpinned.length > 0) throw new Error(`file reads not pinned to a commit: ${unpinned[0]?.path ?? ''}`);
  },
});
