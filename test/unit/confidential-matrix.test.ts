/**
 * The streaming JWE decryption against jose as the oracle: files made with jose's CompactEncrypt
 * for every supported alg x enc, at sizes around the AES block, a page and the 1 MiB read chunk,
 * decrypt to the same bytes; files altered in any segment, or cut short, are refused with one line
 * naming the file, keep their `.jwe` and leave no `.part` behind.
 */
import assert from 'node:assert/strict';
import { randomBytes as cryptoRandomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CompactEncrypt, exportJWK, exportPKCS8, generateKeyPair, type CryptoKey } from 'jose';
import { StorageError } from '../../src/errors.js';
import { decryptModelFiles } from '../../src/finish/confidential.js';
import { silentLogger } from '../../src/log.js';
import { loadSettings } from '../../src/settings/settings.js';
import { startCdhDouble, type CdhDouble } from '../servers/cdh-double.js';
import { randomBytes, tempDir } from '../helpers/tree.js';

const ENCS = ['A128GCM', 'A192GCM', 'A256GCM', 'A128CBC-HS256', 'A192CBC-HS384', 'A256CBC-HS512'];
const CEK_BYTES: Record<string, number> = { A128GCM: 16, A192GCM: 24, A256GCM: 32, 'A128CBC-HS256': 32, 'A192CBC-HS384': 48, 'A256CBC-HS512': 64 };
/** Around the AES block (16), a page (4096), and past the 1 MiB of base64url read at once. */
const SIZES = [0, 1, 15, 16, 17, 4095, 4096, 4097, 2 ** 20 + 3];

interface KeyCase {
  alg: string;
  /** What the CDH serves. */
  cdhKey: Uint8Array | string;
  /** What jose encrypts to. */
  encryptTo: Uint8Array | CryptoKey;
  encs: string[];
  what: string;
}

async function keyCases(): Promise<KeyCase[]> {
  const cases: KeyCase[] = [];
  for (const enc of ENCS) {
    const key = cryptoRandomBytes(CEK_BYTES[enc] ?? 0);
    cases.push({ alg: 'dir', cdhKey: key, encryptTo: key, encs: [enc], what: `dir ${enc}, raw key` });
  }
  for (const bits of [128, 192, 256]) {
    const kw = cryptoRandomBytes(bits / 8);
    cases.push({ alg: `A${bits}KW`, cdhKey: kw, encryptTo: kw, encs: ENCS, what: `A${bits}KW, raw key` });
    const gcmkw = cryptoRandomBytes(bits / 8);
    cases.push({ alg: `A${bits}GCMKW`, cdhKey: gcmkw.toString('base64url'), encryptTo: gcmkw, encs: ENCS, what: `A${bits}GCMKW, base64url key` });
  }
  for (const [i, alg] of ['RSA-OAEP', 'RSA-OAEP-256', 'RSA-OAEP-384', 'RSA-OAEP-512'].entries()) {
    const pair = await generateKeyPair(alg, { extractable: true });
    const pem = i % 2 === 0;
    cases.push({ alg, cdhKey: pem ? await exportPKCS8(pair.privateKey) : JSON.stringify(await exportJWK(pair.privateKey)), encryptTo: pair.publicKey, encs: ENCS, what: `${alg}, ${pem ? 'PEM' : 'JWK'}` });
  }
  // Each ECDH-ES variant on another curve here; every curve with every variant below.
  const curves = ['P-256', 'P-384', 'P-521', 'X25519'];
  for (const [i, alg] of ['ECDH-ES', 'ECDH-ES+A128KW', 'ECDH-ES+A192KW', 'ECDH-ES+A256KW'].entries()) {
    const crv = curves[i] ?? 'P-256';
    const pair = await generateKeyPair(alg, { extractable: true, crv });
    const pem = i % 2 === 1;
    cases.push({ alg, cdhKey: pem ? await exportPKCS8(pair.privateKey) : JSON.stringify(await exportJWK(pair.privateKey)), encryptTo: pair.publicKey, encs: ENCS, what: `${alg} ${crv}, ${pem ? 'PEM' : 'JWK'}` });
  }
  return cases;
}

function encrypt(plaintext: Uint8Array, alg: string, enc: string, key: Uint8Array | CryptoKey, extra: Record<string, unknown> = {}): Promise<string> {
  return new CompactEncrypt(plaintext).setProtectedHeader({ alg, enc, ...extra }).encrypt(key);
}

/** Every entry under dir, recursively, '/'-separated. */
async function entries(dir: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(path.join(dir, rel), { withFileTypes: true })) {
    const key = rel === '' ? entry.name : `${rel}/${entry.name}`;
    if (entry.isDirectory()) out.push(...await entries(dir, key));
    else out.push(key);
  }
  return out.sort();
}

