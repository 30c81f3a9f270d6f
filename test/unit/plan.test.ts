import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StorageError } from '../../src/errors.js';
import type { RemoteObject } from '../../src/sources/types.js';
import { createPathFilter, fnmatchToRegExp } from '../../src/transfer/fnmatch.js';
import { planDownloads, relativeKey } from '../../src/transfer/plan.js';

const source = (prefix: string) => ({ prefix, displayUri: `s3://b/${prefix}`, name: 'S3' });
const objects = (...keys: string[]): RemoteObject[] => keys.map((key) => ({ key, size: 1 }));
const options: { dest: string; allow: string[]; ignore: string[] } = { dest: '/tmp/dest', allow: [], ignore: [] };
const paths = (prefix: string, keys: string[], opts = options) => planDownloads(source(prefix), objects(...keys), opts).files.map((f) => f.relativePath);

describe('planDownloads', () => {
  it('treats prefixes as directory boundaries', () => {
    assert.deepEqual(paths('models/iris', ['models/iris/a', 'models/iris2/b', 'models/iris-x', 'models/iris/sub/c']), ['a', 'sub/c']);
    assert.equal(relativeKey('models/iris', 'models/iris2/x'), undefined);
    assert.equal(relativeKey('', 'any/key'), 'any/key');
  });

  it('downloads an exact object to its basename, bypassing filters', () => {
    const plan = planDownloads(source('models/model.bin'), objects('models/model.bin', 'models/model.bin.sig'), { ...options, allow: ['*.json'] });
    assert.equal(plan.singleObject, true);
    assert.deepEqual(plan.files.map((f) => [f.relativePath, f.localPath]), [['model.bin', '/tmp/dest/model.bin']]);
  });

  it('skips directory markers and keeps 0-byte files', () => {
    const plan = planDownloads(source('m'), [{ key: 'm/', size: 0 }, { key: 'm/d/', size: 0 }, { key: 'm/__init__.py', size: 0 }], options);
    assert.deepEqual(plan.files.map((f) => f.relativePath), ['__init__.py']);
  });

  it('says "No model found" when nothing matches', () => {
    assert.throws(() => paths('missing', ['other/x']), (err: unknown) => err instanceof StorageError && err.kind === 'NotFound' && err.message.includes('No model found'));
    assert.throws(() => paths('m', ['m/a.bin'], { ...options, allow: ['*.json'] }), /STORAGE_ALLOW_PATTERNS/);
  });

  it('refuses keys that would escape or collide', () => {
    for (const key of ['m/../../etc/passwd', 'm/a/../../../x', 'm/a\\b', 'm/a\0b', `m/${'x'.repeat(300)}`]) {
      assert.throws(() => paths('m', [key]), (err: unknown) => err instanceof StorageError && err.kind === 'InvalidInput', key);
    }
    assert.throws(() => paths('m', ['m/a', 'm/a/b']), /both a file and a directory/);
    assert.throws(() => paths('m', ['m/a//b', 'm/a/b']), /same file/);
  });

  it('applies allow and ignore patterns to the path below the prefix', () => {
    const keys = ['m/config.json', 'm/tokenizer.json', 'm/model.safetensors', 'm/sub/extra.json'];
    assert.deepEqual(paths('m', keys, { ...options, allow: ['tokenizer.json', 'config.json'] }), ['config.json', 'tokenizer.json']);
    assert.deepEqual(paths('m', keys, { ...options, allow: ['*.json'], ignore: ['sub/*'] }), ['config.json', 'tokenizer.json']);
  });
});

describe('fnmatch', () => {
  it('follows Python fnmatch: * crosses "/", ? is one character, [!x] negates', () => {
    assert.ok(fnmatchToRegExp('*.json').test('sub/config.json'));
    assert.ok(fnmatchToRegExp('model-?.bin').test('model-1.bin'));
    assert.ok(!fnmatchToRegExp('model-?.bin').test('model-10.bin'));
    assert.ok(fnmatchToRegExp('[!a]*').test('b.txt'));
    assert.ok(!fnmatchToRegExp('[!a]*').test('a.txt'));
    assert.ok(fnmatchToRegExp('a.(b)+').test('a.(b)+'));
    assert.ok(!fnmatchToRegExp('a.b').test('axb'));
    assert.ok(fnmatchToRegExp('[').test('['));
  });

  it('keeps everything without patterns', () => {
    assert.ok(createPathFilter([], [])('anything/at/all'));
    assert.ok(!createPathFilter([], ['*.bin'])('x.bin'));
  });
});
