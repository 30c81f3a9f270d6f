/**
 * The `http` client isomorphic-git calls for smart HTTP, built on our shared undici dispatcher so
 * the CA bundle, proxies and timeouts apply to git as to every other backend. Redirects of the
 * ref discovery are followed by hand, and credentials never travel to another origin.
 */
import type { GitHttpRequest, GitHttpResponse, HttpClient } from 'isomorphic-git';
import { request, type Dispatcher } from 'undici';
import { describeError, isRetryable, StorageError } from '../errors.js';

const MAX_REDIRECTS = 5;

/** Request bodies of upload-pack are small (wants, haves, deepen): collected, so a length is sent. */
export async function collectBody(body: GitHttpRequest['body'] | Iterable<Uint8Array> | undefined): Promise<Buffer | undefined> {
  if (body === undefined) return undefined;
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** A Node stream (or any async iterable of bytes) as the async iterator of Uint8Array isomorphic-git reads. */
export async function* asUint8Chunks(stream: AsyncIterable<unknown>): AsyncGenerator<Uint8Array, void, undefined> {
  for await (const chunk of stream) {
    if (chunk instanceof Uint8Array) yield chunk;
    else if (typeof chunk === 'string') yield Buffer.from(chunk);
  }
}

function flatten(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
  }
  return out;
}

export function createGitHttpClient(dispatcher: Dispatcher, displayUri: string, signal: AbortSignal): HttpClient {
  return {
    async request(req: GitHttpRequest): Promise<GitHttpResponse> {
      const method = (req.method ?? 'GET').toUpperCase();
      const body = await collectBody(req.body);
      const start = new URL(req.url);
      let current = start;
      for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
        const headers = { ...req.headers };
        if (current.origin !== start.origin) {
          for (const name of Object.keys(headers)) if (name.toLowerCase() === 'authorization') Reflect.deleteProperty(headers, name);
        }
        let response: Dispatcher.ResponseData;
        try {
          response = await request(current, {
            dispatcher, method, headers, signal, ...(body === undefined ? {} : { body }),
          });
        } catch (err) {
          if (signal.aborted) throw new StorageError('Cancelled', `Git clone of ${displayUri} was cancelled`, { cause: err });
          throw new StorageError('Network', `Git connection to ${displayUri} failed: ${describeError(err)}`, {
            retryable: isRetryable(err), cause: err,
          });
        }
        const location = response.headers.location;
        if (method === 'GET' && [301, 302, 303, 307, 308].includes(response.statusCode) && typeof location === 'string') {
          response.body.on('error', () => undefined);
          response.body.destroy();
          current = new URL(location, current);
          continue;
        }
        return {
          url: current.href,
          method,
          statusCode: response.statusCode,
          statusMessage: '',
          headers: flatten(response.headers),
          body: asUint8Chunks(response.body),
        };
      }
      throw new StorageError('Network', `Git server redirected ${displayUri} more than ${MAX_REDIRECTS} times`);
    },
  };
}
