/**
 * A real OCI registry for tests: Debian's `docker-registry` (distribution 2.8) with filesystem
 * storage on 127.0.0.1, optionally behind TLS and htpasswd (bcrypt, from apache2-utils' htpasswd).
 * Images are pushed either with umoci + skopeo (buildUmociImage/skopeoCopy) or with the small
 * HTTP push helper here (blobs and manifests PUT through the distribution API), which also builds
 * tar layers byte by byte so a test can put any entry name in them (`../evil`, whiteouts).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { Agent, request } from 'undici';
import { freePort } from './ports.js';
import type { TlsFiles } from './tls.js';
import { tarBytes, type TarEntry as ByteEntry } from '../helpers/tar-bytes.js';

export interface RegistryOptions {
  tls?: TlsFiles;
  htpasswd?: { username: string; password: string };
}

export interface Registry {
  /** `127.0.0.1:PORT`, as written in an oci:// URI. */
  readonly host: string;
  readonly log: () => string;
  /** Uploads a blob; returns its digest. */
  pushBlob(repository: string, data: Buffer): Promise<string>;
  /** Uploads a manifest or index under a tag (or digest); returns its digest. */
  pushManifest(repository: string, reference: string, manifest: object, mediaType: string): Promise<string>;
  stop(): Promise<void>;
}

export const MEDIA = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  tar: 'application/vnd.oci.image.layer.v1.tar',
  gzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  zstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
} as const;

export const sha256 = (data: Buffer | string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

function run(cmd: string, args: readonly string[], input?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { encoding: 'buffer', maxBuffer: 256 * 2 ** 20, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr.toString()}`));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** One tar entry: a file with content, a directory (content undefined, name ending in "/"), or a symlink. */
export interface TarEntry { name: string; content?: Buffer; linkTarget?: string }

/** An uncompressed tar built by hand, so entry names are exactly as given. */
export function makeTar(entries: readonly TarEntry[]): Buffer {
  return tarBytes(entries.map((e): ByteEntry => {
    if (e.linkTarget !== undefined) return { name: e.name, type: '2', linkname: e.linkTarget };
    if (e.content === undefined) return { name: e.name, type: '5' };
    return { name: e.name, data: e.content };
  }));
}

export const gzipLayer = (tar: Buffer): Buffer => gzipSync(tar);
export const zstdLayer = (tar: Buffer): Promise<Buffer> => run('zstd', ['-q', '-c', '-'], tar);

export async function startRegistry(dir: string, options: RegistryOptions = {}): Promise<Registry> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const lines = [
    'version: 0.1', 'log:', '  level: warn', '  accesslog:', '    disabled: true',
    'storage:', '  filesystem:', `    rootdirectory: ${path.join(dir, 'data')}`, '  delete:', '    enabled: true',
    'http:', `  addr: ${host}`, '  secret: storage-initializer-tests',
  ];
  if (options.tls !== undefined) lines.push('  tls:', `    certificate: ${options.tls.certFile}`, `    key: ${options.tls.keyFile}`);
  if (options.htpasswd !== undefined) {
    const file = path.join(dir, 'htpasswd');
    await writeFile(file, await run('htpasswd', ['-Bbn', options.htpasswd.username, options.htpasswd.password]));
    lines.push('auth:', '  htpasswd:', '    realm: storage-initializer-tests', `    path: ${file}`);
  }
  const config = path.join(dir, 'config.yml');
  await writeFile(config, `${lines.join('\n')}\n`);
  let output = '';
  const child: ChildProcess = spawn('/usr/bin/docker-registry', ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (d: Buffer) => { output += d.toString(); });
  child.stderr?.on('data', (d: Buffer) => { output += d.toString(); });
  const scheme = options.tls === undefined ? 'http' : 'https';
  const dispatcher = new Agent(options.tls === undefined ? {} : { connect: { ca: await readFile(options.tls.caCertFile, 'utf8') } });
  const auth: Record<string, string> = options.htpasswd === undefined ? {}
    : { authorization: `Basic ${Buffer.from(`${options.htpasswd.username}:${options.htpasswd.password}`).toString('base64')}` };

  const call = async (method: 'GET' | 'POST' | 'PUT', url: string, body?: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; location: string | undefined }> => {
    const res = await request(url.startsWith('http') ? url : `${scheme}://${host}${url}`, { method, body, headers: { ...auth, ...headers }, dispatcher });
    const text = await res.body.text();
    if (res.statusCode >= 300) throw new Error(`registry ${method} ${url}: HTTP ${res.statusCode} ${text}`);
    const location = res.headers.location;
    return { status: res.statusCode, location: typeof location === 'string' ? location : undefined };
  };

  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited: ${output}`);
    try {
      await request(`${scheme}://${host}/v2/`, { dispatcher }).then((r) => r.body.text());
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`docker-registry did not start: ${output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  return {
    host,
    log: () => output,
    async pushBlob(repository, data) {
      const digest = sha256(data);
      const started = await call('POST', `/v2/${repository}/blobs/uploads/`);
      if (started.location === undefined) throw new Error('registry gave no upload location');
      const url = new URL(started.location, `${scheme}://${host}`);
      url.searchParams.set('digest', digest);
      await call('PUT', url.toString(), data, { 'content-type': 'application/octet-stream' });
      return digest;
    },
    async pushManifest(repository, reference, manifest, mediaType) {
      const bytes = Buffer.from(JSON.stringify(manifest));
      await call('PUT', `/v2/${repository}/manifests/${reference}`, bytes, { 'content-type': mediaType });
      return sha256(bytes);
    },
    async stop() {
      await dispatcher.close();
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

export interface LayerSpec { data: Buffer; mediaType: string }

/** Pushes an image (config + layers + manifest) and returns the manifest's digest and size. */
export async function pushImage(registry: Registry, repository: string, tag: string, layers: readonly LayerSpec[], platform = { os: 'linux', architecture: 'amd64' }): Promise<{ digest: string; size: number }> {
  const config = Buffer.from(JSON.stringify({ ...platform, rootfs: { type: 'layers', diff_ids: [] }, config: {} }));
  const configDigest = await registry.pushBlob(repository, config);
  const descriptors = [];
  for (const layer of layers) descriptors.push({ mediaType: layer.mediaType, digest: await registry.pushBlob(repository, layer.data), size: layer.data.length });
  const manifest = { schemaVersion: 2, mediaType: MEDIA.manifest, config: { mediaType: MEDIA.config, digest: configDigest, size: config.length }, layers: descriptors };
  const digest = await registry.pushManifest(repository, tag, manifest, MEDIA.manifest);
  return { digest, size: Buffer.byteLength(JSON.stringify(manifest)) };
}

/**
 * Builds an image with umoci (init, new, unpack, write files under rootfs/, repack) in an OCI
 * layout and copies it to the registry with skopeo; returns nothing, the tag names it.
 */
export async function umociSkopeoImage(work: string, registry: Registry, repository: string, tag: string, files: ReadonlyMap<string, Buffer>): Promise<void> {
  const layout = path.join(work, 'layout');
  const bundle = path.join(work, 'bundle');
  await run('umoci', ['init', '--layout', layout]);
  await run('umoci', ['new', '--image', `${layout}:${tag}`]);
  await run('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle]);
  for (const [name, content] of files) {
    const file = path.join(bundle, 'rootfs', name);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
  }
  await run('umoci', ['repack', '--image', `${layout}:${tag}`, bundle]);
  await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:${tag}`, `docker://${registry.host}/${repository}:${tag}`]);
}
