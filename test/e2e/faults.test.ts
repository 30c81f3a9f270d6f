/**
 * Faults between the CLI and a real nginx, injected by the fault proxy: every run ends with a
 * byte-identical file, or exits 1 with a clear message and no file under the final name.
 * Also: kill -9 halfway, and a re-run resumes instead of starting over.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { faultsInOrder, startFaultProxy, type Fault, type FaultProxy, type ProxyRequestInfo } from '../servers/fault-proxy.js';
import { startNginx, type NginxServer } from '../servers/nginx.js';
import { baseEnv, CLI, errorLines, runCli } from '../helpers/cli.js';
import { randomBytes, tempDir } from '../helpers/tree.js';

const SIZE = 2 * 2 ** 20 + 4321;
const MODEL = randomBytes(SIZE, 21);
const PART = '512KiB';
const env = { STORAGE_INITIALIZER_READ_TIMEOUT: '1', STORAGE_INITIALIZER_MAX_ATTEMPTS: '4' };
/** Faults hit the body requests, not the 1-byte probe that learns the size. */
const bodies = { match: (r: ProxyRequestInfo) => r.method === 'GET' && r.range !== 'bytes=0-0' };

describe('faults between the downloader and nginx', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let nginx: NginxServer;
  let proxy: FaultProxy;

  before(async () => {
    work = await tempDir('si-faults-');
    const root = path.join(work.dir, 'root');
    await mkdir(root);
    await writeFile(path.join(root, 'model.bin'), MODEL);
    await writeFile(path.join(root, 'big.bin'), randomBytes(48 * 2 ** 20, 22));
    const md5 = createHash('md5').update(MODEL).digest('base64');
    nginx = await startNginx({ root, slowRate: '1m', extraConfig: `location = /md5/model.bin { alias ${root}/model.bin; add_header Content-MD5 "${md5}"; }` });
    proxy = await startFaultProxy({ upstream: nginx.httpUrl });
  });

  after(async () => {
    await proxy.stop();
    await nginx.stop();
    await work[Symbol.asyncDispose]();
  });

  async function runWith(faults: Fault[], file = 'model.bin', extraEnv: Record<string, string> = {}) {
    proxy.resetStats();
    proxy.setSchedule(faultsInOrder(faults, bodies));
    const dest = path.join(work.dir, 'out', String(Math.random()).slice(2));
    const result = await runCli(['--part-size', PART, '--concurrency', '2', `${proxy.url}/${file}`, dest], { env: { ...env, ...extraEnv } });
    return { result, dest };
  }

  async function assertIdentical(dest: string, name = 'model.bin'): Promise<void> {
    assert.deepEqual(await readdir(dest), [name], 'only the final file, no leftovers');
    assert.ok((await readFile(path.join(dest, name))).equals(MODEL), 'byte-identical');
  }

  const recovered: [string, Fault[], boolean][] = [
    ['a connection reset mid-body', [{ kind: 'reset-mid-body', afterBytes: 100_000 }, { kind: 'reset-mid-body', afterBytes: 10 }], true],
    ['503 with Retry-After, then success', [{ kind: 'status', status: 503, retryAfter: '1' }], true],
    ['429 and 500 without Retry-After', [{ kind: 'status', status: 429 }, { kind: 'status', status: 500 }], true],
    ['a stalled body (idle timeout)', [{ kind: 'stall', afterBytes: 50_000 }], true],
    ['a truncated body', [{ kind: 'truncate', afterBytes: 123_456 }], true],
    ['a Content-Length larger than the body', [{ kind: 'wrong-length' }], true],
    // The HTTP client stops reading at Content-Length: the extra bytes never reach the file.
    ['bytes beyond Content-Length', [{ kind: 'extra-bytes' }], false],
    ['a dropped connection', [{ kind: 'drop' }], true],
  ];
  for (const [name, faults, retries] of recovered) {
    it(`recovers from ${name}, byte-identical`, async () => {
      const { result, dest } = await runWith(faults);
      assert.equal(result.code, 0, result.stderr);
      await assertIdentical(dest);
      if (retries) assert.match(result.stderr, /retrying/);
    });
  }

  it('resumes a reset range from the last byte received, not from its start', async () => {
    const { result } = await runWith([{ kind: 'reset-mid-body', afterBytes: 300_000 }]);
    assert.equal(result.code, 0, result.stderr);
    const starts = proxy.stats.log.map((e) => Number(/^bytes=(\d+)-/.exec(e.range ?? '')?.[1] ?? 0));
    assert.ok(starts.some((start) => start % (512 * 1024) !== 0), `a range starting mid-part: ${starts.join(', ')}`);
  });

  it('detects a flipped byte by checksum and downloads the file again', async () => {
    const { result, dest } = await runWith([{ kind: 'flip-byte', offset: 1000 }], 'md5/model.bin');
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /md5 mismatch/);
    await assertIdentical(dest);
  });

  it('fails clearly when the checksum never matches, leaving no complete-looking file', async () => {
    const flips = Array.from({ length: 40 }, (): Fault => ({ kind: 'flip-byte', offset: 10 }));
    const { result, dest } = await runWith(flips, 'md5/model.bin');
    assert.equal(result.code, 1);
    assert.match(errorLines(result).join('\n'), /md5 mismatch .* \(also on a second download\)/);
    assert.ok(!(await readdir(dest)).includes('model.bin'));
  });

  it('gives up after the attempts allowed on a persistent 503, leaving no complete-looking file', async () => {
    const always = Array.from({ length: 100 }, (): Fault => ({ kind: 'status', status: 503, retryAfter: '0' }));
    const { result, dest } = await runWith(always);
    assert.equal(result.code, 1);
    const errors = errorLines(result);
    assert.equal(errors.length, 1, result.stderr);
    assert.match(errors[0] ?? '', /HTTP status 503.*gave up after 4 attempts/);
    assert.ok(!(await readdir(dest)).includes('model.bin'));
  });

  it('resumes after kill -9 without fetching completed bytes again', async () => {
    const dest = path.join(work.dir, 'killed');
    const big = await readFile(path.join(work.dir, 'root', 'big.bin'));
    // 1 MiB/s per connection through /slow/: the first run is killed a few seconds in.
    const child = spawn(process.execPath, [CLI, '--part-size', '4MiB', '--concurrency', '4', `${nginx.httpUrl}/slow/big.bin`, dest], { env: baseEnv(), stdio: 'ignore' });
    await delay(3500);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.on('close', resolve));
    // A kill between writing the journal's temporary file and renaming it may leave that file too.
    const leftovers = (await readdir(dest)).filter((name) => name !== 'big.bin.part.json.tmp').sort();
    assert.deepEqual(leftovers, ['big.bin.part', 'big.bin.part.json']);

    const rerun = await runCli(['--log-level', 'info', `${nginx.httpUrl}/big.bin`, dest]);
    assert.equal(rerun.code, 0, rerun.stderr);
    const resumed = /resuming big\.bin: ([\d.]+) MiB already downloaded/.exec(rerun.stderr);
    assert.ok(resumed, rerun.stderr);
    const fetched = Number(/fetched_bytes=(\d+)/.exec(rerun.stderr)?.[1]);
    assert.ok(fetched < big.length - Number(resumed[1]) * 2 ** 20 + 2 ** 20, `fetched ${fetched} bytes again`);
    assert.deepEqual(await readdir(dest), ['big.bin']);
    assert.ok((await readFile(path.join(dest, 'big.bin'))).equals(big), 'byte-identical after resume');
  });
});