/** Flips one bit of a base64url segment's decoded bytes (changing a character could touch only padding bits). */
function flipBit(segment: string, byteIndex: number): string {
  const bytes = Buffer.from(segment, 'base64url');
  const at = Math.min(Math.max(0, byteIndex), bytes.length - 1);
  bytes[at] = (bytes[at] ?? 0) ^ 0x01;
  return bytes.toString('base64url');
}

describe('streaming JWE decryption against jose', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let cdh: CdhDouble;
  let cases: KeyCase[];
  let runNo = 0;

  before(async () => {
    work = await tempDir('si-jwe-matrix-');
    cdh = await startCdhDouble();
    cases = await keyCases();
  });
  after(async () => {
    await cdh.stop();
    await work[Symbol.asyncDispose]();
  });

  /** A fresh DEST with `files`, decrypted with `key` from the CDH double. */
  async function decrypt(files: Record<string, string>, key: Uint8Array | string) {
    const dest = path.join(work.dir, `run-${++runNo}`);
    for (const [rel, content] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(dest, rel)), { recursive: true });
      await writeFile(path.join(dest, rel), content);
    }
    const id = `default/key/${runNo}`;
    cdh.setResource(id, key);
    const settings = loadSettings({ CONFIDENTIAL_ENABLED: 'true', CONFIDENTIAL_RESOURCE_ID: `kbs:///${id}`, CDH_ADDR: cdh.url, STORAGE_INITIALIZER_MAX_ATTEMPTS: '1' });
    return { dest, result: decryptModelFiles(dest, settings, silentLogger, new AbortController().signal) };
  }

  /** Asserts a refusal: one line naming the file, no key bytes, the JWE kept and nothing else left. */
  async function refused(name: string, jwe: string, key: Uint8Array | string, pattern = /./): Promise<string> {
    const { dest, result } = await decrypt({ [name]: jwe }, key);
    let message = '';
    await assert.rejects(result, (err: unknown) => {
      assert.ok(err instanceof StorageError, String(err));
      message = err.message;
      assert.ok(message.startsWith(`cannot decrypt ${name}: `), message);
      assert.match(message, pattern);
      assert.doesNotMatch(message, /\n/);
      const keyText = typeof key === 'string' ? key : Buffer.from(key).toString('base64url');
      assert.ok(!message.includes(keyText.slice(0, 16)), 'the key appears in the message');
      return true;
    });
    assert.deepEqual(await entries(dest), [name], message);
    assert.equal(await readFile(path.join(dest, name), 'latin1'), jwe);
    return message;
  }

  it('decrypts every alg x enc at every size to the bytes jose encrypted', async () => {
    let seed = 100;
    for (const c of cases) {
      const files: Record<string, string> = {};
      const expected = new Map<string, Buffer>();
      for (const enc of c.encs) {
        for (const size of SIZES) {
          const plaintext = randomBytes(size, ++seed);
          // Every other file ends with a newline, as files written by tools often do.
          files[`${enc}/${size}.bin.jwe`] = `${await encrypt(plaintext, c.alg, enc, c.encryptTo)}${size % 2 === 0 ? '\n' : ''}`;
          expected.set(`${enc}/${size}.bin`, plaintext);
        }
      }
      const { dest, result } = await decrypt(files, c.cdhKey);
      const total = [...expected.values()].reduce((sum, p) => sum + p.length, 0);
      assert.deepEqual(await result, { files: expected.size, bytes: total }, c.what);
      assert.deepEqual(await entries(dest), [...expected.keys()].sort(), c.what);
      for (const [rel, plaintext] of expected) assert.ok((await readFile(path.join(dest, rel))).equals(plaintext), `${c.what}: ${rel}`);
    }
  });

  it('decrypts every ECDH-ES variant on every curve, with apu and apv', async () => {
    for (const crv of ['P-256', 'P-384', 'P-521', 'X25519']) {
      for (const alg of ['ECDH-ES', 'ECDH-ES+A128KW', 'ECDH-ES+A192KW', 'ECDH-ES+A256KW']) {
        const pair = await generateKeyPair(alg, { extractable: true, crv });
        const plaintext = randomBytes(4097, 7);
        const jwe = await new CompactEncrypt(plaintext)
          .setProtectedHeader({ alg, enc: 'A256GCM' })
          .setKeyManagementParameters({ apu: Buffer.from('Alice'), apv: Buffer.from('Bob') })
          .encrypt(pair.publicKey);
        const { dest, result } = await decrypt({ 'm.jwe': jwe }, JSON.stringify(await exportJWK(pair.privateKey)));
        assert.deepEqual(await result, { files: 1, bytes: plaintext.length }, `${alg} ${crv}`);
        assert.ok((await readFile(path.join(dest, 'm'))).equals(plaintext), `${alg} ${crv}`);
      }
    }
  });

  it('refuses a file altered in its header, encrypted key, IV, ciphertext or tag', async () => {
    const plaintext = randomBytes(2 ** 20 + 3, 9);
    const combos: [string, string][] = [
      ['dir', 'A256CBC-HS512'], ['A256KW', 'A256GCM'], ['A128KW', 'A128CBC-HS256'], ['A192GCMKW', 'A192GCM'],
      ['RSA-OAEP-256', 'A192CBC-HS384'], ['ECDH-ES', 'A128GCM'], ['ECDH-ES+A128KW', 'A256CBC-HS512'],
    ];
    for (const [alg, enc] of combos) {
      const c = cases.find((k) => k.alg === alg && k.encs.includes(enc));
      assert.ok(c !== undefined);
      const jwe = await encrypt(plaintext, alg, enc, c.encryptTo);
      const [header = '', encryptedKey = '', iv = '', ciphertext = '', tag = ''] = jwe.split('.');
      const headerJson = JSON.parse(Buffer.from(header, 'base64url').toString()) as Record<string, unknown>;
      const altered: [string, string][] = [
        ['header', [Buffer.from(JSON.stringify({ ...headerJson, kid: 'x' })).toString('base64url'), encryptedKey, iv, ciphertext, tag].join('.')],
        ['iv', [header, encryptedKey, flipBit(iv, 5), ciphertext, tag].join('.')],
        ['first ciphertext byte', [header, encryptedKey, iv, flipBit(ciphertext, 0), tag].join('.')],
        ['ciphertext past the first chunk', [header, encryptedKey, iv, flipBit(ciphertext, 900_000), tag].join('.')],
        ['last ciphertext byte', [header, encryptedKey, iv, flipBit(ciphertext, Infinity), tag].join('.')],
        ['tag', [header, encryptedKey, iv, ciphertext, flipBit(tag, Infinity)].join('.')],
      ];
      if (encryptedKey !== '') altered.push(['encrypted key', [header, flipBit(encryptedKey, 3), iv, ciphertext, tag].join('.')]);
      else altered.push(['encrypted key added', [header, 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', iv, ciphertext, tag].join('.')]);
      if (typeof headerJson.epk === 'object') {
        const { crv } = headerJson.epk as { crv: string };
        for (const other of [crv, crv === 'P-256' ? 'P-384' : 'P-256']) {
          const epk = await exportJWK((await generateKeyPair(alg, { extractable: true, crv: other })).publicKey);
          altered.push([`epk on ${other}`, [Buffer.from(JSON.stringify({ ...headerJson, epk })).toString('base64url'), encryptedKey, iv, ciphertext, tag].join('.')]);
        }
      }
      for (const [what, file] of altered) {
        const message = await refused('model.bin.jwe', file, c.cdhKey);
        assert.match(message, /decryption failed|not a valid compact JWE|its ephemeral key \(epk\) is on P-\d+, but the key from the Confidential Data Hub is on/, `${alg} ${enc}, altered ${what}: ${message}`);
      }
    }
  });

  it('refuses a file cut short anywhere', async () => {
    const c = cases.find((k) => k.alg === 'A256KW');
    assert.ok(c !== undefined);
    for (const enc of ['A256GCM', 'A256CBC-HS512']) {
      const jwe = await encrypt(randomBytes(100_000, 11), 'A256KW', enc, c.encryptTo);
      const dots = [...jwe.matchAll(/\./g)].map((m) => m.index);
      const cuts = [0, 1, 10, ...dots, ...dots.map((d) => d + 1), Math.floor(jwe.length / 2), jwe.length - 30, jwe.length - 2, jwe.length - 1];
      for (const cut of cuts) {
        const message = await refused('weights.jwe', jwe.slice(0, cut), c.cdhKey);
        assert.match(message, /decryption failed|not a valid compact JWE/, `${enc} cut at ${cut} of ${jwe.length}: ${message}`);
      }
    }
  });

  it('refuses a wrong key of the right form for every alg family', async () => {
    const plaintext = randomBytes(5000, 13);
    const others = await keyCases(); // the same algs, forms and curves, other keys
    for (const c of cases.filter((k) => k.encs.length > 1)) {
      const other = others.find((k) => k.alg === c.alg);
      assert.ok(other !== undefined);
      const jwe = await encrypt(plaintext, c.alg, 'A128CBC-HS256', c.encryptTo);
      await refused('model.jwe', jwe, other.cdhKey, /decryption failed: the key from the Confidential Data Hub is not the one it was encrypted with/);
    }
  });
});
