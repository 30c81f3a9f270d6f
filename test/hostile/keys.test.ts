/**
 * Hostile object keys and file names, through the real entry points: keys stored in a real S3
 * server (fauxqs) and downloaded by the built CLI, names on a local source copied through the
 * engine, URL paths of the HTTP source, and (for what no server stores, such as NUL) the planner.
 * Every case ends in a clear error or a safe result, and nothing appears outside DEST.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { StorageError } from '../../src/errors.js';
import type { RemoteObject } from '../../src/sources/types.js';
import { planDownloads } from '../../src/transfer/plan.js';
import { runCli } from '../helpers/cli.js';
import { hashOf, hashTree, randomBytes } from '../helpers/tree.js';
import { startFauxqs, type FauxqsServer } from '../servers/fauxqs.js';
import { s3Client, uploadTree } from '../servers/s3-fixtures.js';
import { errorLine, escaped, newSandbox, report, sandboxRoot, verdict } from './sandbox.js';
import { listenOnLoopback } from '../servers/ports.js';

const TIMEOUT_MS = 30_000;
const small = (text: string): Buffer => Buffer.from(text);

interface KeyCase {
  name: string;
  /** Keys below the case's prefix -> content. */
  keys: Map<string, Buffer>;
  expect: 'error' | 'safe';
  /** What the error line must say. */
  pattern?: RegExp;
  /** The files DEST must hold after a safe run (relative path -> content); default: `keys` as they are. */
  files?: Map<string, Buffer>;
  /** File names a traversal would plant outside. */
  markers?: string[];
}

const MARK = `hostile-escape-${process.pid}`;

const S3_CASES: KeyCase[] = [
  { name: 'dot-dot traversal', keys: new Map([['../../' + MARK + '-1', small('x')]]), expect: 'error', pattern: /refusing object key .*"\.\." segment/, markers: [`${MARK}-1`] },
  { name: 'deep traversal to /tmp', keys: new Map([[`a/../../../../../../../../../tmp/${MARK}-2`, small('x')]]), expect: 'error', pattern: /"\.\." segment/, markers: [`${MARK}-2`] },
  { name: 'traversal hidden among good keys', keys: new Map([['good.bin', small('g')], [`sub/../../${MARK}-3`, small('x')]]), expect: 'error', pattern: /"\.\." segment/, markers: [`${MARK}-3`] },
  { name: 'absolute path (double slash)', keys: new Map([[`/tmp/${MARK}-4`, small('x')]]), expect: 'error', pattern: /absolute path/, markers: [`${MARK}-4`] },
  { name: 'windows drive path', keys: new Map([[`C:/${MARK}-5`, small('x')]]), expect: 'error', pattern: /absolute path/ },
  { name: 'backslash traversal', keys: new Map([[`..\\..\\${MARK}-6`, small('x')]]), expect: 'error', pattern: /backslash/, markers: [`..\\..\\${MARK}-6`, `${MARK}-6`] },
  { name: 'segment longer than 255 bytes', keys: new Map([[`${'n'.repeat(300)}.bin`, small('x')]]), expect: 'error', pattern: /longer than 255 bytes/ },
  { name: 'multibyte segment longer than 255 bytes', keys: new Map([['模'.repeat(90), small('x')]]), expect: 'error', pattern: /longer than 255 bytes/ },
  { name: 'long key of 255-byte segments (~1000 bytes)', keys: new Map([[['a', 'b', 'c'].map((c) => c.repeat(255)).join('/') + '/' + 'd'.repeat(200), small('deep')]]), expect: 'safe' },
  { name: 'file and directory of the same name', keys: new Map([['a', small('file')], ['a/b', small('child')]]), expect: 'error', pattern: /both a file and a directory/ },
  { name: 'two keys normalizing to one file', keys: new Map([['x//y', small('1')], ['x/y', small('2')]]), expect: 'error', pattern: /same file/ },
  { name: 'dot segments normalized', keys: new Map([['./a/./b.txt', small('dots')]]), expect: 'safe', files: new Map([['a/b.txt', small('dots')]]) },
  { name: 'names differing only in case', keys: new Map([['Model.bin', small('upper')], ['model.bin', small('lower')], ['MODEL.BIN', small('caps')]]), expect: 'safe' },
  { name: 'directories differing only in case', keys: new Map([['Dir/a', small('1')], ['dir/a', small('2')]]), expect: 'safe' },
  { name: 'percent-encoded dots stay literal', keys: new Map([['%2e%2e/%2e%2e/x.bin', small('lit')]]), expect: 'safe' },
  { name: 'three dots is a name', keys: new Map([['.../x', small('3')]]), expect: 'safe' },
  { name: 'control characters and newline in a name', keys: new Map([['a\nb\tc\u001b[31m.txt', small('ctl')]]), expect: 'safe' },
  { name: 'bidi override and zero-width characters', keys: new Map([['\u202egnp.exe', small('rtl')], ['zero\u200bwidth', small('zw')]]), expect: 'safe' },
  { name: 'unicode normalization twins (NFC and NFD)', keys: new Map([['caf\u00e9', small('nfc')], ['cafe\u0301', small('nfd')]]), expect: 'safe' },
  // Found by this corpus: `w.bin.part` was overwritten by the download of `w.bin`, which then got its bytes.
  { name: 'key named like the engine temp file', keys: new Map([['w.bin', randomBytes(3 * 2 ** 20, 61)], ['w.bin.part', randomBytes(70_000, 62)]]), expect: 'error', pattern: /temporary file of "w\.bin"/ },
  { name: 'key named like the resume journal', keys: new Map([['j.bin', randomBytes(2 ** 20, 63)], ['j.bin.part.json', small('{"not":"a journal"}')]]), expect: 'error', pattern: /temporary file of "j\.bin"/ },
  { name: 'file name with no room for the temp suffix', keys: new Map([['n'.repeat(251), small('x')]]), expect: 'error', pattern: /longer than 250 bytes/ },
  { name: 'file name of 250 bytes', keys: new Map([['n'.repeat(250), small('x')]]), expect: 'safe' },
  { name: 'hidden names and a name of spaces', keys: new Map([['.git/config', small('g')], ['   ', small('sp')], ['.hidden', small('h')]]), expect: 'safe' },
];

