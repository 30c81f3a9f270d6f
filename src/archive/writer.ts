import { constants } from 'node:fs';
import { copyFile, link, lstat, open, symlink, unlink } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describeError, errorCode, invalidInput, localIO, StorageError } from '../errors.js';
import { resolveInside, SafeDirectories, toSafeSegments } from '../transfer/safe-path.js';
import type { ExtractionBudget } from './limits.js';

const show = (name: string) => JSON.stringify(name.length > 200 ? `${name.slice(0, 200)}...` : name);

/** The InvalidInput error that refuses one entry, naming it and the reason. */
export function refuseEntry(name: string, reason: string): StorageError {
  return invalidInput(`refusing archive entry ${show(name)}: ${reason}`);
}

/** Codes with which a file system says it cannot hard-link; we copy instead. */
const NO_HARDLINK = new Set(['EPERM', 'EXDEV', 'ENOTSUP', 'EOPNOTSUPP', 'EMLINK']);

/**
 * Writes archive entries under `dest`, one at a time, and refuses anything that could reach
 * outside it. Each name goes through toSafeSegments (no "..", no absolute path) and each parent
 * directory through SafeDirectories (never through a symlink). Links are checked so that the
 * tree stays closed under resolution:
 *  - a symlink's target must be relative, made of leading ".." only followed by plain names, and
 *    climb no higher than the link's own depth. With every link in DEST obeying that, any path
 *    through them resolves inside DEST: ".." is only applied to real directories (those that
 *    contain the link), never after passing through another link.
 *  - a hard link must name a regular file this archive already wrote (never a symlink: a second
 *    name for a link elsewhere would resolve differently).
 * Directories are never removed or replaced, so a directory once verified stays real.
 */
export class EntryWriter {
  private readonly dirs: SafeDirectories;
  /** Regular files written so far (segments joined by "/"), the only valid hard link targets. */
  private readonly regularFiles = new Set<string>();
  files = 0;

  constructor(
    private readonly dest: string,
    private readonly budget: ExtractionBudget,
  ) {
    this.dirs = new SafeDirectories(dest);
  }

  /** Creates a directory entry (and its parents). "." and "./" name DEST itself and are skipped. */
  async directory(name: string): Promise<void> {
    if (name.split('/').every((s) => s === '' || s === '.')) return;
    const segments = toSafeSegments(name, 'archive entry');
    // ensureParents creates every segment but the last; a placeholder last segment makes it
    // create the directory itself with the same symlink checks.
    await this.ensureParents(name, [...segments, '.']);
  }

  /** Streams a regular file's data to disk; returns the bytes written. Mode keeps only "executable or not". */
  async file(name: string, executable: boolean, data: Readable | AsyncIterable<Uint8Array>, signal: AbortSignal): Promise<number> {
    const segments = toSafeSegments(name, 'archive entry');
    const full = resolveInside(this.dest, segments);
    await this.ensureParents(name, segments);
    const handle = await this.createReplacing(name, segments, full, () => open(full, 'wx', executable ? 0o755 : 0o644));
    const before = this.budget.bytes;
    try {
      await pipeline(data, this.budget.meter(name), handle.createWriteStream(), { signal });
    } finally {
      // The write stream closes the handle when it finishes or is destroyed; this covers the
      // case where pipeline failed before the write stream took ownership.
      await handle.close().catch(() => undefined);
    }
    this.regularFiles.add(segments.join('/'));
    this.files++;
    return this.budget.bytes - before;
  }

