/**
 * Validators for KServe's custom resources, built from the CustomResourceDefinitions KServe ships
 * (kept unmodified beside the repository in shared/kserve, or KSERVE_REFERENCE_DIR).
 *
 * The API server rejects unknown fields (kubectl's default field validation is Strict), while a
 * JSON schema allows them; so every object schema that lists its properties, and does not say
 * x-kubernetes-preserve-unknown-fields, is closed here. A misspelt key then fails as it would on
 * a cluster.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { parse } from 'yaml';

const REPO = path.resolve(import.meta.dirname, '..', '..');

export const KSERVE_REFERENCE_DIR = process.env.KSERVE_REFERENCE_DIR ?? path.resolve(REPO, '..', 'shared', 'kserve');

/**
 * A node:test `skip` value for tests that need KServe's reference files. They are KServe's own
 * files, not committed here; a checkout without them beside it skips these tests and says why.
 */
export const SKIP_WITHOUT_REFERENCE: string | false = existsSync(path.join(KSERVE_REFERENCE_DIR, 'inferenceservice.yaml'))
  ? false : `KServe's reference CRDs and inferenceservice.yaml are not in ${KSERVE_REFERENCE_DIR} (set KSERVE_REFERENCE_DIR)`;

export function referenceFile(name: string): string {
  const file = path.join(KSERVE_REFERENCE_DIR, name);
  if (!existsSync(file)) throw new Error(`${file} is missing: set KSERVE_REFERENCE_DIR to a folder with KServe's CRDs and inferenceservice.yaml`);
  return file;
}

type Schema = Record<string, unknown>;

function isSchema(value: unknown): value is Schema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A copy of the schema with every listed-properties object closed, as the API server treats it. */
function closeObjects(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closeObjects);
  if (!isSchema(schema)) return schema;
  const copy: Schema = {};
  for (const [key, value] of Object.entries(schema)) copy[key] = closeObjects(value);
  if (isSchema(copy.properties) && copy.additionalProperties === undefined && copy['x-kubernetes-preserve-unknown-fields'] !== true) {
    copy.additionalProperties = false;
  }
  return copy;
}

interface Crd {
  spec: { group: string; names: { kind: string }; versions: { name: string; schema: { openAPIV3Schema: unknown } }[] };
}

/**
 * The schema cut down to the fields the given instances use, so that compiling it takes
 * milliseconds instead of the many seconds the whole InferenceService schema takes. Every field an
 * instance has keeps its (likewise cut) schema, so an instance passes the cut schema exactly when
 * it passes the whole one; a field no instance has cannot matter. Combinators and maps are kept
 * whole.
 */
function prune(schema: unknown, instances: unknown[]): unknown {
  if (!isSchema(schema)) return schema;
  const copy: Schema = { ...schema };
  if (isSchema(schema.properties)) {
    const objects = instances.filter(isSchema);
    const kept: Schema = {};
    for (const [name, sub] of Object.entries(schema.properties)) {
      const values = objects.filter((o) => name in o).map((o) => o[name]);
      if (values.length > 0) kept[name] = prune(sub, values);
    }
    copy.properties = kept;
  }
  if (isSchema(schema.items)) {
    copy.items = prune(schema.items, instances.filter(Array.isArray).flat());
  }
  return copy;
}

export interface KubeDocument {
  apiVersion: string;
  kind: string;
}

export type CrdValidator = (doc: KubeDocument) => string[];

/**
 * A validator for the kind a CRD file defines, built for the given documents (see prune); it
 * refuses a document of another kind or version than the CRD serves.
 */
export function crdValidator(fileName: string, docs: readonly KubeDocument[]): CrdValidator {
  const crd = parse(readFileSync(referenceFile(fileName), 'utf8')) as Crd;
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false, logger: false });
  const validators = new Map<string, ValidateFunction>();
  for (const version of crd.spec.versions) {
    const apiVersion = `${crd.spec.group}/${version.name}`;
    const instances = docs.filter((d) => d.apiVersion === apiVersion && d.kind === crd.spec.names.kind);
    validators.set(apiVersion, ajv.compile(prune(closeObjects(version.schema.openAPIV3Schema), instances) as Schema));
  }
  return (doc) => {
    const validate = doc.kind === crd.spec.names.kind ? validators.get(doc.apiVersion) : undefined;
    if (validate === undefined) return [`${fileName} defines no ${doc.apiVersion} ${doc.kind}`];
    if (validate(doc)) return [];
    return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
  };
}
