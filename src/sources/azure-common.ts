/**
 * What Azure Blob and Azure File share: picking the credential in the contract's order, the
 * endpoint (the URI's host or an override), SDK options, and turning SDK failures into typed errors.
 */
import { PassThrough, type Readable } from 'node:stream';
import type { TokenCredential } from '@azure/identity';
import { errorCode, isRetryable, network, StorageError } from '../errors.js';
import { statusError } from '../net/http-status.js';
import type { AzureSettings } from '../settings/azure.js';
import type { RequestPolicyFactory } from '@azure/storage-blob';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Socket } from 'node:net';
import { loadCaCertificates } from '../net/tls.js';
import type { Settings } from '../settings/settings.js';
import { applySocketTimeouts } from '../net/timeouts.js';
import type { Checksum } from './types.js';

export type AzureAuth =
  | { kind: 'token'; credential: TokenCredential; describe: string }
  | { kind: 'key'; accountName: string; accountKey: string }
  | { kind: 'sas'; sas: string }
  | { kind: 'anonymous' };

/**
 * The credential chain for a client id, built explicitly: DefaultAzureCredential would also try
 * the developer tools (az, azd, PowerShell), which spawn shells that a shell-less image lacks and
 * that only slow down the failure message.
 */
async function tokenCredential(azure: AzureSettings, clientId: string): Promise<{ credential: TokenCredential; describe: string }> {
  const identity = await import('@azure/identity');
  const options = azure.authorityHost === undefined ? {} : { authorityHost: azure.authorityHost };
  const chain: TokenCredential[] = [];
  const names: string[] = [];
  if (azure.tenantId !== undefined && azure.clientSecret !== undefined) {
    chain.push(new identity.ClientSecretCredential(azure.tenantId, clientId, azure.clientSecret, options));
    names.push('service principal');
  }
  if (azure.tenantId !== undefined && azure.federatedTokenFile !== undefined) {
    chain.push(new identity.WorkloadIdentityCredential({ ...options, tenantId: azure.tenantId, clientId, tokenFilePath: azure.federatedTokenFile }));
    names.push('workload identity');
  }
  chain.push(new identity.ManagedIdentityCredential({ clientId }));
  names.push('managed identity');
  const credential = chain.length === 1 ? chain[0] : new identity.ChainedTokenCredential(...chain);
  if (credential === undefined) throw new Error('unreachable: empty credential chain');
  return { credential, describe: names.join(', then ') };
}

/**
 * Client id -> token chain; else an account key (AZURE_STORAGE_ACCESS_KEY, or the connection
 * string's for the same account); else the URI's SAS (or the connection string's); else anonymous.
 */
export async function azureAuth(azure: AzureSettings, account: string, uriSas: string | undefined): Promise<AzureAuth> {
  if (azure.clientId !== undefined) return { kind: 'token', ...(await tokenCredential(azure, azure.clientId)) };
  const connection = azure.connectionString;
  const sameAccount = connection !== undefined && (connection.accountName === undefined || connection.accountName === account);
  const accountKey = azure.accountKey ?? (sameAccount ? connection.accountKey : undefined);
  if (accountKey !== undefined) return { kind: 'key', accountName: account, accountKey };
  const sas = uriSas ?? (sameAccount ? connection.sas : undefined);
  if (sas !== undefined) return { kind: 'sas', sas };
  return { kind: 'anonymous' };
}

/** The service root for the URI's account: the override when given, else the URI's own origin. */
export function serviceEndpoint(uriEndpoint: string, override: string | undefined, fromConnection: string | undefined): string {
  return (override ?? fromConnection ?? uriEndpoint).replace(/\/+$/, '');
}

/** `root/segment/segment` with each segment percent-encoded (names may hold spaces, unicode, `#`, `?`). */
export function joinUrl(root: string, ...segments: string[]): string {
  const path = segments.filter((s) => s !== '').join('/').split('/').map(encodeURIComponent).join('/');
  return path === '' ? root : `${root}/${path}`;
}

export function withQuery(url: string, sas: string | undefined): string {
  return sas === undefined ? url : `${url}?${sas}`;
}

/**
 * The engine retries and resumes; a second retry loop inside the SDK would multiply attempts and
 * hide the failure for minutes.
 */
export const SDK_OPTIONS = {
  retryOptions: { maxTries: 1 },
  userAgentOptions: { userAgentPrefix: 'kserve-storage-initializer' },
} as const;

/** An agent whose sockets end on our connect and idle-read timeouts. */
function timedAgent<A extends HttpAgent>(agent: A, settings: Settings): A {
  const create = agent.createConnection.bind(agent) as (...args: unknown[]) => Socket;
  agent.createConnection = (...args: unknown[]): Socket => {
    const socket = create(...args);
    applySocketTimeouts(socket, settings.net.connectTimeoutMs, settings.transfer.idleTimeoutMs);
    return socket;
  };
  return agent;
}

