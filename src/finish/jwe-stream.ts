/**
 * Reads a compact JWE (BASE64URL(header).BASE64URL(encrypted key).BASE64URL(iv).BASE64URL(ciphertext).BASE64URL(tag))
 * from a file without holding it in memory: the three short segments come from a bounded read of
 * the head, the tag from a read of the tail (after the last dot), and the ciphertext, which is
 * nearly the whole file, is decoded chunk by chunk as it is read.
 *
 * Trailing whitespace after the tag is ignored: tools often end the file with a newline.
 */
import type { FileHandle } from 'node:fs/promises';
import { describeError, invalidInput, localIO } from '../errors.js';
import { cancelled } from '../transfer/retry.js';
import { decodeJweHeader, isBase64url } from './jwe-header.js';
import type { JweHeader } from './jwe-key.js';

/** Header, encrypted key and IV must fit here (an RSA-4096 encrypted key is 683 characters). */
export const HEAD_MAX = 64 * 1024;
/** The tag (at most 43 characters) and trailing whitespace must fit here. */
const TAIL_MAX = 4096;
/** Characters of ciphertext decoded at once: a multiple of 4, so each chunk decodes on its own. */
const CHUNK_CHARS = 1024 * 1024;

export interface CompactJwe {
  header: JweHeader;
  /** The protected header segment as ASCII bytes: the additional authenticated data. */
  aad: Buffer;
  encryptedKey: Buffer;
  iv: Buffer;
  tag: Buffer;
  /** Byte offsets of the ciphertext segment in the file. */
  ciphertextStart: number;
  ciphertextEnd: number;
}

const notCompact = (why: string): Error => invalidInput(`it is not a valid compact JWE (${why})`);

/** Fills buffer[0, length) from `position`; a read error or a file that ends early is a local error. */
async function readFullyAt(handle: FileHandle, buffer: Buffer, length: number, position: number, shown: string): Promise<void> {
  for (let filled = 0; filled < length;) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(buffer, filled, length - filled, position + filled));
    } catch (err) {
      throw localIO(`cannot read ${shown}: ${describeError(err)}`, err);
    }
    if (bytesRead === 0) throw localIO(`cannot read ${shown}: it became shorter while being decrypted`);
    filled += bytesRead;
  }
}

async function readAt(handle: FileHandle, position: number, length: number, shown: string): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  await readFullyAt(handle, buffer, length, position, shown);
  return buffer;
}

function isSpace(byte: number | undefined): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

function segment(bytes: Buffer, what: string): Buffer {
  const text = bytes.toString('latin1');
  if (!isBase64url(text)) throw notCompact(`its ${what} is not base64url`);
  return Buffer.from(text, 'base64url');
}

/** The layout of the compact JWE in a file of `size` bytes, from two bounded reads. */
export async function readCompactJwe(handle: FileHandle, size: number, shown: string): Promise<CompactJwe> {
  const tailStart = Math.max(0, size - TAIL_MAX);
  const tail = await readAt(handle, tailStart, size - tailStart, shown);
  let end = tail.length;
  while (end > 0 && isSpace(tail[end - 1])) end--;
  const lastDot = tail.lastIndexOf(0x2e, end - 1);
  if (end === 0 || lastDot < 0) throw notCompact(tailStart === 0 ? 'it has fewer than 5 dot-separated segments' : 'it does not end in a short authentication tag segment');
  const tagStart = tailStart + lastDot + 1;

  const head = await readAt(handle, 0, Math.min(size, HEAD_MAX), shown);
  const dots: number[] = [];
  for (let at = head.indexOf(0x2e); at >= 0 && dots.length < 3; at = head.indexOf(0x2e, at + 1)) dots.push(at);
  const [dot1 = -1, dot2 = -1, dot3 = -1] = dots;
  if (dots.length < 3) throw notCompact(head.length === size ? 'it has fewer than 5 dot-separated segments' : `its header, encrypted key and IV take more than ${HEAD_MAX} bytes`);
  if (dot3 >= tagStart - 1) throw notCompact('it has fewer than 5 dot-separated segments');

  const aadText = head.subarray(0, dot1).toString('latin1');
  const header = decodeJweHeader(aadText);
  if (header === undefined) throw notCompact('its first segment is not a base64url JSON header with "alg" and "enc"');
  return {
    header,
    aad: Buffer.from(aadText, 'ascii'),
    encryptedKey: segment(head.subarray(dot1 + 1, dot2), 'encrypted key'),
    iv: segment(head.subarray(dot2 + 1, dot3), 'IV'),
    tag: segment(tail.subarray(lastDot + 1, end), 'authentication tag'),
    ciphertextStart: dot3 + 1,
    ciphertextEnd: tagStart - 1,
  };
}

/** The decoded ciphertext, in chunks of at most 768 KiB; one read buffer is reused throughout. */
export async function* ciphertextChunks(handle: FileHandle, jwe: CompactJwe, shown: string, signal: AbortSignal): AsyncGenerator<Buffer> {
  const total = jwe.ciphertextEnd - jwe.ciphertextStart;
  if (total % 4 === 1) throw notCompact('its ciphertext is not base64url');
  const buffer = Buffer.alloc(Math.min(CHUNK_CHARS, total));
  for (let done = 0; done < total;) {
    if (signal.aborted) throw cancelled(signal);
    const length = Math.min(CHUNK_CHARS, total - done);
    await readFullyAt(handle, buffer, length, jwe.ciphertextStart + done, shown);
    const text = buffer.toString('latin1', 0, length);
    // A dot here is a sixth segment; anything else outside the alphabet is damage.
    if (!isBase64url(text)) throw notCompact(text.includes('.') ? 'it has more than 5 dot-separated segments' : 'its ciphertext is not base64url');
    yield Buffer.from(text, 'base64url');
    done += length;
  }
}
