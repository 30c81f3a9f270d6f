/**
 * HTTP(S)_PROXY / NO_PROXY for clients built on Node's http(s) agents (the AWS SDK), which ignore
 * those variables: connections are tunnelled through the proxy with CONNECT, as undici does for
 * every other backend.
 */
import { Agent as HttpAgent, request, type AgentOptions, type ClientRequestArgs } from 'node:http';
import { Agent as HttpsAgent, type RequestOptions } from 'node:https';
import type { Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import type { Duplex } from 'node:stream';

/** NO_PROXY semantics as curl and undici read them: host suffixes, exact IPs, ports, or `*`. */
export function bypassesProxy(host: string, port: number, noProxy: string | undefined): boolean {
  if (noProxy === undefined || noProxy.trim() === '') return false;
  const name = host.toLowerCase().replace(/^\[|\]$/g, '');
  return noProxy.split(/[\s,]+/).filter((e) => e !== '').some((entry) => {
    if (entry === '*') return true;
    const [pattern = '', entryPort] = entry.toLowerCase().split(/:(?=\d+$)/);
    if (entryPort !== undefined && Number(entryPort) !== port) return false;
    const suffix = pattern.replace(/^\*?\./, '');
    return name === suffix || name.endsWith(`.${suffix}`);
  });
}

type Callback = (err: Error | null, stream: Duplex) => void;
/** Node ignores the stream when it reports an error; its type still asks for one. */
const NO_STREAM = undefined as unknown as Duplex;

/** Opens a CONNECT tunnel to host:port through the proxy. */
function tunnel(proxy: URL, host: string, port: number, callback: (err: Error | null, socket?: Socket) => void): void {
  const authority = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const auth = proxy.username === '' ? {} : { 'proxy-authorization': `Basic ${Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString('base64')}` };
  const req = request({ host: proxy.hostname, port: proxy.port === '' ? 80 : Number(proxy.port), method: 'CONNECT', path: authority, headers: { host: authority, ...auth } });
  req.once('connect', (res, socket) => {
    if (res.statusCode === 200) {
      callback(null, socket);
      return;
    }
    socket.destroy();
    callback(new Error(`proxy ${proxy.host} refused to connect to ${authority} (HTTP ${String(res.statusCode)})`));
  });
  req.once('error', (err) => { callback(err); });
  req.end();
}

export function proxiedHttpAgent(proxy: URL, noProxy: string | undefined, options: AgentOptions): HttpAgent {
  const agent = new HttpAgent(options);
  const direct = agent.createConnection.bind(agent);
  agent.createConnection = (opts: ClientRequestArgs, callback?: Callback) => {
    const host = opts.host ?? 'localhost';
    const port = Number(opts.port ?? 80);
    if (bypassesProxy(host, port, noProxy)) return direct(opts, callback);
    tunnel(proxy, host, port, (err, socket) => { callback?.(err, socket ?? NO_STREAM); });
    return undefined;
  };
  return agent;
}

export function proxiedHttpsAgent(proxy: URL, noProxy: string | undefined, options: AgentOptions & ConnectionOptions): HttpsAgent {
  const agent = new HttpsAgent(options);
  const direct = agent.createConnection.bind(agent);
  agent.createConnection = (opts: RequestOptions, callback?: Callback) => {
    const host = opts.host ?? 'localhost';
    const port = Number(opts.port ?? 443);
    if (bypassesProxy(host, port, noProxy)) return direct(opts, callback);
    tunnel(proxy, host, port, (err, socket) => {
      if (err !== null || socket === undefined) {
        callback?.(err ?? new Error('proxy tunnel failed'), NO_STREAM);
        return;
      }
      const secure = tlsConnect({ ...options, socket, servername: opts.servername ?? host });
      secure.once('secureConnect', () => { callback?.(null, secure); });
      secure.once('error', (tlsErr: Error) => { callback?.(tlsErr, NO_STREAM); });
    });
    return undefined;
  };
  return agent;
}
