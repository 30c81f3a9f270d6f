// Runs the Debian `nginx` binary as a child process serving a directory, for HTTP(S) download tests.
//
// Locations (every one except /forbidden/ and /html/ serves files from `root`, i.e. `/auth/a/b.bin`
// is `<root>/a/b.bin`):
//   /<path>            the file, with Range support
//   /auth/<path>       Basic auth: user `model`, password `s3cr3t-pass` (401 otherwise)
//   /bearer/<path>     requires `Authorization: Bearer tok-123` (401 otherwise)
//   /forbidden/<any>   403
//   /html/<any>        200 text/html login page (what a misconfigured proxy or SSO wall answers)
//   /redirect/<path>   302 to /<path> (query string kept)
//   /norange/<path>    the file, Range ignored (always 200 with the whole body)
//   /slow/<path>       the file at `slowRate` bytes/s (default 1m; nginx sends the first second's worth at once)
//   /__ready           204 (used to wait for the server)
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { exited, killChild, killProcess, track } from './children.js';
import { freePort, retryOnPortClash } from './ports.js';
import type { TlsFiles } from './tls.js';

export const NGINX_BASIC_USER = 'model';
export const NGINX_BASIC_PASSWORD = 's3cr3t-pass';
export const NGINX_BEARER_TOKEN = 'tok-123';
export const NGINX_HTML_PAGE =
  '<!DOCTYPE html>\n<html><head><title>Sign in</title></head>' +
  '<body><form method="post" action="/login"><input name="user"><input name="password" type="password">' +
  '<button>Sign in</button></form></body></html>\n';

export interface NginxOptions {
  /** Directory served at `/` (and behind the special locations). */
  readonly root: string;
  /** Also listen with TLS on a second port using this certificate and key. */
  readonly tls?: Pick<TlsFiles, 'certFile' | 'keyFile'>;
  /** nginx directives added inside the `server {}` block (e.g. more `location`s). */
  readonly extraConfig?: string;
  /** nginx directives added inside the `http {}` block. */
  readonly extraHttpConfig?: string;
  /** `limit_rate` of /slow/. Default `1m` (1 MiB/s). */
  readonly slowRate?: string;
  /** The nginx binary. Default `$NGINX_BIN`, else /usr/sbin/nginx, else `nginx` on PATH. */
  readonly nginxBin?: string;
  /** How long to wait for nginx to answer. Default 10 s. */
  readonly startTimeoutMs?: number;
}

export interface NginxServer {
  /** `http://127.0.0.1:PORT` (no trailing slash). */
  readonly httpUrl: string;
  /** `https://127.0.0.1:PORT` when `tls` was given. */
  readonly httpsUrl?: string;
  readonly httpPort: number;
  readonly httpsPort?: number;
  /** access.log and error.log; deleted by stop(). */
  readonly logDir: string;
  /** The generated nginx.conf (its path is in the process's command line). */
  readonly configFile: string;
  readonly pid: number;
  /** Contents of access.log so far (format: `"$request" $status $body_bytes_sent range="$http_range"`). */
  readAccessLog(): Promise<string>;
  /** SIGTERM (SIGKILL after 5 s), wait for exit, remove the temp dir. Idempotent. */
  stop(): Promise<void>;
}

function nginxBinary(explicit: string | undefined): string {
  if (explicit !== undefined) return explicit;
  const fromEnv = process.env.NGINX_BIN;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  return existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';
}

/** A path as a double-quoted nginx string; refuses characters nginx would interpret. */
function q(path: string): string {
  if (/["\\$\n\r{};]/.test(path)) throw new Error(`nginx: unsupported character in path ${JSON.stringify(path)}`);
  return `"${path}"`;
}

function htpasswdLine(user: string, password: string): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile('openssl', ['passwd', '-apr1', password], { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`openssl passwd failed: ${err.message}\n${stderr}`));
      else resolvePromise(`${user}:${stdout.trim()}\n`);
    });
  });
}

const MINIMAL_TYPES = `types {
    text/html html htm;
    text/plain txt;
    application/json json;
    application/octet-stream bin;
    application/gzip gz tgz;
    application/x-tar tar;
    application/zip zip;
  }`;

