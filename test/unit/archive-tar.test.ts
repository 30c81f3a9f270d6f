import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { chmod, link, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, describe, it } from 'node:test';
import zlib from 'node:zlib';
import { StorageError } from '../../src/errors.js';
import { extractArchive } from '../../src/archive/extract.js';
import type { ArchiveLimits } from '../../src/archive/limits.js';
import { skipWithout } from '../helpers/system.js';
import { newCase } from '../helpers/tree.js';
import { tarBytes, tarHeader, type TarEntry } from '../helpers/tar-bytes.js';

/*
 * Real archives are made with GNU tar and the system compressors (Debian: tar, gzip, bzip2,
 * xz-utils, zstd); hostile ones are written header by header below.
 */

const LIMITS: ArchiveLimits = { maxBytes: 2 ** 40, maxEntries: 1_000_000, maxRatio: 1000 };
const root = await mkdtemp(path.join(os.tmpdir(), 'archive-tar-'));
after(() => rm(root, { recursive: true, force: true }));



const signal = () => new AbortController().signal;

// ---------- a tree to pack, and a comparison of two trees ----------

const LONG_DIR = `deep/${'d'.repeat(70)}/${'e'.repeat(70)}`;

async function makeTree(src: string): Promise<void> {
  await mkdir(path.join(src, 'model', 'sub dir'), { recursive: true });
  await mkdir(path.join(src, 'ünï cödé'), { recursive: true });
  await mkdir(path.join(src, LONG_DIR), { recursive: true });
  await mkdir(path.join(src, 'empty dir'));
  await writeFile(path.join(src, 'model', 'config.json'), '{"name": "model"}\n');
  await writeFile(path.join(src, 'model', 'sub dir', 'weights.bin'), randomBytes(300_000));
  await writeFile(path.join(src, 'model', 'zeros.bin'), Buffer.alloc(200_000));
  await writeFile(path.join(src, 'model', 'empty'), '');
  await writeFile(path.join(src, 'model', 'run.sh'), '#!/bin/sh\necho hi\n');
  await chmod(path.join(src, 'model', 'run.sh'), 0o755);
  await writeFile(path.join(src, 'ünï cödé', 'файл 1.txt'), 'unicode\n');
  await writeFile(path.join(src, LONG_DIR, `${'f'.repeat(90)}.txt`), 'long name\n');
  await symlink('config.json', path.join(src, 'model', 'link'));
  await symlink('../model/sub dir', path.join(src, 'ünï cödé', 'dirlink'));
  await link(path.join(src, 'model', 'config.json'), path.join(src, 'model', 'hard.json'));
}

/** Every path under dir with its kind and content digest, exec bit or link target. */
async function describeTree(dir: string, rel = ''): Promise<string[]> {
  const lines: string[] = [];
  for (const name of (await readdir(path.join(dir, rel))).sort()) {
    const relPath = rel === '' ? name : `${rel}/${name}`;
    const full = path.join(dir, relPath);
    const info = await lstat(full);
    if (info.isSymbolicLink()) lines.push(`${relPath} -> ${await readlink(full)}`);
    else if (info.isDirectory()) {
      lines.push(`${relPath}/`);
      lines.push(...await describeTree(dir, relPath));
    } else {
      const digest = createHash('sha256').update(await readFile(full)).digest('hex').slice(0, 16);
      lines.push(`${relPath} ${info.size} ${digest} ${(info.mode & 0o100) !== 0 ? 'x' : '-'}`);
    }
  }
  return lines;
}

// ---------- hand-made tar ----------

async function writeTar(dir: string, name: string, specs: TarEntry[], options?: { end?: boolean }): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, tarBytes(specs, options));
  return file;
}

