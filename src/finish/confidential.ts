/**
 * Confidential models: after download, every JWE file in DEST is decrypted in place with the key
 * the Confidential Data Hub releases (CONFIDENTIAL_ENABLED / CONFIDENTIAL_RESOURCE_ID / CDH_ADDR).
 *
 * A JWE file is one named `*.jwe`, or one whose content is a compact JWE (it starts with `eyJ` and
 * its first segment is a JSON header with "alg" and "enc"); only its first bytes are read to tell.
 * `NAME.jwe` becomes `NAME`; a JWE without the suffix keeps its name. The plaintext goes to
 * `NAME.part` and is renamed into place only when complete, so a failure leaves the JWE file and
 * nothing that looks decrypted. The walk never follows a symbolic link (a local source's links
 * point at a shared volume that is not ours to rewrite).
 *
 * Memory: decryption streams (jwe-stream.ts reads the file in 1 MiB chunks, jwe-content.ts
 * decrypts chunk by chunk, the plaintext is written as it comes), so memory does not grow with a
 * file's size: the CLI downloading and decrypting a 1 GiB JWE file peaks at about 150 MiB RSS (the
 * end-to-end test bounds it). Both content algorithms know the tag matched only at the end of
 * the stream: until then the plaintext in `.part` is unauthenticated, and it is renamed into place
 * only after the check passed.
 */
import { constants } from 'node:fs';
import { open, readdir, rename, rm, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { describeError, integrity, localIO, StorageError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Settings } from '../settings/settings.js';
import { cancelled } from '../transfer/retry.js';
import { PART_SUFFIX } from '../transfer/file-job.js';
import { fetchKeyFromCdh } from './jwe-cdh.js';
import { contentKey } from './jwe-cek.js';
import { contentDecipher } from './jwe-content.js';
import { checkSupported, parseJweHeader } from './jwe-header.js';
import { classifyKey, keyForHeader, type KeyMaterial } from './jwe-key.js';
import { ciphertextChunks, HEAD_MAX, readCompactJwe } from './jwe-stream.js';

const JWE_SUFFIX = /\.jwe$/i;
/** The first read of a file without the suffix; a header that needs more is read up to HEAD_MAX. */
const SNIFF_BYTES = 4096;

interface JweFile {
  /** Absolute path of the encrypted file. */
  file: string;
  /** Path relative to DEST, for messages. */
  shown: string;
  /** Where the plaintext ends up. */
  target: string;
}

async function readPrefix(handle: FileHandle, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await handle.read(buffer, 0, length, 0);
  return buffer.subarray(0, bytesRead);
}

/** Whether a file without the `.jwe` suffix holds a compact JWE; reads at most HEAD_MAX bytes. */
async function looksLikeJwe(file: string): Promise<boolean> {
  let handle: FileHandle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    throw localIO(`cannot read ${file}: ${describeError(err)}`, err);
  }
  try {
    let prefix = await readPrefix(handle, SNIFF_BYTES);
    if (prefix.subarray(0, 3).toString('latin1') !== 'eyJ') return false;
    if (!prefix.includes(0x2e) && prefix.length === SNIFF_BYTES) prefix = await readPrefix(handle, HEAD_MAX);
    return parseJweHeader(prefix) !== undefined;
  } finally {
    await handle.close();
  }
}

/** Every JWE file under dest, found without following symbolic links. */
async function findJweFiles(dest: string, signal: AbortSignal): Promise<JweFile[]> {
  const root = path.resolve(dest);
  const found: JweFile[] = [];
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      throw localIO(`cannot list ${dir}: ${describeError(err)}`, err);
    }
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (signal.aborted) throw cancelled(signal);
      const full = path.join(dir, entry.name);
      // Dirent types come from lstat: a link is reported as a link and never entered or read.
      if (entry.isDirectory()) {
        await walk(full);
        continue;
      }
      if (!entry.isFile() || entry.name.endsWith(PART_SUFFIX)) continue;
      const shown = path.relative(root, full);
      const stripped = entry.name.replace(JWE_SUFFIX, '');
      if (stripped !== entry.name && stripped !== '') {
        found.push({ file: full, shown, target: path.join(dir, stripped) });
      } else if (await looksLikeJwe(full)) {
        found.push({ file: full, shown, target: full });
      }
    }
  };
  await walk(root);
  return found;
}

