/**
 * A double of the Confidential Data Hub's REST API (the CoCo guest component a confidential pod
 * reaches at http://127.0.0.1:8006), on 127.0.0.1 and a free port. The real one releases a KBS
 * resource after attestation; the attestation is the CDH's business, so the double only serves
 * what it was given:
 *
 *   GET /cdh/resource/<repo>/<type>/<tag>   200 application/octet-stream, the stored bytes
 *   anything else under GET                 404
 *   other methods                           405
 *
 * `hang = true` makes it accept requests and never answer (a CDH stuck in attestation).
 *
 * Resource names are matched after percent-decoding each segment, as the real server's router does.
 */
import { createServer, type Server } from 'node:http';
import { listenOnLoopback } from './ports.js';

export interface CdhDouble {
  /** `http://127.0.0.1:PORT`, the value for CDH_ADDR. */
  readonly url: string;
  readonly port: number;
  /** Paths of the requests received, in order. */
  readonly requests: string[];
  /** Accept requests but never answer them. */
  hang: boolean;
  /** Stores (or replaces) the bytes of `repo/type/tag`. */
  setResource(id: string, bytes: Uint8Array | string): void;
  stop(): Promise<void>;
}

export async function startCdhDouble(resources: Record<string, Uint8Array | string> = {}): Promise<CdhDouble> {
  const store = new Map<string, Buffer>();
  const setResource = (id: string, bytes: Uint8Array | string): void => { store.set(id, Buffer.from(bytes)); };
  for (const [id, bytes] of Object.entries(resources)) setResource(id, bytes);
  const requests: string[] = [];

  const server: Server = createServer((req, res) => {
    const pathname = new URL(req.url ?? '/', 'http://cdh').pathname;
    requests.push(pathname);
    if (double.hang) return;
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    const match = /^\/cdh\/resource\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(pathname);
    let body: Buffer | undefined;
    if (match !== null) {
      try {
        body = store.get(match.slice(1, 4).map((s) => decodeURIComponent(s)).join('/'));
      } catch {
        body = undefined; // malformed percent-encoding names no resource
      }
    }
    if (body === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('resource not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
  });
  const port = await listenOnLoopback(server);
  const double: CdhDouble = {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    setResource,
    stop: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => { resolve(); });
    }),
    hang: false,
  };
  return double;
}
