/**
 * Turns a listing into the files to write: which objects belong to the URI (directory-boundary
 * prefixes, single objects), where each lands (traversal-proof paths), and which the filters keep.
 */
import { invalidInput, notFound } from '../errors.js';
import type { ObjectSource, RemoteObject } from '../sources/types.js';
import { PART_SUFFIX } from './file-job.js';
import { createPathFilter } from './fnmatch.js';
import { journalPath } from './resume-journal.js';
import { resolveInside, toSafeSegments } from './safe-path.js';

export interface PlannedFile {
  object: RemoteObject;
  /** Path relative to the destination, '/'-separated. */
  relativePath: string;
  segments: string[];
  /** Absolute local path. */
  localPath: string;
}

export interface Plan {
  files: PlannedFile[];
  /** The URI named exactly one object (filters were not applied). */
  singleObject: boolean;
  /** Bytes of the files whose size is known. */
  totalBytes: number;
}

export interface PlanOptions {
  dest: string;
  allow: readonly string[];
  ignore: readonly string[];
}

/** 'a/b/c' -> 'a/b'; 'a' -> ''. */
function parentOf(relativePath: string): string {
  return relativePath.slice(0, Math.max(relativePath.lastIndexOf('/'), 0));
}

function baseName(key: string): string {
  const trimmed = key.replace(/\/+$/, '');
  return trimmed.slice(trimmed.lastIndexOf('/') + 1);
}

/**
 * The path of `key` below `prefix`, or undefined when the key is not inside the prefix *as a
 * directory*: prefix "models/iris" holds "models/iris/x" but never "models/iris2/x".
 */
export function relativeKey(prefix: string, key: string): string | undefined {
  const dir = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
  return key.startsWith(dir) ? key.slice(dir.length) : undefined;
}

/** The engine writes `<file>.part` and `<file>.part.json` beside each file while it downloads. */
const TEMP_SUFFIXES = [PART_SUFFIX, journalPath(PART_SUFFIX)];
const MAX_NAME_BYTES = 255 - PART_SUFFIX.length;

export function planDownloads(source: Pick<ObjectSource, 'prefix' | 'displayUri' | 'name'>, objects: readonly RemoteObject[], options: PlanOptions): Plan {
  const exact = source.prefix === '' ? undefined : objects.find((o) => o.key === source.prefix && !o.key.endsWith('/'));
  const selected: { object: RemoteObject; relativePath: string }[] = [];
  if (exact !== undefined) {
    selected.push({ object: exact, relativePath: baseName(exact.key) });
  } else {
    const keep = createPathFilter(options.allow, options.ignore);
    for (const object of objects) {
      if (object.key.endsWith('/')) continue; // a directory marker, not a file
      const rel = relativeKey(source.prefix, object.key);
      if (rel === undefined || rel === '') continue;
      if (keep(rel)) selected.push({ object, relativePath: rel });
    }
  }
  if (selected.length === 0) {
    const filtered = exact === undefined && (options.allow.length > 0 || options.ignore.length > 0);
    throw notFound(`Failed to fetch model. No model found in ${source.displayUri}${filtered ? ' (after applying STORAGE_ALLOW_PATTERNS/STORAGE_IGNORE_PATTERNS)' : ''}. Check that the ${source.name} path exists and is not empty.`);
  }

  const files: PlannedFile[] = [];
  const filePaths = new Set<string>();
  const dirPaths = new Set<string>();
  let totalBytes = 0;
  for (const { object, relativePath } of selected) {
    const segments = toSafeSegments(relativePath, 'object key');
    const normalized = segments.join('/');
    // The name must leave room for the temporary suffix, or the write fails midway with ENAMETOOLONG.
    if (Buffer.byteLength(segments[segments.length - 1] ?? '') > MAX_NAME_BYTES) {
      throw invalidInput(`refusing object key ${JSON.stringify(object.key.slice(0, 200))}: its file name is longer than ${MAX_NAME_BYTES} bytes (255 less the "${PART_SUFFIX}" suffix of a download in progress)`);
    }
    if (filePaths.has(normalized)) throw invalidInput(`refusing object key ${JSON.stringify(object.key)}: another key maps to the same file ${JSON.stringify(normalized)}`);
    filePaths.add(normalized);
    // Ancestors from the deepest up, stopping at one already known (its own ancestors are too): one
    // lookup per file in the usual case, where joining every prefix cost O(depth^2) per file.
    for (let dir = parentOf(normalized); dir !== '' && !dirPaths.has(dir); dir = parentOf(dir)) dirPaths.add(dir);
    files.push({ object, relativePath: normalized, segments, localPath: resolveInside(options.dest, segments) });
    totalBytes += object.size ?? 0;
  }
  for (const path of filePaths) {
    if (dirPaths.has(path)) throw invalidInput(`refusing object key for ${JSON.stringify(path)}: it is both a file and a directory in the listing`);
    // `x.part` beside `x` would be overwritten by, or published over, the download of `x`.
    const suffix = TEMP_SUFFIXES.find((s) => path.endsWith(s) && filePaths.has(path.slice(0, -s.length)));
    if (suffix !== undefined) throw invalidInput(`refusing object key for ${JSON.stringify(path)}: it is the name of the temporary file of ${JSON.stringify(path.slice(0, -suffix.length))}, which is also in the listing`);
  }
  return { files, singleObject: exact !== undefined, totalBytes };
}
