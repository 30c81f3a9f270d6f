/**
 * OCI images and artifacts (`oci://REGISTRY/REPO[:TAG][@DIGEST]`, also `oci+fetch://`): the model
 * is the image's `/models` directory, as in KServe's modelcars, or the whole image tree when it
 * has none.
 *
 * materialize() resolves the reference to one image manifest (an index picks linux/<arch>), then
 * downloads the layer blobs through the transfer engine (so ranges, retries, resume and sha256
 * verification are the engine's) into DEST/.oci-blobs, unpacks each layer with the safe extractor
 * into a staging directory, lays the layers over each other honouring whiteouts, and moves the
 * model directory's contents into DEST. The blob directory survives a failed run so that a
 * restarted init container resumes; it and the staging directory are removed on success.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { extractArchive } from '../archive/index.js';
import { integrity, StorageError } from '../errors.js';
import type { Logger } from '../log.js';
import { discardBody, headerValue } from '../net/http-client.js';
import type { Settings } from '../settings/settings.js';
import { transferObjects } from '../transfer/engine.js';
import type { Location } from '../uri/location.js';
import { RegistryClient } from './oci-client.js';
import { applyLayer, checkTree, modelRoot, moveContents } from './oci-layers.js';
import { imageReference, resolveImage, type Layer } from './oci-manifest.js';
import type { ByteRange, Context, ObjectSource, ObjectSourceCapabilities, RemoteObject, Summary, TreeSource } from './types.js';

type OciLocation = Extract<Location, { scheme: 'oci' }>;

export const BLOB_DIR = '.oci-blobs';
const TREE_PREFIX = '.oci-tree-';

/** The local file name of a layer blob: its digest, with the extension that tells the extractor its format. */
export function blobFileName(layer: Layer): string {
  return `${layer.digest.replace(':', '-')}.${layer.format}`;
}

/** The layers of one image as an ObjectSource, so the engine downloads and verifies them. */
class LayerBlobSource implements ObjectSource {
  readonly kind = 'object';
  readonly name = 'OCI';
  readonly prefix = '';
  readonly capabilities: ObjectSourceCapabilities = { ranges: true };
  private readonly byKey: Map<string, Layer>;

  constructor(
    private readonly client: RegistryClient,
    private readonly repository: string,
    readonly displayUri: string,
    layers: readonly Layer[],
  ) {
    this.byKey = new Map(layers.map((layer) => [blobFileName(layer), layer]));
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- the layer list is already known
  async *list(): AsyncIterable<RemoteObject> {
    for (const [key, layer] of this.byKey) {
      yield { key, size: layer.size, checksum: { algorithm: 'sha256', hex: layer.digest.slice('sha256:'.length) }, version: layer.digest };
    }
  }

  async read(obj: RemoteObject, range: ByteRange | undefined, signal: AbortSignal): Promise<Readable> {
    const layer = this.byKey.get(obj.key);
    if (layer === undefined) throw new StorageError('InvalidInput', `unknown OCI layer ${obj.key}`);
    const headers: Record<string, string> = range === undefined ? {} : { range: `bytes=${range.start}-${range.end - 1}` };
    const response = await this.client.get(`/v2/${this.repository}/blobs/${layer.digest}`, headers, `blob ${layer.digest} of ${this.displayUri}`, signal);
    if (range !== undefined) {
      const start = /^bytes (\d+)-/.exec(headerValue(response.headers, 'content-range') ?? '')?.[1];
      if (response.statusCode !== 206 || start === undefined || Number(start) !== range.start) {
        discardBody(response.body);
        throw integrity(`OCI registry ignored the byte range requested for blob ${layer.digest}`, { retryable: true });
      }
    }
    return response.body;
  }
}

export class OciSource implements TreeSource {
  readonly kind = 'tree';
  readonly name = 'OCI';
  readonly displayUri: string;
  private readonly client: RegistryClient;
  private readonly image: string;

  constructor(private readonly location: OciLocation, settings: Settings, private readonly log: Logger) {
    this.image = `${location.registry}/${location.repository}`;
    this.displayUri = `oci://${location.digest === undefined ? imageReference(this.image, location.tag ?? 'latest') : imageReference(this.image, location.digest)}`;
    this.client = new RegistryClient(location.registry, location.repository, this.displayUri, settings, log);
  }

  async materialize(dest: string, ctx: Context): Promise<Summary> {
    const { settings, log, signal } = ctx;
    const problem = settings.oci.dockerConfigProblem;
    if (problem !== undefined) log.warn(`${problem}; pulling ${this.displayUri} without credentials`);
    // A digest pins the content; a tag beside it is informational only (as in docker).
    const reference = this.location.digest ?? this.location.tag ?? 'latest';
    const image = await resolveImage(this.client, this.location.repository, reference, this.image, this.log, signal);
    const total = image.layers.reduce((n, l) => n + l.size, 0);
    log.info(`OCI image ${this.displayUri} (${image.digest}): ${image.layers.length} layer(s), ${total} bytes`);

    const root = path.resolve(dest);
    const blobDir = path.join(root, BLOB_DIR);
    await mkdir(blobDir, { recursive: true });
    // Layer names are digests: the user's allow/ignore patterns are not meant for them.
    const blobCtx: Context = { ...ctx, settings: { ...settings, patterns: { allow: [], ignore: [] } } };
    await transferObjects(new LayerBlobSource(this.client, this.location.repository, this.displayUri, image.layers), blobDir, blobCtx);

    const tree = await mkdtemp(path.join(root, TREE_PREFIX));
    try {
      const merged = path.join(tree, 'merged');
      await mkdir(merged);
      for (const [i, layer] of image.layers.entries()) {
        const layerDir = path.join(tree, `layer-${i}`);
        log.debug(`unpacking OCI layer ${i + 1}/${image.layers.length} ${layer.digest}`);
        await extractArchive(path.join(blobDir, blobFileName(layer)), layerDir, settings.archive, signal);
        await applyLayer(layerDir, merged);
        await rm(layerDir, { recursive: true, force: true });
      }
      const model = await modelRoot(merged);
      if (model === merged) log.warn(`OCI image ${this.displayUri} has no /models directory; using its whole file tree`);
      const summary = await checkTree(model);
      await rm(blobDir, { recursive: true, force: true });
      await moveContents(model, root, (name) => name !== BLOB_DIR && !name.startsWith(TREE_PREFIX));
      log.info(`unpacked ${summary.files} file(s) from ${image.layers.length} OCI layer(s)`);
      return summary;
    } catch (err) {
      // A refused or corrupt image will not get better on a re-run: drop its blobs too.
      if (err instanceof StorageError && !err.retryable && err.kind !== 'Cancelled' && err.kind !== 'LocalIO') {
        await rm(blobDir, { recursive: true, force: true });
      }
      throw err;
    } finally {
      await rm(tree, { recursive: true, force: true });
    }
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