  /** Creates a symbolic link whose target stays inside DEST (see the class comment). */
  async symlink(name: string, target: string): Promise<void> {
    const segments = toSafeSegments(name, 'archive entry');
    const shownTarget = show(target);
    if (target === '') throw refuseEntry(name, 'it is a symbolic link with an empty target');
    if (target.includes('\0')) throw refuseEntry(name, 'its symbolic link target contains a NUL byte');
    if (target.startsWith('/') || /^[A-Za-z]:/.test(target) || target.includes('\\')) {
      throw refuseEntry(name, `it is a symbolic link to ${shownTarget}, an absolute path`);
    }
    const parts = target.split('/').filter((s) => s !== '' && s !== '.');
    const ups = parts.findIndex((s) => s !== '..');
    const climbs = ups === -1 ? parts.length : ups;
    if (parts.slice(climbs).includes('..')) {
      throw refuseEntry(name, `it is a symbolic link to ${shownTarget}, which has ".." after a name (only leading ".." segments are allowed)`);
    }
    if (climbs > segments.length - 1) {
      throw refuseEntry(name, `it is a symbolic link to ${shownTarget}, which points outside the destination`);
    }
    const full = resolveInside(this.dest, segments);
    await this.ensureParents(name, segments);
    await this.createReplacing(name, segments, full, () => symlink(target, full));
    this.files++;
  }

  /** Creates a hard link to a regular file extracted earlier; copies it where links are not possible. */
  async hardlink(name: string, target: string): Promise<void> {
    const segments = toSafeSegments(name, 'archive entry');
    let targetSegments: string[];
    try {
      targetSegments = toSafeSegments(target, 'hard link target');
    } catch {
      throw refuseEntry(name, `it is a hard link to ${show(target)}, outside the destination`);
    }
    const key = targetSegments.join('/');
    if (!this.regularFiles.has(key)) {
      throw refuseEntry(name, `it is a hard link to ${show(target)}, which is not a regular file extracted earlier from this archive`);
    }
    this.files++;
    if (key === segments.join('/')) return; // a link to itself: the file is already there
    const targetFull = resolveInside(this.dest, targetSegments);
    const stat = await lstat(targetFull);
    if (!stat.isFile()) throw refuseEntry(name, `it is a hard link to ${show(target)}, which is no longer a regular file`);
    const full = resolveInside(this.dest, segments);
    await this.ensureParents(name, segments);
    try {
      await this.createReplacing(name, segments, full, () => link(targetFull, full));
    } catch (err) {
      if (!NO_HARDLINK.has(errorCode(err instanceof StorageError ? err.cause : err) ?? '')) throw err;
      this.budget.addBytes(name, stat.size);
      await copyFile(targetFull, full, constants.COPYFILE_EXCL).catch((copyErr: unknown) => {
        throw this.ioError(name, copyErr);
      });
    }
    this.regularFiles.add(segments.join('/'));
  }

  /** Creates the parent directories of an entry, naming the entry if that is refused or fails. */
  private async ensureParents(name: string, segments: readonly string[]): Promise<void> {
    try {
      await this.dirs.ensureParents(segments);
    } catch (err) {
      if (err instanceof StorageError) {
        throw new StorageError(err.kind, `archive entry ${show(name)}: ${err.message}`, { cause: err });
      }
      throw this.ioError(name, err);
    }
  }

  /**
   * Creates a non-directory with `create` (which must fail with EEXIST rather than follow or
   * truncate anything). An earlier entry of the same name is replaced, as tar does; a directory
   * of that name is not, so directories stay the real ones SafeDirectories checked.
   */
  private async createReplacing<T>(name: string, segments: readonly string[], full: string, create: () => Promise<T>): Promise<T> {
    try {
      return await create();
    } catch (err) {
      if (errorCode(err) !== 'EEXIST') throw this.ioError(name, err);
    }
    const stat = await lstat(full);
    if (stat.isDirectory()) throw refuseEntry(name, 'a directory of that name already exists');
    await unlink(full);
    this.regularFiles.delete(segments.join('/'));
    try {
      return await create();
    } catch (err) {
      throw this.ioError(name, err);
    }
  }

  private ioError(name: string, err: unknown): StorageError {
    return localIO(`cannot write archive entry ${show(name)}: ${describeError(err)}`, err);
  }
}
