/**
 * Typed failures. Every error that reaches the CLI is one of these, so it can print one clear line
 * (and choose whether a retry makes sense) without parsing messages.
 */
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
