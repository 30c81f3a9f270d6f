/**
 * The forms a model key may take when the Confidential Data Hub releases it, and which one a JWE
 * file's header calls for. A KBS resource is opaque bytes, so operators store keys however their
 * tooling wrote them; the rules, in order:
 *
 *   1. JWK: the bytes are a JSON object with a string "kty" (oct, or an RSA/EC/OKP private key).
 *      JSON without "kty" is refused: it was meant as a JWK and is broken.
 *   2. PEM: a PKCS#8 private key ("-----BEGIN PRIVATE KEY-----"), for the RSA/ECDH algorithms.
 *   3. raw: for the symmetric algorithms (dir, AES key wrap), bytes of exactly the length the
 *      header needs (32 for dir+A256GCM or A256KW).
 *   4. base64url or base64 of such bytes (surrounding whitespace ignored: secrets are often
 *      written with a trailing newline).
 *
 * Raw and encoded cannot be confused: an encoding is a third longer than what it encodes, so at
 * most one of them has the needed length. Messages name lengths and forms, never key bytes.
 */
import { importPKCS8, type CryptoKey, type JWK } from 'jose';
import { invalidInput } from '../errors.js';

/** What decryption accepts, in the order RFC 7518 lists them. RSA1_5 and PBES2 are left out on purpose. */
export const KEY_MANAGEMENT_ALGORITHMS = [
  'dir', 'A128KW', 'A192KW', 'A256KW', 'A128GCMKW', 'A192GCMKW', 'A256GCMKW',
  'RSA-OAEP', 'RSA-OAEP-256', 'RSA-OAEP-384', 'RSA-OAEP-512',
  'ECDH-ES', 'ECDH-ES+A128KW', 'ECDH-ES+A192KW', 'ECDH-ES+A256KW',
];

/** Content encryption algorithms with the length of their key in bytes. */
const ENC_KEY_BYTES: Readonly<Record<string, number>> = {
  A128GCM: 16, A192GCM: 24, A256GCM: 32, 'A128CBC-HS256': 32, 'A192CBC-HS384': 48, 'A256CBC-HS512': 64,
};
export const CONTENT_ENCRYPTION_ALGORITHMS = Object.keys(ENC_KEY_BYTES);

const WRAP_KEY_BYTES: Readonly<Record<string, number>> = {
  A128KW: 16, A192KW: 24, A256KW: 32, A128GCMKW: 16, A192GCMKW: 24, A256GCMKW: 32,
};

export interface JweHeader {
  alg: string;
  enc: string;
}

export type KeyMaterial =
  | { form: 'jwk'; jwk: JWK }
  | { form: 'pem'; pem: string }
  | { form: 'bytes'; raw: Uint8Array; decoded: { bytes: Uint8Array; as: 'base64url' | 'base64' } | undefined };

export type DecryptionKey = CryptoKey | Uint8Array | JWK;

function decodeBase64Text(text: string): { bytes: Uint8Array; as: 'base64url' | 'base64' } | undefined {
  if (text.length % 4 === 1) return undefined;
  if (/^[A-Za-z0-9_-]+={0,2}$/.test(text)) return { bytes: Buffer.from(text, 'base64url'), as: 'base64url' };
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return { bytes: Buffer.from(text, 'base64'), as: 'base64' };
  return undefined;
}

/** Sorts the CDH's answer into one of the forms above (which alg it fits is decided per file). */
export function classifyKey(bytes: Uint8Array): KeyMaterial {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8').trim();
  if (text.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined; // random raw bytes may start with "{"; they fall through to the byte forms
    }
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
      const jwk = parsed as JWK;
      if (typeof jwk.kty !== 'string') throw invalidInput('the key from the Confidential Data Hub is JSON but not a JWK (it has no "kty")');
      return { form: 'jwk', jwk };
    }
  }
  if (/^-----BEGIN PRIVATE KEY-----/.test(text)) return { form: 'pem', pem: text };
  return { form: 'bytes', raw: bytes, decoded: decodeBase64Text(text) };
}

type KeyFamily = 'oct' | 'RSA' | 'EC';

function familyOf(alg: string): KeyFamily {
  if (alg.startsWith('RSA-OAEP')) return 'RSA';
  if (alg.startsWith('ECDH-ES')) return 'EC';
  return 'oct';
}

/** Bytes a symmetric key must have for this header; undefined for the asymmetric algorithms. */
export function symmetricKeyBytes(header: JweHeader): number | undefined {
  if (header.alg === 'dir') return ENC_KEY_BYTES[header.enc];
  return WRAP_KEY_BYTES[header.alg];
}

function describeAlg(header: JweHeader): string {
  return header.alg === 'dir' ? `alg dir with enc ${header.enc}` : `alg ${header.alg}`;
}

function jwkKey(jwk: JWK, header: JweHeader): DecryptionKey {
  const family = familyOf(header.alg);
  const kty = jwk.kty ?? '';
  const fits = family === 'oct' ? kty === 'oct' : family === 'RSA' ? kty === 'RSA' : kty === 'EC' || kty === 'OKP';
  if (!fits) throw invalidInput(`the key from the Confidential Data Hub is a ${kty} JWK, which cannot decrypt ${describeAlg(header)}`);
  if (family === 'oct') {
    const needed = symmetricKeyBytes(header);
    const length = typeof jwk.k === 'string' ? Buffer.from(jwk.k, 'base64url').length : 0;
    if (needed !== undefined && length !== needed) {
      throw invalidInput(`the key from the Confidential Data Hub is an oct JWK of ${length} bytes; ${describeAlg(header)} needs ${needed}`);
    }
  } else if (typeof jwk.d !== 'string') {
    throw invalidInput(`the key from the Confidential Data Hub is a public ${kty} JWK; decrypting ${describeAlg(header)} needs the private key ("d")`);
  }
  return jwk;
}

/** The key to hand to jose for a file with this header, or a clear error naming forms and lengths. */
export async function keyForHeader(material: KeyMaterial, header: JweHeader): Promise<DecryptionKey> {
  if (material.form === 'jwk') return jwkKey(material.jwk, header);
  if (material.form === 'pem') {
    if (familyOf(header.alg) === 'oct') throw invalidInput(`the key from the Confidential Data Hub is a PEM private key, which cannot decrypt ${describeAlg(header)}`);
    try {
      return await importPKCS8(material.pem, header.alg);
    } catch (err) {
      throw invalidInput(`the PEM key from the Confidential Data Hub does not fit ${describeAlg(header)}: ${(err as Error).message}`);
    }
  }
  const needed = symmetricKeyBytes(header);
  if (needed === undefined) {
    throw invalidInput(`${describeAlg(header)} needs a private JWK or PKCS#8 PEM key, but the Confidential Data Hub returned ${material.raw.length} bytes of neither form`);
  }
  if (material.raw.length === needed) return material.raw;
  if (material.decoded?.bytes.length === needed) return material.decoded.bytes;
  const decodedNote = material.decoded === undefined ? '' : ` (${material.decoded.bytes.length} once ${material.decoded.as}-decoded)`;
  throw invalidInput(`the key from the Confidential Data Hub is ${material.raw.length} bytes${decodedNote}; ${describeAlg(header)} needs a ${needed}-byte key, raw or base64url/base64-encoded, or a JWK`);
}
