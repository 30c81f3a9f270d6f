/**
 * A faithful double of the WebHDFS REST API on 127.0.0.1 (no Hadoop can be installed here): two
 * namenodes of an HA pair (one active; the standby answers every operation with Hadoop's
 * StandbyException) and one datanode on its own port.
 *
 *   GET /webhdfs/v1/PATH?op=GETFILESTATUS        {"FileStatus":{...}}
 *   GET /webhdfs/v1/PATH?op=LISTSTATUS           {"FileStatuses":{"FileStatus":[...]}}
 *   GET /webhdfs/v1/PATH?op=LISTSTATUS_BATCH[&startAfter=NAME]
 *                                                {"DirectoryListing":{"partialListing":{"FileStatuses":{...}},"remainingEntries":N}}
 *   GET /webhdfs/v1/PATH?op=OPEN[&offset&length] 307 to the datanode, which serves the bytes
 *   GET /webhdfs/v1/PATH?op=GETFILECHECKSUM      307 to the datanode, which answers
 *                                                {"FileChecksum":{"algorithm","bytes","length"}}
 *   GET /webhdfs/v1/PATH?op=GETFILEBLOCKLOCATIONS[&offset&length]
 *                                                {"BlockLocations":{"BlockLocation":[{"offset","length",...}]}}
 *   GET /webhdfs/v1/PATH?op=GET_BLOCK_LOCATIONS[&offset&length]
 *                                                {"LocatedBlocks":{"locatedBlocks":[{"startOffset","block":{"numBytes",...},...}],...}}
 *
 * A file's blocks are `blockSize` bytes but the last, or the lengths it was stored with
 * (`putFile(..., { blockLengths })`), as `concat` or an append with NEW_BLOCK leaves them.
 * GETFILECHECKSUM is computed from the stored bytes and those blocks as HDFS does, with 512 bytes
 * per CRC: by default Hadoop's MD5MD5CRC32C (the HDFS default), or COMPOSITE-CRC32C as with
 * dfs.checksum.combine.mode=COMPOSITE_CRC; a 0-byte file gets HDFS's fixed value for it.
 *
 * As Hadoop: `op` values and parameter names are case-insensitive; the user is `user.name` (else the
 * anonymous `dr.who`), `doas` impersonates only for configured proxy users; permissions are checked
 * (execute on ancestors, read on files, read+execute to list); errors are
 * `{"RemoteException":{"exception","javaClassName","message"}}` with Hadoop's status codes (403 for
 * any IOException, 404 for FileNotFoundException, 400 for a bad parameter).
 *
 * With `spnego`, the namenodes are Kerberized as Hadoop's authentication filter does it: a request
 * without `Authorization: Negotiate <token>` gets 401 `WWW-Authenticate: Negotiate`, a token GSSAPI
 * (the real `kerberos` module, acceptor keytab in KRB5_KTNAME) cannot accept gets 403, and an
 * accepted one makes the principal's short name the user (a `user.name` that differs is refused, as
 * Hadoop's checkUsername does) and answers the mutual-authentication token. OPEN redirects carry a
 * delegation token instead of `user.name`, and the datanode accepts nothing else. The URLs then
 * name `localhost`, the host of the service principal `HTTP/localhost`.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { crc32c } from '@aws-crypto/crc32c';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { listenOnLoopback } from './ports.js';

export interface WebHdfsDoubleOptions {
  /** Block size of every file (dfs.blocksize); default 128 MiB. A multiple of 512. */
  blockSize?: number;
  /** What GETFILECHECKSUM answers; false: a cluster or gateway without it (400, unknown op). */
  fileChecksum?: 'md5md5crc32c' | 'composite-crc32c' | false;
  /** Entries per LISTSTATUS_BATCH page (Hadoop's dfs.ls.limit); default 1000. */
  batchLimit?: number;
  /** false: an old namenode (before Hadoop 2.8) that refuses LISTSTATUS_BATCH. */
  listStatusBatch?: boolean;
  /**
   * The block-locations operations the namenode knows; default both. Hadoop before 3.2 knows only
   * GET_BLOCK_LOCATIONS; [] is a gateway that passes on neither.
   */
  blockLocations?: ('GETFILEBLOCKLOCATIONS' | 'GET_BLOCK_LOCATIONS')[];
  /** Headers the namenodes require (a gateway's token); missing or wrong -> 401. Datanodes never see them. */
  requiredHeaders?: Record<string, string>;
  /** Real users allowed to impersonate others with `doas`. */
  proxyUsers?: string[];
  /** Serve HTTPS; with `clientCaFile`, require a client certificate signed by it. */
  tls?: { certFile: string; keyFile: string; clientCaFile?: string };
  /** Require SPNEGO on the namenodes, accepting with the service keys of `HTTP/localhost` in `keytabFile`. */
  spnego?: {
    keytabFile: string;
    /** krb5.conf of the test realm. */
    krb5Config: string;
    /** Answer a mutual-authentication token that is not the real one (a namenode impostor). */
    forgeMutualToken?: boolean;
  };
}

