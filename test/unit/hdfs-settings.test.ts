/** HDFS settings from the secret dir and STORAGE_CONFIG, and WebHDFS behaviours the conformance suite does not reach. */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { StorageError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { loadHdfsSettings } from '../../src/settings/hdfs.js';
import { loadSettings } from '../../src/settings/settings.js';
import { WebHdfsSource } from '../../src/sources/webhdfs.js';
import { keytabPrincipals } from '../../src/sources/webhdfs-kerberos.js';
import { tempDir } from '../helpers/tree.js';
import { startWebHdfsDouble } from '../servers/webhdfs-double.js';

const PEM_CERT = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';
const PEM_KEY = '-----BEGIN PRIVATE KEY-----\nMIGHsecretkeymaterial\n-----END PRIVATE KEY-----\n';

async function secretDir(values: Record<string, string>): Promise<{ dir: string; [Symbol.asyncDispose](): Promise<void> }> {
  const t = await tempDir('si-hdfs-unit-');
  await mkdir(t.dir, { recursive: true });
  for (const [k, v] of Object.entries(values)) await writeFile(path.join(t.dir, k), v);
  return t;
}

const invalid = (pattern: RegExp) => (err: unknown): boolean => err instanceof StorageError && err.kind === 'InvalidInput' && pattern.test(err.message);

describe('HDFS settings', () => {
  it('treats a missing secret dir as no settings', () => {
    const s = loadHdfsSettings({ HDFS_SECRET_DIR: '/nonexistent/kserve-hdfscreds' }, {});
    assert.equal(s.origin, undefined);
    assert.deepEqual(s.namenodes, []);
    assert.equal(s.rootPath, '/');
    assert.equal(s.kerberos, undefined);
  });

  it('reads one file per key, trimming newlines, and parses the HA namenode list', async () => {
    await using d = await secretDir({
      HDFS_NAMENODE: 'http://nn1:9870; nn2:9870,https://gw.example/gateway/default/webhdfs/v1/\n', USER_PROXY: 'kserve\n',
      HDFS_ROOTPATH: '/user/kserve/\n', HEADERS: '{"X-Token":"abcd1234"}', N_THREADS: '4', IGNORED: 'x',
    });
    const s = loadHdfsSettings({ HDFS_SECRET_DIR: d.dir }, {});
    assert.equal(s.origin, `HDFS_SECRET_DIR ${d.dir}`);
    assert.deepEqual(s.namenodes, ['http://nn1:9870', 'http://nn2:9870', 'https://gw.example/gateway/default']);
    assert.equal(s.userProxy, 'kserve');
    assert.equal(s.rootPath, '/user/kserve');
    assert.deepEqual(s.headers, { 'X-Token': 'abcd1234' });
    assert.equal(s.nThreads, 4);
    assert.ok(s.secrets.includes('abcd1234'));
  });

  it('uses https for bare namenodes when TLS is configured, and keeps the TLS key secret', async () => {
    await using d = await secretDir({ HDFS_NAMENODE: 'nn:9871', TLS_CERT: PEM_CERT, TLS_KEY: PEM_KEY, TLS_CA: PEM_CERT, TLS_SKIP_VERIFY: 'false' });
    const s = loadHdfsSettings({ HDFS_SECRET_DIR: d.dir }, {});
    assert.deepEqual(s.namenodes, ['https://nn:9871']);
    assert.equal(s.tlsKey, PEM_KEY);
    const merged = loadSettings({ HDFS_SECRET_DIR: d.dir });
    assert.ok(merged.secrets.includes(PEM_KEY));
  });

  it('names the key in every validation error and never quotes a secret', async () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ HDFS_ROOTPATH: 'user/kserve' }, /invalid HDFS_ROOTPATH \(in HDFS_SECRET_DIR .*\).*absolute/],
      [{ N_THREADS: 'many' }, /invalid N_THREADS \(in HDFS_SECRET_DIR/],
      [{ TLS_SKIP_VERIFY: 'maybe' }, /invalid TLS_SKIP_VERIFY/],
      [{ HDFS_NAMENODE: 'hdfs://nn:8020' }, /invalid HDFS_NAMENODE .*http\(s\) URL/],
      [{ TLS_CERT: PEM_CERT }, /TLS_CERT and TLS_KEY go together/],
      [{ TLS_KEY: 'not a pem secretvalue' }, /invalid TLS_KEY .*PEM private key/],
      [{ HEADERS: '{"X-Token": secretvalue' }, /invalid HEADERS .*malformed JSON/],
      [{ KERBEROS_KEYTAB: 'secretvalue' }, /KERBEROS_PRINCIPAL and KERBEROS_KEYTAB go together \(a keytab needs the principal/],
      [{ KERBEROS_PRINCIPAL: 'kserve@EXAMPLE.COM\n' }, /KERBEROS_PRINCIPAL and KERBEROS_KEYTAB go together \(the principal needs its keytab/],
      [{ KERBEROS_PRINCIPAL: 'kserve @EXAMPLE.COM', KERBEROS_KEYTAB: 'secretvalue' }, /invalid KERBEROS_PRINCIPAL \(in HDFS_SECRET_DIR .*\)="kserve @EXAMPLE.COM": expected a Kerberos principal/],
    ];
    for (const [values, pattern] of cases) {
      await using d = await secretDir(values);
      assert.throws(() => loadHdfsSettings({ HDFS_SECRET_DIR: d.dir }, {}), (err: unknown) => invalid(pattern)(err) && !(err as Error).message.includes('secretvalue'));
    }
  });

  it('takes the same keys from STORAGE_CONFIG type hdfs/webhdfs, base64-decoding TLS_* and KERBEROS_KEYTAB', () => {
    const config = {
      type: 'hdfs', HDFS_NAMENODE: '127.0.0.1:9870', TLS_CA: Buffer.from(PEM_CERT).toString('base64'),
      TLS_CERT: Buffer.from(PEM_CERT).toString('base64'), TLS_KEY: Buffer.from(PEM_KEY).toString('base64'),
      KERBEROS_KEYTAB: Buffer.from('keytab-bytes').toString('base64'), KERBEROS_PRINCIPAL: 'kserve@EXAMPLE.COM', TLS_SKIP_VERIFY: true,
    };
    const s = loadHdfsSettings({ HDFS_SECRET_DIR: '/nonexistent' }, config);
    assert.equal(s.origin, 'STORAGE_CONFIG');
    assert.equal(s.tlsCa, PEM_CERT);
    assert.equal(s.tlsKey, PEM_KEY);
    assert.equal(s.tlsSkipVerify, true);
    assert.deepEqual(s.namenodes, ['https://127.0.0.1:9870']);
    assert.deepEqual(s.kerberos, { principal: 'kserve@EXAMPLE.COM', keytab: Buffer.from('keytab-bytes'), where: 'STORAGE_CONFIG' });
    assert.ok(s.secrets.includes(config.TLS_KEY) && s.secrets.includes(config.KERBEROS_KEYTAB));
    assert.throws(() => loadHdfsSettings({}, { type: 'webhdfs', TLS_CA: 'not base64!' }), invalid(/STORAGE_CONFIG\.TLS_CA: expected base64/));
    assert.equal(loadHdfsSettings({ HDFS_SECRET_DIR: '/nonexistent' }, { type: 's3', HDFS_NAMENODE: 'x:1' }).origin, undefined);
  });
});