/** Writes all of `bytes` (a write to a file may be partial). */
async function writeAll(out: FileHandle, bytes: Buffer): Promise<void> {
  for (let done = 0; done < bytes.length;) done += (await out.write(bytes, done, bytes.length - done)).bytesWritten;
}

/**
 * Decrypts one file to `NAME.part` and renames it into place once the tag checked out. Errors of
 * the JWE itself (format, algorithms, key, tag) are prefixed with the file; LocalIO errors already
 * name what could not be read or written.
 */
async function decryptOne(jwe: JweFile, material: KeyMaterial, signal: AbortSignal): Promise<number> {
  let input: FileHandle;
  try {
    input = await open(jwe.file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    throw localIO(`cannot read ${jwe.shown}: ${describeError(err)}`, err);
  }
  const part = `${jwe.target}${PART_SUFFIX}`;
  const written = `the decrypted ${path.basename(jwe.target)} (from ${jwe.shown})`;
  let out: FileHandle | undefined;
  let cek: Buffer | undefined;
  let bytes = 0;
  try {
    const stat = await input.stat();
    const compact = await readCompactJwe(input, stat.size, jwe.shown);
    checkSupported(compact.header);
    cek = contentKey(compact.header, keyForHeader(material, compact.header), compact.encryptedKey);
    const decipher = contentDecipher(compact.header.enc, cek, compact.iv, compact.tag, compact.aad);
    try {
      await rm(part, { force: true });
      out = await open(part, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, stat.mode & 0o777);
    } catch (err) {
      throw localIO(`cannot write ${written}: ${describeError(err)}`, err);
    }
    const write = async (plaintext: Buffer): Promise<void> => {
      try {
        await writeAll(out as FileHandle, plaintext);
      } catch (err) {
        throw localIO(`cannot write ${written}: ${describeError(err)}`, err);
      }
      bytes += plaintext.length;
    };
    for await (const chunk of ciphertextChunks(input, compact, jwe.shown, signal)) await write(decipher.update(chunk));
    await write(decipher.final()); // throws unless the tag matched: nothing below runs for an altered file
    try {
      await out.close();
      out = undefined;
      await rename(part, jwe.target);
      if (jwe.target !== jwe.file) await unlink(jwe.file);
    } catch (err) {
      throw localIO(`cannot write ${written}: ${describeError(err)}`, err);
    }
  } catch (err) {
    await out?.close().catch(() => undefined);
    await rm(part, { force: true });
    if (err instanceof StorageError && (err.kind === 'LocalIO' || err.kind === 'Cancelled')) throw err;
    if (err instanceof StorageError) throw new StorageError(err.kind, `cannot decrypt ${jwe.shown}: ${err.message}`, { cause: err });
    // Not expected: every crypto call above maps its failures. Kept free of the raw message, which could come from key parsing.
    throw integrity(`cannot decrypt ${jwe.shown}: decryption failed (${err instanceof Error ? err.name : 'error'})`);
  } finally {
    cek?.fill(0);
    await input.close();
  }
  return bytes;
}

export interface DecryptResult {
  files: number;
  bytes: number;
}

/** Decrypts every JWE file under dest in place; asks the CDH for the key only if there is one. */
export async function decryptModelFiles(dest: string, settings: Settings, log: Logger, signal: AbortSignal): Promise<DecryptResult> {
  const confidential = settings.confidential;
  const files = await findJweFiles(dest, signal);
  if (files.length === 0) {
    log.info(`decrypted 0 files: no JWE file found in ${dest}`);
    return { files: 0, bytes: 0 };
  }
  log.debug(`decrypting ${files.length} JWE file(s) with the key ${confidential.resource?.id ?? ''} from the Confidential Data Hub`);
  const key = await fetchKeyFromCdh({
    confidential,
    net: settings.net,
    readTimeoutMs: settings.transfer.idleTimeoutMs,
    maxAttempts: settings.transfer.maxAttempts,
    log,
    signal,
  });
  try {
    const material = classifyKey(key);
    let bytes = 0;
    for (const jwe of files) {
      if (signal.aborted) throw cancelled(signal);
      bytes += await decryptOne(jwe, material, signal);
      log.debug(`decrypted ${jwe.shown}`);
    }
    log.info(`decrypted ${files.length} files`);
    return { files: files.length, bytes };
  } finally {
    key.fill(0); // best effort: the key does not outlive its use in this buffer
  }
}
