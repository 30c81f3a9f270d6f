// A local double of AWS STS for web-identity (IRSA) tests: answers `POST /` with
// `Action=AssumeRoleWithWebIdentity` (awsQuery protocol: form-encoded body, XML answer), the way
// sts.amazonaws.com does, with credentials fixed by the test.
//
// Point the AWS SDK's default credential chain at it with
//   AWS_WEB_IDENTITY_TOKEN_FILE=<file holding expectedToken>  AWS_ROLE_ARN=<roleArn>
//   AWS_ENDPOINT_URL_STS=<endpoint>  AWS_REGION=us-east-1
// (the SDK's nested STS client reads AWS_ENDPOINT_URL_STS; AWS_ROLE_SESSION_NAME is optional).
//
// Answers:
//   200  AssumeRoleWithWebIdentityResponse (Credentials expire 1 h ahead) when the token equals
//        `expectedToken` and RoleArn equals `roleArn`
//   403  Sender/InvalidIdentityToken when the token differs
//   403  Sender/AccessDenied when RoleArn differs
//   400  Sender/MissingParameter, Sender/InvalidAction for other requests
// Every POST is counted in `calls` and recorded in `requests`, answered or refused.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { listenOnLoopback } from './ports.js';

export interface StsOptions {
  readonly roleArn: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken: string;
  /** The web identity token (the content of AWS_WEB_IDENTITY_TOKEN_FILE) the double accepts. */
  readonly expectedToken: string;
  /** Lifetime of the issued credentials. Default 3600 s. */
  readonly durationSeconds?: number;
}

/** The form parameters of one request the double received. */
export type StsRequest = Readonly<Record<string, string>>;

export interface StsServer {
  /** `http://127.0.0.1:PORT` (no trailing slash). */
  readonly endpoint: string;
  /** Number of POST requests received so far (successful or refused). */
  readonly calls: number;
  /** Form parameters of every POST received, oldest first. */
  readonly requests: readonly StsRequest[];
  /** Closes the listener and every open connection. Idempotent. */
  stop(): Promise<void>;
}

const NS = 'https://sts.amazonaws.com/doc/2011-06-15/';

