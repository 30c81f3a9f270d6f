/**
 * The Git source end to end: the bundled CLI against `git http-backend` (smart HTTP, Basic auth, LFS
 * batch API) and `git daemon` (git://), both serving a fixture repository built with the git CLI.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { failsWith, runCli, type CliResult } from '../helpers/cli.js';
import { hashOf, hashTree, tempDir } from '../helpers/tree.js';
import { GIT_TEST_PASSWORD, GIT_TEST_USER, startGitServers, type GitServers } from '../servers/git-servers.js';

describe('git source (CLI against git http-backend and git daemon)', () => {
  let servers: GitServers;
  let work: Awaited<ReturnType<typeof tempDir>>;
  let counter = 0;

  before(async () => {
    work = await tempDir('si-git-e2e-');
    servers = await startGitServers();
  });

  after(async () => {
    await servers.stop();
    await work[Symbol.asyncDispose]();
  });

  async function clone(uri: string, env: Record<string, string> = {}, args: string[] = []): Promise<{ result: CliResult; dest: string; files: Map<string, string> }> {
    const dest = path.join(work.dir, `case-${String(++counter)}`, 'models');
    const result = await runCli([...args, uri, dest], { env });
    return { result, dest, files: await hashTree(dest).catch(() => new Map<string, string>()) };
  }

  const succeeded = (result: CliResult): void => {
    assert.equal(result.code, 0, result.stderr);
  };


  it('clones the default branch over http: nested dirs, binary byte-identical, LFS object fetched and verified, no .git', async () => {
    const before = servers.requests.length;
    const { result, dest, files } = await clone(`${servers.httpUrl}/git/models.git`);
    succeeded(result);
    assert.deepEqual(files, hashOf(servers.fixture.main));
    const top = await readdir(dest);
    assert.ok(!top.includes('.git'), top.join(','));
    assert.ok(!top.some((name) => name.startsWith('.git-clone-')), top.join(','));
    const seen = servers.requests.slice(before);
    assert.ok(seen.includes('POST /git/models.git/info/lfs/objects/batch'), seen.join('\n'));
    assert.ok(seen.some((r) => r.startsWith('GET /lfs-objects/')), seen.join('\n'));
    const lfs = await readFile(path.join(dest, servers.fixture.lfsPath));
    assert.equal(createHash('sha256').update(lfs).digest('hex'), createHash('sha256').update(servers.fixture.main.get(servers.fixture.lfsPath) ?? '').digest('hex'));
  });

  it('clones a tag given as REPO.git@v1.0', async () => {
    const { result, files } = await clone(`${servers.httpUrl}/git/models.git@v1.0`);
    succeeded(result);
    assert.deepEqual(files, hashOf(servers.fixture.v1));
  });

  it('keeps .git with GIT_KEEP_DOT_GIT=true', async () => {
    const { result, dest } = await clone(`${servers.httpUrl}/git/models.git#main`, { GIT_KEEP_DOT_GIT: 'true' });
    succeeded(result);
    assert.ok((await readdir(dest)).includes('.git'));
    assert.ok((await readdir(path.join(dest, '.git'))).includes('shallow'));
  });

  it('authenticates with GIT_USERNAME/GIT_PASSWORD, never printing the password at debug level', async () => {
    const { result, files } = await clone(`${servers.httpUrl}/private/models.git`,
      { GIT_USERNAME: GIT_TEST_USER, GIT_PASSWORD: GIT_TEST_PASSWORD }, ['--log-level', 'debug']);
    succeeded(result);
    assert.deepEqual(files, hashOf(servers.fixture.main));
    assert.ok(!result.stderr.includes(GIT_TEST_PASSWORD) && !result.stdout.includes(GIT_TEST_PASSWORD), result.stderr);
  });

  it('authenticates with user:password in the URL, never printing the password at debug level', async () => {
    const host = servers.httpUrl.slice('http://'.length);
    const { result, files } = await clone(`http://${GIT_TEST_USER}:${GIT_TEST_PASSWORD}@${host}/private/models.git@v1.0`, {}, ['--log-level', 'debug']);
    succeeded(result);
    assert.deepEqual(files, hashOf(servers.fixture.v1));
    assert.ok(!result.stderr.includes(GIT_TEST_PASSWORD) && !result.stdout.includes(GIT_TEST_PASSWORD), result.stderr);
  });

  it('fails in one line on a wrong password, without printing it', async () => {
    const { result } = await clone(`${servers.httpUrl}/private/models.git`,
      { GIT_USERNAME: GIT_TEST_USER, GIT_PASSWORD: 'wrong-password-123' }, ['--log-level', 'debug']);
    const line = failsWith(result, /authentication failed.*\/private\/models\.git/i);
    assert.ok(!result.stderr.includes('wrong-password-123'), line);
  });

  it('asks for credentials in one line when none are given', async () => {
    const { result } = await clone(`${servers.httpUrl}/private/models.git`);
    failsWith(result, /requires authentication.*GIT_USERNAME/);
  });

  it('fails in one line on a missing repository or ref', async () => {
    failsWith((await clone(`${servers.httpUrl}/git/missing.git`)).result, /not found.*missing\.git/i);
    failsWith((await clone(`${servers.httpUrl}/git/models.git@no-such-branch`)).result, /ref "no-such-branch" not found/);
  });

  it('clones over git:// from git daemon (LFS pointers left with a warning), and a tag with #REF', async () => {
    const { result, files } = await clone(`${servers.daemonUrl}/models.git`);
    succeeded(result);
    const expected = hashOf(servers.fixture.main);
    const lfsPath = servers.fixture.lfsPath;
    expected.delete(lfsPath);
    const pointer = files.get(lfsPath);
    files.delete(lfsPath);
    assert.deepEqual(files, expected);
    assert.ok(pointer !== undefined);
    assert.match(result.stderr, /WARN .*LFS pointer/);

    const tagged = await clone(`${servers.daemonUrl}/models.git#v1.0`);
    succeeded(tagged.result);
    assert.deepEqual(tagged.files, hashOf(servers.fixture.v1));
    failsWith((await clone(`${servers.daemonUrl}/missing.git`)).result, /not found.*missing\.git/i);
  });
});
