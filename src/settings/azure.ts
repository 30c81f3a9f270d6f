/**
 * Azure settings from the environment, as KServe sets them.
 *
 * Credentials (the sources pick the first that applies, in the contract's order):
 *   1. `AZURE_CLIENT_ID` (or upstream's `AZ_CLIENT_ID`, copied here rather than into process.env):
 *      a token credential chain of service principal (`AZURE_TENANT_ID` + `AZURE_CLIENT_SECRET`),
 *      workload identity (`AZURE_FEDERATED_TOKEN_FILE`), managed identity.
 *   2. `AZURE_STORAGE_ACCESS_KEY` (or the AccountKey of `AZURE_STORAGE_CONNECTION_STRING`): Shared Key.
 *   3. A SAS in the URI (or `SharedAccessSignature` of the connection string).
 *   4. Anonymous (public containers).
 *
 * Endpoints: the URI's host, unless overridden for Azurite, private endpoints or sovereign clouds by
 * `AZURE_STORAGE_BLOB_ENDPOINT` / `AZURE_STORAGE_FILE_ENDPOINT` (full URL, path included, e.g.
 * `http://127.0.0.1:10000/devstoreaccount1`), else the `BlobEndpoint` / `FileEndpoint` of
 * `AZURE_STORAGE_CONNECTION_STRING`. The URI still names the container and path.
 *
 * `AZURE_MAX_FILE_CONCURRENCY` / `AZURE_MAX_CHUNK_CONCURRENCY` (4 each) are upstream's knobs. Our
 * engine has one pool of streams across files and parts (`--concurrency`), so they are kept here
 * for information only; the engine's concurrency decides.
 */
import { invalidInput } from '../errors.js';
import { parseInteger } from './values.js';

type Env = Readonly<Record<string, string | undefined>>;

export interface AzureConnectionString {
  accountName: string | undefined;
  accountKey: string | undefined;
  sas: string | undefined;
  blobEndpoint: string | undefined;
  fileEndpoint: string | undefined;
}

export interface AzureSettings {
  tenantId: string | undefined;
  clientId: string | undefined;
  clientSecret: string | undefined;
  federatedTokenFile: string | undefined;
  authorityHost: string | undefined;
  accountKey: string | undefined;
  connectionString: AzureConnectionString | undefined;
  blobEndpoint: string | undefined;
  fileEndpoint: string | undefined;
  maxFileConcurrency: number;
  maxChunkConcurrency: number;
}

function first(env: Env, ...names: string[]): string | undefined {
  for (const name of names) {
    const value = env[name];
    if (value !== undefined && value.trim() !== '') return value.trim();
  }
  return undefined;
}

function endpointUrl(origin: string, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalidInput(`invalid ${origin}: expected an http(s) URL such as http://127.0.0.1:10000/devstoreaccount1`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalidInput(`invalid ${origin}: expected an http(s) URL`);
  if (url.username !== '' || url.password !== '' || url.search !== '') {
    throw invalidInput(`invalid ${origin}: the endpoint must not carry credentials or a query`);
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/** `Key=Value;Key=Value` as Azure prints it; values may contain `=` (base64 keys, SAS tokens). */
export function parseConnectionString(text: string): AzureConnectionString {
  const fields = new Map<string, string>();
  for (const part of text.split(';')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    // Never echo the text: it holds the account key.
    if (eq <= 0) throw invalidInput('invalid AZURE_STORAGE_CONNECTION_STRING: expected Key=Value pairs separated by ";"');
    fields.set(part.slice(0, eq).trim().toLowerCase(), part.slice(eq + 1).trim());
  }
  const accountName = fields.get('accountname');
  const protocol = fields.get('defaultendpointsprotocol') ?? 'https';
  const suffix = fields.get('endpointsuffix');
  const derived = (service: string): string | undefined =>
    accountName !== undefined && suffix !== undefined ? `${protocol}://${accountName}.${service}.${suffix}` : undefined;
  const sas = fields.get('sharedaccesssignature')?.replace(/^\?/, '');
  return {
    accountName,
    accountKey: fields.get('accountkey'),
    sas: sas === '' ? undefined : sas,
    blobEndpoint: endpointUrl('BlobEndpoint of AZURE_STORAGE_CONNECTION_STRING', fields.get('blobendpoint') ?? derived('blob')),
    fileEndpoint: endpointUrl('FileEndpoint of AZURE_STORAGE_CONNECTION_STRING', fields.get('fileendpoint') ?? derived('file')),
  };
}

export function loadAzureSettings(env: Env): AzureSettings {
  const connection = first(env, 'AZURE_STORAGE_CONNECTION_STRING');
  return {
    // Upstream copies AZ_* to AZURE_*; an explicit AZURE_* value wins.
    tenantId: first(env, 'AZURE_TENANT_ID', 'AZ_TENANT_ID'),
    clientId: first(env, 'AZURE_CLIENT_ID', 'AZ_CLIENT_ID'),
    clientSecret: first(env, 'AZURE_CLIENT_SECRET', 'AZ_CLIENT_SECRET'),
    federatedTokenFile: first(env, 'AZURE_FEDERATED_TOKEN_FILE'),
    authorityHost: first(env, 'AZURE_AUTHORITY_HOST'),
    accountKey: first(env, 'AZURE_STORAGE_ACCESS_KEY'),
    connectionString: connection === undefined ? undefined : parseConnectionString(connection),
    blobEndpoint: endpointUrl('AZURE_STORAGE_BLOB_ENDPOINT', first(env, 'AZURE_STORAGE_BLOB_ENDPOINT')),
    fileEndpoint: endpointUrl('AZURE_STORAGE_FILE_ENDPOINT', first(env, 'AZURE_STORAGE_FILE_ENDPOINT')),
    maxFileConcurrency: parseInteger('AZURE_MAX_FILE_CONCURRENCY', env.AZURE_MAX_FILE_CONCURRENCY, 4, 1, 1024),
    maxChunkConcurrency: parseInteger('AZURE_MAX_CHUNK_CONCURRENCY', env.AZURE_MAX_CHUNK_CONCURRENCY, 4, 1, 1024),
  };
}
