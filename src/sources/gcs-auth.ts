/**
 * Google credentials for the GCS source, in Application Default Credentials order:
 * GOOGLE_APPLICATION_CREDENTIALS, gcloud's ADC file, the metadata server (GKE workload identity);
 * none of them -> anonymous requests, as upstream does.
 *
 * Service-account keys are exchanged here (a signed JWT for a token, RFC 7523) because
 * google-auth-library 10 ignores the key's `token_uri` and always calls oauth2.googleapis.com;
 * Google's Python library (upstream's) honours it, and private endpoints need it. The exchange
 * goes through our shared HTTP client, so the CA bundle and proxies apply. User credentials and the
 * metadata server go through google-auth-library, which caches and refreshes their tokens.
 */
import { createSign } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import { request, type Dispatcher } from 'undici';
import { GoogleAuth, UserRefreshClient } from 'google-auth-library';
import { authFailed, describeError, errorCode, isRetryable, network, StorageError } from '../errors.js';
import type { Logger } from '../log.js';
import type { GcsSettings } from '../settings/gcs.js';

export const GCS_READ_SCOPE = 'https://www.googleapis.com/auth/devstorage.read_only';
const GOOGLE_TOKEN_URI = 'https://oauth2.googleapis.com/token';
/** Fetch a new token this long before the old one expires. */
const EXPIRY_MARGIN_MS = 5 * 60_000;

export interface GcsCredentials {
  /** Where the credentials came from, for messages ("the service account x@y in GOOGLE_APPLICATION_CREDENTIALS"). */
  readonly description: string;
  readonly anonymous: boolean;
  /** A bearer token, or undefined for anonymous requests. */
  token(signal: AbortSignal): Promise<string | undefined>;
}

const CHECK = 'Check GOOGLE_APPLICATION_CREDENTIALS, or the workload identity of the pod\'s service account.';

/** One line from a library error: no stack, no newlines, bounded. */
function reason(err: unknown): string {
  return describeError(err).split('\n')[0]?.slice(0, 300) ?? 'unknown error';
}

interface ServiceAccountKey {
  client_email: string;
  private_key: string;
  private_key_id?: string;
  token_uri?: string;
}

function isServiceAccountKey(json: Record<string, unknown>): json is Record<string, unknown> & ServiceAccountKey {
  return typeof json.client_email === 'string' && typeof json.private_key === 'string'
    && (json.token_uri === undefined || typeof json.token_uri === 'string')
    && (json.private_key_id === undefined || typeof json.private_key_id === 'string');
}

const base64url = (data: string | Buffer): string => Buffer.from(data).toString('base64url');

/** A service-account key: a JWT signed with its private key, exchanged at its token_uri. */
class ServiceAccountCredentials implements GcsCredentials {
  readonly anonymous = false;
  readonly description: string;
  private cached: { token: string; expiresAt: number } | undefined;
  private pending: Promise<string> | undefined;
  private readonly tokenUri: string;

  constructor(private readonly key: ServiceAccountKey, origin: string, private readonly dispatcher: Dispatcher) {
    this.tokenUri = key.token_uri ?? GOOGLE_TOKEN_URI;
    this.description = `the service account ${key.client_email} from ${origin}`;
  }

  token(signal: AbortSignal): Promise<string> {
    if (this.cached !== undefined && this.cached.expiresAt - EXPIRY_MARGIN_MS > Date.now()) return Promise.resolve(this.cached.token);
    this.pending ??= this.exchange(signal).finally(() => { this.pending = undefined; });
    return this.pending;
  }

  private assertion(): string {
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', ...(this.key.private_key_id === undefined ? {} : { kid: this.key.private_key_id }) };
    const claims = { iss: this.key.client_email, scope: GCS_READ_SCOPE, aud: this.tokenUri, iat: now, exp: now + 3600 };
    const unsigned = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
    let signature: Buffer;
    try {
      signature = createSign('RSA-SHA256').update(unsigned).sign(this.key.private_key);
    } catch {
      // The crypto error would say nothing useful and must not echo key material.
      throw authFailed(`GCS cannot use ${this.description}: its private_key is not a valid PEM RSA key. ${CHECK}`);
    }
    return `${unsigned}.${base64url(signature)}`;
  }

