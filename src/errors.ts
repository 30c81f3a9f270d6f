/**
 * Typed failures. Every error that reaches the CLI is one of these, so it can print one clear line
 * (and choose whether a retry makes sense) without parsing messages.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, relative as pathRelative, resolve as pathResolve } from 'node:path';

export type ErrorKind =
  | 'InvalidInput'
  | 'NotFound'
  | 'AuthFailed'
  | 'Forbidden'
  | 'Network'
  | 'Integrity'
  | 'LocalIO'
  | 'Unsupported'
  | 'Cancelled';

export class StorageError extends Error {
  readonly kind: ErrorKind;
  /** Whether the same request may succeed if tried again (5xx, resets, short bodies). */
  readonly retryable: boolean;
  /** Server-suggested wait before the next attempt (Retry-After), in milliseconds. */
  readonly retryAfterMs: number | undefined;

  constructor(kind: ErrorKind, message: string, options: { retryable?: boolean; retryAfterMs?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = kind;
    this.kind = kind;
    this.retryable = options.retryable ?? false;
    this.retryAfterMs = options.retryAfterMs;
  }
}

export const invalidInput = (message: string, cause?: unknown) => new StorageError('InvalidInput', message, { cause });
export const notFound = (message: string, cause?: unknown) => new StorageError('NotFound', message, { cause });
export const authFailed = (message: string, cause?: unknown) => new StorageError('AuthFailed', message, { cause });
export const forbidden = (message: string, cause?: unknown) => new StorageError('Forbidden', message, { cause });
export const integrity = (message: string, options: { retryable?: boolean } = {}) =>
  new StorageError('Integrity', message, options);
export const unsupported = (message: string) => new StorageError('Unsupported', message);
export const localIO = (message: string, cause?: unknown) => new StorageError('LocalIO', message, { cause });
export const network = (message: string, options: { retryable?: boolean; retryAfterMs?: number; cause?: unknown } = {}) =>
  new StorageError('Network', message, { retryable: true, ...options });

/** Node's system error codes that mean "the connection broke; the same request may work now". */
const TRANSIENT_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'EHOSTUNREACH',
  'ENETUNREACH', 'ENETDOWN', 'ENOTCONN', 'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH',
]);

export function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

