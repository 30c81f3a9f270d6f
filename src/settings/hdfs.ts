/**
 * HDFS (WebHDFS) settings, as KServe hands them over: one file per key in `HDFS_SECRET_DIR`
 * (default `/var/secrets/kserve-hdfscreds`, the mounted `hdfscreds` secret), or, when the
 * `storage-config` secret has `type: hdfs` / `webhdfs`, the same keys in STORAGE_CONFIG (upstream
 * writes them into a fresh secret dir, so they replace the mounted one; `KERBEROS_KEYTAB` and
 * `TLS_*` arrive base64-encoded there).
 *
 *   HDFS_NAMENODE       `;`- or `,`-separated HA list of `http(s)://host:port[/base]` or `host:port`
 *                       (bare ones use https when a TLS_* key is set, else http)
 *   USER_PROXY          the user to read as (see WebHdfsSource for how it is sent)
 *   HDFS_ROOTPATH       what relative paths (`hdfs://user/me/model`) are resolved against; default `/`
 *   TLS_CERT, TLS_KEY   PEM client certificate and key (both or neither)
 *   TLS_CA              PEM CA to trust in addition to the system roots
 *   TLS_SKIP_VERIFY     true/false
 *   HEADERS             JSON object of extra request headers for the namenode (a gateway token)
 *   N_THREADS           upstream's download threads; kept for information (the engine's --concurrency decides)
 *   KERBEROS_PRINCIPAL  the Kerberos principal to authenticate as (SPNEGO), with
 *   KERBEROS_KEYTAB     its keytab (binary; base64 in STORAGE_CONFIG); both or neither
 *
 * Secret values (TLS key, headers, keytab) go to `secrets`, which loadSettings merges into the
 * values the logger masks; no message here ever echoes them.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describeError, errorCode, invalidInput } from '../errors.js';
import { redactSecrets } from '../uri/redact.js';
import type { StorageConfig } from './storage-config.js';
import { parseBoolean, parseHeaders, parseInteger } from './values.js';

type Env = Readonly<Record<string, string | undefined>>;

export const HDFS_DEFAULT_SECRET_DIR = '/var/secrets/kserve-hdfscreds';

const KEYS = [
  'HDFS_NAMENODE', 'USER_PROXY', 'HDFS_ROOTPATH', 'TLS_CERT', 'TLS_KEY', 'TLS_CA', 'TLS_SKIP_VERIFY', 'HEADERS',
  'N_THREADS', 'KERBEROS_KEYTAB', 'KERBEROS_PRINCIPAL',
] as const;
type Key = (typeof KEYS)[number];
const BASE64_KEYS: ReadonlySet<Key> = new Set(['KERBEROS_KEYTAB', 'TLS_CERT', 'TLS_KEY', 'TLS_CA']);
const MAX_FILE_BYTES = 1024 * 1024;

export interface HdfsSettings {
  /** Where the settings came from, for messages: `HDFS_SECRET_DIR /path` or `STORAGE_CONFIG`; undefined when none exist. */
  origin: string | undefined;
  /** Namenode base URLs (origin plus optional gateway path, no trailing slash), in HA order. */
  namenodes: string[];
  userProxy: string | undefined;
  /** Absolute, without a trailing slash except for `/` itself. */
  rootPath: string;
  /** PEM texts. */
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  tlsCa: string | undefined;
  tlsSkipVerify: boolean;
  /** The scheme for a bare `host:port` namenode (in HDFS_NAMENODE or in the URI). */
  defaultScheme: 'http' | 'https';
  headers: Readonly<Record<string, string>>;
  nThreads: number;
  /** Set when KERBEROS_PRINCIPAL and KERBEROS_KEYTAB are. */
  kerberos: HdfsKerberos | undefined;
  /** Values that must never be printed. */
  secrets: string[];
}

export interface HdfsKerberos {
  principal: string;
  /** The keytab file's bytes (a secret). */
  keytab: Buffer;
  /** Where they came from, for messages: `HDFS_SECRET_DIR /path` or `STORAGE_CONFIG`. */
  where: string;
}

