/**
 * Confidential models: the settings, the key forms the Confidential Data Hub may return, and the
 * in-place decryption of a destination tree, against the CDH double and JWE files made with jose.
 */
import assert from 'node:assert/strict';
import { randomBytes as cryptoRandomBytes, generateKeyPairSync, KeyObject } from 'node:crypto';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CompactEncrypt, exportJWK, exportPKCS8, generateKeyPair, type CryptoKey } from 'jose';
import { StorageError } from '../../src/errors.js';
import { decryptModelFiles } from '../../src/finish/confidential.js';
import { classifyKey, keyForHeader } from '../../src/finish/jwe-key.js';
import { silentLogger } from '../../src/log.js';
import { loadSettings } from '../../src/settings/settings.js';
import { startCdhDouble, type CdhDouble } from '../servers/cdh-double.js';
import { hashTree, randomBytes, tempDir } from '../helpers/tree.js';

const RESOURCE = 'default/model-key/v1';
const PLAINTEXT = randomBytes(300_000, 41);

async function encrypt(plaintext: Uint8Array, key: Uint8Array | CryptoKey, alg: string, enc = 'A256GCM'): Promise<string> {
  return new CompactEncrypt(plaintext).setProtectedHeader({ alg, enc }).encrypt(key);
}

function rejectsWith(pattern: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof StorageError, String(err));
    assert.match(err.message, pattern);
    assert.doesNotMatch(err.message, /\n/);
    return true;
  };
}

describe('confidential settings', () => {
  const base = { CONFIDENTIAL_ENABLED: 'true', CONFIDENTIAL_RESOURCE_ID: 'kbs:///repo/type/tag' };

  it('is off by default and ignores the other variables then', () => {
    assert.equal(loadSettings({}).confidential.enabled, false);
    assert.equal(loadSettings({ CONFIDENTIAL_ENABLED: 'false', CONFIDENTIAL_RESOURCE_ID: 'junk', CDH_ADDR: 'junk' }).confidential.enabled, false);
  });

  it('parses the resource id, the CDH address and its default', () => {
    const c = loadSettings({ ...base, CONFIDENTIAL_ENABLED: 'TRUE' }).confidential;
    assert.deepEqual(c.resource, { id: 'kbs:///repo/type/tag', repo: 'repo', type: 'type', tag: 'tag' });
    assert.equal(c.cdhAddr, 'http://127.0.0.1:8006');
    assert.equal(loadSettings({ ...base, CDH_ADDR: 'http://10.0.0.1:9000/' }).confidential.cdhAddr, 'http://10.0.0.1:9000');
  });

  it('names the variable of an invalid value in one line', () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ CONFIDENTIAL_ENABLED: 'maybe' }, /CONFIDENTIAL_ENABLED/],
      [{ CONFIDENTIAL_ENABLED: 'true' }, /needs CONFIDENTIAL_RESOURCE_ID=kbs:\/\/\/<repo>\/<type>\/<tag>/],
      [{ ...base, CONFIDENTIAL_RESOURCE_ID: 'kbs:///repo/type' }, /CONFIDENTIAL_RESOURCE_ID="kbs:\/\/\/repo\/type".*three non-empty/],
      [{ ...base, CONFIDENTIAL_RESOURCE_ID: 'kbs:///repo//tag' }, /CONFIDENTIAL_RESOURCE_ID=.*three non-empty/],
      [{ ...base, CONFIDENTIAL_RESOURCE_ID: 'kbs:///a/b/c/d' }, /CONFIDENTIAL_RESOURCE_ID=.*three non-empty/],
      [{ ...base, CONFIDENTIAL_RESOURCE_ID: 'kbs://kbs.example/a/b/c' }, /CONFIDENTIAL_RESOURCE_ID=.*host part must be empty/],
      [{ ...base, CONFIDENTIAL_RESOURCE_ID: 's3://a/b/c' }, /CONFIDENTIAL_RESOURCE_ID=.*must start with kbs:\/\/\//],
      [{ ...base, CONFIDENTIAL_RESOURCE_ID: 'kbs:///a/../c' }, /CONFIDENTIAL_RESOURCE_ID=/],
      [{ ...base, CONFIDENTIAL_RESOURCE_ID: 'kbs:///a/b/c?x=1' }, /CONFIDENTIAL_RESOURCE_ID=/],
      [{ ...base, CDH_ADDR: 'unix:///run/cdh.sock' }, /CDH_ADDR=.*http\(s\) URL/],
      [{ ...base, CDH_ADDR: '127.0.0.1 8006' }, /CDH_ADDR=/],
    ];
    for (const [env, pattern] of cases) assert.throws(() => loadSettings(env), rejectsWith(pattern), JSON.stringify(env));
  });
});

