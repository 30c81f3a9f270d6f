import { invalidInput, type StorageError } from '../errors.js';
import { SUPPORTED_URI_FORMS } from './forms.js';
import { redactSecrets } from './redact.js';

const MAX_SHOWN = 300;

/**
 * The URI as errors show it: secrets removed, then quoted as JSON so a stray control character or
 * quote is visible and the message stays one line; very long URIs are cut.
 */
export function shownUri(uri: string): string {
  const redacted = redactSecrets(uri);
  return JSON.stringify(redacted.length > MAX_SHOWN ? `${redacted.slice(0, MAX_SHOWN)}...` : redacted);
}

/** A URI of a known scheme that is malformed: say what is wrong and which shape was expected. */
export function malformed(kind: string, uri: string, reason: string, expected: string): StorageError {
  return invalidInput(`Invalid ${kind} URI ${shownUri(uri)}: ${reason}; expected ${expected}`);
}

/** No backend claims the URI (upstream's message, plus the forms that would have worked). */
export function unrecognized(uri: string): StorageError {
  return invalidInput(
    `Cannot recognize storage type for URI ${shownUri(uri)}. Supported forms: ${SUPPORTED_URI_FORMS.join('; ')}`,
  );
}

/** Percent-decoding that reports bad escapes ("%zz", a split UTF-8 sequence) as the user's error. */
export function decodeComponent(text: string, onError: () => StorageError): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw onError();
  }
}