function xmlEscape(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${String(c.charCodeAt(0))};`);
}

/** Claims of a JWT token, or `{}` when the token is not a JWT (the double accepts any string). */
function jwtClaims(token: string): Record<string, unknown> {
  const part = token.split('.')[1];
  if (part === undefined) return {};
  try {
    const parsed: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function claim(claims: Record<string, unknown>, name: string, fallback: string): string {
  const v = claims[name];
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && typeof v[0] === 'string') return v[0];
  return fallback;
}

function errorXml(code: string, message: string, requestId: string): string {
  return (
    `<ErrorResponse xmlns="${NS}">\n` +
    `  <Error>\n    <Type>Sender</Type>\n    <Code>${code}</Code>\n    <Message>${xmlEscape(message)}</Message>\n  </Error>\n` +
    `  <RequestId>${requestId}</RequestId>\n</ErrorResponse>\n`
  );
}

function successXml(o: StsOptions, params: StsRequest, requestId: string): string {
  const token = params.WebIdentityToken ?? '';
  const claims = jwtClaims(token);
  const session = params.RoleSessionName ?? 'session';
  const roleName = o.roleArn.split('/').pop() ?? 'role';
  const account = /^arn:[^:]*:iam::(\d+):/.exec(o.roleArn)?.[1] ?? '123456789012';
  const partition = /^arn:([^:]*):/.exec(o.roleArn)?.[1] ?? 'aws';
  const durationSeconds = Number(params.DurationSeconds ?? o.durationSeconds ?? 3600);
  const expiration = new Date(Date.now() + durationSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const e = xmlEscape;
  return (
    `<AssumeRoleWithWebIdentityResponse xmlns="${NS}">\n` +
    `  <AssumeRoleWithWebIdentityResult>\n` +
    `    <Audience>${e(claim(claims, 'aud', 'sts.amazonaws.com'))}</Audience>\n` +
    `    <AssumedRoleUser>\n` +
    `      <AssumedRoleId>AROA${account}EXAMPLE:${e(session)}</AssumedRoleId>\n` +
    `      <Arn>arn:${e(partition)}:sts::${account}:assumed-role/${e(roleName)}/${e(session)}</Arn>\n` +
    `    </AssumedRoleUser>\n` +
    `    <Provider>${e(claim(claims, 'iss', 'oidc.local'))}</Provider>\n` +
    `    <Credentials>\n` +
    `      <AccessKeyId>${e(o.accessKeyId)}</AccessKeyId>\n` +
    `      <SecretAccessKey>${e(o.secretAccessKey)}</SecretAccessKey>\n` +
    `      <SessionToken>${e(o.sessionToken)}</SessionToken>\n` +
    `      <Expiration>${expiration}</Expiration>\n` +
    `    </Credentials>\n` +
    `    <SubjectFromWebIdentityToken>${e(claim(claims, 'sub', 'system:serviceaccount:default:default'))}</SubjectFromWebIdentityToken>\n` +
    `  </AssumeRoleWithWebIdentityResult>\n` +
    `  <ResponseMetadata>\n    <RequestId>${requestId}</RequestId>\n  </ResponseMetadata>\n` +
    `</AssumeRoleWithWebIdentityResponse>\n`
  );
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', reject);
  });
}

/** Starts the STS double on a free 127.0.0.1 port. */
export async function startSts(options: StsOptions): Promise<StsServer> {
  const requests: StsRequest[] = [];

  const answer = (res: ServerResponse, status: number, xml: string, requestId: string): void => {
    res.writeHead(status, {
      'content-type': 'text/xml',
      'content-length': Buffer.byteLength(xml),
      'x-amzn-requestid': requestId,
    });
    res.end(xml);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const requestId = randomUUID();
    if (req.method !== 'POST') {
      answer(res, 405, errorXml('InvalidAction', `Method ${req.method ?? ''} is not supported`, requestId), requestId);
      return;
    }
    const body = await readBody(req, 1 << 20);
    const params: Record<string, string> = {};
    // Query-string parameters count too, as on the real service.
    const url = new URL(req.url ?? '/', 'http://sts.local');
    for (const [k, v] of url.searchParams) params[k] = v;
    for (const [k, v] of new URLSearchParams(body)) params[k] = v;
    requests.push(params);

    if (params.Action !== 'AssumeRoleWithWebIdentity') {
      answer(res, 400, errorXml('InvalidAction', `Could not find operation ${params.Action ?? ''} for version ${params.Version ?? ''}`, requestId), requestId);
      return;
    }
    for (const name of ['RoleArn', 'RoleSessionName', 'WebIdentityToken']) {
      if (params[name] === undefined || params[name] === '') {
        answer(res, 400, errorXml('MissingParameter', `The request must contain the parameter ${name}`, requestId), requestId);
        return;
      }
    }
    if (params.WebIdentityToken !== options.expectedToken) {
      answer(res, 403, errorXml('InvalidIdentityToken', 'Incorrect token audience', requestId), requestId);
      return;
    }
    if (params.RoleArn !== options.roleArn) {
      answer(
        res,
        403,
        errorXml('AccessDenied', 'Not authorized to perform sts:AssumeRoleWithWebIdentity', requestId),
        requestId,
      );
      return;
    }
    answer(res, 200, successXml(options, params, requestId), requestId);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(err instanceof Error ? err.message : String(err));
    });
  });
  const port = await listenOnLoopback(server);

  let stopping: Promise<void> | undefined;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    get calls() {
      return requests.length;
    },
    requests,
    stop: () => {
      stopping ??= new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      });
      return stopping;
    },
  };
}
