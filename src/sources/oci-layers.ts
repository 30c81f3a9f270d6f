/**
 * Turning unpacked layers into one tree, as a container runtime's overlay would: each layer is
 * laid over the ones below it, and its whiteouts remove what lower layers had:
 *  - `.wh.NAME` deletes NAME (file or whole directory) from the lower layers;
 *  - `.wh..wh..opq` in a directory empties that directory of lower-layer content.
 * Whiteouts never act on entries of their own layer (each layer is unpacked on its own and then
 * merged) and never appear in the result. Nothing here follows a symbolic link: entries are
 * inspected with lstat and only real directories are descended into.
 */
import { lstat, readdir, readlink, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { describeError, invalidInput, localIO } from '../errors.js';

const OPAQUE = '.wh..wh..opq';
const WHITEOUT = '.wh.';

async function lstatOrUndefined(file: string): Promise<Awaited<ReturnType<typeof lstat>> | undefined> {
  try {
    return await lstat(file);
  } catch {
    return undefined;
  }
}

async function clearDirectory(dir: string): Promise<void> {
  for (const name of await readdir(dir)) await rm(path.join(dir, name), { recursive: true, force: true });
}

/** Lays the unpacked layer `layerDir` over the merged tree `mergedDir`, consuming layerDir's entries. */
export async function applyLayer(layerDir: string, mergedDir: string): Promise<void> {
  const entries = await readdir(layerDir, { withFileTypes: true });
  const names = new Set(entries.map((e) => e.name));
  if (names.has(OPAQUE)) await clearDirectory(mergedDir);
  for (const entry of entries) {
    if (!entry.name.startsWith(WHITEOUT) || entry.name === OPAQUE) continue;
    const target = entry.name.slice(WHITEOUT.length);
    if (target === '' || target === '.' || target === '..' || target.startsWith(WHITEOUT)) {
      throw invalidInput(`refusing OCI layer whiteout ${JSON.stringify(entry.name)}: it names no removable entry`);
    }
    await rm(path.join(mergedDir, target), { recursive: true, force: true });
  }
  for (const entry of entries) {
    if (entry.name.startsWith(WHITEOUT)) continue;
    const from = path.join(layerDir, entry.name);
    const to = path.join(mergedDir, entry.name);
    const existing = await lstatOrUndefined(to);
    if (entry.isDirectory() && existing?.isDirectory() === true) {
      await applyLayer(from, to);
      continue;
    }
    if (existing !== undefined) await rm(to, { recursive: true, force: true });
    try {
      await rename(from, to);
    } catch (err) {
      throw localIO(`cannot merge OCI layer entry ${entry.name} into ${mergedDir}: ${describeError(err)}`, err);
    }
    // A directory moved whole may still hold whiteouts for lower layers that had nothing there.
    if (entry.isDirectory()) await dropWhiteouts(to);
  }
}

async function dropWhiteouts(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.name.startsWith(WHITEOUT)) await rm(full, { recursive: true, force: true });
    else if (entry.isDirectory()) await dropWhiteouts(full);
  }
}

/**
 * The part of the merged image that is the model: `models/` when the image has that directory
 * (KServe's modelcar convention, `/models`), else the whole tree.
 */
export async function modelRoot(mergedDir: string): Promise<string> {
  const models = path.join(mergedDir, 'models');
  return (await lstatOrUndefined(models))?.isDirectory() === true ? models : mergedDir;
}

/**
 * Counts files and bytes under `root` and checks that every symbolic link stays inside it: the
 * extractor let a link climb to the top of its layer, but once `models/` is cut out a link in it
 * to `../etc/x` would point outside the destination.
 */
export async function checkTree(root: string, depth = 0, rel = ''): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const entry of await readdir(path.join(root, rel), { withFileTypes: true })) {
    const name = rel === '' ? entry.name : `${rel}/${entry.name}`;
    if (entry.isDirectory()) {
      const sub = await checkTree(root, depth + 1, name);
      files += sub.files;
      bytes += sub.bytes;
    } else if (entry.isSymbolicLink()) {
      const target = await readlink(path.join(root, name));
      const ups = target.split('/').filter((s) => s === '..').length;
      if (path.isAbsolute(target) || ups > depth) {
        throw invalidInput(`refusing OCI image entry ${JSON.stringify(name)}: it is a symbolic link to ${JSON.stringify(target)}, outside the model directory`);
      }
      files++;
    } else {
      files++;
      bytes += (await lstat(path.join(root, name))).size;
    }
  }
  return { files, bytes };
}

/** Moves every entry of `from` into `dest`, replacing entries of the same name (a re-run). */
export async function moveContents(from: string, dest: string, keep: (name: string) => boolean): Promise<void> {
  for (const name of await readdir(from)) {
    if (!keep(name)) continue;
    const target = path.join(dest, name);
    await rm(target, { recursive: true, force: true });
    await rename(path.join(from, name), target).catch((err: unknown) => {
      throw localIO(`cannot move ${name} into ${dest}: ${describeError(err)}`, err);
    });
  }
}
