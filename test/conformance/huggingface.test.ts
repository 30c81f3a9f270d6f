/**
 * The conformance suite on the Hugging Face source against the Hub double (test/servers/hf-double.ts).
 * Each prefix the suite asks for becomes its own private repository holding what the prefix names
 * (see repoForPrefix): a hub URI names a whole repository, so "a prefix is a directory boundary"
 * holds by construction here, and "a missing prefix" is an empty repository. Files of 1 KiB and
 * more are LFS files, fetched through the CDN redirect (large.bin in ranged parts).
 */
import { HuggingFaceSource } from '../../src/sources/huggingface.js';
import type { Settings } from '../../src/settings/settings.js';
import { repoForPrefix, startHfDouble, type Files, type HfDouble } from '../servers/hf-double.js';
import { runConformance } from './suite.js';

const TOKEN = 'hf_conformanceReaderToken';
let hub: HfDouble | undefined;
let fixture: Files = new Map();

function sourceFor(prefix: string, settings: Settings, token: string): HuggingFaceSource {
  if (hub === undefined) throw new Error('setup did not run');
  const { name, files } = repoForPrefix(fixture, prefix);
  if (!hub.hasRepo(name)) hub.addRepo(name, files, { private: true, readers: [TOKEN] });
  return new HuggingFaceSource({ scheme: 'hf', repo: name }, { ...settings, hubs: { ...settings.hubs, hf: { endpoint: hub.url, token } } });
}

runConformance({
  name: 'Hugging Face (Hub double)',
  capabilities: { directoryMarkers: false, auth: true },
  async setup(objects) {
    fixture = objects;
    hub = await startHfDouble({ tokens: [TOKEN, 'hf_someoneElsesToken'], pageSize: 50, lfsThreshold: 1024 });
  },
  source: (prefix, settings) => Promise.resolve(sourceFor(prefix, settings, TOKEN)),
  sourceWithBadCredentials: (prefix, settings) => Promise.resolve(sourceFor(prefix, settings, 'hf_notAValidToken')),
  async teardown() {
    const requests = hub?.requests ?? [];
    await hub?.stop();
    // Over the whole suite: the token never went to the CDN, and every file read named a commit.
    const leaked = requests.filter((r) => r.server === 'cdn' && r.authorization !== undefined);
    if (leaked.length > 0) throw new Error(`the token was sent to the CDN ${leaked.length} time(s)`);
    const unpinned = requests.filter((r) => r.path.includes('/resolve/') && !/\/resolve\/[0-9a-f]{40}\//.test(r.path));
    if (unpinned.length > 0) throw new Error(`file reads not pinned to a commit: ${unpinned[0]?.path ?? ''}`);
    if (!requests.some((r) => r.server === 'cdn' && r.range !== undefined)) throw new Error('no ranged read reached the CDN');
  },
});