/** Rejects as InvalidInput with a one-line message matching `pattern`, and wrote nothing outside DEST. */
async function expectRefusal(file: string, c: { dir: string; dest: string; outside: string }, pattern: RegExp, limits = LIMITS): Promise<void> {
  await assert.rejects(extractArchive(file, c.dest, limits, signal()), (err: unknown) => {
    assert.ok(err instanceof StorageError, `not a StorageError: ${String(err)}`);
    assert.equal(err.kind, 'InvalidInput', err.message);
    assert.match(err.message, pattern);
    assert.match(err.message, /^Failed to unpack archive file /);
    assert.doesNotMatch(err.message, /\n/);
    return true;
  });
  await assertNothingOutside(c);
}

async function assertNothingOutside(c: { dir: string; dest: string; outside: string }): Promise<void> {
  const siblings = (await readdir(c.dir)).filter((n) => n !== 'dest' && n !== 'outside');
  for (const name of siblings) assert.match(name, /\.(tar|tgz|gz|bz2|xz|zst|zip)$/i, `unexpected ${name} beside DEST`);
  assert.deepEqual(await readdir(c.outside), []);
  for (const p of ['/tmp/evil', '/abs/evil', '/etc/pwned', path.join(os.tmpdir(), 'evil')]) assert.equal(existsSync(p), false, p);
}

// ---------- tests ----------

describe('extractArchive: tar formats made by GNU tar', async () => {
  const src = path.join(root, 'src');
  await makeTree(src);
  const expected = await describeTree(src);
  const tar = (args: string[]) => { execFileSync('tar', args, { stdio: 'pipe' }); };

  const variants: { name: string; args: string[]; tool?: string }[] = [
    { name: 'model.tar', args: ['-cf'] },
    { name: 'model-pax.tar', args: ['--format=pax', '-cf'] },
    { name: 'model.tar.gz', args: ['-czf'], tool: 'gzip' },
    { name: 'MODEL.TGZ', args: ['-czf'], tool: 'gzip' },
    { name: 'model.tar.bz2', args: ['-cjf'], tool: 'bzip2' },
    { name: 'model.tar.xz', args: ['-cJf'], tool: 'xz' },
    { name: 'model.tar.zst', args: ['--zstd', '-cf'], tool: 'zstd' },
  ];
  for (const variant of variants) {
    it(`extracts ${variant.name} byte-identical (unicode, spaces, empty file, exec bit, long names, links)`, { skip: variant.tool === undefined ? false : skipWithout(variant.tool) }, async () => {
      const c = await newCase(root);
      const file = path.join(c.dir, variant.name);
      tar([...variant.args, file, '-C', src, '.']);
      const result = await extractArchive(file, c.dest, LIMITS, signal());
      assert.deepEqual(await describeTree(c.dest), expected);
      assert.equal(result.files, 10); // 7 regular files, 2 symlinks, 1 hard link
      assert.equal(result.bytes, 300_000 + 200_000 + 18 + 18 + 8 + 10);
      const hard = await stat(path.join(c.dest, 'model', 'hard.json'));
      assert.equal(hard.nlink, 2, 'the hard link is a link, not a copy');
      await assertNothingOutside(c);
    });
  }

  it('accepts "./model/x" style names and a "./" root entry', async () => {
    const c = await newCase(root);
    const file = await writeTar(c.dir, 'dot.tar', [
      { name: './', type: '5' },
      { name: './model/', type: '5' },
      { name: './model/x', data: Buffer.from('x') },
    ]);
    assert.deepEqual(await extractArchive(file, c.dest, LIMITS, signal()), { files: 1, bytes: 1, format: 'tar' });
    assert.equal(await readFile(path.join(c.dest, 'model', 'x'), 'utf8'), 'x');
  });

  it('keeps the last of two entries with the same name, as tar does', async () => {
    const c = await newCase(root);
    const file = await writeTar(c.dir, 'dup.tar', [
      { name: 'a', data: Buffer.from('first') },
      { name: 'a', data: Buffer.from('second') },
    ]);
    await extractArchive(file, c.dest, LIMITS, signal());
    assert.equal(await readFile(path.join(c.dest, 'a'), 'utf8'), 'second');
  });

  it('never creates setuid files and keeps only the exec bits', async () => {
    const c = await newCase(root);
    const file = await writeTar(c.dir, 'modes.tar', [
      { name: 'suid', data: Buffer.from('x'), mode: 0o4777 },
      { name: 'plain', data: Buffer.from('x'), mode: 0o666 },
      { name: 'd/', type: '5', mode: 0o7777 },
    ]);
    await extractArchive(file, c.dest, LIMITS, signal());
    const suid = (await stat(path.join(c.dest, 'suid'))).mode & 0o7777;
    const plain = (await stat(path.join(c.dest, 'plain'))).mode & 0o7777;
    const dir = (await stat(path.join(c.dest, 'd'))).mode & 0o7000;
    assert.equal(suid & 0o7000, 0);
    assert.ok((suid & 0o100) !== 0);
    assert.equal(plain & 0o111, 0);
    assert.ok((plain & 0o022) === 0, 'no group/world write');
    assert.equal(dir, 0);
  });
});

