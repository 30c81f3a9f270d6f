/**
 * Google Cloud Storage settings from the environment. The endpoint follows the official SDKs
 * (`STORAGE_EMULATOR_HOST`) and gcloud (`CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE`); credentials
 * follow Application Default Credentials: the key file named by GOOGLE_APPLICATION_CREDENTIALS,
 * then gcloud's ADC file, then the metadata server (workload identity).
 */
import { homedir } from 'node:os';
import path from 'node:path';
import { invalidInput } from '../errors.js';

type Env = Readonly<Record<string, string | undefined>>;

export const GCS_DEFAULT_ENDPOINT = 'https://storage.googleapis.com';

export interface GcsSettings {
  /** Origin (and optional base path) of the JSON API, without a trailing slash. */
  endpoint: string;
  /** Which variable set the endpoint, for messages; undefined for the default. */
  endpointOrigin: string | undefined;
  /** GOOGLE_APPLICATION_CREDENTIALS: a service-account key or another ADC JSON file. */
  credentialsFile: string | undefined;
  /** Where gcloud keeps application default credentials (`gcloud auth application-default login`). */
  adcFile: string;
  /** GCE_METADATA_HOST / GCE_METADATA_IP, when the metadata server is not the usual one (informational: the auth library reads it). */
  metadataHost: string | undefined;
  /** GOOGLE_CLOUD_PROJECT / GCLOUD_PROJECT, passed to the auth library so it need not discover one. */
  projectId: string | undefined;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

/** `http://host:port`, `https://host`, or a bare `host:port` (emulators speak plain HTTP). */
function endpointFrom(name: string, value: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw invalidInput(`${name} is not a valid URL or host:port: ${JSON.stringify(value)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalidInput(`${name} must be an http(s) URL, got ${url.protocol}`);
  // gcloud's override may name the API root (".../storage/v1/"); we append that path ourselves.
  const base = url.pathname.replace(/\/+$/, '').replace(/\/storage\/v1$/, '');
  return `${url.origin}${base}`;
}

export function loadGcsSettings(env: Env): GcsSettings {
  const emulator = nonEmpty(env.STORAGE_EMULATOR_HOST);
  const gcloudOverride = nonEmpty(env.CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE);
  const [endpointOrigin, endpoint] = emulator !== undefined ? ['STORAGE_EMULATOR_HOST', endpointFrom('STORAGE_EMULATOR_HOST', emulator)]
    : gcloudOverride !== undefined ? ['CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE', endpointFrom('CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE', gcloudOverride)]
      : [undefined, GCS_DEFAULT_ENDPOINT];
  const configDir = nonEmpty(env.CLOUDSDK_CONFIG) ?? path.join(nonEmpty(env.HOME) ?? homedir(), '.config', 'gcloud');
  return {
    endpoint,
    endpointOrigin,
    credentialsFile: nonEmpty(env.GOOGLE_APPLICATION_CREDENTIALS),
    adcFile: path.join(configDir, 'application_default_credentials.json'),
    metadataHost: nonEmpty(env.GCE_METADATA_HOST) ?? nonEmpty(env.GCE_METADATA_IP),
    projectId: nonEmpty(env.GOOGLE_CLOUD_PROJECT) ?? nonEmpty(env.GCLOUD_PROJECT),
  };
}
