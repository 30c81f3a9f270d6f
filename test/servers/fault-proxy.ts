// A fault-injecting reverse HTTP proxy: plain HTTP on 127.0.0.1, forwarding to an http(s) upstream,
// breaking chosen responses in chosen ways. Used to prove the downloader's retry, resume and
// verification against a real server (nginx, an S3 emulator, ...).
//
// Request and response headers pass through unchanged except hop-by-hop ones; the Host header is
// kept (so signed requests still verify upstream) and absolute redirects that point at the upstream
// are rewritten to point at the proxy. Bodies stream with backpressure.
import { Agent as HttpAgent, createServer, request as httpRequest } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeader, ServerResponse } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP, type Socket } from 'node:net';
import { listenOnLoopback } from './ports.js';

/** What to do to one request. Byte positions count bytes of this response's body. */
export type Fault =
  /** Forward faithfully. */
  | { readonly kind: 'none' }
  /** Answer `status` (e.g. 500, 503, 429) without asking the upstream; optional `Retry-After`. */
  | {
      readonly kind: 'status';
      readonly status: number;
      readonly retryAfter?: string;
      readonly body?: string;
      readonly headers?: Readonly<Record<string, string>>;
    }
  /** Close the connection without answering anything. */
  | { readonly kind: 'drop' }
  /** Wait `ms` before forwarding the request (slow time to first byte), then forward faithfully. */
  | { readonly kind: 'delay'; readonly ms: number }
  /** Forward the headers and `afterBytes` body bytes (default: half the body), then TCP-reset the connection. */
  | { readonly kind: 'reset-mid-body'; readonly afterBytes?: number }
  /**
   * Forward the headers and `afterBytes` body bytes (default: half), then send nothing for `ms`
   * (default: until the client goes away), then forward the rest.
   */
  | { readonly kind: 'stall'; readonly afterBytes?: number; readonly ms?: number }
  /** Forward the headers (with the upstream Content-Length) and `afterBytes` body bytes (default: half), then close (FIN). */
  | { readonly kind: 'truncate'; readonly afterBytes?: number }
  /** Declare a Content-Length `extra` bytes (default 1024) larger than the body, send the whole body, then close. */
  | { readonly kind: 'wrong-length'; readonly extra?: number }
  /** Invert the body byte at `offset` (default: the middle byte); the length is unchanged. */
  | { readonly kind: 'flip-byte'; readonly offset?: number }
  /** Send `bytes` (default 16) bytes of `X` after the declared body, then close. */
  | { readonly kind: 'extra-bytes'; readonly bytes?: number };

export type FaultKind = Fault['kind'];

export const FAULT_KINDS: readonly FaultKind[] = [
  'none',
  'status',
  'drop',
  'delay',
  'reset-mid-body',
  'stall',
  'truncate',
  'wrong-length',
  'flip-byte',
  'extra-bytes',
];

/** What a schedule sees of a request. Counters are 0-based and count in arrival order. */
export interface ProxyRequestInfo {
  /** Index of this request among all requests the proxy received. */
  readonly n: number;
  /** Index of this request among the requests for the same `path` (any method). */
  readonly pathN: number;
  readonly method: string;
  /** The path without the query string, as sent (not decoded). */
  readonly path: string;
  /** Path and query string, as sent. */
  readonly url: string;
  readonly range?: string;
  readonly headers: IncomingHttpHeaders;
}

export type Schedule = (req: ProxyRequestInfo) => Fault;

export interface ProxyLogEntry {
  readonly n: number;
  readonly method: string;
  readonly path: string;
  readonly range?: string;
  readonly fault: FaultKind;
  /** Status sent to the client (undefined if none was sent). */
  status?: number;
  /** Body bytes written to the client. */
  bytesSent: number;
  /** How the exchange ended. */
  outcome: 'pending' | 'complete' | 'fault-applied' | 'client-gone' | 'upstream-error';
}

export interface FaultProxyStats {
  /** Requests received. */
  requests: number;
  /** Faults chosen by the schedule, by kind (`none` included). */
  readonly faults: Record<FaultKind, number>;
  /** One entry per request, in arrival order. */
  readonly log: ProxyLogEntry[];
}

