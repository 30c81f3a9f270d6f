/**
 * Location -> Source. Backends are imported lazily, so a run that reads from HTTP never loads the
 * cloud SDKs. Adding a backend is one file and one line here.
 */
import { invalidInput, unsupported } from '../errors.js';
import type { Logger } from '../log.js';
import type { Settings } from '../settings/settings.js';
import type { Location } from '../uri/location.js';
import type { Source } from './types.js';

type Factory<L extends Location> = (location: L, settings: Settings, log: Logger) => Promise<Source>;
type Factories = { [S in Location['scheme']]?: Factory<Extract<Location, { scheme: S }>> };

const factories: Factories = {
  s3: async (location, settings) => new (await import('./s3.js')).S3Source(location.bucket, location.key, settings),
  'azure-blob': async (location, settings) => (await import('./azure-blob.js')).AzureBlobSource.create(location, settings),
  'azure-file': async (location, settings) => (await import('./azure-file.js')).AzureFileSource.create(location, settings),
  gs: async (location, settings, log) => new (await import('./gcs.js')).GcsSource(location.bucket, location.key, settings, log),
  hdfs: async (location, settings, log) => new (await import('./webhdfs.js')).WebHdfsSource(location, settings, log),
  http: async (location, settings) => new (await import('./http.js')).HttpSource(location.url, settings),
  hf: async (location, settings) => new (await import('./huggingface.js')).HuggingFaceSource(location, settings),
  git: async (location, settings, log) => new (await import('./git.js')).GitSource(location, settings, log),
  modelscope: async (location, settings) => new (await import('./modelscope.js')).ModelScopeSource(location, settings),
  oci: async (location, settings, log) => new (await import('./oci.js')).OciSource(location, settings, log),
  local: async (location, settings) => {
    const { LocalCopySource, LocalLinkSource } = await import('./local.js');
    return settings.localMode === 'copy' ? new LocalCopySource(location.path) : new LocalLinkSource(location.path);
  },
};

export async function createSource(location: Location, settings: Settings, log: Logger): Promise<Source> {
  if (location.scheme === 'pvc') {
    throw invalidInput(`pvc://${location.claim}/${location.path} is mounted by KServe at /mnt/pvc, not downloaded; pass the mounted path instead`);
  }
  // The map is keyed by scheme, so the factory found takes exactly this kind of location.
  const factory = factories[location.scheme] as Factory<Location> | undefined;
  if (factory === undefined) throw unsupported(`not supported yet: ${location.scheme}`);
  return factory(location, settings, log);
}