describe('hostile object keys on S3 (fauxqs) through the CLI', { concurrency: 3 }, () => {
  let fauxqs: FauxqsServer;
  let sandboxes: Awaited<ReturnType<typeof sandboxRoot>>;
  const bucket = 'hostile';
  const env = (): Record<string, string> => ({ AWS_ENDPOINT_URL: fauxqs.endpoint, AWS_ACCESS_KEY_ID: 'k', AWS_SECRET_ACCESS_KEY: 'hostile-secret-value', AWS_REGION: 'us-east-1', S3_MAX_ATTEMPTS: '1' });

  before(async () => {
    sandboxes = await sandboxRoot('si-hostile-keys-');
    fauxqs = await startFauxqs();
    const all = new Map<string, Buffer>();
    S3_CASES.forEach((c, i) => { for (const [key, body] of c.keys) all.set(`case${i}/${key}`, body); });
    await uploadTree(s3Client({ endpoint: fauxqs.endpoint, accessKeyId: 'k', secretAccessKey: 's' }), bucket, all);
  });
  after(async () => {
    await fauxqs.stop();
    await sandboxes.dispose();
  });

  S3_CASES.forEach((c, i) => {
    it(`${c.name}: ${c.expect}`, async () => {
      const box = await newSandbox(sandboxes.root);
      const before = await box.snapshot();
      const result = await runCli(['--part-size', '64KiB', `s3://${bucket}/case${i}`, box.dest], { env: env(), timeoutMs: TIMEOUT_MS });
      const outcome = verdict(result);
      const didEscape = await escaped(box, before, c.markers);
      report('keys-s3', c.name, outcome, didEscape);
      assert.equal(outcome, c.expect, result.stderr);
      assert.ok(!result.stderr.includes('hostile-secret-value'));
      if (outcome === 'error') {
        if (c.pattern !== undefined) assert.match(errorLine(result), c.pattern);
        // A refused listing writes nothing: the plan is checked before the first byte.
        assert.deepEqual(await hashTree(box.dest).catch(() => new Map()), new Map());
      } else {
        assert.deepEqual(await hashTree(box.dest), hashOf(c.files ?? c.keys));
      }
    });
  });
});