export interface FaultProxyOptions {
  /** Base URL of the upstream; its path (if any) is prefixed to every request path. */
  readonly upstream: string;
  /** CA certificate(s) (PEM) to trust for an https upstream. */
  readonly ca?: string | Buffer;
  /** Which fault each request gets. Default: none. */
  readonly schedule?: Schedule;
  /** `preserve` (default) forwards the client's Host header; `upstream` sends the upstream's host. */
  readonly hostHeader?: 'preserve' | 'upstream';
  /** Milliseconds between the last bytes and the TCP reset of `reset-mid-body`. Default 30. */
  readonly resetDelayMs?: number;
  /**
   * Redirects to these other origins are pointed elsewhere (origin -> replacement origin): a hub's
   * CDN or a namenode's datanode sits behind a proxy of its own, so its bytes can be faulted too.
   */
  readonly rewriteOrigins?: Readonly<Record<string, string>>;
}

export interface FaultProxy {
  /** `http://127.0.0.1:PORT` (no trailing slash). */
  readonly url: string;
  readonly port: number;
  /** Live counters; see {@link FaultProxyStats}. */
  readonly stats: FaultProxyStats;
  /** Replaces the schedule for the following requests. */
  setSchedule(schedule: Schedule): void;
  /** Zeroes the counters and the log, and restarts the request counters `n` and `pathN`. */
  resetStats(): void;
  /** Stops listening and destroys every open connection. Idempotent. */
  stop(): Promise<void>;
}

const NONE: Fault = { kind: 'none' };

export function noFaults(): Fault {
  return NONE;
}

/** The fault a bare kind name stands for in {@link seededFaults}. */
export function defaultFault(kind: FaultKind): Fault {
  switch (kind) {
    case 'none':
      return NONE;
    case 'status':
      return { kind: 'status', status: 503 };
    case 'drop':
      return { kind: 'drop' };
    case 'delay':
      return { kind: 'delay', ms: 1000 };
    case 'stall':
      return { kind: 'stall', ms: 1000 };
    case 'reset-mid-body':
    case 'truncate':
    case 'wrong-length':
    case 'flip-byte':
    case 'extra-bytes':
      return { kind };
  }
}

export interface ScheduleOptions {
  /** Count requests per path (`pathN`) instead of overall (`n`). */
  readonly perPath?: boolean;
  /** Only requests for which this is true are counted and may get a fault; the others get `none`. */
  readonly match?: (req: ProxyRequestInfo) => boolean;
}

/** Index of a request among the matching ones (overall or per path), or undefined if it does not match. */
function counter(options: ScheduleOptions): (req: ProxyRequestInfo) => { index: number; key: string } | undefined {
  const counts = new Map<string, number>();
  return (req) => {
    if (options.match && !options.match(req)) return undefined;
    const key = options.perPath === true ? req.path : '';
    const index = counts.get(key) ?? 0;
    counts.set(key, index + 1);
    return { index, key };
  };
}

/** The i-th (matching) request gets `faults[i]`; every later one gets `none`. */
export function faultsInOrder(faults: readonly Fault[], options: ScheduleOptions = {}): Schedule {
  const count = counter(options);
  return (req) => {
    const c = count(req);
    return c === undefined ? NONE : (faults[c.index] ?? NONE);
  };
}

/** The mulberry32 PRNG: a deterministic sequence of numbers in [0, 1) for a 32-bit seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Each (matching) request gets, with `probability`, one of `kinds` (bare kind names stand for
 * {@link defaultFault}), else `none`. The draw depends only on `seed` and the request's index
 * (per path with `perPath`, which keeps it reproducible when paths are fetched concurrently).
 */
export function seededFaults(
  seed: number,
  probability: number,
  kinds: readonly (Fault | FaultKind)[],
  options: ScheduleOptions = {},
): Schedule {
  const faults = kinds.map((k) => (typeof k === 'string' ? defaultFault(k) : k));
  const count = counter(options);
  return (req) => {
    const c = count(req);
    if (c === undefined || faults.length === 0) return NONE;
    const random = mulberry32((seed ^ fnv1a(`${c.key}#${c.index}`)) >>> 0);
    if (random() >= probability) return NONE;
    return faults[Math.floor(random() * faults.length)] ?? NONE;
  };
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Raw header pairs minus hop-by-hop headers (and those the Connection header names). */
function endToEnd(raw: readonly string[], connection: string | string[] | undefined): [string, string][] {
  const named = new Set(
    (Array.isArray(connection) ? connection.join(',') : (connection ?? ''))
      .split(',')
      .map((s) => s.trim().toLowerCase())
      .filter((s) => s !== ''),
  );
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] ?? '';
    const lower = name.toLowerCase();
    if (!HOP_BY_HOP.has(lower) && !named.has(lower)) out.push([name, raw[i + 1] ?? '']);
  }
  return out;
}

