/**
 * The Kubernetes manifests in deploy/kubernetes: they parse, kubectl accepts them, KServe's CRDs
 * accept the custom resources, the URI formats registered with KServe are exactly the forms our
 * parser accepts, and every place that names the image names the same one.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parse, parseAllDocuments } from 'yaml';
import { parseStorageUri, URI_EXAMPLES } from '../../src/uri/index.js';
import { skipWithout } from '../helpers/system.js';
import { startApiServerDouble } from './api-server-double.js';
import { crdValidator, referenceFile, SKIP_WITHOUT_REFERENCE } from './kserve-schemas.js';

const run = promisify(execFile);
const REPO = path.resolve(import.meta.dirname, '..', '..');
const DEPLOY = path.join(REPO, 'deploy', 'kubernetes');
const KUBECTL = skipWithout('kubectl', { notInstalledByCi: true });
const CLUSTER_SCOPED = new Set(['ClusterStorageContainer', 'LocalModelCache', 'Namespace']);

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  [field: string]: unknown;
}

interface UriFormat {
  prefix?: string;
  regex?: string;
}

interface StorageContainer extends K8sObject {
  spec: {
    container: { image: string; resources: { requests: Record<string, string>; limits: Record<string, string> } };
    supportedUriFormats: UriFormat[];
    workloadType?: string;
  };
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return yamlFiles(full);
    return /\.ya?ml$/.test(entry.name) ? [full] : [];
  }).sort();
}

const FILES = yamlFiles(DEPLOY);
const rel = (file: string) => path.relative(REPO, file);

function documentsOf(file: string): K8sObject[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'));
  return docs.map((doc, i) => {
    assert.deepEqual(doc.errors.map(String), [], `${rel(file)} document ${i + 1} has YAML errors`);
    assert.deepEqual(doc.warnings.map(String), [], `${rel(file)} document ${i + 1} has YAML warnings`);
    return doc.toJS() as K8sObject;
  });
}

const MANIFESTS = new Map(FILES.map((file) => [file, documentsOf(file)]));
const ALL = [...MANIFESTS.values()].flat();
const ofKind = <T extends K8sObject>(kind: string) => ALL.filter((o): o is T => o.kind === kind);

function mainStorageContainer(): StorageContainer {
  const docs = MANIFESTS.get(path.join(DEPLOY, 'cluster-storage-container.yaml')) ?? [];
  assert.equal(docs.length, 1, 'cluster-storage-container.yaml holds one ClusterStorageContainer');
  const csc = docs[0] as StorageContainer;
  assert.equal(csc.kind, 'ClusterStorageContainer');
  return csc;
}

function configPatchValue(file: string, key: string): Record<string, unknown> {
  const docs = MANIFESTS.get(path.join(DEPLOY, file)) ?? [];
  const data = (docs[0] as { data?: Record<string, string> } | undefined)?.data ?? {};
  const text = data[key];
  assert.ok(text !== undefined, `${file} sets data.${key}`);
  return JSON.parse(text) as Record<string, unknown>;
}

/**
 * The "keys" of one entry in the commented example block of KServe's ConfigMap (`KEY: |-` then a
 * JSON-with-comments object up to the closing brace at the same indentation).
 */
