// Free TCP ports on the loopback interface, for servers the tests start themselves.
import { createServer, type Server } from 'node:net';

/**
 * Asks the kernel for a free port on 127.0.0.1 (listen on port 0, read it, close).
 * Another process may take the port before the caller binds it; callers that
 * spawn a server should retry on EADDRINUSE.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('freePort: listening socket has no TCP address'));
        return;
      }
      const { port } = address;
      server.close((err) => {
        if (err) reject(err);
        else resolve(port);
      });
    });
  });
}

/** Starts `server` (net, http, https or tls) on a free loopback port and returns the port. */
export function listenOnLoopback(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      server.off('error', reject);
      const address = server.address();
      if (address === null || typeof address === 'string') reject(new Error('listening socket has no TCP address'));
      else resolve(address.port);
    });
  });
}

/**
 * Starts a server on fresh free ports up to three times: another process may take a port between
 * freePort() and the server's bind. `clash` recognises that failure in the server's own words.
 */
export async function retryOnPortClash<T>(start: () => Promise<T>, clash: RegExp): Promise<T> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await start();
    } catch (err) {
      lastError = err;
      if (!(err instanceof Error && clash.test(err.message))) throw err;
    }
  }
  throw lastError;
}
