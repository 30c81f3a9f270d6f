// OpenStack Swift 2.30 (Debian packages swift swift-proxy swift-object swift-container
// swift-account memcached) with the s3api and tempauth middlewares, run entirely inside a temp dir,
// for S3 tests against a server that checks SigV4 like AWS does.
//
// Layout of the temp dir (its path is in every child's command line, so `pgrep -f DIR` finds them):
//   swift.conf (hash prefix/suffix, policy 0), {object,container,account,proxy}-server.conf,
//   {object,container,account}.ring.gz (+ .builder): part power 6, 1 replica, one device
//   r1z1-127.0.0.1:PORT/d1 each, i.e. `swift-ring-builder X.builder create 6 1 1; add
//   r1z1-127.0.0.1:PORT/d1 100; rebalance`, done with swift's RingBuilder inside the supervisor
//   (0.6 s instead of ~4.5 s for the nine CLI invocations),
//   node/d1/ (the device; mount_check = false), memcached.pid.
// Children, each the leader of its own process group, in the foreground (workers = 0, `user` = the
// current user, `root` in CI): memcached on its own port (exec'd through a tiny python wrapper that
// sets PR_SET_PDEATHSIG) and the supervisor below, which forks the four servers. They die with this
// process even when it is SIGKILLed; a normal exit without stop() kills them too.
// startSwift() resolves once a signed ListBuckets succeeds (the healthcheck answers earlier).
// Timing here (2 vCPU): 5 s from call to first successful S3 call on an idle machine, 7-11 s at
// load average 7-10 (other test suites running); nearly all of it is the proxy's run_wsgi before
// it binds (rings + imports take 0.7 s). stop() ~50 ms.
//
// Account `test:tester`, key `testing` (tempauth `user_test_tester = testing .admin`), region
// us-east-1 (s3api `location`). Path-style addressing only (no storage_domain).
//
// What Swift 2.30 s3api does (seen here, with @aws-sdk/client-s3 3.1175):
// - SigV4 is checked: a wrong secret gives 403 SignatureDoesNotMatch, an unknown key 403
//   InvalidAccessKeyId. Presigned URLs (query auth) work.
// - Unsigned (anonymous) S3 requests are not S3 requests to s3api: they fall through to Swift's
//   native API, which answers `/bucket/key` with 400 and `/bucket?list-type=2` with 412, public or
//   not. PutBucketAcl `public-read` is accepted and maps to the container ACL
//   `X-Container-Read: .r:*,.rlistings` (GetBucketAcl still shows only the owner's FULL_CONTROL):
//   the object is then readable anonymously through the Swift URL
//   `${swiftUrl}/<bucket>/<key>` (200; a private bucket gives 401), never through the S3 path.
//   So neither server here can express "anonymous S3 access to a public bucket works".
// - Streaming aws-chunked uploads are refused: upload Buffers with
//   requestChecksumCalculation: 'WHEN_REQUIRED'.
// - ETag: quoted hex MD5 for single PUTs; real multipart ETags `"<md5 of part md5s>-<n>"`
//   (objects are SLO manifests with segments in a hidden `<bucket>+segments` container).
//   Parts smaller than 5 MiB (except the last) are refused at CompleteMultipartUpload.
//   HeadObject of a multipart object reports Content-Type application/xml unless one was given at
//   CreateMultipartUpload; HeadObject with PartNumber gives 405.
// - No flexible checksums: x-amz-checksum-* on PUT is accepted and ignored; GET/HEAD never return
//   x-amz-checksum-* (also with x-amz-checksum-mode: ENABLED), so the SDK validates nothing.
// - Ranges are right: `bytes=-100` on 5 bytes gives 206 `bytes 0-4/5`; start past the end 416.
// - ListObjectsV2 pagination works (MaxKeys, NextContinuationToken, StartAfter, Delimiter),
//   EncodingType=url is echoed. Bucket names must be 3-63 DNS-compatible characters
//   (`ck` -> 400 InvalidBucketName). LastModified has whole seconds.
// - 0-byte keys ending in '/' are stored and listed as ordinary objects.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { exited, killGroup, track, waitExit } from './children.js';
import { freePort, retryOnPortClash } from './ports.js';

