/**
 * Gets the model key from the pod's Confidential Data Hub: `GET {CDH_ADDR}/cdh/resource/<repo>/<type>/<tag>`
 * answers with the bytes of the KBS resource once the CDH has attested the pod. The first request
 * may wait on that attestation, so it gets the read timeout, and refused connections are retried
 * (the CDH may still be starting) before the run fails with one line naming CDH_ADDR and the path.
 */
import { describeError, StorageError } from '../errors.js';
import type { Logger } from '../log.js';
import { createDispatcher, discardBody, httpRequest } from '../net/http-client.js';
import { readTimeoutText } from '../net/timeouts.js';
import type { ConfidentialSettings } from '../settings/confidential.js';
import type { NetSettings } from '../settings/settings.js';
import { cancelled, withRetry } from '../transfer/retry.js';

/** A key (even a PEM RSA key) is a few KiB; anything much larger is not one. */
const MAX_KEY_BYTES = 1024 * 1024;

export interface CdhRequest {
  confidential: ConfidentialSettings;
  net: NetSettings;
  readTimeoutMs: number;
  maxAttempts: number;
  log: Logger;
  signal: AbortSignal;
}

function cdhResourcePath(confidential: ConfidentialSettings): string {
  const resource = confidential.resource;
  if (resource === undefined) throw new StorageError('InvalidInput', 'CONFIDENTIAL_RESOURCE_ID is not set');
  return `/cdh/resource/${[resource.repo, resource.type, resource.tag].map(encodeURIComponent).join('/')}`;
}

async function readLimited(body: AsyncIterable<Uint8Array>, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of body) {
    length += chunk.length;
    if (length > MAX_KEY_BYTES) throw new StorageError('InvalidInput', `${what} is larger than 1 MiB, which no key is`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

export async function fetchKeyFromCdh(req: CdhRequest): Promise<Buffer> {
  const { confidential, log, signal } = req;
  const resourcePath = cdhResourcePath(confidential);
  const url = new URL(`${confidential.cdhAddr}${resourcePath}`);
  const shown = `${confidential.cdhAddr}${resourcePath}`;
  const resourceId = confidential.resource?.id ?? '';
  // The CDH is local to the pod: a cluster proxy must never see (or relay) the key request.
  const dispatcher = createDispatcher({ net: { ...req.net, httpProxy: undefined, httpsProxy: undefined } });
  try {
    return await withRetry('the key request to the Confidential Data Hub', req.maxAttempts, signal, log, async () => {
      // A timer of our own, not AbortSignal.timeout: a timeout signal held only by AbortSignal.any
      // may be garbage-collected before it fires, and the request would then wait forever.
      const attempt = new AbortController();
      const timer = setTimeout(() => { attempt.abort(); }, req.readTimeoutMs);
      const onAbort = (): void => { attempt.abort(); };
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        const response = await httpRequest(dispatcher, url, { signal: attempt.signal }, 'Confidential Data Hub', shown);
        if (response.statusCode !== 200) {
          discardBody(response.body);
          const retryable = response.statusCode >= 500 || response.statusCode === 429;
          throw new StorageError(response.statusCode === 404 ? 'NotFound' : 'Network',
            `the Confidential Data Hub answered HTTP ${response.statusCode} for ${resourcePath} (CDH_ADDR=${confidential.cdhAddr}, CONFIDENTIAL_RESOURCE_ID=${resourceId}); check that the KBS holds this resource and that the pod passed attestation`,
            { retryable });
        }
        const key = await readLimited(response.body, `the answer of the Confidential Data Hub for ${resourcePath}`);
        if (key.length === 0) throw new StorageError('InvalidInput', `the Confidential Data Hub returned an empty resource for ${resourcePath} (CONFIDENTIAL_RESOURCE_ID=${resourceId})`);
        return key;
      } catch (err) {
        if (signal.aborted) throw cancelled(signal);
        if (attempt.signal.aborted) { // not by the run's signal (checked above): the timer
          throw new StorageError('Network', `the Confidential Data Hub at ${shown} (CDH_ADDR=${confidential.cdhAddr}): ${readTimeoutText(req.readTimeoutMs)}`, { retryable: true });
        }
        if (err instanceof StorageError && err.kind === 'Network' && /connection to/.test(err.message)) {
          throw new StorageError('Network', `cannot reach the Confidential Data Hub for the model key at ${shown}: ${describeError(err.cause)}; check CDH_ADDR (${confidential.cdhAddr}) and that the CDH runs in this pod`, { retryable: err.retryable, cause: err.cause });
        }
        throw err;
      } finally {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
      }
    });
  } finally {
    await dispatcher.close();
  }
}
