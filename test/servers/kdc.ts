// A real MIT Kerberos KDC (Debian krb5-kdc) for one test file: a fresh realm database in a temp dir,
// `krb5kdc -n` on a free port (UDP and TCP), principals and keytabs made with `kadmin.local`.
//
// Nothing is written outside the temp dir: every Kerberos program gets KRB5_CONFIG and
// KRB5_KDC_PROFILE pointing at the generated krb5.conf and kdc.conf, never /etc. Host names are
// taken literally (rdns = false, dns_canonicalize_hostname = false), so a service principal
// `HTTP/localhost` matches a URL whose host is `localhost`.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { exited, killChild, killProcess, track } from './children.js';
import { freePort, retryOnPortClash } from './ports.js';

export const TEST_REALM = 'TEST.REALM';

export interface Kdc {
  readonly realm: string;
  readonly port: number;
  /** The temp dir holding the database, the configuration and the keytabs; removed by stop(). */
  readonly dir: string;
  /** krb5.conf for clients of this KDC: give it as KRB5_CONFIG. */
  readonly krb5Config: string;
  /** The environment the Kerberos tools run with (KRB5_CONFIG, KRB5_KDC_PROFILE). */
  readonly env: Readonly<Record<string, string>>;
  /** A krb5.conf for this realm whose KDC is at another port (nothing listening there: a KDC that is down). */
  clientConfig(port: number): string;
  /** Adds a principal with a random key (`user@REALM`, `HTTP/localhost@REALM`). */
  addPrincipal(principal: string): Promise<void>;
  deletePrincipal(principal: string): Promise<void>;
  /**
   * Writes the principal's keys to a new keytab file and returns its path. kadmin's ktadd gives the
   * principal a new random key each time, so an older keytab of the same principal goes stale.
   */
  exportKeytab(principal: string, name: string): Promise<string>;
  stop(): Promise<void>;
}

function run(command: string, args: string[], env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { env, timeout: 30_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} ${args.join(' ')} failed: ${stderr.trim() || err.message}`, { cause: err }));
      else resolve(stdout);
    });
  });
}

function krb5Conf(port: number): string {
  return `[libdefaults]
 default_realm = ${TEST_REALM}
 rdns = false
 dns_canonicalize_hostname = false
 dns_lookup_kdc = false
 dns_lookup_realm = false
 ignore_acceptor_hostname = false
 udp_preference_limit = 1
 max_retries = 1
 kdc_timeout = 3s
[realms]
 ${TEST_REALM} = {
  kdc = 127.0.0.1:${port}
 }
[domain_realm]
 localhost = ${TEST_REALM}
`;
}

/** Resolves once something accepts TCP connections on the port. */
async function waitForPort(port: number, child: ChildProcess, log: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => { socket.destroy(); resolve(true); });
      socket.on('error', () => { resolve(false); });
    });
    if (open) return;
    if (exited(child)) {
      const said = await readFile(log, 'utf8').catch(() => '');
      throw new Error(`krb5kdc exited before listening on ${port}: ${said.trim().split('\n').slice(-3).join(' | ')}`);
    }
    if (Date.now() > deadline) throw new Error(`krb5kdc did not listen on ${port} within ${timeoutMs} ms`);
    await sleep(50);
  }
}

export async function startKdc(): Promise<Kdc> {
  const dir = await mkdtemp(join(tmpdir(), 'si-kdc-'));
  const krb5Config = join(dir, 'krb5.conf');
  const kdcProfile = join(dir, 'kdc.conf');
  const database = join(dir, 'principal');
  const log = join(dir, 'kdc.log');
  const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', KRB5_CONFIG: krb5Config, KRB5_KDC_PROFILE: kdcProfile };
  const kadmin = (query: string): Promise<string> => run('kadmin.local', ['-r', TEST_REALM, '-d', database, '-q', query], env);

  try {
    await writeFile(join(dir, 'kadm5.acl'), '');
    const writeConfigs = async (port: number): Promise<void> => {
      await writeFile(krb5Config, krb5Conf(port));
      await writeFile(kdcProfile, `[kdcdefaults]
 kdc_ports = ${port}
 kdc_tcp_ports = ${port}
[realms]
 ${TEST_REALM} = {
  database_name = ${database}
  key_stash_file = ${join(dir, 'stash')}
  acl_file = ${join(dir, 'kadm5.acl')}
  max_life = 1h
  supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
 }
[logging]
 kdc = FILE:${log}
`);
    };
    const start = async (): Promise<{ child: ChildProcess; port: number }> => {
      const port = await freePort();
      await writeConfigs(port);
      const child = spawn('krb5kdc', ['-n', '-r', TEST_REALM], { env, stdio: 'ignore' });
      track(child, killProcess);
      try {
        await waitForPort(port, child, log, 10_000);
      } catch (err) {
        await killChild(child, killProcess);
        throw err;
      }
      return { child, port };
    };
    // The database and its stash file go where kdc.conf says (the temp dir), not to /etc/krb5kdc.
    await writeConfigs(0);
    await run('kdb5_util', ['create', '-s', '-r', TEST_REALM, '-P', 'kdc-master-pass', '-d', database], env);
    const { child, port } = await retryOnPortClash(start, /Address already in use|exited before listening/);

    let stopped = false;
    return {
      realm: TEST_REALM,
      port,
      dir,
      krb5Config,
      env,
      clientConfig: (otherPort) => krb5Conf(otherPort),
      async addPrincipal(principal) { await kadmin(`addprinc -randkey ${principal}`); },
      async deletePrincipal(principal) { await kadmin(`delprinc -force ${principal}`); },
      async exportKeytab(principal, name) {
        const file = join(dir, name);
        await kadmin(`ktadd -k ${file} ${principal}`);
        return file;
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await killChild(child, killProcess);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
