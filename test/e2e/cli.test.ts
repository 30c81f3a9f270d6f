/** The CLI contract: arguments, usage errors, exit codes, URI dispatch errors, local sources. */
import assert from 'node:assert/strict';
import { lstat, readFile, readlink, readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import pkg from '../../package.json' with { type: 'json' };
import { errorLines, runCli } from '../helpers/cli.js';
import { hashOf, hashTree, randomBytes, tempDir, writeTree } from '../helpers/tree.js';

describe('cli', () => {
  it('prints --help and --version and exits 0', async () => {
    const help = await runCli(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: storage-initializer/);
    const version = await runCli(['--version']);
    assert.equal(version.code, 0);
    assert.equal(version.stdout.trim(), `storage-initializer ${pkg.version}`);
  });

  it('refuses a missing or odd argument count with the usage line, exit 1', async () => {
    for (const args of [[], ['s3://b/m'], ['s3://b/m', '/tmp/a', 'gs://b/x']]) {
      const result = await runCli(args);
      assert.equal(result.code, 1, args.join(' '));
      assert.match(result.stderr, /Usage: storage-initializer/);
    }
  });

  it('refuses an unknown flag and an invalid setting in one line naming it', async () => {
    const flag = await runCli(['--bogus', 's3://b/m', '/tmp/x']);
    assert.equal(flag.code, 1);
    assert.match(flag.stderr, /bogus/);
    const setting = await runCli(['s3://b/m', '/tmp/x'], { env: { S3_MAX_ATTEMPTS: 'abc' } });
    assert.equal(setting.code, 1);
    assert.equal(errorLines(setting).length, 1);
    assert.match(setting.stderr, /S3_MAX_ATTEMPTS/);
  });

  it('lists the supported forms for an unknown scheme', async () => {
    const result = await runCli(['ftp://host/model', '/tmp/x']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /Cannot recognize storage type for URI/);
    assert.match(result.stderr, /s3:\/\/BUCKET/);
  });

  it('explains that pvc:// URIs are mounted by KServe, not downloaded', async () => {
    const result = await runCli(['pvc://models-claim/iris', '/tmp/x']);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /mounted by KServe at \/mnt\/pvc/);
  });

  it('does nothing for /mnt/models (already mounted)', async () => {
    const result = await runCli(['/mnt/models', '/mnt/models']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /already mounted/);
  });

  it('symlinks the top-level entries of a local directory, as upstream does', async () => {
    await using src = await tempDir();
    await using dest = await tempDir();
    await writeTree(src.dir, new Map([['model.bin', randomBytes(100)], ['sub/config.json', Buffer.from('{}')]]));
    const result = await runCli([src.dir, dest.dir]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual((await readdir(dest.dir)).sort(), ['model.bin', 'sub']);
    assert.ok((await lstat(path.join(dest.dir, 'sub'))).isSymbolicLink());
    assert.equal(await readlink(path.join(dest.dir, 'model.bin')), path.join(src.dir, 'model.bin'));
    const again = await runCli([`file://${src.dir}`, dest.dir]);
    assert.equal(again.code, 0, 'a re-run finds its own links');
  });

  it('copies a local tree through the engine with --local-mode copy, and logs the summary', async () => {
    await using src = await tempDir();
    await using dest = await tempDir();
    const tree = new Map([['model.bin', randomBytes(300_000, 9)], ['a/b/config.json', Buffer.from('{"x":1}')], ['empty', Buffer.alloc(0)]]);
    await writeTree(src.dir, tree);
    const result = await runCli(['--local-mode', 'copy', '--part-size', '65536', src.dir, path.join(dest.dir, 'models')]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await hashTree(path.join(dest.dir, 'models')), hashOf(tree));
    assert.match(result.stderr, /Successfully copied/);
    assert.match(result.stderr, /summary: 3 files, .* MiB\/s/);
    assert.equal(await readFile(path.join(dest.dir, 'models', 'a/b/config.json'), 'utf8'), '{"x":1}');

    const rerun = await runCli(['--local-mode', 'copy', src.dir, path.join(dest.dir, 'models')]);
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.match(rerun.stderr, /skipped 3 file\(s\) already complete/);
    assert.match(rerun.stderr, /fetched_bytes=0 /);
  });

  it('says "No model found" for a missing local path', async () => {
    await using dest = await tempDir();
    const result = await runCli(['file:///nonexistent/model/dir', dest.dir]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /No model found/);
  });

  it('writes json log lines with --log-format json', async () => {
    const result = await runCli(['--log-format', 'json', '/mnt/models', '/mnt/models']);
    assert.equal(result.code, 0);
    for (const line of result.stderr.trim().split('\n')) {
      const parsed = JSON.parse(line) as { level?: string; msg?: string };
      assert.equal(typeof parsed.msg, 'string');
    }
  });
});
