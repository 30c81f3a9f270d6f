/**
 * WebHDFS failures to typed errors. Namenodes and datanodes answer errors with Hadoop's
 * `{"RemoteException":{"exception","javaClassName","message"}}` body; the exception name, not the
 * status (Hadoop sends 403 for any IOException), says what went wrong.
 */
import { StorageError } from '../errors.js';
import { headerValue, type HttpResponse } from '../net/http-client.js';
import { statusError } from '../net/http-status.js';

const MAX_ERROR_BODY = 16 * 1024;

export interface RemoteException {
  /** Simple class name: `FileNotFoundException`, `StandbyException`, ... */
  exception: string;
  message: string;
}

/** Reads (and so consumes) an error body; undefined when it is not a RemoteException. */
export async function readRemoteException(response: HttpResponse): Promise<RemoteException | undefined> {
  let text: string;
  try {
    text = (await response.body.text()).slice(0, MAX_ERROR_BODY);
  } catch {
    return undefined;
  }
  try {
    const parsed: unknown = JSON.parse(text);
    const remote = (parsed as { RemoteException?: { exception?: unknown; javaClassName?: unknown; message?: unknown } } | null)?.RemoteException;
    if (remote === undefined) return undefined;
    const javaName = typeof remote.javaClassName === 'string' ? remote.javaClassName.slice(remote.javaClassName.lastIndexOf('.') + 1) : '';
    const exception = typeof remote.exception === 'string' && remote.exception !== '' ? remote.exception : javaName;
    const message = typeof remote.message === 'string' ? remote.message.replace(/\s+/g, ' ').trim().slice(0, 300) : '';
    return { exception, message };
  } catch {
    return undefined;
  }
}

export function isStandby(remote: RemoteException | undefined): boolean {
  return remote?.exception === 'StandbyException';
}

/** The server says the operation itself is unknown (LISTSTATUS_BATCH on Hadoop before 2.8). */
export function isUnsupportedOp(status: number, remote: RemoteException | undefined, op: string): boolean {
  if (status !== 400 && status !== 501) return false;
  return remote === undefined || /IllegalArgument|UnsupportedOperation/.test(remote.exception) && remote.message.includes(op);
}

export interface FailureContext {
  displayUri: string;
  /** The HDFS path the request was about. */
  path: string;
  /** The user the request ran as, for advice. */
  user: string | undefined;
  /** The Kerberos principal the request authenticated as (SPNEGO), if any. */
  principal?: string | undefined;
  rootPath: string;
}

export function webHdfsError(status: number, remote: RemoteException | undefined, response: Pick<HttpResponse, 'headers'>, ctx: FailureContext): StorageError {
  const said = remote === undefined ? '' : ` (${remote.exception}${remote.message === '' ? '' : `: ${remote.message.replace(/\.+$/, '')}`})`;
  const who = ctx.principal !== undefined
    ? `the request authenticates as Kerberos principal ${ctx.principal}${ctx.user === undefined ? '' : ` and acts as user ${ctx.user} (USER_PROXY, sent as doas)`}`
    : ctx.user === undefined ? 'no USER_PROXY is set, so the request is anonymous' : `the request runs as user ${ctx.user} (USER_PROXY)`;
  const name = remote?.exception ?? '';
  if (name === 'FileNotFoundException' || (remote === undefined && status === 404)) {
    return new StorageError('NotFound', `WebHDFS resource not found at ${ctx.displayUri}: HDFS path ${ctx.path} does not exist${said}. Check the path in the storage URI and HDFS_ROOTPATH (${ctx.rootPath}).`);
  }
  if (name === 'AccessControlException' || name === 'AuthorizationException') {
    return new StorageError('Forbidden', `WebHDFS access denied for ${ctx.displayUri}${said}. Check that ${who} may read ${ctx.path}.`);
  }
  const negotiate = /negotiate/i.test(headerValue(response.headers, 'www-authenticate') ?? '');
  // Hadoop's authentication filter answers a token it cannot accept with 403 and a plain error page.
  const rejectedTicket = ctx.principal !== undefined && negotiate && remote === undefined && (status === 401 || status === 403);
  if (name === 'SecurityException' || name === 'AuthenticationException' || status === 401 || rejectedTicket) {
    const advice = rejectedTicket
      ? `The namenode rejected the Kerberos (SPNEGO) token of ${ctx.principal ?? ''}: check that its HTTP/host principal's keytab is current and that the namenode host is named as in that principal.`
      : negotiate && ctx.principal === undefined
        ? 'The namenode asks for Kerberos (SPNEGO): set KERBEROS_PRINCIPAL and KERBEROS_KEYTAB in the HDFS secret.'
        : `Verify ${ctx.principal === undefined ? '' : 'KERBEROS_PRINCIPAL, '}USER_PROXY and HEADERS in the HDFS secret; ${who}.`;
    return new StorageError('AuthFailed', `WebHDFS authentication failed for ${ctx.displayUri}${said}. ${advice}`);
  }
  if (name === 'StandbyException' || name === 'RetriableException' || name === 'SafeModeException') {
    return new StorageError('Network', `WebHDFS namenode is not ready for ${ctx.displayUri}${said}.`, { retryable: true });
  }
  const base = statusError(status, 'WebHDFS', ctx.displayUri, response.headers['retry-after']);
  if (said === '') return base;
  return new StorageError(base.kind, `${base.message.replace(/\.$/, '')}${said}.`, { retryable: base.retryable, ...(base.retryAfterMs === undefined ? {} : { retryAfterMs: base.retryAfterMs }) });
}
