/**
 * Confidential models (KServe on Confidential Containers): model files arrive as JWE and are
 * decrypted after download with a key the pod's Confidential Data Hub (CDH) releases after
 * attestation.
 *
 *   CONFIDENTIAL_ENABLED          true/false (default false)
 *   CONFIDENTIAL_RESOURCE_ID      kbs:///<repo>/<type>/<tag>, the key's KBS resource (needed when enabled)
 *   CDH_ADDR                      the CDH's HTTP API; default http://127.0.0.1:8006
 *
 * Only validated when enabled: a run that does not decrypt never fails on these.
 */
import { invalidInput } from '../errors.js';
import { redactSecrets } from '../uri/redact.js';
import { parseBoolean, show } from './values.js';

type Env = Readonly<Record<string, string | undefined>>;

const CDH_DEFAULT_ADDR = 'http://127.0.0.1:8006';

export interface KbsResource {
  /** As given, for messages (it names a key, it is not one). */
  id: string;
  repo: string;
  type: string;
  tag: string;
}

export interface ConfidentialSettings {
  enabled: boolean;
  /** Set when enabled. */
  resource: KbsResource | undefined;
  /** Origin plus optional base path, no trailing slash. */
  cdhAddr: string;
}

const RESOURCE_FORM = 'kbs:///<repo>/<type>/<tag>';

function parseKbsResourceId(value: string): KbsResource {
  const id = value.trim();
  const shown = show(id, 120);
  const bad = (why: string): Error => invalidInput(`invalid CONFIDENTIAL_RESOURCE_ID=${shown}: ${why}; expected ${RESOURCE_FORM}`);
  if (!id.startsWith('kbs:///')) {
    throw bad(id.startsWith('kbs://') ? 'the KBS host part must be empty (the CDH knows its KBS)' : 'it must start with kbs:///');
  }
  const segments = id.slice('kbs:///'.length).split('/');
  if (segments.length !== 3 || segments.some((s) => s === '')) throw bad('it needs exactly three non-empty path segments');
  if (segments.some((s) => s === '.' || s === '..')) throw bad('"." and ".." are not resource names');
  const unsafe = (s: string): boolean => /[\s?#%\\]|\p{Cc}/u.test(s);
  if (segments.some(unsafe)) throw bad('a segment contains a space, control character, ?, #, % or backslash');
  const [repo = '', type = '', tag = ''] = segments;
  return { id, repo, type, tag };
}

function parseCdhAddr(value: string | undefined): string {
  const text = value === undefined || value.trim() === '' ? CDH_DEFAULT_ADDR : value.trim();
  // Redacted: a value that fails to parse may still carry a password (`http://u:pw@[x`).
  const safe = redactSecrets(text);
  const shown = show(safe, 120);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalidInput(`invalid CDH_ADDR=${shown}: expected an http(s) URL such as ${CDH_DEFAULT_ADDR}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw invalidInput(`invalid CDH_ADDR=${shown}: expected an http(s) URL such as ${CDH_DEFAULT_ADDR}, not ${url.protocol}`);
  }
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    throw invalidInput('invalid CDH_ADDR: it must not carry credentials, a query or a fragment');
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

export function loadConfidentialSettings(env: Env): ConfidentialSettings {
  const enabled = parseBoolean('CONFIDENTIAL_ENABLED', env.CONFIDENTIAL_ENABLED, false);
  if (!enabled) return { enabled, resource: undefined, cdhAddr: CDH_DEFAULT_ADDR };
  const id = env.CONFIDENTIAL_RESOURCE_ID;
  if (id === undefined || id.trim() === '') {
    throw invalidInput(`CONFIDENTIAL_ENABLED=true needs CONFIDENTIAL_RESOURCE_ID=${RESOURCE_FORM}, the KBS resource of the model key`);
  }
  return {
    enabled,
    resource: parseKbsResourceId(id),
    cdhAddr: parseCdhAddr(env.CDH_ADDR),
  };
}
