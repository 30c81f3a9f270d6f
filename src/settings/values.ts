/**
 * Parsers for single setting values. Each failure names the variable (or flag) it came from, so a
 * typo in a Kubernetes manifest is found from one log line.
 */
import { invalidInput } from '../errors.js';

export type Raw = string | boolean | number | undefined;

/** Where a value came from: `S3_MAX_ATTEMPTS`, `--concurrency`, `STORAGE_CONFIG.region`. */
export type Origin = string;

/** A value as quoted in an error: JSON-quoted, cut after `max` characters. */
export function show(value: Raw, max = 60): string {
  const text = String(value);
  return JSON.stringify(text.length > max ? `${text.slice(0, max)}...` : text);
}

export function parseInteger(origin: Origin, value: Raw, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined || value === '') return fallback;
  const n = typeof value === 'number' ? value : /^\s*-?\d+\s*$/.test(String(value)) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw invalidInput(`invalid ${origin}=${show(value)}: expected a whole number`);
  if (n < min || n > max) throw invalidInput(`invalid ${origin}=${show(value)}: expected a number from ${min} to ${max}`);
  return n;
}

/** Seconds as a possibly fractional number ("15", "2.5"), returned in milliseconds. */
export function parseSeconds(origin: Origin, value: Raw, fallbackMs: number): number {
  if (value === undefined || value === '') return fallbackMs;
  const n = typeof value === 'number' ? value : /^\s*\d+(\.\d+)?\s*$/.test(String(value)) ? Number(value) : Number.NaN;
  if (!Number.isFinite(n) || n <= 0) throw invalidInput(`invalid ${origin}=${show(value)}: expected a positive number of seconds`);
  return Math.round(n * 1000);
}

const DURATION_UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * A duration, returned in milliseconds: plain seconds ("90", "2.5") or numbers with units, alone or
 * combined ("500ms", "30s", "30m", "1h30m", "2d"). "0" means none and gives 0, as does unset.
 */
export function parseDuration(origin: Origin, value: Raw): number {
  if (value === undefined || value === '') return 0;
  const text = String(value).trim().toLowerCase();
  const fail = (): never => { throw invalidInput(`invalid ${origin}=${show(value)}: expected seconds or a duration such as 90, 30s, 30m, 1h30m (0 for none)`); };
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(text)) return fail();
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) total += Number(amount) * (DURATION_UNIT_MS[unit ?? ''] ?? Number.NaN);
  if (!Number.isFinite(total) || total > Number.MAX_SAFE_INTEGER) return fail();
  return Math.round(total);
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);
const FALSE = new Set(['0', 'false', 'no', 'off']);

/** JSON booleans and the usual strings, as KServe secrets carry both. */
export function parseBoolean(origin: Origin, value: Raw, fallback: boolean): boolean {
  if (value === undefined || value === '') return fallback;
  if (typeof value === 'boolean') return value;
  const text = String(value).trim().toLowerCase();
  if (TRUE.has(text)) return true;
  if (FALSE.has(text)) return false;
  throw invalidInput(`invalid ${origin}=${show(value)}: expected true or false`);
}

const UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12,
  ki: 2 ** 10, kib: 2 ** 10, mi: 2 ** 20, mib: 2 ** 20, gi: 2 ** 30, gib: 2 ** 30, ti: 2 ** 40, tib: 2 ** 40,
};

/** A byte count: "16777216", "16MiB", "16Mi", "1.5GB". */
export function parseBytes(origin: Origin, value: Raw, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined || value === '') return fallback;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(String(value));
  const unit = match?.[2]?.toLowerCase() ?? '';
  const factor = UNITS[unit];
  if (match === null || factor === undefined) {
    throw invalidInput(`invalid ${origin}=${show(value)}: expected a size such as 16MiB or 1048576`);
  }
  const n = Math.round(Number(match[1]) * factor);
  if (n < min || n > max) throw invalidInput(`invalid ${origin}=${show(value)}: expected a size from ${min} to ${max} bytes`);
  return n;
}

export function parseChoice<T extends string>(origin: Origin, value: Raw, fallback: T, choices: readonly T[]): T {
  if (value === undefined || value === '') return fallback;
  const text = String(value).trim().toLowerCase();
  const found = choices.find((c) => c === text);
  if (found === undefined) throw invalidInput(`invalid ${origin}=${show(value)}: expected one of ${choices.join(', ')}`);
  return found;
}

/**
 * JSON.parse, failing with a message that never quotes the text: V8's own message does
 * (`Unexpected token 'S', ..."ss_key": SUPERSECRE"... is not valid JSON`), and these values
 * carry credentials. Only V8's position, if it gives one, is kept.
 */
export function parseJson(origin: Origin, text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    const position = /at position (\d+)/.exec((err as Error).message)?.[1];
    throw invalidInput(`invalid ${origin}: malformed JSON${position === undefined ? '' : ` at position ${position}`} (the value is not shown: it may hold secrets)`);
  }
}

/**
 * Glob lists as upstream accepts them: a JSON array, a JSON string, or a comma-separated list.
 */
export function parsePatternList(origin: Origin, value: string | undefined): string[] {
  if (value === undefined || value.trim() === '') return [];
  const text = value.trim();
  if (text.startsWith('[') || text.startsWith('"')) {
    const parsed = parseJson(origin, text);
    const list = typeof parsed === 'string' ? [parsed] : parsed;
    if (!Array.isArray(list) || !list.every((p): p is string => typeof p === 'string')) {
      throw invalidInput(`invalid ${origin}: expected a JSON array of strings, a JSON string, or a comma-separated list`);
    }
    return list.map((p) => p.trim()).filter((p) => p !== '');
  }
  return text.split(',').map((p) => p.trim()).filter((p) => p !== '');
}

/** Any C0 control character but tab, or DEL. */
function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if ((code < 0x20 && code !== 0x09) || code === 0x7f) return true;
  }
  return false;
}

/** Request headers as a JSON object of strings, e.g. from the `<hostname>-headers` variable. */
export function parseHeaders(origin: Origin, text: string): Record<string, string> {
  const parsed = parseJson(origin, text);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw invalidInput(`invalid ${origin}: expected a JSON object of header names to values`);
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(parsed)) {
    if (typeof value !== 'string' && typeof value !== 'number') throw invalidInput(`invalid ${origin}: header ${JSON.stringify(name)} must be a string`);
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw invalidInput(`invalid ${origin}: ${JSON.stringify(name)} is not a valid header name`);
    const text = String(value);
    // RFC 9110 field values: visible characters, spaces and tabs; any other control character is refused by the HTTP client mid-download.
    if (hasControlCharacter(text)) throw invalidInput(`invalid ${origin}: the value of header ${JSON.stringify(name)} contains a line break or another control character`);
    headers[name] = text;
  }
  return headers;
}
