/**
 * The hub sources against their doubles, beyond the conformance suite: commit pinning, the
 * one-line errors for each way a hub says no, retryable statuses, and the hub settings.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { StorageError } from '../../src/errors.js';
import { loadHubSettings } from '../../src/settings/hubs.js';
import { loadSettings } from '../../src/settings/settings.js';
import { nextLink } from '../../src/sources/hub-http.js';
import { HuggingFaceSource } from '../../src/sources/huggingface.js';
import { ModelScopeSource } from '../../src/sources/modelscope.js';
import type { ObjectSource, RemoteObject } from '../../src/sources/types.js';
import { startHfDouble, type HfDouble } from '../servers/hf-double.js';
import { startModelScopeDouble, type ModelScopeDouble } from '../servers/modelscope-double.js';
import { randomBytes } from '../helpers/tree.js';

const TOKEN = 'hf_unitReaderToken';
const OTHER = 'hf_unitOtherToken';
const V1 = new Map([['config.json', Buffer.from('{"v":1}')], ['model.bin', randomBytes(5000, 1)]]);
const V2 = new Map([['config.json', Buffer.from('{"v":2}')], ['model.bin', randomBytes(5000, 2)]]);

async function listAll(source: ObjectSource): Promise<RemoteObject[]> {
  const out: RemoteObject[] = [];
  for await (const o of source.list(new AbortController().signal)) out.push(o);
  return out;
}

async function readAll(source: ObjectSource, obj: RemoteObject): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await source.read(obj, undefined, new AbortController().signal)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const fails = (kind: string, pattern: RegExp) => (err: unknown): boolean => {
  assert.ok(err instanceof StorageError, String(err));
  assert.equal(err.kind, kind, err.message);
  assert.match(err.message, pattern);
  assert.doesNotMatch(err.message, /hf_unit|ms-unit/, 'no token in the message');
  assert.doesNotMatch(err.message, /\n/);
  return true;
};

describe('HuggingFaceSource', () => {
  let hub: HfDouble;
  const hf = (repo: string, revision?: string, token?: string): HuggingFaceSource => {
    const settings = loadSettings({ HF_ENDPOINT: hub.url, ...(token === undefined ? {} : { HF_TOKEN: token }) });
    return new HuggingFaceSource({ scheme: 'hf', repo, ...(revision === undefined ? {} : { revision }) }, settings);
  };

  before(async () => {
    hub = await startHfDouble({ tokens: [TOKEN, OTHER] });
    hub.addRepo('acme/moving', V1);
    hub.addRepo('acme/private', V1, { private: true, readers: [TOKEN] });
    hub.addRepo('acme/gated', V1, { gated: true, readers: [TOKEN] });
  });
  after(() => hub.stop());

  it('pins every read to the commit listed, even when the branch moves mid-download', async () => {
    const source = hf('acme/moving');
    const objects = await listAll(source);
    hub.commit('acme/moving', 'main', V2);
    for (const obj of objects) assert.deepEqual(await readAll(source, obj), V1.get(obj.key));
    assert.deepEqual(objects.map((o) => o.checksum?.algorithm).sort(), ['git-sha1', 'sha256']);
    await source.close();
  });

  it('reads an LFS file range through the CDN without sending the token there', async () => {
    const source = hf('acme/private', undefined, TOKEN);
    const seen = hub.requests.length;
    const obj = (await listAll(source)).find((o) => o.key === 'model.bin') ?? assert.fail('no model.bin');
    const chunks: Buffer[] = [];
    for await (const c of await source.read(obj, { start: 100, end: 300 }, new AbortController().signal)) chunks.push(c as Buffer);
    assert.deepEqual(Buffer.concat(chunks), V1.get('model.bin')?.subarray(100, 300));
    const cdn = hub.requests.slice(seen).filter((r) => r.server === 'cdn');
    assert.ok(cdn.length > 0 && cdn.every((r) => r.authorization === undefined && r.range === 'bytes=100-299'));
    await source.close();
  });

  const cases: [string, () => HuggingFaceSource, string, RegExp][] = [
    ['a private repo without HF_TOKEN', () => hf('acme/private'), 'NotFound', /acme\/private not found.*private or gated, set HF_TOKEN/],
    ['a private repo with a token that may not read it', () => hf('acme/private', undefined, OTHER), 'NotFound', /acme\/private not found.*HF_TOKEN/],
    ['a missing repo', () => hf('acme/nothing', undefined, TOKEN), 'NotFound', /model acme\/nothing not found/],
    ['a missing revision', () => hf('acme/moving', 'v9.9', TOKEN), 'NotFound', /no revision "v9\.9"/],
    ['an invalid token', () => hf('acme/moving', undefined, 'hf_unitRevokedToken'), 'AuthFailed', /refused the token in HF_TOKEN/],
  ];
  for (const [name, make, kind, pattern] of cases) {
    it(`says so for ${name}`, async () => {
      const source = make();
      await assert.rejects(listAll(source), fails(kind, pattern));
      await source.close();
    });
  }

  it('lists a gated repo but refuses its files, saying how to get access', async () => {
    for (const [token, kind, pattern] of [[undefined, 'AuthFailed', /gated: set HF_TOKEN/], [OTHER, 'Forbidden', /gated and the account of HF_TOKEN has not been granted access/]] as const) {
      const source = hf('acme/gated', undefined, token);
      const [obj] = await listAll(source);
      assert.ok(obj);
      await assert.rejects(source.read(obj, undefined, new AbortController().signal), fails(kind, pattern));
      await source.close();
    }
  });

  it('marks 429 and 5xx answers retryable', async () => {
    for (const status of [429, 503]) {
      hub.faults.push({ match: /\/tree\//, status, count: 1 });
      const source = hf('acme/moving');
      await assert.rejects(listAll(source), (err: unknown) => err instanceof StorageError && err.retryable);
      await source.close();
    }
  });

  it('parses Link headers', () => {
    assert.equal(nextLink('<https://h/api?cursor=a>; rel="next"'), 'https://h/api?cursor=a');
    assert.equal(nextLink('<https://h/p1>; rel="prev", <https://h/p3>; rel=next'), 'https://h/p3');
    assert.equal(nextLink('<https://h/p1>; rel="prev"'), undefined);
    assert.equal(nextLink(undefined), undefined);
  });
});

describe('ModelScopeSource', () => {
  let ms: ModelScopeDouble;
  const source = (repo: string, revision?: string, token?: string): ModelScopeSource =>
    new ModelScopeSource({ scheme: 'modelscope', repo, ...(revision === undefined ? {} : { revision }) },
      loadSettings({ MODELSCOPE_ENDPOINT: ms.url, ...(token === undefined ? {} : { MODELSCOPE_API_TOKEN: token }) }));

  before(async () => {
    ms = await startModelScopeDouble({ tokens: ['ms-unit-token'] });
    ms.addModel('qwen/tiny', V1);
    ms.addModel('qwen/private', V1, { private: true, readers: ['ms-unit-token'] });
  });
  after(() => ms.stop());

  it('lists with sha256 and reads pinned to the listed commit, sending the token as a cookie', async () => {
    const s = source('qwen/private', undefined, 'ms-unit-token');
    const objects = await listAll(s);
    ms.commit('qwen/private', 'master', V2);
    assert.ok(objects.every((o) => o.checksum?.algorithm === 'sha256'));
    for (const obj of objects) assert.deepEqual(await readAll(s, obj), V1.get(obj.key));
    assert.ok(ms.requests.every((r) => r.authorization === 'ms-unit-token'));
    await s.close();
  });

  const cases: [string, () => ModelScopeSource, string, RegExp][] = [
    ['a private model without a token', () => source('qwen/private'), 'AuthFailed', /needs authentication.*MODELSCOPE_API_TOKEN/],
    ['a missing model', () => source('qwen/nothing'), 'NotFound', /qwen\/nothing or its revision "master" not found/],
    ['a missing revision', () => source('qwen/tiny', 'v9'), 'NotFound', /revision "v9" not found/],
  ];
  for (const [name, make, kind, pattern] of cases) {
    it(`says so for ${name}`, async () => {
      const s = make();
      await assert.rejects(listAll(s), fails(kind, pattern));
      await s.close();
    });
  }
});

describe('hub settings', () => {
  it('defaults and overrides', () => {
    assert.deepEqual(loadHubSettings({}), {
      hf: { endpoint: 'https://huggingface.co', token: undefined },
      modelscope: { endpoint: 'https://www.modelscope.cn', token: undefined },
    });
    const s = loadHubSettings({ HF_ENDPOINT: 'https://hf-mirror.com/', HF_TOKEN: 'hf_x', MODELSCOPE_DOMAIN: 'modelscope.ai', MODELSCOPE_API_TOKEN: 't' });
    assert.equal(s.hf.endpoint, 'https://hf-mirror.com');
    assert.equal(s.modelscope.endpoint, 'https://modelscope.ai');
    assert.equal(loadHubSettings({ MODELSCOPE_ENDPOINT: 'http://127.0.0.1:9/ms/', MODELSCOPE_DOMAIN: 'x' }).modelscope.endpoint, 'http://127.0.0.1:9/ms');
    assert.throws(() => loadHubSettings({ HF_ENDPOINT: 'ftp://x' }), (e: unknown) => e instanceof StorageError && e.kind === 'InvalidInput');
    assert.throws(() => loadHubSettings({ HF_ENDPOINT: 'not a url' }), (e: unknown) => e instanceof StorageError && /HF_ENDPOINT/.test(e.message));
  });
});