describe('WebHDFS source details', () => {
  const settingsFor = (config: Record<string, unknown>) => {
    const base = loadSettings({ HDFS_SECRET_DIR: '/nonexistent' }, { progress: false });
    return { ...base, hdfs: loadHdfsSettings({}, { type: 'webhdfs', ...config }) };
  };

  it('lists with LISTSTATUS on a namenode without LISTSTATUS_BATCH, and pages with startAfter on one that has it', async () => {
    for (const batch of [false, true]) {
      const hdfs = await startWebHdfsDouble({ listStatusBatch: batch, batchLimit: 2 });
      try {
        for (const name of ['a', 'b', 'c', 'd/e', 'd/f']) hdfs.putFile(`/m/${name}`, Buffer.from(name));
        const source = new WebHdfsSource({ scheme: 'hdfs', protocol: 'webhdfs', path: '/m' }, settingsFor({ HDFS_NAMENODE: hdfs.activeUrl }), silentLogger);
        const keys: string[] = [];
        for await (const o of source.list(new AbortController().signal)) keys.push(`${o.key}:${String(o.size)}`);
        await source.close();
        assert.deepEqual(keys.sort(), ['m/a:1', 'm/b:1', 'm/c:1', 'm/d/e:3', 'm/d/f:3']);
        const ops = hdfs.requests.map((r) => r.op);
        if (batch) assert.ok(!ops.includes('LISTSTATUS') && hdfs.requests.some((r) => r.query.get('startAfter') === 'b'), ops.join(','));
        else assert.equal(ops.filter((o) => o === 'LISTSTATUS_BATCH').length, 1, 'asked once, then remembered');
      } finally {
        await hdfs.stop();
      }
    }
  });

  it('fails clearly without a namenode, and with every namenode in standby', async () => {
    assert.throws(() => new WebHdfsSource({ scheme: 'hdfs', protocol: 'hdfs', path: 'm' }, settingsFor({}), silentLogger), invalid(/no namenode .*HDFS_NAMENODE/));
    const hdfs = await startWebHdfsDouble();
    try {
      const source = new WebHdfsSource({ scheme: 'hdfs', protocol: 'hdfs', path: 'm' }, settingsFor({ HDFS_NAMENODE: `${hdfs.standbyUrl};${hdfs.standbyUrl}` }), silentLogger);
      await assert.rejects(async () => { for await (const o of source.list(new AbortController().signal)) assert.fail(o.key); }, (err: unknown) =>
        err instanceof StorageError && err.kind === 'Network' && err.retryable && /every namenode is in standby/.test(err.message));
      await source.close();
    } finally {
      await hdfs.stop();
    }
  });
});

