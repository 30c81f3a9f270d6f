import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import zlib from 'node:zlib';
import { StorageError } from '../../src/errors.js';
import { extractArchive } from '../../src/archive/extract.js';
import { archiveFormatFromName, sniffArchiveFormat } from '../../src/archive/format.js';

const LIMITS = { maxBytes: 2 ** 40, maxEntries: 1_000_000, maxRatio: 1000 };
const root = await mkdtemp(path.join(os.tmpdir(), 'archive-format-'));
after(() => rm(root, { recursive: true, force: true }));

/** A one-block tar holding an empty file named "x" (valid header, checksum, ustar magic). */
function tinyTar(): Buffer {
  const header = Buffer.alloc(512);
  header.write('x', 0);
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write('00000000000\0', 124);
  header.write('00000000000\0', 136);
  header.write('        ', 148);
  header.write('0', 156);
  header.write('ustar\u000000', 257);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return Buffer.concat([header, Buffer.alloc(1024)]);
}

async function fileWith(name: string, content: Buffer): Promise<string> {
  const file = path.join(root, name);
  await writeFile(file, content);
  return file;
}

describe('archiveFormatFromName', () => {
  it('knows every archive suffix, in any case', () => {
    const cases: [string, string][] = [
      ['m.zip', 'zip'], ['m.ZIP', 'zip'], ['m.tar', 'tar'], ['m.tar.gz', 'tar.gz'], ['m.TGZ', 'tar.gz'],
      ['m.tar.bz2', 'tar.bz2'], ['m.tbz2', 'tar.bz2'], ['m.tar.xz', 'tar.xz'], ['m.txz', 'tar.xz'],
      ['m.tar.zst', 'tar.zst'], ['m.Tar.Zst', 'tar.zst'], ['m.tzst', 'tar.zst'], ['dir/m.tar.gz', 'tar.gz'],
    ];
    for (const [name, format] of cases) assert.equal(archiveFormatFromName(name), format, name);
  });

  it('leaves other files alone, even zip containers such as .pt', () => {
    for (const name of ['model.pt', 'model.pth', 'x.npz', 'm.keras', 'model.gz', 'model.bz2', 'model.zst', 'a.tar.gz.part', '.zip', 'tar', 'model.safetensors']) {
      assert.equal(archiveFormatFromName(name), undefined, name);
    }
  });
});

describe('sniffArchiveFormat', () => {
  it('reads the format from the first bytes', async () => {
    const tar = tinyTar();
    assert.equal(await sniffArchiveFormat(await fileWith('a', tar)), 'tar');
    assert.equal(await sniffArchiveFormat(await fileWith('b', zlib.gzipSync(tar))), 'tar.gz');
    assert.equal(await sniffArchiveFormat(await fileWith('c', Buffer.from('BZh91AY&SY'))), 'tar.bz2');
    assert.equal(await sniffArchiveFormat(await fileWith('d', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 0]))), 'tar.xz');
    assert.equal(await sniffArchiveFormat(await fileWith('e', Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0]))), 'tar.zst');
    assert.equal(await sniffArchiveFormat(await fileWith('f', Buffer.from('PK\x03\x04rest', 'latin1'))), 'zip');
    assert.equal(await sniffArchiveFormat(await fileWith('g', Buffer.from('PK\x05\x06', 'latin1'))), 'zip');
    assert.equal(await sniffArchiveFormat(await fileWith('h', Buffer.from('just some text'))), undefined);
    assert.equal(await sniffArchiveFormat(await fileWith('i', Buffer.alloc(0))), undefined);
  });
});

describe('extractArchive format checks', () => {
  const rejectsAsInvalid = async (file: string, pattern: RegExp) => {
    const dest = await mkdtemp(path.join(root, 'dest-'));
    await assert.rejects(extractArchive(file, dest, LIMITS, new AbortController().signal), (err: unknown) => {
      assert.ok(err instanceof StorageError, String(err));
      assert.equal(err.kind, 'InvalidInput');
      assert.match(err.message, pattern);
      assert.doesNotMatch(err.message, /\n/);
      return true;
    });
    assert.deepEqual(await readdir(dest), []);
  };

  it('refuses a .tar.gz whose bytes are a plain tar', async () => {
    await rejectsAsInvalid(await fileWith('plain.tar.gz', tinyTar()),
      /^Failed to unpack archive file plain\.tar\.gz\. The file format is not valid: the name says tar\.gz but the content is an uncompressed tar archive$/);
  });

  it('refuses a .tar.xz holding gzip data, and a .zip holding text', async () => {
    await rejectsAsInvalid(await fileWith('m.tar.xz', zlib.gzipSync(tinyTar())), /The file format is not valid: the name says tar\.xz but the content is gzip data/);
    await rejectsAsInvalid(await fileWith('m.zip', Buffer.from('hello')), /The file format is not valid: the name says zip but the content is not a known archive/);
  });

  it('refuses a .tar that is gzip-compressed (a common misnaming)', async () => {
    await rejectsAsInvalid(await fileWith('m.tar', zlib.gzipSync(tinyTar())), /the name says tar but the content is gzip data/);
  });

  it('refuses gzip inside gzip rather than letting the tar parser unpack it', async () => {
    await rejectsAsInvalid(await fileWith('double.tar.gz', zlib.gzipSync(zlib.gzipSync(tinyTar()))), /compressed again/);
  });

  it('refuses a file whose name is not an archive name (a .pt zip stays as is)', async () => {
    await rejectsAsInvalid(await fileWith('model.pt', Buffer.from('PK\x03\x04', 'latin1')), /model\.pt.*not a known archive extension|known archive extension/);
  });

  it('extracts a minimal valid tar', async () => {
    const dest = await mkdtemp(path.join(root, 'ok-'));
    const result = await extractArchive(await fileWith('tiny.tar', tinyTar()), dest, LIMITS, new AbortController().signal);
    assert.deepEqual(result, { files: 1, bytes: 0, format: 'tar' });
    assert.deepEqual(await readdir(dest), ['x']);
  });

  it('rejects with Cancelled when the signal is already aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(extractArchive(await fileWith('c.tar', tinyTar()), path.join(root, 'never'), LIMITS, controller.signal),
      (err: unknown) => err instanceof StorageError && err.kind === 'Cancelled');
  });
});
