// A local double of the EC2 Instance Metadata Service, the part an SDK's credential chain uses:
// IMDSv2 session tokens and the instance profile's role credentials, answered the way
// 169.254.169.254 does.
//
// Point the AWS SDK's default chain at it with AWS_EC2_METADATA_SERVICE_ENDPOINT=<endpoint> and
// no AWS_EC2_METADATA_DISABLED (nor any credential the chain would find first).
//
// Answers:
//   PUT /latest/api/token             with X-aws-ec2-metadata-token-ttl-seconds in 1..21600: 200, a
//                                     fresh token (echoing the TTL header); a missing or bad TTL
//                                     400; an X-Forwarded-For header 403 (IMDS refuses proxied
//                                     token requests)
//   GET  /latest/meta-data/iam/security-credentials/        the role name (text/plain), or 404
//                                     when no instance profile is attached (`role` undefined)
//   GET  /latest/meta-data/iam/security-credentials/<role>  the credentials JSON (Code, LastUpdated,
//                                     Type, AccessKeyId, SecretAccessKey, Token, Expiration), or
//                                     404 for another name or when `credentialsAvailable` is false
//   GET  /latest/meta-data/placement/region   the instance's region (text/plain), which the SDK
//                                     asks for when it infers its defaults mode (AWS_DEFAULTS_MODE=auto)
//   Every GET must carry a live X-aws-ec2-metadata-token (an issued, unexpired one) or gets 401;
//   with `allowV1`, a GET without any token header is answered as IMDSv1 did (an invalid token
//   is still 401). Other paths 404, other methods 405.
// Every request is counted and recorded, answered or refused. Nothing here logs.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { listenOnLoopback } from './ports.js';

export interface ImdsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
}

export interface ImdsOptions {
  /** Name of the instance profile's role; undefined: no instance profile attached. */
  readonly role: string | undefined;
  readonly credentials: ImdsCredentials;
  /** False: the role is listed but its credentials document answers 404 (a profile being detached). Default true. */
  readonly credentialsAvailable?: boolean;
  /** Answer GETs that carry no token (IMDSv1). Default false, as on instances that require IMDSv2. */
  readonly allowV1?: boolean;
  /** Lifetime of the handed-out credentials. Default 6 h, as EC2 issues them. */
  readonly credentialsLifetimeSeconds?: number;
  /** The instance's region. Default us-east-1. */
  readonly region?: string;
}

export interface ImdsRequest {
  readonly method: string;
  readonly path: string;
  /** `v2` with a live token, `v1` without a token header, `bad-token` with one not issued or expired. */
  readonly auth: 'v2' | 'v1' | 'bad-token' | 'none';
  readonly status: number;
}

export interface ImdsCounts {
  /** Successful `PUT /latest/api/token`. */
  tokenPuts: number;
  /** GETs of the role listing answered 200 or 404. */
  roleListGets: number;
  /** GETs of a role's credentials document answered 200 or 404. */
  credentialGets: number;
  /** GETs of the instance's region. */
  regionGets: number;
  /** Requests refused with 401 (no or a bad token). */
  unauthorized: number;
}

export interface ImdsServer {
  /** `http://127.0.0.1:PORT` (no trailing slash). */
  readonly endpoint: string;
  /** Live counters. */
  readonly counts: ImdsCounts;
  /** Every request, oldest first. */
  readonly requests: readonly ImdsRequest[];
  /** Every token issued (secrets too: a test checks none is printed). */
  readonly issuedTokens: readonly string[];
  /** Closes the listener and every open connection. Idempotent. */
  stop(): Promise<void>;
}

const TOKEN_PATH = '/latest/api/token';
const CREDENTIALS_PATH = '/latest/meta-data/iam/security-credentials/';
const TTL_HEADER = 'x-aws-ec2-metadata-token-ttl-seconds';
const TOKEN_HEADER = 'x-aws-ec2-metadata-token';
const REGION_PATH = '/latest/meta-data/placement/region';
const MAX_TTL_SECONDS = 21_600;

