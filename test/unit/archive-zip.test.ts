import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import zlib from 'node:zlib';
import { StorageError } from '../../src/errors.js';
import { extractArchive } from '../../src/archive/extract.js';
import { archiveFormatFromName } from '../../src/archive/format.js';
import type { ArchiveLimits } from '../../src/archive/limits.js';
import { newCase } from '../helpers/tree.js';
import { skipWithout } from '../helpers/system.js';

/*
 * Zips come from the `zip` CLI (Debian: zip) where installed, and from the small writer below,
 * which also makes the hostile ones.
 */

const LIMITS: ArchiveLimits = { maxBytes: 2 ** 40, maxEntries: 1_000_000, maxRatio: 1000 };
const root = await mkdtemp(path.join(os.tmpdir(), 'archive-zip-'));
after(() => rm(root, { recursive: true, force: true }));
const signal = () => new AbortController().signal;

// ---------- a minimal zip writer ----------

interface ZipSpec {
  name: string;
  data?: Buffer;
  /** 0 stored, 8 deflate. */
  method?: number;
  /** Unix st_mode, stored in the upper 16 bits of the external attributes. */
  mode?: number;
  /** Override what the headers declare. */
  crc?: number;
  uncompressedSize?: number;
  /** Precompressed body (method 8), for data too large to deflate in one call comfortably. */
  compressed?: Buffer;
}

