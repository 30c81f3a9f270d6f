/**
 * WebHDFS with Kerberos end to end: a real MIT KDC (test/servers/kdc.ts), the WebHDFS double with
 * SPNEGO on its namenodes (accepting with the real GSSAPI), and the bundled CLI authenticating with
 * KERBEROS_PRINCIPAL + KERBEROS_KEYTAB from the secret dir or STORAGE_CONFIG. Each way Kerberos can
 * fail ends in one clear line, and the keytab never reaches the output, even at debug level.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { baseEnv, CLI, failsWith, runCli, type CliResult } from '../helpers/cli.js';
import { skipWithout } from '../helpers/system.js';
import { freshDest, hashOf, hashTree, randomBytes, tempDir, type Tree } from '../helpers/tree.js';
import { startKdc, type Kdc } from '../servers/kdc.js';
import { freePort } from '../servers/ports.js';
import { startWebHdfsDouble, type WebHdfsDouble } from '../servers/webhdfs-double.js';

/** Why the Kerberos tests cannot run here, or false. The module is an optional dependency, but CI must have it. */
function skipWithoutKerberosModule(): string | false {
  try {
    createRequire(import.meta.url)('kerberos');
    return false;
  } catch (err) {
    const why = `the optional "kerberos" module did not build or load (${err instanceof Error ? err.message.split('\n')[0] ?? '' : String(err)})`;
    if (process.env.CI === 'true') throw new Error(`${why}; CI installs libkrb5-dev so that it builds`, { cause: err });
    return why;
  }
}

const skip = skipWithout('krb5kdc') || skipWithout('kadmin.local') || skipWithoutKerberosModule();

const TREE: Tree = new Map([
  ['models/iris/model.bin', randomBytes(300_000, 43)],
  ['models/iris/config.json', Buffer.from('{"framework":"sklearn"}')],
  ['models/iris/sub dir/ünï.txt', Buffer.from('nested\n')],
  ['models/iris/__init__.py', Buffer.alloc(0)],
  ['models/iris2/other.bin', Buffer.from('must not be downloaded')],
]);
const ROOT = '/user/kserve';