describe('extractArchive: hostile tar entries are refused, nothing lands outside DEST', () => {
  const cases: { title: string; specs: TarEntry[]; pattern: RegExp }[] = [
    { title: '"../evil"', specs: [{ name: '../evil', data: Buffer.from('pwned') }], pattern: /refusing archive entry "\.\.\/evil": it contains a "\.\." segment/ },
    { title: '"/abs/evil"', specs: [{ name: '/abs/evil', data: Buffer.from('pwned') }], pattern: /refusing archive entry "\/abs\/evil": it is an absolute path/ },
    { title: '"a/../../evil"', specs: [{ name: 'a/../../evil', data: Buffer.from('pwned') }], pattern: /"a\/\.\.\/\.\.\/evil".*"\.\." segment/ },
    {
      title: 'symlink "link -> ../../outside" then "link/pwned"',
      specs: [{ name: 'link', type: '2', linkname: '../../outside' }, { name: 'link/pwned', data: Buffer.from('pwned') }],
      pattern: /refusing archive entry "link": it is a symbolic link to "\.\.\/\.\.\/outside", which points outside the destination/,
    },
    {
      title: 'a safe symlink to a directory, then a file written through it',
      specs: [{ name: 'sub/', type: '5' }, { name: 'link', type: '2', linkname: 'sub' }, { name: 'link/pwned', data: Buffer.from('pwned') }],
      pattern: /archive entry "link\/pwned": refusing to write through symbolic link/,
    },
    { title: 'symlink "link -> /etc"', specs: [{ name: 'link', type: '2', linkname: '/etc' }, { name: 'link/pwned', data: Buffer.from('x') }], pattern: /"link": it is a symbolic link to "\/etc", an absolute path/ },
    {
      title: 'a symlink with ".." after a name (escapes through another link)',
      specs: [{ name: 'x/', type: '5' }, { name: 'y', type: '2', linkname: 'x/l/../..' }, { name: 'x/l', type: '2', linkname: '..' }],
      pattern: /"y": it is a symbolic link to "x\/l\/\.\.\/\.\.", which has "\.\." after a name/,
    },
    { title: 'hard link to /etc/passwd', specs: [{ name: 'h', type: '1', linkname: '/etc/passwd' }], pattern: /"h": it is a hard link to "\/etc\/passwd", outside the destination/ },
    { title: 'hard link to ../x', specs: [{ name: 'h', type: '1', linkname: '../x' }], pattern: /"h": it is a hard link to "\.\.\/x", outside the destination/ },
    {
      title: 'hard link to a file not extracted yet',
      specs: [{ name: 'h', type: '1', linkname: 'later' }, { name: 'later', data: Buffer.from('x') }],
      pattern: /"h": it is a hard link to "later", which is not a regular file extracted earlier/,
    },
    {
      title: 'hard link to a symlink',
      specs: [{ name: 's', type: '2', linkname: 'target' }, { name: 'h', type: '1', linkname: 's' }],
      pattern: /"h": it is a hard link to "s", which is not a regular file/,
    },
    { title: 'a character device', specs: [{ name: 'null', type: '3' }], pattern: /"null": it is a character device/ },
    { title: 'a block device', specs: [{ name: 'sda', type: '4' }], pattern: /"sda": it is a block device/ },
    { title: 'a FIFO', specs: [{ name: 'pipe', type: '6' }], pattern: /"pipe": it is a FIFO/ },
    { title: 'a directory replaced by a file', specs: [{ name: 'd/', type: '5' }, { name: 'd', data: Buffer.from('x') }], pattern: /"d": a directory of that name already exists/ },
  ];
  for (const testCase of cases) {
    it(testCase.title, async () => {
      const c = await newCase(root);
      await expectRefusal(await writeTar(c.dir, 'hostile.tar', testCase.specs), c, testCase.pattern);
    });
  }

  it('the same refusals hold inside compression (tar.gz)', async () => {
    const c = await newCase(root);
    const file = path.join(c.dir, 'hostile.tar.gz');
    await writeFile(file, zlib.gzipSync(tarBytes([{ name: 'ok', data: Buffer.from('fine') }, { name: '../evil', data: Buffer.from('pwned') }])));
    await expectRefusal(file, c, /"\.\.\/evil".*"\.\." segment/);
  });
});

