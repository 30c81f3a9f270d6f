/**
 * The WebHDFS source end to end: the bundled CLI with HDFS_SECRET_DIR pointing at a directory of
 * secret files (as KServe mounts the hdfscreds secret) against the WebHDFS double: an HA list whose
 * first namenode is standby, HDFS_ROOTPATH, USER_PROXY, HEADERS for a gateway, a single file, a
 * missing path, STORAGE_CONFIG `type: webhdfs` with base64 TLS client certificate and CA, and
 * Kerberos settings checked before any request (hdfs-kerberos.test.ts runs Kerberos against a real
 * KDC). No secret value ever reaches the output. Files are verified by the checksum HDFS publishes
 * (GETFILECHECKSUM, MD5-of-MD5-of-CRC32C or COMPOSITE-CRC32C): a byte flipped between the datanode
 * and us is caught and the file fetched again; a cluster without the operation gets the size check.
 * A file of uneven blocks (as concat or an append with NEW_BLOCK leaves it) is verified by its block
 * lengths from GETFILEBLOCKLOCATIONS or GET_BLOCK_LOCATIONS, or by its size where neither is known.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { errorLines, failsWith, runCli, type CliResult } from '../helpers/cli.js';
import { freshDest, hashOf, hashTree, randomBytes, tempDir, type Tree } from '../helpers/tree.js';
import { startFaultProxy, type FaultProxy } from '../servers/fault-proxy.js';
import { generateCa, type TlsFiles } from '../servers/tls.js';
import { startWebHdfsDouble, type WebHdfsDouble } from '../servers/webhdfs-double.js';

const TREE: Tree = new Map([
  ['models/iris/model.bin', randomBytes(300_000, 41)],
  ['models/iris/config.json', Buffer.from('{"framework":"sklearn"}')],
  ['models/iris/sub dir/ünï.txt', Buffer.from('nested\n')],
  ['models/iris/__init__.py', Buffer.alloc(0)],
  ['models/iris2/other.bin', Buffer.from('must not be downloaded')],
]);
const ROOT = '/user/kserve';
const GATEWAY_TOKEN = 'gw-token-5f2c9a7e31d4';
const KEYTAB = 'BQIAAABHAAIAC0VYQU1QTEUuQ09NAAZrc2VydmUAAAABZ';

function openssl(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, timeout: 30_000 }, (err) => { if (err) reject(new Error(`openssl ${args[0] ?? ''} failed`, { cause: err })); else resolve(); });
  });
}

/** A client certificate (clientAuth) signed by the test CA. */
async function issueClientCert(ca: TlsFiles, dir: string): Promise<{ certFile: string; keyFile: string }> {
  const keyFile = path.join(dir, 'client.key');
  const certFile = path.join(dir, 'client.crt');
  await writeFile(path.join(dir, 'client.ext'), 'basicConstraints = CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = clientAuth\n');
  await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', 'client.csr', '-subj', '/CN=kserve'], dir);
  await openssl(['x509', '-req', '-in', 'client.csr', '-CA', ca.caCertFile, '-CAkey', ca.caKeyFile, '-set_serial', '0x1234', '-days', '2', '-extfile', 'client.ext', '-out', certFile], dir);
  return { certFile, keyFile };
}

