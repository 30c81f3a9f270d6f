/**
 * Local faults: the destination cannot be written (as the image's UID 65532, since root ignores
 * modes), cannot be created, is a file; the disk fills up; the process runs out of file
 * descriptors. Each run must exit 1 with one error line that names the path (or the limit) and
 * says what to do, and must leave nothing that looks complete: a file under its final name is
 * always a whole, verified one.
 *
 * What stays behind, by design:
 * - permission denied, a file in the way: nothing (nothing could be created).
 * - disk full: the `.part` file and its journal are KEPT. The bytes in them are good; after space
 *   is freed (or the volume grown) the restarted init container resumes instead of fetching them
 *   again. They are clearly unfinished (`.part`), and the error says how much more space is needed.
 *   (Under a file size limit, `ulimit -f`, the file cannot even be sized, and its empty `.part` is
 *   removed.)
 * - too many open files: finished files stay (verified), unfinished ones stay as `.part` for resume.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { chmod, mkdir, readdir, readFile, rm, statfs, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { baseEnv, CLI, errorLines, type CliResult } from '../helpers/cli.js';
import { record } from '../helpers/reliability.js';
import { skipWithout } from '../helpers/system.js';
import { hashOf, hashTree, randomBytes, tempDir, type Tree } from '../helpers/tree.js';
import { startHfDouble, type HfDouble } from '../servers/hf-double.js';
import { startNginx, type NginxServer } from '../servers/nginx.js';

const run = promisify(execFile);
const IMAGE_UID = 65532;
const MODEL = randomBytes(32 * 2 ** 20, 71);
/** Free space left on the small file system: the download fills it a quarter of the way in. */
const FREE_BYTES = 8 * 2 ** 20;
const FS_BYTES = 64 * 2 ** 20;
const SHARDS: Tree = new Map(Array.from({ length: 200 }, (_, i) => [`shard-${String(i).padStart(3, '0')}.bin`, randomBytes(2048, 100 + i)]));
/** Low enough that 16 parallel streams run out, high enough for Node itself and one stream. */
const NOFILE = 28;
const WORK_FILE = /\.part(\.json(\.tmp)?)?$/;

/** Runs the CLI behind a wrapper (setpriv, prlimit) with a test's environment only. */
function runWrapped(wrapper: readonly string[], args: readonly string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const command = wrapper[0] ?? process.execPath;
    const rest = wrapper.length > 0 ? [...wrapper.slice(1), process.execPath] : [];
    const child = spawn(command, [...rest, CLI, ...args], { env: { ...baseEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); }, 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** The one error line of a failed run, without its timestamp and level. */
function failure(result: CliResult): string {
  assert.equal(result.code, 1, result.stderr);
  const lines = errorLines(result);
  assert.equal(lines.length, 1, result.stderr);
  return (lines[0] ?? '').replace(/^\S+ ERROR /, '');
}

async function entries(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [])).sort();
}

/** Whether every final-named file is whole (equal to the fixture) and everything else is a work file. */
async function cleanLeftovers(dest: string, fixture: Tree): Promise<boolean> {
  const expected = hashOf(fixture);
  const found = await hashTree(dest).catch(() => new Map<string, string>());
  return [...found].every(([name, hash]) => WORK_FILE.test(name) || expected.get(name) === hash);
}

interface SmallFs { method: 'loop-ext4' | 'tmpfs' | 'ulimit-f'; dir: string; release(): Promise<void> }

/**
 * A file system that fills up: a loop-mounted ext4 image, else a size-limited tmpfs (both need
 * root and a kernel that lets the sandbox mount), else a file size limit on the process
 * (prlimit --fsize; Node ignores SIGXFSZ, so writes fail with EFBIG). The first that works here.
 */
