/**
 * Removing secrets from URIs before they reach a log line or an error message. Works on the raw
 * string (not a parsed URL) because it must also handle strings that are not valid URLs: a
 * malformed URI is exactly the one that ends up in an error message.
 */

/**
 * Query or fragment parameter names whose values are secret. Matched as substrings,
 * case-insensitively, so `sig`, `X-Amz-Signature`, `X-Goog-Credential`, `access_token`, `api_key`,
 * `client_secret` and the like are all caught; masking a harmless value by mistake costs nothing.
 */
const SECRET_PARAM_NAME = /sig|token|key|passw|pwd|secret|credential|auth/i;

// Slashes optional: WHATWG reads `https:user:pw@host` as `https://user:pw@host`, so its userinfo is just as secret.
const SCHEME_PREFIX = /^[A-Za-z][A-Za-z0-9+.-]*:\/*/;

export const REDACTED = '***';

/**
 * The URI with userinfo passwords, SAS signatures and other secret query values replaced by
 * `***`, for logs and errors, on one printable line: a control character, line separator or bidi
 * override in a (malformed) URI is shown escaped, so it can neither forge a log line nor make the
 * URI read as something else. Never throws.
 */
export function redactUri(uri: string): string {
  return escapeUnprintable(redactSecrets(uri));
}

/** redactUri without the escaping, for callers that quote the result themselves (JSON.stringify). */
export function redactSecrets(uri: string): string {
  try {
    return redactParams(redactUserinfo(uri));
  } catch {
    // Unreachable for strings; a caller passing something else still gets no secret back.
    return '[unprintable URI]';
  }
}

const UNPRINTABLE = /[\p{Cc}\p{Cs}\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;
const SHORT_ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** C0/C1 controls, lone surrogates, line separators and bidi controls as `\n` or `\uXXXX`. */
export function escapeUnprintable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => SHORT_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function redactUserinfo(uri: string): string {
  const head = SCHEME_PREFIX.exec(uri)?.[0];
  if (head === undefined) return uri;
  const rest = uri.slice(head.length);
  const authorityEnd = rest.search(/[/?#]/);
  const authority = authorityEnd < 0 ? rest : rest.slice(0, authorityEnd);
  const at = authority.lastIndexOf('@');
  if (at >= 0) {
    const userinfo = authority.slice(0, at);
    const colon = userinfo.indexOf(':');
    // A lone user name is often a token itself (https://TOKEN@github.com/...), so mask it whole.
    const masked = colon >= 0 ? `${userinfo.slice(0, colon)}:${REDACTED}` : REDACTED;
    return head + masked + rest.slice(at);
  }
  // A password holding an unencoded "/", "?" or "#" ends the authority early
  // ("user:pa/ss@host"). A colon that does not start a port, followed later by "@", is
  // taken as userinfo; bracketed IPv6 hosts are left alone.
  const colon = authority.indexOf(':');
  if (colon >= 0 && !authority.startsWith('[') && !/^\d*$/.test(authority.slice(colon + 1))) {
    const nextAt = rest.indexOf('@', colon);
    if (nextAt >= 0) return `${head}${rest.slice(0, colon)}:${REDACTED}${rest.slice(nextAt)}`;
  }
  return uri;
}

function redactParams(uri: string): string {
  const start = uri.search(/[?#]/);
  if (start < 0) return uri;
  const tail = uri.slice(start).replace(/([?#&;])([^=?#&;]*)=([^#&;]*)/g, (whole: string, sep: string, name: string) =>
    SECRET_PARAM_NAME.test(safeDecode(name)) ? `${sep}${name}=${REDACTED}` : whole,
  );
  return uri.slice(0, start) + tail;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
