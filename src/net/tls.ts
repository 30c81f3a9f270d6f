/**
 * Trust: Node's bundled roots plus KServe's CA bundle (and any extra PEM files a backend names),
 * so a private S3 or an internal model server with a company CA just works.
 */
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { describeError, invalidInput } from '../errors.js';

export function loadCaCertificates(files: readonly string[]): string[] | undefined {
  if (files.length === 0) return undefined; // Node's defaults
  const extra = files.map((file) => {
    let pem: string;
    try {
      pem = readFileSync(file, 'utf8');
    } catch (err) {
      throw invalidInput(`cannot read CA bundle ${file}: ${describeError(err)}`, err);
    }
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw invalidInput(`CA bundle ${file} holds no PEM certificate`);
    return pem;
  });
  return [...rootCertificates, ...extra];
}