function readSecretDir(dir: string): Map<Key, Buffer> | undefined {
  let present: Set<string>;
  try {
    present = new Set(readdirSync(dir));
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return undefined; // no HDFS credentials mounted
    throw invalidInput(`cannot read HDFS_SECRET_DIR ${dir}: ${describeError(err)}`, err);
  }
  const values = new Map<Key, Buffer>();
  for (const key of KEYS) {
    if (!present.has(key)) continue;
    const file = path.join(dir, key);
    let data: Buffer;
    try {
      if (statSync(file).size > MAX_FILE_BYTES) throw new Error('larger than 1 MiB');
      data = readFileSync(file);
    } catch (err) {
      throw invalidInput(`cannot read ${key} in HDFS_SECRET_DIR ${dir}: ${describeError(err)}`, err);
    }
    values.set(key, data);
  }
  return values;
}

function fromStorageConfig(config: StorageConfig): Map<Key, Buffer> {
  const values = new Map<Key, Buffer>();
  for (const key of KEYS) {
    const value = config[key];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw invalidInput(`invalid STORAGE_CONFIG.${key}: expected a string`);
    }
    const text = String(value);
    if (BASE64_KEYS.has(key)) {
      const compact = text.replace(/\s+/g, '');
      if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(compact)) throw invalidInput(`invalid STORAGE_CONFIG.${key}: expected base64 (upstream base64-decodes it)`);
      values.set(key, Buffer.from(compact, 'base64'));
    } else {
      values.set(key, Buffer.from(text, 'utf8'));
    }
  }
  return values;
}

/** `http(s)://host:port[/base]` or `host:port` -> base URL. Namenode lists carry no secrets, so they may be quoted. */
function namenodeUrl(origin: string, entry: string, scheme: 'http' | 'https'): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(entry) ? entry : `${scheme}://${entry}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    // An entry that does not parse may still carry a password (`http://u:pw@[bad`).
    throw invalidInput(`invalid ${origin}: ${JSON.stringify(redactSecrets(entry))} is not host:port or an http(s) URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw invalidInput(`invalid ${origin}: ${JSON.stringify(redactSecrets(entry))} must be an http(s) URL of the WebHDFS endpoint (e.g. http://namenode:9870), not ${url.protocol}`);
  }
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    throw invalidInput(`invalid ${origin}: a namenode URL must not carry credentials, a query or a fragment`);
  }
  const base = url.pathname.replace(/\/+$/, '').replace(/\/webhdfs\/v1$/, '');
  return `${url.origin}${base}`;
}

function pem(origin: string, data: Buffer, what: 'CERTIFICATE' | 'PRIVATE KEY'): string {
  const text = data.toString('utf8');
  // Never quote the text: it may be a private key.
  if (!new RegExp(`-----BEGIN [A-Z ]*${what}-----`).test(text)) throw invalidInput(`invalid ${origin}: expected a PEM ${what.toLowerCase()}`);
  return text;
}

