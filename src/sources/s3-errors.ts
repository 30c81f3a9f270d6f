/** AWS SDK failures to our typed errors, worded for an operator reading one log line. */
import { describeError, isRetryable, StorageError } from '../errors.js';
import { retryAfterMs } from '../net/http-status.js';
import type { S3Settings } from '../settings/settings.js';
import { connectTimeoutText, readTimeoutText } from '../net/timeouts.js';

interface SdkError {
  name?: string;
  message?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
  $response?: { headers?: Record<string, string> };
}

const AUTH_CODES = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken', 'TokenRefreshRequired', 'AuthorizationHeaderMalformed']);

/** The SDK's request handler names its own option; an operator needs our variable instead. */
function timeoutDetail(e: SdkError, timeouts: S3Timeouts): string | undefined {
  if (e.name !== 'TimeoutError') return undefined;
  return /establish a connection/.test(e.message ?? '')
    ? connectTimeoutText(timeouts.connectTimeoutMs, 'S3_CONNECT_TIMEOUT')
    : readTimeoutText(timeouts.readTimeoutMs, 'S3_READ_TIMEOUT');
}

export type S3Timeouts = Pick<S3Settings, 'connectTimeoutMs' | 'readTimeoutMs'>;

export function s3Error(err: unknown, what: string, timeouts: S3Timeouts): unknown {
  if (err instanceof StorageError || typeof err !== 'object' || err === null) return err;
  const e = err as SdkError;
  const code = e.Code ?? e.name ?? 'Error';
  const status = e.$metadata?.httpStatusCode;
  if (code === 'CredentialsProviderError') {
    return new StorageError('AuthFailed', `S3 authentication failed for ${what}: no AWS credentials found. Set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a storage-config secret, IRSA (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE), an EC2 instance profile (IMDS), or awsAnonymousCredential=true for a public bucket.`, { cause: err });
  }
  if (AUTH_CODES.has(code) || status === 401) {
    return new StorageError('AuthFailed', `S3 authentication failed for ${what} (${code}). Verify credentials.`, { cause: err });
  }
  if (code === 'AccessDenied' || code === 'AllAccessDisabled' || status === 403) {
    return new StorageError('Forbidden', `S3 access denied for ${what} (${code}). Check that the credentials may list and read it.`, { cause: err });
  }
  if (code === 'NoSuchBucket') return new StorageError('NotFound', `S3 bucket not found for ${what} (NoSuchBucket).`, { cause: err });
  if (code === 'NoSuchKey' || status === 404) return new StorageError('NotFound', `S3 resource not found at ${what} (${code}).`, { cause: err });
  const retryable = status === undefined ? isRetryable(err) || e.$retryable !== undefined : status === 408 || status === 429 || status >= 500;
  const detail = status === undefined ? timeoutDetail(e, timeouts) ?? describeError(err) : `${code}, HTTP status ${status}`;
  return new StorageError('Network', `S3 request for ${what} failed: ${detail}`, {
    retryable,
    retryAfterMs: retryAfterMs(e.$response?.headers?.['retry-after']),
    cause: err,
  });
}
