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
 *
 * Asymmetric keys become node:crypto private KeyObjects, checked against the algorithm family here
 * (RSA for RSA-OAEP*, an EC key on P-256/P-384/P-521 or X25519 for ECDH-ES*).
 */
import { createPrivateKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { invalidInput } from '../errors.js';
import { CEK_BYTES } from './jwe-content.js';

/** What decryption accepts, in the order RFC 7518 lists them. RSA1_5 and PBES2 are left out on purpose. */
export const KEY_MANAGEMENT_ALGORITHMS = [
  'dir', 'A128KW', 'A192KW', 'A256KW', 'A128GCMKW', 'A192GCMKW', 'A256GCMKW',
  'RSA-OAEP', 'RSA-OAEP-256', 'RSA-OAEP-384', 'RSA-OAEP-512',
  'ECDH-ES', 'ECDH-ES+A128KW', 'ECDH-ES+A192KW', 'ECDH-ES+A256KW',
];

export const CONTENT_ENCRYPTION_ALGORITHMS = Object.keys(CEK_BYTES);

export const WRAP_KEY_BYTES: Readonly<Record<string, number>> = {
  A128KW: 16, A192KW: 24, A256KW: 32, A128GCMKW: 16, A192GCMKW: 24, A256GCMKW: 32,
};

/** A compact JWE's protected header: alg and enc are checked to be strings, the rest is as parsed. */
export interface JweHeader {
  alg: string;
  enc: string;
  readonly [name: string]: unknown;
}

export type KeyMaterial =
  | { form: 'jwk'; jwk: JsonWebKey }
  | { form: 'pem'; pem: string }
  | { form: 'bytes'; raw: Uint8Array; decoded: { bytes: Uint8Array; as: 'base64url' | 'base64' } | undefined };

/** Secret bytes for dir and the AES algorithms, a private key for RSA-OAEP* and ECDH-ES*. */
export type DecryptionKey = Buffer | KeyObject;

/** The curves ECDH-ES accepts: node:crypto's names -> JOSE's. */
const ECDH_CURVES: Readonly<Record<string, string>> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

/** The curve of an EC or OKP key by its JOSE name where it has one ("P-256", "X25519"), else node's. */
export function curveName(key: KeyObject): string {
  if (key.asymmetricKeyType !== 'ec') return key.asymmetricKeyType === 'x25519' ? 'X25519' : key.asymmetricKeyType ?? 'unknown';
  const curve = key.asymmetricKeyDetails?.namedCurve ?? 'an unknown curve';
  return ECDH_CURVES[curve] ?? curve;
}

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
      const jwk = parsed as JsonWebKey;
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
function symmetricKeyBytes(header: JweHeader): number | undefined {
  if (header.alg === 'dir') return CEK_BYTES[header.enc];
  return WRAP_KEY_BYTES[header.alg];
}

function describeAlg(header: JweHeader): string {
  return header.alg === 'dir' ? `alg dir with enc ${header.enc}` : `alg ${header.alg}`;
}

/** The private key's type fits the algorithm family; the message names types and curves only. */
function checkPrivateKey(key: KeyObject, header: JweHeader, form: string): KeyObject {
  const type = key.asymmetricKeyType ?? 'unknown';
  const curve = key.asymmetricKeyDetails?.namedCurve ?? '';
  const fits = familyOf(header.alg) === 'RSA' ? type === 'rsa' : type === 'x25519' || (type === 'ec' && curve in ECDH_CURVES);
  if (!fits) {
    const what = type === 'ec' ? `an EC key on ${curveName(key)}` : `a ${type} key`;
    throw invalidInput(`the key from the Confidential Data Hub is ${what} (${form}), which cannot decrypt ${describeAlg(header)}`);
  }
  return key;
}

function importPrivateKey(source: Parameters<typeof createPrivateKey>[0], header: JweHeader, form: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(source);
  } catch (err) {
    // node:crypto's messages describe the structure ("invalid JWK EC key"), never key bytes.
    throw invalidInput(`the ${form} key from the Confidential Data Hub does not fit ${describeAlg(header)}: ${(err as Error).message}`);
  }
  return checkPrivateKey(key, header, form);
}

function jwkKey(jwk: JsonWebKey, header: JweHeader): DecryptionKey {
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
    return Buffer.from(jwk.k ?? '', 'base64url');
  }
  if (typeof jwk.d !== 'string') {
    throw invalidInput(`the key from the Confidential Data Hub is a public ${kty} JWK; decrypting ${describeAlg(header)} needs the private key ("d")`);
  }
  return importPrivateKey({ key: jwk, format: 'jwk' }, header, 'JWK');
}

/** The key for a file with this header, or a clear error naming forms and lengths. */
export function keyForHeader(material: KeyMaterial, header: JweHeader): DecryptionKey {
  if (material.form === 'jwk') return jwkKey(material.jwk, header);
  if (material.form === 'pem') {
    if (familyOf(header.alg) === 'oct') throw invalidInput(`the key from the Confidential Data Hub is a PEM private key, which cannot decrypt ${describeAlg(header)}`);
    return importPrivateKey({ key: material.pem, format: 'pem' }, header, 'PEM');
  }
  const needed = symmetricKeyBytes(header);
  if (needed === undefined) {
    throw invalidInput(`${describeAlg(header)} needs a private JWK or PKCS#8 PEM key, but the Confidential Data Hub returned ${material.raw.length} bytes of neither form`);
  }
  if (material.raw.length === needed) return Buffer.from(material.raw);
  if (material.decoded?.bytes.length === needed) return Buffer.from(material.decoded.bytes);
  const decodedNote = material.decoded === undefined ? '' : ` (${material.decoded.bytes.length} once ${material.decoded.as}-decoded)`;
  throw invalidInput(`the key from the Confidential Data Hub is ${material.raw.length} bytes${decodedNote}; ${describeAlg(header)} needs a ${needed}-byte key, raw or base64url/base64-encoded, or a JWK`);
}