describe('Kerberos keytab reading', () => {
  /** One MIT keytab entry (format 0x0502): principal, name type, timestamp, kvno, an AES key. */
  const entry = (realm: string, names: string[], key: Buffer): Buffer => {
    const counted = (text: string): Buffer => { const b = Buffer.from(text); return Buffer.concat([Buffer.from([b.length >> 8, b.length & 255]), b]); };
    const body = Buffer.concat([
      Buffer.from([0, names.length]), counted(realm), ...names.map(counted), Buffer.from([0, 0, 0, 1, 0x65, 0, 0, 0, 2, 0, 18, 0, key.length]), key, Buffer.from([0, 0, 0, 2]),
    ]);
    const size = Buffer.alloc(4);
    size.writeInt32BE(body.length);
    return Buffer.concat([size, body]);
  };
  const hole = Buffer.from([0xff, 0xff, 0xff, 0xf8, 0, 0, 0, 0, 0, 0, 0, 0]); // -8: eight bytes of a deleted entry

  it('lists each principal once, skipping holes, and refuses what it cannot read', () => {
    const keytab = Buffer.concat([Buffer.from([5, 2]), entry('TEST.REALM', ['kserve'], Buffer.alloc(32, 1)), hole,
      entry('TEST.REALM', ['HTTP', 'nn.example.com'], Buffer.alloc(32, 2)), entry('TEST.REALM', ['kserve'], Buffer.alloc(16, 3))]);
    assert.deepEqual(keytabPrincipals(keytab), ['kserve@TEST.REALM', 'HTTP/nn.example.com@TEST.REALM']);
    assert.equal(keytabPrincipals(keytab.subarray(0, keytab.length - 5)), undefined, 'truncated');
    assert.equal(keytabPrincipals(Buffer.concat([Buffer.from([5, 1]), keytab.subarray(2)])), undefined, 'the old native-endian format');
    assert.equal(keytabPrincipals(Buffer.from('BQIAAABHAAIAC0VYQU1QTEUuQ09N')), undefined, 'base64 text, not the keytab');
    assert.deepEqual(keytabPrincipals(Buffer.from([5, 2])), []);
  });
});