describe('key forms', () => {
  const header = { alg: 'dir', enc: 'A256GCM' };
  const raw = cryptoRandomBytes(32);

  it('takes a JWK, raw bytes, base64url and base64 (with a trailing newline), in that order', () => {
    const jwk = classifyKey(Buffer.from(JSON.stringify({ kty: 'oct', k: raw.toString('base64url') })));
    assert.equal(jwk.form, 'jwk');
    assert.deepEqual(keyForHeader(jwk, header), raw);
    assert.deepEqual(keyForHeader(classifyKey(raw), header), raw);
    assert.deepEqual(keyForHeader(classifyKey(Buffer.from(raw.toString('base64url'))), header), raw);
    assert.deepEqual(keyForHeader(classifyKey(Buffer.from(`${raw.toString('base64')}\n`)), header), raw);
    // 24 ASCII bytes are a raw A192 key even though they are also the base64 of 16 bytes.
    const text = Buffer.from(cryptoRandomBytes(16).toString('base64'));
    assert.deepEqual(keyForHeader(classifyKey(text), { alg: 'A192KW', enc: 'A256GCM' }), text);
    assert.deepEqual(keyForHeader(classifyKey(text), { alg: 'A128KW', enc: 'A256GCM' }), Buffer.from(text.toString(), 'base64'));
  });

  it('imports private JWK and PEM keys only for the algorithm family and curves they fit', async () => {
    const rsa = await generateKeyPair('RSA-OAEP-256', { extractable: true });
    const p256 = await generateKeyPair('ECDH-ES', { extractable: true, crv: 'P-256' });
    const rsaHeader = { alg: 'RSA-OAEP-256', enc: 'A256GCM' };
    const ecHeader = { alg: 'ECDH-ES+A128KW', enc: 'A256GCM' };
    const fromJwk = keyForHeader(classifyKey(Buffer.from(JSON.stringify(await exportJWK(rsa.privateKey)))), rsaHeader);
    assert.ok(fromJwk instanceof KeyObject && fromJwk.type === 'private' && fromJwk.asymmetricKeyType === 'rsa');
    const fromPem = keyForHeader(classifyKey(Buffer.from(await exportPKCS8(p256.privateKey))), ecHeader);
    assert.ok(fromPem instanceof KeyObject && fromPem.asymmetricKeyDetails?.namedCurve === 'prime256v1');
    const rsaPem = Buffer.from(await exportPKCS8(rsa.privateKey));
    const p256Pem = Buffer.from(await exportPKCS8(p256.privateKey));
    assert.throws(() => keyForHeader(classifyKey(rsaPem), ecHeader), rejectsWith(/is a rsa key \(PEM\), which cannot decrypt alg ECDH-ES\+A128KW/));
    assert.throws(() => keyForHeader(classifyKey(p256Pem), rsaHeader), rejectsWith(/is an EC key on P-256 \(PEM\), which cannot decrypt alg RSA-OAEP-256/));
    const secp256k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    assert.throws(() => keyForHeader(classifyKey(Buffer.from(secp256k1)), ecHeader), rejectsWith(/is an EC key on secp256k1 \(PEM\), which cannot decrypt/));
    const broken = { ...await exportJWK(p256.privateKey), x: 'AAAA' };
    assert.throws(() => keyForHeader(classifyKey(Buffer.from(JSON.stringify(broken))), ecHeader), (err: unknown) => {
      rejectsWith(/^the JWK key from the Confidential Data Hub does not fit alg ECDH-ES\+A128KW: /)(err);
      assert.ok(!(err as Error).message.includes(String(broken.d)));
      return true;
    });
  });

  it('refuses a key that fits no form with lengths, never key bytes', async () => {
    const short = Buffer.from('c2hvcnQta2V5LW1hdGVyaWFs', 'base64');
    assert.throws(() => keyForHeader(classifyKey(short), header), (err: unknown) => {
      rejectsWith(/is 18 bytes \(13 once base64url-decoded\); alg dir with enc A256GCM needs a 32-byte key, raw or base64url\/base64-encoded, or a JWK/)(err);
      assert.doesNotMatch((err as Error).message, /short-key|c2hvcnQ/);
      return true;
    });
    assert.throws(() => classifyKey(Buffer.from('{"k":"abc"}')), rejectsWith(/JSON but not a JWK/));
    assert.throws(() => keyForHeader(classifyKey(Buffer.from('{"kty":"oct","k":"AAAA"}')), header), rejectsWith(/oct JWK of 3 bytes; alg dir with enc A256GCM needs 32/));
    assert.throws(() => keyForHeader(classifyKey(raw), { alg: 'RSA-OAEP-256', enc: 'A256GCM' }), rejectsWith(/needs a private JWK or PKCS#8 PEM key/));
    const { publicKey } = await generateKeyPair('RSA-OAEP-256', { extractable: true });
    const publicJwk = Buffer.from(JSON.stringify(await exportJWK(publicKey)));
    assert.throws(() => keyForHeader(classifyKey(publicJwk), { alg: 'RSA-OAEP-256', enc: 'A256GCM' }), rejectsWith(/public RSA JWK.*needs the private key/));
    assert.throws(() => keyForHeader(classifyKey(publicJwk), header), rejectsWith(/RSA JWK, which cannot decrypt alg dir/));
  });
});

describe('decrypting a destination', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let cdh: CdhDouble;
  let caseNo = 0;

  before(async () => {
    work = await tempDir('si-confidential-');
    cdh = await startCdhDouble();
  });
  after(async () => {
    await cdh.stop();
    await work[Symbol.asyncDispose]();
  });

  /** A fresh DEST holding `files`, and the CDH serving `key` under a fresh resource name. */
  async function setup(files: Record<string, string | Uint8Array>, key: Uint8Array | string, env: Record<string, string> = {}) {
    const dir = path.join(work.dir, `case-${++caseNo}`);
    const dest = path.join(dir, 'dest');
    await mkdir(dest, { recursive: true });
    for (const [rel, content] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(dest, rel)), { recursive: true });
      await writeFile(path.join(dest, rel), content);
    }
    const id = `${RESOURCE}-${caseNo}`;
    cdh.setResource(id, key);
    const settings = loadSettings({ CONFIDENTIAL_ENABLED: 'true', CONFIDENTIAL_RESOURCE_ID: `kbs:///${id}`, CDH_ADDR: cdh.url, STORAGE_INITIALIZER_MAX_ATTEMPTS: '1', ...env });
    const run = () => decryptModelFiles(dest, settings, silentLogger, new AbortController().signal);
    return { dir, dest, run };
  }

  /** Every entry under dir, without entering symbolic links. */
  async function names(dir: string, rel = ''): Promise<string[]> {
    const out: string[] = [];
    for (const entry of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const key = rel === '' ? entry.name : `${rel}/${entry.name}`;
      out.push(key);
      if (entry.isDirectory()) out.push(...await names(dir, key));
    }
    return out.sort();
  }

  it('decrypts every key form and algorithm, dropping .jwe and keeping the bytes', async () => {
    const aes = (n: number) => cryptoRandomBytes(n);
    const rsa = await generateKeyPair('RSA-OAEP-256', { extractable: true });
    const ec = await generateKeyPair('ECDH-ES+A256KW', { extractable: true, crv: 'P-256' });
    const ecDirect = await generateKeyPair('ECDH-ES', { extractable: true, crv: 'P-384' });
    const cases: { what: string; key: Uint8Array | string; make: (p: Uint8Array) => Promise<string> }[] = [];
    const k32 = aes(32);
    cases.push({ what: 'dir A256GCM, raw', key: k32, make: (p) => encrypt(p, k32, 'dir') });
    const k16 = aes(16);
    cases.push({ what: 'dir A128GCM, base64url', key: k16.toString('base64url'), make: (p) => encrypt(p, k16, 'dir', 'A128GCM') });
    const k64 = aes(64);
    cases.push({ what: 'dir A256CBC-HS512, base64', key: `${k64.toString('base64')}\n`, make: (p) => encrypt(p, k64, 'dir', 'A256CBC-HS512') });
    const kw = aes(32);
    cases.push({ what: 'A256KW, oct JWK', key: JSON.stringify({ kty: 'oct', k: kw.toString('base64url') }), make: (p) => encrypt(p, kw, 'A256KW') });
    const kw128 = aes(16);
    cases.push({ what: 'A128KW A128CBC-HS256, raw', key: kw128, make: (p) => encrypt(p, kw128, 'A128KW', 'A128CBC-HS256') });
    const gcmkw = aes(32);
    cases.push({ what: 'A256GCMKW, raw', key: gcmkw, make: (p) => encrypt(p, gcmkw, 'A256GCMKW') });
    cases.push({ what: 'RSA-OAEP-256, private JWK', key: JSON.stringify(await exportJWK(rsa.privateKey)), make: (p) => encrypt(p, rsa.publicKey, 'RSA-OAEP-256') });
    cases.push({ what: 'RSA-OAEP-256, PKCS#8 PEM', key: await exportPKCS8(rsa.privateKey), make: (p) => encrypt(p, rsa.publicKey, 'RSA-OAEP-256') });
    cases.push({ what: 'ECDH-ES+A256KW P-256, private JWK', key: JSON.stringify(await exportJWK(ec.privateKey)), make: (p) => encrypt(p, ec.publicKey, 'ECDH-ES+A256KW') });
    cases.push({ what: 'ECDH-ES P-384, private JWK', key: JSON.stringify(await exportJWK(ecDirect.privateKey)), make: (p) => encrypt(p, ecDirect.publicKey, 'ECDH-ES', 'A192GCM') });

    for (const c of cases) {
      const small = Buffer.from(`config for ${c.what}\n`);
      const { dest, run } = await setup({
        'model.bin.jwe': await c.make(PLAINTEXT),
        'sub/dir/config.json.JWE': `${await c.make(small)}\n`,
      }, c.key);
      const result = await run();
      assert.deepEqual(result, { files: 2, bytes: PLAINTEXT.length + small.length }, c.what);
      assert.deepEqual(await names(dest), ['model.bin', 'sub', 'sub/dir', 'sub/dir/config.json'], c.what);
      assert.deepEqual(await readFile(path.join(dest, 'model.bin')), PLAINTEXT, c.what);
      assert.deepEqual(await readFile(path.join(dest, 'sub/dir/config.json')), small, c.what);
    }
  });

  it('finds a compact JWE without the suffix by its first bytes and leaves every other file alone', async () => {
    const key = cryptoRandomBytes(32);
    const jws = `${Buffer.from('{"alg":"HS256","typ":"JWT"}').toString('base64url')}.${Buffer.from('{"sub":"x"}').toString('base64url')}.sig`;
    const untouched = {
      'config.json': '{"eyJ": true}',
      'token.jwt': jws,
      'notes.txt': 'eyJust a note. Not JSON at all',
      'weights.safetensors': randomBytes(10_000, 3),
    };
    const { dest, run } = await setup({ ...untouched, weights: await encrypt(PLAINTEXT, key, 'dir') }, key);
    const before = await hashTree(dest);
    assert.deepEqual(await run(), { files: 1, bytes: PLAINTEXT.length });
    assert.deepEqual(await readFile(path.join(dest, 'weights')), PLAINTEXT);
    const afterHashes = await hashTree(dest);
    for (const name of Object.keys(untouched)) assert.equal(afterHashes.get(name), before.get(name), name);
    assert.deepEqual(await names(dest), [...Object.keys(untouched), 'weights'].sort());
  });

  it('does not ask the CDH when there is nothing to decrypt', async () => {
    const seen = cdh.requests.length;
    const { run } = await setup({ 'model.bin': randomBytes(1000, 5) }, cryptoRandomBytes(32));
    assert.deepEqual(await run(), { files: 0, bytes: 0 });
    assert.equal(cdh.requests.length, seen);
  });

  it('rejects tampered ciphertext and a wrong key, naming the file and leaving nothing that looks decrypted', async () => {
    const key = cryptoRandomBytes(32);
    const jwe = await encrypt(PLAINTEXT, key, 'A256KW');
    const parts = jwe.split('.');
    const ciphertext = parts[3] ?? '';
    parts[3] = `${ciphertext.slice(0, 100)}${ciphertext[100] === 'A' ? 'B' : 'A'}${ciphertext.slice(101)}`;
    const tampered = await setup({ 'a/model.bin.jwe': parts.join('.') }, key);
    await assert.rejects(tampered.run(), rejectsWith(/^cannot decrypt a\/model\.bin\.jwe: decryption failed: the key .* or the file was altered$/));
    assert.deepEqual(await names(tampered.dest), ['a', 'a/model.bin.jwe']);

    const wrong = cryptoRandomBytes(32);
    const wrongKey = await setup({ 'model.bin.jwe': jwe }, wrong.toString('base64url'));
    await assert.rejects(wrongKey.run(), (err: unknown) => {
      rejectsWith(/^cannot decrypt model\.bin\.jwe: decryption failed: the key from the Confidential Data Hub is not the one it was encrypted with/)(err);
      assert.ok(!(err as Error).message.includes(wrong.toString('base64url')));
      return true;
    });
    assert.deepEqual(await names(wrongKey.dest), ['model.bin.jwe']);

    const unsupported = await setup({ 'model.bin.jwe': await new CompactEncrypt(PLAINTEXT).setProtectedHeader({ alg: 'PBES2-HS256+A128KW', enc: 'A128GCM' }).encrypt(Buffer.from('password')) }, 'password');
    await assert.rejects(unsupported.run(), rejectsWith(/^cannot decrypt model\.bin\.jwe: it uses alg PBES2-HS256\+A128KW, which is not supported \(supported: alg dir, A128KW, .*; enc A128GCM, /));

    const broken = await setup({ 'model.bin.jwe': 'this is not a JWE' }, key);
    await assert.rejects(broken.run(), rejectsWith(/^cannot decrypt model\.bin\.jwe: it is not a valid compact JWE/));
  });

  it('refuses compression and critical header parameters with one line each', async () => {
    const key = cryptoRandomBytes(32);
    const zipped = await new CompactEncrypt(PLAINTEXT).setProtectedHeader({ alg: 'dir', enc: 'A256GCM', zip: 'DEF' }).encrypt(key);
    const zip = await setup({ 'model.bin.jwe': zipped }, key);
    await assert.rejects(zip.run(), rejectsWith(/^cannot decrypt model\.bin\.jwe: it is compressed \("zip": "DEF"\), which is not supported; encrypt the file without compression$/));
    assert.deepEqual(await names(zip.dest), ['model.bin.jwe']);
    // jose will not encrypt with a "crit" it does not know either: the file is put together by hand (the check comes before any decryption).
    const critical = `${Buffer.from('{"alg":"dir","enc":"A256GCM","crit":["exp"],"exp":1}').toString('base64url')}..AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA`;
    const crit = await setup({ 'model.bin.jwe': critical }, key);
    await assert.rejects(crit.run(), rejectsWith(/^cannot decrypt model\.bin\.jwe: it marks header parameters as critical \("crit": \["exp"\]\)/));
  });

  it('never follows a symbolic link out of DEST', async () => {
    const key = cryptoRandomBytes(32);
    const jwe = await encrypt(PLAINTEXT, key, 'dir');
    const { dir, dest, run } = await setup({ 'inside.bin.jwe': jwe }, key);
    const outside = path.join(dir, 'outside');
    await mkdir(path.join(outside, 'models'), { recursive: true });
    await writeFile(path.join(outside, 'secret.bin.jwe'), jwe);
    await writeFile(path.join(outside, 'models', 'nested.bin.jwe'), jwe);
    await writeFile(path.join(outside, 'plain-named'), jwe);
    await symlink(path.join(outside, 'secret.bin.jwe'), path.join(dest, 'linked.bin.jwe'));
    await symlink(path.join(outside, 'plain-named'), path.join(dest, 'linked'));
    await symlink(path.join(outside, 'models'), path.join(dest, 'models'));
    const outsideBefore = await hashTree(outside);
    assert.deepEqual(await run(), { files: 1, bytes: PLAINTEXT.length });
    assert.deepEqual(await hashTree(outside), outsideBefore);
    assert.deepEqual(await names(dest), ['inside.bin', 'linked', 'linked.bin.jwe', 'models']);
  });

  it('reports an unknown resource and an unreachable CDH with CDH_ADDR and the path', async () => {
    const key = cryptoRandomBytes(32);
    const missing = await setup({ 'm.jwe': await encrypt(PLAINTEXT, key, 'dir') }, key, { CONFIDENTIAL_RESOURCE_ID: 'kbs:///other/key/none' });
    await assert.rejects(missing.run(), rejectsWith(/Confidential Data Hub answered HTTP 404 for \/cdh\/resource\/other\/key\/none \(CDH_ADDR=http:\/\/127\.0\.0\.1:\d+, CONFIDENTIAL_RESOURCE_ID=kbs:\/\/\/other\/key\/none\)/));
    const closed = await startCdhDouble();
    await closed.stop();
    const down = await setup({ 'm.jwe': await encrypt(PLAINTEXT, key, 'dir') }, key, { CDH_ADDR: closed.url });
    await assert.rejects(down.run(), rejectsWith(/^cannot reach the Confidential Data Hub for the model key at http:\/\/127\.0\.0\.1:\d+\/cdh\/resource\/default\/model-key\/v1-\d+: .*ECONNREFUSED.*check CDH_ADDR/));
    assert.deepEqual(await names(down.dest), ['m.jwe']);
  });

  it('gives up on a CDH that never answers after the read timeout', async () => {
    const key = cryptoRandomBytes(32);
    const { dest, run } = await setup({ 'm.jwe': await encrypt(PLAINTEXT, key, 'dir') }, key, { STORAGE_INITIALIZER_READ_TIMEOUT: '0.5' });
    cdh.hang = true;
    try {
      await assert.rejects(run(), rejectsWith(/^the Confidential Data Hub at http:\/\/127\.0\.0\.1:\d+\/cdh\/resource\/.*: no response for 0\.5 s \(read timeout; raise STORAGE_INITIALIZER_READ_TIMEOUT\)/));
    } finally {
      cdh.hang = false;
    }
    assert.deepEqual(await names(dest), ['m.jwe']);
  });
});
