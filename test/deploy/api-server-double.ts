/**
 * A Kubernetes API server that only knows its discovery documents. `kubectl apply --dry-run=client`
 * needs a server to map kinds to resources and to ask whether the object exists; this one lists
 * the resources our manifests use and answers every object read with the 404 a real server gives
 * for an object that does not exist, so kubectl takes its create path and prints what it would
 * send. Nothing is ever stored.
 */
import { createServer, type ServerResponse } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { listenOnLoopback } from '../servers/ports.js';

interface Resource {
  name: string;
  kind: string;
  namespaced: boolean;
}

const GROUPS: Readonly<Record<string, readonly string[]>> = { 'serving.kserve.io': ['v1beta1', 'v1alpha1'] };

const RESOURCES: Readonly<Record<string, readonly Resource[]>> = {
  v1: [
    { name: 'configmaps', kind: 'ConfigMap', namespaced: true },
    { name: 'secrets', kind: 'Secret', namespaced: true },
    { name: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true },
    { name: 'namespaces', kind: 'Namespace', namespaced: false },
  ],
  'serving.kserve.io/v1beta1': [{ name: 'inferenceservices', kind: 'InferenceService', namespaced: true }],
  'serving.kserve.io/v1alpha1': [
    { name: 'clusterstoragecontainers', kind: 'ClusterStorageContainer', namespaced: false },
    { name: 'localmodelcaches', kind: 'LocalModelCache', namespaced: false },
  ],
};

const VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function discovery(url: string): unknown {
  if (url === '/version') return { major: '1', minor: '32', gitVersion: 'v1.32.0' };
  // A plain APIGroupList: kubectl asks for the aggregated form first and accepts this one.
  if (url === '/api') return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] };
  if (url === '/apis') {
    return {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: Object.entries(GROUPS).map(([name, versions]) => ({
        name,
        versions: versions.map((version) => ({ groupVersion: `${name}/${version}`, version })),
        preferredVersion: { groupVersion: `${name}/${versions[0] ?? ''}`, version: versions[0] },
      })),
    };
  }
  const match = /^\/(?:api\/(v1)|apis\/([^/]+\/[^/]+))$/.exec(url);
  const groupVersion = match?.[1] ?? match?.[2];
  const resources = groupVersion === undefined ? undefined : RESOURCES[groupVersion];
  if (groupVersion === undefined || resources === undefined) return undefined;
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion,
    resources: resources.map((r) => ({ ...r, singularName: '', verbs: VERBS })),
  };
}

export interface ApiServerDouble extends AsyncDisposable {
  /** A kubeconfig file whose current context is this server. */
  kubeconfig: string;
  /** kubectl's discovery cache for this server (--cache-dir), thrown away with it. */
  cacheDir: string;
  /** Requests that were neither discovery nor a read (a kubectl that wrote would show here). */
  writes: string[];
}

export async function startApiServerDouble(): Promise<ApiServerDouble> {
  const writes: string[] = [];
  const server = createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0] ?? '/';
    const body = req.method === 'GET' ? discovery(url) : undefined;
    if (body !== undefined) {
      send(res, 200, body);
      return;
    }
    if (req.method !== 'GET') writes.push(`${req.method ?? ''} ${url}`);
    send(res, 404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404, message: `${url} not found` });
  });
  const port = await listenOnLoopback(server);
  const dir = await mkdtemp(path.join(tmpdir(), 'kubeconfig-'));
  const kubeconfig = path.join(dir, 'config');
  await writeFile(kubeconfig, [
    'apiVersion: v1',
    'kind: Config',
    `clusters: [{name: double, cluster: {server: "http://127.0.0.1:${port}"}}]`,
    'contexts: [{name: double, context: {cluster: double, namespace: default}}]',
    'current-context: double',
    'users: []',
    '',
  ].join('\n'));
  return {
    kubeconfig,
    cacheDir: path.join(dir, 'cache'),
    writes,
    async [Symbol.asyncDispose]() {
      await new Promise<void>((resolve) => server.close(() => { resolve(); }));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
