/**
 * ECDH-ES key agreement for JWE (RFC 7518 section 4.6): the sender's ephemeral public key (the
 * header's "epk") and our private key give a shared secret Z, from which the Concat KDF of NIST
 * SP 800-56A (one SHA-256 round per 256 bits) derives the key:
 *
 *   round i = SHA-256( i as uint32 BE || Z || OtherInfo )
 *   OtherInfo = len || AlgorithmID || len || apu || len || apv || keydatalen in bits as uint32 BE
 *
 * AlgorithmID is the enc value for ECDH-ES (the result is the CEK) and the alg value for
 * ECDH-ES+A*KW (the result is the key-wrapping key); apu/apv are the header's base64url fields,
 * empty when absent. Each len is a uint32 BE byte count.
 */
import { createHash, createPublicKey, diffieHellman, type JsonWebKey, type KeyObject } from 'node:crypto';
import { invalidInput } from '../errors.js';
import { curveName, type JweHeader } from './jwe-key.js';
import { headerBytes } from './jwe-header.js';

function uint32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value);
  return out;
}

function lengthPrefixed(bytes: Buffer): Buffer {
  return Buffer.concat([uint32(bytes.length), bytes]);
}

function concatKdf(z: Buffer, keyBits: number, algorithmId: string, apu: Buffer, apv: Buffer): Buffer {
  const otherInfo = Buffer.concat([lengthPrefixed(Buffer.from(algorithmId, 'ascii')), lengthPrefixed(apu), lengthPrefixed(apv), uint32(keyBits)]);
  const rounds = Math.ceil(keyBits / 256);
  const out = Buffer.alloc(rounds * 32);
  for (let i = 1; i <= rounds; i++) createHash('sha256').update(uint32(i)).update(z).update(otherInfo).digest().copy(out, (i - 1) * 32);
  return out.subarray(0, keyBits / 8);
}

/** The ephemeral public key from the header, on the private key's curve. */
function ephemeralKey(header: JweHeader, privateKey: KeyObject): KeyObject {
  const epk = header.epk;
  if (typeof epk !== 'object' || epk === null || Array.isArray(epk)) throw invalidInput(`it is not a valid compact JWE (alg ${header.alg} needs an "epk" header with the sender's ephemeral public key)`);
  const { kty, crv, x, y } = epk as Record<string, unknown>;
  let publicKey: KeyObject;
  try {
    // Only the public members: a "d" in a header is not ours to import.
    publicKey = createPublicKey({ key: { kty, crv, x, y } as JsonWebKey, format: 'jwk' });
  } catch (err) {
    throw invalidInput(`it is not a valid compact JWE (its "epk" is not a usable public key: ${(err as Error).message})`);
  }
  if (curveName(publicKey) !== curveName(privateKey)) {
    throw invalidInput(`its ephemeral key (epk) is on ${curveName(publicKey)}, but the key from the Confidential Data Hub is on ${curveName(privateKey)}`);
  }
  return publicKey;
}

/** The key ECDH-ES derives: keyBits long, for algorithmId (enc for ECDH-ES, alg for ECDH-ES+A*KW). */
export function ecdhKey(header: JweHeader, privateKey: KeyObject, keyBits: number, algorithmId: string): Buffer {
  const publicKey = ephemeralKey(header, privateKey);
  let z: Buffer;
  try {
    z = diffieHellman({ privateKey, publicKey });
  } catch (err) {
    throw invalidInput(`it is not a valid compact JWE (the key agreement with its "epk" failed: ${(err as Error).message})`);
  }
  try {
    return concatKdf(z, keyBits, algorithmId, headerBytes(header, 'apu') ?? Buffer.alloc(0), headerBytes(header, 'apv') ?? Buffer.alloc(0));
  } finally {
    z.fill(0);
  }
}
