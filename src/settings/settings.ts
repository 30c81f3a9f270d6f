/**
 * The one place that reads configuration: environment variables, STORAGE_CONFIG and CLI flags
 * become one typed, validated Settings object. Nothing else in the program reads process.env.
 */
import type { ArchiveLimits } from '../archive/index.js';
import type { LogFormat, LogLevel } from '../log.js';
import { loadAzureSettings, type AzureSettings } from './azure.js';
import { configValue, loadStorageConfig, type StorageConfig } from './storage-config.js';
import { loadGcsSettings, type GcsSettings } from './gcs.js';
import { loadHdfsSettings, type HdfsSettings } from './hdfs.js';
import { loadGitSettings, type GitSettings } from './git.js';
import { loadHubSettings, type HubSettings } from './hubs.js';
import { loadOciSettings, type OciSettings } from './oci.js';
import { loadConfidentialSettings, type ConfidentialSettings } from './confidential.js';
import {
  parseBoolean, parseBytes, parseChoice, parseDuration, parseHeaders, parseInteger, parsePatternList, parseSeconds, type Raw,
} from './values.js';

export type Env = Readonly<Record<string, string | undefined>>;

export type LocalMode = 'symlink' | 'copy';

/** CLI flags that override settings; values are the raw strings given on the command line. */
export interface Flags {
  concurrency?: string;
  partSize?: string;
  logFormat?: string;
  logLevel?: string;
  localMode?: string;
  maxAttempts?: string;
  progress?: boolean;
  deadline?: string;
}

export interface TransferSettings {
  /** Byte streams in flight at once, across files and parts of files. */
  concurrency: number;
  /** Size of one ranged part; files larger than this are fetched in parallel parts. */
  partSize: number;
  /** Attempts per part before the run fails (the first try included). */
  maxAttempts: number;
  /** A stream that delivers no byte for this long is abandoned and resumed. */
  idleTimeoutMs: number;
  progressIntervalMs: number;
  /** Live progress bar on a terminal. */
  progressBar: boolean;
}

export interface NetSettings {
  connectTimeoutMs: number;
  /** How long a response may go without a byte, headers or body (the transfer's idle timeout too). */
  readTimeoutMs: number;
  /** PEM files trusted in addition to the system roots (KServe's CA bundle ConfigMap). */
  caFiles: string[];
  httpProxy: string | undefined;
  httpsProxy: string | undefined;
  noProxy: string | undefined;
  /** Extra request headers per hostname, from the `<hostname>-headers` variables. */
  headersByHost: ReadonlyMap<string, Readonly<Record<string, string>>>;
}

export interface S3Settings {
  endpoint: string | undefined;
  region: string | undefined;
  accessKeyId: string | undefined;
  secretAccessKey: string | undefined;
  sessionToken: string | undefined;
  verifySsl: boolean;
  caBundle: string | undefined;
  anonymous: boolean;
  virtualHostedStyle: boolean;
  accelerate: boolean;
  connectTimeoutMs: number;
  readTimeoutMs: number;
  maxAttempts: number;
  maxFileConcurrency: number;
}

export interface Settings {
  log: { level: LogLevel; format: LogFormat };
  transfer: TransferSettings;
  net: NetSettings;
  archive: ArchiveLimits;
  patterns: { allow: string[]; ignore: string[] };
  /** How local/PVC sources land in DEST: upstream symlinks top-level entries; copy makes real files. */
  localMode: LocalMode;
  s3: S3Settings;
  gcs: GcsSettings;
  hdfs: HdfsSettings;
  git: GitSettings;
  azure: AzureSettings;
  hubs: HubSettings;
  oci: OciSettings;
  /** Decrypting JWE model files after download (Confidential Containers). */
  confidential: ConfidentialSettings;
  storageConfig: StorageConfig;
  /** Values that must never be printed; the logger masks them. */
  secrets: string[];
  /** The whole run is stopped after this long (partial files kept); 0 means no deadline. */
  deadlineMs: number;
}

const MiB = 2 ** 20;
const DEFAULT_CA_MOUNT = '/etc/ssl/custom-certs';

function first(env: Env, ...names: string[]): string | undefined {
  for (const name of names) {
    const value = env[name];
    if (value !== undefined && value !== '') return value;
  }
  return undefined;
}

function loadHeaders(env: Env): Map<string, Record<string, string>> {
  const byHost = new Map<string, Record<string, string>>();
  for (const [name, value] of Object.entries(env)) {
    if (!name.endsWith('-headers') || value === undefined || value === '') continue;
    const host = name.slice(0, -'-headers'.length).toLowerCase();
    byHost.set(host, parseHeaders(name, value));
  }
  return byHost;
}