describe('hdfs source with Kerberos (CLI against a real KDC and the SPNEGO WebHDFS double)', { skip }, () => {
  let kdc: Kdc;
  let hdfs: WebHdfsDouble;
  let work: Awaited<ReturnType<typeof tempDir>>;
  let userKeytab: Buffer;
  let ghostKeytab: Buffer;
  let serviceKeytabFile: string;

  before(async () => {
    work = await tempDir('si-hdfs-krb-e2e-');
    kdc = await startKdc();
    await kdc.addPrincipal('HTTP/localhost');
    await kdc.addPrincipal('kserve');
    await kdc.addPrincipal('ghost');
    serviceKeytabFile = await kdc.exportKeytab('HTTP/localhost', 'http.keytab');
    userKeytab = await readFile(await kdc.exportKeytab('kserve', 'kserve.keytab'));
    ghostKeytab = await readFile(await kdc.exportKeytab('ghost', 'ghost.keytab'));
    await kdc.deletePrincipal('ghost'); // a keytab whose principal the KDC no longer knows
    hdfs = await startWebHdfsDouble({ spnego: { keytabFile: serviceKeytabFile, krb5Config: kdc.krb5Config } });
    hdfs.mkdir(ROOT, { owner: 'kserve', permission: '700' });
    for (const [key, content] of TREE) hdfs.putFile(`${ROOT}/${key}`, content, { owner: 'kserve', permission: '600' });
  });

  after(async () => {
    await hdfs.stop();
    await kdc.stop();
    await work[Symbol.asyncDispose]();
  });

  /** A secret dir as KServe mounts it; the keytab file is binary, written as is. */
  async function secretDir(values: Record<string, string | Buffer>): Promise<string> {
    const dir = path.join(work.dir, 'secrets', String(Math.random()).slice(2));
    await mkdir(dir, { recursive: true });
    for (const [key, value] of Object.entries(values)) await writeFile(path.join(dir, key), typeof value === 'string' ? `${value}\n` : value);
    return dir;
  }

  const secrets = (keytab: Buffer = userKeytab, principal = 'kserve@TEST.REALM'): Record<string, string | Buffer> => ({
    HDFS_NAMENODE: `${hdfs.standbyUrl};${hdfs.activeUrl}`,
    HDFS_ROOTPATH: ROOT,
    KERBEROS_PRINCIPAL: principal,
    KERBEROS_KEYTAB: keytab,
  });

  async function download(uri: string, env: Record<string, string>, args: string[] = []): Promise<{ result: CliResult; files: Map<string, string> }> {
    const dest = freshDest(path.join(work.dir, 'out'));
    const result = await runCli([...args, uri, dest], { env: { KRB5_CONFIG: kdc.krb5Config, ...env } });
    return { result, files: await hashTree(dest).catch(() => new Map<string, string>()) };
  }

  const under = (prefix: string): Map<string, string> =>
    hashOf(new Map([...TREE].filter(([k]) => k.startsWith(`${prefix}/`)).map(([k, v]) => [k.slice(prefix.length + 1), v])));

  /** Neither the keytab (as base64, hex, or its key bytes) nor a Negotiate token is printed. */
  const leaksNoKeytab = (result: CliResult, keytab: Buffer = userKeytab): void => {
    const output = result.stdout + result.stderr;
    assert.ok(!output.includes(keytab.toString('base64')) && !output.includes(keytab.toString('base64').slice(8, 40)), 'keytab base64 in the output');
    assert.ok(!output.includes(keytab.toString('hex').slice(-64)), 'keytab hex in the output');
    assert.ok(!output.includes(keytab.subarray(-32).toString('latin1')), 'keytab key bytes in the output');
    assert.doesNotMatch(output, /Negotiate [A-Za-z0-9+/]{20}/, 'a SPNEGO token in the output');
  };

  it('downloads a tree byte-identical with the keytab from the secret dir, a fresh token per namenode request', async () => {
    const before = hdfs.requests.length;
    const defaultCcache = path.join(work.dir, 'user-default-ccache');
    const { result, files } = await download('hdfs://models/iris', { HDFS_SECRET_DIR: await secretDir(secrets()), KRB5CCNAME: `FILE:${defaultCcache}` },
      ['--part-size', '64KiB', '--log-level', 'debug']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, under('models/iris'));
    const seen = hdfs.requests.slice(before);
    const nn = seen.filter((r) => r.server !== 'dn');
    assert.ok(nn.length >= 5 && nn.every((r) => r.authUser === 'kserve' && r.query.get('user.name') === null), 'every namenode request authenticated as kserve, without user.name');
    const tokens = nn.map((r) => r.headers.authorization);
    assert.equal(new Set(tokens).size, tokens.length, 'one fresh SPNEGO token per namenode request');
    const dn = seen.filter((r) => r.server === 'dn');
    assert.ok(dn.length >= 5 && dn.every((r) => r.headers.authorization === undefined && r.query.get('delegation') !== null), 'datanodes get the delegation token, never Negotiate');
    assert.ok(!existsSync(defaultCcache), 'the user\'s default credential cache is left alone');
    leaksNoKeytab(result);
  });

  it('takes a base64 keytab from STORAGE_CONFIG, with USER_PROXY sent as doas, and a namenode named in the URI', async () => {
    const before = hdfs.requests.length;
    const keytabB64 = userKeytab.toString('base64');
    const config = { type: 'webhdfs', KERBEROS_PRINCIPAL: 'kserve', KERBEROS_KEYTAB: keytabB64, USER_PROXY: 'kserve' };
    const host = new URL(hdfs.activeUrl).host;
    const { result, files } = await download(`webhdfs://${host}${ROOT}/models/iris`, { STORAGE_CONFIG: JSON.stringify(config) }, ['--log-level', 'debug']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, under('models/iris'));
    const nn = hdfs.requests.slice(before).filter((r) => r.server !== 'dn');
    assert.ok(nn.length > 0 && nn.every((r) => r.authUser === 'kserve' && r.query.get('doas') === 'kserve' && r.query.get('user.name') === null));
    leaksNoKeytab(result);
  });

  it('fails in one line for a principal that is not in the keytab', async () => {
    const { result } = await download('hdfs://models/iris', { HDFS_SECRET_DIR: await secretDir(secrets(userKeytab, 'mallory@TEST.REALM')) }, ['--log-level', 'debug']);
    failsWith(result, /KERBEROS_PRINCIPAL mallory@TEST\.REALM is not in KERBEROS_KEYTAB \(HDFS_SECRET_DIR .*\), which holds kserve@TEST\.REALM/);
    leaksNoKeytab(result);
  });

  it('fails in one line for a keytab of a principal the KDC does not know', async () => {
    const { result } = await download('hdfs://models/iris', { HDFS_SECRET_DIR: await secretDir(secrets(ghostKeytab, 'ghost@TEST.REALM')) }, ['--log-level', 'debug']);
    failsWith(result, /Kerberos does not know principal ghost@TEST\.REALM .*not found in Kerberos database.*Check KERBEROS_PRINCIPAL/);
    leaksNoKeytab(result, ghostKeytab);
  });

  it('fails in one line when the KDC cannot be reached', async () => {
    const deadConfig = path.join(work.dir, 'krb5-dead-kdc.conf');
    await writeFile(deadConfig, kdc.clientConfig(await freePort()));
    const { result } = await download('hdfs://models/iris', { HDFS_SECRET_DIR: await secretDir(secrets()), KRB5_CONFIG: deadConfig }, ['--log-level', 'debug']);
    failsWith(result, /Kerberos cannot reach a KDC to authenticate kserve@TEST\.REALM .*krb5\.conf \(KRB5_CONFIG\)/);
    leaksNoKeytab(result);
  });

  it('asks for KERBEROS_PRINCIPAL and KERBEROS_KEYTAB when a Kerberized namenode is reached without them', async () => {
    const dir = await secretDir({ HDFS_NAMENODE: hdfs.activeUrl, HDFS_ROOTPATH: ROOT, USER_PROXY: 'kserve' });
    const { result } = await download('hdfs://models/iris', { HDFS_SECRET_DIR: dir });
    failsWith(result, /WebHDFS authentication failed for hdfs:\/\/models\/iris.*asks for Kerberos \(SPNEGO\): set KERBEROS_PRINCIPAL and KERBEROS_KEYTAB/);
  });

  it('refuses a namenode that fails mutual authentication', async () => {
    const impostor = await startWebHdfsDouble({ spnego: { keytabFile: serviceKeytabFile, krb5Config: kdc.krb5Config, forgeMutualToken: true } });
    try {
      impostor.putFile('/models/m/model.bin', Buffer.from('not to be trusted'));
      const { result } = await download('hdfs:///models/m', { HDFS_SECRET_DIR: await secretDir({ ...secrets(), HDFS_NAMENODE: impostor.activeUrl }) });
      failsWith(result, /namenode localhost:\d+ failed Kerberos mutual authentication/);
    } finally {
      await impostor.stop();
    }
  });

  it('names the optional module and the system library when the kerberos module cannot be loaded', async () => {
    // The bundle alone, away from node_modules: what a build without the native addon sees.
    const lonely = path.join(work.dir, 'lonely');
    await mkdir(lonely, { recursive: true });
    const cli = path.join(lonely, 'storage-initializer.cjs');
    await copyFile(CLI, cli);
    const dest = freshDest(path.join(work.dir, 'out'));
    const env = { ...baseEnv(), KRB5_CONFIG: kdc.krb5Config, HDFS_SECRET_DIR: await secretDir(secrets()) };
    const result = await new Promise<CliResult>((resolve, reject) => {
      const child = spawn(process.execPath, [cli, 'hdfs://models/iris', dest], { env, cwd: lonely, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
      child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
      child.on('error', reject);
      child.on('close', (code, signal) => { resolve({ code, signal, stdout, stderr }); });
    });
    failsWith(result, /WebHDFS with Kerberos needs the optional "kerberos" Node module and the system GSSAPI library \(libgssapi-krb5-2/);
    leaksNoKeytab(result);
  });

  // Last: it gives HTTP/localhost a new key, which makes the double's keytab stale.
  it('fails in one line when the namenode rejects the ticket (its service keytab is out of date)', async () => {
    await kdc.exportKeytab('HTTP/localhost', 'http-rekeyed.keytab');
    const { result } = await download('hdfs://models/iris', { HDFS_SECRET_DIR: await secretDir(secrets()) }, ['--log-level', 'debug']);
    failsWith(result, /WebHDFS authentication failed for hdfs:\/\/models\/iris.*rejected the Kerberos \(SPNEGO\) token of kserve@TEST\.REALM/);
    leaksNoKeytab(result);
  });
});