describe('extractArchive: tar limits', () => {
  it('a header declaring 100 GB is refused at once under a smaller maxBytes', async () => {
    const c = await newCase(root);
    const file = await writeTar(c.dir, 'huge.tar', [{ name: 'big', size: 100e9, data: Buffer.alloc(1000) }], { end: false });
    await expectRefusal(file, c, /"big": it declares 100000000000 bytes, more than the 52428800 bytes left/, { ...LIMITS, maxBytes: 50 * 2 ** 20 });
  });

  it('a header declaring 100 GB over a short body fails as truncated, without allocating it', async () => {
    const c = await newCase(root);
    const file = await writeTar(c.dir, 'huge.tar', [{ name: 'big', size: 100e9, data: Buffer.alloc(1000) }], { end: false });
    const before = process.memoryUsage().rss;
    await expectRefusal(file, c, /The file format is not valid: .*[Tt]runcated/);
    assert.ok(process.memoryUsage().rss - before < 200 * 2 ** 20);
  });

  it('more entries than maxEntries', async () => {
    const c = await newCase(root);
    const specs = Array.from({ length: 20 }, (_, i) => ({ name: `f${i}`, data: Buffer.from('x') }));
    await expectRefusal(await writeTar(c.dir, 'many.tar', specs), c, /more than 10 entries \(the limit\), at entry "f10"/, { ...LIMITS, maxEntries: 10 });
    assert.equal((await readdir(c.dest)).length, 10);
  });

  it('maxBytes is checked against what earlier entries already used', async () => {
    const c = await newCase(root);
    const specs = Array.from({ length: 4 }, (_, i) => ({ name: `f${i}`, data: Buffer.alloc(4000, i) }));
    await expectRefusal(await writeTar(c.dir, 'bytes.tar', specs), c, /"f2": it declares 4000 bytes, more than the 2000 bytes left under the limit of 10000/, { ...LIMITS, maxBytes: 10_000 });
    assert.deepEqual((await readdir(c.dest)).sort(), ['f0', 'f1']);
  });

  it('maxRatio stops a gzip bomb once past 64 MiB', async () => {
    const c = await newCase(root);
    const file = path.join(c.dir, 'bomb.tar.gz');
    const size = 100 * 2 ** 20;
    function* tarOfZeros() {
      yield tarHeader({ name: 'zeros', size });
      const zeros = Buffer.alloc(2 ** 20);
      for (let i = 0; i < size / zeros.length; i++) yield zeros;
      yield Buffer.alloc(1024);
    }
    await pipeline(Readable.from(tarOfZeros()), zlib.createGzip({ level: 1 }), createWriteStream(file));
    await expectRefusal(file, c, /more than 100 times its own size .*decompression bomb.*"zeros"/, { ...LIMITS, maxRatio: 100 });
  });
});