export const SWIFT_ACCESS_KEY_ID = 'test:tester';
export const SWIFT_SECRET_ACCESS_KEY = 'testing';
export const SWIFT_REGION = 'us-east-1';

export interface SwiftServer {
  /** S3 endpoint, `http://127.0.0.1:PORT` (path-style). */
  readonly endpoint: string;
  readonly accessKeyId: typeof SWIFT_ACCESS_KEY_ID;
  readonly secretAccessKey: typeof SWIFT_SECRET_ACCESS_KEY;
  readonly region: string;
  /** Swift native API of the test account, `http://127.0.0.1:PORT/v1/AUTH_test` (anonymous reads of public-read buckets). */
  readonly swiftUrl: string;
  /** The temp dir holding configs, rings and data; removed by stop(). */
  readonly dir: string;
  /** Process ids of memcached and the four servers (each leads its own process group). */
  readonly pids: readonly number[];
  /** Milliseconds from startSwift() to the first successful S3 call. */
  readonly startupMs: number;
  /** Output of the children (last 64 KiB each), for failure messages. */
  logs(): string;
  /** SIGKILL every process group it started, wait for the exits, remove `dir`. Idempotent. */
  stop(): Promise<void>;
}

export interface SwiftOptions {
  /** How long to wait for the first successful S3 call. Default 30 s. */
  readonly startTimeoutMs?: number;
}

const SERVERS = ['object', 'container', 'account'] as const;

// One Python process ("supervisor", argv: <parent pid> <dir> object:PORT container:PORT account:PORT)
// builds the three rings with swift's RingBuilder, imports what the servers need once, then forks
// one child per server that runs swift's own run_wsgi(conf, '<name>-server') exactly as the
// swift-<name>-server scripts do. Importing once and forking costs a quarter of the CPU of four
// separate interpreters. Every process
// has PR_SET_PDEATHSIG, so all die with their parent even on SIGKILL; when one server exits, the
// supervisor kills the whole process group.
const SUPERVISOR = `
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(1, signal.SIGKILL)
if os.getppid() != int(sys.argv[1]):
    os._exit(1)
swift_dir = sys.argv[2]
from swift.common.ring import RingBuilder
for spec in sys.argv[3:]:
    name, port = spec.split(':')
    b = RingBuilder(6, 1, 1)
    b.add_dev({'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': int(port), 'device': 'd1', 'weight': 100.0})
    b.rebalance()
    b.get_ring().save(os.path.join(swift_dir, name + '.ring.gz'))
    b.save(os.path.join(swift_dir, name + '.builder'))
import pkg_resources
from swift.common.wsgi import run_wsgi
from swift.obj import server as object_server
import swift.container.server, swift.account.server, swift.proxy.server
import swift.common.middleware.s3api.s3api, swift.common.middleware.tempauth
sys.stdout.flush()
sys.stderr.flush()
children = {}
for name in ('object', 'container', 'account', 'proxy'):
    pid = os.fork()
    if pid == 0:
        libc.prctl(1, signal.SIGKILL)
        kwargs = {'verbose': True}
        if name == 'object':
            kwargs['global_conf_callback'] = object_server.global_conf_callback
        code = 1
        try:
            code = run_wsgi(os.path.join(swift_dir, name + '-server.conf'), name + '-server', **kwargs) or 0
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    children[pid] = name
pid, status = os.wait()
print('swift %s-server exited (wait status %d)' % (children.get(pid, '?'), status), file=sys.stderr, flush=True)
os.killpg(0, signal.SIGKILL)
`;

// argv: <expected parent pid> <program> <args...>. Dies with the parent (PR_SET_PDEATHSIG = 1).
const PDEATHSIG_WRAPPER = `
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
if os.getppid() != int(sys.argv[1]):
    os._exit(1)
os.execv(sys.argv[2], sys.argv[2:])
`;