  private async exchange(signal: AbortSignal): Promise<string> {
    const body = new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: this.assertion() }).toString();
    let response: Dispatcher.ResponseData;
    try {
      response = await request(this.tokenUri, {
        dispatcher: this.dispatcher, method: 'POST', body, signal,
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      });
    } catch (err) {
      if (err instanceof StorageError) throw err;
      throw network(`GCS could not reach the token endpoint ${this.tokenUri}: ${reason(err)}`, { retryable: isRetryable(err), cause: err });
    }
    const text = await response.body.text();
    let json: Record<string, unknown> = {};
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed === 'object' && parsed !== null) json = parsed as Record<string, unknown>;
    } catch { /* not JSON: reported by status below */ }
    if (response.statusCode === 200 && typeof json.access_token === 'string') {
      const seconds = typeof json.expires_in === 'number' ? json.expires_in : 3600;
      this.cached = { token: json.access_token, expiresAt: Date.now() + seconds * 1000 };
      return json.access_token;
    }
    const status = response.statusCode;
    if (status === 429 || status >= 500) {
      throw network(`GCS token endpoint ${this.tokenUri} answered HTTP ${status}`, { retryable: true });
    }
    const detail = [json.error, json.error_description].filter((v) => typeof v === 'string').join(': ').slice(0, 300);
    throw authFailed(`GCS authentication failed: the token endpoint ${this.tokenUri} refused ${this.description}`
      + ` (HTTP ${status}${detail === '' ? '' : `, ${detail}`}). ${CHECK}`);
  }
}

/** Credentials google-auth-library resolves and refreshes (user ADC, external accounts, metadata server). */
class LibraryCredentials implements GcsCredentials {
  readonly anonymous = false;
  constructor(readonly description: string, private readonly client: { getAccessToken(): Promise<{ token?: string | null }> }) {}

  async token(): Promise<string> {
    let token: string | null | undefined;
    try {
      ({ token } = await this.client.getAccessToken());
    } catch (err) {
      const code = errorCode(err);
      if (code !== undefined && isRetryable(err)) throw network(`GCS could not get an access token from ${this.description}: ${reason(err)}`, { cause: err });
      throw authFailed(`GCS authentication failed: no access token from ${this.description} (${reason(err)}). ${CHECK}`);
    }
    if (token === undefined || token === null || token === '') throw authFailed(`GCS authentication failed: ${this.description} gave no access token. ${CHECK}`);
    return token;
  }
}

const ANONYMOUS: GcsCredentials = { anonymous: true, description: 'anonymous access (no Google credentials found)', token: () => Promise.resolve(undefined) };

async function readJsonFile(file: string, origin: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw authFailed(`GCS cannot read the credentials file ${file} named by ${origin}: ${reason(err)}`);
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch { /* reported below, without echoing the content */ }
  throw authFailed(`GCS cannot use the credentials file ${file} named by ${origin}: it is not a JSON object`);
}

async function fromFile(file: string, origin: string, settings: GcsSettings, dispatcher: Dispatcher): Promise<GcsCredentials> {
  const json = await readJsonFile(file, origin);
  const where = `${origin} (${file})`;
  if (json.type === 'service_account' || (json.type === undefined && isServiceAccountKey(json))) {
    if (!isServiceAccountKey(json)) throw authFailed(`GCS cannot use the service account key ${where}: client_email or private_key is missing`);
    return new ServiceAccountCredentials(json, where, dispatcher);
  }
  if (json.type === 'authorized_user' && typeof json.client_id === 'string' && typeof json.client_secret === 'string' && typeof json.refresh_token === 'string') {
    const client = new UserRefreshClient({ clientId: json.client_id, clientSecret: json.client_secret, refreshToken: json.refresh_token });
    return new LibraryCredentials(`the user credentials in ${where}`, client);
  }
  // External accounts (workload identity federation), impersonation: the library's own ADC reads the same file.
  const auth = new GoogleAuth({ scopes: [GCS_READ_SCOPE], ...(settings.projectId === undefined ? {} : { projectId: settings.projectId }) });
  try {
    return new LibraryCredentials(`the ${String(json.type)} credentials in ${where}`, await auth.getClient());
  } catch (err) {
    throw authFailed(`GCS cannot use the credentials in ${where}: ${reason(err)}`);
  }
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(() => true, () => false);
}

/** Finds credentials once; logs an anonymous fallback at info level. */
export async function resolveGcsCredentials(settings: GcsSettings, dispatcher: Dispatcher, log: Logger): Promise<GcsCredentials> {
  if (settings.credentialsFile !== undefined) return fromFile(settings.credentialsFile, 'GOOGLE_APPLICATION_CREDENTIALS', settings, dispatcher);
  if (await exists(settings.adcFile)) return fromFile(settings.adcFile, 'the gcloud application default credentials', settings, dispatcher);
  const auth = new GoogleAuth({ scopes: [GCS_READ_SCOPE], ...(settings.projectId === undefined ? {} : { projectId: settings.projectId }) });
  let client: Awaited<ReturnType<GoogleAuth['getClient']>>;
  try {
    client = await auth.getClient();
  } catch (err) {
    if (!/Could not load the default credentials/i.test(describeError(err))) throw authFailed(`GCS credential lookup failed: ${reason(err)}`);
    log.info('GCS: no Google credentials found (GOOGLE_APPLICATION_CREDENTIALS, gcloud ADC, metadata server); using anonymous access');
    return ANONYMOUS;
  }
  const where = settings.metadataHost === undefined ? 'the metadata server (workload identity)' : `the metadata server at ${settings.metadataHost} (workload identity)`;
  return new LibraryCredentials(where, client);
}
