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
 * Memory: jose decrypts a compact JWE in memory, and on Node 20 the process peaks at about nine
 * times the file's size (the file as a string, jose's base64url decoding copies, WebCrypto's input
 * and output): measured with the CLI, 355 MiB for a 32 MiB JWE file, 647 MiB for 64 MiB, 838 MiB
 * for 96 MiB. Files over `maxFileBytes` (default 64 MiB, leaving room under KServe's 1 GiB limit
 * for the storage clients) are refused with a clear error instead of ending in an out-of-memory kill.
 */
import { constants } from 'node:fs';
import { open, readdir, rename, rm, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { compactDecrypt } from 'jose';
import { describeError, errorCode, invalidInput, localIO, StorageError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Settings } from '../settings/settings.js';
import { cancelled } from '../transfer/retry.js';
import { PART_SUFFIX } from '../transfer/file-job.js';
import { fetchKeyFromCdh } from './jwe-cdh.js';
import { classifyKey, CONTENT_ENCRYPTION_ALGORITHMS, KEY_MANAGEMENT_ALGORITHMS, keyForHeader, type JweHeader, type KeyMaterial } from './jwe-key.js';

const JWE_SUFFIX = /\.jwe$/i;
/** The first read of a file without the suffix; a header that needs more is read up to HEADER_MAX. */
const SNIFF_BYTES = 4096;
const HEADER_MAX = 64 * 1024;

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

/** The protected header of a compact JWE from its first bytes, or undefined if they are not one. */
export function parseJweHeader(prefix: Buffer): JweHeader | undefined {
  const dot = prefix.indexOf(0x2e);
  if (dot <= 0) return undefined;
  const encoded = prefix.subarray(0, dot).toString('latin1');
  if (!/^[A-Za-z0-9_-]+$/.test(encoded)) return undefined;
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof header !== 'object' || header === null) return undefined;
  const { alg, enc } = header as Record<string, unknown>;
  return typeof alg === 'string' && typeof enc === 'string' ? { alg, enc } : undefined;
}

/** Whether a file without the `.jwe` suffix holds a compact JWE; reads at most HEADER_MAX bytes. */
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
    if (!prefix.includes(0x2e) && prefix.length === SNIFF_BYTES) prefix = await readPrefix(handle, HEADER_MAX);
    return parseJweHeader(prefix) !== undefined;
  } finally {
    await handle.close();
  }
}

/** Every JWE file under dest, found without following symbolic links. */
export async function findJweFiles(dest: string, signal: AbortSignal): Promise<JweFile[]> {
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

function decryptionError(jwe: JweFile, text: string, err: unknown): StorageError {
  if (err instanceof StorageError) return new StorageError(err.kind, `cannot decrypt ${jwe.shown}: ${err.message}`, { cause: err });
  const code = errorCode(err);
  let reason = err instanceof Error ? err.message : String(err);
  if (code === 'ERR_JWE_DECRYPTION_FAILED') {
    reason = 'decryption failed: the key from the Confidential Data Hub is not the one it was encrypted with, or the file was altered';
  } else if (code === 'ERR_JOSE_ALG_NOT_ALLOWED') {
    const header = parseJweHeader(Buffer.from(text.slice(0, HEADER_MAX), 'latin1'));
    const used = header === undefined ? 'an algorithm' : KEY_MANAGEMENT_ALGORITHMS.includes(header.alg) ? `enc ${header.enc}` : `alg ${header.alg}`;
    reason = `it uses ${used}, which is not supported (supported: alg ${KEY_MANAGEMENT_ALGORITHMS.join(', ')}; enc ${CONTENT_ENCRYPTION_ALGORITHMS.join(', ')})`;
  } else if (code === 'ERR_JWE_INVALID' || code === 'ERR_JOSE_NOT_SUPPORTED') {
    reason = `it is not a valid compact JWE (${reason})`;
  }
  return new StorageError(code === 'ERR_JWE_DECRYPTION_FAILED' ? 'Integrity' : 'InvalidInput', `cannot decrypt ${jwe.shown}: ${reason}`, { cause: err });
}

async function decryptOne(jwe: JweFile, material: KeyMaterial, maxFileBytes: number): Promise<number> {
  let handle: FileHandle;
  try {
    handle = await open(jwe.file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    throw localIO(`cannot read ${jwe.shown}: ${describeError(err)}`, err);
  }
  let text: string;
  let mode: number;
  try {
    const stat = await handle.stat();
    if (stat.size > maxFileBytes) {
      throw invalidInput(`refusing to decrypt ${jwe.shown}: it is ${stat.size} bytes, over the ${maxFileBytes}-byte limit for JWE files (decryption happens in memory and needs about 9x the file's size; raise STORAGE_INITIALIZER_JWE_MAX_BYTES only with the pod's memory limit)`);
    }
    mode = stat.mode & 0o777;
    text = (await handle.readFile('latin1')).trimEnd(); // tools often end the file with a newline
  } finally {
    await handle.close();
  }

  let plaintext: Uint8Array;
  try {
    ({ plaintext } = await compactDecrypt(text, (header) => keyForHeader(material, header), {
      keyManagementAlgorithms: KEY_MANAGEMENT_ALGORITHMS,
      contentEncryptionAlgorithms: CONTENT_ENCRYPTION_ALGORITHMS,
      maxDecompressedLength: maxFileBytes,
    }));
  } catch (err) {
    throw decryptionError(jwe, text, err);
  }

  const part = `${jwe.target}${PART_SUFFIX}`;
  try {
    await rm(part, { force: true });
    const out = await open(part, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
    try {
      await out.writeFile(plaintext);
    } finally {
      await out.close();
    }
    await rename(part, jwe.target);
    if (jwe.target !== jwe.file) await unlink(jwe.file);
  } catch (err) {
    await rm(part, { force: true });
    throw localIO(`cannot write the decrypted ${path.basename(jwe.target)} (from ${jwe.shown}): ${describeError(err)}`, err);
  }
  return plaintext.length;
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
      bytes += await decryptOne(jwe, material, confidential.maxFileBytes);
      log.debug(`decrypted ${jwe.shown}`);
    }
    log.info(`decrypted ${files.length} files`);
    return { files: files.length, bytes };
  } finally {
    key.fill(0); // best effort: the key does not outlive its use in this buffer
  }
}
