/**
 * The registry's HTTP API (distribution spec) for one repository: GET with the auth dance
 * registries expect. A 401 with a `Bearer realm=...` challenge sends us to the token service
 * (with Basic credentials from the docker config, when there are some) for a pull token; a
 * `Basic` challenge gets the credentials directly. Insecure registries (KSERVE_OCI_INSECURE_REGISTRY)
 * are tried over HTTPS without verification first and then over plain HTTP, as Docker does.
 */
import type { Dispatcher } from 'undici';
import { authFailed, describeError, forbidden, network, notFound, StorageError } from '../errors.js';
import type { Logger } from '../log.js';
import { createDispatcher, discardBody, headerValue, httpRequest, type HttpResponse } from '../net/http-client.js';
import { statusError } from '../net/http-status.js';
import { normalizeRegistry, type OciCredential } from '../settings/oci.js';
import type { Settings } from '../settings/settings.js';

const NAME = 'OCI';
const MAX_SMALL_BODY = 4 * 2 ** 20;

/** The host that serves a registry's API: Docker Hub's v2 API is not at docker.io. */
export function apiHost(registry: string): string {
  return normalizeRegistry(registry) === 'docker.io' ? 'registry-1.docker.io' : registry;
}

/** `Bearer realm="...",service="...",scope="..."` -> scheme and parameters. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const space = header.indexOf(' ');
  const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase();
  const params: Record<string, string> = {};
  const re = /([a-zA-Z_]+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g;
  for (const m of (space < 0 ? '' : header.slice(space + 1)).matchAll(re)) {
    const key = m[1];
    if (key !== undefined) params[key.toLowerCase()] = (m[2] ?? m[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return { scheme, params };
}

/** Reads a small body (a manifest, an error, a token) with a size cap. */
export async function readSmallBody(response: HttpResponse, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_SMALL_BODY) {
      discardBody(response.body);
      throw new StorageError('InvalidInput', `${what} is larger than ${MAX_SMALL_BODY} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The first `errors[].code` of a registry's JSON error body ("MANIFEST_UNKNOWN"). */
async function registryErrorCode(response: HttpResponse): Promise<string | undefined> {
  try {
    const parsed: unknown = JSON.parse((await readSmallBody(response, 'error body')).toString('utf8'));
    const code = (parsed as { errors?: { code?: unknown }[] } | null)?.errors?.[0]?.code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    return undefined;
  }
}

export class RegistryClient {
  private readonly dispatcher: Dispatcher;
  private readonly host: string;
  private readonly insecure: boolean;
  private readonly credential: OciCredential | undefined;
  private scheme: 'https' | 'http' = 'https';
  private schemeKnown = false;
  private authorization: string | undefined;

  constructor(
    private readonly registry: string,
    private readonly repository: string,
    private readonly displayUri: string,
    private readonly settings: Settings,
    private readonly log: Logger,
  ) {
    const oci = settings.oci;
    const key = normalizeRegistry(registry);
    this.host = apiHost(registry);
    this.insecure = oci.insecureAll || oci.insecureRegistries.includes(key) || oci.insecureRegistries.includes(this.host);
    this.credential = oci.credentials.get(key);
    this.dispatcher = createDispatcher({ net: settings.net, insecure: this.insecure });
  }

  private basic(): string | undefined {
    const c = this.credential;
    return c === undefined ? undefined : `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
  }

  private authAdvice(): string {
    const oci = this.settings.oci;
    if (oci.dockerConfigProblem !== undefined) return `No credentials could be used: ${oci.dockerConfigProblem}.`;
    return this.credential === undefined
      ? `No credentials for ${normalizeRegistry(this.registry)} in ${oci.dockerConfigFile}: mount a docker config.json with auths.${normalizeRegistry(this.registry)} and point KSERVE_OCI_DOCKER_CONFIG at it.`
      : `Check the credentials for ${normalizeRegistry(this.registry)} in ${oci.dockerConfigFile} (KSERVE_OCI_DOCKER_CONFIG).`;
  }

  private async send(url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<HttpResponse> {
    const originHeaders: Record<string, string> = this.authorization === undefined ? {} : { authorization: this.authorization };
    return httpRequest(this.dispatcher, url, { headers, originHeaders, signal }, NAME, this.displayUri);
  }

  /** A request to the registry at `path` ("/v2/..."), settling the scheme of an insecure registry on first use. */
  private async request(path: string, headers: Record<string, string>, signal: AbortSignal): Promise<HttpResponse> {
    const url = (): URL => new URL(`${this.scheme}://${this.host}${path}`);
    if (this.schemeKnown) return this.send(url(), headers, signal);
    if (!this.insecure) {
      try {
        const response = await this.send(url(), headers, signal);
        this.schemeKnown = true;
        return response;
      } catch (err) {
        if (!(err instanceof StorageError && err.kind === 'Network' && /SSL|TLS|certificate|EPROTO|self[- ]signed/i.test(err.message))) throw err;
        throw new StorageError('Network', `${err.message.replace(/\s+/g, ' ').replace(/[.\s]+$/, '')}. If ${this.registry} is a registry without (valid) TLS, list it in KSERVE_OCI_INSECURE_REGISTRY.`, { cause: err });
      }
    }
    try {
      const response = await this.send(url(), headers, signal);
      this.schemeKnown = true;
      return response;
    } catch (err) {
      if (!(err instanceof StorageError && err.kind === 'Network')) throw err;
      this.log.debug(`OCI registry ${this.host} did not answer over HTTPS (${describeError(err)}); trying plain HTTP`);
      this.scheme = 'http';
      this.schemeKnown = true;
      return this.send(url(), headers, signal);
    }
  }

  /** Gets a pull token for this repository from the token service a Bearer challenge names. */
  private async fetchToken(params: Record<string, string>, signal: AbortSignal): Promise<string> {
    const realm = params.realm;
    if (realm === undefined || !/^https?:\/\//i.test(realm)) throw authFailed(`OCI registry ${this.registry} sent a Bearer challenge without a usable realm for ${this.displayUri}`);
    const url = new URL(realm);
    if (params.service !== undefined) url.searchParams.set('service', params.service);
    url.searchParams.set('scope', params.scope ?? `repository:${this.repository}:pull`);
    const basic = this.basic();
    const response = await httpRequest(this.dispatcher, url, { originHeaders: basic === undefined ? {} : { authorization: basic }, signal }, NAME, this.displayUri);
    if (response.statusCode === 401 || response.statusCode === 403) {
      discardBody(response.body);
      throw authFailed(`OCI registry ${this.registry} refused a pull token for ${this.displayUri} (HTTP ${response.statusCode} from its token service). ${this.authAdvice()}`);
    }
    if (response.statusCode !== 200) {
      discardBody(response.body);
      throw statusError(response.statusCode, `${NAME} token service`, this.displayUri, response.headers['retry-after']);
    }
    let body: unknown;
    try {
      body = JSON.parse((await readSmallBody(response, 'token response')).toString('utf8'));
    } catch (err) {
      throw network(`OCI token service of ${this.registry} sent an unreadable answer for ${this.displayUri}`, { cause: err });
    }
    const b = (typeof body === 'object' && body !== null ? body : {}) as { token?: unknown; access_token?: unknown };
    const token = typeof b.token === 'string' && b.token !== '' ? b.token : b.access_token;
    if (typeof token !== 'string' || token === '') throw authFailed(`OCI token service of ${this.registry} returned no token for ${this.displayUri}`);
    return token;
  }

  /** Answers a 401: true when new authorization was obtained and the request is worth repeating. */
  private async authenticate(response: HttpResponse, signal: AbortSignal): Promise<boolean> {
    const header = headerValue(response.headers, 'www-authenticate') ?? '';
    const { scheme, params } = parseChallenge(header);
    if (scheme === 'bearer') {
      this.authorization = `Bearer ${await this.fetchToken(params, signal)}`;
      return true;
    }
    const basic = this.basic();
    if (scheme === 'basic' && basic !== undefined && this.authorization !== basic) {
      this.authorization = basic;
      return true;
    }
    return false;
  }

  /**
   * GETs `path` with auth; 2xx (and 206) responses are returned, anything else becomes a typed error.
   * `what` names the object for a 404 ("manifest quay.io/x:v1", "blob sha256:...").
   */
  async get(path: string, headers: Record<string, string>, what: string, signal: AbortSignal): Promise<HttpResponse> {
    let retriedAuth = false;
    for (;;) {
      const response = await this.request(path, headers, signal);
      if (response.statusCode >= 200 && response.statusCode < 300) return response;
      if (response.statusCode === 401 && !retriedAuth) {
        discardBody(response.body);
        retriedAuth = true;
        if (await this.authenticate(response, signal)) continue;
        throw authFailed(`OCI registry ${this.registry} requires authentication for ${this.displayUri} (HTTP 401). ${this.authAdvice()}`);
      }
      if (response.statusCode === 401) {
        discardBody(response.body);
        throw authFailed(`OCI registry ${this.registry} refused the credentials for ${this.displayUri} (HTTP 401). ${this.authAdvice()}`);
      }
      if (response.statusCode === 403) {
        discardBody(response.body);
        throw forbidden(`OCI registry ${this.registry} denied access to ${this.displayUri} (HTTP 403). ${this.authAdvice()}`);
      }
      if (response.statusCode === 404) {
        const code = await registryErrorCode(response);
        const detail = code === undefined ? '' : ` (${code})`;
        throw notFound(`OCI ${what} not found in registry ${this.registry}${detail}. Check the repository and tag or digest in the storage URI.`);
      }
      discardBody(response.body);
      throw statusError(response.statusCode, NAME, this.displayUri, response.headers['retry-after']);
    }
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}
