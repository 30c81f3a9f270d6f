/**
 * The content encryption key (CEK) of a JWE from its header's "alg", the encrypted key segment and
 * the key the Confidential Data Hub released (RFC 7518 section 4):
 *
 *   dir                    the key is the CEK; the encrypted key segment is empty
 *   A128KW/A192KW/A256KW   AES key unwrap (RFC 3394) of the encrypted key
 *   A*GCMKW                AES-GCM decryption of the encrypted key with the header's iv and tag
 *   RSA-OAEP[-256/384/512] RSAES-OAEP with SHA-1/256/384/512 (the MGF1 hash is the same)
 *   ECDH-ES                the agreed key is the CEK (see jwe-ecdh.ts)
 *   ECDH-ES+A*KW           the agreed key unwraps the encrypted key
 *
 * A wrong key and an altered encrypted key are both reported as "decryption failed"; a header
 * that lacks what its alg needs is "not a valid compact JWE".
 */
import { constants, createDecipheriv, KeyObject, privateDecrypt } from 'node:crypto';
import { invalidInput } from '../errors.js';
import { CEK_BYTES, decryptionFailed } from './jwe-content.js';
import { ecdhKey } from './jwe-ecdh.js';
import { headerBytes } from './jwe-header.js';
import { WRAP_KEY_BYTES, type DecryptionKey, type JweHeader } from './jwe-key.js';

const KW_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');
const OAEP_HASH: Readonly<Record<string, string>> = { 'RSA-OAEP': 'sha1', 'RSA-OAEP-256': 'sha256', 'RSA-OAEP-384': 'sha384', 'RSA-OAEP-512': 'sha512' };

function secret(key: DecryptionKey): Buffer {
  if (key instanceof KeyObject) throw new TypeError('a symmetric algorithm got a private key'); // keyForHeader rules this out
  return key;
}

function privateKey(key: DecryptionKey): KeyObject {
  if (!(key instanceof KeyObject)) throw new TypeError('an asymmetric algorithm got secret bytes'); // keyForHeader rules this out
  return key;
}

function aesUnwrap(kek: Buffer, wrapped: Buffer): Buffer {
  // RFC 3394 output is n+1 64-bit blocks for an n-block key, n >= 2.
  if (wrapped.length < 24 || wrapped.length % 8 !== 0) throw decryptionFailed();
  try {
    const decipher = createDecipheriv(`id-aes${kek.length * 8}-wrap`, kek, KW_IV);
    return Buffer.concat([decipher.update(wrapped), decipher.final()]);
  } catch {
    throw decryptionFailed(); // the integrity check value did not come out as A6A6...: wrong key or altered
  }
}

function aesGcmUnwrap(header: JweHeader, kek: Buffer, wrapped: Buffer): Buffer {
  const iv = headerBytes(header, 'iv');
  const tag = headerBytes(header, 'tag');
  if (iv?.length !== 12 || tag?.length !== 16) throw invalidInput(`it is not a valid compact JWE (alg ${header.alg} needs a 12-byte "iv" and a 16-byte "tag" in its header)`);
  try {
    const decipher = createDecipheriv(`aes-${kek.length * 8}-gcm` as 'aes-256-gcm', kek, iv, { authTagLength: 16 });
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(wrapped), decipher.final()]);
  } catch {
    throw decryptionFailed();
  }
}

function rsaOaep(alg: string, key: KeyObject, wrapped: Buffer): Buffer {
  try {
    return privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: OAEP_HASH[alg] }, wrapped);
  } catch {
    throw decryptionFailed();
  }
}

function noEncryptedKey(header: JweHeader, encryptedKey: Buffer): void {
  if (encryptedKey.length !== 0) throw invalidInput(`it is not a valid compact JWE (alg ${header.alg} has an empty encrypted key segment, this one has ${encryptedKey.length} bytes)`);
}

/** The CEK, checked to be as long as the header's enc needs. */
export function contentKey(header: JweHeader, key: DecryptionKey, encryptedKey: Buffer): Buffer {
  const { alg, enc } = header;
  const cekBytes = CEK_BYTES[enc] ?? 0;
  let cek: Buffer;
  if (alg === 'dir') {
    noEncryptedKey(header, encryptedKey);
    cek = Buffer.from(secret(key));
  } else if (/^A\d+KW$/.test(alg)) {
    cek = aesUnwrap(secret(key), encryptedKey);
  } else if (/^A\d+GCMKW$/.test(alg)) {
    cek = aesGcmUnwrap(header, secret(key), encryptedKey);
  } else if (alg.startsWith('RSA-OAEP')) {
    cek = rsaOaep(alg, privateKey(key), encryptedKey);
  } else if (alg === 'ECDH-ES') {
    noEncryptedKey(header, encryptedKey);
    cek = ecdhKey(header, privateKey(key), cekBytes * 8, enc);
  } else {
    const kwAlg = alg.slice('ECDH-ES+'.length);
    const kek = ecdhKey(header, privateKey(key), (WRAP_KEY_BYTES[kwAlg] ?? 0) * 8, alg);
    try {
      cek = aesUnwrap(kek, encryptedKey);
    } finally {
      kek.fill(0);
    }
  }
  if (cek.length !== cekBytes) {
    cek.fill(0);
    throw decryptionFailed();
  }
  return cek;
}