describe('extractArchive: corrupt and truncated compressed tars reject cleanly', async () => {
  const src = path.join(root, 'corrupt-src');
  await mkdir(src);
  await writeFile(path.join(src, 'random.bin'), randomBytes(2 ** 20));
  await writeFile(path.join(src, 'text.txt'), 'hello\n'.repeat(100_000));
  const kinds: { name: string; flag: string; tool: string }[] = [
    { name: 'c.tar.gz', flag: '-z', tool: 'gzip' },
    { name: 'c.tar.bz2', flag: '-j', tool: 'bzip2' },
    { name: 'c.tar.xz', flag: '-J', tool: 'xz' },
    { name: 'c.tar.zst', flag: '--zstd', tool: 'zstd' },
  ];
  for (const kind of kinds) {
    const skip = skipWithout(kind.tool);
    it(`${kind.name} truncated to half`, { skip }, async () => {
      const c = await newCase(root);
      const file = path.join(c.dir, kind.name);
      execFileSync('tar', [kind.flag, '-cf', file, '-C', src, '.']);
      await truncate(file, Math.floor((await stat(file)).size / 2));
      await expectRefusal(file, c, /The file format is not valid: /);
    });
    it(`${kind.name} with corrupt bytes in the middle`, { skip }, async () => {
      const c = await newCase(root);
      const file = path.join(c.dir, kind.name);
      execFileSync('tar', [kind.flag, '-cf', file, '-C', src, '.']);
      const bytes = await readFile(file);
      const middle = Math.floor(bytes.length * 0.6);
      for (let i = 0; i < 64; i++) bytes[middle + i] = (bytes[middle + i] ?? 0) ^ 0x5a;
      await writeFile(file, bytes);
      await expectRefusal(file, c, /The file format is not valid: /);
    });
  }

  it('a plain tar cut inside an entry', async () => {
    const c = await newCase(root);
    const file = path.join(c.dir, 'cut.tar');
    execFileSync('tar', ['-cf', file, '-C', src, '.']);
    await truncate(file, 2 ** 20);
    await expectRefusal(file, c, /The file format is not valid: .*[Tt]runcated/);
  });

  it('a tar header with a bad checksum', async () => {
    const c = await newCase(root);
    const bytes = tarBytes([{ name: 'a', data: Buffer.from('x') }]);
    bytes[0] = 0x62; // rename "a" to "b" without fixing the checksum
    const file = path.join(c.dir, 'sum.tar');
    await writeFile(file, bytes);
    await expectRefusal(file, c, /The file format is not valid: tar data is invalid: .*checksum/);
  });
});

describe('extractArchive: cancellation', () => {
  const codecs = [['big.tar', '', 'tar'], ['big.tar.gz', '-z', 'gzip'], ['big.tar.bz2', '-j', 'bzip2'], ['big.tar.xz', '-J', 'xz'], ['big.tar.zst', '--zstd', 'zstd']] as const;
  for (const [name, flag, tool] of codecs) {
    it(`aborting mid-way rejects with Cancelled (${name}), and the next extraction still works`, { skip: skipWithout(tool) }, async () => {
      const c = await newCase(root);
      const src = path.join(c.dir, 'src');
      await mkdir(src);
      // 64 MiB of zeros (sparse, so quick to make and compress) takes long enough to unpack.
      await writeFile(path.join(src, 'a.bin'), '');
      await truncate(path.join(src, 'a.bin'), 64 * 2 ** 20);
      const file = path.join(c.dir, name);
      execFileSync('tar', [...(flag === '' ? [] : [flag]), '-cf', file, '-C', src, '.']);
      const controller = new AbortController();
      setTimeout(() => { controller.abort(); }, 20);
      await assert.rejects(extractArchive(file, c.dest, LIMITS, controller.signal), (err: unknown) => {
        assert.ok(err instanceof StorageError);
        assert.equal(err.kind, 'Cancelled');
        assert.match(err.message, /cancelled/);
        return true;
      });
      const again = path.join(c.dir, 'again');
      const result = await extractArchive(file, again, LIMITS, signal());
      assert.equal(result.bytes, 64 * 2 ** 20);
    });
  }
});
