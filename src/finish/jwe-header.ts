/**
 * The protected header of a compact JWE: parsing it from its base64url segment, the fields with
 * base64url values (iv, tag, apu, apv), and the check that this decoder supports what it asks for.
 */
import { invalidInput, unsupported } from '../errors.js';
import { CONTENT_ENCRYPTION_ALGORITHMS, KEY_MANAGEMENT_ALGORITHMS, type JweHeader } from './jwe-key.js';

const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** Whether text is unpadded base64url that decodes to whole bytes (a length of 4n+1 cannot). */
export function isBase64url(text: string): boolean {
  return BASE64URL.test(text) && text.length % 4 !== 1;
}

/** The header from its base64url segment, or undefined if it is not a JSON object with string alg and enc. */
export function decodeJweHeader(segment: string): JweHeader | undefined {
  if (segment === '' || !isBase64url(segment)) return undefined;
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) return undefined;
  const { alg, enc } = header as Record<string, unknown>;
  return typeof alg === 'string' && typeof enc === 'string' ? header as JweHeader : undefined;
}

/** The protected header of a compact JWE from its first bytes, or undefined if they are not one. */
export function parseJweHeader(prefix: Buffer): JweHeader | undefined {
  const dot = prefix.indexOf(0x2e);
  return dot <= 0 ? undefined : decodeJweHeader(prefix.subarray(0, dot).toString('latin1'));
}

/** A base64url header field as bytes; undefined when absent. */
export function headerBytes(header: JweHeader, name: string): Buffer | undefined {
  const value = header[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !isBase64url(value)) throw invalidInput(`it is not a valid compact JWE (its "${name}" header is not a base64url string)`);
  return Buffer.from(value, 'base64url');
}

/** Refuses what this decoder does not do, naming it and what it supports. */
export function checkSupported(header: JweHeader): void {
  const alg = KEY_MANAGEMENT_ALGORITHMS.includes(header.alg);
  if (!alg || !CONTENT_ENCRYPTION_ALGORITHMS.includes(header.enc)) {
    const used = alg ? `enc ${header.enc}` : `alg ${header.alg}`;
    throw invalidInput(`it uses ${used}, which is not supported (supported: alg ${KEY_MANAGEMENT_ALGORITHMS.join(', ')}; enc ${CONTENT_ENCRYPTION_ALGORITHMS.join(', ')})`);
  }
  if (header.zip !== undefined) {
    // Inflating would hand unauthenticated plaintext to a decompressor before the tag is checked,
    // and model weights hardly compress: such files are refused rather than half-supported.
    throw unsupported(`it is compressed ("zip": ${JSON.stringify(header.zip)}), which is not supported; encrypt the file without compression`);
  }
  if (header.crit !== undefined) {
    throw unsupported(`it marks header parameters as critical ("crit": ${JSON.stringify(header.crit)}), which this decoder does not understand`);
  }
}