/** The part of the `kerberos` module the double uses. */
interface KerberosAcceptor {
  initializeServer(service: string): Promise<{ step(token: string): Promise<unknown>; username: string; response: string | null }>;
}

export interface WebHdfsRequest {
  server: 'nn0' | 'nn1' | 'dn';
  op: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  clientCert: boolean;
  /** The user SPNEGO authenticated (the principal's short name), on a Kerberized namenode. */
  authUser?: string;
}

interface Inode {
  type: 'FILE' | 'DIRECTORY';
  data: Buffer;
  owner: string;
  permission: string;
  modificationTime: number;
  fileId: number;
  /** The lengths of the file's blocks when they are not all blockSize (concatenated or appended files). */
  blockLengths?: number[];
}

export interface WebHdfsDouble {
  /** Base URLs of the two namenodes and the datanode (`http(s)://127.0.0.1:PORT`). */
  readonly namenodes: readonly [string, string];
  readonly datanodeUrl: string;
  /** Which namenode is active (0 or 1); the other answers StandbyException. */
  active: 0 | 1;
  readonly activeUrl: string;
  readonly standbyUrl: string;
  readonly requests: WebHdfsRequest[];
  mkdir(path: string, options?: { owner?: string; permission?: string }): void;
  /** `blockLengths`: the file's blocks as concat or an append with NEW_BLOCK leaves them (each 1..blockSize bytes, adding up to the data). */
  putFile(path: string, data: Buffer, options?: { owner?: string; permission?: string; blockLengths?: number[] }): void;
  stop(): Promise<void>;
}

const SUPERUSER = 'hdfs';

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function remote(res: ServerResponse, status: number, exception: string, javaPackage: string, message: string): void {
  sendJson(res, status, { RemoteException: { exception, javaClassName: `${javaPackage}.${exception}`, message } });
}

const BYTES_PER_CRC = 512;

const crcBytes = (crc: number): Buffer => {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(crc >>> 0);
  return bytes;
};

/**
 * FileChecksum as a datanode's GETFILECHECKSUM sends it (JsonUtil of Hadoop's FileChecksum): the
 * MD5 of each block's chunk CRCs, then the MD5 of those block MD5s as the HDFS client collects them
 * in a buffer of 32 bytes doubled when full, which it digests whole, padding included. `bytes` is
 * the serialization buffer whole too: 28 bytes of value (bytesPerCRC, crcPerBlock, MD5) then 4 zeros.
 * crcPerBlock is what the datanode reports for the first block (the CRCs in its metadata file), and
 * only for a file of several blocks (FileChecksumHelper), whatever the other blocks hold.
 */