function sleepUnless(ms: number, gone: Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    void gone.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

interface BodyPlan {
  /** Stop forwarding after this many bytes, then `cutMode`. */
  cutAt?: number;
  cutMode?: 'reset' | 'end';
  stallAt?: number;
  /** undefined: until the client goes away. */
  stallMs?: number;
  flipAt?: number;
  append?: Buffer;
  /** Close the connection after the body (for framing faults). */
  closeAfter?: boolean;
  declaredLength?: number;
}

function planFor(fault: Fault, length: number | undefined): BodyPlan {
  const half = length === undefined ? 16_384 : Math.floor(length / 2);
  // A cut or stall must leave at least one byte unsent to be visible.
  const clamp = (at: number): number => (length === undefined || length === 0 ? at : Math.min(at, length - 1));
  switch (fault.kind) {
    case 'reset-mid-body':
      return { cutAt: clamp(fault.afterBytes ?? half), cutMode: 'reset' };
    case 'truncate':
      return { cutAt: clamp(fault.afterBytes ?? half), cutMode: 'end' };
    case 'stall':
      return { stallAt: clamp(fault.afterBytes ?? half), ...(fault.ms === undefined ? {} : { stallMs: fault.ms }) };
    case 'wrong-length':
      return length === undefined
        ? { closeAfter: true } // chunked: closing before the last chunk breaks the framing
        : { declaredLength: length + (fault.extra ?? 1024), closeAfter: true };
    case 'flip-byte':
      return { flipAt: fault.offset ?? half };
    case 'extra-bytes':
      return { append: Buffer.alloc(fault.bytes ?? 16, 0x58), closeAfter: true };
    case 'none':
    case 'status':
    case 'drop':
    case 'delay':
      return {};
  }
}

function emptyFaultCounts(): Record<FaultKind, number> {
  const counts = {} as Record<FaultKind, number>;
  for (const kind of FAULT_KINDS) counts[kind] = 0;
  return counts;
}

/** Starts the proxy on a free 127.0.0.1 port. */
export async function startFaultProxy(options: FaultProxyOptions): Promise<FaultProxy> {
  const upstream = new URL(options.upstream);
  const isHttps = upstream.protocol === 'https:';
  if (!isHttps && upstream.protocol !== 'http:') throw new Error(`fault proxy: unsupported upstream ${options.upstream}`);
  const upstreamPort = upstream.port === '' ? (isHttps ? 443 : 80) : Number(upstream.port);
  const upstreamHost = upstream.hostname.replace(/^\[|\]$/g, '');
  const basePath = upstream.pathname.replace(/\/+$/, '');
  // Idle upstream connections are dropped after 15 s, before nginx's keepalive_timeout closes them.
  const agent = isHttps
    ? new HttpsAgent({ keepAlive: true, timeout: 15_000, ...(options.ca === undefined ? {} : { ca: options.ca }) })
    : new HttpAgent({ keepAlive: true, timeout: 15_000 });
  const resetDelayMs = options.resetDelayMs ?? 30;

  let schedule: Schedule = options.schedule ?? noFaults;
  const stats: FaultProxyStats = { requests: 0, faults: emptyFaultCounts(), log: [] };
  let perPath = new Map<string, number>();
  let proxyOrigin = '';

  const sockets = new Set<Socket>();
  const server = createServer();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('clientError', (_err, socket) => {
    socket.destroy();
  });
  server.on('request', (req, res) => {
    handle(req, res).catch(() => {
      res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    const url = req.url ?? '/';
    const path = url.split('?', 1)[0] ?? url;
    const n = stats.requests++;
    const pathN = perPath.get(path) ?? 0;
    perPath.set(path, pathN + 1);
    const method = req.method ?? 'GET';
    const range = req.headers.range;
    const info: ProxyRequestInfo = { n, pathN, method, path, url, headers: req.headers, ...(range === undefined ? {} : { range }) };
    let fault: Fault;
    try {
      fault = schedule(info);
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`fault proxy: schedule threw: ${String(err)}\n`);
      return;
    }
    stats.faults[fault.kind]++;
    const entry: ProxyLogEntry = {
      n,
      method,
      path,
      ...(range === undefined ? {} : { range }),
      fault: fault.kind,
      bytesSent: 0,
      outcome: 'pending',
    };
    stats.log.push(entry);

    let finished = false;
    const gone = new Promise<void>((resolve) => {
      res.once('close', () => {
        if (!finished && entry.outcome === 'pending') entry.outcome = 'client-gone';
        resolve();
      });
    });
    const isGone = (): boolean => res.destroyed || res.socket === null || res.socket.destroyed;

    if (fault.kind === 'status') {
      req.resume();
      const body = fault.body ?? `fault proxy: injected HTTP ${fault.status}\n`;
      res.writeHead(fault.status, {
        'content-type': 'text/plain; charset=utf-8',
        'content-length': String(Buffer.byteLength(body)),
        ...(fault.retryAfter === undefined ? {} : { 'retry-after': fault.retryAfter }),
        ...fault.headers,
      });
      entry.status = fault.status;
      finished = true;
      entry.outcome = 'fault-applied';
      res.end(body);
      return;
    }
    if (fault.kind === 'drop') {
      entry.outcome = 'fault-applied';
      req.socket.destroy();
      return;
    }
    if (fault.kind === 'delay') {
      await sleepUnless(fault.ms, gone);
      if (isGone()) return;
    }

    // Forward the request.
    const headers = endToEnd(req.rawHeaders, req.headers.connection);
    if (options.hostHeader === 'upstream') {
      for (const h of headers) if (h[0].toLowerCase() === 'host') h[1] = upstream.host;
    }
    const upReq = (isHttps ? httpsRequest : httpRequest)({
      protocol: upstream.protocol,
      hostname: upstreamHost,
      port: upstreamPort,
      method,
      path: basePath + url,
      headers: headers.flat(),
      agent,
      ...(isHttps ? { servername: isIP(upstreamHost) === 0 ? upstreamHost : '' } : {}),
    });
    upReq.on('error', () => undefined);
    void gone.then(() => {
      if (!finished) upReq.destroy();
    });
    req.pipe(upReq);

    let upRes: IncomingMessage;
    try {
      upRes = await new Promise<IncomingMessage>((resolve, reject) => {
        upReq.once('response', resolve);
        upReq.once('error', reject);
        upReq.once('close', () => {
          reject(new Error('upstream request closed'));
        });
      });
    } catch (err) {
      entry.outcome = isGone() ? 'client-gone' : 'upstream-error';
      if (!isGone() && !res.headersSent) {
        entry.status = 502;
        finished = true;
        res.writeHead(502, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(`fault proxy: upstream error: ${err instanceof Error ? err.message : String(err)}\n`);
      }
      return;
    }
    upRes.on('error', () => undefined);

    const status = upRes.statusCode ?? 502;
    const lengthHeader = upRes.headers['content-length'];
    const length = lengthHeader === undefined ? undefined : Number(lengthHeader);
    const hasBody = method !== 'HEAD' && status !== 204 && status !== 304 && status >= 200;
    const plan = hasBody ? planFor(fault, length) : {};

    const outHeaders: OutgoingHttpHeader[] = [];
    for (const [name, value] of endToEnd(upRes.rawHeaders, upRes.headers.connection)) {
      const lower = name.toLowerCase();
      let v = value;
      if (lower === 'content-length' && plan.declaredLength !== undefined) v = String(plan.declaredLength);
      if (lower === 'location') v = rewriteLocation(value, req.headers.host);
      outHeaders.push(name, v);
    }
    res.sendDate = false;
    res.writeHead(status, upRes.statusMessage, outHeaders);
    entry.status = status;
    if (!hasBody) {
      upRes.resume();
      await new Promise<void>((resolve) => {
        upRes.once('end', resolve);
        upRes.once('close', resolve);
      });
      finished = true;
      entry.outcome = 'complete';
      res.end();
      return;
    }
    res.flushHeaders();

    if (Object.keys(plan).length === 0) {
      // No body fault: plain piping is the fastest way through.
      const ok = await new Promise<boolean>((resolve) => {
        upRes.once('error', () => {
          resolve(false);
        });
        res.once('finish', () => {
          resolve(true);
        });
        void gone.then(() => {
          resolve(false);
        });
        upRes.on('data', (chunk: Buffer) => {
          entry.bytesSent += chunk.length;
        });
        upRes.pipe(res);
      });
      finished = true;
      if (ok) {
        entry.outcome = fault.kind === 'none' || fault.kind === 'delay' ? 'complete' : 'fault-applied';
      } else {
        if (entry.outcome === 'pending') entry.outcome = isGone() ? 'client-gone' : 'upstream-error';
        upRes.destroy();
        res.destroy();
      }
      return;
    }

    let lastWrite: Promise<void> = Promise.resolve();
    const emit = async (buf: Buffer): Promise<void> => {
      if (buf.length === 0 || isGone()) return;
      entry.bytesSent += buf.length;
      let onWritten = (): void => undefined;
      lastWrite = new Promise<void>((resolve) => {
        onWritten = resolve;
      });
      const ok = res.write(buf, () => {
        onWritten();
      });
      if (ok) return;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          res.off('drain', done);
          res.off('close', done);
          resolve();
        };
        res.on('drain', done);
        res.on('close', done);
      });
    };
    const flushed = (): Promise<void> => Promise.race([lastWrite, gone]);
    const socket = res.socket;
    const closeSocket = async (mode: 'reset' | 'end'): Promise<void> => {
      upRes.destroy();
      await flushed();
      finished = true;
      entry.outcome = 'fault-applied';
      if (socket === null || socket.destroyed) return;
      if (mode === 'reset') {
        await sleepUnless(resetDelayMs, gone);
        if (!isGone()) socket.resetAndDestroy();
      } else {
        socket.end();
        // The server allows half-open sockets: do not wait forever for the client's FIN.
        setTimeout(() => socket.destroy(), 2000).unref();
      }
    };

    let sent = 0;
    let stalled = false;
    try {
      for await (const piece of upRes as AsyncIterable<Buffer>) {
        let chunk = piece;
        if (plan.flipAt !== undefined && plan.flipAt >= sent && plan.flipAt < sent + chunk.length) {
          chunk = Buffer.from(chunk);
          const i = plan.flipAt - sent;
          chunk[i] = (chunk[i] ?? 0) ^ 0xff;
        }
        if (plan.stallAt !== undefined && !stalled && sent + chunk.length > plan.stallAt) {
          const k = plan.stallAt - sent;
          await emit(chunk.subarray(0, k));
          stalled = true;
          await flushed();
          await (plan.stallMs === undefined ? gone : sleepUnless(plan.stallMs, gone));
          chunk = chunk.subarray(k);
          sent += k;
        }
        if (plan.cutAt !== undefined && sent + chunk.length > plan.cutAt) {
          await emit(chunk.subarray(0, plan.cutAt - sent));
          await closeSocket(plan.cutMode ?? 'end');
          return;
        }
        await emit(chunk);
        sent += chunk.length;
        if (isGone()) {
          upRes.destroy();
          return;
        }
      }
    } catch {
      // The upstream failed mid-body: pass the failure on.
      entry.outcome = isGone() ? 'client-gone' : 'upstream-error';
      finished = true;
      res.destroy();
      return;
    }
    if (isGone()) return;
    if (plan.cutAt !== undefined) {
      await closeSocket(plan.cutMode ?? 'end'); // the body was shorter than the cut
      return;
    }
    if (plan.append) await emit(plan.append);
    if (plan.closeAfter === true) {
      await closeSocket('end');
      return;
    }
    finished = true;
    entry.outcome = fault.kind === 'none' || fault.kind === 'delay' ? 'complete' : 'fault-applied';
    res.end();
  }

  function rewriteLocation(location: string, host: string | undefined): string {
    let target: URL;
    try {
      target = new URL(location);
    } catch {
      return location; // relative: already relative to the proxy
    }
    const elsewhere = options.rewriteOrigins?.[target.origin];
    if (elsewhere !== undefined) return `${elsewhere}${target.pathname}${target.search}${target.hash}`;
    const upstreamOrigins = new Set([upstream.origin]);
    if (host !== undefined) upstreamOrigins.add(`${upstream.protocol}//${host}`);
    if (!upstreamOrigins.has(target.origin)) return location;
    let path = target.pathname;
    if (basePath !== '' && path.startsWith(`${basePath}/`)) path = path.slice(basePath.length);
    return `${proxyOrigin}${path}${target.search}${target.hash}`;
  }

  const port = await listenOnLoopback(server);
  proxyOrigin = `http://127.0.0.1:${port}`;

  let stopping: Promise<void> | undefined;
  return {
    url: proxyOrigin,
    port,
    stats,
    setSchedule: (next) => {
      schedule = next;
    },
    resetStats: () => {
      stats.requests = 0;
      stats.log.length = 0;
      Object.assign(stats.faults, emptyFaultCounts());
      perPath = new Map();
    },
    stop: () => {
      stopping ??= new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
        for (const s of sockets) s.destroy();
        agent.destroy();
      });
      return stopping;
    },
  };
}
