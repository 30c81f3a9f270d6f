/**
 * The sources of the fault matrix: each starts its real server (or faithful double) once, stores
 * the fixture, and for every cell starts fresh fault proxies in front of it and says how the CLI
 * is pointed at them. Which requests are "data requests" (the ones that carry file bytes, and so
 * the ones a cell breaks) is each source's to say.
 */
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { startFaultProxy, type FaultProxy, type FaultProxyOptions, type ProxyRequestInfo, type Schedule } from '../servers/fault-proxy.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite } from '../servers/azurite.js';
import { FILE_ACCOUNT, FILE_KEY, startAzureFileDouble } from '../servers/azure-file-double.js';
import { startFauxqs } from '../servers/fauxqs.js';
import { startGcsDouble } from '../servers/gcs-double.js';
import { startHfDouble } from '../servers/hf-double.js';
import { startModelScopeDouble } from '../servers/modelscope-double.js';
import { startNginx } from '../servers/nginx.js';
import { gzipLayer, makeTar, MEDIA, pushImage, startRegistry } from '../servers/oci-registry.js';
import { s3Client, uploadTree } from '../servers/s3-fixtures.js';
import { startWebHdfsDouble } from '../servers/webhdfs-double.js';
import { skipWithout } from '../helpers/system.js';
import { randomBytes, writeTree, type Tree } from '../helpers/tree.js';

export const PART_SIZE = '64KiB';

/**
 * A few files: a small JSON, a file in a subdirectory above the hubs' LFS threshold, a 0-byte
 * file, and one large enough for six ranged parts of PART_SIZE.
 */
export const FIXTURE: Tree = new Map([
  ['config.json', Buffer.from('{"model_type":"fault-matrix","layers":2}\n')],
  ['tokenizer/vocab.txt', randomBytes(5000, 61)],
  ['__init__.py', Buffer.alloc(0)],
  ['weights.bin', randomBytes(5 * 64 * 1024 + 4321, 62)],
]);

/** The fixture as a plain HTTP URI list lands it: one file per URI, under its basename. */
const FLAT_FIXTURE: Tree = new Map([...FIXTURE].map(([key, content]) => [path.posix.basename(key), content]));

/** Which requests of one proxy carry file bytes. */
export type DataFilter = (req: ProxyRequestInfo) => boolean;

/** How one cell reaches the source through its proxies. */
export interface CellConnection {
  /** SRC DEST arguments for the CLI. */
  args(dest: string): string[];
  env: Record<string, string>;
  proxies: FaultProxy[];
}

export interface StartedSource {
  /** What DEST must hold at the end, relative path -> bytes. */
  readonly expected: Tree;
  /** Starts this cell's proxies; `schedule` turns each proxy's data filter into its schedule. */
  connect(schedule: (isData: DataFilter) => Schedule): Promise<CellConnection>;
  stop(): Promise<void>;
}

export interface MatrixSource {
  /** Row name in the report. */
  readonly name: string;
  /** What a file is verified by, as the report says it. */
  readonly verifies: string;
  /** Whether a corrupted byte can be noticed at all (a source that publishes no checksum cannot). */
  readonly detectsCorruption: boolean;
  /** Why the row cannot run here (a missing system tool), else false. */
  skip(): string | false;
  start(work: string): Promise<StartedSource>;
}

async function proxy(upstream: string, schedule: Schedule, extra: Partial<FaultProxyOptions> = {}): Promise<FaultProxy> {
  return startFaultProxy({ upstream, schedule, ...extra });
}

const GET = (req: ProxyRequestInfo): boolean => req.method === 'GET';

/** A source behind one proxy whose data requests `isData` picks. */
function oneProxy(upstream: string, isData: DataFilter, connection: (proxy: FaultProxy) => Omit<CellConnection, 'proxies'>) {
  return async (schedule: (isData: DataFilter) => Schedule): Promise<CellConnection> => {
    const p = await proxy(upstream, schedule(isData));
    return { ...connection(p), proxies: [p] };
  };
}

function httpSource(name: string, withMd5: boolean): MatrixSource {
  return {
    name,
    verifies: withMd5 ? 'size + Content-MD5' : 'size only (no checksum header)',
    detectsCorruption: withMd5,
    skip: () => skipWithout('nginx'),
    async start(work) {
      const root = path.join(work, 'root');
      await writeTree(root, FLAT_FIXTURE);
      // nginx computes no digests: one location per file adds its Content-MD5.
      const md5 = [...FLAT_FIXTURE].map(([file, content]) =>
        `location = /${file} { add_header Content-MD5 "${createHash('md5').update(content).digest('base64')}"; }`).join('\n');
      const nginx = await startNginx({ root, ...(withMd5 ? { extraConfig: md5 } : {}) });
      // The 1-byte probe that learns a file's size is not a data request.
      const isData: DataFilter = (req) => GET(req) && req.range !== 'bytes=0-0';
      return {
        expected: FLAT_FIXTURE,
        connect: oneProxy(nginx.httpUrl, isData, (p) => ({
          args: (dest) => [...FLAT_FIXTURE.keys()].flatMap((file) => [`${p.url}/${file}`, dest]),
          env: {},
        })),
        stop: () => nginx.stop(),
      };
    },
  };
}

