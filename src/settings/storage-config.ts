/**
 * STORAGE_CONFIG (the JSON of KServe's `storage-config` secret) shallow-merged with
 * STORAGE_OVERRIDE_CONFIG, as upstream does. Backends read their keys from the merged object.
 */
import { invalidInput } from '../errors.js';
import { parseJson } from './values.js';

export type StorageConfig = Readonly<Record<string, unknown>>;

function parseObject(name: string, text: string | undefined): Record<string, unknown> {
  if (text === undefined || text.trim() === '') return {};
  const parsed = parseJson(name, text);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw invalidInput(`invalid ${name}: expected a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

export function loadStorageConfig(config: string | undefined, override: string | undefined): StorageConfig {
  const merged = { ...parseObject('STORAGE_CONFIG', config), ...parseObject('STORAGE_OVERRIDE_CONFIG', override) };
  if (merged.type !== undefined && typeof merged.type !== 'string') {
    throw invalidInput('invalid STORAGE_CONFIG: "type" must be a string such as "s3"');
  }
  return merged;
}

/** A string-ish value of the config (numbers and booleans as their text), or undefined. */
export function configValue(config: StorageConfig, key: string): string | boolean | number | undefined {
  const value = config[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string' || typeof value === 'boolean' || typeof value === 'number') return value;
  throw invalidInput(`invalid STORAGE_CONFIG: "${key}" must be a string, number or boolean`);
}
