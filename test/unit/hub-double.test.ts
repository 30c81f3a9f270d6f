/**
 * The Hugging Face double is faithful: the official JS client, @huggingface/hub, lists, inspects and
 * downloads from it exactly as it does from huggingface.co (hubUrl pointed at the double).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { downloadFile, fileDownloadInfo, HubApiError, listFiles, modelInfo, type ListFileEntry } from '@huggingface/hub';
import { startHfDouble, type HfDouble } from '../servers/hf-double.js';
import { randomBytes } from '../helpers/tree.js';

const TOKEN = 'hf_readerTokenForTheDouble';
const WEIGHTS = randomBytes(200_000, 21);
const FILES = new Map<string, Buffer>([
  ['config.json', Buffer.from('{"model_type":"bert"}')],
  ['model.safetensors', WEIGHTS],
  ['tokenizer/vocab 词.txt', Buffer.from('a\nb\n')],
]);
for (let i = 0; i < 120; i++) FILES.set(`shards/s${String(i).padStart(3, '0')}.txt`, Buffer.from(`shard ${i}`));

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('Hugging Face double, seen by @huggingface/hub', () => {
  let hub: HfDouble;
  let mainSha: string;

  before(async () => {
    hub = await startHfDouble({ tokens: [TOKEN], pageSize: 50 });
    mainSha = hub.addRepo('acme/bert', FILES);
    hub.addRepo('acme/secret', new Map([['config.json', Buffer.from('{}')]]), { private: true, readers: [TOKEN] });
    hub.addRepo('acme/gated', new Map([['model.bin', WEIGHTS]]), { gated: true, readers: [TOKEN] });
  });
  after(() => hub.stop());

  it('modelInfo resolves a revision to its commit sha', async () => {
    const info = await modelInfo({ name: 'acme/bert', hubUrl: hub.url, revision: 'main', additionalFields: ['sha'] });
    assert.equal(info.name, 'acme/bert');
    assert.equal((info as { sha?: string }).sha, mainSha);
  });

  it('listFiles pages through a recursive listing by Link header', async () => {
    const entries: ListFileEntry[] = [];
    for await (const entry of listFiles({ repo: 'acme/bert', hubUrl: hub.url, recursive: true })) entries.push(entry);
    const files = entries.filter((e) => e.type === 'file');
    assert.deepEqual(files.map((e) => e.path).sort(), [...FILES.keys()].sort());
    assert.ok(entries.some((e) => e.type === 'directory' && e.path === 'shards'));
    assert.ok(hub.requests.filter((r) => r.path.includes('/tree/')).length >= 3, 'more than one page');
    const lfs = files.find((e) => e.path === 'model.safetensors');
    assert.equal(lfs?.lfs?.oid, sha256(WEIGHTS));
    assert.equal(lfs.size, WEIGHTS.length);
    const small = files.find((e) => e.path === 'config.json');
    assert.equal(small?.lfs, undefined);
    const content = FILES.get('config.json') ?? Buffer.alloc(0);
    assert.equal(small?.oid, createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex'));
  });

  it('fileDownloadInfo and downloadFile fetch an LFS file through the CDN redirect', async () => {
    const info = await fileDownloadInfo({ repo: 'acme/bert', path: 'model.safetensors', hubUrl: hub.url });
    assert.ok(info);
    assert.equal(info.size, WEIGHTS.length);
    assert.equal(info.etag, `"${sha256(WEIGHTS)}"`);
    const blob = await downloadFile({ repo: 'acme/bert', path: 'model.safetensors', hubUrl: hub.url });
    assert.ok(blob);
    assert.equal(sha256(Buffer.from(await blob.arrayBuffer())), sha256(WEIGHTS));
    const slice = await blob.slice(1000, 2000).arrayBuffer();
    assert.deepEqual(Buffer.from(slice), WEIGHTS.subarray(1000, 2000));
  });

  it('downloadFile fetches a small file with a unicode path at a pinned commit', async () => {
    const blob = await downloadFile({ repo: 'acme/bert', path: 'tokenizer/vocab 词.txt', revision: mainSha, hubUrl: hub.url });
    assert.equal(await blob?.text(), 'a\nb\n');
  });

  it('private and gated repositories open with the token', async () => {
    await assert.rejects(modelInfo({ name: 'acme/secret', hubUrl: hub.url }), (err: unknown) => err instanceof HubApiError && err.statusCode === 401);
    const blob = await downloadFile({ repo: 'acme/secret', path: 'config.json', hubUrl: hub.url, accessToken: TOKEN });
    assert.equal(await blob?.text(), '{}');
    const gated = await downloadFile({ repo: 'acme/gated', path: 'model.bin', hubUrl: hub.url, accessToken: TOKEN });
    assert.equal(sha256(Buffer.from(await gated?.arrayBuffer() ?? new ArrayBuffer(0))), sha256(WEIGHTS));
    assert.ok(hub.requests.some((r) => r.server === 'cdn'), 'LFS bytes came from the CDN origin');
  });

  it('answers errors with the Hub status codes', async () => {
    await assert.rejects(fileDownloadInfo({ repo: 'acme/gated', path: 'model.bin', hubUrl: hub.url }), (err: unknown) => err instanceof HubApiError && err.statusCode === 401);
    await assert.rejects(modelInfo({ name: 'acme/bert', hubUrl: hub.url, revision: 'nope' }), (err: unknown) => err instanceof HubApiError && err.statusCode === 404);
    assert.equal(await fileDownloadInfo({ repo: 'acme/bert', path: 'missing.bin', hubUrl: hub.url }), null);
    await assert.rejects(modelInfo({ name: 'acme/bert', hubUrl: hub.url, accessToken: 'hf_wrongTokenValue' }), (err: unknown) => err instanceof HubApiError && err.statusCode === 401);
  });
});
