/**
 * An S3Client configured from Settings the way upstream's boto3 client is from the environment:
 * endpoint, addressing style, region, credentials (static, anonymous, or the SDK's default chain:
 * env, profiles, IRSA web identity, container/Pod Identity, IMDS), TLS and timeouts.
 */
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { proxiedHttpAgent, proxiedHttpsAgent } from '../net/proxy.js';
import { loadCaCertificates } from '../net/tls.js';
import type { Settings } from '../settings/settings.js';

const DEFAULT_REGION = 'us-east-1';

/** Path-style unless asked for virtual hosts; AWS's global endpoint outside us-east-1 needs virtual hosts. */
function usePathStyle(settings: Settings['s3'], region: string): boolean {
  if (settings.virtualHostedStyle || settings.endpoint === undefined) return false;
  const awsGlobal = /^https?:\/\/s3\.amazonaws\.com\/?$/i.test(settings.endpoint);
  return !(awsGlobal && region !== DEFAULT_REGION);
}

export function createS3Client(settings: Settings): S3Client {
  const s3 = settings.s3;
  const region = s3.region ?? DEFAULT_REGION;
  const ca = loadCaCertificates([...settings.net.caFiles, ...(s3.caBundle === undefined ? [] : [s3.caBundle])]);
  const sockets = Math.max(settings.transfer.concurrency * 2, 16);
  const { httpProxy, httpsProxy, noProxy } = settings.net;
  const httpOptions = { keepAlive: true, maxSockets: sockets };
  const tlsOptions = { ...httpOptions, rejectUnauthorized: s3.verifySsl, ...(ca === undefined ? {} : { ca }) };
  const config: S3ClientConfig = {
    region,
    endpoint: s3.endpoint,
    forcePathStyle: usePathStyle(s3, region),
    useAccelerateEndpoint: s3.accelerate,
    followRegionRedirects: true,
    maxAttempts: s3.maxAttempts,
    // Checksums are verified by the engine on whole files; the SDK's per-response validation
    // would buffer nothing but cannot check ranges, so ask only when needed.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      connectionTimeout: s3.connectTimeoutMs,
      socketTimeout: s3.readTimeoutMs,
      httpAgent: httpProxy === undefined ? new HttpAgent(httpOptions) : proxiedHttpAgent(new URL(httpProxy), noProxy, httpOptions),
      httpsAgent: httpsProxy === undefined ? new HttpsAgent(tlsOptions) : proxiedHttpsAgent(new URL(httpsProxy), noProxy, tlsOptions),
    },
  };
  if (s3.anonymous) {
    // Unsigned requests: public buckets without any credentials in reach.
    config.signer = { sign: (request) => Promise.resolve(request) };
    config.credentials = { accessKeyId: '', secretAccessKey: '' };
  } else if (s3.accessKeyId !== undefined && s3.secretAccessKey !== undefined) {
    config.credentials = { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, sessionToken: s3.sessionToken };
  }
  return new S3Client(config);
}
