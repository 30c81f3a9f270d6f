/**
 * How a timeout is worded, the same for every backend: which timeout ran out, after how long, and
 * the variable an operator raises when a slow store is simply slow.
 */
import type { Socket } from 'node:net';
import { causeChain, errorCode } from '../errors.js';

const CONNECT_TIMEOUT_VARIABLE = 'STORAGE_INITIALIZER_CONNECT_TIMEOUT';
const READ_TIMEOUT_VARIABLE = 'STORAGE_INITIALIZER_READ_TIMEOUT';

/** A duration as the timeout and deadline messages show it: `2 s`, `0.5 s`. */
export const seconds = (ms: number): string => `${Number((ms / 1000).toFixed(1))} s`;

export function connectTimeoutText(ms: number, variable = CONNECT_TIMEOUT_VARIABLE): string {
  return `connect timeout of ${seconds(ms)} exceeded (raise ${variable})`;
}

export function readTimeoutText(ms: number, variable = READ_TIMEOUT_VARIABLE): string {
  return `no response for ${seconds(ms)} (read timeout; raise ${variable})`;
}

/** An ETIMEDOUT error (retryable, like a socket's own) carrying the wording above. */
function timeoutError(text: string): Error {
  return Object.assign(new Error(text), { code: 'ETIMEDOUT' });
}

/**
 * Ends a socket that takes longer than `connectMs` to connect, or that then goes `readMs` without
 * a byte either way: for clients (an SDK's, a raw socket) that have no such timeouts of their own.
 */
export function applySocketTimeouts(socket: Socket, connectMs: number, readMs: number): void {
  socket.setTimeout(connectMs);
  socket.once('connect', () => { socket.setTimeout(readMs); });
  socket.on('timeout', () => {
    socket.destroy(timeoutError(socket.connecting ? connectTimeoutText(connectMs) : readTimeoutText(readMs)));
  });
}

/** The shared HTTP client's (undici's) timeout codes, by the timeout that ran out. */
const HTTP_CLIENT_TIMEOUTS: Readonly<Record<string, 'connect' | 'read'>> = {
  UND_ERR_CONNECT_TIMEOUT: 'connect', UND_ERR_HEADERS_TIMEOUT: 'read', UND_ERR_BODY_TIMEOUT: 'read',
};

/**
 * The advice to add to a failure's line when the shared HTTP client timed out somewhere in its
 * cause chain (its own message names only milliseconds); '' when the line already names a
 * variable or no timeout is involved.
 */
export function timeoutAdvice(err: unknown, message: string, limits: { connectTimeoutMs: number; readTimeoutMs: number }): string {
  if (/raise [A-Z0-9_]+_TIMEOUT/.test(message)) return '';
  for (const current of causeChain(err)) {
    const phase = HTTP_CLIENT_TIMEOUTS[errorCode(current) ?? ''];
    if (phase === 'connect') return `; ${connectTimeoutText(limits.connectTimeoutMs)}`;
    if (phase === 'read') return `; ${readTimeoutText(limits.readTimeoutMs)}`;
  }
  return '';
}
