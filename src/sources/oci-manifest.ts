/**
 * Resolving an image reference to its layers: fetch the manifest (OCI or Docker v2), follow an
 * image index to the `linux/<arch>` entry of this machine, verify every manifest fetched by digest
 * against that digest, and describe each layer (digest, size, archive kind).
 */
import { createHash } from 'node:crypto';
import { integrity, invalidInput, notFound, unsupported } from '../errors.js';
import type { Logger } from '../log.js';
import { headerValue } from '../net/http-client.js';
import { readSmallBody, type RegistryClient } from './oci-client.js';

export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export type LayerFormat = 'tar' | 'tar.gz' | 'tar.zst';

export interface Layer {
  digest: string;
  size: number;
  mediaType: string;
  format: LayerFormat;
}

export interface ResolvedImage {
  /** The digest of the image manifest the layers come from. */
  digest: string;
  layers: Layer[];
}

interface Descriptor {
  mediaType?: unknown;
  digest?: unknown;
  size?: unknown;
  platform?: { os?: unknown; architecture?: unknown; variant?: unknown };
}

const ARCHES: Partial<Record<NodeJS.Architecture, string>> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', ia32: '386' };

/** The OCI architecture name of this machine (`x64` -> `amd64`). */
export function ociArchitecture(arch: NodeJS.Architecture = process.arch): string {
  return ARCHES[arch] ?? arch;
}

const DIGEST = /^(sha256|sha512):([a-f0-9]{64,128})$/;

function checkDigest(digest: unknown, where: string): string {
  if (typeof digest !== 'string' || !DIGEST.test(digest)) throw invalidInput(`${where} has an invalid digest ${JSON.stringify(digest)}`);
  return digest;
}

/** The archive kind of a layer media type, or undefined for anything that is not a tar layer. */
export function layerFormat(mediaType: string): LayerFormat | undefined {
  const base = mediaType.replace(/\.nondistributable/, '');
  if (base === 'application/vnd.docker.image.rootfs.diff.tar.gzip' || base.endsWith('.tar+gzip')) return 'tar.gz';
  if (base.endsWith('.tar+zstd') || base === 'application/vnd.docker.image.rootfs.diff.tar.zstd') return 'tar.zst';
  if (base.endsWith('.tar') || base === 'application/vnd.docker.image.rootfs.diff.tar') return 'tar';
  return undefined;
}

/** Picks the entry of an index for linux/<arch>; an index of one entry without platform is taken as is. */
export function pickPlatform(manifests: readonly Descriptor[], arch: string, where: string): Descriptor {
  const linux = manifests.filter((m) => m.platform?.os === 'linux' && m.platform.architecture === arch);
  const chosen = linux.find((m) => m.platform?.variant === undefined || m.platform.variant === 'v8') ?? linux[0];
  if (chosen !== undefined) return chosen;
  const unplatformed = manifests.filter((m) => m.platform === undefined);
  if (unplatformed.length === 1 && unplatformed[0] !== undefined) return unplatformed[0];
  const text = (v: unknown): string => (typeof v === 'string' ? v : '?');
  const offered = manifests.map((m) => `${text(m.platform?.os)}/${text(m.platform?.architecture)}`).join(', ');
  throw notFound(`OCI image index ${where} has no linux/${arch} image (it has: ${offered === '' ? 'nothing' : offered})`);
}

function parseJson(bytes: Buffer, where: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw invalidInput(`OCI manifest ${where} is not valid JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalidInput(`OCI manifest ${where} is not a JSON object`);
  return parsed as Record<string, unknown>;
}

function layersOf(manifest: Record<string, unknown>, where: string): Layer[] {
  if (!Array.isArray(manifest.layers)) throw invalidInput(`OCI manifest ${where} has no layers array`);
  return (manifest.layers as Descriptor[]).map((layer, i) => {
    const at = `layer ${i} of ${where}`;
    const digest = checkDigest(layer.digest, at);
    const mediaType = typeof layer.mediaType === 'string' ? layer.mediaType : '';
    const format = layerFormat(mediaType);
    if (format === undefined) throw unsupported(`OCI ${at} has media type ${JSON.stringify(mediaType)}; only tar, tar+gzip and tar+zstd layers can be unpacked`);
    if (!digest.startsWith('sha256:')) throw unsupported(`OCI ${at} uses a ${digest.split(':')[0] ?? ''} digest; only sha256 layers are supported`);
    if (typeof layer.size !== 'number' || !Number.isSafeInteger(layer.size) || layer.size < 0) throw invalidInput(`OCI ${at} has an invalid size`);
    return { digest, size: layer.size, mediaType, format };
  });
}

/** `registry/repo:tag` or `registry/repo@sha256:...`. */
export function imageReference(image: string, reference: string): string {
  return `${image}${reference.includes(':') ? '@' : ':'}${reference}`;
}

/**
 * Resolves `reference` (a tag or a digest) of `repository` to the layers of one image manifest.
 * `image` names it in messages ("registry/repo").
 */
export async function resolveImage(client: RegistryClient, repository: string, reference: string, image: string, log: Logger, signal: AbortSignal): Promise<ResolvedImage> {
  let ref = reference;
  let where = imageReference(image, ref);
  for (let depth = 0; depth < 3; depth++) {
    const response = await client.get(`/v2/${repository}/manifests/${ref}`, { accept: MANIFEST_ACCEPT }, `manifest ${where}`, signal);
    const bytes = await readSmallBody(response, `OCI manifest ${where}`);
    const byDigest = DIGEST.exec(ref);
    let digest: string;
    if (byDigest !== null) {
      const [, algorithm = 'sha256', hex] = byDigest;
      const actual = createHash(algorithm).update(bytes).digest('hex');
      if (actual !== hex) throw integrity(`OCI manifest ${where} does not match its digest (got ${algorithm}:${actual})`, { retryable: false });
      digest = ref;
    } else {
      digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    }
    const manifest = parseJson(bytes, where);
    const mediaType = typeof manifest.mediaType === 'string' ? manifest.mediaType : (headerValue(response.headers, 'content-type') ?? '').split(';')[0] ?? '';
    if (Array.isArray(manifest.manifests)) {
      const arch = ociArchitecture();
      const chosen = pickPlatform(manifest.manifests as Descriptor[], arch, where);
      ref = checkDigest(chosen.digest, `the linux/${arch} entry of ${where}`);
      log.info(`OCI image index ${where}: using linux/${arch} manifest ${ref}`);
      where = imageReference(image, ref);
      continue;
    }
    if (Array.isArray(manifest.layers)) return { digest, layers: layersOf(manifest, where) };
    if (manifest.schemaVersion === 1 || mediaType.includes('manifest.v1')) throw unsupported(`OCI manifest ${where} is a Docker schema 1 manifest, which is not supported; push the image again with a current client`);
    throw invalidInput(`OCI manifest ${where} (${mediaType === '' ? 'no media type' : mediaType}) is neither an image manifest nor an image index`);
  }
  throw invalidInput(`OCI image index ${imageReference(image, reference)} nests indexes too deeply`);
}
