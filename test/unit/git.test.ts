/** Git source pieces that need no server: settings, LFS pointer parsing, and the tree's path safety. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createLogger } from '../../src/log.js';
import { loadGitSettings } from '../../src/settings/git.js';
import { parsePointer } from '../../src/sources/git-lfs.js';
import { linkStaysInside, validateCommitTree } from '../../src/sources/git-tree.js';
import { tempDir } from '../helpers/tree.js';

const run = promisify(execFile);
const log = createLogger({ level: 'error', format: 'text' });
const OID = 'a'.repeat(64);

describe('git settings', () => {
  it('reads credentials and switches', () => {
    assert.deepEqual(loadGitSettings({}), { username: undefined, password: undefined, keepDotGit: false, lfs: true });
    const s = loadGitSettings({ GIT_USERNAME: 'u', GIT_PASSWORD: 'p', GIT_KEEP_DOT_GIT: 'true', GIT_LFS_SKIP_SMUDGE: '1' });
    assert.deepEqual(s, { username: 'u', password: 'p', keepDotGit: true, lfs: false });
    assert.throws(() => loadGitSettings({ GIT_KEEP_DOT_GIT: 'maybe' }), /GIT_KEEP_DOT_GIT/);
  });
});

describe('LFS pointers', () => {
  it('parses the spec v1 form and nothing else', () => {
    const text = `version https://git-lfs.github.com/spec/v1\noid sha256:${OID}\nsize 12345\n`;
    assert.deepEqual(parsePointer(text), { oid: OID, size: 12345 });
    assert.equal(parsePointer(text.replace('sha256:', 'sha1:')), undefined);
    assert.equal(parsePointer(text.trimEnd()), undefined);
    assert.equal(parsePointer(`hello\n${text}`), undefined);
    assert.equal(parsePointer(`version https://git-lfs.github.com/spec/v1\noid sha256:${OID}\n`), undefined);
  });
});

describe('git tree safety', () => {
  it('keeps links inside the tree', () => {
    assert.ok(linkStaysInside('a/b', 'c'));
    assert.ok(linkStaysInside('a/b', '../top.txt'));
    assert.ok(!linkStaysInside('a/b', '../../outside'));
    assert.ok(!linkStaysInside('link', '/etc/passwd'));
    assert.ok(!linkStaysInside('link', '..'));
    assert.ok(!linkStaysInside('link', ''));
  });

  async function repoWith(setup: (dir: string) => Promise<void>): Promise<{ dir: string; tree: string; dispose: () => Promise<void> }> {
    const work = await tempDir('si-git-unit-');
    const dir = work.dir;
    const env = { ...process.env, GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null', GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@e', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@e' };
    await run('git', ['init', '-q', dir], { env });
    await setup(dir);
    await run('git', ['add', '-A'], { cwd: dir, env });
    await run('git', ['commit', '-q', '-m', 'x'], { cwd: dir, env });
    const tree = (await run('git', ['rev-parse', 'HEAD^{tree}'], { cwd: dir, env })).stdout.trim();
    return { dir, tree, dispose: () => work[Symbol.asyncDispose]() };
  }

  it('accepts a tree with nested files and an inside link', async () => {
    const repo = await repoWith(async (dir) => {
      await mkdir(path.join(dir, 'a/b'), { recursive: true });
      await writeFile(path.join(dir, 'a/b/f.txt'), 'x');
      await symlink('b/f.txt', path.join(dir, 'a/link'));
    });
    try {
      await validateCommitTree(repo.dir, repo.tree, log);
    } finally {
      await repo.dispose();
    }
  });

  it('refuses a symlink that points outside before anything is checked out', async () => {
    const repo = await repoWith(async (dir) => {
      await mkdir(path.join(dir, 'sub'));
      await symlink('../../../etc/passwd', path.join(dir, 'sub/evil'));
    });
    try {
      await assert.rejects(validateCommitTree(repo.dir, repo.tree, log), (err: Error) => {
        assert.equal(err.name, 'InvalidInput');
        assert.match(err.message, /sub\/evil.*outside/);
        return true;
      });
    } finally {
      await repo.dispose();
    }
  });
});
