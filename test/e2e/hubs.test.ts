/**
 * Hugging Face and ModelScope end to end: the bundled CLI against the hub doubles, configured only
 * through the environment a KServe pod would carry (HF_ENDPOINT, HF_TOKEN, MODELSCOPE_ENDPOINT,
 * MODELSCOPE_API_TOKEN, STORAGE_ALLOW_PATTERNS).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { failsWith, runCli, type CliResult } from '../helpers/cli.js';
import { hashOf, hashTree, randomBytes, tempDir } from '../helpers/tree.js';
import { startHfDouble, type HfDouble } from '../servers/hf-double.js';
import { startModelScopeDouble, type ModelScopeDouble } from '../servers/modelscope-double.js';

const TOKEN = 'hf_e2eSecretReaderToken123';
const MS_TOKEN = 'ms-e2e-secret-token-456';
const MAIN = new Map([
  ['config.json', Buffer.from('{"model_type":"llama","v":2}')],
  ['tokenizer.json', Buffer.from('{"vocab":{"a":0}}')],
  ['tokenizer_config.json', Buffer.from('{}')],
  ['model.safetensors', randomBytes(400_000, 31)],
  ['original/params 参数.bin', randomBytes(3000, 32)],
  ['__init__.py', Buffer.alloc(0)],
]);
const V1 = new Map([
  ['config.json', Buffer.from('{"model_type":"llama","v":1}')],
  ['model.safetensors', randomBytes(300_000, 33)],
]);

describe('hub sources end to end (CLI against the doubles)', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let hf: HfDouble;
  let ms: ModelScopeDouble;

  before(async () => {
    work = await tempDir('si-hubs-');
    hf = await startHfDouble({ tokens: [TOKEN] });
    hf.addRepo('acme/tiny-llm', MAIN);
    hf.commit('acme/tiny-llm', 'v1.0', V1);
    hf.addRepo('acme/private-llm', MAIN, { private: true, readers: [TOKEN] });
    hf.addRepo('acme/flaky', MAIN);
    ms = await startModelScopeDouble({ tokens: [MS_TOKEN] });
    ms.addModel('qwen/tiny', MAIN, { private: true, readers: [MS_TOKEN] });
  });

  after(async () => {
    await Promise.all([hf.stop(), ms.stop()]);
    await work[Symbol.asyncDispose]();
  });

  let runs = 0;
  async function download(uri: string, env: Record<string, string> = {}, args: string[] = []): Promise<{ result: CliResult; files: Map<string, string> }> {
    const dest = path.join(work.dir, `run-${++runs}`, 'models');
    const result = await runCli([...args, uri, dest], { env: { HF_ENDPOINT: hf.url, MODELSCOPE_ENDPOINT: ms.url, ...env }, timeoutMs: 30_000 });
    const files = await hashTree(dest).catch(() => new Map<string, string>());
    return { result, files };
  }


  it('downloads hf://owner/model (main) with LFS files through the CDN', async () => {
    const { result, files } = await download('hf://acme/tiny-llm');
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, hashOf(MAIN));
    assert.match(result.stderr, /Successfully copied hf:\/\/acme\/tiny-llm to/);
  });

  it('downloads a tagged revision hf://owner/model:v1.0', async () => {
    const { result, files } = await download('hf://acme/tiny-llm:v1.0');
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, hashOf(V1));
  });

  it('downloads only the tokenizer files with STORAGE_ALLOW_PATTERNS', async () => {
    const { result, files } = await download('hf://acme/tiny-llm', { STORAGE_ALLOW_PATTERNS: '["tokenizer.json","config.json"]' });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual([...files.keys()].sort(), ['config.json', 'tokenizer.json']);
  });

  it('refuses a private repo without HF_TOKEN, in one line that names HF_TOKEN', async () => {
    const { result } = await download('hf://acme/private-llm');
    failsWith(result, /acme\/private-llm not found.*set HF_TOKEN/);
  });

  it('downloads a private repo with HF_TOKEN and never prints the token, even at debug level', async () => {
    const { result, files } = await download('hf://acme/private-llm', { HF_TOKEN: TOKEN }, ['--log-level', 'debug']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, hashOf(MAIN));
    assert.ok(!result.stderr.includes(TOKEN) && !result.stdout.includes(TOKEN), 'token printed');
    assert.ok(hf.requests.filter((r) => r.server === 'cdn').every((r) => r.authorization === undefined), 'token sent to the CDN');
  });

  it('reports a missing repo and a missing revision in one line each', async () => {
    failsWith((await download('hf://acme/no-such-model', { HF_TOKEN: TOKEN })).result, /acme\/no-such-model not found/);
    failsWith((await download('hf://acme/tiny-llm:v9.9')).result, /no revision "v9\.9"/);
  });

  it('detects a corrupted LFS file by its sha256 and downloads it again', async () => {
    hf.corruptOnce('acme/flaky', 'model.safetensors');
    const before = hf.requests.length;
    const { result, files } = await download('hf://acme/flaky');
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, hashOf(MAIN));
    assert.match(result.stderr, /sha256 mismatch for model\.safetensors/);
    const cdnReads = hf.requests.slice(before).filter((r) => r.server === 'cdn' && r.method === 'GET');
    const perBlob = new Map<string, number>();
    for (const r of cdnReads) perBlob.set(r.path, (perBlob.get(r.path) ?? 0) + 1);
    // Two LFS files: the corrupted one read twice (once, then again), the other once.
    assert.deepEqual([...perBlob.values()].sort(), [1, 2]);
  });

  it('downloads modelscope://owner/model with MODELSCOPE_API_TOKEN', async () => {
    const { result, files } = await download('modelscope://qwen/tiny', { MODELSCOPE_API_TOKEN: MS_TOKEN }, ['--log-level', 'debug']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, hashOf(MAIN));
    assert.ok(!result.stderr.includes(MS_TOKEN), 'token printed');
    failsWith((await download('modelscope://qwen/tiny')).result, /MODELSCOPE_API_TOKEN/);
  });
});
