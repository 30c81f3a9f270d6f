/** argv -> pairs and flags. Usage mistakes are InvalidInput errors carrying the usage line. */
import { parseArgs } from 'node:util';
import { invalidInput } from '../errors.js';
import type { Pair } from '../initialize.js';
import type { Flags } from '../settings/settings.js';

export const USAGE = 'Usage: storage-initializer [options] SRC_URI DEST_PATH [SRC_URI DEST_PATH ...]';

export type Command =
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'run'; pairs: Pair[]; flags: Flags };

export function parseCommandLine(argv: readonly string[]): Command {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
        concurrency: { type: 'string', short: 'c' },
        'part-size': { type: 'string' },
        'max-attempts': { type: 'string' },
        'log-format': { type: 'string' },
        'log-level': { type: 'string' },
        'local-mode': { type: 'string' },
        'no-progress': { type: 'boolean' },
        deadline: { type: 'string' },
      },
    });
  } catch (err) {
    throw invalidInput(`${(err as Error).message}\n${USAGE}`);
  }
  const { values, positionals } = parsed;
  if (values.help === true) return { kind: 'help' };
  if (values.version === true) return { kind: 'version' };
  if (positionals.length < 2 || positionals.length % 2 !== 0) {
    throw invalidInput(`expected pairs of SRC_URI DEST_PATH, got ${positionals.length} argument(s)\n${USAGE}`);
  }
  const pairs: Pair[] = [];
  for (let i = 0; i < positionals.length; i += 2) {
    const uri = positionals[i] ?? '';
    const dest = positionals[i + 1] ?? '';
    if (dest.trim() === '') throw invalidInput(`destination path for ${uri} is empty\n${USAGE}`);
    pairs.push({ uri, dest });
  }
  return {
    kind: 'run',
    pairs,
    flags: {
      concurrency: values.concurrency,
      partSize: values['part-size'],
      maxAttempts: values['max-attempts'],
      logFormat: values['log-format'],
      logLevel: values['log-level'],
      localMode: values['local-mode'],
      progress: values['no-progress'] === true ? false : undefined,
      deadline: values.deadline,
    },
  };
}