/**
 * KServe's CA bundle and our timeouts for the Azure SDKs, which take no TLS options and by default
 * wait forever for a server that accepted and went silent: one more request policy in the
 * client's pipeline hands every request an agent that trusts the bundle and times out.
 */
export function withKServeTrust<P extends { factories: RequestPolicyFactory[] }>(pipeline: P, settings: Settings): P {
  const ca = loadCaCertificates(settings.net.caFiles);
  const https = timedAgent(new HttpsAgent({ keepAlive: true, ...(ca === undefined ? {} : { ca }) }), settings);
  const http = timedAgent(new HttpAgent({ keepAlive: true }), settings);
  pipeline.factories.push({
    create: (next) => ({
      sendRequest: (request) => {
        request.agent ??= request.url.startsWith('https:') ? https : http;
        return next.sendRequest(request);
      },
    }),
  });
  return pipeline;
}

function statusOf(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && 'statusCode' in err && typeof err.statusCode === 'number') return err.statusCode;
  return undefined;
}

function headerOf(err: unknown, name: string): string | undefined {
  if (typeof err !== 'object' || err === null || !('response' in err)) return undefined;
  const response = err.response;
  if (typeof response !== 'object' || response === null || !('headers' in response)) return undefined;
  const headers = response.headers;
  if (typeof headers !== 'object' || headers === null || !('get' in headers) || typeof headers.get !== 'function') return undefined;
  const value: unknown = (headers.get as (n: string) => unknown).call(headers, name);
  return typeof value === 'string' ? value : undefined;
}

/** Messages may quote a request URL; a SAS signature never leaves this function. */
function scrub(text: string): string {
  return text.split('\n')[0]?.replace(/([?&](?:sig|se|skoid|sktid)=)[^&\s"']*/gi, '$1***').slice(0, 300) ?? '';
}

/** SDK and identity failures -> typed errors the engine can retry (or not) and the CLI can print. */
export function azureError(err: unknown, backend: string, displayUri: string, auth: AzureAuth): unknown {
  if (err instanceof StorageError) return err;
  if (err instanceof Error && err.name === 'AbortError') return err;
  const status = statusOf(err);
  if (status !== undefined) {
    const typed = statusError(status, backend, displayUri, headerOf(err, 'retry-after'));
    const code = headerOf(err, 'x-ms-error-code') ?? errorCode(err);
    const hint = (status === 401 || status === 403) ? authHint(auth) : status === 404 && auth.kind === 'anonymous' ? ' (if the container is private, give credentials)' : '';
    const detail = code === undefined || /^\d+$/.test(code) ? '' : ` (${code})`;
    return new StorageError(typed.kind, `${typed.message}${detail}${hint}`, { retryable: typed.retryable, ...(typed.retryAfterMs === undefined ? {} : { retryAfterMs: typed.retryAfterMs }) });
  }
  const name = err instanceof Error ? err.name : '';
  if (name === 'CredentialUnavailableError' || name === 'AuthenticationError' || name === 'AggregateAuthenticationError') {
    return new StorageError('AuthFailed', `${backend} authentication failed for ${displayUri}: ${scrub(err instanceof Error ? err.message : String(err))}`);
  }
  const code = errorCode(err);
  if (isRetryable(err) || code === 'REQUEST_SEND_ERROR') {
    return network(`${backend} request for ${displayUri} failed: ${scrub(err instanceof Error ? err.message : String(err))}`, { retryable: true });
  }
  return err;
}

function authHint(auth: AzureAuth): string {
  switch (auth.kind) {
    case 'key': return ' The account key (AZURE_STORAGE_ACCESS_KEY) was refused.';
    case 'sas': return ' The SAS token was refused (expired, wrong permissions or signature).';
    case 'token': return ` The token (${auth.describe}) lacks a Storage data-reader role on it.`;
    case 'anonymous': return ' No credentials were given (set AZURE_STORAGE_ACCESS_KEY, a SAS, or AZURE_CLIENT_ID) and anonymous access is not allowed.';
  }
}

/**
 * The SDK wraps a download body in a stream that, with its own retries off, fails a broken
 * connection with a plain "Data corruption failure" Error. Re-typed here as a retryable network
 * error, so the engine resumes from the last byte it received instead of failing the run.
 */
export function resumableBody(body: Readable, backend: string, displayUri: string, signal: AbortSignal): Readable {
  const out = new PassThrough();
  body.once('error', (err) => {
    // The SDK also reports a connection the server dropped as an AbortError; only ours cancels.
    out.destroy(signal.aborted ? err : network(`${backend} download from ${displayUri} broke off: ${scrub(err.message)}`, { retryable: true }));
  });
  out.once('close', () => {
    if (!body.destroyed) body.destroy();
  });
  body.pipe(out);
  return out;
}

/** The Content-MD5 both Azure services store, when a blob or file has one. */
export function md5Of(bytes: Uint8Array | undefined): Checksum | undefined {
  return bytes === undefined || bytes.length !== 16 ? undefined : { algorithm: 'md5', hex: Buffer.from(bytes).toString('hex') };
}
