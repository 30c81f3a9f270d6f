/**
 * What an earlier run left in the destination, read once with one directory walk. A fresh
 * emptyDir (the usual case) then costs no per-file lookups for complete files or resume journals,
 * which matters when a model is thousands of small files.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';

export class ExistingFiles {
  private constructor(private readonly paths: ReadonlySet<string>) {}

  /** Relative paths ('/'-separated) of every entry under dest; empty when dest does not exist. */
  static async scan(dest: string): Promise<ExistingFiles> {
    const paths = new Set<string>();
    const walk = async (dir: string, rel: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch {
        return; // missing or unreadable: nothing to reuse there
      }
      for (const entry of entries) {
        const key = rel === '' ? entry.name : `${rel}/${entry.name}`;
        paths.add(key);
        if (entry.isDirectory()) await walk(path.join(dir, entry.name), key);
      }
    };
    await walk(dest, '');
    return new ExistingFiles(paths);
  }

  /** False only when the path certainly did not exist when the run started. */
  mayExist(relativePath: string): boolean {
    return this.paths.has(relativePath);
  }
}