/** ISO 8601 without milliseconds, as IMDS writes its times. */
function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Starts the IMDS double on a free 127.0.0.1 port. */
export async function startImds(options: ImdsOptions): Promise<ImdsServer> {
  const tokens = new Map<string, number>(); // token -> expiry (ms since epoch)
  const counts: ImdsCounts = { tokenPuts: 0, roleListGets: 0, credentialGets: 0, regionGets: 0, unauthorized: 0 };
  const requests: ImdsRequest[] = [];
  const issuedTokens: string[] = [];
  const lifetimeMs = (options.credentialsLifetimeSeconds ?? 6 * 3600) * 1000;

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const method = req.method ?? 'GET';
    const path = new URL(req.url ?? '/', 'http://imds.local').pathname;
    const record = (auth: ImdsRequest['auth'], status: number, body: string, contentType = 'text/plain'): void => {
      requests.push({ method, path, auth, status });
      if (status === 401) counts.unauthorized += 1;
      res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), server: 'EC2ws' });
      res.end(body);
    };
    // IMDS reads no request body; drain whatever comes so the connection can be reused.
    req.resume();

    if (path === TOKEN_PATH) {
      if (method !== 'PUT') {
        record('none', 405, '');
        return;
      }
      if (req.headers['x-forwarded-for'] !== undefined) {
        record('none', 403, '');
        return;
      }
      const ttlText = req.headers[TTL_HEADER];
      const ttl = typeof ttlText === 'string' && /^\d+$/.test(ttlText) ? Number(ttlText) : NaN;
      if (!(ttl >= 1 && ttl <= MAX_TTL_SECONDS)) {
        record('none', 400, '');
        return;
      }
      const token = randomBytes(42).toString('base64');
      tokens.set(token, Date.now() + ttl * 1000);
      issuedTokens.push(token);
      counts.tokenPuts += 1;
      requests.push({ method, path, auth: 'none', status: 200 });
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(token), [TTL_HEADER]: String(ttl), server: 'EC2ws' });
      res.end(token);
      return;
    }

    if (method !== 'GET' && method !== 'HEAD') {
      record('none', 405, '');
      return;
    }
    const presented = req.headers[TOKEN_HEADER];
    let auth: ImdsRequest['auth'];
    if (presented === undefined) auth = options.allowV1 === true ? 'v1' : 'none';
    else auth = typeof presented === 'string' && (tokens.get(presented) ?? 0) > Date.now() ? 'v2' : 'bad-token';
    if (auth === 'none' || auth === 'bad-token') {
      record(auth, 401, '');
      return;
    }

    if (path === REGION_PATH) {
      counts.regionGets += 1;
      record(auth, 200, options.region ?? 'us-east-1');
      return;
    }
    if (path === CREDENTIALS_PATH) {
      counts.roleListGets += 1;
      if (options.role === undefined) record(auth, 404, '');
      else record(auth, 200, options.role);
      return;
    }
    if (path.startsWith(CREDENTIALS_PATH) && !path.slice(CREDENTIALS_PATH.length).includes('/')) {
      counts.credentialGets += 1;
      const name = decodeURIComponent(path.slice(CREDENTIALS_PATH.length));
      if (options.role === undefined || name !== options.role || options.credentialsAvailable === false) {
        record(auth, 404, '');
        return;
      }
      const now = Date.now();
      const document = {
        Code: 'Success',
        LastUpdated: isoSeconds(now),
        Type: 'AWS-HMAC',
        AccessKeyId: options.credentials.accessKeyId,
        SecretAccessKey: options.credentials.secretAccessKey,
        Token: options.credentials.sessionToken,
        Expiration: isoSeconds(now + lifetimeMs),
      };
      record(auth, 200, JSON.stringify(document, null, 2));
      return;
    }
    record(auth, 404, '');
  };

  const server = createServer(handle);
  const port = await listenOnLoopback(server);

  let stopping: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${String(port)}`,
    counts,
    requests,
    issuedTokens,
    stop: () => {
      stopping ??= new Promise<void>((resolve) => {
        server.close(() => { resolve(); });
        server.closeAllConnections();
      });
      return stopping;
    },
  };
}
