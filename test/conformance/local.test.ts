/** The conformance suite on the local source in copy mode (a directory read through the engine). */
import path from 'node:path';
import { LocalCopySource } from '../../src/sources/local.js';
import { tempDir, writeTree } from '../helpers/tree.js';
import { runConformance } from './suite.js';

let root: Awaited<ReturnType<typeof tempDir>> | undefined;

runConformance({
  name: 'local (copy mode)',
  capabilities: { directoryMarkers: true, auth: false },
  async setup(objects) {
    root = await tempDir('si-local-src-');
    await writeTree(root.dir, objects);
  },
  source(prefix) {
    if (root === undefined) throw new Error('setup did not run');
    return Promise.resolve(new LocalCopySource(path.join(root.dir, ...prefix.split('/').filter((s) => s !== ''))));
  },
  async teardown() {
    await root?.[Symbol.asyncDispose]();
  },
});
