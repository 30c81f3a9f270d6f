/**
 * The HTTP client every HTTP-speaking backend shares: one connection pool with our CA bundle,
 * proxies and timeouts, and redirects followed by hand so that credentials never travel to
 * another origin.
 */
import { rootCertificates } from 'node:tls';
import { Agent, EnvHttpProxyAgent, request, type Dispatcher } from 'undici';
import { describeError, invalidInput, isRetryable, StorageError } from '../errors.js';
import type { NetSettings } from '../settings/settings.js';
import { loadCaCertificates } from './tls.js';

const MAX_REDIRECTS = 10;

export interface ClientOptions {
  net: NetSettings;
  /** Extra PEM files to trust (a backend's own CA setting). */
  extraCaFiles?: readonly string[];
  /** Skip certificate verification (S3_VERIFY_SSL=0); off by default. */
  insecure?: boolean;
  /** Extra PEM certificates to trust, given as text (a CA handed over in a secret, not as a file). */
  extraCaPems?: readonly string[];
  /** PEM client certificate and private key for mutual TLS (both or neither). */
  cert?: string;
  key?: string;
}

export function createDispatcher(options: ClientOptions): Dispatcher {
  const { net } = options;
  const fromFiles = loadCaCertificates([...net.caFiles, ...(options.extraCaFiles ?? [])]);
  const ca = options.extraCaPems !== undefined && options.extraCaPems.length > 0
    ? [...(fromFiles ?? rootCertificates), ...options.extraCaPems] : fromFiles;
  const identity = options.cert !== undefined && options.key !== undefined ? { cert: options.cert, key: options.key } : {};
  const connect = {
    timeout: net.connectTimeoutMs,
    ...(ca === undefined ? {} : { ca }),
    ...identity,
    ...(options.insecure === true ? { rejectUnauthorized: false } : {}),
  };
  // A server that accepts and then stays silent (before the headers, or mid-body while listing)
  // ends like a stalled download stream does: after the idle-read timeout.
  const common = { connect, keepAliveTimeout: 30_000, headersTimeout: net.readTimeoutMs, bodyTimeout: net.readTimeoutMs };
  if (net.httpProxy !== undefined || net.httpsProxy !== undefined) {
    // Empty strings, not undefined: undefined would make undici read process.env itself.
    return new EnvHttpProxyAgent({
      ...common,
      httpProxy: net.httpProxy ?? '',
      httpsProxy: net.httpsProxy ?? '',
      noProxy: net.noProxy ?? '',
      ...(ca === undefined ? {} : { proxyTls: { ca } }),
      ...(ca === undefined && options.cert === undefined ? {} : { requestTls: { ...(ca === undefined ? {} : { ca }), ...identity } }),
    });
  }
  return new Agent(common);
}

export interface HttpRequest {
  method?: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  /** Headers sent only to the first origin: credentials a redirect must not leak elsewhere. */
  originHeaders?: Record<string, string>;
  signal: AbortSignal;
}

export interface HttpResponse {
  url: URL;
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
}

/** Wraps connection-level failures in a typed, retryable Network error naming the target. */
function connectionError(err: unknown, backend: string, displayUri: string): unknown {
  if (err instanceof StorageError) return err;
  const message = `${backend} connection to ${displayUri} failed: ${describeError(err)}`;
  if (/certificate|self[- ]signed|unable to verify|CERT_|ERR_TLS/i.test(message)) {
    return new StorageError('Network', `${message}. Trust the server's CA through CA_BUNDLE_CONFIGMAP_NAME.`, { cause: err });
  }
  return new StorageError('Network', message, { retryable: isRetryable(err), cause: err });
}

export async function httpRequest(dispatcher: Dispatcher, url: URL, req: HttpRequest, backend: string, displayUri: string): Promise<HttpResponse> {
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const sameOrigin = current.origin === url.origin;
    let response: Dispatcher.ResponseData;
    try {
      response = await request(current, {
        dispatcher,
        method: req.method ?? 'GET',
        headers: { 'accept-encoding': 'identity', ...req.headers, ...(sameOrigin ? req.originHeaders : {}) },
        signal: req.signal,
      });
    } catch (err) {
      throw connectionError(err, backend, displayUri);
    }
    const location = response.headers.location;
    if (response.statusCode >= 300 && response.statusCode < 400 && response.statusCode !== 304 && typeof location === 'string') {
      discardBody(response.body);
      try {
        current = new URL(location, current);
      } catch {
        throw invalidInput(`${backend} server redirected ${displayUri} to an invalid location`);
      }
      if (current.protocol !== 'https:' && current.protocol !== 'http:') {
        throw invalidInput(`${backend} server redirected ${displayUri} to an unsupported ${current.protocol} URL`);
      }
      continue;
    }
    return { url: current, statusCode: response.statusCode, headers: response.headers, body: response.body };
  }
  throw invalidInput(`${backend} server redirected ${displayUri} more than ${MAX_REDIRECTS} times`);
}

/**
 * Abandons a response body we do not want (an error page, a probe). undici reports the abort as an
 * 'error' event, which would be uncaught without a listener.
 */
export function discardBody(body: HttpResponse['body']): void {
  body.on('error', () => undefined);
  body.destroy();
}

/** The first value of a header. */
export function headerValue(headers: HttpResponse['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}
