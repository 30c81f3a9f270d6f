// Throw-away certificate authorities for TLS tests, made with the `openssl` CLI.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** PEM files of a CA and of one server certificate it signed. */
export interface TlsFiles {
  /** The CA certificate clients should trust. */
  readonly caCertFile: string;
  /** The CA private key (to issue more certificates with {@link issueCert}). */
  readonly caKeyFile: string;
  /** The server (leaf) certificate. */
  readonly certFile: string;
  /** The server private key. */
  readonly keyFile: string;
}

export interface CaOptions {
  /** Prefix of the file names, so several CAs can share a directory. Default `test`. */
  readonly name?: string;
  /** Subject alternative names of the server certificate. Default `['IP:127.0.0.1', 'DNS:localhost']`. */
  readonly sans?: readonly string[];
  /** Validity in days of the CA and the server certificate. Default 7. */
  readonly days?: number;
}

export const DEFAULT_SANS: readonly string[] = ['IP:127.0.0.1', 'DNS:localhost'];

function openssl(args: readonly string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, timeout: 30_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`openssl ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve();
    });
  });
}

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f; // positive
  return `0x${bytes.toString('hex')}`;
}

function checkName(name: string): void {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`tls: bad file name prefix ${JSON.stringify(name)}`);
}

/**
 * Creates a CA (EC P-256 key + self-signed certificate) and a server certificate for
 * `IP:127.0.0.1, DNS:localhost` (or `options.sans`) signed by it, all as PEM files in `dir`.
 * Each call makes a new, independent CA: a second call (with another `name` or `dir`) gives a CA
 * that clients trusting the first one refuse.
 */
export async function generateCa(dir: string, options: CaOptions = {}): Promise<TlsFiles> {
  const name = options.name ?? 'test';
  checkName(name);
  const days = String(options.days ?? 7);
  await mkdir(dir, { recursive: true });
  const caKeyFile = join(dir, `${name}-ca.key`);
  const caCertFile = join(dir, `${name}-ca.crt`);
  await openssl(
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', caKeyFile, '-out', caCertFile, '-days', days, '-set_serial', serial(),
      '-subj', `/O=storage-initializer tests/CN=${name} test CA`,
      '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      '-addext', 'subjectKeyIdentifier=hash',
    ],
    dir,
  );
  const leaf = await issueCert({ caCertFile, caKeyFile }, dir, {
    name,
    sans: options.sans ?? DEFAULT_SANS,
    days: options.days ?? 7,
  });
  return { caCertFile, caKeyFile, certFile: leaf.certFile, keyFile: leaf.keyFile };
}

/** A second CA + server certificate that no client trusts (for "unknown CA is refused" tests). */
export function generateUntrustedCa(dir: string): Promise<TlsFiles> {
  return generateCa(dir, { name: 'untrusted' });
}

/**
 * Issues another server certificate from an existing CA, e.g. with SANs that do not match
 * 127.0.0.1 (for "hostname mismatch is refused" tests). Files are `<name>.crt`/`<name>.key` in `dir`.
 */
export async function issueCert(
  ca: Pick<TlsFiles, 'caCertFile' | 'caKeyFile'>,
  dir: string,
  options: { readonly name: string; readonly sans?: readonly string[]; readonly days?: number },
): Promise<TlsFiles> {
  checkName(options.name);
  await mkdir(dir, { recursive: true });
  const keyFile = join(dir, `${options.name}-server.key`);
  const csrFile = join(dir, `${options.name}-server.csr`);
  const certFile = join(dir, `${options.name}-server.crt`);
  const extFile = join(dir, `${options.name}-server.ext`);
  const sans = options.sans ?? DEFAULT_SANS;
  await writeFile(
    extFile,
    [
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature, keyEncipherment',
      'extendedKeyUsage = serverAuth',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid, issuer',
      ...(sans.length > 0 ? [`subjectAltName = ${sans.join(', ')}`] : []),
      '',
    ].join('\n'),
  );
  await openssl(
    [
      'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', keyFile, '-out', csrFile, '-subj', `/O=storage-initializer tests/CN=${options.name} server`,
    ],
    dir,
  );
  await openssl(
    [
      'x509', '-req', '-in', csrFile, '-CA', ca.caCertFile, '-CAkey', ca.caKeyFile,
      '-set_serial', serial(), '-days', String(options.days ?? 7), '-extfile', extFile, '-out', certFile,
    ],
    dir,
  );
  return { caCertFile: ca.caCertFile, caKeyFile: ca.caKeyFile, certFile, keyFile };
}

/** Reads the CA certificate PEM (for `ca:` options of https/tls/undici). */
export function readCa(files: Pick<TlsFiles, 'caCertFile'>): Promise<string> {
  return readFile(files.caCertFile, 'utf8');
}