function keysOfExample(example: string, key: string): Set<string> {
  const keys = new Set<string>();
  const lines = example.split('\n');
  lines.forEach((line, i) => {
    const head = new RegExp(`^(\\s*)${key}: \\|-$`).exec(line);
    if (head === null) return;
    const close = `${head[1] ?? ''}  }`;
    for (const body of lines.slice(i + 1)) {
      for (const match of body.replace(/#.*/, '').matchAll(/"(\w+)"\s*:/g)) keys.add(match[1] ?? '');
      if (body.trimEnd() === close) break;
    }
  });
  return keys;
}

/** Syntax JavaScript accepts and Go's RE2 (which KServe compiles the regexes with) does not. */
function re2Problems(pattern: string): string[] {
  const problems: string[] = [];
  if (/\(\?<?[=!]/.test(pattern)) problems.push('lookaround');
  if (/\\[1-9]|\\k</.test(pattern)) problems.push('backreference');
  if (/\(\?>/.test(pattern)) problems.push('atomic group');
  if (/[*+?}]\+/.test(pattern)) problems.push('possessive quantifier');
  return problems;
}

function matches(format: UriFormat, uri: string): boolean {
  // KServe: a non-empty prefix is compared with strings.HasPrefix, else regexp.MatchString (unanchored).
  if (format.prefix !== undefined && format.prefix !== '') return uri.startsWith(format.prefix);
  return format.regex !== undefined && format.regex !== '' && new RegExp(format.regex).test(uri);
}

const ACCEPTED = URI_EXAMPLES.map((example) => {
  parseStorageUri(example.uri); // throws if the table holds a URI the parser refuses
  return example;
});

/**
 * URIs KServe never hands to a storage container: it mounts pvc:// claims itself, /mnt/models is
 * already there, and a storageUri without a scheme is not a download.
 */
const HANDLED_BY_KSERVE = new Set(['models-mount', 'pvc']);
const DOWNLOADED = ACCEPTED.filter(({ uri, scheme }) => !HANDLED_BY_KSERVE.has(scheme) && /^[a-z][a-z0-9+.-]*:\/\//i.test(uri));

describe('deploy/kubernetes manifests', () => {
  it('every file parses as YAML documents of named Kubernetes objects', () => {
    assert.ok(FILES.length >= 8, `expected the manifests and samples, found ${FILES.length}`);
    for (const [file, docs] of MANIFESTS) {
      assert.ok(docs.length > 0, `${rel(file)} is empty`);
      const seen = new Set<string>();
      for (const doc of docs) {
        assert.equal(typeof doc.apiVersion, 'string', `${rel(file)}: apiVersion`);
        assert.equal(typeof doc.kind, 'string', `${rel(file)}: kind`);
        assert.match(doc.metadata.name, /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, `${rel(file)}: ${doc.kind} name`);
        const id = `${doc.kind}/${doc.metadata.name}`;
        assert.ok(!seen.has(id), `${rel(file)} defines ${id} twice`);
        seen.add(id);
      }
    }
  });

  it('kubectl apply --dry-run=client round-trips every file', { skip: KUBECTL }, async () => {
    await using api = await startApiServerDouble();
    for (const [file, docs] of MANIFESTS) {
      const { stdout } = await run('kubectl', [
        '--kubeconfig', api.kubeconfig, '--cache-dir', api.cacheDir,
        'apply', '--dry-run=client', '--validate=false', '-o', 'yaml', '-f', file,
      ], { timeout: 60_000 });
      const printed = parse(stdout) as K8sObject & { items?: K8sObject[] };
      const items = printed.kind === 'List' ? printed.items ?? [] : [printed];
      const back = items.map((item) => {
        const annotations = { ...item.metadata.annotations };
        delete annotations['kubectl.kubernetes.io/last-applied-configuration'];
        const metadata = { ...item.metadata, annotations };
        if (Object.keys(annotations).length === 0) delete (metadata as { annotations?: unknown }).annotations;
        return { ...item, metadata };
      });
      // kubectl puts namespaced objects without a namespace into the context's, cluster-wide ones in none.
      const expected = docs.map((doc) => CLUSTER_SCOPED.has(doc.kind) || doc.metadata.namespace !== undefined ? doc
        : { ...doc, metadata: { ...doc.metadata, namespace: 'default' } });
      assert.deepEqual(back, expected, `${rel(file)} changed on its way through kubectl`);
    }
    assert.deepEqual(api.writes, [], 'a client-side dry run writes nothing');
  });

  it("KServe's CRDs accept every custom resource", { skip: SKIP_WITHOUT_REFERENCE }, () => {
    const crds = new Map([
      ['ClusterStorageContainer', 'serving.kserve.io_clusterstoragecontainers.yaml'],
      ['InferenceService', 'serving.kserve.io_inferenceservices.yaml'],
      ['LocalModelCache', 'serving.kserve.io_localmodelcaches.yaml'],
    ]);
    const custom = ALL.filter((doc) => doc.apiVersion.startsWith('serving.kserve.io/'));
    assert.deepEqual([...new Set(custom.map((d) => d.kind))].sort(), [...crds.keys()].sort(), 'each CRD is exercised');
    const misspelt = structuredClone(mainStorageContainer()) as unknown as { spec: Record<string, unknown> } & K8sObject;
    misspelt.spec.supportedUriFormat = misspelt.spec.supportedUriFormats;
    delete misspelt.spec.supportedUriFormats;
    for (const [kind, file] of crds) {
      const docs = custom.filter((d) => d.kind === kind);
      const errorsOf = crdValidator(file, docs);
      for (const doc of docs) assert.deepEqual(errorsOf(doc), [], `${doc.kind}/${doc.metadata.name} does not match KServe's schema`);
      // Closed as the API server closes them: a misspelt field is refused.
      if (kind === 'ClusterStorageContainer') assert.notDeepEqual(errorsOf(misspelt), []);
    }
    for (const csc of ofKind<StorageContainer>('ClusterStorageContainer')) {
      assert.ok(['initContainer', 'localModelDownloadJob'].includes(csc.spec.workloadType ?? ''), `${csc.metadata.name}: workloadType`);
    }
  });

  it('registered URI formats are RE2 regexes or prefixes, each matching a URI we accept', () => {
    assert.deepEqual(re2Problems('^(?=a)b\\1(?>c)d++'), ['lookaround', 'backreference', 'atomic group', 'possessive quantifier']);
    for (const csc of ofKind<StorageContainer>('ClusterStorageContainer')) {
      for (const format of csc.spec.supportedUriFormats) {
        const entry = JSON.stringify(format);
        assert.ok((format.prefix ?? '') !== '' !== ((format.regex ?? '') !== ''), `${csc.metadata.name} ${entry}: exactly one of prefix and regex`);
        if (format.regex !== undefined) {
          assert.deepEqual(re2Problems(format.regex), [], `${entry} is not RE2 syntax`);
          assert.ok(format.regex.startsWith('^'), `${entry}: KServe matches regexes unanchored; anchor it with ^`);
        }
        assert.ok(ACCEPTED.some(({ uri }) => matches(format, uri)), `${csc.metadata.name} ${entry} matches no URI our parser accepts`);
      }
    }
  });

  it('the ClusterStorageContainer claims every URI form we download', () => {
    const formats = mainStorageContainer().spec.supportedUriFormats;
    assert.ok(DOWNLOADED.length >= 30, 'the URI table is read');
    for (const { uri, scheme } of DOWNLOADED) {
      assert.ok(formats.some((f) => matches(f, uri)), `${uri} (${scheme}) is matched by no supportedUriFormats entry`);
    }
    // The Azure regexes claim exactly the Azure forms: an operator may keep them without https://.
    const azure = formats.filter((f) => f.regex !== undefined);
    assert.equal(azure.length, 2);
    for (const { uri, scheme } of ACCEPTED) {
      const claimed = azure.some((f) => matches(f, uri));
      assert.equal(claimed, scheme === 'azure-blob' || scheme === 'azure-file', `${uri} (${scheme})`);
    }
  });

  it('the ConfigMap patch is valid storageInitializer JSON naming the same image and resources', () => {
    const csc = mainStorageContainer().spec.container;
    const config = configPatchValue('inferenceservice-config-patch.yaml', 'storageInitializer');
    assert.equal(config.image, csc.image);
    assert.deepEqual(
      { cpuRequest: config.cpuRequest, memoryRequest: config.memoryRequest, cpuLimit: config.cpuLimit, memoryLimit: config.memoryLimit },
      { cpuRequest: csc.resources.requests.cpu, memoryRequest: csc.resources.requests.memory, cpuLimit: csc.resources.limits.cpu, memoryLimit: csc.resources.limits.memory },
    );
    // KServe refuses to start on a quantity it cannot parse.
    const quantity = /^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$/;
    for (const key of ['cpuRequest', 'memoryRequest', 'cpuLimit', 'memoryLimit', 'cpuModelcar', 'memoryModelcar']) {
      assert.match(String(config[key]), quantity, key);
    }
    const localModel = configPatchValue(path.join('samples', 'local-model-config-patch.yaml'), 'localModel');
    assert.equal(localModel.defaultJobImage, csc.image);
    const images = new Set(ofKind<StorageContainer>('ClusterStorageContainer').map((c) => c.spec.container.image));
    assert.deepEqual([...images], [csc.image], 'every ClusterStorageContainer runs the same image');
  });

  it("the patches use only keys KServe reads and keep every key of KServe's defaults", { skip: SKIP_WITHOUT_REFERENCE }, () => {
    const configMap = parse(readFileSync(referenceFile('inferenceservice.yaml'), 'utf8')) as { data: Record<string, string> };
    for (const [file, key] of [['inferenceservice-config-patch.yaml', 'storageInitializer'], [path.join('samples', 'local-model-config-patch.yaml'), 'localModel']] as const) {
      const ours = configPatchValue(file, key);
      const defaults = JSON.parse(configMap.data[key] ?? '{}') as Record<string, unknown>;
      const documented = keysOfExample(configMap.data._example ?? '', key);
      assert.ok(documented.size > 0, `KServe's example documents ${key}`);
      for (const name of Object.keys(ours)) assert.ok(name in defaults || documented.has(name), `${file}: KServe does not read ${key}.${name}`);
      for (const name of Object.keys(defaults)) assert.ok(name in ours, `${file} drops ${key}.${name}, which KServe sets by default`);
    }
  });

  it("kubectl patch changes only storageInitializer of KServe's ConfigMap", { skip: KUBECTL || SKIP_WITHOUT_REFERENCE }, async () => {
    const shipped = referenceFile('inferenceservice.yaml');
    const patch = path.join(DEPLOY, 'inferenceservice-config-patch.yaml');
    const { stdout } = await run('kubectl', ['patch', '--local', '-f', shipped, '--type', 'merge', '--patch-file', patch, '-o', 'yaml'], {
      timeout: 60_000,
      env: { ...process.env, KUBECONFIG: '/dev/null' },
    });
    const before = (parse(readFileSync(shipped, 'utf8')) as { data: Record<string, string> }).data;
    const after = (parse(stdout) as { data: Record<string, string> }).data;
    assert.deepEqual({ ...after, storageInitializer: undefined }, { ...before, storageInitializer: undefined });
    assert.deepEqual(JSON.parse(after.storageInitializer ?? ''), configPatchValue('inferenceservice-config-patch.yaml', 'storageInitializer'));
  });
});