function loadS3(env: Env, config: StorageConfig): S3Settings {
  // A `type: s3` storage-config secret takes precedence over the environment, as upstream sets env from it.
  const fromConfig = config.type === 's3';
  const cfg = (key: string): Raw => (fromConfig ? configValue(config, key) : undefined);
  const cfgText = (key: string): string | undefined => {
    const v = cfg(key);
    return v === undefined ? undefined : String(v);
  };
  const useHttps = parseBoolean('S3_USE_HTTPS', env.S3_USE_HTTPS, true);
  const s3Endpoint = env.S3_ENDPOINT;
  const hostEndpoint = s3Endpoint === undefined || s3Endpoint === '' ? undefined
    : /^https?:\/\//.test(s3Endpoint) ? s3Endpoint : `${useHttps ? 'https' : 'http'}://${s3Endpoint}`;
  const verifyOrigin = cfg('verify_ssl') !== undefined ? 'STORAGE_CONFIG.verify_ssl' : 'S3_VERIFY_SSL';
  const anonymousOrigin = cfg('anonymous') !== undefined ? 'STORAGE_CONFIG.anonymous' : 'awsAnonymousCredential';
  return {
    endpoint: cfgText('endpoint_url') ?? first(env, 'AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL') ?? hostEndpoint,
    region: cfgText('region') ?? first(env, 'AWS_REGION', 'AWS_DEFAULT_REGION'),
    accessKeyId: cfgText('access_key_id') ?? first(env, 'AWS_ACCESS_KEY_ID'),
    secretAccessKey: cfgText('secret_access_key') ?? first(env, 'AWS_SECRET_ACCESS_KEY'),
    sessionToken: first(env, 'AWS_SESSION_TOKEN'),
    verifySsl: parseBoolean(verifyOrigin, cfg('verify_ssl') ?? env.S3_VERIFY_SSL, true),
    caBundle: cfgText('ca_bundle') ?? first(env, 'AWS_CA_BUNDLE'),
    anonymous: parseBoolean(anonymousOrigin, cfg('anonymous') ?? env.awsAnonymousCredential, false),
    virtualHostedStyle: parseBoolean('S3_USER_VIRTUAL_BUCKET', env.S3_USER_VIRTUAL_BUCKET, false),
    accelerate: parseBoolean('S3_USE_ACCELERATE', env.S3_USE_ACCELERATE, false),
    connectTimeoutMs: parseSeconds('S3_CONNECT_TIMEOUT', env.S3_CONNECT_TIMEOUT, 15_000),
    readTimeoutMs: parseSeconds('S3_READ_TIMEOUT', env.S3_READ_TIMEOUT, 30_000),
    maxAttempts: parseInteger('S3_MAX_ATTEMPTS', env.S3_MAX_ATTEMPTS, 3, 1, 100),
    maxFileConcurrency: parseInteger('S3_MAX_FILE_CONCURRENCY', env.S3_MAX_FILE_CONCURRENCY, 4, 1, 1024),
  };
}

/** Names of variables whose values are credentials, masked in every log line. */
const SECRET_VARIABLES = [
  'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AZURE_STORAGE_ACCESS_KEY', 'AZURE_CLIENT_SECRET', 'AZ_CLIENT_SECRET',
  'GIT_PASSWORD', 'HF_TOKEN', 'MODELSCOPE_API_TOKEN', 'AZURE_STORAGE_SAS_TOKEN',
  'AZURE_STORAGE_CONNECTION_STRING',
];

function collectSecrets(env: Env, config: StorageConfig, headers: ReadonlyMap<string, Readonly<Record<string, string>>>): string[] {
  const secrets = SECRET_VARIABLES.map((name) => env[name]).filter((v): v is string => v !== undefined && v !== '');
  for (const [key, value] of Object.entries(config)) {
    if (typeof value === 'string' && /secret|key|token|password|keytab|cert/i.test(key) && key !== 'type') secrets.push(value);
  }
  for (const values of headers.values()) secrets.push(...Object.values(values));
  return secrets;
}