/** Whether a failure is worth another attempt: typed errors say so, raw socket errors by code. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof StorageError) return err.retryable;
  const code = errorCode(err);
  if (code !== undefined && TRANSIENT_CODES.has(code)) return true;
  const cause = err instanceof Error ? err.cause : undefined;
  return cause !== undefined && cause !== err && isRetryable(cause);
}

/** One line for humans; typed errors already carry a complete sentence. */
export function describeError(err: unknown): string {
  if (err instanceof StorageError) return err.message;
  if (err instanceof Error) {
    const code = errorCode(err);
    return code !== undefined && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}

/** A failure and its causes, outermost first (bounded: a cause chain may loop). */
export function* causeChain(err: unknown): Generator<Error> {
  for (let current = err, depth = 0; current instanceof Error && depth < 8; current = current.cause, depth++) yield current;
}

/** The system error code of a failure or of the first of its causes that has one. */
function systemError(err: unknown): (Error & { code: string; path?: unknown; dest?: unknown }) | undefined {
  for (const current of causeChain(err)) {
    if (errorCode(current) !== undefined && !(current instanceof StorageError)) return current as Error & { code: string };
  }
  return undefined;
}

const NO_SPACE_CODES = new Set(['ENOSPC', 'EDQUOT', 'EFBIG']);
const TOO_MANY_FILES_CODES = new Set(['EMFILE', 'ENFILE']);
const PERMISSION_CODES = new Set(['EACCES', 'EPERM']);

/** Whether a failure, or one of its causes, is the disk (or a quota, or a file size limit) running out of space. */
export function isOutOfSpace(err: unknown): boolean {
  return NO_SPACE_CODES.has(systemError(err)?.code ?? '');
}

/** The soft limit on open files, from /proc (Linux); undefined where it cannot be read. */
function readOpenFilesLimit(): string | undefined {
  try {
    return /^Max open files\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

/** Read at start-up: once the limit is hit, reading it would need one more file descriptor. */
const OPEN_FILES_LIMIT = readOpenFilesLimit();

function tooManyOpenFiles(): string {
  return `too many open files${OPEN_FILES_LIMIT === undefined ? '' : ` (limit ${OPEN_FILES_LIMIT})`}`;
}

const TOO_MANY_FILES_ADVICE = 'lower --concurrency or raise the limit (ulimit -n)';

/**
 * The one place a failed local operation becomes a sentence: `action` is what was being done to
 * `path` ("write", "create destination"); `neededBytes`, when known, how much more the download
 * still has to write (said when space runs out).
 */
export function localFailure(action: string, path: string, err: unknown, neededBytes?: number): StorageError {
  const code = systemError(err)?.code;
  const needed = neededBytes === undefined ? '' : ` (${neededBytes} more bytes needed)`;
  switch (code) {
    case 'ENOSPC': return localIO(`no space left on device writing ${path}${needed}`, err);
    case 'EDQUOT': return localIO(`disk quota exceeded writing ${path}${needed}`, err);
    case 'EFBIG': return localIO(`file size limit (ulimit -f) exceeded writing ${path}${needed}`, err);
    case 'EACCES':
    case 'EPERM': return localIO(`cannot ${action} ${path}: permission denied`, err);
    case 'EROFS': return localIO(`cannot ${action} ${path}: read-only file system`, err);
    case 'EEXIST': return localIO(`cannot ${action} ${path}: it exists and is not a directory`, err);
    case 'ENOTDIR': return localIO(`cannot ${action} ${path}: a part of that path is a file, not a directory`, err);
    case 'EMFILE':
    case 'ENFILE': return localIO(`${tooManyOpenFiles()} trying to ${action} ${path}; ${TOO_MANY_FILES_ADVICE}`, err);
    default: return localIO(`cannot ${action} ${path}: ${describeError(err)}`, err);
  }
}

function contains(parent: string, child: string): boolean {
  const relative = pathRelative(parent, child);
  return !relative.startsWith('..') && !isAbsolute(relative);
}

/** Inside dest, dest itself, or one of its parents (creating the destination failed higher up). */
function concernsDestination(dest: string, candidate: unknown): boolean {
  if (typeof candidate !== 'string') return false;
  return contains(pathResolve(dest), pathResolve(candidate)) || contains(pathResolve(candidate), pathResolve(dest));
}

/**
 * Adds what an operator should do to a local failure, once for every backend: for permission
 * denied in the destination, the owner it needs (the image runs as UID 65532, a pod's volume is
 * often root's); for too many open files, the limit and the two ways out.
 */
export function withLocalAdvice(err: unknown, dest: string): unknown {
  const cause = systemError(err);
  if (cause === undefined) return err;
  const kind = err instanceof StorageError ? err.kind : 'LocalIO';
  const message = describeError(err);
  if (PERMISSION_CODES.has(cause.code)) {
    const known = cause.path !== undefined || cause.dest !== undefined;
    const inDestination = concernsDestination(dest, cause.path) || concernsDestination(dest, cause.dest);
    if (!(inDestination || !known && err instanceof StorageError && err.kind === 'LocalIO')) return err;
    const uid = process.getuid?.() ?? 65532;
    const gid = process.getgid?.() ?? uid;
    return new StorageError(kind, `${message}; make the destination writable by UID ${uid} (chown -R ${uid}:${gid} ${dest})`, { cause: err });
  }
  if (TOO_MANY_FILES_CODES.has(cause.code) && !message.includes(TOO_MANY_FILES_ADVICE)) {
    return new StorageError(kind, `${message}; ${tooManyOpenFiles()}; ${TOO_MANY_FILES_ADVICE}`, { cause: err });
  }
  return err;
}