function fileChecksum(data: Buffer, blocks: readonly number[], mode: 'md5md5crc32c' | 'composite-crc32c'): { algorithm: string; bytes: string; length: number } {
  if (data.length > 0 && mode === 'composite-crc32c') return { algorithm: 'COMPOSITE-CRC32C', bytes: crcBytes(crc32c(data)).toString('hex'), length: 4 };
  const blockMd5s: Buffer[] = [];
  for (let b = 0, start = 0; b < blocks.length; start += blocks[b] ?? 0, b++) {
    const block = data.subarray(start, start + (blocks[b] ?? 0));
    const md5 = createHash('md5');
    for (let chunk = 0; chunk < block.length; chunk += BYTES_PER_CRC) md5.update(crcBytes(crc32c(block.subarray(chunk, chunk + BYTES_PER_CRC))));
    blockMd5s.push(md5.digest());
  }
  let collected = Buffer.alloc(32);
  blockMd5s.forEach((md5, i) => {
    if (16 * (i + 1) > collected.length) collected = Buffer.concat([collected, Buffer.alloc(collected.length)]);
    md5.copy(collected, 16 * i);
  });
  // An empty file has no block: HDFS answers (0, 0, MD5 of 32 zero bytes) under the CRC32 name.
  const bytesPerCrc = data.length === 0 ? 0 : BYTES_PER_CRC;
  const crcPerBlock = blockMd5s.length > 1 ? Math.ceil((blocks[0] ?? 0) / BYTES_PER_CRC) : 0;
  const serialized = Buffer.alloc(32);
  serialized.writeInt32BE(bytesPerCrc, 0);
  serialized.writeBigInt64BE(BigInt(crcPerBlock), 4);
  createHash('md5').update(collected).digest().copy(serialized, 12);
  return { algorithm: `MD5-of-${crcPerBlock}MD5-of-${bytesPerCrc}${data.length === 0 ? 'CRC32' : 'CRC32C'}`, bytes: serialized.toString('hex'), length: 28 };
}

const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

function normalize(path: string): string {
  const trimmed = `/${path.split('/').filter((s) => s !== '').join('/')}`;
  return trimmed;
}