export function loadSettings(env: Env, flags: Flags = {}): Settings {
  const storageConfig = loadStorageConfig(env.STORAGE_CONFIG, env.STORAGE_OVERRIDE_CONFIG);
  const headersByHost = loadHeaders(env);
  const hdfs = loadHdfsSettings(env, storageConfig);
  const oci = loadOciSettings(env);
  const caMount = first(env, 'CA_BUNDLE_VOLUME_MOUNT_POINT') ?? DEFAULT_CA_MOUNT;
  const flagOrEnv = (flag: string | undefined, flagName: string, envName: string): [string, string | undefined] =>
    flag === undefined ? [envName, env[envName]] : [flagName, flag];

  const [concurrencyOrigin, concurrency] = flagOrEnv(flags.concurrency, '--concurrency', 'STORAGE_INITIALIZER_CONCURRENCY');
  const [partOrigin, partSize] = flagOrEnv(flags.partSize, '--part-size', 'STORAGE_INITIALIZER_PART_SIZE');
  const [attemptsOrigin, attempts] = flagOrEnv(flags.maxAttempts, '--max-attempts', 'STORAGE_INITIALIZER_MAX_ATTEMPTS');
  const [levelOrigin, level] = flagOrEnv(flags.logLevel, '--log-level', 'STORAGE_INITIALIZER_LOG_LEVEL');
  const [formatOrigin, format] = flagOrEnv(flags.logFormat, '--log-format', 'STORAGE_INITIALIZER_LOG_FORMAT');
  const [localOrigin, localMode] = flagOrEnv(flags.localMode, '--local-mode', 'STORAGE_INITIALIZER_LOCAL_MODE');
  const [deadlineOrigin, deadline] = flagOrEnv(flags.deadline, '--deadline', 'STORAGE_INITIALIZER_DEADLINE');
  const readTimeoutMs = parseSeconds('STORAGE_INITIALIZER_READ_TIMEOUT', env.STORAGE_INITIALIZER_READ_TIMEOUT, 30_000);

  return {
    log: {
      level: parseChoice(levelOrigin, level, 'info', ['debug', 'info', 'warn', 'error'] as const),
      format: parseChoice(formatOrigin, format, 'text', ['text', 'json'] as const),
    },
    transfer: {
      concurrency: parseInteger(concurrencyOrigin, concurrency, 8, 1, 256),
      partSize: parseBytes(partOrigin, partSize, 16 * MiB, 64 * 1024, 4 * 2 ** 30),
      maxAttempts: parseInteger(attemptsOrigin, attempts, 5, 1, 100),
      idleTimeoutMs: readTimeoutMs,
      progressIntervalMs: parseSeconds('STORAGE_INITIALIZER_PROGRESS_INTERVAL', env.STORAGE_INITIALIZER_PROGRESS_INTERVAL, 5_000),
      progressBar: flags.progress ?? true,
    },
    net: {
      connectTimeoutMs: parseSeconds('STORAGE_INITIALIZER_CONNECT_TIMEOUT', env.STORAGE_INITIALIZER_CONNECT_TIMEOUT, 15_000),
      readTimeoutMs,
      caFiles: first(env, 'CA_BUNDLE_CONFIGMAP_NAME') === undefined ? [] : [`${caMount.replace(/\/+$/, '')}/cabundle.crt`],
      httpProxy: first(env, 'HTTP_PROXY', 'http_proxy'),
      httpsProxy: first(env, 'HTTPS_PROXY', 'https_proxy'),
      noProxy: first(env, 'NO_PROXY', 'no_proxy'),
      headersByHost,
    },
    archive: {
      maxBytes: parseBytes('STORAGE_INITIALIZER_ARCHIVE_MAX_BYTES', env.STORAGE_INITIALIZER_ARCHIVE_MAX_BYTES, 2 ** 40, 1),
      maxEntries: parseInteger('STORAGE_INITIALIZER_ARCHIVE_MAX_ENTRIES', env.STORAGE_INITIALIZER_ARCHIVE_MAX_ENTRIES, 1_000_000, 1),
      maxRatio: parseInteger('STORAGE_INITIALIZER_ARCHIVE_MAX_RATIO', env.STORAGE_INITIALIZER_ARCHIVE_MAX_RATIO, 1000, 1),
    },
    patterns: {
      allow: parsePatternList('STORAGE_ALLOW_PATTERNS', env.STORAGE_ALLOW_PATTERNS),
      ignore: parsePatternList('STORAGE_IGNORE_PATTERNS', env.STORAGE_IGNORE_PATTERNS),
    },
    localMode: parseChoice(localOrigin, localMode, 'symlink', ['symlink', 'copy'] as const),
    s3: loadS3(env, storageConfig),
    gcs: loadGcsSettings(env),
    hdfs,
    git: loadGitSettings(env),
    azure: loadAzureSettings(env),
    hubs: loadHubSettings(env),
    oci,
    confidential: loadConfidentialSettings(env),
    storageConfig,
    secrets: [...collectSecrets(env, storageConfig, headersByHost), ...hdfs.secrets, ...oci.secrets],
    deadlineMs: parseDuration(deadlineOrigin, deadline),
  };
}
