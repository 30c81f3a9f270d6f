/**
 * What counts as a leaked secret in a run's output: the value itself, and the forms it travels in
 * (base64 as in Basic auth, percent-encoded as in a URL or a SAS), checked in stdout and stderr.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { CliResult } from '../helpers/cli.js';

/** The forms a secret may be printed in. Short fragments are not searched: they match by chance. */
export function leakForms(secret: string): string[] {
  const forms = new Set([secret, encodeURIComponent(secret), Buffer.from(secret).toString('base64')]);
  return [...forms].filter((form) => form.length >= 6);
}

/** Basic credentials as they travel: base64 of `user:password`. */
export function basicForm(user: string, password: string): string {
  return Buffer.from(`${user}:${password}`).toString('base64');
}

/** A PEM private key is secret line by line: any base64 body line printed would be a leak. */
export function pemBodyLines(pem: string): string[] {
  return pem.split('\n').map((line) => line.trim()).filter((line) => line.length >= 16 && !line.startsWith('-----'));
}

/** The secrets (in any of their forms) that appear in a run's output. */
export function leaksIn(result: CliResult, secrets: readonly string[]): string[] {
  const output = `${result.stdout}\n${result.stderr}`;
  return secrets.filter((secret) => leakForms(secret).some((form) => output.includes(form)));
}

export function assertNoLeak(result: CliResult, secrets: readonly string[], what: string): void {
  const leaked = leaksIn(result, secrets);
  assert.deepEqual(leaked.map((s) => `${s.slice(0, 4)}...`), [], `${what}: secret(s) printed:\n${result.stderr}${result.stdout}`);
}

/** A port nothing listens on (bound, then released): connections to it are refused at once. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => { resolve(); }));
  if (address === null || typeof address !== 'object') throw new Error('no port');
  return address.port;
}
