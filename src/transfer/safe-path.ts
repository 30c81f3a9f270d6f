import { lstat, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { errorCode, invalidInput, localIO } from '../errors.js';

const MAX_SEGMENT_BYTES = 255;

/**
 * Turns a remote key or archive entry name into path segments that cannot leave the destination.
 * Refuses rather than rewrites anything suspicious, so a hostile name is reported, never silently
 * placed somewhere else. `what` names the thing in errors ("object key", "archive entry").
 */
export function toSafeSegments(name: string, what: string): string[] {
  const shown = JSON.stringify(name.length > 200 ? `${name.slice(0, 200)}...` : name);
  if (name.includes('\0')) throw invalidInput(`refusing ${what} ${shown}: it contains a NUL byte`);
  if (name.includes('\\')) throw invalidInput(`refusing ${what} ${shown}: it contains a backslash`);
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) throw invalidInput(`refusing ${what} ${shown}: it is an absolute path`);
  const segments = name.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) throw invalidInput(`refusing ${what} ${shown}: it contains a ".." segment that could escape the destination`);
  if (segments.length === 0) throw invalidInput(`refusing ${what} ${shown}: it names no file`);
  for (const segment of segments) {
    if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) {
      throw invalidInput(`refusing ${what} ${shown}: a path segment is longer than ${MAX_SEGMENT_BYTES} bytes`);
    }
  }
  return segments;
}

/** The absolute local path for safe segments under dest, checked once more to be inside it. */
export function resolveInside(dest: string, segments: readonly string[]): string {
  const root = path.resolve(dest);
  const full = path.join(root, ...segments);
  if (full !== root && !full.startsWith(root + path.sep)) {
    throw invalidInput(`refusing path ${JSON.stringify(segments.join('/'))}: it resolves outside ${root}`);
  }
  return full;
}

/**
 * Creates directories under a root, refusing to pass through a symlink or a non-directory, so a
 * link planted earlier (by an archive entry or a previous run) cannot redirect a write outside.
 * Verified directories are remembered, so a tree of 100k files costs one lstat per directory.
 */
export class SafeDirectories {
  private readonly root: string;
  private readonly verified = new Set<string>();

  constructor(root: string) {
    this.root = path.resolve(root);
    this.verified.add(this.root);
  }

  /** Ensures every directory on the way to `segments` (a file's path) exists and is real. */
  async ensureParents(segments: readonly string[]): Promise<void> {
    let current = this.root;
    for (const segment of segments.slice(0, -1)) {
      current = path.join(current, segment);
      if (this.verified.has(current)) continue;
      await this.ensureRealDirectory(current);
      this.verified.add(current);
    }
  }

  private async ensureRealDirectory(dir: string): Promise<void> {
    try {
      await mkdir(dir);
      return;
    } catch (err) {
      if (errorCode(err) !== 'EEXIST') throw localIO(`cannot create directory ${dir}: ${(err as Error).message}`, err);
    }
    const stat = await lstat(dir);
    if (stat.isSymbolicLink()) throw invalidInput(`refusing to write through symbolic link ${dir}`);
    if (!stat.isDirectory()) throw localIO(`cannot create directory ${dir}: a file of that name exists`);
  }
}
