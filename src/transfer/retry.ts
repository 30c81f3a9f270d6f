/** Backoff between attempts: exponential with full jitter, capped; a server's Retry-After wins. */
import { describeError, isRetryable, StorageError } from '../errors.js';
import type { Logger } from '../log.js';

const BASE_MS = 250;
const CAP_MS = 20_000;

export function backoffDelay(failures: number, retryAfterMs: number | undefined, random: () => number = Math.random): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, 60_000);
  const ceiling = Math.min(CAP_MS, BASE_MS * 2 ** Math.max(0, failures - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(cancelled(signal));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(cancelled(signal));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** The error to surface when a run is stopped: the abort reason if it is ours, else Cancelled. */
export function cancelled(signal: AbortSignal): StorageError {
  const reason: unknown = signal.reason;
  return reason instanceof StorageError ? reason : new StorageError('Cancelled', 'download cancelled');
}

/**
 * Runs a whole operation again on transient failures (listing, probing): for work that cannot
 * resume part-way, unlike byte ranges, which fetch-range.ts resumes.
 */
export async function withRetry<T>(what: string, maxAttempts: number, signal: AbortSignal, log: Logger, operation: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation();
    } catch (err) {
      if (signal.aborted) throw cancelled(signal);
      if (!isRetryable(err) || attempt >= maxAttempts) throw err;
      const delay = backoffDelay(attempt, err instanceof StorageError ? err.retryAfterMs : undefined);
      log.warn(`retrying ${what} in ${(delay / 1000).toFixed(1)} s: ${describeError(err)}`);
      await sleep(delay, signal);
    }
  }
}