function zipBytes(specs: ZipSpec[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const spec of specs) {
    const name = Buffer.from(spec.name, 'utf8');
    const data = spec.data ?? Buffer.alloc(0);
    const method = spec.method ?? (spec.compressed === undefined ? 0 : 8);
    const body = spec.compressed ?? (method === 8 ? zlib.deflateRawSync(data) : data);
    const crc = spec.crc ?? zlib.crc32(data);
    const size = spec.uncompressedSize ?? data.length;
    const mode = spec.mode ?? (spec.name.endsWith('/') ? 0o040755 : 0o100644);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x800, 6); // UTF-8 names
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(0, 10);
    local.writeUInt16LE(0x21, 12);
    local.writeUInt32LE(crc >>> 0, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 30, 4); // made by Unix
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x800, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc >>> 0, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(size, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(((mode << 16) >>> 0), 38);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += local.length + name.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(specs.length, 8);
  end.writeUInt16LE(specs.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

// ---------- helpers ----------


async function writeZip(dir: string, name: string, specs: ZipSpec[]): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, zipBytes(specs));
  return file;
}

async function assertNothingOutside(c: { dir: string; outside: string }): Promise<void> {
  for (const name of await readdir(c.dir)) assert.ok(['dest', 'outside'].includes(name) || name.endsWith('.zip'), `unexpected ${name} beside DEST`);
  assert.deepEqual(await readdir(c.outside), []);
  for (const p of ['/tmp/evil', '/abs/evil', '/etc/pwned', path.join(os.tmpdir(), 'evil')]) assert.equal(existsSync(p), false, p);
}

async function expectRefusal(file: string, c: { dir: string; dest: string; outside: string }, pattern: RegExp, limits = LIMITS): Promise<void> {
  await assert.rejects(extractArchive(file, c.dest, limits, signal()), (err: unknown) => {
    assert.ok(err instanceof StorageError, `not a StorageError: ${String(err)}`);
    assert.equal(err.kind, 'InvalidInput', err.message);
    assert.match(err.message, /^Failed to unpack archive file .*\.zip/);
    assert.match(err.message, pattern);
    assert.doesNotMatch(err.message, /\n/);
    return true;
  });
  await assertNothingOutside(c);
}

async function describeTree(dir: string, rel = ''): Promise<string[]> {
  const lines: string[] = [];
  for (const name of (await readdir(path.join(dir, rel))).sort()) {
    const relPath = rel === '' ? name : `${rel}/${name}`;
    const full = path.join(dir, relPath);
    const info = await lstat(full);
    if (info.isSymbolicLink()) lines.push(`${relPath} -> ${await readlink(full)}`);
    else if (info.isDirectory()) lines.push(`${relPath}/`, ...await describeTree(dir, relPath));
    else {
      const digest = createHash('sha256').update(await readFile(full)).digest('hex').slice(0, 16);
      lines.push(`${relPath} ${info.size} ${digest} ${(info.mode & 0o100) !== 0 ? 'x' : '-'}`);
    }
  }
  return lines;
}

// ---------- tests ----------

describe('extractArchive: zip', () => {
  it('a .pt file is not an archive by name, though it is a zip inside', () => {
    assert.equal(archiveFormatFromName('model.pt'), undefined);
    assert.equal(archiveFormatFromName('model.zip'), 'zip');
  });

  it('extracts a zip made by the zip CLI byte-identical (unicode, spaces, empty file, exec bit, symlink)', { skip: skipWithout('zip') }, async () => {
    const c = await newCase(root);
    const src = path.join(c.dir, 'src');
    await mkdir(path.join(src, 'model', 'sub dir'), { recursive: true });
    await mkdir(path.join(src, 'ünï cödé'));
    await writeFile(path.join(src, 'model', 'config.json'), '{"a": 1}\n');
    await writeFile(path.join(src, 'model', 'sub dir', 'weights.bin'), randomBytes(500_000));
    await writeFile(path.join(src, 'model', 'zeros.bin'), Buffer.alloc(300_000));
    await writeFile(path.join(src, 'model', 'empty'), '');
    await writeFile(path.join(src, 'model', 'run.sh'), '#!/bin/sh\n');
    await chmod(path.join(src, 'model', 'run.sh'), 0o755);
    await writeFile(path.join(src, 'ünï cödé', 'файл 1.txt'), 'unicode\n');
    await symlink('config.json', path.join(src, 'model', 'link'));
    const file = path.join(c.dir, 'model.zip');
    execFileSync('zip', ['-qry', '--symlinks', file, '.'], { cwd: src });
    await rm(src, { recursive: true });
    const result = await extractArchive(file, c.dest, LIMITS, signal());
    assert.equal(result.format, 'zip');
    assert.equal(result.files, 7);
    assert.equal(result.bytes, 9 + 500_000 + 300_000 + 10 + 8); // link targets are not file data
    const tree = await describeTree(c.dest);
    assert.ok(tree.includes('model/link -> config.json'), tree.join('\n'));
    assert.ok(tree.some((l) => l.startsWith('model/run.sh 10 ') && l.endsWith(' x')));
    assert.ok(tree.some((l) => l.startsWith('model/config.json 9 ') && l.endsWith(' -')));
    assert.ok(tree.includes('ünï cödé/'));
    assert.ok(tree.some((l) => l.startsWith('ünï cödé/файл 1.txt 8 ')));
    assert.ok(tree.some((l) => l.startsWith('model/empty 0 ')));
    assert.ok(tree.some((l) => l.startsWith('model/zeros.bin 300000 ')));
  });

  it('extracts a hand-made zip: stored and deflated entries, directories, exec bit', async () => {
    const c = await newCase(root);
    const weights = randomBytes(200_000);
    const file = await writeZip(c.dir, 'hand.zip', [
      { name: 'model/' },
      { name: 'model/weights.bin', data: weights, method: 8 },
      { name: 'model/stored.txt', data: Buffer.from('stored') },
      { name: 'model/run.sh', data: Buffer.from('#!/bin/sh\n'), mode: 0o100755 },
      { name: 'model/empty', data: Buffer.alloc(0), method: 8 },
      { name: 'ünï/файл.txt', data: Buffer.from('ü') },
    ]);
    assert.deepEqual(await extractArchive(file, c.dest, LIMITS, signal()), { files: 5, bytes: 200_000 + 6 + 10 + 0 + 2, format: 'zip' });
    assert.deepEqual(await readFile(path.join(c.dest, 'model', 'weights.bin')), weights);
    assert.equal(((await lstat(path.join(c.dest, 'model', 'run.sh'))).mode & 0o111) !== 0, true);
    assert.equal(((await lstat(path.join(c.dest, 'model', 'stored.txt'))).mode & 0o111), 0);
    assert.equal(await readFile(path.join(c.dest, 'ünï', 'файл.txt'), 'utf8'), 'ü');
  });
});

describe('extractArchive: hostile zips are refused, nothing lands outside DEST', () => {
  const cases: { title: string; specs: ZipSpec[]; pattern: RegExp }[] = [
    { title: '"../evil"', specs: [{ name: '../evil', data: Buffer.from('pwned') }], pattern: /refusing archive entry "\.\.\/evil": it contains a "\.\." segment/ },
    { title: '"..\\evil" (backslashes)', specs: [{ name: '..\\evil', data: Buffer.from('pwned') }], pattern: /refusing archive entry "\.\.\/evil"/ },
    { title: '"/abs/evil"', specs: [{ name: '/abs/evil', data: Buffer.from('pwned') }], pattern: /refusing archive entry "\/abs\/evil": it is an absolute path/ },
    { title: '"a/../../evil"', specs: [{ name: 'a/../../evil', data: Buffer.from('pwned') }], pattern: /"a\/\.\.\/\.\.\/evil".*"\.\." segment/ },
    {
      title: 'symlink entry escaping DEST, then a file through it',
      specs: [{ name: 'link', data: Buffer.from('../../outside'), mode: 0o120777 }, { name: 'link/pwned', data: Buffer.from('pwned') }],
      pattern: /"link": it is a symbolic link to "\.\.\/\.\.\/outside", which points outside the destination/,
    },
    { title: 'symlink entry to /etc', specs: [{ name: 'link', data: Buffer.from('/etc'), mode: 0o120777 }, { name: 'link/pwned', data: Buffer.from('x') }], pattern: /"link": it is a symbolic link to "\/etc", an absolute path/ },
    {
      title: 'a safe symlink to a directory, then a file written through it',
      specs: [{ name: 'sub/' }, { name: 'link', data: Buffer.from('sub'), mode: 0o120777 }, { name: 'link/pwned', data: Buffer.from('pwned') }],
      pattern: /archive entry "link\/pwned": refusing to write through symbolic link/,
    },
    { title: 'a character device entry', specs: [{ name: 'null', mode: 0o020644 }], pattern: /"null": it is a character device/ },
    { title: 'a FIFO entry', specs: [{ name: 'pipe', mode: 0o010644 }], pattern: /"pipe": it is a FIFO/ },
    { title: 'an unsupported compression method', specs: [{ name: 'lzma.bin', data: Buffer.from('x'), method: 14 }], pattern: /"lzma\.bin": it uses compression method 14/ },
  ];
  for (const testCase of cases) {
    it(testCase.title, async () => {
      const c = await newCase(root);
      await expectRefusal(await writeZip(c.dir, 'hostile.zip', testCase.specs), c, testCase.pattern);
    });
  }
});

describe('extractArchive: zip limits and corruption', () => {
  it('a high-ratio zip (200 MB of zeros) stops at maxBytes = 50 MB', async () => {
    const c = await newCase(root);
    const size = 200 * 2 ** 20;
    const deflate = zlib.createDeflateRaw({ level: 9 });
    const compressed: Buffer[] = [];
    deflate.on('data', (chunk: Buffer) => compressed.push(chunk));
    const done = new Promise((resolve) => deflate.on('end', resolve));
    const zeros = Buffer.alloc(2 ** 20);
    let crc = 0;
    for (let i = 0; i < size / zeros.length; i++) {
      crc = zlib.crc32(zeros, crc);
      deflate.write(zeros);
    }
    deflate.end();
    await done;
    const file = await writeZip(c.dir, 'bomb.zip', [{ name: 'zeros.bin', compressed: Buffer.concat(compressed), crc, uncompressedSize: size }]);
    const limits = { ...LIMITS, maxBytes: 50 * 2 ** 20 };
    await expectRefusal(file, c, /"zeros\.bin": it declares 209715200 bytes, more than the 52428800 bytes left/, limits);
    // A header that understates the size is caught as the data streams (yauzl counts the bytes).
    const lying = await writeZip(c.dir, 'lying.zip', [{ name: 'zeros.bin', compressed: Buffer.concat(compressed), crc, uncompressedSize: 1000 }]);
    await assert.rejects(extractArchive(lying, path.join(c.dir, 'dest2'), limits, signal()), (err: unknown) => {
      assert.ok(err instanceof StorageError);
      assert.equal(err.kind, 'InvalidInput');
      assert.match(err.message, /The file format is not valid: zip entry "zeros\.bin" is corrupt: too many bytes/);
      return true;
    });
    await rm(path.join(c.dir, 'dest2'), { recursive: true, force: true });
    await assertNothingOutside(c);
  });

  it('the ratio limit stops a bomb that stays under maxBytes', async () => {
    const c = await newCase(root);
    const size = 80 * 2 ** 20;
    const data = Buffer.alloc(size);
    const file = await writeZip(c.dir, 'ratio.zip', [{ name: 'zeros.bin', compressed: zlib.deflateRawSync(data, { level: 9 }), crc: zlib.crc32(data), uncompressedSize: size }]);
    await expectRefusal(file, c, /more than 100 times its own size .*"zeros\.bin"/, { ...LIMITS, maxRatio: 100 });
  });

  it('more entries than maxEntries is refused before extracting anything', async () => {
    const c = await newCase(root);
    const specs = Array.from({ length: 20 }, (_, i) => ({ name: `f${i}`, data: Buffer.from('x') }));
    await expectRefusal(await writeZip(c.dir, 'many.zip', specs), c, /has 20 entries, more than the limit of 10/, { ...LIMITS, maxEntries: 10 });
    assert.deepEqual(await readdir(c.dest), []);
  });

  it('a CRC-32 mismatch is reported as corrupt data', async () => {
    const c = await newCase(root);
    const file = await writeZip(c.dir, 'crc.zip', [{ name: 'a.txt', data: Buffer.from('hello'), crc: 12345 }]);
    await expectRefusal(file, c, /The file format is not valid: zip entry "a\.txt" is corrupt: CRC-32 mismatch/);
  });

  it('a truncated zip (no central directory) is reported as invalid', async () => {
    const c = await newCase(root);
    const bytes = zipBytes([{ name: 'a.bin', data: randomBytes(10_000), method: 8 }]);
    const file = path.join(c.dir, 'cut.zip');
    await writeFile(file, bytes.subarray(0, 5000));
    await expectRefusal(file, c, /The file format is not valid: zip data is invalid: .*end of central directory/i);
  });

  it('aborting mid-way rejects with Cancelled', async () => {
    const c = await newCase(root);
    const data = Buffer.alloc(64 * 2 ** 20);
    const file = await writeZip(c.dir, 'big.zip', [{ name: 'zeros.bin', compressed: zlib.deflateRawSync(data, { level: 1 }), crc: zlib.crc32(data), uncompressedSize: data.length }]);
    const controller = new AbortController();
    setTimeout(() => { controller.abort(); }, 20);
    await assert.rejects(extractArchive(file, c.dest, LIMITS, controller.signal), (err: unknown) => err instanceof StorageError && err.kind === 'Cancelled');
    await assertNothingOutside(c);
  });

  it('corrupt deflate data is reported as invalid', async () => {
    const c = await newCase(root);
    const data = Buffer.from('hello world '.repeat(1000));
    const compressed = zlib.deflateRawSync(data);
    compressed.fill(0xff, 10, 40);
    const file = await writeZip(c.dir, 'bad.zip', [{ name: 'a.txt', compressed, crc: zlib.crc32(data), uncompressedSize: data.length }]);
    await expectRefusal(file, c, /The file format is not valid: zip entry "a\.txt" is corrupt/);
  });
});