const s3: MatrixSource = {
  name: 's3 (fauxqs)',
  verifies: 'size + MD5 ETag',
  detectsCorruption: true,
  skip: () => false,
  async start() {
    const server = await startFauxqs();
    const prefixed: Tree = new Map([...FIXTURE].map(([key, content]) => [`models/fixture/${key}`, content]));
    await uploadTree(s3Client({ endpoint: server.endpoint, accessKeyId: 'test', secretAccessKey: 'test', region: 'us-east-1' }), 'matrix', prefixed);
    const isData: DataFilter = (req) => GET(req) && !/[?&]list-type=/.test(req.url);
    return {
      expected: FIXTURE,
      connect: oneProxy(server.endpoint, isData, (p) => ({
        args: (dest) => ['s3://matrix/models/fixture', dest],
        env: { AWS_ENDPOINT_URL: p.url, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_REGION: 'us-east-1' },
      })),
      stop: () => server.stop(),
    };
  },
};

const gcs: MatrixSource = {
  name: 'gcs (double)',
  verifies: 'size + MD5 (md5Hash)',
  detectsCorruption: true,
  skip: () => false,
  async start(work) {
    const server = await startGcsDouble();
    server.createBucket('matrix', { public: true });
    for (const [key, content] of FIXTURE) server.putObject('matrix', `models/fixture/${key}`, content);
    const home = path.join(work, 'home');
    await mkdir(home, { recursive: true });
    const isData: DataFilter = (req) => GET(req) && /[?&]alt=media/.test(req.url);
    return {
      expected: FIXTURE,
      connect: oneProxy(server.url, isData, (p) => ({
        args: (dest) => ['gs://matrix/models/fixture', dest],
        // No credentials anywhere (anonymous access to a public bucket); the metadata host is the
        // double itself, which has no metadata server, so the lookup fails at once.
        env: { HOME: home, CLOUDSDK_CONFIG: path.join(home, 'gcloud'), STORAGE_EMULATOR_HOST: p.url, GCE_METADATA_HOST: `127.0.0.1:${server.port}` },
      })),
      stop: () => server.stop(),
    };
  },
};

/** Blob and File data reads: GETs of an object, not listings (`comp=list`) or service calls. */
const azureData: DataFilter = (req) => GET(req) && !/[?&](comp|restype)=/.test(req.url);

const azureBlob: MatrixSource = {
  name: 'azure blob (Azurite)',
  verifies: 'size + Content-MD5',
  detectsCorruption: true,
  skip: () => false,
  async start() {
    const server = await startAzurite();
    await server.createContainer('matrix', new Map([...FIXTURE].map(([key, content]) => [`fixture/${key}`, content])));
    const upstream = new URL(server.blobEndpoint).origin;
    return {
      expected: FIXTURE,
      connect: oneProxy(upstream, azureData, (p) => ({
        args: (dest) => [`https://${AZURITE_ACCOUNT}.blob.core.windows.net/matrix/fixture`, dest],
        env: { AZURE_STORAGE_BLOB_ENDPOINT: `${p.url}/${AZURITE_ACCOUNT}`, AZURE_STORAGE_ACCESS_KEY: AZURITE_KEY },
      })),
      stop: () => server.stop(),
    };
  },
};

const azureFile: MatrixSource = {
  name: 'azure file (double)',
  verifies: 'size + Content-MD5',
  detectsCorruption: true,
  skip: () => false,
  async start() {
    const server = await startAzureFileDouble();
    server.addShare('matrix', new Map([...FIXTURE].map(([key, content]) => [`fixture/${key}`, content])));
    const upstream = new URL(server.endpoint).origin;
    return {
      expected: FIXTURE,
      connect: oneProxy(upstream, azureData, (p) => ({
        args: (dest) => [`https://${FILE_ACCOUNT}.file.core.windows.net/matrix/fixture`, dest],
        env: { AZURE_STORAGE_FILE_ENDPOINT: `${p.url}/${FILE_ACCOUNT}`, AZURE_STORAGE_ACCESS_KEY: FILE_KEY },
      })),
      stop: () => server.stop(),
    };
  },
};

/**
 * The files the hub serves itself (below the LFS threshold, and not empty: an empty file is never
 * read); the hub only redirects for the others, so a fault there would break no bytes.
 */
