/**
 * OCI registry settings: credentials from a docker `config.json` (KServe mounts the pull secret at
 * /mnt/oci-fetch-auth) and the registries that may be reached without TLS verification.
 * The file is read here, once; a missing default file means anonymous pulls, while a broken file
 * is remembered as a problem and reported only when an OCI download needs it, so runs from other
 * backends never fail on it.
 */
import { readFileSync } from 'node:fs';
import { describeError, errorCode } from '../errors.js';

type Env = Readonly<Record<string, string | undefined>>;

export const OCI_DEFAULT_DOCKER_CONFIG = '/mnt/oci-fetch-auth/config.json';

export interface OciCredential {
  username: string;
  password: string;
}

export interface OciSettings {
  /** The docker config file consulted (for messages; never its content). */
  dockerConfigFile: string;
  /** Whether KSERVE_OCI_DOCKER_CONFIG named the file (a missing file is then worth a warning). */
  dockerConfigExplicit: boolean;
  /** Credentials by normalized registry host (`docker.io` for Docker Hub, `host:port` otherwise). */
  credentials: ReadonlyMap<string, OciCredential>;
  /** Why the config file could not be used, when it exists but is unreadable or malformed. */
  dockerConfigProblem: string | undefined;
  /** KSERVE_OCI_INSECURE_REGISTRY=true: every registry may use plain HTTP or unverified TLS. */
  insecureAll: boolean;
  /** Normalized hosts listed in KSERVE_OCI_INSECURE_REGISTRY. */
  insecureRegistries: readonly string[];
  /** Passwords and tokens from the file, for log masking. */
  secrets: readonly string[];
}

const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

/** `https://index.docker.io/v1/`, `HOST:PORT/path` or `HOST` -> the lower-case host[:port] a registry is looked up by. */
export function normalizeRegistry(value: string): string {
  const host = value.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
  return DOCKER_HUB_ALIASES.has(host) ? 'docker.io' : host;
}

function credentialOf(entry: unknown): OciCredential | undefined {
  if (typeof entry !== 'object' || entry === null) return undefined;
  const e = entry as Record<string, unknown>;
  if (typeof e.auth === 'string' && e.auth !== '') {
    const decoded = Buffer.from(e.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  if (typeof e.username === 'string' && e.username !== '' && typeof e.password === 'string') {
    return { username: e.username, password: e.password };
  }
  return undefined;
}

function readDockerConfig(file: string, explicit: boolean): { credentials: Map<string, OciCredential>; problem: string | undefined } {
  const credentials = new Map<string, OciCredential>();
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const missing = errorCode(err) === 'ENOENT';
    const problem = missing && !explicit ? undefined
      : `cannot read the docker config ${file} (KSERVE_OCI_DOCKER_CONFIG): ${missing ? 'no such file' : describeError(err)}`;
    return { credentials, problem };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // The parser's message could quote the file's content (a password): say only where it is.
    return { credentials, problem: `the docker config ${file} (KSERVE_OCI_DOCKER_CONFIG) is not valid JSON` };
  }
  const auths = typeof parsed === 'object' && parsed !== null ? (parsed as { auths?: unknown }).auths : undefined;
  if (typeof auths !== 'object' || auths === null) return { credentials, problem: undefined };
  for (const [registry, entry] of Object.entries(auths as Record<string, unknown>)) {
    const credential = credentialOf(entry);
    if (credential !== undefined) credentials.set(normalizeRegistry(registry), credential);
  }
  return { credentials, problem: undefined };
}

export function loadOciSettings(env: Env): OciSettings {
  const named = env.KSERVE_OCI_DOCKER_CONFIG?.trim();
  const explicit = named !== undefined && named !== '';
  const dockerConfigFile = explicit ? named : OCI_DEFAULT_DOCKER_CONFIG;
  const { credentials, problem } = readDockerConfig(dockerConfigFile, explicit);
  const insecure = (env.KSERVE_OCI_INSECURE_REGISTRY ?? '').trim();
  const insecureAll = /^(true|1|yes|\*)$/i.test(insecure);
  const insecureRegistries = insecureAll || /^(false|0|no)?$/i.test(insecure) ? []
    : insecure.split(',').map((r) => normalizeRegistry(r)).filter((r) => r !== '');
  const secrets = [...credentials.values()].flatMap((c) => [c.password, Buffer.from(`${c.username}:${c.password}`).toString('base64')]);
  return {
    dockerConfigFile,
    dockerConfigExplicit: explicit,
    credentials,
    dockerConfigProblem: problem,
    insecureAll,
    insecureRegistries,
    secrets,
  };
}
