/**
 * Evidence for docs/reliability.md. The fault matrix, crash trials, hostile corpus and local-fault
 * tests call `record` for every case they run; when RELIABILITY_OUT names a directory (the report
 * script sets it), each record is appended as one JSON line to `<dir>/<suite>.jsonl`. Without it
 * recording is a no-op, so the tests run the same in CI and in the report.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';

export type ReliabilitySuite = 'fault-matrix' | 'crash-restart' | 'hostile' | 'local-faults' | 'secrets';

export function record(suite: ReliabilitySuite, entry: Readonly<Record<string, unknown>>): void {
  const dir = process.env.RELIABILITY_OUT;
  if (dir === undefined || dir === '') return;
  mkdirSync(dir, { recursive: true });
  appendFileSync(path.join(dir, `${suite}.jsonl`), `${JSON.stringify(entry)}\n`);
}
