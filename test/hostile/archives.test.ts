/**
 * Hostile archives served by nginx and unpacked by the built CLI (a lone downloaded archive is
 * unpacked into DEST): traversal, absolute paths, link escapes, devices, decompression bombs (high
 * ratio, overlapping entries, nested), huge declared sizes, truncation. Each run has a deadline
 * (a hang is killed and fails the case), exits 0 or 1 with one error line, and leaves everything
 * outside DEST as it was.
 */
import assert from 'node:assert/strict';
import { lstat, mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import zlib from 'node:zlib';
import { runCli } from '../helpers/cli.js';
import { hashTree } from '../helpers/tree.js';
import { skipWithout } from '../helpers/system.js';
import { startNginx, type NginxServer } from '../servers/nginx.js';
import { deflatedZeros, gzipMember, paxEntry, tarBytes, tarHeader, zipBytes, type TarEntry } from './archive-bytes.js';
import { errorLine, escaped, newSandbox, report, sandboxRoot, verdict } from './sandbox.js';

const DEADLINE_MS = 30_000;
const MARK = `hostile-archive-${process.pid}`;
const MiB = 2 ** 20;
const GiB = 2 ** 30;
const file = (name: string, text = 'x'): TarEntry => ({ name, data: Buffer.from(text) });

interface ArchiveCase {
  name: string;
  /** The served file name: its extension decides how it is unpacked. */
  file: string;
  bytes: () => Uint8Array;
  expect: 'error' | 'safe';
  pattern?: RegExp;
  env?: Record<string, string>;
  /** Checks DEST after a safe run. */
  check?: (dest: string) => Promise<void>;
}

const gz = (b: Buffer): Buffer => zlib.gzipSync(b);
const LINK = 0o120777;

const CASES: ArchiveCase[] = [
  // ---- tar: names
  { name: 'tar ../ traversal', file: 't1.tar', bytes: () => tarBytes([file('ok.txt'), file(`../../${MARK}-1`)]), expect: 'error', pattern: /refusing archive entry .*"\.\." segment/ },
  { name: 'tgz deep traversal to /tmp', file: 't2.tar.gz', bytes: () => gz(tarBytes([file(`a/../../../../../../../../tmp/${MARK}-2`)])), expect: 'error', pattern: /"\.\." segment/ },
  { name: 'tar absolute path', file: 't3.tar', bytes: () => tarBytes([file(`/tmp/${MARK}-3`)]), expect: 'error', pattern: /absolute path/ },
  { name: 'tar pax path record with traversal', file: 't4.tar', bytes: () => tarBytes([paxEntry({ path: `../../${MARK}-4` }), file('innocent.txt')]), expect: 'error', pattern: /"\.\." segment/ },
  { name: 'tar backslash traversal', file: 't5.tar', bytes: () => tarBytes([file(`..\\..\\${MARK}-5`)]), expect: 'error', pattern: /backslash/ },
  // ---- tar: links
  { name: 'tar symlink escape then write through it', file: 't6.tar', bytes: () => tarBytes([{ name: 'up', type: '2', linkname: '../..' }, file(`up/${MARK}-6`)]), expect: 'error', pattern: /symbolic link .*outside the destination/ },
  { name: 'tar symlink to an absolute directory then write through it', file: 't7.tar', bytes: () => tarBytes([{ name: 'etc', type: '2', linkname: '/tmp' }, file(`etc/${MARK}-7`)]), expect: 'error', pattern: /absolute path/ },
  { name: 'tar symlink inside DEST then write through it', file: 't8.tar', bytes: () => tarBytes([{ name: 'a/', type: '5' }, { name: 'a/up', type: '2', linkname: '..' }, file('a/up/a/up/x.txt')]), expect: 'error', pattern: /symbolic link/ },
  { name: 'tar symlink with .. after a name', file: 't9.tar', bytes: () => tarBytes([{ name: 'a/l', type: '2', linkname: 'b/../../..' }]), expect: 'error', pattern: /"\.\." after a name/ },
  { name: 'tar hardlink to /etc/passwd', file: 't10.tar', bytes: () => tarBytes([{ name: 'passwd', type: '1', linkname: '/etc/passwd' }]), expect: 'error', pattern: /hard link .*outside the destination/ },
  { name: 'tar hardlink to a sibling outside DEST', file: 't11.tar', bytes: () => tarBytes([{ name: 'keep', type: '1', linkname: '../outside/keep.txt' }]), expect: 'error', pattern: /hard link/ },
  { name: 'tar symlink then hardlink through it', file: 't12.tar', bytes: () => tarBytes([{ name: 's', type: '2', linkname: '.' }, file('f.txt'), { name: 'h', type: '1', linkname: 's/f.txt' }]), expect: 'error', pattern: /hard link/ },
  // ---- tar: special files
  { name: 'tar character device', file: 't13.tar', bytes: () => tarBytes([{ name: 'null', type: '3' }]), expect: 'error', pattern: /character device/ },
  { name: 'tar block device', file: 't14.tar', bytes: () => tarBytes([{ name: 'sda', type: '4' }]), expect: 'error', pattern: /block device/ },
  { name: 'tar FIFO', file: 't15.tar', bytes: () => tarBytes([{ name: 'pipe', type: '6' }]), expect: 'error', pattern: /FIFO/ },
  // ---- tar: sizes and truncation
  { name: 'tar entry declaring 8 EiB (base-256)', file: 't16.tar', bytes: () => tarBytes([{ name: 'huge.bin', size: 2n ** 63n - 1n }], { end: false }), expect: 'error', pattern: /huge\.bin|safe integer range/ },
  { name: 'tgz entry declaring 8 EiB (base-256)', file: 't17.tgz', bytes: () => gz(tarBytes([{ name: 'huge.bin', size: 8n * 2n ** 60n }], { end: false })), expect: 'error', pattern: /huge\.bin|safe integer range/ },
  { name: 'tar declared size beyond the data', file: 't18.tar', bytes: () => Buffer.concat([tarHeader({ name: 'short.bin', size: 10_000n }), Buffer.alloc(512, 1)]), expect: 'error', pattern: /Failed to unpack archive file t18\.tar/ },
  // Found by this corpus: node-tar dropped the partial last block, and the run succeeded with b.txt missing.
  { name: 'tar cut inside a header', file: 't19.tar', bytes: () => tarBytes([file('a.txt', 'aaa'), file('b.txt', 'bbb')]).subarray(0, 1024 + 200), expect: 'error', pattern: /Failed to unpack archive file t19\.tar/ },
  { name: 'tgz cut in the middle of the gzip stream', file: 't20.tar.gz', bytes: () => { const whole = gz(tarBytes([file('a.bin', 'q'.repeat(100_000))])); return whole.subarray(0, whole.length >> 1); }, expect: 'error', pattern: /Failed to unpack archive file t20\.tar\.gz/ },
  { name: 'tar of zeros only (no entries)', file: 't21.tar', bytes: () => Buffer.alloc(10_240), expect: 'error', pattern: /t21\.tar/ },
  { name: 'tgz that is an HTML page', file: 't22.tar.gz', bytes: () => Buffer.from('<!DOCTYPE html><html><body>Sign in</body></html>'), expect: 'error', pattern: /t22\.tar\.gz/ },
  {
    name: 'tgz bomb: 8 GiB of zeros declared, over the byte limit', file: 't23.tar.gz',
    bytes: () => gzipMember(deflatedZeros(64, tarHeader({ name: 'zeros.bin', size: 8n * BigInt(GiB) }))),
    env: { STORAGE_INITIALIZER_ARCHIVE_MAX_BYTES: '256MiB' }, expect: 'error', pattern: /zeros\.bin.*declares 8589934592 bytes/,
  },
  // ---- zip: names and modes
  { name: 'zip ../ traversal', file: 'z1.zip', bytes: () => zipBytes([{ name: 'ok.txt', data: Buffer.from('x') }, { name: `../../${MARK}-z1`, data: Buffer.from('x') }]), expect: 'error', pattern: /"\.\." segment/ },
  { name: 'zip absolute path', file: 'z2.zip', bytes: () => zipBytes([{ name: `/tmp/${MARK}-z2`, data: Buffer.from('x') }]), expect: 'error', pattern: /absolute path/ },
  { name: 'zip backslash path', file: 'z3.zip', bytes: () => zipBytes([{ name: `..\\..\\${MARK}-z3`, data: Buffer.from('x') }]), expect: 'error', pattern: /backslash|"\.\." segment/ },
  { name: 'zip symlink to /etc/passwd', file: 'z4.zip', bytes: () => zipBytes([{ name: 'passwd', data: Buffer.from('/etc/passwd'), mode: LINK }]), expect: 'error', pattern: /absolute path/ },
  { name: 'zip symlink escape then write through it', file: 'z5.zip', bytes: () => zipBytes([{ name: 'up', data: Buffer.from('..'), mode: LINK }, { name: `up/${MARK}-z5`, data: Buffer.from('x') }]), expect: 'error', pattern: /outside the destination/ },
  { name: 'zip character device', file: 'z6.zip', bytes: () => zipBytes([{ name: 'dev', mode: 0o020644 }]), expect: 'error', pattern: /device/ },
  { name: 'zip FIFO', file: 'z7.zip', bytes: () => zipBytes([{ name: 'fifo', mode: 0o010644 }]), expect: 'error', pattern: /FIFO|pipe/ },
  { name: 'zip NUL in a name', file: 'z8.zip', bytes: () => zipBytes([{ name: 'a\0/../../x', data: Buffer.from('x') }]), expect: 'error', pattern: /NUL|z8\.zip/ },
  // ---- zip: bombs and lies
  {
    name: 'zip bomb: 10 GiB of zeros declared in 3 MB (3 overlapping 3.4 GiB entries), over the byte limit', file: 'z9.zip',
    bytes: () => { const body = deflatedZeros(3400); return zipBytes([{ name: 'a.bin', compressed: body, uncompressedSize: 3400 * MiB, crc: 0 }, { name: 'b.bin', compressed: body, uncompressedSize: 3400 * MiB, crc: 0, sameDataAs: 0 }, { name: 'c.bin', compressed: body, uncompressedSize: 3400 * MiB, crc: 0, sameDataAs: 0 }]); },
    env: { STORAGE_INITIALIZER_ARCHIVE_MAX_BYTES: '1GiB' }, expect: 'error', pattern: /declares \d+ bytes/,
  },
  {
    name: 'zip bomb whose headers lie: 3.4 GiB of zeros declared as 1000 bytes', file: 'z10.zip',
    bytes: () => zipBytes([{ name: 'liar.bin', compressed: deflatedZeros(3400), uncompressedSize: 1000, crc: 0 }]),
    expect: 'error', pattern: /z10\.zip/,
  },
  {
    name: 'zip bomb of 1000 overlapping entries under the default limits (ratio)', file: 'z11.zip',
    bytes: () => { const body = deflatedZeros(16); const crc = zlib.crc32(Buffer.alloc(16 * MiB)); return zipBytes(Array.from({ length: 1000 }, (_, i) => ({ name: `f${i}.bin`, compressed: body, uncompressedSize: 16 * MiB, crc, ...(i === 0 ? {} : { sameDataAs: 0 }) }))); },
    expect: 'error', pattern: /times its own size|decompression bomb|overlap|z11\.zip/,
  },
  {
    name: 'nested zip bomb: only the outer layer is unpacked', file: 'z12.zip',
    bytes: () => {
      const kernel = zipBytes([{ name: 'zeros.bin', compressed: deflatedZeros(64), uncompressedSize: 64 * MiB, crc: zlib.crc32(Buffer.alloc(64 * MiB)) }]);
      const layer = (inner: Buffer, prefix: string): Buffer => zipBytes(Array.from({ length: 10 }, (_, i) => ({ name: `${prefix}${i}.zip`, data: inner })));
      return layer(layer(kernel, 'l2-'), 'l1-');
    },
    expect: 'safe',
    check: async (dest) => {
      const names = (await readdir(dest)).sort();
      assert.deepEqual(names, Array.from({ length: 10 }, (_, i) => `l1-${i}.zip`).sort());
      for (const name of names) assert.ok((await lstat(path.join(dest, name))).size < MiB, 'inner archives stay packed');
    },
  },
  { name: 'zip cut in half', file: 'z13.zip', bytes: () => { const whole = zipBytes([{ name: 'a.bin', data: Buffer.alloc(50_000, 7) }]); return whole.subarray(0, whole.length >> 1); }, expect: 'error', pattern: /Failed to unpack archive file z13\.zip/ },
  { name: 'zip whose end record claims 65535 entries', file: 'z14.zip', bytes: () => { const b = zipBytes([{ name: 'a.txt', data: Buffer.from('a') }]); b.writeUInt16LE(0xffff, b.length - 22 + 8); b.writeUInt16LE(0xffff, b.length - 22 + 10); return b; }, expect: 'error', pattern: /z14\.zip/ },
  { name: 'zip with a wrong CRC', file: 'z15.zip', bytes: () => zipBytes([{ name: 'a.bin', data: Buffer.from('payload'), crc: 12345 }]), expect: 'error', pattern: /z15\.zip/ },
  { name: 'zip that is random bytes', file: 'z16.zip', bytes: () => Buffer.from('PK\u0003\u0004 but nothing after it'), expect: 'error', pattern: /z16\.zip/ },
];

describe('hostile archives over HTTP (nginx) through the CLI', { skip: skipWithout('nginx'), concurrency: 3 }, () => {
  let nginx: NginxServer;
  let sandboxes: Awaited<ReturnType<typeof sandboxRoot>>;
  const markers = CASES.map((_, i) => `${MARK}-${i}`).concat(['1', '2', '3', '4', '5', '6', '7', 'z1', 'z2', 'z3', 'z5'].map((s) => `${MARK}-${s}`));

  before(async () => {
    sandboxes = await sandboxRoot('si-hostile-archives-');
    const root = path.join(sandboxes.root, 'www');
    await mkdir(root);
    for (const c of CASES) await writeFile(path.join(root, c.file), c.bytes());
    nginx = await startNginx({ root });
  });
  after(async () => {
    await nginx.stop();
    await sandboxes.dispose();
  });

  for (const c of CASES) {
    it(`${c.name}: ${c.expect}`, async () => {
      const box = await newSandbox(sandboxes.root);
      const before = await box.snapshot();
      const result = await runCli([`${nginx.httpUrl}/${c.file}`, box.dest], { env: c.env ?? {}, timeoutMs: DEADLINE_MS });
      const outcome = verdict(result);
      report('archives', c.name, outcome, await escaped(box, before, markers));
      assert.equal(outcome, c.expect, result.stderr);
      if (outcome === 'error') {
        if (c.pattern !== undefined) assert.match(errorLine(result), c.pattern);
        // The staging directory is discarded: a refused archive leaves at most the archive itself.
        const left = [...(await hashTree(box.dest).catch(() => new Map<string, string>())).keys()];
        assert.ok(left.every((k) => k === c.file), `left in DEST: ${left.join(', ')}`);
      }
      await c.check?.(box.dest);
    });
  }
});
