/**
 * Kerberos (SPNEGO) for WebHDFS namenode requests, as upstream does with krbcontext +
 * requests-kerberos: credentials from KERBEROS_KEYTAB for KERBEROS_PRINCIPAL, and a fresh
 * `Authorization: Negotiate <token>` for every namenode request (a SPNEGO token is single-use: the
 * namenode's replay cache refuses it a second time). Datanodes never get a token: the namenode's
 * redirect already carries a delegation token.
 *
 * GSSAPI comes from the optional native `kerberos` module (libgssapi_krb5), loaded only when
 * Kerberos is configured, so that the CLI and its bundle work without it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { authFailed, describeError, invalidInput, StorageError } from '../errors.js';
import { headerValue, type HttpResponse } from '../net/http-client.js';
import type { HdfsKerberos } from '../settings/hdfs.js';

/** The part of the `kerberos` module (mongodb-js, v7) used here. */
interface GssClient {
  step(challenge: string): Promise<string>;
}
interface KerberosModule {
  GSS_MECH_OID_SPNEGO: number;
  initializeClient(service: string, options: { principal?: string; mechOID?: number }): Promise<GssClient>;
}

/** One namenode request's authentication. */
export interface SpnegoExchange {
  /** The `Authorization` header value. */
  readonly authorization: string;
  /** Checks the namenode's mutual-authentication token, when it sent one (`WWW-Authenticate: Negotiate <token>`). */
  verify(headers: HttpResponse['headers']): Promise<void>;
}

export interface Spnego {
  readonly principal: string;
  /** A fresh token for a request to the namenode at `url` (its host names the service principal `HTTP/host`). */
  begin(url: URL): Promise<SpnegoExchange>;
  close(): void;
}

/** Principals in an MIT keytab (format 0x0502, big-endian); undefined when the file is not one we can read. */
export function keytabPrincipals(keytab: Buffer): string[] | undefined {
  if (keytab.length < 2 || keytab[0] !== 0x05 || keytab[1] !== 0x02) return undefined;
  const principals = new Set<string>();
  let at = 2;
  try {
    while (at + 4 <= keytab.length) {
      const size = keytab.readInt32BE(at);
      at += 4;
      if (size <= 0) {
        at += -size; // a hole left by a deleted entry
        continue;
      }
      const end = at + size;
      if (end > keytab.length) return undefined;
      let p = at;
      const counted = (): string => {
        const length = keytab.readUInt16BE(p);
        const text = keytab.toString('utf8', p + 2, p + 2 + length);
        p += 2 + length;
        return text;
      };
      const components = keytab.readUInt16BE(p);
      p += 2;
      const realm = counted();
      const names: string[] = [];
      for (let i = 0; i < components; i++) names.push(counted());
      if (p > end) return undefined;
      principals.add(`${names.join('/')}@${realm}`);
      at = end;
    }
  } catch {
    return undefined; // truncated
  }
  return [...principals];
}

/** Whether the keytab holds the principal; without a realm, any realm matches (the default realm is krb5.conf's). */
function keytabHolds(principals: readonly string[], principal: string): boolean {
  return principal.includes('@') ? principals.includes(principal) : principals.some((p) => p.slice(0, p.lastIndexOf('@')) === principal);
}

/**
 * The one place in the program that writes process.env. MIT GSSAPI has no per-call way to name a
 * client keytab or a credential cache: it reads KRB5_CLIENT_KTNAME and KRB5CCNAME from the
 * environment whenever it needs credentials. Pointing both at our own private files (a temp keytab
 * and an in-process MEMORY cache) keeps the user's default ccache and /etc/krb5.keytab out of it.
 * KRB5_CONFIG is left as it is: KServe mounts krb5.conf and points it there.
 */
function pointGssapiAt(keytabFile: string, ccache: string): void {
  process.env.KRB5_CLIENT_KTNAME = `FILE:${keytabFile}`;
  process.env.KRB5CCNAME = ccache;
}

function loadKerberosModule(): KerberosModule {
  try {
    return createRequire(import.meta.url)('kerberos') as KerberosModule;
  } catch (err) {
    // The module tries its Release build, then its Debug build, and reports only the second
    // failure; the Release build's own error names what is really missing (a GSSAPI library).
    let cause: unknown = err;
    if (/build\/Debug\/kerberos\.node/.test(describeError(err))) {
      try {
        createRequire(import.meta.url)('kerberos/build/Release/kerberos.node');
      } catch (real) {
        cause = real;
      }
    }
    const why = describeError(cause).split('\n')[0] ?? '';
    throw new StorageError('Unsupported', `WebHDFS with Kerberos needs the optional "kerberos" Node module and the system GSSAPI library (libgssapi-krb5-2 on Debian/Ubuntu, krb5-libs on RHEL), which cannot be loaded here (${why}). Install them, or remove KERBEROS_PRINCIPAL and KERBEROS_KEYTAB to use simple authentication (USER_PROXY).`);
  }
}