const HUB_SERVED = [...FIXTURE].filter(([, content]) => content.length > 0 && content.length < 1024).map(([key]) => key);

const huggingFace: MatrixSource = {
  name: 'huggingface (double)',
  verifies: 'size + sha256 (LFS) / git blob sha1',
  detectsCorruption: true,
  skip: () => false,
  async start() {
    const server = await startHfDouble();
    server.addRepo('matrix/fixture', FIXTURE);
    return {
      expected: FIXTURE,
      // Small files come from the hub, LFS files from the CDN (another origin): both are proxied,
      // and the hub's redirects are pointed at this cell's CDN proxy.
      async connect(schedule) {
        const cdn = await proxy(server.cdnUrl, schedule(GET));
        const hub = await proxy(server.url, schedule((req) => GET(req) && req.path.includes('/resolve/') && HUB_SERVED.some((file) => req.path.endsWith(`/${file}`))), {
          rewriteOrigins: { [new URL(server.cdnUrl).origin]: cdn.url },
        });
        return { args: (dest) => ['hf://matrix/fixture', dest], env: { HF_ENDPOINT: hub.url }, proxies: [hub, cdn] };
      },
      stop: () => server.stop(),
    };
  },
};

const modelScope: MatrixSource = {
  name: 'modelscope (double)',
  verifies: 'size + sha256',
  detectsCorruption: true,
  skip: () => false,
  async start() {
    const server = await startModelScopeDouble();
    server.addModel('matrix/fixture', FIXTURE);
    const isData: DataFilter = (req) => GET(req) && req.path.endsWith('/repo');
    return {
      expected: FIXTURE,
      connect: oneProxy(server.url, isData, (p) => ({ args: (dest) => ['modelscope://matrix/fixture', dest], env: { MODELSCOPE_ENDPOINT: p.url } })),
      stop: () => server.stop(),
    };
  },
};

const webHdfs: MatrixSource = {
  name: 'webhdfs (double)',
  verifies: 'size + MD5-of-MD5-of-CRC32C (GETFILECHECKSUM)',
  detectsCorruption: true,
  skip: () => false,
  async start() {
    // 64 KiB blocks, so the large file's checksum spans several blocks.
    const server = await startWebHdfsDouble({ blockSize: 64 * 1024 });
    for (const [key, content] of FIXTURE) server.putFile(`/models/fixture/${key}`, content);
    return {
      expected: FIXTURE,
      // Bytes come from the datanode the namenode redirects to: its OPENs get the faults (not the
      // GETFILECHECKSUMs it also answers, which carry no file bytes).
      async connect(schedule) {
        const datanode = await proxy(server.datanodeUrl, schedule((req) => GET(req) && /[?&]op=OPEN(&|$)/i.test(req.url)));
        const namenode = await proxy(server.activeUrl, schedule(() => false), {
          rewriteOrigins: { [new URL(server.datanodeUrl).origin]: datanode.url },
        });
        return { args: (dest) => [`webhdfs://${new URL(namenode.url).host}/models/fixture`, dest], env: {}, proxies: [namenode, datanode] };
      },
      stop: () => server.stop(),
    };
  },
};

const oci: MatrixSource = {
  name: 'oci (docker-registry)',
  verifies: 'size + sha256 digest',
  detectsCorruption: true,
  skip: () => skipWithout('docker-registry'),
  async start(work) {
    const registry = await startRegistry(path.join(work, 'registry'));
    const entries = [{ name: 'models/' }, ...[...FIXTURE].map(([key, content]) => ({ name: `models/${key}`, content }))];
    await pushImage(registry, 'matrix/fixture', 'v1', [{ data: gzipLayer(makeTar(entries)), mediaType: MEDIA.gzip }],
      { os: 'linux', architecture: process.arch === 'arm64' ? 'arm64' : 'amd64' });
    const isData: DataFilter = (req) => GET(req) && req.path.includes('/blobs/');
    return {
      expected: FIXTURE,
      connect: oneProxy(`http://${registry.host}`, isData, (p) => {
        const host = new URL(p.url).host;
        return { args: (dest) => [`oci://${host}/matrix/fixture:v1`, dest], env: { KSERVE_OCI_INSECURE_REGISTRY: host, KSERVE_OCI_DOCKER_CONFIG: path.join(work, 'no-docker-config.json') } };
      }),
      stop: () => registry.stop(),
    };
  },
};

export const MATRIX_SOURCES: readonly MatrixSource[] = [
  httpSource('http (nginx)', false),
  httpSource('http (nginx, Content-MD5)', true),
  s3,
  gcs,
  azureBlob,
  azureFile,
  huggingFace,
  modelScope,
  webHdfs,
  oci,
];
