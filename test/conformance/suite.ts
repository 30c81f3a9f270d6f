/**
 * The one conformance suite every object source runs against its real (or faithful) server.
 * A backend binding stores a fixture tree and hands out sources; the cases are written once here.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { StorageError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { loadSettings, type Env, type Settings } from '../../src/settings/settings.js';
import type { ObjectSource } from '../../src/sources/types.js';
import { transferObjects } from '../../src/transfer/engine.js';
import { hashOf, hashTree, randomBytes, tempDir, type Tree } from '../helpers/tree.js';

export interface ConformanceBinding {
  name: string;
  /** What the backend can express; cases needing more are skipped, and say so. */
  capabilities: { directoryMarkers: boolean; auth: boolean };
  /** Stores the objects (keys relative to the backend's root; a key ending in '/' is a directory marker). */
  setup(objects: Tree): Promise<void>;
  /** A source for the prefix (a key or key prefix below the root, '' for all). */
  source(prefix: string, settings: Settings): Promise<ObjectSource>;
  /** A source for the prefix whose credentials the server refuses. */
  sourceWithBadCredentials?(prefix: string, settings: Settings): Promise<ObjectSource>;
  teardown(): Promise<void>;
}

const PART_SIZE = 64 * 1024;
const MANY_FILES = 1100;

/** The fixture every backend stores, under a `conf/` root. */
export function conformanceFixture(): Tree {
  const tree: Tree = new Map([
    ['conf/tree/config.json', Buffer.from('{"model_type":"demo"}\n')],
    ['conf/tree/a/b/c/deep.txt', Buffer.from('deep\n')],
    ['conf/tree/weights with spaces/模型 ünïcode.bin', randomBytes(3000, 7)],
    ['conf/tree/__init__.py', Buffer.alloc(0)],
    ['conf/tree/large.bin', randomBytes(PART_SIZE * 5 + 123, 3)],
    ['conf/single/model.joblib', randomBytes(1000, 5)],
    ['conf/boundary/iris/model.pkl', Buffer.from('iris')],
    ['conf/boundary/iris2/model.pkl', Buffer.from('iris2 must not be downloaded')],
    ['conf/boundary/iris-extra.txt', Buffer.from('sibling file must not be downloaded')],
  ]);
  for (let i = 0; i < MANY_FILES; i++) tree.set(`conf/many/f${String(i).padStart(4, '0')}.txt`, Buffer.from(`file ${i}\n`));
  return tree;
}

const markerFixture = (): Tree => new Map([
  ['conf/markers/', Buffer.alloc(0)],
  ['conf/markers/sub/', Buffer.alloc(0)],
  ['conf/markers/sub/file.txt', Buffer.from('beside a directory marker')],
]);

/** The part of a fixture under a prefix, keyed relative to it, as a download must reproduce it. */
function expectedUnder(tree: Tree, prefix: string): Map<string, string> {
  const sub: Tree = new Map();
  for (const [key, content] of tree) {
    if (key.startsWith(`${prefix}/`) && !key.endsWith('/')) sub.set(key.slice(prefix.length + 1), content);
  }
  return hashOf(sub);
}

export function conformanceSettings(env: Env = {}): Settings {
  return loadSettings({ STORAGE_INITIALIZER_PART_SIZE: String(PART_SIZE), STORAGE_INITIALIZER_MAX_ATTEMPTS: '2', ...env }, { progress: false });
}

export function runConformance(binding: ConformanceBinding): void {
  describe(`conformance: ${binding.name}`, () => {
    const fixture = conformanceFixture();
    const settings = conformanceSettings();

    before(async () => {
      const objects = new Map(fixture);
      if (binding.capabilities.directoryMarkers) for (const [k, v] of markerFixture()) objects.set(k, v);
      await binding.setup(objects);
    });
    after(() => binding.teardown());

    async function download(prefix: string, options: { settings?: Settings; source?: ObjectSource } = {}): Promise<Map<string, string>> {
      await using dest = await tempDir();
      const used = options.settings ?? settings;
      const source = options.source ?? await binding.source(prefix, used);
      try {
        await transferObjects(source, dest.dir, { settings: used, log: silentLogger, signal: new AbortController().signal });
      } finally {
        await source.close?.();
      }
      return await hashTree(dest.dir);
    }

    it('downloads a nested tree with unicode, spaces, a 0-byte file and a ranged large file', async () => {
      assert.deepEqual(await download('conf/tree'), expectedUnder(fixture, 'conf/tree'));
    });

    it('treats a trailing slash like the bare prefix', async () => {
      assert.deepEqual(await download('conf/tree/'), expectedUnder(fixture, 'conf/tree'));
    });

    it('downloads an exact single object to DEST/<basename>', async () => {
      assert.deepEqual(await download('conf/single/model.joblib'), hashOf(new Map([['model.joblib', fixture.get('conf/single/model.joblib') ?? Buffer.alloc(0)]])));
    });

    it('treats a prefix as a directory boundary (iris never pulls iris2 or iris-extra.txt)', async () => {
      assert.deepEqual(await download('conf/boundary/iris'), expectedUnder(fixture, 'conf/boundary/iris'));
    });

    it('downloads more than 1,000 files (listing pagination)', async () => {
      const got = await download('conf/many');
      assert.equal(got.size, MANY_FILES);
      assert.deepEqual(got, expectedUnder(fixture, 'conf/many'));
    });

    it('skips directory markers and keeps the files beside them', { skip: !binding.capabilities.directoryMarkers && 'the backend has no directory markers' }, async () => {
      assert.deepEqual(await download('conf/markers'), hashOf(new Map([['sub/file.txt', Buffer.from('beside a directory marker')]])));
    });

    it('fetches a file larger than the part size in ranged parts, byte-identical', async () => {
      const big = await download('conf/tree/large.bin', { settings: conformanceSettings({ STORAGE_INITIALIZER_CONCURRENCY: '3' }) });
      assert.deepEqual(big, hashOf(new Map([['large.bin', fixture.get('conf/tree/large.bin') ?? Buffer.alloc(0)]])));
    });

    it('applies allow and ignore patterns to a prefix', async () => {
      const filtered = conformanceSettings({ STORAGE_ALLOW_PATTERNS: '["*.json","*.py","a/*"]', STORAGE_IGNORE_PATTERNS: '__init__.py' });
      assert.deepEqual([...(await download('conf/tree', { settings: filtered })).keys()].sort(), ['a/b/c/deep.txt', 'config.json']);
    });

    it('reports a missing prefix as "No model found"', async () => {
      await assert.rejects(download('conf/does-not-exist'), (err: unknown) =>
        err instanceof StorageError && err.kind === 'NotFound' && /No model found/.test(err.message));
    });

    it('reports refused credentials as an authentication error', { skip: !binding.capabilities.auth && 'the backend has no credentials' }, async () => {
      const source = await binding.sourceWithBadCredentials?.('conf/tree', settings);
      assert.ok(source);
      await assert.rejects(download('conf/tree', { source }), (err: unknown) =>
        err instanceof StorageError && (err.kind === 'AuthFailed' || err.kind === 'Forbidden'));
    });
  });
}
