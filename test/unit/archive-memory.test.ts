import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { skipWithout } from '../helpers/system.js';

/*
 * Extraction streams: a 256 MiB archive member unpacks in a child process whose peak RSS stays
 * far below the data's size. The child's baseline (Node + tsx + our modules) is ~85 MB here.
 */

const SIZE = 256 * 2 ** 20;
const MAX_RSS_MB = 200;
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const root = await mkdtemp(path.join(os.tmpdir(), 'archive-memory-'));
after(() => rm(root, { recursive: true, force: true }));


const src = path.join(root, 'src');
await mkdir(src);
// Sparse: reads as zeros without using disk.
await writeFile(path.join(src, 'zeros.bin'), '');
await truncate(path.join(src, 'zeros.bin'), SIZE);

/** Extracts in a fresh Node process; returns its peak RSS in MB and the result. */
function extractInChild(file: string): { maxRssMb: number; bytes: number } {
  const dest = path.join(root, `out-${path.basename(file)}`);
  const script = `
    import { extractArchive } from ${JSON.stringify(path.join(repo, 'src', 'archive', 'extract.ts'))};
    const r = await extractArchive(${JSON.stringify(file)}, ${JSON.stringify(dest)}, { maxBytes: 2 ** 40, maxEntries: 10, maxRatio: 1e9 }, new AbortController().signal);
    console.log(JSON.stringify({ bytes: r.bytes, maxRssMb: process.resourceUsage().maxRSS / 1024 }));
  `;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: repo, encoding: 'utf8' });
  execFileSync('rm', ['-rf', dest]);
  return JSON.parse(out.trim().split('\n').pop() ?? '{}') as { maxRssMb: number; bytes: number };
}

describe('extraction memory stays bounded', () => {
  const variants: { name: string; make: (file: string) => void; tool: string }[] = [
    { name: 'zeros.tar.gz', tool: 'gzip', make: (f) => { execFileSync('sh', ['-c', `tar -cf - -C "${src}" . | gzip -1 > "${f}"`]); } },
    { name: 'zeros.tar.bz2', tool: 'bzip2', make: (f) => { execFileSync('tar', ['-cjf', f, '-C', src, '.']); } },
    { name: 'zeros.tar.xz', tool: 'xz', make: (f) => { execFileSync('sh', ['-c', `tar -cf - -C "${src}" . | xz -0 -T1 > "${f}"`]); } },
    { name: 'zeros.tar.zst', tool: 'zstd', make: (f) => { execFileSync('tar', ['--zstd', '-cf', f, '-C', src, '.']); } },
    { name: 'zeros.zip', tool: 'zip', make: (f) => { execFileSync('zip', ['-q1', f, 'zeros.bin'], { cwd: src }); } },
  ];
  for (const variant of variants) {
    it(`${variant.name}: ${SIZE / 2 ** 20} MiB unpacks under ${MAX_RSS_MB} MB RSS`, { skip: skipWithout(variant.tool) }, () => {
      const file = path.join(root, variant.name);
      variant.make(file);
      const { maxRssMb, bytes } = extractInChild(file);
      execFileSync('rm', ['-f', file]);
      assert.equal(bytes, SIZE);
      assert.ok(maxRssMb < MAX_RSS_MB, `peak RSS ${maxRssMb.toFixed(0)} MB`);
    });
  }
});
