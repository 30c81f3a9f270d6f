// Self-tests of the real servers the suite starts itself (test/servers/): nginx, the generated
// CAs and the fault-injecting proxy.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { get, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import {
  faultsInOrder,
  mulberry32,
  seededFaults,
  startFaultProxy,
  type Fault,
  type FaultProxy,
  type ProxyRequestInfo,
} from '../servers/fault-proxy.js';
import { NGINX_BASIC_PASSWORD, NGINX_BASIC_USER, NGINX_BEARER_TOKEN, startNginx, type NginxServer } from '../servers/nginx.js';
import { freePort } from '../servers/ports.js';
import { generateCa, generateUntrustedCa, issueCert, type TlsFiles } from '../servers/tls.js';

const MODEL_PATH = '/models/model.bin';
const MODEL_SIZE = 1 << 20;

interface RawResult {
  status?: number;
  headers?: IncomingHttpHeaders;
  body: Buffer;
  error?: Error;
  /** Longest pause between response events (headers, chunks, end), in ms. */
  maxGapMs: number;
}

/** A GET with node:http on a fresh connection, reporting what arrived even when the response breaks. */
function fetchRaw(url: string, options: { headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<RawResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let last = Date.now();
    let maxGapMs = 0;
    const tick = (): void => {
      const now = Date.now();
      maxGapMs = Math.max(maxGapMs, now - last);
      last = now;
    };
    let settled = false;
    const result = (extra: Partial<RawResult>): RawResult => ({ body: Buffer.concat(chunks), maxGapMs, ...extra });
    const finish = (value: RawResult): void => {
      if (!settled) {
        settled = true;
        resolve(value);
      }
    };
    let meta: Partial<RawResult> = {};
    const req = get(url, { headers: options.headers ?? {}, agent: false }, (res) => {
      tick();
      meta = { status: res.statusCode ?? 0, headers: res.headers };
      res.on('data', (chunk: Buffer) => {
        tick();
        chunks.push(chunk);
      });
      res.on('end', () => {
        tick();
        finish(result(meta));
      });
      res.on('error', (error) => {
        finish(result({ ...meta, error }));
      });
      res.on('close', () => {
        if (!res.complete) finish(result({ ...meta, error: new Error('response closed before it was complete') }));
      });
    });
    req.on('error', (error) => {
      finish(result({ ...meta, error }));
    });
    req.setTimeout(options.timeoutMs ?? 5000, () => req.destroy(new Error('client timeout')));
  });
}

function pgrep(pattern: string): Promise<string> {
  return new Promise((resolve) => {
    execFile('pgrep', ['-f', pattern], (_err, stdout) => {
      resolve(stdout.trim());
    });
  });
}

function info(n: number, path = '/a', pathN = n): ProxyRequestInfo {
  return { n, pathN, method: 'GET', path, url: path, headers: {} };
}

