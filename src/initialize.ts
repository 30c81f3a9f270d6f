/**
 * The job: for each (uri, dest) pair, in order, find the source, bring the model into dest, and
 * finish it (unpack a lone archive). Errors propagate; the CLI turns them into one line.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { localFailure, withLocalAdvice } from './errors.js';
import { decryptModelFiles } from './finish/confidential.js';
import { unpackIfArchive } from './finish/unpack.js';
import type { Logger } from './log.js';
import type { Settings } from './settings/settings.js';
import { createSource } from './sources/registry.js';
import type { Context, Summary } from './sources/types.js';
import { transferObjects } from './transfer/engine.js';
import { parseStorageUri } from './uri/parse.js';
import { redactUri } from './uri/redact.js';

export interface Pair {
  uri: string;
  dest: string;
}

export interface RunSummary extends Summary {
  /** Bytes that came over the network (the rest were already on disk). */
  fetchedBytes: number;
  seconds: number;
}

async function copyOne(pair: Pair, ctx: Context): Promise<RunSummary> {
  const { settings, log } = ctx;
  const shown = redactUri(pair.uri);
  const location = parseStorageUri(pair.uri, { existsLocally: existsSync(pair.uri) });
  if (location.scheme === 'models-mount') {
    log.info(`${shown} is already mounted; nothing to download`);
    return { files: 0, bytes: 0, fetchedBytes: 0, seconds: 0 };
  }
  log.info(`Copying contents of ${shown} to local`);
  const started = Date.now();
  const source = await createSource(location, settings, log);
  try {
    await mkdir(pair.dest, { recursive: true }).catch((err: unknown) => {
      throw localFailure('create destination', pair.dest, err);
    });
    if (source.kind === 'tree') {
      const summary = await source.materialize(pair.dest, ctx);
      return { ...summary, fetchedBytes: summary.bytes, seconds: (Date.now() - started) / 1000 };
    }
    const result = await transferObjects(source, pair.dest, ctx);
    const lone = result.plan.files.length === 1 ? result.plan.files[0] : undefined;
    const unpacked = lone === undefined ? undefined
      : await unpackIfArchive(lone.localPath, path.resolve(pair.dest), settings.archive, log, ctx.signal);
    return {
      files: unpacked?.files ?? result.files,
      bytes: unpacked?.bytes ?? result.bytes,
      fetchedBytes: result.fetchedBytes,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await source.close?.();
  }
}

export async function initialize(pairs: readonly Pair[], settings: Settings, log: Logger, signal: AbortSignal): Promise<RunSummary> {
  const ctx: Context = { settings, log, signal };
  const started = Date.now();
  const total: RunSummary = { files: 0, bytes: 0, fetchedBytes: 0, seconds: 0 };
  for (const pair of pairs) {
    const summary = await copyOne(pair, ctx).catch((err: unknown) => { throw withLocalAdvice(err, pair.dest); });
    if (settings.confidential.enabled) {
      await decryptModelFiles(pair.dest, settings, log, signal).catch((err: unknown) => { throw withLocalAdvice(err, pair.dest); });
    }
    log.info(`Successfully copied ${redactUri(pair.uri)} to ${pair.dest}`);
    total.files += summary.files;
    total.bytes += summary.bytes;
    total.fetchedBytes += summary.fetchedBytes;
  }
  total.seconds = (Date.now() - started) / 1000;
  return total;
}