describe('hostile file names on a local source (copy mode) through the CLI', { concurrency: 3 }, () => {
  let sandboxes: Awaited<ReturnType<typeof sandboxRoot>>;
  before(async () => { sandboxes = await sandboxRoot('si-hostile-local-'); });
  after(() => sandboxes.dispose());

  interface LocalCase { name: string; make(src: string, outsideDir: string): Promise<void>; expect: 'error' | 'safe'; pattern?: RegExp; files?: string[] }
  const CASES: LocalCase[] = [
    { name: 'backslash in a file name', make: (src) => writeFile(path.join(src, '..\\..\\evil.txt'), 'x'), expect: 'error', pattern: /backslash/ },
    { name: 'newline in a file name', make: (src) => writeFile(path.join(src, 'a\nb.txt'), 'x'), expect: 'safe', files: ['a\nb.txt'] },
    // Found by this corpus: the download failed midway with ENAMETOOLONG on `<name>.part`; now the plan refuses it up front.
    { name: '255-byte file name', make: (src) => writeFile(path.join(src, 'x'.repeat(255)), 'x'), expect: 'error', pattern: /longer than 250 bytes/ },
    {
      name: 'symlink to a file outside the source is copied, not linked',
      make: async (src, outsideDir) => { await symlink(path.join(outsideDir, 'keep.txt'), path.join(src, 'link.txt')); },
      expect: 'safe', files: ['link.txt'],
    },
    {
      name: 'symlink to a directory outside is not followed',
      make: async (src, outsideDir) => { await writeFile(path.join(src, 'real.bin'), 'r'); await symlink(outsideDir, path.join(src, 'dirlink')); },
      expect: 'safe', files: ['real.bin'],
    },
    {
      name: 'dangling and self-referencing symlinks are skipped',
      make: async (src) => { await writeFile(path.join(src, 'real.bin'), 'r'); await symlink('/nonexistent/x', path.join(src, 'dangling')); await symlink('loop', path.join(src, 'loop')); },
      expect: 'safe', files: ['real.bin'],
    },
  ];

  for (const c of CASES) {
    it(`${c.name}: ${c.expect}`, async () => {
      const box = await newSandbox(sandboxes.root);
      const src = path.join(box.dir, 'source');
      await mkdir(src);
      await c.make(src, path.join(box.dir, 'outside'));
      const before = await box.snapshot();
      const result = await runCli(['--local-mode', 'copy', src, box.dest], { timeoutMs: TIMEOUT_MS });
      const outcome = verdict(result);
      report('keys-local', c.name, outcome, await escaped(box, before));
      assert.equal(outcome, c.expect, result.stderr);
      if (c.pattern !== undefined) assert.match(errorLine(result), c.pattern);
      if (c.files !== undefined) assert.deepEqual([...(await hashTree(box.dest)).keys()].sort(), c.files.sort());
    });
  }
});