function binary(name: string): string {
  for (const dir of ['/usr/bin', '/usr/local/bin', '/usr/sbin']) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  throw new Error(
    `swift: ${name} not found; install the Debian packages swift swift-proxy swift-object swift-container ` +
      'swift-account memcached (scripts/install-system-deps.sh)',
  );
}

/** The interpreter of swift's scripts (the Debian python3 that has the `swift` module). */
function swiftPython(ringBuilder: string): string {
  const first = readFileSync(ringBuilder, 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\s*(\S+)/.exec(first);
  return m?.[1] ?? '/usr/bin/python3';
}

function serverConf(o: { dir: string; name: string; port: number; user: string }): string {
  return `# generated by test/servers/swift.ts
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = ${o.port}
workers = 0
user = ${o.user}
swift_dir = ${o.dir}
devices = ${join(o.dir, 'node')}
mount_check = false
disable_fallocate = true
log_name = ${o.name}-server
log_level = WARNING

[pipeline:main]
pipeline = ${o.name}-server

[app:${o.name}-server]
use = egg:swift#${o.name}

[${o.name}-replicator]
[${o.name}-updater]
[${o.name}-auditor]
`;
}

function proxyConf(o: { dir: string; port: number; memcachePort: number; user: string }): string {
  // Section name -> egg entry point, for the filters that need no options.
  const plain: readonly (readonly [string, string])[] = [
    ['catch_errors', 'catch_errors'], ['gatekeeper', 'gatekeeper'], ['healthcheck', 'healthcheck'],
    ['proxy-logging', 'proxy_logging'], ['listing_formats', 'listing_formats'], ['bulk', 'bulk'],
    ['tempurl', 'tempurl'], ['ratelimit', 'ratelimit'], ['copy', 'copy'], ['container-quotas', 'container_quotas'],
    ['account-quotas', 'account_quotas'], ['slo', 'slo'], ['dlo', 'dlo'], ['versioned_writes', 'versioned_writes'],
    ['symlink', 'symlink'],
  ];
  return `# generated by test/servers/swift.ts
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = ${o.port}
workers = 0
user = ${o.user}
swift_dir = ${o.dir}
log_name = proxy-server
log_level = WARNING

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempurl ratelimit s3api tempauth copy container-quotas account-quotas slo dlo versioned_writes symlink proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

${plain.map(([section, entry]) => `[filter:${section}]\nuse = egg:swift#${entry}\n`).join('')}
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:${o.memcachePort}

[filter:s3api]
use = egg:swift#s3api
location = ${SWIFT_REGION}

[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = ${SWIFT_SECRET_ACCESS_KEY} .admin
`;
}

const SWIFT_CONF = `# generated by test/servers/swift.ts
[swift-hash]
swift_hash_path_suffix = storage-initializer-tests
swift_hash_path_prefix = storage-initializer-tests

[storage-policy:0]
name = Policy-0
default = yes
`;

// SIGKILL straight away: in single-process mode (workers = 0) the swift servers often ignore
// SIGTERM for seconds, and nothing they hold needs flushing (the temp dir is deleted next).
async function killAll(children: readonly ChildProcess[]): Promise<void> {
  const running = children.filter((c) => !exited(c));
  for (const c of running) killGroup(c, 'SIGKILL');
  await Promise.all(running.map((c) => waitExit(c, 5000)));
}

/** Starts Swift (4 servers + memcached) on free 127.0.0.1 ports; resolves once S3 answers. */
export function startSwift(options: SwiftOptions = {}): Promise<SwiftServer> {
  return retryOnPortClash(() => startOnce(options), /Address already in use|EADDRINUSE|failed to listen/i);
}

async function startOnce(options: SwiftOptions): Promise<SwiftServer> {
  const started = Date.now();
  const ringBuilder = binary('swift-ring-builder');
  const python = swiftPython(ringBuilder);
  const memcached = binary('memcached');
  for (const name of [...SERVERS, 'proxy']) binary(`swift-${name}-server`); // installed?
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const user = isRoot ? 'root' : userInfo().username;

  const dir = await mkdtemp(join(tmpdir(), 'swift-test-'));
  const children: ChildProcess[] = [];
  const outputs = new Map<string, string>();
  const logs = (): string => [...outputs].map(([name, out]) => `--- ${name}\n${out}`).join('\n');
  try {
    await mkdir(join(dir, 'node', 'd1'), { recursive: true });
    const ports = {
      object: await freePort(),
      container: await freePort(),
      account: await freePort(),
      proxy: await freePort(),
      memcached: await freePort(),
    };
    await writeFile(join(dir, 'swift.conf'), SWIFT_CONF);
    for (const name of SERVERS) {
      await writeFile(join(dir, `${name}-server.conf`), serverConf({ dir, name, port: ports[name], user }));
    }
    await writeFile(
      join(dir, 'proxy-server.conf'),
      proxyConf({ dir, port: ports.proxy, memcachePort: ports.memcached, user }),
    );

    const register = (name: string, child: ChildProcess): void => {
      children.push(child);
      track(child, killGroup); // every child is spawned detached (a group leader)
      outputs.set(name, '');
      const append = (chunk: Buffer): void => {
        let out = (outputs.get(name) ?? '') + chunk.toString('utf8');
        if (out.length > 65_536) out = out.slice(-65_536);
        outputs.set(name, out);
      };
      child.stdout?.on('data', append);
      child.stderr?.on('data', append);
      child.once('error', (err) => {
        append(Buffer.from(`spawn error: ${err.message}\n`));
      });
    };
    const launch = (name: string, program: string, args: readonly string[]): void => {
      const child = spawn(python, ['-c', PDEATHSIG_WRAPPER, String(process.pid), program, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
        cwd: dir,
      });
      register(name, child);
    };

    launch('memcached', memcached, [
      '-l', '127.0.0.1', '-p', String(ports.memcached), '-U', '0', '-m', '64', '-c', '256',
      '-P', join(dir, 'memcached.pid'), ...(isRoot ? ['-u', 'root'] : []),
    ]);
    // The supervisor's command line holds `dir`, so `pgrep -f dir` finds it and its forks.
    const supervisor = spawn(
      python,
      ['-c', SUPERVISOR, String(process.pid), dir, ...SERVERS.map((n) => `${n}:${ports[n]}`)],
      { stdio: ['ignore', 'pipe', 'pipe'], detached: true, cwd: dir },
    );
    register('swift', supervisor);

    const endpoint = `http://127.0.0.1:${ports.proxy}`;
    const probe = new S3Client({
      endpoint,
      region: SWIFT_REGION,
      forcePathStyle: true,
      credentials: { accessKeyId: SWIFT_ACCESS_KEY_ID, secretAccessKey: SWIFT_SECRET_ACCESS_KEY },
      maxAttempts: 1,
    });
    const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
    let lastProbeError = '';
    try {
      for (;;) {
        const dead = children.find(exited);
        if (dead) {
          throw new Error(`swift: a child exited (${String(dead.exitCode ?? dead.signalCode)}) during start-up:\n${logs()}`);
        }
        try {
          await probe.send(new ListBucketsCommand({}), { abortSignal: AbortSignal.timeout(2000) });
          break;
        } catch (err) {
          lastProbeError = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
        }
        if (Date.now() > deadline) {
          throw new Error(`swift: no successful S3 call within the timeout (last: ${lastProbeError}):\n${logs()}`);
        }
        await sleep(100);
      }
    } finally {
      probe.destroy();
    }

    const startupMs = Date.now() - started;
    let stopping: Promise<void> | undefined;
    return {
      endpoint,
      accessKeyId: SWIFT_ACCESS_KEY_ID,
      secretAccessKey: SWIFT_SECRET_ACCESS_KEY,
      region: SWIFT_REGION,
      swiftUrl: `${endpoint}/v1/AUTH_test`,
      dir,
      pids: children.map((c) => c.pid ?? -1),
      startupMs,
      logs,
      stop: () => {
        stopping ??= (async () => {
          await killAll(children);
          await rm(dir, { recursive: true, force: true });
        })();
        return stopping;
      },
    };
  } catch (err) {
    await killAll(children);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
