/**
 * HTTP status codes to typed errors, worded as upstream's messages so operators recognise them.
 * 408/429/5xx are retryable; a Retry-After header is honoured.
 */
import { StorageError } from '../errors.js';

export function retryAfterMs(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || text.trim() === '') return undefined;
  const seconds = Number(text);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

export function statusError(status: number, backend: string, displayUri: string, retryAfter?: string | string[]): StorageError {
  switch (status) {
    case 401:
      return new StorageError('AuthFailed', `${backend} authentication failed for ${displayUri}. Verify credentials.`);
    case 403:
      return new StorageError('Forbidden', `${backend} access denied for ${displayUri}. Check that the credentials may read it.`);
    case 404:
    case 410:
      return new StorageError('NotFound', `${backend} resource not found at ${displayUri}.`);
    default:
      break;
  }
  const retryable = status === 408 || status === 429 || status >= 500;
  return new StorageError(retryable ? 'Network' : 'InvalidInput', `${backend} request for ${displayUri} failed with HTTP status ${status}.`, {
    retryable,
    retryAfterMs: retryable ? retryAfterMs(retryAfter) : undefined,
  });
}