export function loadHdfsSettings(env: Env, storageConfig: StorageConfig): HdfsSettings {
  const dir = env.HDFS_SECRET_DIR !== undefined && env.HDFS_SECRET_DIR.trim() !== '' ? env.HDFS_SECRET_DIR.trim() : HDFS_DEFAULT_SECRET_DIR;
  const fromConfig = storageConfig.type === 'hdfs' || storageConfig.type === 'webhdfs';
  const values = fromConfig ? fromStorageConfig(storageConfig) : readSecretDir(dir);
  const sourceName = fromConfig ? 'STORAGE_CONFIG' : `HDFS_SECRET_DIR ${dir}`;
  const name = (key: Key): string => (fromConfig ? `STORAGE_CONFIG.${key}` : `${key} (in HDFS_SECRET_DIR ${dir})`);
  const raw = (key: Key): Buffer | undefined => values?.get(key);
  const text = (key: Key): string | undefined => {
    const v = raw(key)?.toString('utf8').trim();
    return v === undefined || v === '' ? undefined : v;
  };

  const secrets: string[] = [];
  const tlsKeyData = raw('TLS_KEY');
  const tlsKey = tlsKeyData === undefined || tlsKeyData.length === 0 ? undefined : tlsKeyData.toString('utf8');
  if (tlsKey !== undefined) secrets.push(tlsKey, tlsKey.trim());
  const headersText = text('HEADERS');
  const keytab = raw('KERBEROS_KEYTAB');
  if (fromConfig) {
    for (const key of ['TLS_KEY', 'KERBEROS_KEYTAB', 'HEADERS'] as const) {
      const v = storageConfig[key];
      if (typeof v === 'string' && v !== '') secrets.push(v);
    }
  }
  if (keytab !== undefined && keytab.length > 0) secrets.push(keytab.toString('base64'));

  let headers: Record<string, string> = {};
  if (headersText !== undefined) {
    headers = parseHeaders(name('HEADERS'), headersText);
    secrets.push(...Object.values(headers).filter((v) => v !== ''));
  }

  const tlsCert = raw('TLS_CERT')?.length ? pem(name('TLS_CERT'), raw('TLS_CERT') ?? Buffer.alloc(0), 'CERTIFICATE') : undefined;
  const tlsCa = raw('TLS_CA')?.length ? pem(name('TLS_CA'), raw('TLS_CA') ?? Buffer.alloc(0), 'CERTIFICATE') : undefined;
  if (tlsKey !== undefined) pem(name('TLS_KEY'), Buffer.from(tlsKey), 'PRIVATE KEY');
  if ((tlsCert === undefined) !== (tlsKey === undefined)) {
    throw invalidInput(`invalid ${sourceName}: TLS_CERT and TLS_KEY go together (a client certificate needs its key)`);
  }
  const tlsSkipVerify = parseBoolean(name('TLS_SKIP_VERIFY'), text('TLS_SKIP_VERIFY'), false);
  const defaultScheme = tlsCert !== undefined || tlsCa !== undefined || tlsSkipVerify ? 'https' : 'http';

  const namenodeList = text('HDFS_NAMENODE');
  const namenodes = namenodeList === undefined ? [] : namenodeList.split(/[;,\s]+/).filter((e) => e !== '')
    .map((entry) => namenodeUrl(name('HDFS_NAMENODE'), entry, defaultScheme));

  const rootText = text('HDFS_ROOTPATH') ?? '/';
  if (!rootText.startsWith('/')) throw invalidInput(`invalid ${name('HDFS_ROOTPATH')}=${JSON.stringify(rootText)}: expected an absolute HDFS path such as /user/kserve`);
  if (rootText.split('/').some((s) => s === '..' || s === '.')) throw invalidInput(`invalid ${name('HDFS_ROOTPATH')}: "." and ".." segments are not allowed`);
  const rootPath = rootText.replace(/\/+/g, '/').replace(/(.)\/$/, '$1');

  const userProxy = text('USER_PROXY');
  if (userProxy !== undefined && /[\s/:]/.test(userProxy)) throw invalidInput(`invalid ${name('USER_PROXY')}=${JSON.stringify(userProxy)}: expected a user name`);

  const principal = text('KERBEROS_PRINCIPAL');
  if (principal !== undefined && !/^[^\s@/]+(?:\/[^\s@/]+)*(?:@[^\s@/]+)?$/.test(principal)) {
    throw invalidInput(`invalid ${name('KERBEROS_PRINCIPAL')}=${JSON.stringify(principal)}: expected a Kerberos principal such as kserve@EXAMPLE.COM or kserve/host@EXAMPLE.COM`);
  }
  const hasKeytab = keytab !== undefined && keytab.length > 0;
  if ((principal === undefined) !== !hasKeytab) {
    throw invalidInput(`invalid ${sourceName}: KERBEROS_PRINCIPAL and KERBEROS_KEYTAB go together (${principal === undefined ? 'a keytab needs the principal to authenticate as' : 'the principal needs its keytab'})`);
  }

  return {
    origin: values === undefined ? undefined : sourceName,
    namenodes,
    userProxy,
    rootPath,
    tlsCert,
    tlsKey,
    tlsCa,
    tlsSkipVerify,
    defaultScheme,
    headers,
    nThreads: parseInteger(name('N_THREADS'), text('N_THREADS'), 2, 1, 1024),
    kerberos: principal === undefined || keytab === undefined || keytab.length === 0 ? undefined : { principal, keytab, where: sourceName },
    secrets,
  };
}
