/**
 * Upstream's rule: when a download produced exactly one file and it is an archive, its contents
 * replace it in DEST. Extraction goes to a staging directory first, so a refused or corrupt
 * archive leaves no half-unpacked tree behind in DEST.
 */
import { mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { archiveFormatFromName, extractArchive, type ArchiveLimits } from '../archive/index.js';
import { describeError, localIO } from '../errors.js';
import type { Logger } from '../log.js';

export interface UnpackResult {
  files: number;
  bytes: number;
}

/** Unpacks `file` into `dest` when its name says it is an archive; undefined when it is not one. */
export async function unpackIfArchive(file: string, dest: string, limits: ArchiveLimits, log: Logger, signal: AbortSignal): Promise<UnpackResult | undefined> {
  if (archiveFormatFromName(path.basename(file)) === undefined) return undefined;
  log.info(`unpacking archive ${path.basename(file)}`);
  const staging = await mkdtemp(path.join(dest, '.unpack-'));
  try {
    const result = await extractArchive(file, staging, limits, signal);
    await rm(file, { force: true });
    for (const name of await readdir(staging)) {
      const target = path.join(dest, name);
      // A re-run replaces what an earlier run unpacked.
      await rm(target, { recursive: true, force: true });
      await rename(path.join(staging, name), target).catch((err: unknown) => {
        throw localIO(`cannot move unpacked ${name} into ${dest}: ${describeError(err)}`, err);
      });
    }
    log.info(`unpacked ${result.files} file(s) from ${path.basename(file)}`);
    return { files: result.files, bytes: result.bytes };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
