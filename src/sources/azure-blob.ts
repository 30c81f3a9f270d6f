/**
 * Azure Blob Storage: a flat listing under the URI's prefix and ranged reads, through the official
 * SDK. The container client is built on the URI's endpoint, or on AZURE_STORAGE_BLOB_ENDPOINT /
 * the connection string's BlobEndpoint when set (Azurite, private endpoints, sovereign clouds).
 */
import { Readable } from 'node:stream';
import {
  AnonymousCredential, ContainerClient, newPipeline, StorageSharedKeyCredential, type BlobItem, type ContainerClient as ContainerClientType,
} from '@azure/storage-blob';
import { StorageError } from '../errors.js';
import type { Settings } from '../settings/settings.js';
import { redactUri } from '../uri/redact.js';
import type { Location } from '../uri/location.js';
import { azureAuth, azureError, joinUrl, md5Of, resumableBody, SDK_OPTIONS, serviceEndpoint, withKServeTrust, withQuery, type AzureAuth } from './azure-common.js';
import type { ByteRange, ObjectSource, ObjectSourceCapabilities, RemoteObject } from './types.js';

type BlobLocation = Extract<Location, { scheme: 'azure-blob' }>;

const PAGE_SIZE = 5000;

function objectOf(item: BlobItem): RemoteObject {
  return {
    key: item.name,
    size: item.properties.contentLength,
    checksum: md5Of(item.properties.contentMD5),
    version: item.properties.etag,
  };
}

export class AzureBlobSource implements ObjectSource {
  readonly kind = 'object';
  readonly name = 'Azure Blob';
  readonly displayUri: string;
  readonly prefix: string;
  readonly capabilities: ObjectSourceCapabilities = { ranges: true };
  private readonly container: ContainerClientType;
  private readonly auth: AzureAuth;

  private constructor(location: BlobLocation, container: ContainerClientType, auth: AzureAuth) {
    this.displayUri = redactUri(withQuery(joinUrl(location.endpoint, location.container, location.key), location.sas));
    this.prefix = location.key;
    this.container = container;
    this.auth = auth;
  }

  static async create(location: BlobLocation, settings: Settings): Promise<AzureBlobSource> {
    const azure = settings.azure;
    const auth = await azureAuth(azure, location.account, location.sas);
    const root = serviceEndpoint(location.endpoint, azure.blobEndpoint, azure.connectionString?.blobEndpoint);
    const url = joinUrl(root, location.container);
    let container: ContainerClientType;
    switch (auth.kind) {
      case 'token':
        container = new ContainerClient(url, withKServeTrust(newPipeline(auth.credential, SDK_OPTIONS), settings));
        break;
      case 'key':
        container = new ContainerClient(url, withKServeTrust(newPipeline(new StorageSharedKeyCredential(auth.accountName, auth.accountKey), SDK_OPTIONS), settings));
        break;
      case 'sas':
        container = new ContainerClient(withQuery(url, auth.sas), withKServeTrust(newPipeline(new AnonymousCredential(), SDK_OPTIONS), settings));
        break;
      case 'anonymous':
        container = new ContainerClient(url, withKServeTrust(newPipeline(new AnonymousCredential(), SDK_OPTIONS), settings));
        break;
    }
    return new AzureBlobSource(location, container, auth);
  }

  private fail(err: unknown): unknown {
    return azureError(err, this.name, this.displayUri, this.auth);
  }

  async *list(signal: AbortSignal): AsyncIterable<RemoteObject> {
    const pages = this.container.listBlobsFlat({ prefix: this.prefix, abortSignal: signal }).byPage({ maxPageSize: PAGE_SIZE });
    let listed = false;
    try {
      // byPage follows the NextMarker continuation token page after page.
      for await (const page of pages) {
        listed = true;
        for (const item of page.segment.blobItems) yield objectOf(item);
      }
    } catch (err) {
      const typed = this.fail(err);
      // A blob-level public container (or a blob-scoped SAS) allows reading a blob but not
      // listing the container: a URI naming that one blob still downloads.
      if (listed || this.prefix === '' || !(typed instanceof StorageError) || !['Forbidden', 'AuthFailed', 'NotFound'].includes(typed.kind)) throw typed;
      const single = await this.single(signal);
      if (single === undefined) throw typed;
      yield single;
    }
  }

  private async single(signal: AbortSignal): Promise<RemoteObject | undefined> {
    try {
      const p = await this.container.getBlobClient(this.prefix).getProperties({ abortSignal: signal });
      return { key: this.prefix, size: p.contentLength, checksum: md5Of(p.contentMD5), version: p.etag };
    } catch {
      return undefined;
    }
  }

  async read(obj: RemoteObject, range: ByteRange | undefined, signal: AbortSignal): Promise<Readable> {
    const blob = this.container.getBlobClient(obj.key);
    try {
      const response = await blob.download(range?.start ?? 0, range === undefined ? undefined : range.end - range.start, {
        abortSignal: signal,
        // The engine resumes broken streams itself.
        maxRetryRequests: 0,
        // Parts of two versions of a blob must never be stitched together.
        ...(obj.version === undefined ? {} : { conditions: { ifMatch: obj.version } }),
      });
      const body = response.readableStreamBody;
      if (!(body instanceof Readable)) throw new StorageError('Network', `Azure Blob sent no body for ${this.displayUri}`, { retryable: true });
      return resumableBody(body, this.name, this.displayUri, signal);
    } catch (err) {
      if (typeof err === 'object' && err !== null && 'statusCode' in err && err.statusCode === 412) {
        throw new StorageError('Integrity', `Azure Blob object ${obj.key} changed during the download from ${this.displayUri}; run again`);
      }
      throw this.fail(err);
    }
  }
}
