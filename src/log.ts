/**
 * A small structured logger writing to stderr (stdout stays free for the model server's tooling).
 * Text lines look like upstream's ("<time> <level> <message>"); json lines carry the same fields.
 * Synchronous writes: an init container's log must be complete even when the process exits at once.
 */
import { writeSync } from 'node:fs';
import { escapeUnprintable } from './uri/redact.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'text' | 'json';
export type LogFields = Record<string, string | number | boolean | undefined>;

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** Whether a level would be written (skip building expensive messages). */
  enabled(level: LogLevel): boolean;
}

export interface LoggerOptions {
  level: LogLevel;
  format: LogFormat;
  /** File descriptor to write to; 2 (stderr) by default. */
  fd?: number;
  /** Values that must never be printed (keys, tokens); replaced by "***" wherever they appear. */
  secrets?: readonly string[];
}

export function createLogger(options: LoggerOptions): Logger {
  const fd = options.fd ?? 2;
  const threshold = ORDER[options.level];
  const secrets = (options.secrets ?? []).filter((s) => s.length >= 4);
  const scrub = (text: string): string => secrets.reduce((t, s) => t.split(s).join('***'), text);

  const write = (level: LogLevel, message: string, fields: LogFields | undefined): void => {
    if (ORDER[level] < threshold) return;
    const time = new Date().toISOString();
    let line: string;
    if (options.format === 'json') {
      line = JSON.stringify({ time, level, msg: message, ...fields });
    } else {
      const extra = fields === undefined ? '' : Object.entries(fields)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => ` ${k}=${typeof v === 'string' && /\s/.test(v) ? JSON.stringify(v) : String(v)}`)
        .join('');
      line = `${time} ${level.toUpperCase()} ${message}${extra}`;
    }
    // One record, one line: a control, line-separator or bidi character in a key, URL or server
    // message is shown escaped, so no input can split a record or forge the next one.
    writeSync(fd, `${escapeUnprintable(scrub(line))}\n`);
  };

  return {
    debug: (m, f) => { write('debug', m, f); },
    info: (m, f) => { write('info', m, f); },
    warn: (m, f) => { write('warn', m, f); },
    error: (m, f) => { write('error', m, f); },
    enabled: (level) => ORDER[level] >= threshold,
  };
}

/** A logger that drops everything, for tests and library use. */
export const silentLogger: Logger = {
  debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined,
  enabled: () => false,
};