describe('hostile file names in HTTP URLs through the CLI', { concurrency: 3 }, () => {
  let server: Server;
  let base: string;
  let sandboxes: Awaited<ReturnType<typeof sandboxRoot>>;
  const BODY = Buffer.from('served body\n');

  before(async () => {
    sandboxes = await sandboxRoot('si-hostile-http-');
    // Answers every path with the same body, so the file name the CLI derives is all that is tested.
    server = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BODY.length });
      res.end(req.method === 'HEAD' ? undefined : BODY);
    });
    base = `http://127.0.0.1:${await listenOnLoopback(server)}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await sandboxes.dispose();
  });

  const CASES: { name: string; urlPath: string; expect: 'error' | 'safe'; pattern?: RegExp; file?: string }[] = [
    // The file is named after the URL's last segment once decoded, and only its base name is used.
    { name: 'encoded ../ in the file name', urlPath: `/d/..%2F..%2F${MARK}-h1`, expect: 'safe', file: `${MARK}-h1` },
    { name: 'encoded absolute path', urlPath: `/d/%2Ftmp%2F${MARK}-h2`, expect: 'safe', file: `${MARK}-h2` },
    { name: 'encoded NUL', urlPath: '/d/model%00.bin', expect: 'error', pattern: /NUL/ },
    { name: 'encoded backslash', urlPath: '/d/..%5C..%5Cevil.bin', expect: 'error', pattern: /backslash/ },
    { name: 'encoded dot-dot as the name', urlPath: '/d/%2e%2e', expect: 'error', pattern: /names no file|"\.\."/ },
    { name: 'trailing slash names no file', urlPath: '/d/', expect: 'error', pattern: /names no file/ },
    { name: 'overlong encoded name', urlPath: `/d/${'%41'.repeat(300)}`, expect: 'error', pattern: /longer than 255 bytes/ },
    { name: 'malformed percent-encoding kept literally', urlPath: '/d/bad%zz.bin', expect: 'safe', file: 'bad%zz.bin' },
    { name: 'encoded newline', urlPath: '/d/a%0Ab.bin', expect: 'safe', file: 'a\nb.bin' },
  ];

  for (const c of CASES) {
    it(`${c.name}: ${c.expect}`, async () => {
      const box = await newSandbox(sandboxes.root);
      const before = await box.snapshot();
      const result = await runCli([`${base}${c.urlPath}`, box.dest], { timeoutMs: TIMEOUT_MS });
      const outcome = verdict(result);
      report('keys-http', c.name, outcome, await escaped(box, before, [`${MARK}-h1`, `${MARK}-h2`]));
      assert.equal(outcome, c.expect, result.stderr);
      if (c.pattern !== undefined) assert.match(errorLine(result), c.pattern);
      if (c.file !== undefined) assert.equal(await readFile(path.join(box.dest, c.file), 'utf8'), BODY.toString());
    });
  }
});

describe('hostile keys no server stores, through the planner', () => {
  const source = { prefix: 'm', displayUri: 's3://b/m', name: 'S3' };
  const plan = (keys: string[]) => planDownloads(source, keys.map((key): RemoteObject => ({ key: `m/${key}`, size: 1 })), { dest: '/sandbox/dest', allow: [], ignore: [] });

  const REFUSED: [string, string[], RegExp][] = [
    ['NUL in a name', ['a\0b'], /NUL byte/],
    ['NUL hiding a traversal', ['ok\0/../../x'], /NUL byte/],
    ['lone dot-dot', ['..'], /"\.\." segment/],
    ['dot-dot after normalization', ['a/./../..'], /"\.\." segment/],
    ['only dot segments', ['./.'], /names no file/],
    ['absolute after the prefix', ['/etc/passwd'], /absolute path/],
    ['drive letter', ['c:evil'], /absolute path/],
    ['UNC-style backslashes', ['\\\\server\\share\\x'], /backslash/],
    ['file/dir clash, dir listed first', ['a/b', 'a'], /both a file and a directory/],
    ['file/dir clash, deep', ['x/y/z', 'x/y'], /both a file and a directory/],
    ['duplicate after dot removal', ['a/b', './a/./b'], /same file/],
  ];
  for (const [name, keys, pattern] of REFUSED) {
    it(`${name}: error`, () => {
      let outcome: 'error' | 'safe' = 'safe';
      try {
        const files = plan(keys);
        for (const f of files.files) assert.ok(f.localPath.startsWith('/sandbox/dest/'), f.localPath);
      } catch (err) {
        assert.ok(err instanceof StorageError && err.kind === 'InvalidInput', String(err));
        assert.match(err.message, pattern);
        assert.doesNotMatch(err.message, /\n/);
        outcome = 'error';
      }
      report('keys-planner', name, outcome, false);
      assert.equal(outcome, 'error');
    });
  }
});
