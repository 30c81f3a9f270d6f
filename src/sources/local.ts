/**
 * Local paths and PVC mounts. Upstream symlinks each top-level entry into DEST (cheap, and the PVC
 * stays the one copy); copy mode instead reads the files through the engine like any object store,
 * which gives real files, verification of sizes, and resume.
 */
import { createReadStream, type Stats } from 'node:fs';
import { lstat, readdir, realpath, stat, symlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { describeError, errorCode, forbidden, localIO, notFound, StorageError } from '../errors.js';
import { SafeDirectories, toSafeSegments } from '../transfer/safe-path.js';
import type { ByteRange, Context, ObjectSource, RemoteObject, Summary, TreeSource } from './types.js';

function accessError(err: unknown, displayPath: string): StorageError {
  const code = errorCode(err);
  if (code === 'ENOENT' || code === 'ENOTDIR') return notFound(`Failed to fetch model. No model found in ${displayPath}.`, err);
  if (code === 'EACCES' || code === 'EPERM') return forbidden(`local access denied for ${displayPath}: ${describeError(err)}`, err);
  return localIO(`cannot read ${displayPath}: ${describeError(err)}`, err);
}

async function statOrFail(target: string): Promise<Stats> {
  try {
    return await stat(target);
  } catch (err) {
    throw accessError(err, target);
  }
}

/** Copy mode: the directory (or single file) as a listing of objects read through the engine. */
export class LocalCopySource implements ObjectSource {
  readonly kind = 'object';
  readonly name = 'local';
  readonly displayUri: string;
  readonly capabilities = { ranges: true };
  prefix = '';
  private readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.displayUri = this.root;
  }

  async *list(signal: AbortSignal): AsyncIterable<RemoteObject> {
    const top = await statOrFail(this.root);
    if (top.isFile()) {
      this.prefix = path.basename(this.root);
      yield { key: this.prefix, size: top.size, version: String(top.mtimeMs) };
      return;
    }
    yield* this.walk(this.root, '', signal);
  }

  private async *walk(dir: string, relative: string, signal: AbortSignal): AsyncIterable<RemoteObject> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      throw accessError(err, dir);
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (signal.aborted) return;
      const full = path.join(dir, entry.name);
      const key = relative === '' ? entry.name : `${relative}/${entry.name}`;
      // Links are followed to files only: a directory link could loop or lead anywhere.
      const info = entry.isSymbolicLink() ? await stat(full).catch(() => undefined) : await lstat(full);
      if (info === undefined) continue;
      if (info.isDirectory() && !entry.isSymbolicLink()) {
        yield* this.walk(full, key, signal);
      } else if (info.isFile()) {
        yield { key, size: info.size, version: String(info.mtimeMs) };
      }
    }
  }

  read(obj: RemoteObject, range: ByteRange | undefined): Promise<Readable> {
    const file = this.prefix !== '' && obj.key === this.prefix ? this.root : path.join(this.root, ...obj.key.split('/'));
    const stream = createReadStream(file, range === undefined ? {} : { start: range.start, end: range.end - 1 });
    return new Promise((resolve, reject) => {
      stream.once('open', () => { resolve(stream); });
      stream.once('error', (err) => { reject(accessError(err, file)); });
    });
  }
}

/** Upstream's behaviour: DEST/<entry> -> the source's top-level entries (or the file itself). */
export class LocalLinkSource implements TreeSource {
  readonly kind = 'tree';
  readonly name = 'local';
  readonly displayUri: string;
  private readonly root: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.displayUri = this.root;
  }

  async materialize(dest: string, ctx: Context): Promise<Summary> {
    const top = await statOrFail(this.root);
    const real = await realpath(this.root);
    let names: string[];
    if (top.isFile()) {
      names = [path.basename(this.root)];
    } else {
      try {
        names = (await readdir(this.root)).sort();
      } catch (err) {
        throw accessError(err, this.root);
      }
    }
    if (names.length === 0) throw notFound(`Failed to fetch model. No model found in ${this.root}.`);
    const directories = new SafeDirectories(dest);
    for (const name of names) {
      const segments = toSafeSegments(name, 'local entry');
      await directories.ensureParents(segments);
      const target = top.isFile() ? real : path.join(real, name);
      const link = path.join(path.resolve(dest), name);
      try {
        await symlink(target, link);
      } catch (err) {
        // A restarted init container finds its own links: keep one that already points here.
        if (errorCode(err) !== 'EEXIST' || (await realpath(link).catch(() => '')) !== (await realpath(target))) {
          throw localIO(`cannot link ${link} to ${target}: ${describeError(err)}`, err);
        }
      }
      ctx.log.debug(`linked ${link} -> ${target}`);
    }
    return { files: names.length, bytes: 0 };
  }
}