function parent(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

export async function startWebHdfsDouble(options: WebHdfsDoubleOptions = {}): Promise<WebHdfsDouble> {
  const inodes = new Map<string, Inode>();
  let nextFileId = 16386;
  const newInode = (type: Inode['type'], data: Buffer, owner = SUPERUSER, permission = type === 'FILE' ? '644' : '755'): Inode =>
    ({ type, data, owner, permission, modificationTime: 1_700_000_000_000 + nextFileId, fileId: nextFileId++ });
  inodes.set('/', newInode('DIRECTORY', Buffer.alloc(0)));
  const ensureDir = (path: string): void => {
    if (inodes.has(path)) return;
    ensureDir(parent(path));
    inodes.set(path, newInode('DIRECTORY', Buffer.alloc(0)));
  };
  const requests: WebHdfsRequest[] = [];
  const batchLimit = options.batchLimit ?? 1000;
  const blockSize = options.blockSize ?? 134217728;
  const checksumMode = options.fileChecksum ?? 'md5md5crc32c';
  const blockLocationOps: string[] = options.blockLocations ?? ['GETFILEBLOCKLOCATIONS', 'GET_BLOCK_LOCATIONS'];

  /** The file's block lengths: as stored, else blockSize each but the last. */
  const blocksOf = (inode: Inode): number[] => {
    if (inode.blockLengths !== undefined) return inode.blockLengths;
    const blocks: number[] = [];
    for (let start = 0; start < inode.data.length; start += blockSize) blocks.push(Math.min(blockSize, inode.data.length - start));
    return blocks;
  };

  /** The blocks overlapping [offset, offset + length), as the namenode's getBlockLocations picks them. */
  const locatedBlocks = (inode: Inode, offset: number, length: number): { start: number; length: number; id: number }[] => {
    const located: { start: number; length: number; id: number }[] = [];
    let start = 0;
    blocksOf(inode).forEach((n, i) => {
      if (start < offset + length && start + n > offset) located.push({ start, length: n, id: 1_073_741_825 + inode.fileId * 100 + i });
      start += n;
    });
    return located;
  };

  const rwx = (inode: Inode): string => (inode.type === 'DIRECTORY' ? 'd' : '-')
    + inode.permission.split('').map((d) => { const n = Number(d); return `${n & 4 ? 'r' : '-'}${n & 2 ? 'w' : '-'}${n & 1 ? 'x' : '-'}`; }).join('');

  /** The Hadoop AccessControlException message, or undefined when allowed. */
  const denied = (user: string, path: string, inode: Inode, access: 'READ' | 'EXECUTE' | 'READ_EXECUTE'): string | undefined => {
    if (user === SUPERUSER) return undefined;
    const need = access === 'READ' ? 4 : access === 'EXECUTE' ? 1 : 5;
    const digit = Number(inode.permission[user === inode.owner ? 0 : 2] ?? '0');
    if ((digit & need) === need) return undefined;
    return `Permission denied: user=${user}, access=${access}, inode="${path}":${inode.owner}:supergroup:${rwx(inode)}`;
  };

  /** Resolves a path for a user: the inode, or an error already sent. */
  const lookup = (res: ServerResponse, user: string, path: string): Inode | undefined => {
    const segments = path.split('/').filter((s) => s !== '');
    let current = '/';
    for (const segment of segments) {
      const dir = inodes.get(current);
      if (dir?.type !== 'DIRECTORY') break;
      const why = denied(user, current, dir, 'EXECUTE');
      if (why !== undefined) {
        remote(res, 403, 'AccessControlException', 'org.apache.hadoop.security', why);
        return undefined;
      }
      current = current === '/' ? `/${segment}` : `${current}/${segment}`;
    }
    const inode = inodes.get(path);
    if (inode === undefined) remote(res, 404, 'FileNotFoundException', 'java.io', `File does not exist: ${path}`);
    return inode;
  };

  const status = (name: string, inode: Inode, path: string): Record<string, unknown> => ({
    accessTime: inode.type === 'FILE' ? inode.modificationTime : 0, blockSize: inode.type === 'FILE' ? blockSize : 0,
    childrenNum: inode.type === 'DIRECTORY' ? childrenOf(path).length : 0, fileId: inode.fileId, group: 'supergroup',
    length: inode.type === 'FILE' ? inode.data.length : 0, modificationTime: inode.modificationTime, owner: inode.owner,
    pathSuffix: name, permission: inode.permission, replication: inode.type === 'FILE' ? 3 : 0, storagePolicy: 0, type: inode.type,
  });

  const childrenOf = (dir: string): [string, Inode][] => {
    const base = dir === '/' ? '/' : `${dir}/`;
    return [...inodes].filter(([p]) => p !== dir && p.startsWith(base) && !p.slice(base.length).includes('/'))
      .map(([p, inode]): [string, Inode] => [p.slice(base.length), inode]).sort(([a], [b]) => byteOrder(a, b));
  };

  const servers: Server[] = [];
  const ports: number[] = [];
  const scheme = options.tls === undefined ? 'http' : 'https';
  const host = options.spnego === undefined ? '127.0.0.1' : 'localhost';
  const url = (i: number): string => `${scheme}://${host}:${ports[i] ?? 0}`;
  /** Delegation tokens handed out in OPEN redirects: token -> the user it acts for. */
  const delegations = new Map<string, string>();

  let acceptor: KerberosAcceptor | undefined;
  if (options.spnego !== undefined) {
    // The acceptor side of GSSAPI runs in this (the test) process and reads its keytab and realm
    // from the environment; the CLI under test is a child process with its own environment.
    process.env.KRB5_KTNAME = `FILE:${options.spnego.keytabFile}`;
    process.env.KRB5_CONFIG = options.spnego.krb5Config;
    process.env.KRB5RCACHEDIR = dirname(options.spnego.keytabFile);
    acceptor = createRequire(import.meta.url)('kerberos') as KerberosAcceptor;
  }

  /** Hadoop's authentication filter: the authenticated short name, or undefined once it has answered 401/403. */
  const negotiate = async (kerberos: KerberosAcceptor, req: IncomingMessage, res: ServerResponse): Promise<string | undefined> => {
    const token = /^Negotiate\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (token === undefined) {
      res.writeHead(401, { 'www-authenticate': 'Negotiate', 'content-type': 'text/html' }).end('<html><body><h2>HTTP ERROR 401 Authentication required</h2></body></html>');
      return undefined;
    }
    try {
      const context = await kerberos.initializeServer('HTTP@localhost');
      await context.step(token);
      const mutual = options.spnego?.forgeMutualToken === true ? 'oRQwEqADCgEAoQsGCSqGSIb3EgECAg==' : context.response;
      if (mutual !== null && mutual !== '') res.setHeader('www-authenticate', `Negotiate ${mutual}`);
      // Hadoop's default auth_to_local: user/instance@REALM -> user.
      return context.username.replace(/[/@].*$/, '');
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      res.writeHead(403, { 'www-authenticate': 'Negotiate', 'content-type': 'text/html' }).end(`<html><body><h2>HTTP ERROR 403 GSSException: ${message}</h2></body></html>`);
      return undefined;
    }
  };

  const handle = (server: WebHdfsRequest['server'], req: IncomingMessage, res: ServerResponse, authUser?: string): void => {
    const parsed = new URL(req.url ?? '/', 'http://double');
    const query = new URLSearchParams();
    for (const [k, v] of parsed.searchParams) query.set(k.toLowerCase() === 'startafter' ? 'startAfter' : k.toLowerCase(), v);
    const op = (query.get('op') ?? '').toUpperCase();
    if (!parsed.pathname.startsWith('/webhdfs/v1/') && parsed.pathname !== '/webhdfs/v1') {
      res.writeHead(404, { 'content-type': 'text/html' }).end('<html><body>Not Found</body></html>');
      return;
    }
    const path = normalize(parsed.pathname.slice('/webhdfs/v1'.length).split('/').map((s) => decodeURIComponent(s)).join('/'));
    requests.push({ server, op, path, query, headers: req.headers, clientCert: (req.socket as Partial<TLSSocket>).authorized === true, ...(authUser === undefined ? {} : { authUser }) });
    if (server !== 'dn' && server !== `nn${double.active}`) {
      remote(res, 403, 'StandbyException', 'org.apache.hadoop.ipc', 'Operation category READ is not supported in state standby. Visit https://s.apache.org/sbnn-error');
      return;
    }
    if (server !== 'dn') {
      for (const [name, value] of Object.entries(options.requiredHeaders ?? {})) {
        if (req.headers[name.toLowerCase()] !== value) {
          res.writeHead(401, { 'content-type': 'text/plain' }).end('Unauthorized');
          return;
        }
      }
    }
    if (req.method !== 'GET') {
      remote(res, 400, 'IllegalArgumentException', 'java.lang', `Invalid value for webhdfs parameter "op": ${req.method ?? ''} is not supported by this double`);
      return;
    }
    let real = query.get('user.name') ?? 'dr.who';
    let doas = query.get('doas');
    if (acceptor !== undefined && server !== 'dn') {
      if (authUser === undefined) throw new Error('a Kerberized namenode request without an authenticated user');
      if (query.get('user.name') !== null && real !== authUser) {
        remote(res, 403, 'IOException', 'java.io', `Usernames not matched: name=${real} != expected=${authUser}`);
        return;
      }
      real = authUser;
    } else if (acceptor !== undefined) {
      const owner = delegations.get(query.get('delegation') ?? '');
      if (owner === undefined) {
        remote(res, 403, 'InvalidToken', 'org.apache.hadoop.security.token.SecretManager', 'a Kerberized datanode needs the delegation token of the redirect');
        return;
      }
      real = owner;
      doas = null;
    }
    if (doas !== null && doas !== real && !(options.proxyUsers ?? []).includes(real)) {
      remote(res, 403, 'SecurityException', 'java.lang', `Failed to obtain user group information: org.apache.hadoop.security.authorize.AuthorizationException: User: ${real} is not allowed to impersonate ${doas}`);
      return;
    }
    const user = doas ?? real;
    const inode = lookup(res, user, path);
    if (inode === undefined) return;

    if (server === 'dn') {
      if ((op !== 'OPEN' && op !== 'GETFILECHECKSUM') || query.get('namenoderpcaddress') === null) {
        remote(res, 400, 'IllegalArgumentException', 'java.lang', 'Invalid datanode request');
        return;
      }
      if (op === 'OPEN') sendBytes(res, user, path, inode, query);
      else if (checksumMode !== false) sendJson(res, 200, { FileChecksum: fileChecksum(inode.data, blocksOf(inode), checksumMode) });
      return;
    }
    switch (op) {
      case 'GETFILESTATUS':
        sendJson(res, 200, { FileStatus: status('', inode, path) });
        return;
      case 'LISTSTATUS':
      case 'LISTSTATUS_BATCH': {
        if (op === 'LISTSTATUS_BATCH' && options.listStatusBatch === false) break;
        if (inode.type === 'FILE') {
          const one = { FileStatuses: { FileStatus: [status('', inode, path)] } };
          sendJson(res, 200, op === 'LISTSTATUS' ? one : { DirectoryListing: { partialListing: one, remainingEntries: 0 } });
          return;
        }
        const why = denied(user, path, inode, 'READ_EXECUTE');
        if (why !== undefined) {
          remote(res, 403, 'AccessControlException', 'org.apache.hadoop.security', why);
          return;
        }
        let entries = childrenOf(path);
        if (op === 'LISTSTATUS') {
          sendJson(res, 200, { FileStatuses: { FileStatus: entries.map(([n, i]) => status(n, i, `${path === '/' ? '' : path}/${n}`)) } });
          return;
        }
        const after = query.get('startAfter');
        if (after !== null) entries = entries.filter(([n]) => byteOrder(n, after) > 0);
        const page = entries.slice(0, batchLimit);
        sendJson(res, 200, { DirectoryListing: {
          partialListing: { FileStatuses: { FileStatus: page.map(([n, i]) => status(n, i, `${path === '/' ? '' : path}/${n}`)) } },
          remainingEntries: entries.length - page.length,
        } });
        return;
      }
      case 'GETFILEBLOCKLOCATIONS':
      case 'GET_BLOCK_LOCATIONS':
      case 'GETFILECHECKSUM':
      case 'OPEN': {
        if (op === 'GETFILECHECKSUM' && checksumMode === false) break;
        if ((op === 'GETFILEBLOCKLOCATIONS' || op === 'GET_BLOCK_LOCATIONS') && !blockLocationOps.includes(op)) break;
        if (inode.type !== 'FILE') {
          remote(res, 404, 'FileNotFoundException', 'java.io', `Path is not a file: ${path}`);
          return;
        }
        const why = denied(user, path, inode, 'READ');
        if (why !== undefined) {
          remote(res, 403, 'AccessControlException', 'org.apache.hadoop.security', why);
          return;
        }
        if (op !== 'OPEN' && op !== 'GETFILECHECKSUM') {
          sendBlockLocations(res, op, inode, query);
          return;
        }
        const target = new URL(`${url(2)}/webhdfs/v1${path.split('/').map((s) => encodeURIComponent(s)).join('/')}`);
        target.searchParams.set('op', op);
        if (acceptor !== undefined) {
          const token = randomBytes(16).toString('base64url');
          delegations.set(token, user);
          target.searchParams.set('delegation', token);
        } else {
          target.searchParams.set('user.name', real);
          if (doas !== null) target.searchParams.set('doas', doas);
        }
        target.searchParams.set('namenoderpcaddress', 'mycluster');
        for (const p of ['offset', 'length']) {
          const v = query.get(p);
          if (v !== null) target.searchParams.set(p, v);
        }
        res.writeHead(307, { location: target.toString(), 'content-type': 'application/octet-stream', 'content-length': 0 }).end();
        return;
      }
      default:
        break;
    }
    remote(res, 400, 'IllegalArgumentException', 'java.lang', `Invalid value for webhdfs parameter "op": No enum constant org.apache.hadoop.hdfs.web.resources.GetOpParam.Op.${op}`);
  };

  /** The namenode's answer to either block-locations operation (NamenodeWebHdfsMethods + JsonUtil). */
  const sendBlockLocations = (res: ServerResponse, op: string, inode: Inode, query: URLSearchParams): void => {
    const offset = Number(query.get('offset') ?? '0');
    const length = Number(query.get('length') ?? String(Number.MAX_SAFE_INTEGER));
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      remote(res, 400, 'IllegalArgumentException', 'java.lang', `Invalid offset or length: offset=${query.get('offset') ?? ''}, length=${query.get('length') ?? ''}`);
      return;
    }
    const blocks = locatedBlocks(inode, offset, length);
    const datanode = { host: '127.0.0.1', xfer: '127.0.0.1:9866' };
    if (op === 'GETFILEBLOCKLOCATIONS') {
      sendJson(res, 200, { BlockLocations: { BlockLocation: blocks.map((b) => ({
        cachedHosts: [], corrupt: false, hosts: [datanode.host], length: b.length, names: [datanode.xfer], offset: b.start,
        storageTypes: ['DISK'], topologyPaths: [`/default-rack/${datanode.xfer}`],
      })) } });
      return;
    }
    const located = (b: { start: number; length: number; id: number }): Record<string, unknown> => ({
      block: { blockId: b.id, blockPoolId: 'BP-1-127.0.0.1-1700000000000', generationStamp: 1001, numBytes: b.length },
      blockToken: { urlString: 'AAAAAAA' }, cachedLocations: [], isCorrupt: false,
      locations: [{ adminState: 'NORMAL', hostName: 'localhost', infoPort: 9864, ipAddr: datanode.host, name: datanode.xfer, xferPort: 9866 }],
      startOffset: b.start, storageTypes: ['DISK'],
    });
    const all = blocksOf(inode);
    const last = all.length === 0 ? null : located({ start: inode.data.length - (all.at(-1) ?? 0), length: all.at(-1) ?? 0, id: 1_073_741_825 + inode.fileId * 100 + all.length - 1 });
    sendJson(res, 200, { LocatedBlocks: {
      fileLength: inode.data.length, isLastBlockComplete: true, isUnderConstruction: false, lastLocatedBlock: last, locatedBlocks: blocks.map(located),
    } });
  };

  const sendBytes = (res: ServerResponse, user: string, path: string, inode: Inode, query: URLSearchParams): void => {
    const why = denied(user, path, inode, 'READ');
    if (why !== undefined) {
      remote(res, 403, 'AccessControlException', 'org.apache.hadoop.security', why);
      return;
    }
    const offset = Number(query.get('offset') ?? '0');
    const size = inode.data.length;
    if (!Number.isSafeInteger(offset) || offset < 0 || (offset > 0 && offset >= size)) {
      remote(res, 403, 'IOException', 'java.io', `Offset=${offset} out of the range [0, ${size}); OPEN, path=${path}`);
      return;
    }
    const lengthParam = query.get('length');
    const end = lengthParam === null ? size : Math.min(size, offset + Number(lengthParam));
    const body = inode.data.subarray(offset, end);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(body);
  };

  const tlsOptions = options.tls === undefined ? undefined : {
    cert: readFileSync(options.tls.certFile), key: readFileSync(options.tls.keyFile),
    ...(options.tls.clientCaFile === undefined ? {} : { ca: readFileSync(options.tls.clientCaFile), requestCert: true, rejectUnauthorized: true }),
  };
  for (const server of ['nn0', 'nn1', 'dn'] as const) {
    const listener = (req: IncomingMessage, res: ServerResponse): void => {
      if (acceptor === undefined || server === 'dn') {
        handle(server, req, res);
        return;
      }
      void negotiate(acceptor, req, res).then((user) => { if (user !== undefined) handle(server, req, res, user); });
    };
    const s = tlsOptions === undefined ? createHttpServer(listener) : createHttpsServer(tlsOptions, listener);
    ports.push(await listenOnLoopback(s));
    servers.push(s);
  }

  const double: WebHdfsDouble = {
    namenodes: [url(0), url(1)],
    datanodeUrl: url(2),
    active: 0,
    get activeUrl() { return url(double.active); },
    get standbyUrl() { return url(1 - double.active); },
    requests,
    mkdir(path, opts = {}) {
      const p = normalize(path);
      ensureDir(parent(p));
      inodes.set(p, newInode('DIRECTORY', Buffer.alloc(0), opts.owner, opts.permission));
    },
    putFile(path, data, opts = {}) {
      const p = normalize(path);
      const lengths = opts.blockLengths;
      if (lengths !== undefined && (lengths.some((n) => !Number.isSafeInteger(n) || n <= 0 || n > blockSize) || lengths.reduce((a, n) => a + n, 0) !== data.length)) {
        throw new Error(`blockLengths of ${p} must each be 1..${blockSize} bytes and add up to ${data.length}`);
      }
      ensureDir(parent(p));
      inodes.set(p, { ...newInode('FILE', data, opts.owner, opts.permission), ...(lengths === undefined ? {} : { blockLengths: [...lengths] }) });
    },
    async stop() {
      await Promise.all(servers.map((s) => new Promise<void>((resolve) => {
        s.closeAllConnections();
        s.close(() => { resolve(); });
      })));
    },
  };
  return double;
}
