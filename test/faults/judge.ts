/**
 * Judges one run of the CLI against its fixture: which files under their final names are
 * byte-identical, which are wrong (and by how many bytes), and how many retries the log shows.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { CliResult } from '../helpers/cli.js';
import type { Tree } from '../helpers/tree.js';

/** Work files a run may leave for the next one to resume; never taken for a finished file. */
const WORK_FILE = /\.part(\.json(\.tmp)?)?$/;

export interface TreeVerdict {
  /** Final-named files equal to the fixture. */
  filesVerified: number;
  bytesVerified: number;
  /** Final-named files that differ from the fixture or are not in it. */
  wrong: string[];
  /** Bytes of final-named files that differ from the fixture (a longer or shorter file counts the difference too). */
  bytesLost: number;
  /** Fixture files that are not under their final name. */
  missing: string[];
  /** Work files left behind (allowed after a failed run). */
  workFiles: string[];
}

async function walk(root: string, rel = ''): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(path.join(root, rel), { withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const entry of entries) {
    const key = rel === '' ? entry.name : `${rel}/${entry.name}`;
    if (entry.isDirectory()) out.push(...(await walk(root, key)));
    else out.push(key);
  }
  return out;
}

function differingBytes(a: Buffer, b: Buffer): number {
  let n = Math.abs(a.length - b.length);
  const common = Math.min(a.length, b.length);
  for (let i = 0; i < common; i++) if (a[i] !== b[i]) n++;
  return n;
}

export async function judgeTree(dest: string, expected: Tree): Promise<TreeVerdict> {
  const verdict: TreeVerdict = { filesVerified: 0, bytesVerified: 0, wrong: [], bytesLost: 0, missing: [], workFiles: [] };
  const present = new Set<string>();
  for (const file of await walk(dest)) {
    if (WORK_FILE.test(file)) {
      verdict.workFiles.push(file);
      continue;
    }
    present.add(file);
    const want = expected.get(file);
    const got = await readFile(path.join(dest, ...file.split('/')));
    if (want === undefined) {
      verdict.wrong.push(file);
      verdict.bytesLost += got.length;
    } else if (got.equals(want)) {
      verdict.filesVerified++;
      verdict.bytesVerified += got.length;
    } else {
      verdict.wrong.push(file);
      verdict.bytesLost += differingBytes(got, want);
    }
  }
  for (const file of expected.keys()) if (!present.has(file)) verdict.missing.push(file);
  return verdict;
}

/** Retries the run logged: resumed or repeated requests, and whole files fetched again after a checksum mismatch. */
export function retriesLogged(result: CliResult): number {
  return result.stderr.split('\n').filter((line) => / WARN retrying /.test(line) || / WARN .*; downloading .* again$/.test(line)).length;
}
