/**
 * The record beside a `.part` file that lets a restarted init container resume: which version of
 * which object it holds and how far each ranged part got. It is written only after the bytes it
 * claims were written, so it may lag the data (a few bytes fetched twice) but never lead it.
 */
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import type { RemoteObject } from '../sources/types.js';

export interface JournalState {
  size: number;
  identity: string;
  partSize: number;
  /** Bytes completed from the start of each part. */
  done: number[];
}

const FORMAT = 1;

/** What makes two listings of an object the same bytes: size plus version/etag/checksum. */
export function objectIdentity(object: RemoteObject): string {
  return JSON.stringify([object.size ?? null, object.version ?? null, object.checksum?.hex ?? null]);
}

export function journalPath(partPath: string): string {
  return `${partPath}.json`;
}

/** The journal, 'absent' when there is none, or 'invalid' when it is torn or from another format. */
export async function readJournal(partPath: string): Promise<JournalState | 'absent' | 'invalid'> {
  let text: string;
  try {
    text = await readFile(journalPath(partPath), 'utf8');
  } catch {
    return 'absent';
  }
  try {
    const parsed = JSON.parse(text) as Partial<JournalState> & { format?: number };
    if (parsed.format !== FORMAT || typeof parsed.size !== 'number' || typeof parsed.identity !== 'string'
      || typeof parsed.partSize !== 'number' || !Array.isArray(parsed.done)) return 'invalid';
    if (!parsed.done.every((n) => Number.isSafeInteger(n) && n >= 0)) return 'invalid';
    return { size: parsed.size, identity: parsed.identity, partSize: parsed.partSize, done: parsed.done };
  } catch {
    return 'invalid'; // torn: start the file over
  }
}

export async function writeJournal(partPath: string, state: JournalState): Promise<void> {
  const path = journalPath(partPath);
  const tmp = `${path}.tmp`;
  await writeFile(tmp, JSON.stringify({ format: FORMAT, ...state }));
  await rename(tmp, path);
}

export async function removeJournal(partPath: string): Promise<void> {
  await rm(journalPath(partPath), { force: true });
  await rm(`${journalPath(partPath)}.tmp`, { force: true });
}