describe('hdfs source (CLI against the WebHDFS double)', () => {
  let hdfs: WebHdfsDouble;
  let work: Awaited<ReturnType<typeof tempDir>>;

  before(async () => {
    work = await tempDir('si-hdfs-e2e-');
    hdfs = await startWebHdfsDouble({ requiredHeaders: { 'X-Gateway-Token': GATEWAY_TOKEN } });
    hdfs.mkdir(ROOT, { owner: 'kserve', permission: '700' });
    for (const [key, content] of TREE) hdfs.putFile(`${ROOT}/${key}`, content, { owner: 'kserve', permission: '600' });
  });

  after(async () => {
    await hdfs.stop();
    await work[Symbol.asyncDispose]();
  });

  /** A secret dir as KServe mounts it: one file per key (values end with a newline, as `kubectl create secret --from-file` often leaves them). */
  async function secretDir(values: Record<string, string>): Promise<string> {
    const dir = path.join(work.dir, 'secrets', String(Math.random()).slice(2));
    await mkdir(dir, { recursive: true });
    for (const [key, value] of Object.entries(values)) await writeFile(path.join(dir, key), `${value}\n`);
    return dir;
  }

  const goodSecrets = (): Record<string, string> => ({
    HDFS_NAMENODE: `${hdfs.standbyUrl};${hdfs.activeUrl.replace('http://', '')}`,
    HDFS_ROOTPATH: ROOT,
    USER_PROXY: 'kserve',
    HEADERS: JSON.stringify({ 'X-Gateway-Token': GATEWAY_TOKEN }),
  });

  async function download(uri: string, env: Record<string, string>, args: string[] = []): Promise<{ result: CliResult; files: Map<string, string> }> {
    const dest = freshDest(path.join(work.dir, 'out'));
    const result = await runCli([...args, uri, dest], { env });
    return { result, files: await hashTree(dest).catch(() => new Map<string, string>()) };
  }

  const under = (prefix: string): Map<string, string> =>
    hashOf(new Map([...TREE].filter(([k]) => k.startsWith(`${prefix}/`)).map(([k, v]) => [k.slice(prefix.length + 1), v])));


  const leaksNoSecret = (result: CliResult, extra: string[] = []): void => {
    for (const secret of [GATEWAY_TOKEN, KEYTAB, ...extra]) {
      assert.ok(!result.stderr.includes(secret) && !result.stdout.includes(secret), `secret ${secret.slice(0, 12)}... in the output`);
    }
  };

  it('downloads a relative path under HDFS_ROOTPATH through an HA list whose first namenode is standby', async () => {
    const before = hdfs.requests.length;
    const dir = await secretDir(goodSecrets());
    const { result, files } = await download('hdfs://models/iris', { HDFS_SECRET_DIR: dir }, ['--part-size', '64KiB', '--log-level', 'debug']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, under('models/iris'));
    assert.match(result.stderr, /Successfully copied hdfs:\/\/models\/iris to/);
    const seen = hdfs.requests.slice(before);
    const standby = seen.filter((r) => r.server === `nn${1 - hdfs.active}`);
    assert.equal(standby.length, 1, 'the standby is asked once, then the active namenode is remembered');
    const nn = seen.filter((r) => r.server === `nn${hdfs.active}`);
    assert.ok(nn.every((r) => r.query.get('user.name') === 'kserve' && r.headers['x-gateway-token'] === GATEWAY_TOKEN), 'USER_PROXY and HEADERS on every namenode request');
    const dn = seen.filter((r) => r.server === 'dn');
    assert.ok(dn.length >= 5 && dn.every((r) => r.headers['x-gateway-token'] === undefined), 'HEADERS never reach the datanode');
    assert.ok(dn.some((r) => r.query.get('offset') !== null && r.query.get('length') !== null), 'ranged OPENs');
    assert.ok(dn.some((r) => r.op === 'GETFILECHECKSUM') && !/by its size only/.test(result.stderr), 'verified by the published checksums');
    leaksNoSecret(result);
  });

  it('downloads a single file to DEST/<basename>, with the namenode named in a webhdfs:// URI', async () => {
    const dir = await secretDir({ ...goodSecrets(), HDFS_NAMENODE: 'http://127.0.0.1:1' });
    const host = hdfs.activeUrl.replace('http://', '');
    const { result, files } = await download(`webhdfs://${host}${ROOT}/models/iris/config.json`, { HDFS_SECRET_DIR: dir });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, hashOf(new Map([['config.json', TREE.get('models/iris/config.json') ?? Buffer.alloc(0)]])));
  });

  it('fails in one line for a missing path, a user without access, and a wrong gateway header', async () => {
    const dir = await secretDir(goodSecrets());
    const missing = await download('hdfs://models/nope', { HDFS_SECRET_DIR: dir });
    failsWith(missing.result, /No model found in hdfs:\/\/models\/nope.*\/user\/kserve\/models\/nope does not exist/);
    const outsider = await download('hdfs://models/iris', { HDFS_SECRET_DIR: await secretDir({ ...goodSecrets(), USER_PROXY: 'mallory' }) });
    failsWith(outsider.result, /WebHDFS access denied .*Permission denied: user=mallory.*USER_PROXY/);
    const wrongHeader = await download('hdfs://models/iris', { HDFS_SECRET_DIR: await secretDir({ ...goodSecrets(), HEADERS: '{"X-Gateway-Token":"wrong-token-value"}' }) });
    failsWith(wrongHeader.result, /WebHDFS authentication failed for hdfs:\/\/models\/iris.*HEADERS/);
    leaksNoSecret(wrongHeader.result, ['wrong-token-value']);
    const malformed = await download('hdfs://models/iris', { HDFS_SECRET_DIR: await secretDir({ ...goodSecrets(), HEADERS: `{"X-Gateway-Token": ${GATEWAY_TOKEN}` }) });
    failsWith(malformed.result, /invalid HEADERS \(in HDFS_SECRET_DIR .*\): malformed JSON/);
    leaksNoSecret(malformed.result);
  });

  it('refuses a KERBEROS_KEYTAB that is not a keytab, or one without its principal, in one line without printing it', async () => {
    const notKeytab = await download('hdfs://models/iris', { HDFS_SECRET_DIR: await secretDir({ ...goodSecrets(), KERBEROS_PRINCIPAL: 'kserve@EXAMPLE.COM', KERBEROS_KEYTAB: KEYTAB }) });
    failsWith(notKeytab.result, /KERBEROS_KEYTAB in HDFS_SECRET_DIR .* is not a Kerberos keytab/);
    leaksNoSecret(notKeytab.result);
    const alone = await download('hdfs://models/iris', { STORAGE_CONFIG: JSON.stringify({ type: 'hdfs', HDFS_NAMENODE: hdfs.activeUrl, KERBEROS_KEYTAB: KEYTAB }) });
    failsWith(alone.result, /invalid STORAGE_CONFIG: KERBEROS_PRINCIPAL and KERBEROS_KEYTAB go together/);
    leaksNoSecret(alone.result);
  });

  it('takes STORAGE_CONFIG type webhdfs with base64 TLS client certificate, key and CA (mutual TLS)', async () => {
    const tlsDir = path.join(work.dir, 'tls');
    const ca = await generateCa(tlsDir, { name: 'hdfs' });
    const client = await issueClientCert(ca, tlsDir);
    const secure = await startWebHdfsDouble({ tls: { certFile: ca.certFile, keyFile: ca.keyFile, clientCaFile: ca.caCertFile } });
    try {
      secure.active = 1;
      secure.putFile('/models/m/model.bin', Buffer.from('over mutual TLS'));
      const b64 = async (file: string): Promise<string> => (await readFile(file)).toString('base64');
      const keyB64 = await b64(client.keyFile);
      const config = {
        type: 'webhdfs', HDFS_NAMENODE: `${secure.standbyUrl},${secure.activeUrl}`, USER_PROXY: 'kserve',
        TLS_CA: await b64(ca.caCertFile), TLS_CERT: await b64(client.certFile), TLS_KEY: keyB64,
      };
      const { result, files } = await download('webhdfs:///models/m', { STORAGE_CONFIG: JSON.stringify(config) }, ['--log-level', 'debug']);
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(files, hashOf(new Map([['model.bin', Buffer.from('over mutual TLS')]])));
      assert.ok(secure.requests.length > 0 && secure.requests.every((r) => r.clientCert), 'every request presented the client certificate');
      const keyPem = await readFile(client.keyFile, 'utf8');
      leaksNoSecret(result, [keyB64, keyPem.split('\n')[1] ?? 'unreachable']);

      const noCert = await download('webhdfs:///models/m', { STORAGE_CONFIG: JSON.stringify({ ...config, TLS_CERT: undefined, TLS_KEY: undefined }) });
      assert.equal(noCert.result.code, 1, noCert.result.stderr);
      assert.equal(errorLines(noCert.result).length, 1, noCert.result.stderr);
    } finally {
      await secure.stop();
    }
  });
});

