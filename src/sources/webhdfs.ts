/**
 * HDFS through the WebHDFS REST API (`/webhdfs/v1/PATH?op=...`), for `hdfs://` and `webhdfs://`.
 *
 * - Namenodes: the URI's `host:port` when it names one, else the HA list of HDFS_NAMENODE. A
 *   connection failure or a `StandbyException` moves on to the next namenode; the one that answered
 *   is remembered for the following requests.
 * - Listing: GETFILESTATUS on the path (a file is a single object); a directory is walked with an
 *   explicit queue, each directory paged with LISTSTATUS_BATCH/startAfter (Hadoop 2.8+), falling
 *   back to LISTSTATUS on namenodes that do not know it.
 * - Reads: OPEN with offset/length; the namenode answers 307 to a datanode URL that already carries
 *   the user and offset parameters, and the shared client follows it. HEADERS go to the namenode only.
 * - User: USER_PROXY is sent as `user.name` (Hadoop's simple authentication: the namenode acts as
 *   that user). Upstream's Python client sends it as `doas` on top of Kerberos; without Kerberos a
 *   `doas` would need the anonymous web user to be a configured proxy user, so `user.name` is what
 *   makes USER_PROXY work on a simple-auth cluster.
 * - Kerberos: with KERBEROS_PRINCIPAL + KERBEROS_KEYTAB every namenode request carries a fresh
 *   SPNEGO token (webhdfs-kerberos.ts); the principal is the user, so no `user.name` is sent, and
 *   USER_PROXY goes as `doas`, as upstream. Datanodes get the namenode's delegation token instead.
 * - Checksums: GETFILECHECKSUM for every non-empty file while listing, a few at a time (the
 *   namenode redirects it to a datanode, which reads every block's CRCs); webhdfs-checksum.ts says
 *   which answers the engine can recompute. The MD5-of-MD5 one for a file of several blocks depends
 *   on where each block ends, which concatenated and appended files do not have at `blockSize`: the
 *   block lengths come from GETFILEBLOCKLOCATIONS (Hadoop 3.2+), else GET_BLOCK_LOCATIONS (older,
 *   the one WebHdfsFileSystem itself uses). Any failure to get either leaves that file to the size
 *   check, with a debug line: older gateways lack these operations, and they must never fail a download.
 */
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { describeError, integrity, invalidInput, notFound, StorageError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { createDispatcher, discardBody, headerValue, httpRequest, type HttpResponse } from '../net/http-client.js';
import type { HdfsSettings } from '../settings/hdfs.js';
import type { Settings } from '../settings/settings.js';
import { eachConcurrently } from '../transfer/each-concurrently.js';
import type { Location } from '../uri/location.js';
import type { ByteRange, Checksum, ObjectSource, ObjectSourceCapabilities, RemoteObject } from './types.js';
import { blockLengthsFrom, checksumFromFileChecksum, spansBlocks } from './webhdfs-checksum.js';
import { isStandby, isUnsupportedOp, readRemoteException, webHdfsError, type RemoteException } from './webhdfs-errors.js';
import { openSpnego, type Spnego } from './webhdfs-kerberos.js';

type HdfsLocation = Extract<Location, { scheme: 'hdfs' }>;

interface FileStatus {
  pathSuffix: string;
  type: string;
  length: number;
  modificationTime: number;
  fileId?: number;
  blockSize?: unknown;
  ecBit?: unknown;
  ecPolicy?: unknown;
}

/** GETFILECHECKSUMs in flight while listing. */
const CHECKSUM_CONCURRENCY = 4;

function isFileStatus(value: unknown): value is FileStatus {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.pathSuffix === 'string' && typeof v.type === 'string' && typeof v.length === 'number' && Number.isSafeInteger(v.length)
    && v.length >= 0 && typeof v.modificationTime === 'number';
}

type NamenodeResult =
  | { ok: true; response: HttpResponse }
  | { ok: false; status: number; remote: RemoteException | undefined; response: HttpResponse };

/** `/a/b` -> `/a/b` with every segment percent-encoded for the URL path. */
function encodePath(hdfsPath: string): string {
  return hdfsPath.split('/').map((s) => encodeURIComponent(s)).join('/');
}

export class WebHdfsSource implements ObjectSource {
  readonly kind = 'object';
  readonly name = 'WebHDFS';
  readonly displayUri: string;
  readonly prefix: string;
  readonly capabilities: ObjectSourceCapabilities = { ranges: true };
  private readonly settings: HdfsSettings;
  private readonly namenodes: string[];
  private readonly dispatcher: Dispatcher;
  private readonly log: Logger;
  private active = 0;
  private batchSupported = true;
  private checksumSupported = true;
  /** The block-locations operations the namenode may know, in the order they are tried. */
  private blockLocationOps = ['GETFILEBLOCKLOCATIONS', 'GET_BLOCK_LOCATIONS'];
  /** Opened on the first namenode request, so that the native module loads only when needed. */
  private spnego: Spnego | undefined;

  constructor(location: HdfsLocation, settings: Settings, log: Logger = silentLogger) {
    const hdfs = settings.hdfs;
    const host = location.host;
    const shownPath = location.path.startsWith('/') || host === undefined ? location.path : `/${location.path}`;
    this.displayUri = `${location.protocol}://${host ?? ''}${shownPath.replace(/\/+$/, '')}`;
    this.namenodes = host !== undefined ? [`${hdfs.defaultScheme}://${host}`] : hdfs.namenodes;
    if (this.namenodes.length === 0) {
      const where = hdfs.origin ?? `HDFS_SECRET_DIR (none found)`;
      throw invalidInput(`WebHDFS has no namenode for ${this.displayUri}: set HDFS_NAMENODE in ${where}, or name one in the URI (webhdfs://NAMENODE:PORT/PATH).`);
    }
    const relative = location.path.replace(/\/+$/, '');
    const resolved = relative.startsWith('/') ? relative : `${hdfs.rootPath === '/' ? '' : hdfs.rootPath}/${relative}`;
    this.prefix = resolved.replace(/\/+/g, '/').replace(/^\//, '').replace(/\/$/, '');
    this.settings = hdfs;
    this.log = log;
    this.dispatcher = createDispatcher({
      net: settings.net,
      insecure: hdfs.tlsSkipVerify,
      ...(hdfs.tlsCa === undefined ? {} : { extraCaPems: [hdfs.tlsCa] }),
      ...(hdfs.tlsCert === undefined || hdfs.tlsKey === undefined ? {} : { cert: hdfs.tlsCert, key: hdfs.tlsKey }),
    });
  }

  private url(base: string, op: string, hdfsPath: string, params: Record<string, string>): URL {
    const url = new URL(`${base}/webhdfs/v1${encodePath(hdfsPath)}`);
    url.searchParams.set('op', op);
    for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
    if (this.settings.userProxy !== undefined) url.searchParams.set(this.settings.kerberos === undefined ? 'user.name' : 'doas', this.settings.userProxy);
    return url;
  }

  /**
   * One operation, tried on each namenode at most once, starting with the one that answered last.
   * This is failover, not retrying: the engine retries whatever is still failing.
   */
  private async namenode(op: string, hdfsPath: string, params: Record<string, string>, signal: AbortSignal): Promise<NamenodeResult> {
    let connectionError: unknown;
    const standby: string[] = [];
    for (let i = 0; i < this.namenodes.length; i++) {
      const index = (this.active + i) % this.namenodes.length;
      const base = this.namenodes[index] ?? '';
      const url = this.url(base, op, hdfsPath, params);
      // Kerberos failures (keytab, KDC) are not the namenode's: they end the operation, no failover.
      const kerberos = this.settings.kerberos;
      const exchange = kerberos === undefined ? undefined : await (this.spnego ??= openSpnego(kerberos)).begin(url);
      // The token goes to the namenode only (originHeaders): a datanode takes the redirect's delegation token.
      const originHeaders = exchange === undefined ? { ...this.settings.headers } : { ...this.settings.headers, authorization: exchange.authorization };
      let response: HttpResponse;
      try {
        response = await httpRequest(this.dispatcher, url, { originHeaders, signal }, this.name, this.displayUri);
      } catch (err) {
        if (signal.aborted || !(err instanceof StorageError) || err.kind !== 'Network' || this.namenodes.length === 1) throw err;
        this.log.debug(`WebHDFS: namenode ${base} failed (${describeError(err)}); trying the next one`);
        connectionError = err;
        continue;
      }
      if (response.statusCode >= 200 && response.statusCode < 300) {
        if (exchange !== undefined && response.url.origin === url.origin) {
          await exchange.verify(response.headers).catch((err: unknown) => { discardBody(response.body); throw err; });
        }
        if (index !== this.active) this.log.info(`WebHDFS: using namenode ${base}`);
        this.active = index;
        return { ok: true, response };
      }
      const remote = await readRemoteException(response);
      if (isStandby(remote) && response.url.origin === url.origin && this.namenodes.length > 1) {
        this.log.debug(`WebHDFS: namenode ${base} is standby; trying the next one`);
        standby.push(base);
        continue;
      }
      this.active = index;
      return { ok: false, status: response.statusCode, remote, response };
    }
    const tried = this.namenodes.join(', ');
    const why = connectionError === undefined ? 'every namenode is in standby' : `${describeError(connectionError)}${standby.length > 0 ? `; standby: ${standby.join(', ')}` : ''}`;
    throw new StorageError('Network', `WebHDFS found no active namenode for ${this.displayUri} (tried ${tried}): ${why}. Check HDFS_NAMENODE.`, { retryable: true, cause: connectionError });
  }

  private failure(result: Extract<NamenodeResult, { ok: false }>, hdfsPath: string): StorageError {
    return webHdfsError(result.status, result.remote, result.response, {
      displayUri: this.displayUri, path: hdfsPath, user: this.settings.userProxy, rootPath: this.settings.rootPath,
      principal: this.settings.kerberos?.principal,
    });
  }

  private async json(response: HttpResponse): Promise<Record<string, unknown>> {
    try {
      const parsed: unknown = await response.body.json();
      return typeof parsed === 'object' && parsed !== null ? parsed as Record<string, unknown> : {};
    } catch (err) {
      throw new StorageError('Network', `WebHDFS sent an unreadable answer for ${this.displayUri}`, { retryable: true, cause: err });
    }
  }

  private object(key: string, status: FileStatus): RemoteObject {
    return { key, size: status.length, version: `${status.fileId ?? ''}@${status.modificationTime}` };
  }

  async *list(signal: AbortSignal): AsyncIterable<RemoteObject> {
    const rootPath = `/${this.prefix}`;
    const result = await this.namenode('GETFILESTATUS', rootPath, {}, signal);
    if (!result.ok) {
      const err = this.failure(result, rootPath);
      if (err.kind === 'NotFound') throw notFound(`Failed to fetch model. No model found in ${this.displayUri}: ${err.message}`);
      throw err;
    }
    const status = (await this.json(result.response)).FileStatus;
    if (!isFileStatus(status)) throw invalidInput(`WebHDFS GETFILESTATUS for ${this.displayUri} has no FileStatus`);
    if (status.type === 'FILE') {
      yield await this.withChecksum(this.prefix, status, signal);
      return;
    }
    if (status.type !== 'DIRECTORY') throw invalidInput(`WebHDFS path ${rootPath} is a ${status.type}, not a file or directory`);
    const queue = [this.prefix];
    const files: [string, FileStatus][] = [];
    for (let dir = queue.shift(); dir !== undefined; dir = queue.shift()) {
      for await (const child of this.children(dir, signal)) {
        if (child.pathSuffix === '' || child.pathSuffix.includes('/')) throw invalidInput(`WebHDFS listing of /${dir} has an invalid name ${JSON.stringify(child.pathSuffix)}`);
        const key = dir === '' ? child.pathSuffix : `${dir}/${child.pathSuffix}`;
        if (child.type === 'DIRECTORY') queue.push(key);
        else if (child.type === 'FILE') files.push([key, child]);
        else this.log.warn(`WebHDFS: skipping /${key}: a ${child.type}, not a file`);
      }
    }
    // In listing order, whatever order the checksums arrive in.
    const objects = new Array<RemoteObject | undefined>(files.length);
    await eachConcurrently(files, CHECKSUM_CONCURRENCY, async ([key, child], i) => {
      objects[i] = await this.withChecksum(key, child, signal);
    });
    for (const object of objects) if (object !== undefined) yield object;
  }

  private async withChecksum(key: string, status: FileStatus, signal: AbortSignal): Promise<RemoteObject> {
    const object = this.object(key, status);
    // An empty file has nothing for a checksum to add to its size.
    if (status.length === 0 || !this.checksumSupported) return object;
    const checksum = await this.fileChecksum(`/${key}`, status, signal);
    if (typeof checksum === 'string') this.log.debug(`WebHDFS: verifying /${key} by its size only: ${checksum}`);
    else object.checksum = checksum;
    return object;
  }

  /** The file's checksum as the engine can verify it, or why there is none. */
  private async fileChecksum(hdfsPath: string, status: FileStatus, signal: AbortSignal): Promise<Checksum | string> {
    try {
      const result = await this.namenode('GETFILECHECKSUM', hdfsPath, {}, signal);
      if (!result.ok) {
        if (isUnsupportedOp(result.status, result.remote, 'GETFILECHECKSUM')) this.checksumSupported = false;
        return `GETFILECHECKSUM answered ${result.status}${result.remote === undefined ? '' : ` (${result.remote.exception})`}`;
      }
      const value = (await this.json(result.response)).FileChecksum;
      if (!spansBlocks(value, status)) return checksumFromFileChecksum(value, status);
      const lengths = await this.blockLengths(hdfsPath, signal);
      return typeof lengths === 'string' ? `it has several blocks and ${lengths}` : checksumFromFileChecksum(value, status, lengths);
    } catch (err) {
      if (signal.aborted) throw err;
      return `GETFILECHECKSUM failed (${describeError(err)})`;
    }
  }

  /** The lengths of the file's blocks, from the first block-locations operation that answers, or why there are none. */
  private async blockLengths(hdfsPath: string, signal: AbortSignal): Promise<number[] | string> {
    const failures: string[] = [];
    for (const op of [...this.blockLocationOps]) {
      try {
        const result = await this.namenode(op, hdfsPath, {}, signal);
        if (result.ok) {
          const lengths = blockLengthsFrom(await this.json(result.response));
          if (typeof lengths !== 'string') return lengths;
          failures.push(`${op}: ${lengths}`);
          continue;
        }
        // A namenode that does not know the operation, or a gateway that does not pass it on.
        if (isUnsupportedOp(result.status, result.remote, op) || (result.status === 404 && result.remote === undefined)) {
          this.blockLocationOps = this.blockLocationOps.filter((known) => known !== op);
          this.log.debug(`WebHDFS: the namenode does not know ${op} (${result.status})`);
        }
        failures.push(`${op} answered ${result.status}${result.remote === undefined ? '' : ` (${result.remote.exception})`}`);
      } catch (err) {
        if (signal.aborted) throw err;
        failures.push(`${op} failed (${describeError(err)})`);
      }
    }
    return failures.length === 0 ? 'the namenode knows neither GETFILEBLOCKLOCATIONS nor GET_BLOCK_LOCATIONS to tell their lengths' : `their lengths are unknown: ${failures.join('; ')}`;
  }

  /** The entries of one directory, a page at a time. */
  private async *children(dir: string, signal: AbortSignal): AsyncIterable<FileStatus> {
    const dirPath = `/${dir}`;
    let startAfter: string | undefined;
    while (this.batchSupported) {
      const result = await this.namenode('LISTSTATUS_BATCH', dirPath, startAfter === undefined ? {} : { startAfter }, signal);
      if (!result.ok) {
        if (startAfter === undefined && isUnsupportedOp(result.status, result.remote, 'LISTSTATUS_BATCH')) {
          this.log.debug('WebHDFS: the namenode does not know LISTSTATUS_BATCH; listing whole directories with LISTSTATUS');
          this.batchSupported = false;
          break;
        }
        throw this.failure(result, dirPath);
      }
      const listing = (await this.json(result.response)).DirectoryListing as { partialListing?: { FileStatuses?: { FileStatus?: unknown } }; remainingEntries?: unknown } | undefined;
      const entries = this.entries(listing?.partialListing?.FileStatuses?.FileStatus, dirPath);
      yield* entries;
      const remaining = typeof listing?.remainingEntries === 'number' ? listing.remainingEntries : 0;
      const last = entries.at(-1);
      if (remaining <= 0 || last === undefined) return;
      startAfter = last.pathSuffix;
    }
    const result = await this.namenode('LISTSTATUS', dirPath, {}, signal);
    if (!result.ok) throw this.failure(result, dirPath);
    const statuses = (await this.json(result.response)).FileStatuses as { FileStatus?: unknown } | undefined;
    yield* this.entries(statuses?.FileStatus, dirPath);
  }

  private entries(value: unknown, dirPath: string): FileStatus[] {
    if (value === undefined) return [];
    if (!Array.isArray(value) || !value.every(isFileStatus)) throw invalidInput(`WebHDFS listing of ${dirPath} for ${this.displayUri} is not a FileStatus array`);
    return value;
  }

  async read(obj: RemoteObject, range: ByteRange | undefined, signal: AbortSignal): Promise<Readable> {
    const hdfsPath = `/${obj.key}`;
    const params: Record<string, string> = range === undefined ? {} : { offset: String(range.start), length: String(range.end - range.start) };
    const result = await this.namenode('OPEN', hdfsPath, params, signal);
    if (!result.ok) throw this.failure(result, hdfsPath);
    const { response } = result;
    const length = headerValue(response.headers, 'content-length');
    if (range !== undefined && length !== undefined && Number(length) !== range.end - range.start) {
      discardBody(response.body);
      throw integrity(`WebHDFS sent ${length} bytes for a ${range.end - range.start}-byte range of ${hdfsPath}`, { retryable: true });
    }
    return response.body;
  }

  async close(): Promise<void> {
    this.spnego?.close();
    await this.dispatcher.close();
  }
}
