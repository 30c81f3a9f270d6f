/**
 * Azure Files: a share is a real directory tree, so listing is a walk (breadth-first with an
 * explicit queue: no recursion, whatever the depth). Keys are paths from the share root; the
 * engine maps them below the URI's path, as for Blob. The listing API carries no Content-MD5,
 * so each file's properties are read once (one HEAD per file) to verify what arrives.
 */
import { Readable } from 'node:stream';
import {
  AnonymousCredential, newPipeline, ShareClient, StorageSharedKeyCredential, type ShareClient as ShareClientType, type ShareDirectoryClient,
} from '@azure/storage-file-share';
import { StorageError } from '../errors.js';
import type { Settings } from '../settings/settings.js';
import { redactUri } from '../uri/redact.js';
import type { Location } from '../uri/location.js';
import { azureAuth, azureError, joinUrl, md5Of, resumableBody, SDK_OPTIONS, serviceEndpoint, withKServeTrust, withQuery, type AzureAuth } from './azure-common.js';
import type { ByteRange, ObjectSource, ObjectSourceCapabilities, RemoteObject } from './types.js';

type FileLocation = Extract<Location, { scheme: 'azure-file' }>;

const PAGE_SIZE = 5000;

const join = (dir: string, name: string): string => (dir === '' ? name : `${dir}/${name}`);

export class AzureFileSource implements ObjectSource {
  readonly kind = 'object';
  readonly name = 'Azure File';
  readonly displayUri: string;
  readonly prefix: string;
  readonly capabilities: ObjectSourceCapabilities = { ranges: true };
  private readonly share: ShareClientType;
  private readonly auth: AzureAuth;

  private constructor(location: FileLocation, share: ShareClientType, auth: AzureAuth) {
    this.displayUri = redactUri(withQuery(joinUrl(location.endpoint, location.share, location.key), location.sas));
    this.prefix = location.key;
    this.share = share;
    this.auth = auth;
  }

  static async create(location: FileLocation, settings: Settings): Promise<AzureFileSource> {
    const azure = settings.azure;
    const auth = await azureAuth(azure, location.account, location.sas);
    const root = serviceEndpoint(location.endpoint, azure.fileEndpoint, azure.connectionString?.fileEndpoint);
    const url = joinUrl(root, location.share);
    let share: ShareClientType;
    switch (auth.kind) {
      case 'token':
        // Azure Files accepts OAuth for data reads only with the backup intent (RBAC data roles).
        share = new ShareClient(url, withKServeTrust(newPipeline(auth.credential, SDK_OPTIONS), settings), { fileRequestIntent: 'backup' });
        break;
      case 'key':
        share = new ShareClient(url, withKServeTrust(newPipeline(new StorageSharedKeyCredential(auth.accountName, auth.accountKey), SDK_OPTIONS), settings));
        break;
      case 'sas':
        share = new ShareClient(withQuery(url, auth.sas), withKServeTrust(newPipeline(new AnonymousCredential(), SDK_OPTIONS), settings));
        break;
      case 'anonymous':
        // Shares have no public access; the service answers with an authentication error we explain.
        share = new ShareClient(url, withKServeTrust(newPipeline(new AnonymousCredential(), SDK_OPTIONS), settings));
        break;
    }
    return new AzureFileSource(location, share, auth);
  }

  private fail(err: unknown): unknown {
    return azureError(err, this.name, this.displayUri, this.auth);
  }

  private directory(path: string): ShareDirectoryClient {
    return path === '' ? this.share.rootDirectoryClient : this.share.getDirectoryClient(path);
  }

  private async properties(key: string, signal: AbortSignal): Promise<RemoteObject> {
    const p = await this.share.rootDirectoryClient.getFileClient(key).getProperties({ abortSignal: signal });
    return { key, size: p.contentLength, checksum: md5Of(p.contentMD5), version: p.etag };
  }

  async *list(signal: AbortSignal): AsyncIterable<RemoteObject> {
    const queue: string[] = [this.prefix];
    let first = true;
    for (let dir = queue.shift(); dir !== undefined; dir = queue.shift()) {
      const files: string[] = [];
      try {
        const pages = this.directory(dir).listFilesAndDirectories({ abortSignal: signal, includeEtag: true }).byPage({ maxPageSize: PAGE_SIZE });
        for await (const page of pages) {
          for (const d of page.segment.directoryItems) queue.push(join(dir, d.name));
          for (const f of page.segment.fileItems) files.push(join(dir, f.name));
        }
      } catch (err) {
        const typed = this.fail(err);
        // The URI may name one file rather than a directory.
        if (!first || this.prefix === '' || !(typed instanceof StorageError) || typed.kind !== 'NotFound') throw typed;
        try {
          yield await this.properties(this.prefix, signal);
        } catch (inner) {
          const typedInner = this.fail(inner);
          if (!(typedInner instanceof StorageError && typedInner.kind === 'NotFound')) throw typedInner;
        }
        return;
      }
      first = false;
      try {
        for (const key of files) yield await this.properties(key, signal);
      } catch (err) {
        throw this.fail(err);
      }
    }
  }

  async read(obj: RemoteObject, range: ByteRange | undefined, signal: AbortSignal): Promise<Readable> {
    const file = this.share.rootDirectoryClient.getFileClient(obj.key);
    try {
      const response = await file.download(range?.start ?? 0, range === undefined ? undefined : range.end - range.start, {
        abortSignal: signal,
        // The engine resumes broken streams itself.
        maxRetryRequests: 0,
      });
      const body = response.readableStreamBody;
      if (!(body instanceof Readable)) throw new StorageError('Network', `Azure File sent no body for ${this.displayUri}`, { retryable: true });
      return resumableBody(body, this.name, this.displayUri, signal);
    } catch (err) {
      throw this.fail(err);
    }
  }
}