describe('hdfs file checksums (GETFILECHECKSUM through the datanode)', () => {
  const BLOCK = 64 * 1024;
  // concat of files of 64 KiB + 20000 and 64 KiB + 777 bytes: the first block is full, so nothing
  // in the checksum answer tells these blocks from even ones.
  const UNEVEN_BLOCKS = [BLOCK, 20_000, BLOCK, 777];
  const FILES: Tree = new Map([
    ['m/weights.bin', randomBytes(5 * BLOCK + 1234, 43)],
    ['m/concat.bin', randomBytes(UNEVEN_BLOCKS.reduce((a, n) => a + n, 0), 47)],
    ['m/config.json', Buffer.from('{"framework":"pytorch"}')],
    ['m/empty.txt', Buffer.alloc(0)],
  ]);
  let work: Awaited<ReturnType<typeof tempDir>>;
  before(async () => { work = await tempDir('si-hdfs-checksum-'); });
  after(async () => { await work[Symbol.asyncDispose](); });

  /**
   * The CLI against a double whose datanode sits behind a fault proxy flipping one byte in the
   * first `flips` OPEN answers for `flipped` (the namenode's redirects are pointed at that proxy).
   */
  async function run(options: Parameters<typeof startWebHdfsDouble>[0], flips: number, flipped = 'weights.bin'): Promise<{ result: CliResult; files: Map<string, string>; double: WebHdfsDouble }> {
    const double = await startWebHdfsDouble({ blockSize: BLOCK, ...options });
    const proxies: FaultProxy[] = [];
    try {
      for (const [key, content] of FILES) double.putFile(`/${key}`, content, key === 'm/concat.bin' ? { blockLengths: UNEVEN_BLOCKS } : {});
      let opens = 0;
      const datanode = await startFaultProxy({
        upstream: double.datanodeUrl,
        schedule: (req) => /[?&]op=OPEN(&|$)/i.test(req.url) && req.path.endsWith(`/${flipped}`) && opens++ < flips ? { kind: 'flip-byte' } : { kind: 'none' },
      });
      proxies.push(datanode);
      const namenode = await startFaultProxy({ upstream: double.activeUrl, rewriteOrigins: { [new URL(double.datanodeUrl).origin]: datanode.url } });
      proxies.push(namenode);
      const dest = freshDest(path.join(work.dir, 'out'));
      const result = await runCli(['--log-level', 'debug', '--part-size', '64KiB', `webhdfs://${new URL(namenode.url).host}/m`, dest]);
      return { result, files: await hashTree(dest).catch(() => new Map<string, string>()), double };
    } finally {
      await Promise.all(proxies.map((p) => p.stop()));
      await double.stop();
    }
  }

  const expected = hashOf(new Map([...FILES].map(([k, v]) => [k.slice('m/'.length), v])));
  const checksumRequests = (double: WebHdfsDouble, server: 'nn' | 'dn'): string[] =>
    double.requests.filter((r) => r.op === 'GETFILECHECKSUM' && r.server.startsWith(server)).map((r) => r.path).sort();
  const blockRequests = (double: WebHdfsDouble): string[] =>
    double.requests.filter((r) => r.op === 'GETFILEBLOCKLOCATIONS' || r.op === 'GET_BLOCK_LOCATIONS').map((r) => `${r.op} ${r.path}`).sort();

  it('verifies every non-empty file by its MD5-of-MD5-of-CRC32C over several blocks, catching a flipped byte and fetching the file again', async () => {
    const { result, files, double } = await run({}, 1);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, expected);
    assert.match(result.stderr, /hdfs-md5md5crc32c mismatch for weights\.bin: expected 000002000000000000000080[0-9a-f]{32}, got [0-9a-f]{56}; downloading weights\.bin again/);
    // Asked of the namenode, answered by the datanode it redirects to; an empty file is not asked about.
    assert.deepEqual(checksumRequests(double, 'nn'), ['/m/concat.bin', '/m/config.json', '/m/weights.bin']);
    assert.deepEqual(checksumRequests(double, 'dn'), ['/m/concat.bin', '/m/config.json', '/m/weights.bin']);
    // Block lengths only for the files of several blocks.
    assert.deepEqual(blockRequests(double), ['GETFILEBLOCKLOCATIONS /m/concat.bin', 'GETFILEBLOCKLOCATIONS /m/weights.bin']);
    assert.doesNotMatch(result.stderr, /by its size only/);
  });

  it('verifies a file of uneven blocks (concatenated) by their lengths, catching a flipped byte and fetching the file again', async () => {
    const { result, files } = await run({}, 1, 'concat.bin');
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, expected);
    assert.match(result.stderr, /hdfs-md5md5crc32c mismatch for concat\.bin: expected 000002000000000000000080[0-9a-f]{32}, got [0-9a-f]{56}; downloading concat\.bin again/);
    assert.equal(result.stderr.match(/mismatch for concat\.bin/g)?.length, 1, 'the second download verifies');
    assert.doesNotMatch(result.stderr, /by its size only/);
  });

  it('takes the block lengths from GET_BLOCK_LOCATIONS on a namenode without GETFILEBLOCKLOCATIONS (before Hadoop 3.2)', async () => {
    const { result, files, double } = await run({ blockLocations: ['GET_BLOCK_LOCATIONS'] }, 0);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, expected);
    assert.doesNotMatch(result.stderr, /by its size only/);
    assert.match(result.stderr, /DEBUG WebHDFS: the namenode does not know GETFILEBLOCKLOCATIONS \(400\)/);
    const asked = blockRequests(double);
    assert.ok(asked.includes('GET_BLOCK_LOCATIONS /m/concat.bin') && asked.includes('GET_BLOCK_LOCATIONS /m/weights.bin'), asked.join(', '));
  });

  it('verifies a file of several blocks by its size, with a debug line, where the namenode tells no block lengths', async () => {
    const { result, files } = await run({ blockLocations: [] }, 0);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, expected);
    const sizeOnly = [...result.stderr.matchAll(/DEBUG WebHDFS: verifying \/m\/([a-z.]+) by its size only: it has several blocks and (.*)/g)];
    assert.deepEqual(sizeOnly.map((m) => m[1]).sort(), ['concat.bin', 'weights.bin'], result.stderr);
    assert.ok(sizeOnly.every((m) => /GETFILEBLOCKLOCATIONS|GET_BLOCK_LOCATIONS/.test(m[2] ?? '')), result.stderr);
    // A file of one block is still verified by its checksum.
    assert.doesNotMatch(result.stderr, /verifying \/m\/config\.json by its size only/);
  });

  it('verifies by COMPOSITE-CRC32C (dfs.checksum.combine.mode=COMPOSITE_CRC) as the plain CRC-32C of the bytes', async () => {
    const { result, files } = await run({ fileChecksum: 'composite-crc32c' }, 1);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, expected);
    assert.match(result.stderr, /crc32c mismatch for weights\.bin: expected [0-9a-f]{8}, got [0-9a-f]{8}; downloading weights\.bin again/);
  });

  it('falls back to the size check, with a debug line, on a cluster without GETFILECHECKSUM', async () => {
    const { result, files } = await run({ fileChecksum: false }, 0);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, expected);
    assert.match(result.stderr, /DEBUG WebHDFS: verifying \/m\/[a-z.]+ by its size only: GETFILECHECKSUM answered 400 \(IllegalArgumentException\)/);
  });
});
