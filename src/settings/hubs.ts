/**
 * Model hub settings: Hugging Face (`HF_TOKEN`, `HF_ENDPOINT`) and ModelScope
 * (`MODELSCOPE_API_TOKEN`, `MODELSCOPE_ENDPOINT` or `MODELSCOPE_DOMAIN`). Both tokens are listed
 * as secrets in settings.ts, so the logger masks them.
 */
import { invalidInput } from '../errors.js';
import type { Env } from './settings.js';

export interface HubEndpoint {
  /** Origin plus optional base path, without a trailing slash: `https://huggingface.co`. */
  endpoint: string;
  token: string | undefined;
}

export interface HubSettings {
  hf: HubEndpoint;
  modelscope: HubEndpoint;
}

export const DEFAULT_HF_ENDPOINT = 'https://huggingface.co';
export const DEFAULT_MODELSCOPE_DOMAIN = 'www.modelscope.cn';

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}

/** An http(s) base URL without query, fragment, credentials or trailing slash. */
function endpointUrl(origin: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalidInput(`invalid ${origin}=${JSON.stringify(value)}: expected an http(s) URL such as ${DEFAULT_HF_ENDPOINT}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalidInput(`invalid ${origin}: expected an http(s) URL, got ${url.protocol}`);
  if (url.username !== '' || url.password !== '') throw invalidInput(`invalid ${origin}: credentials in the URL are not supported; use the token variable`);
  if (url.search !== '' || url.hash !== '') throw invalidInput(`invalid ${origin}: expected a base URL without query or fragment`);
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

export function loadHubSettings(env: Env): HubSettings {
  const hfEndpoint = nonEmpty(env.HF_ENDPOINT);
  const msEndpoint = nonEmpty(env.MODELSCOPE_ENDPOINT);
  // The ModelScope SDK takes a bare domain (scheme https); a full URL is accepted too.
  const msDomain = nonEmpty(env.MODELSCOPE_DOMAIN);
  const modelscope = msEndpoint !== undefined
    ? endpointUrl('MODELSCOPE_ENDPOINT', msEndpoint)
    : endpointUrl('MODELSCOPE_DOMAIN', /^https?:\/\//i.test(msDomain ?? '') ? msDomain ?? '' : `https://${msDomain ?? DEFAULT_MODELSCOPE_DOMAIN}`);
  return {
    hf: {
      endpoint: hfEndpoint === undefined ? DEFAULT_HF_ENDPOINT : endpointUrl('HF_ENDPOINT', hfEndpoint),
      token: nonEmpty(env.HF_TOKEN),
    },
    modelscope: { endpoint: modelscope, token: nonEmpty(env.MODELSCOPE_API_TOKEN) },
  };
}