async function smallFilesystem(root: string): Promise<SmallFs> {
  const dir = path.join(root, 'small');
  await mkdir(dir);
  const forced = process.env.LOCAL_FAULTS_DISK_METHOD;
  const unmount = async (): Promise<void> => { await run('umount', [dir]); };
  if (forced === undefined || forced === 'loop-ext4') {
    const image = path.join(root, 'small.ext4');
    try {
      await writeFile(image, '');
      await truncate(image, FS_BYTES);
      // No blocks reserved for root: the CLI runs as root here, and the space left must be what statfs says.
      await run('mkfs.ext4', ['-q', '-F', '-m', '0', image]);
      await run('mount', ['-o', 'loop', image, dir]);
      return { method: 'loop-ext4', dir, release: unmount };
    } catch { /* not permitted here: next method */ }
  }
  if (forced === undefined || forced === 'tmpfs') {
    try {
      await run('mount', ['-t', 'tmpfs', '-o', `size=${FS_BYTES}`, 'tmpfs', dir]);
      return { method: 'tmpfs', dir, release: unmount };
    } catch { /* not permitted here: next method */ }
  }
  return { method: 'ulimit-f', dir, release: () => Promise.resolve() };
}

describe('local faults', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let nginx: NginxServer;
  let hf: HfDouble;
  let url: string;

  before(async () => {
    work = await tempDir('si-local-');
    // The image's user must reach the destinations below.
    await chmod(work.dir, 0o755);
    const root = path.join(work.dir, 'root');
    await mkdir(root);
    await writeFile(path.join(root, 'model.bin'), MODEL);
    nginx = await startNginx({ root });
    url = `${nginx.httpUrl}/model.bin`;
    hf = await startHfDouble();
    hf.addRepo('acme/shards', SHARDS);
  });

  after(async () => {
    await hf.stop();
    await nginx.stop();
    await work[Symbol.asyncDispose]();
  });

  const asImageUser = ['setpriv', '--reuid', String(IMAGE_UID), '--regid', String(IMAGE_UID), '--clear-groups'];
  const hint = (dest: string): string => `make the destination writable by UID ${IMAGE_UID} (chown -R ${IMAGE_UID}:${IMAGE_UID} ${dest})`;

  it('a destination the user cannot write: names the file and says which owner it needs', { skip: skipWithout('setpriv') }, async () => {
    const dest = path.join(work.dir, 'read-only', 'models');
    await mkdir(dest, { recursive: true });
    await chmod(path.dirname(dest), 0o755);
    await chmod(dest, 0o555);
    const result = await runWrapped(asImageUser, [url, dest]);
    const message = failure(result);
    const clean = (await entries(dest)).length === 0;
    record('local-faults', { case: 'destination-not-writable', method: 'setpriv uid 65532, mode 0555', exitCode: result.code, message, cleanLeftovers: clean });
    assert.equal(message, `cannot write ${dest}/model.bin.part: permission denied; ${hint(dest)}`);
    assert.ok(clean);
  });

  it('a destination the user cannot create: names it and says which owner it needs', { skip: skipWithout('setpriv') }, async () => {
    const parent = path.join(work.dir, 'read-only-parent');
    await mkdir(parent);
    await chmod(parent, 0o555);
    const dest = path.join(parent, 'models');
    const result = await runWrapped(asImageUser, [url, dest]);
    const message = failure(result);
    const clean = (await entries(parent)).length === 0;
    record('local-faults', { case: 'destination-not-creatable', method: 'setpriv uid 65532, parent mode 0555', exitCode: result.code, message, cleanLeftovers: clean });
    assert.equal(message, `cannot create destination ${dest}: permission denied; ${hint(dest)}`);
    assert.ok(clean);
  });

  it('a destination that is an existing file: says so and leaves the file alone', async () => {
    const dest = path.join(work.dir, 'a-file');
    await writeFile(dest, 'not a directory\n');
    const result = await runWrapped([], [url, dest]);
    const message = failure(result);
    const untouched = (await readFile(dest, 'utf8')) === 'not a directory\n';
    record('local-faults', { case: 'destination-is-a-file', method: 'regular file', exitCode: result.code, message, cleanLeftovers: untouched });
    assert.equal(message, `cannot create destination ${dest}: it exists and is not a directory`);
    assert.ok(untouched);
  });

  it('a full disk: says how much more is needed, keeps the .part for a resume once space is freed', { timeout: 120_000 }, async () => {
    const fs = await smallFilesystem(work.dir);
    try {
      const dest = path.join(fs.dir, 'models');
      const filler = path.join(fs.dir, 'filler');
      let wrapper: string[] = [];
      if (fs.method === 'ulimit-f') {
        wrapper = ['prlimit', `--fsize=${FREE_BYTES}`];
      } else {
        const free = await statfs(fs.dir);
        await writeFile(filler, Buffer.alloc(Math.max(0, free.bavail * free.bsize - FREE_BYTES)));
      }
      const result = await runWrapped(wrapper, [url, dest]);
      const message = failure(result);
      const left = await entries(dest);
      const clean = await cleanLeftovers(dest, new Map([['model.bin', MODEL]]));
      record('local-faults', { case: 'disk-full', method: fs.method, exitCode: result.code, message, cleanLeftovers: clean, leftovers: left });
      assert.match(message, new RegExp(`^(no space left on device|file size limit \\(ulimit -f\\) exceeded) writing ${dest}/model\\.bin\\.part \\((\\d+) more bytes needed\\)$`));
      const needed = Number(/\((\d+) more bytes needed\)$/.exec(message)?.[1]);
      assert.ok(needed > 0 && needed <= MODEL.length, `needed ${needed}`);
      assert.ok(clean && !left.includes('model.bin'), left.join(', '));
      if (fs.method !== 'ulimit-f') assert.ok(left.includes('model.bin.part'), 'the .part stays for a resume');

      // Space freed: the restarted run resumes from what the journal vouches for.
      const journal = await readFile(path.join(dest, 'model.bin.part.json'), 'utf8').then((t) => JSON.parse(t) as { done: number[] }, () => undefined);
      await rm(filler, { force: true });
      const again = await runWrapped([], [url, dest]);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(await entries(dest), ['model.bin']);
      assert.ok((await readFile(path.join(dest, 'model.bin'))).equals(MODEL), 'byte-identical after the resume');
      if (journal !== undefined) {
        const fetched = Number(/fetched_bytes=(\d+)/.exec(again.stderr)?.[1]);
        assert.equal(fetched, MODEL.length - journal.done.reduce((a, b) => a + b, 0), 'only what the journal did not vouch for is fetched again');
      }
    } finally {
      await fs.release();
    }
  });

  it('too many open files: names the limit and the way out, and the way out works', { skip: skipWithout('prlimit') }, async () => {
    const dest = path.join(work.dir, 'shards');
    const limited = ['prlimit', `--nofile=${NOFILE}`];
    const env = { HF_ENDPOINT: hf.url };
    const result = await runWrapped(limited, ['--concurrency', '16', 'hf://acme/shards', dest], env);
    const message = failure(result);
    const clean = await cleanLeftovers(dest, SHARDS);
    const left = await entries(dest);
    record('local-faults', {
      case: 'too-many-open-files', method: `prlimit --nofile=${NOFILE}, --concurrency 16`, exitCode: result.code, message, cleanLeftovers: clean,
      leftovers: left.length, partFiles: left.filter((name) => WORK_FILE.test(name)).length,
    });
    // Whichever ran out first, a file being opened (then named) or a connection.
    assert.match(message, new RegExp(`too many open files \\(limit ${NOFILE}\\)`));
    assert.match(message, /; lower --concurrency or raise the limit \(ulimit -n\)$/);
    if (message.startsWith('too many open files')) assert.match(message, new RegExp(`trying to write ${dest}/shard-\\d+\\.bin\\.part;`));
    assert.ok(clean, left.join(', '));

    const lowered = await runWrapped(limited, ['--concurrency', '1', 'hf://acme/shards', dest], env);
    assert.equal(lowered.code, 0, lowered.stderr);
    assert.deepEqual(await hashTree(dest), hashOf(SHARDS));
  });
});