describe('test servers', () => {
  let dir = '';
  let root = '';
  let model = Buffer.alloc(0);
  let tls: TlsFiles;
  let untrusted: TlsFiles;
  let ca = '';
  let nginx: NginxServer;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'servers-test-'));
    root = join(dir, 'root');
    await mkdir(join(root, 'models'), { recursive: true });
    model = randomBytes(MODEL_SIZE);
    await writeFile(join(root, 'models', 'model.bin'), model);
    await writeFile(join(root, 'models', 'config.json'), '{"a":1}\n');
    [tls, untrusted] = await Promise.all([generateCa(join(dir, 'tls')), generateUntrustedCa(join(dir, 'tls'))]);
    ca = await readFile(tls.caCertFile, 'utf8');
    nginx = await startNginx({ root, tls, slowRate: '512k' });
  });

  after(async () => {
    await nginx.stop();
    await rm(dir, { recursive: true, force: true });
  });

  describe('freePort', () => {
    it('returns a bindable port', async () => {
      const port = await freePort();
      assert.ok(port > 0 && port < 65536);
    });
  });

  describe('nginx', () => {
    it('serves a file byte-identical over HTTP', async () => {
      const r = await fetchRaw(`${nginx.httpUrl}${MODEL_PATH}`);
      assert.equal(r.status, 200);
      assert.equal(r.headers?.['content-length'], String(MODEL_SIZE));
      assert.equal(r.headers['accept-ranges'], 'bytes');
      assert.ok(r.body.equals(model));
    });

    it('serves over HTTPS verified against the generated CA', async () => {
      assert.ok(nginx.httpsUrl !== undefined);
      const dispatcher = new Agent({ connect: { ca } });
      try {
        for (const url of [`${nginx.httpsUrl}${MODEL_PATH}`, `https://localhost:${String(nginx.httpsPort)}${MODEL_PATH}`]) {
          const res = await request(url, { dispatcher });
          assert.equal(res.statusCode, 200);
          assert.ok(Buffer.from(await res.body.arrayBuffer()).equals(model));
        }
      } finally {
        await dispatcher.close();
      }
    });

    it('is refused when its CA is unknown or the name does not match', async () => {
      const wrongName = await issueCert(tls, join(dir, 'tls'), { name: 'wrong-name', sans: ['DNS:example.invalid'] });
      const servers = await Promise.all([startNginx({ root, tls: untrusted }), startNginx({ root, tls: wrongName })]);
      const dispatcher = new Agent({ connect: { ca } });
      const system = new Agent();
      try {
        const [unknownCa, mismatch] = servers.map((s) => `${String(s.httpsUrl)}${MODEL_PATH}`);
        const codeOf = async (promise: Promise<unknown>): Promise<string> => {
          try {
            await promise;
            return 'no error';
          } catch (err) {
            return String((err as { code?: unknown }).code);
          }
        };
        assert.equal(await codeOf(request(String(unknownCa), { dispatcher })), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
        assert.equal(await codeOf(request(String(unknownCa), { dispatcher: system })), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
        assert.equal(await codeOf(request(`${String(nginx.httpsUrl)}${MODEL_PATH}`, { dispatcher: system })), 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
        assert.equal(await codeOf(request(String(mismatch), { dispatcher })), 'ERR_TLS_CERT_ALTNAME_INVALID');
      } finally {
        await Promise.all([dispatcher.close(), system.close(), ...servers.map((s) => s.stop())]);
      }
    });

    it('answers a Range request with 206 and the right bytes', async () => {
      const r = await fetchRaw(`${nginx.httpUrl}${MODEL_PATH}`, { headers: { range: 'bytes=1000-1999' } });
      assert.equal(r.status, 206);
      assert.equal(r.headers?.['content-range'], `bytes 1000-1999/${String(MODEL_SIZE)}`);
      assert.ok(r.body.equals(model.subarray(1000, 2000)));
      const suffix = await fetchRaw(`${nginx.httpUrl}${MODEL_PATH}`, { headers: { range: 'bytes=-10' } });
      assert.equal(suffix.status, 206);
      assert.ok(suffix.body.equals(model.subarray(MODEL_SIZE - 10)));
    });

    it('sends MIME types', async () => {
      const r = await fetchRaw(`${nginx.httpUrl}/models/config.json`);
      assert.equal(r.headers?.['content-type'], 'application/json');
    });

    it('guards /auth/ with Basic auth', async () => {
      const url = `${nginx.httpUrl}/auth${MODEL_PATH}`;
      assert.equal((await fetchRaw(url)).status, 401);
      const wrong = Buffer.from(`${NGINX_BASIC_USER}:nope`).toString('base64');
      assert.equal((await fetchRaw(url, { headers: { authorization: `Basic ${wrong}` } })).status, 401);
      const good = Buffer.from(`${NGINX_BASIC_USER}:${NGINX_BASIC_PASSWORD}`).toString('base64');
      const r = await fetchRaw(url, { headers: { authorization: `Basic ${good}` } });
      assert.equal(r.status, 200);
      assert.ok(r.body.equals(model));
    });

    it('guards /bearer/ with a bearer token', async () => {
      const url = `${nginx.httpUrl}/bearer${MODEL_PATH}`;
      const denied = await fetchRaw(url, { headers: { authorization: 'Bearer wrong' } });
      assert.equal(denied.status, 401);
      assert.match(String(denied.headers?.['www-authenticate']), /^Bearer/);
      const r = await fetchRaw(url, { headers: { authorization: `Bearer ${NGINX_BEARER_TOKEN}` } });
      assert.equal(r.status, 200);
      assert.ok(r.body.equals(model));
    });

    it('answers /forbidden/ with 403 and /html/ with an HTML page', async () => {
      assert.equal((await fetchRaw(`${nginx.httpUrl}/forbidden${MODEL_PATH}`)).status, 403);
      const html = await fetchRaw(`${nginx.httpUrl}/html/any/model.bin`);
      assert.equal(html.status, 200);
      assert.equal(html.headers?.['content-type'], 'text/html');
      assert.match(html.body.toString(), /<html>/);
    });

    it('ignores Range under /norange/', async () => {
      const r = await fetchRaw(`${nginx.httpUrl}/norange${MODEL_PATH}`, { headers: { range: 'bytes=10-19' } });
      assert.equal(r.status, 200);
      assert.ok(r.body.equals(model));
    });

    it('redirects /redirect/<path> to /<path>', async () => {
      const r = await fetchRaw(`${nginx.httpUrl}/redirect${MODEL_PATH}?x=1`);
      assert.equal(r.status, 302);
      assert.equal(r.headers?.location, `${nginx.httpUrl}${MODEL_PATH}?x=1`);
    });

    it('limits the rate under /slow/', async () => {
      // 512 KiB/s, and nginx sends the first second's worth at once: 1 MiB takes about 1 s.
      const started = Date.now();
      const r = await fetchRaw(`${nginx.httpUrl}/slow${MODEL_PATH}`);
      assert.ok(r.body.equals(model));
      assert.ok(Date.now() - started >= 700, `took ${String(Date.now() - started)} ms`);
    });

    it('logs requests with their Range', async () => {
      assert.match(await nginx.readAccessLog(), /"GET \/models\/model\.bin HTTP\/1\.1" 206 1000 range="bytes=1000-1999"/);
    });

    it('stop() leaves no nginx process and no temp dir behind', async () => {
      const other = await startNginx({ root });
      assert.notEqual(await pgrep(other.configFile), '');
      await other.stop();
      assert.equal(await pgrep(other.configFile), '');
      assert.throws(() => process.kill(other.pid, 0), { code: 'ESRCH' });
      assert.equal(existsSync(other.configFile), false);
      await other.stop(); // idempotent
    });

    it('reports nginx stderr when it cannot start', async () => {
      await assert.rejects(startNginx({ root, extraConfig: 'no_such_directive on;' }), /unknown directive "no_such_directive"/);
    });
  });

  describe('fault proxy', () => {
    let proxy: FaultProxy;
    before(async () => {
      proxy = await startFaultProxy({ upstream: nginx.httpUrl });
    });
    after(async () => {
      await proxy.stop();
    });
    const once = (fault: Fault): void => {
      proxy.resetStats();
      proxy.setSchedule(faultsInOrder([fault]));
    };
    const url = (): string => `${proxy.url}${MODEL_PATH}`;

    it('forwards faithfully without faults (headers, Range, auth)', async () => {
      proxy.resetStats();
      proxy.setSchedule(() => ({ kind: 'none' }));
      const direct = await fetchRaw(`${nginx.httpUrl}${MODEL_PATH}`);
      const r = await fetchRaw(url());
      assert.equal(r.status, 200);
      assert.ok(r.body.equals(model));
      for (const h of ['etag', 'last-modified', 'content-type', 'content-length', 'accept-ranges']) {
        assert.equal(r.headers?.[h], direct.headers?.[h], h);
      }
      const ranged = await fetchRaw(url(), { headers: { range: 'bytes=5-9' } });
      assert.equal(ranged.status, 206);
      assert.ok(ranged.body.equals(model.subarray(5, 10)));
      const good = Buffer.from(`${NGINX_BASIC_USER}:${NGINX_BASIC_PASSWORD}`).toString('base64');
      assert.equal((await fetchRaw(`${proxy.url}/auth${MODEL_PATH}`, { headers: { authorization: `Basic ${good}` } })).status, 200);
      const redirect = await fetchRaw(`${proxy.url}/redirect${MODEL_PATH}`);
      assert.equal(redirect.headers?.location, `${proxy.url}${MODEL_PATH}`);
      assert.equal(proxy.stats.requests, 4);
      assert.equal(proxy.stats.faults.none, 4);
      assert.equal(proxy.stats.log[1]?.range, 'bytes=5-9');
      assert.equal(proxy.stats.log[0]?.outcome, 'complete');
    });

    it('reset-mid-body: the client gets an error after part of the body', async () => {
      once({ kind: 'reset-mid-body', afterBytes: 100_000 });
      const r = await fetchRaw(url());
      assert.equal(r.status, 200);
      assert.ok(r.error, 'expected an error');
      assert.ok(r.body.length <= 100_000);
      assert.ok(r.body.equals(model.subarray(0, r.body.length)));
      assert.equal(proxy.stats.faults['reset-mid-body'], 1);
      // The next request is served normally.
      assert.ok((await fetchRaw(url())).body.equals(model));
    });

    it('status: 503 with Retry-After, 429, without asking the upstream', async () => {
      proxy.resetStats();
      proxy.setSchedule(faultsInOrder([{ kind: 'status', status: 503, retryAfter: '1' }, { kind: 'status', status: 429 }]));
      const before503 = (await nginx.readAccessLog()).length;
      const a = await fetchRaw(url());
      assert.equal(a.status, 503);
      assert.equal(a.headers?.['retry-after'], '1');
      assert.equal((await fetchRaw(url())).status, 429);
      assert.equal((await nginx.readAccessLog()).length, before503);
      assert.equal(proxy.stats.faults.status, 2);
    });

    it('stall: no bytes for the stall period, then the rest', async () => {
      once({ kind: 'stall', afterBytes: 1000, ms: 600 });
      const r = await fetchRaw(url());
      assert.ok(r.body.equals(model));
      assert.ok(r.maxGapMs >= 550, `longest gap ${String(r.maxGapMs)} ms`);
    });

    it('stall without end: the client times out, the proxy carries on', async () => {
      once({ kind: 'stall', afterBytes: 10 });
      const r = await fetchRaw(url(), { timeoutMs: 300 });
      assert.match(String(r.error?.message), /client timeout/);
      assert.equal(r.body.length, 10);
      assert.ok((await fetchRaw(url())).body.equals(model));
      assert.equal(proxy.stats.log[0]?.outcome, 'client-gone');
    });

    it('truncate: fewer bytes than Content-Length, then the connection closes', async () => {
      once({ kind: 'truncate' });
      const r = await fetchRaw(url());
      assert.equal(r.headers?.['content-length'], String(MODEL_SIZE));
      assert.equal(r.body.length, MODEL_SIZE / 2);
      assert.ok(r.error);
    });

    it('wrong-length: a Content-Length larger than the body', async () => {
      once({ kind: 'wrong-length', extra: 7 });
      const r = await fetchRaw(url());
      assert.equal(r.headers?.['content-length'], String(MODEL_SIZE + 7));
      assert.ok(r.body.equals(model));
      assert.ok(r.error);
    });

    it('flip-byte: exactly one byte differs', async () => {
      once({ kind: 'flip-byte', offset: 12_345 });
      const r = await fetchRaw(url());
      assert.equal(r.status, 200);
      assert.equal(r.error, undefined);
      assert.equal(r.body.length, MODEL_SIZE);
      const diffs: number[] = [];
      for (let i = 0; i < MODEL_SIZE; i++) if (r.body[i] !== model[i]) diffs.push(i);
      assert.deepEqual(diffs, [12_345]);
    });

    it('extra-bytes: bytes beyond Content-Length on the wire', async () => {
      once({ kind: 'extra-bytes', bytes: 5 });
      const raw = await new Promise<Buffer>((resolve, reject) => {
        const socket = connect(proxy.port, '127.0.0.1', () => {
          socket.write(`GET ${MODEL_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
        });
        const parts: Buffer[] = [];
        socket.on('data', (d: Buffer) => parts.push(d));
        socket.on('end', () => {
          resolve(Buffer.concat(parts));
        });
        socket.on('error', reject);
      });
      const split = raw.indexOf('\r\n\r\n');
      assert.match(raw.subarray(0, split).toString(), new RegExp(`content-length: ${String(MODEL_SIZE)}`, 'i'));
      const body = raw.subarray(split + 4);
      assert.equal(body.length, MODEL_SIZE + 5);
      assert.ok(body.subarray(0, MODEL_SIZE).equals(model));
      assert.equal(body.subarray(MODEL_SIZE).toString(), 'XXXXX');
    });

    it('drop: the connection closes without an answer', async () => {
      once({ kind: 'drop' });
      const r = await fetchRaw(url());
      assert.equal(r.status, undefined);
      assert.ok(r.error);
    });

    it('survives a client that goes away mid-body', async () => {
      proxy.resetStats();
      proxy.setSchedule(() => ({ kind: 'none' }));
      await new Promise<void>((resolve) => {
        const req = get(url(), { agent: false }, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', () => undefined);
      });
      assert.ok((await fetchRaw(url())).body.equals(model));
    });

    it('forwards to an https upstream trusted through `ca`', async () => {
      assert.ok(nginx.httpsUrl !== undefined);
      const tlsProxy = await startFaultProxy({
        upstream: nginx.httpsUrl,
        ca,
        schedule: faultsInOrder([{ kind: 'flip-byte', offset: 0 }]),
      });
      try {
        const flipped = await fetchRaw(`${tlsProxy.url}${MODEL_PATH}`);
        assert.equal(flipped.body[0], (model[0] ?? 0) ^ 0xff);
        assert.ok(flipped.body.subarray(1).equals(model.subarray(1)));
        assert.ok((await fetchRaw(`${tlsProxy.url}${MODEL_PATH}`)).body.equals(model));
        const redirect = await fetchRaw(`${tlsProxy.url}/redirect${MODEL_PATH}`);
        assert.equal(redirect.headers?.location, `${tlsProxy.url}${MODEL_PATH}`);
      } finally {
        await tlsProxy.stop();
      }
      const distrusting = await startFaultProxy({ upstream: nginx.httpsUrl });
      try {
        assert.equal((await fetchRaw(`${distrusting.url}${MODEL_PATH}`)).status, 502);
      } finally {
        await distrusting.stop();
      }
    });

    it('stop() ends open connections', async () => {
      const p = await startFaultProxy({ upstream: nginx.httpUrl, schedule: () => ({ kind: 'stall', afterBytes: 0 }) });
      const pending = fetchRaw(`${p.url}${MODEL_PATH}`, { timeoutMs: 10_000 });
      while (p.stats.requests === 0) await new Promise((r) => setTimeout(r, 10));
      const started = Date.now();
      await p.stop();
      const r = await pending;
      assert.ok(r.error);
      assert.ok(Date.now() - started < 2000);
    });
  });

  describe('schedules', () => {
    it('faultsInOrder applies the i-th fault to the i-th request, then none', () => {
      const s = faultsInOrder([{ kind: 'drop' }, { kind: 'truncate' }]);
      assert.deepEqual([0, 1, 2, 3].map((n) => s(info(n)).kind), ['drop', 'truncate', 'none', 'none']);
    });

    it('faultsInOrder can count per path and only matching requests', () => {
      const s = faultsInOrder([{ kind: 'drop' }], { perPath: true, match: (r) => r.path !== '/skip' });
      const kinds = [info(0, '/a'), info(1, '/skip'), info(2, '/b'), info(3, '/a')].map((r) => s(r).kind);
      assert.deepEqual(kinds, ['drop', 'none', 'drop', 'none']);
    });

    it('seededFaults is deterministic and honours the probability', () => {
      const kinds = ['reset-mid-body', 'truncate', 'status'] as const;
      const draw = (seed: number, p: number): string[] => {
        const s = seededFaults(seed, p, kinds);
        return Array.from({ length: 200 }, (_, n) => s(info(n)).kind);
      };
      assert.deepEqual(draw(42, 0.3), draw(42, 0.3));
      assert.notDeepEqual(draw(42, 0.3), draw(43, 0.3));
      const faulty = draw(42, 0.3).filter((k) => k !== 'none').length;
      assert.ok(faulty > 30 && faulty < 90, String(faulty));
      assert.ok(draw(1, 0).every((k) => k === 'none'));
      assert.ok(draw(1, 1).every((k) => k !== 'none'));
      assert.equal(seededFaults(1, 1, ['status'])(info(0)).kind, 'status');
    });

    it('mulberry32 is a deterministic sequence in [0, 1)', () => {
      const a = mulberry32(7);
      const b = mulberry32(7);
      for (let i = 0; i < 100; i++) {
        const x = a();
        assert.equal(x, b());
        assert.ok(x >= 0 && x < 1);
      }
    });
  });
});
