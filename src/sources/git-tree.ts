/**
 * Path safety for a checked-out tree. isomorphic-git writes the files itself, so the commit's tree
 * is checked before checkout (every path a safe relative path with no `.git` segment, every
 * symlink's target inside the tree) and the written tree is checked again afterwards.
 */
import git from 'isomorphic-git';
import fs from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { invalidInput } from '../errors.js';
import type { Logger } from '../log.js';
import { toSafeSegments } from '../transfer/safe-path.js';

const SYMLINK_MODE = '120000';
const TREE_MODE = '040000';
const SUBMODULE_MODE = '160000';

/** Whether a link at `linkPath` (relative, "/"-separated) pointing at `target` stays inside the tree. */
export function linkStaysInside(linkPath: string, target: string): boolean {
  if (target === '' || target.startsWith('/') || target.includes('\\') || /^[A-Za-z]:/.test(target)) return false;
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(linkPath), target));
  return resolved !== '..' && !resolved.startsWith('../') && !resolved.startsWith('/');
}

/** Refuses a tree whose checkout could write outside the directory or into `.git`. */
export async function validateCommitTree(dir: string, treeOid: string, log: Logger): Promise<void> {
  const walk = async (oid: string, prefix: string): Promise<void> => {
    const { tree } = await git.readTree({ fs, dir, oid });
    for (const entry of tree) {
      const rel = prefix === '' ? entry.path : `${prefix}/${entry.path}`;
      const segments = toSafeSegments(rel, 'Git tree entry');
      if (segments.length !== rel.split('/').length || segments.some((s) => s.toLowerCase() === '.git')) {
        throw invalidInput(`refusing Git tree entry ${JSON.stringify(rel)}: it is not a plain relative path`);
      }
      if (entry.mode === TREE_MODE) {
        await walk(entry.oid, rel);
      } else if (entry.mode === SYMLINK_MODE) {
        const { blob } = await git.readBlob({ fs, dir, oid: entry.oid });
        const target = Buffer.from(blob).toString('utf8');
        if (!linkStaysInside(rel, target)) {
          throw invalidInput(`refusing Git symlink ${JSON.stringify(rel)} -> ${JSON.stringify(target)}: it points outside the repository`);
        }
      } else if (entry.mode === SUBMODULE_MODE) {
        log.warn(`Git submodule ${rel} is not fetched (submodules are not supported)`);
      }
    }
  };
  await walk(treeOid, '');
}

/** Checks the written tree again (links stay inside) and counts its files and bytes. */
export async function inspectWorkTree(root: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (rel === '' && entry.name === '.git') continue;
      const full = path.join(dir, entry.name);
      const key = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isSymbolicLink()) {
        const target = await readlink(full);
        if (!linkStaysInside(key, target)) {
          throw invalidInput(`refusing Git symlink ${JSON.stringify(key)} -> ${JSON.stringify(target)}: it points outside the repository`);
        }
        files++;
      } else if (entry.isDirectory()) {
        await walk(full, key);
      } else if (entry.isFile()) {
        files++;
        bytes += (await lstat(full)).size;
      } else {
        throw invalidInput(`refusing Git tree entry ${JSON.stringify(key)}: not a file, directory or link`);
      }
    }
  };
  await walk(root, '');
  return { files, bytes };
}
