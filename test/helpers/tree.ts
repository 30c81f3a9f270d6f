/** Fixture trees for tests: write them, read them back, compare them. */
import { createCipheriv, createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** Relative path ('/'-separated) -> content. */
export type Tree = Map<string, Buffer>;

export async function tempDir(prefix = 'si-test-'): Promise<{ dir: string; [Symbol.asyncDispose](): Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  return { dir, [Symbol.asyncDispose]: () => rm(dir, { recursive: true, force: true }) };
}

export async function writeTree(root: string, tree: Tree): Promise<void> {
  for (const [rel, content] of tree) {
    const full = path.join(root, ...rel.split('/'));
    if (rel.endsWith('/')) {
      await mkdir(full, { recursive: true });
      continue;
    }
    await mkdir(path.dirname(full), { recursive: true });
    await writeFile(full, content);
  }
}

/** Every regular file under root, as relative path -> sha256 (hidden temp files included, to catch leftovers). */
export async function hashTree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      const key = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) await walk(full, key);
      else out.set(key, createHash('sha256').update(await readFile(full)).digest('hex'));
    }
  };
  await walk(root, '');
  return out;
}

export function hashOf(tree: Tree): Map<string, string> {
  const out = new Map<string, string>();
  for (const [rel, content] of tree) {
    if (!rel.endsWith('/')) out.set(rel, createHash('sha256').update(content).digest('hex'));
  }
  return out;
}

/** Deterministic pseudo-random bytes (AES-CTR keystream): no two parts of a large file alike, so a misplaced range shows. */
export function randomBytes(size: number, seed = 1): Buffer {
  const key = createHash('sha256').update(`seed:${seed}`).digest().subarray(0, 16);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

/** A not-yet-existing `<parent>/<random>/models` destination, so runs in one test dir never collide. */
export function freshDest(parent: string): string {
  return path.join(parent, String(Math.random()).slice(2), 'models');
}

let caseCounter = 0;
/** A fresh case directory under root: DEST, plus an "outside" sibling that must stay empty. */
export async function newCase(root: string): Promise<{ dir: string; dest: string; outside: string }> {
  const dir = path.join(root, `case-${++caseCounter}`);
  const dest = path.join(dir, 'dest');
  const outside = path.join(dir, 'outside');
  await mkdir(dest, { recursive: true });
  await mkdir(outside);
  return { dir, dest, outside };
}