/** A GSSAPI failure as one line that says what to check. */
function gssError(err: unknown, principal: string, service: string, where: string): StorageError {
  const said = describeError(err).replace(/\s+/g, ' ').trim();
  const detail = said.replace(/^.*?(?:inaccessible|more information): /, '');
  if (/Cannot (?:contact any|find) KDC|Cannot resolve network address for KDC/i.test(said)) {
    return new StorageError('Network', `Kerberos cannot reach a KDC to authenticate ${principal} (${detail}). Check the realm's kdc entries in krb5.conf (KRB5_CONFIG) and that the KDC is reachable from the pod.`, { retryable: true, cause: err });
  }
  if (/Clock skew too great/i.test(said)) {
    return authFailed(`Kerberos refused ${principal}: the clock of this machine and the KDC's differ by more than the allowed skew (${detail}). Fix the node's time synchronisation.`, err);
  }
  if (/Client '.*' not found in Kerberos database/i.test(said)) {
    return authFailed(`Kerberos does not know principal ${principal} (${detail}). Check KERBEROS_PRINCIPAL in ${where} and that the keytab belongs to this realm.`, err);
  }
  if (/Server '?.*'? not found in Kerberos database/i.test(said)) {
    return authFailed(`Kerberos has no service principal for the namenode (${detail}). The namenode host in the URL or HDFS_NAMENODE must be the host of its HTTP/host principal (use its fully qualified name, not an IP address).`, err);
  }
  if (/Preauthentication failed|Password incorrect|Decrypt integrity check failed|Key version number for principal in key table is incorrect/i.test(said)) {
    return authFailed(`Kerberos refused the key in KERBEROS_KEYTAB for ${principal} (${detail}): the keytab is out of date; export it again.`, err);
  }
  if (/Can't find client principal|No key table entry found/i.test(said)) {
    return invalidInput(`KERBEROS_PRINCIPAL ${principal} has no key in KERBEROS_KEYTAB (${where}) (${detail}).`, err);
  }
  return authFailed(`Kerberos authentication of ${principal} for ${service} failed: ${detail}.`, err);
}

/**
 * Prepares Kerberos for one WebHDFS source: checks that the keytab holds the principal, writes it
 * to a private temp file, points GSSAPI at it and loads the `kerberos` module. Throws one clear
 * error for each way this can fail; no message carries the keytab.
 */
export function openSpnego(config: HdfsKerberos): Spnego {
  const { principal, keytab, where } = config;
  const principals = keytabPrincipals(keytab);
  if (keytab.length < 2 || keytab[0] !== 0x05) {
    throw invalidInput(`KERBEROS_KEYTAB in ${where} is not a Kerberos keytab (expected the binary file that kadmin ktadd or ktutil writes${where === 'STORAGE_CONFIG' ? ', base64-encoded' : ''}).`);
  }
  if (principals !== undefined && !keytabHolds(principals, principal)) {
    throw invalidInput(`KERBEROS_PRINCIPAL ${principal} is not in KERBEROS_KEYTAB (${where}), which holds ${principals.length === 0 ? 'no keys' : principals.join(', ')}.`);
  }
  const kerberos = loadKerberosModule();
  const dir = mkdtempSync(path.join(tmpdir(), 'storage-initializer-krb5-'));
  const cleanup = (): void => { rmSync(dir, { recursive: true, force: true }); };
  // The keytab must not outlive the process, even when it ends without closing the source.
  process.once('exit', cleanup);
  const keytabFile = path.join(dir, 'client.keytab');
  try {
    writeFileSync(keytabFile, keytab, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    cleanup();
    throw new StorageError('LocalIO', `cannot write the Kerberos keytab to a private temp file in ${dir}: ${describeError(err)}`, { cause: err });
  }
  pointGssapiAt(keytabFile, `MEMORY:storage-initializer-${process.pid}`);

  return {
    principal,
    async begin(url: URL): Promise<SpnegoExchange> {
      const service = `HTTP@${url.hostname.replace(/^\[|\]$/g, '')}`;
      let client: GssClient;
      let token: string;
      try {
        client = await kerberos.initializeClient(service, { principal, mechOID: kerberos.GSS_MECH_OID_SPNEGO });
        token = await client.step('');
      } catch (err) {
        throw gssError(err, principal, service, where);
      }
      return {
        authorization: `Negotiate ${token}`,
        async verify(headers: HttpResponse['headers']): Promise<void> {
          const answer = /^Negotiate\s+(\S+)/i.exec(headerValue(headers, 'www-authenticate') ?? '')?.[1];
          if (answer === undefined) return;
          try {
            await client.step(answer);
          } catch (err) {
            throw authFailed(`the WebHDFS namenode ${url.host} failed Kerberos mutual authentication (${describeError(err).replace(/\s+/g, ' ')}): it does not hold the key of ${service.replace('@', '/')}.`, err);
          }
        },
      };
    },
    close(): void {
      process.off('exit', cleanup);
      cleanup();
    },
  };
}
