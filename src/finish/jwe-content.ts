/**
 * Content decryption of a JWE (RFC 7518 section 5), one chunk at a time so a file of any size
 * needs constant memory:
 *
 *   A128GCM/A192GCM/A256GCM: AES-GCM with AAD = the ASCII of the protected header segment; the
 *     tag is set before the first chunk and checked by final().
 *   A128CBC-HS256/A192CBC-HS384/A256CBC-HS512: the CEK's first half is the HMAC key, the second
 *     the AES-CBC key; the tag is the first half of HMAC(AAD || IV || ciphertext || AL), where AL
 *     is the AAD's length in bits as a 64-bit big-endian number. The HMAC covers the whole
 *     ciphertext, so authentication is only known at final(), after the padding is checked last
 *     (no padding oracle before the MAC).
 *
 * Plaintext handed out by update() is unauthenticated until final() returns: the caller writes it
 * only where nothing takes it for the result (a `.part` file) until then.
 */
import { createDecipheriv, createHmac, timingSafeEqual, type Decipher, type DecipherGCM } from 'node:crypto';
import { integrity, invalidInput, StorageError } from '../errors.js';

export interface ContentDecipher {
  update(ciphertext: Buffer): Buffer;
  /** The last plaintext bytes; throws an Integrity error if the tag does not match. */
  final(): Buffer;
}

const DECRYPTION_FAILED = 'decryption failed: the key from the Confidential Data Hub is not the one it was encrypted with, or the file was altered';

export function decryptionFailed(): StorageError {
  return integrity(DECRYPTION_FAILED);
}

/** Bytes of the content encryption key each enc needs. */
export const CEK_BYTES: Readonly<Record<string, number>> = {
  A128GCM: 16, A192GCM: 24, A256GCM: 32, 'A128CBC-HS256': 32, 'A192CBC-HS384': 48, 'A256CBC-HS512': 64,
};

const GCM_IV_BYTES = 12;
const GCM_TAG_BYTES = 16;
const CBC_IV_BYTES = 16;

function checkLength(what: string, actual: number, expected: number, enc: string): void {
  if (actual !== expected) throw invalidInput(`it is not a valid compact JWE (its ${what} is ${actual} bytes; ${enc} uses ${expected})`);
}

function gcm(enc: string, cek: Buffer, iv: Buffer, tag: Buffer, aad: Buffer): ContentDecipher {
  checkLength('IV', iv.length, GCM_IV_BYTES, enc);
  checkLength('authentication tag', tag.length, GCM_TAG_BYTES, enc);
  const decipher: DecipherGCM = createDecipheriv(`aes-${cek.length * 8}-gcm` as 'aes-256-gcm', cek, iv, { authTagLength: GCM_TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  return {
    update: (ciphertext) => decipher.update(ciphertext),
    final: () => {
      try {
        return decipher.final();
      } catch {
        throw decryptionFailed();
      }
    },
  };
}

function cbcHmac(enc: string, cek: Buffer, iv: Buffer, tag: Buffer, aad: Buffer): ContentDecipher {
  const half = cek.length / 2;
  checkLength('IV', iv.length, CBC_IV_BYTES, enc);
  checkLength('authentication tag', tag.length, half, enc);
  const mac = createHmac(`sha${half * 16}`, cek.subarray(0, half));
  const decipher: Decipher = createDecipheriv(`aes-${half * 8}-cbc`, cek.subarray(half), iv);
  mac.update(aad);
  mac.update(iv);
  return {
    update: (ciphertext) => {
      mac.update(ciphertext);
      return decipher.update(ciphertext);
    },
    final: () => {
      const al = Buffer.alloc(8);
      al.writeBigUInt64BE(BigInt(aad.length) * 8n);
      const expected = mac.update(al).digest().subarray(0, half);
      if (!timingSafeEqual(expected, tag)) throw decryptionFailed();
      try {
        return decipher.final();
      } catch {
        throw decryptionFailed(); // bad padding under a valid MAC: the sender's key encrypted garbage
      }
    },
  };
}

/** A decipher for `enc`; the CEK's length must already match CEK_BYTES[enc]. */
export function contentDecipher(enc: string, cek: Buffer, iv: Buffer, tag: Buffer, aad: Buffer): ContentDecipher {
  if (cek.length !== CEK_BYTES[enc]) throw decryptionFailed();
  return enc.endsWith('GCM') ? gcm(enc, cek, iv, tag, aad) : cbcHmac(enc, cek, iv, tag, aad);
}
