/**
 * The overall deadline (--deadline / STORAGE_INITIALIZER_DEADLINE): a download whose every stream
 * stalls (the fault proxy in front of nginx holds the bodies after a few bytes) is stopped when the
 * deadline passes, exits 1 with one line naming the deadline, keeps its `.part` file and resume
 * journal, and a second run without the deadline finishes the file byte-identical.
 */
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { failsWith, runCli } from '../helpers/cli.js';
import { freshDest, randomBytes, tempDir } from '../helpers/tree.js';
import { noFaults, startFaultProxy, type FaultProxy, type ProxyRequestInfo } from '../servers/fault-proxy.js';
import { startFauxqs } from '../servers/fauxqs.js';
import { startGitServers } from '../servers/git-servers.js';
import { startNginx, type NginxServer } from '../servers/nginx.js';

const MODEL = randomBytes(4 * 2 ** 20 + 777, 61);
/** The idle timeout is far longer than the deadline, so only the deadline can end the first run. */
const env = { STORAGE_INITIALIZER_READ_TIMEOUT: '60' };
const isBody = (r: ProxyRequestInfo): boolean => r.method === 'GET' && r.range !== 'bytes=0-0';

describe('overall deadline (CLI through a stalling proxy to nginx)', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let nginx: NginxServer;
  let proxy: FaultProxy;

  before(async () => {
    work = await tempDir('si-deadline-');
    const root = path.join(work.dir, 'root');
    await mkdir(root);
    await writeFile(path.join(root, 'model.bin'), MODEL);
    nginx = await startNginx({ root });
    proxy = await startFaultProxy({ upstream: nginx.httpUrl });
  });

  after(async () => {
    await proxy.stop();
    await nginx.stop();
    await work[Symbol.asyncDispose]();
  });

  it('stops a stalled run at the deadline, keeps the partial file, and a run without it completes byte-identical', async () => {
    const dest = freshDest(work.dir);
    // Every body stream sends 200 kB and then nothing, until the client goes away.
    proxy.setSchedule((r) => (isBody(r) ? { kind: 'stall', afterBytes: 200_000 } : noFaults()));
    const args = ['--part-size', '1MiB', '--concurrency', '2', `${proxy.url}/model.bin`, dest];
    const stopped = await runCli(['--deadline', '2', ...args], { env, timeoutMs: 40_000 });
    assert.equal(stopped.signal, null, stopped.stderr);
    // How far it got is said when the transfer engine reports it ("after 400.0 KiB of 4.0 MiB").
    failsWith(stopped, /deadline of 2 s exceeded after [\d.]+ [KMG]?i?B of 4\.0 MiB; partial files are kept for the next run \(raise --deadline or STORAGE_INITIALIZER_DEADLINE\)/);
    assert.deepEqual((await readdir(dest)).sort(), ['model.bin.part', 'model.bin.part.json']);

    proxy.setSchedule(() => noFaults());
    const resumed = await runCli(args, { env, timeoutMs: 40_000 });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /resuming model\.bin: [\d.]+ KiB already downloaded/);
    assert.deepEqual(await readdir(dest), ['model.bin']);
    assert.ok((await readFile(path.join(dest, 'model.bin'))).equals(MODEL), 'byte-identical after the deadline and a resume');
  });

  // Backends that do not go through the transfer engine (a git clone) or that use an SDK (S3)
  // must stop at the deadline too, with the same line.
  it('stops a stalled git clone and a stalled S3 listing at the deadline', async () => {
    const [git, fauxqs] = await Promise.all([startGitServers(), startFauxqs()]);
    const gitProxy = await startFaultProxy({ upstream: git.httpUrl });
    const s3Proxy = await startFaultProxy({ upstream: fauxqs.endpoint });
    try {
      // Git: the ref advertisement arrives, the pack stalls. S3: the listing's answer stalls.
      gitProxy.setSchedule((r) => (r.method === 'POST' ? { kind: 'stall', afterBytes: 10 } : noFaults()));
      s3Proxy.setSchedule(() => ({ kind: 'stall', afterBytes: 0 }));
      const deadlineLine = /deadline of 1\.5 s exceeded.*; partial files are kept for the next run/;
      const clone = await runCli(['--deadline', '1.5', `${gitProxy.url}/git/models.git`, freshDest(work.dir)], { env, timeoutMs: 40_000 });
      failsWith(clone, deadlineLine);
      const s3 = await runCli(['--deadline', '1.5', 's3://bucket/models', freshDest(work.dir)], {
        env: { ...env, S3_READ_TIMEOUT: '60', AWS_ENDPOINT_URL: s3Proxy.url, AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b', AWS_REGION: 'us-east-1' },
        timeoutMs: 40_000,
      });
      failsWith(s3, deadlineLine);
    } finally {
      await Promise.all([gitProxy.stop(), s3Proxy.stop()]);
      await Promise.all([git.stop(), fauxqs.stop()]);
    }
  });

  it('takes the deadline from STORAGE_INITIALIZER_DEADLINE with units', async () => {
    proxy.setSchedule((r) => (isBody(r) ? { kind: 'stall', afterBytes: 1000 } : noFaults()));
    const result = await runCli([`${proxy.url}/model.bin`, freshDest(work.dir)], { env: { ...env, STORAGE_INITIALIZER_DEADLINE: '1500ms' }, timeoutMs: 40_000 });
    failsWith(result, /deadline of 1\.5 s exceeded/);
  });

  it('refuses a deadline it cannot read, naming the flag', async () => {
    const result = await runCli(['--deadline', 'soon', `${proxy.url}/model.bin`, freshDest(work.dir)]);
    failsWith(result, /invalid --deadline="soon": expected seconds or a duration/);
  });

  it('a deadline that does not pass changes nothing', async () => {
    proxy.setSchedule(() => noFaults());
    const dest = freshDest(work.dir);
    const result = await runCli(['--deadline', '10m', `${proxy.url}/model.bin`, dest], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.ok((await readFile(path.join(dest, 'model.bin'))).equals(MODEL));
  });
});
