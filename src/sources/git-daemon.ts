/**
 * `git://` through isomorphic-git. The git daemon speaks the same pack protocol as smart HTTP, only
 * over a bare TCP connection (port 9418) that opens with one pkt-line naming the service and the
 * repository. isomorphic-git accepts any `http` object, so this one answers its two smart-HTTP
 * requests from the daemon:
 *
 *   GET  .../info/refs?service=git-upload-pack  connect, read the ref advertisement up to the flush,
 *        hang up; answer it with the `# service=git-upload-pack` header pkt that HTTP adds.
 *   POST .../git-upload-pack                    connect again, skip the advertisement, write the
 *        request (wants, deepen, done) and hand back the rest of the stream (shallow lines, NAK, pack).
 *
 * The protocol is v0/v1 (no `version=2` in the request), the form every git daemon understands.
 */
import type { GitHttpRequest, GitHttpResponse, HttpClient } from 'isomorphic-git';
import { connect, type Socket } from 'node:net';
import { describeError, isRetryable, StorageError } from '../errors.js';
import { collectBody } from './git-http.js';
import { applySocketTimeouts } from '../net/timeouts.js';

export const GIT_DAEMON_PORT = 9418;
const MAX_ADVERTISEMENT_BYTES = 64 * 2 ** 20;

function pkt(text: string): Buffer {
  const payload = Buffer.from(text, 'utf8');
  return Buffer.concat([Buffer.from((payload.length + 4).toString(16).padStart(4, '0')), payload]);
}

/** Reads pkt-lines from a socket, keeping what it read past the last one for the caller. */
class PktReader {
  private buffer = Buffer.alloc(0);
  private readonly chunks: AsyncIterator<unknown>;

  constructor(socket: Socket) {
    this.chunks = socket[Symbol.asyncIterator]();
  }

  private async fill(bytes: number): Promise<boolean> {
    while (this.buffer.length < bytes) {
      const next = await this.chunks.next();
      if (next.done === true) return false;
      this.buffer = Buffer.concat([this.buffer, next.value as Buffer]);
    }
    return true;
  }

  /** The next pkt-line whole (length prefix included), or undefined at the end of the stream. */
  async next(): Promise<Buffer | undefined> {
    if (!(await this.fill(4))) return undefined;
    const length = Number.parseInt(this.buffer.subarray(0, 4).toString('latin1'), 16);
    if (Number.isNaN(length) || (length > 0 && length < 4)) throw new Error('the daemon sent an invalid pkt-line');
    const total = length === 0 ? 4 : length;
    if (!(await this.fill(total))) return undefined;
    const line = this.buffer.subarray(0, total);
    this.buffer = this.buffer.subarray(total);
    return line;
  }

  async *rest(): AsyncGenerator<Uint8Array, void, undefined> {
    if (this.buffer.length > 0) yield this.buffer;
    for (;;) {
      const next = await this.chunks.next();
      if (next.done === true) return;
      yield next.value as Buffer;
    }
  }
}

interface DaemonOptions {
  host: string;
  port: number;
  displayUri: string;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  signal: AbortSignal;
}

function open(options: DaemonOptions): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: options.host, port: options.port });
    applySocketTimeouts(socket, options.connectTimeoutMs, options.idleTimeoutMs);
    const onAbort = (): void => { socket.destroy(new Error('cancelled')); };
    options.signal.addEventListener('abort', onAbort, { once: true });
    socket.once('close', () => { options.signal.removeEventListener('abort', onAbort); });
    socket.once('error', (err) => {
      reject(new StorageError('Network', `Git daemon connection to ${options.displayUri} failed: ${describeError(err)}`, {
        retryable: isRetryable(err), cause: err,
      }));
    });
    socket.once('connect', () => { resolve(socket); });
  });
}

/** Connects, asks for upload-pack of `repoPath`, and returns the advertisement pkt-lines (flush included). */
async function advertise(options: DaemonOptions, repoPath: string): Promise<{ socket: Socket; reader: PktReader; lines: Buffer[] } | { error: string }> {
  const socket = await open(options);
  const hostParam = options.port === GIT_DAEMON_PORT ? options.host : `${options.host}:${String(options.port)}`;
  socket.write(pkt(`git-upload-pack ${repoPath}\0host=${hostParam}\0`));
  const reader = new PktReader(socket);
  const lines: Buffer[] = [];
  let size = 0;
  for (;;) {
    const line = await reader.next();
    if (line === undefined) {
      socket.destroy();
      return { error: lines.length === 0 ? 'the daemon closed the connection' : 'the advertisement ended early' };
    }
    const payload = line.subarray(4).toString('utf8');
    if (lines.length === 0 && payload.startsWith('ERR ')) {
      socket.destroy();
      return { error: payload.slice(4).trim() };
    }
    lines.push(line);
    size += line.length;
    if (size > MAX_ADVERTISEMENT_BYTES) throw new StorageError('Network', `Git daemon at ${options.displayUri} sent an oversized ref advertisement`);
    if (line.length === 4) return { socket, reader, lines };
  }
}

function errorResponse(url: string, method: string, message: string): GitHttpResponse {
  // The daemon says only "access denied or repository not exported" or "no such repository".
  return { url, method, statusCode: 404, statusMessage: message, headers: { 'content-type': 'text/plain' }, body: single(Buffer.from(message)) };
}

// eslint-disable-next-line @typescript-eslint/require-await -- an async generator is the iterator type isomorphic-git reads
async function* single(data: Uint8Array): AsyncGenerator<Uint8Array, void, undefined> {
  yield data;
}

/** An isomorphic-git `http` client that reaches a git daemon; URLs it receives are `http://HOST:PORT/PATH` stand-ins. */
export function createGitDaemonClient(options: DaemonOptions): HttpClient {
  return {
    async request(req: GitHttpRequest): Promise<GitHttpResponse> {
      const method = (req.method ?? 'GET').toUpperCase();
      const url = new URL(req.url);
      const discovery = method === 'GET' && url.pathname.endsWith('/info/refs');
      const upload = method === 'POST' && url.pathname.endsWith('/git-upload-pack');
      if (!(discovery && url.searchParams.get('service') === 'git-upload-pack') && !upload) {
        return { url: req.url, method, statusCode: 403, statusMessage: 'git:// is read-only', headers: {}, body: single(new Uint8Array()) };
      }
      const suffix = discovery ? '/info/refs' : '/git-upload-pack';
      const repoPath = decodeURIComponent(url.pathname.slice(0, -suffix.length));
      const body = upload ? await collectBody(req.body) : undefined;
      const answer = await advertise(options, repoPath);
      if ('error' in answer) return errorResponse(req.url, method, answer.error);
      const { socket, reader, lines } = answer;
      if (discovery) {
        // A flush instead of wants: the daemon ends the conversation cleanly.
        socket.end(Buffer.from('0000'));
        const header = Buffer.concat([pkt('# service=git-upload-pack\n'), Buffer.from('0000')]);
        return {
          url: req.url, method, statusCode: 200, statusMessage: 'OK',
          headers: { 'content-type': 'application/x-git-upload-pack-advertisement' },
          body: single(Buffer.concat([header, ...lines])),
        };
      }
      socket.write(body ?? Buffer.alloc(0));
      return {
        url: req.url, method, statusCode: 200, statusMessage: 'OK',
        headers: { 'content-type': 'application/x-git-upload-pack-result' },
        body: reader.rest(),
      };
    },
  };
}
