/**
 * What the split build (scripts/bundle/split-build.mjs) must hand over, checked on dist/ as
 * `npm run build` leaves it (scripts/test.mjs builds first):
 * - no import() call: backend bundles run through vm.compileFunction, which has no dynamic-import
 *   hook, so one left in place fails only when the SDK reaches that lazy path (the AWS SDK's IMDS
 *   region lookup, GCS crypto), often swallowed by the SDK;
 * - ASCII only: one other character makes V8 hold the whole source as UTF-16, twice the memory;
 * - no absolute path of the checkout it was built in: the image runs it from elsewhere;
 * - the CLI runs from any working directory, its backends found beside it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { baseEnv, CLI } from '../helpers/cli.js';
import { tempDir } from '../helpers/tree.js';

const DIST = path.dirname(CLI);
const BACKENDS = path.join(DIST, 'backends');
const backendFiles = readdirSync(BACKENDS).filter((name) => name.endsWith('.cjs')).map((name) => path.join(BACKENDS, name));
const bundles = [CLI, ...backendFiles];

/**
 * A call of import(), not `x.import(` (a method) nor `importModule(`. The whitespace-minified
 * bundles hold none of those look-alikes today; a match inside a string would be a false alarm to
 * look at, not to hide.
 */
const DYNAMIC_IMPORT = /(?<![\w$.])import\s*\(/g;

/** Each match with a little context, for the failure message. */
function matches(text: string, pattern: RegExp): string[] {
  return [...text.matchAll(pattern)].slice(0, 5).map((m) => text.slice(Math.max(0, m.index - 60), m.index + 40));
}

describe('split bundle (dist/)', () => {
  it('has a bundle for each heavy backend', () => {
    const names = backendFiles.map((f) => path.basename(f));
    for (const name of ['s3.cjs', 'gcs.cjs', 'azure-blob.cjs', 'azure-file.cjs', 'git.cjs']) assert.ok(names.includes(name), `${name} missing from ${BACKENDS}`);
  });

  it('the import() pattern finds what esbuild leaves and nothing else', () => {
    const found = (s: string): number => [...s.matchAll(DYNAMIC_IMPORT)].length;
    assert.equal(found('const{request}=await import("node:http");'), 1);
    assert.equal(found('x=import ("a")'), 1);
    assert.equal(found('obj.import("a");importModule("b");reimport(c);$import(d)'), 0);
  });

  for (const file of bundles) {
    const name = path.relative(DIST, file);
    it(`${name}: no import() call, ASCII only, no build-machine path`, () => {
      const text = readFileSync(file, 'utf8');
      assert.deepEqual(matches(text, DYNAMIC_IMPORT), [], `import() left in ${name}`);
      assert.deepEqual(matches(text, /[^\p{ASCII}]/gu), [], `non-ASCII characters in ${name}`);
      assert.ok(!text.includes(path.resolve('.')), `${name} holds the path of the checkout ${path.resolve('.')}`);
    });
  }

  it('runs --version from another working directory', async () => {
    await using work = await tempDir('si-bundle-');
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, '--version'], { cwd: work.dir, env: baseEnv() });
    assert.equal(stdout.trim(), `storage-initializer ${version}`);
  });

  it('loads a backend from another working directory (S3 against a closed port: a network error, not a missing module)', async () => {
    await using work = await tempDir('si-bundle-');
    const env = { ...baseEnv(), AWS_ENDPOINT_URL: 'http://127.0.0.1:1', awsAnonymousCredential: 'true', S3_MAX_ATTEMPTS: '1', STORAGE_INITIALIZER_MAX_ATTEMPTS: '1' };
    const run = promisify(execFile)(process.execPath, [CLI, 's3://bucket/model', path.join(work.dir, 'out')], { cwd: work.dir, env });
    const failure = await run.then(() => assert.fail('the download succeeded'), (err: unknown) => err as { code: number; stderr: string });
    assert.equal(failure.code, 1, failure.stderr);
    assert.match(failure.stderr, /ERROR S3 request for s3:\/\/bucket\/model failed: connect ECONNREFUSED/);
  });
});