function renderConfig(o: {
  prefix: string;
  root: string;
  httpPort: number;
  httpsPort: number | undefined;
  tls: Pick<TlsFiles, 'certFile' | 'keyFile'> | undefined;
  htpasswd: string;
  slowRate: string;
  extraConfig: string;
  extraHttpConfig: string;
}): string {
  const p = (name: string): string => q(join(o.prefix, name));
  const dir = `${o.root.replace(/\/+$/, '')}/`;
  const files = `alias ${q(dir)};`;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const mime = existsSync('/etc/nginx/mime.types') ? 'include "/etc/nginx/mime.types";' : MINIMAL_TYPES;
  const tlsListen =
    o.tls && o.httpsPort !== undefined
      ? `listen 127.0.0.1:${o.httpsPort} ssl;
    ssl_certificate ${q(resolve(o.tls.certFile))};
    ssl_certificate_key ${q(resolve(o.tls.keyFile))};
    ssl_protocols TLSv1.2 TLSv1.3;`
      : '';
  return `# generated by test/servers/nginx.ts
${isRoot ? 'user root;' : ''}
master_process off;
worker_processes 1;
pid ${p('nginx.pid')};
error_log stderr warn;
error_log ${p('logs/error.log')} info;
events { worker_connections 1024; }
http {
  ${mime}
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 30s;
  server_tokens off;
  log_format tests '"$request" $status $body_bytes_sent range="$http_range"';
  access_log ${p('logs/access.log')} tests;
  client_body_temp_path ${p('tmp/body')};
  proxy_temp_path ${p('tmp/proxy')};
  fastcgi_temp_path ${p('tmp/fastcgi')};
  uwsgi_temp_path ${p('tmp/uwsgi')};
  scgi_temp_path ${p('tmp/scgi')};
  ${o.extraHttpConfig}
  server {
    listen 127.0.0.1:${o.httpPort};
    ${tlsListen}
    server_name localhost;
    root ${q(o.root)};
    location = /__ready { return 204; }
    location / { }
    location /auth/ {
      auth_basic "models";
      auth_basic_user_file ${q(o.htpasswd)};
      ${files}
    }
    location /bearer/ {
      if ($http_authorization != "Bearer ${NGINX_BEARER_TOKEN}") {
        add_header WWW-Authenticate 'Bearer realm="models"' always;
        return 401;
      }
      ${files}
    }
    location /forbidden/ { return 403; }
    location /html/ {
      types { }
      default_type text/html;
      return 200 '${NGINX_HTML_PAGE.replace(/'/g, "\\'")}';
    }
    location /redirect/ {
      if ($request_uri ~ "^/redirect/(.*)$") { return 302 /$1; }
      return 404;
    }
    location /norange/ {
      max_ranges 0;
      ${files}
    }
    location /slow/ {
      limit_rate ${o.slowRate};
      ${files}
    }
    ${o.extraConfig}
  }
}
`;
}

function probe(url: string): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const isHttps = url.startsWith('https:');
    const req = (isHttps ? httpsRequest : httpRequest)(
      url,
      { method: 'GET', timeout: 1000, agent: false, ...(isHttps ? { rejectUnauthorized: false } : {}) },
      (res) => {
        res.resume();
        resolvePromise(res.statusCode === 204);
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => {
      resolvePromise(false);
    });
    req.end();
  });
}

/** Starts nginx on free 127.0.0.1 ports and resolves once every port answers. */
export function startNginx(options: NginxOptions): Promise<NginxServer> {
  return retryOnPortClash(() => startOnce(options), /Address already in use/);
}

async function startOnce(options: NginxOptions): Promise<NginxServer> {
  const prefix = await mkdtemp(join(tmpdir(), 'nginx-test-'));
  const logDir = join(prefix, 'logs');
  const configFile = join(prefix, 'nginx.conf');
  let child: ChildProcess | undefined;
  try {
    await mkdir(logDir);
    await mkdir(join(prefix, 'tmp'));
    const htpasswd = join(prefix, 'htpasswd');
    await writeFile(htpasswd, await htpasswdLine(NGINX_BASIC_USER, NGINX_BASIC_PASSWORD));
    const httpPort = await freePort();
    const httpsPort = options.tls ? await freePort() : undefined;
    await writeFile(
      configFile,
      renderConfig({
        prefix,
        root: resolve(options.root),
        httpPort,
        httpsPort,
        tls: options.tls,
        htpasswd,
        slowRate: options.slowRate ?? '1m',
        extraConfig: options.extraConfig ?? '',
        extraHttpConfig: options.extraHttpConfig ?? '',
      }),
    );

    let output = '';
    const append = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      if (output.length > 65_536) output = output.slice(-65_536);
    };
    const spawned = spawn(
      nginxBinary(options.nginxBin),
      ['-e', 'stderr', '-p', `${prefix}/`, '-c', configFile, '-g', 'daemon off;'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = spawned;
    track(spawned, killProcess); // not detached: signal nginx alone
    spawned.stdout.on('data', append);
    spawned.stderr.on('data', append);
    let spawnError: Error | undefined;
    spawned.once('error', (err) => {
      spawnError = err;
    });

    const httpUrl = `http://127.0.0.1:${httpPort}`;
    const httpsUrl = httpsPort === undefined ? undefined : `https://127.0.0.1:${httpsPort}`;
    const urls = [httpUrl, ...(httpsUrl === undefined ? [] : [httpsUrl])];
    const deadline = Date.now() + (options.startTimeoutMs ?? 10_000);
    const ready = new Set<string>();
    for (;;) {
      if (spawnError) {
        throw new Error(
          `nginx could not be started (${spawnError.message}); install the Debian package "nginx" or set NGINX_BIN`,
        );
      }
      if (exited(spawned)) {
        const errorLog = await readFile(join(logDir, 'error.log'), 'utf8').catch(() => '');
        throw new Error(
          `nginx exited (${String(spawned.exitCode ?? spawned.signalCode)}) before answering:\n${output}\n${errorLog}`,
        );
      }
      for (const url of urls) {
        if (!ready.has(url) && (await probe(`${url}/__ready`))) ready.add(url);
      }
      if (ready.size === urls.length) break;
      if (Date.now() > deadline) throw new Error(`nginx did not answer on ${urls.join(', ')}:\n${output}`);
      await sleep(20);
    }

    const pid = spawned.pid ?? -1;
    let stopping: Promise<void> | undefined;
    const server: NginxServer = {
      httpUrl,
      ...(httpsUrl === undefined ? {} : { httpsUrl, httpsPort }),
      httpPort,
      logDir,
      configFile,
      pid,
      readAccessLog: () => readFile(join(logDir, 'access.log'), 'utf8'),
      stop: () => {
        stopping ??= (async () => {
          await killChild(spawned, killProcess);
          await rm(prefix, { recursive: true, force: true });
        })();
        return stopping;
      },
    };
    return server;
  } catch (err) {
    if (child) await killChild(child, killProcess);
    await rm(prefix, { recursive: true, force: true });
    throw err;
  }
}
