/**
 * The URL-shaped forms that share `http(s)://` (Azure Blob, Azure File, git, a single file) plus
 * `git://`. Decided in the contract's order: an Azure host first, then a git repository, then a
 * plain file.
 *
 * The string is split by hand as well as parsed with WHATWG URL, because the parser rewrites what
 * matters here: it drops "." and ".." segments, skips the empty host of `https:///x`, and cannot
 * tell a ref suffix from a path. Backslashes are refused for the same reason (the parser turns
 * them into "/" and our split would not).
 */
import { type StorageError } from '../errors.js';
import { FORMS } from './forms.js';
import type { Location } from './location.js';
import { decodeComponent, malformed, unrecognized } from './messages.js';
import { isAzureAccountName, isAzureContainerName, isPlausibleRef, stripTrailingSlashes } from './names.js';

const RAW = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?(?:#(.*))?$/;

/**
 * Azure storage hosts: public cloud, DNS-zone endpoints (`ACCOUNT.zNN.blob.storage.azure.net`) and
 * the China and US Government clouds. `ACCOUNT-secondary` is the read-only replica of an RA-GRS
 * account: same account (and credentials), different endpoint.
 */
const AZURE_HOST =
  /^([^.]+)\.(?:(blob|file)\.core\.(?:windows\.net|chinacloudapi\.cn|usgovcloudapi\.net)|z[0-9a-z]+\.(blob|file)\.storage\.azure\.net)$/;

interface RawParts {
  uri: string;
  scheme: string;
  authority: string;
  path: string;
  query: string | undefined;
  fragment: string | undefined;
}

export function parseWebUri(uri: string): Location {
  const match = RAW.exec(uri);
  if (match === null) throw unrecognized(uri); // the caller matched "scheme://", so never
  const raw: RawParts = {
    uri,
    scheme: (match[1] ?? '').toLowerCase(),
    authority: match[2] ?? '',
    path: match[3] ?? '',
    query: match[4],
    fragment: match[5],
  };
  const kind = raw.scheme === 'git' ? 'Git' : 'HTTP';
  const expected = raw.scheme === 'git' ? FORMS.git : FORMS.http;
  if (raw.authority.slice(raw.authority.lastIndexOf('@') + 1) === '') throw malformed(kind, uri, 'the host is empty', expected);
  if (raw.authority.includes('\\') || raw.path.includes('\\')) {
    throw malformed(kind, uri, 'it contains a backslash (URL paths are separated by "/")', expected);
  }
  const url = parseUrl(uri, () => malformed(kind, uri, 'it is not a valid URL', expected));

  if (raw.scheme === 'https') {
    const azure = AZURE_HOST.exec(url.hostname);
    if (azure !== null) return parseAzure(raw, url, azure);
  }
  return parseGit(raw) ?? { scheme: 'http', url };
}

function parseUrl(text: string, onError: () => StorageError): URL {
  try {
    return new URL(text);
  } catch {
    throw onError();
  }
}

/**
 * `https://ACCOUNT.blob.core.windows.net/CONTAINER[/PATH][?SAS]` (and `.file.` for shares). The
 * path is percent-decoded, being a URL; "." and ".." segments are refused because every HTTP
 * client would silently resolve them to another blob. The query is kept as the SAS only when it
 * is one (it has `sig`); it is kept raw so the signature's encoding survives.
 */
function parseAzure(raw: RawParts, url: URL, match: RegExpExecArray): Location {
  const service = match[2] ?? match[3];
  const kind = service === 'file' ? 'Azure File' : 'Azure Blob';
  const expected = service === 'file' ? FORMS.azureFile : FORMS.azureBlob;
  const containerWord = service === 'file' ? 'share' : 'container';
  const hostAccount = match[1] ?? '';
  const account = hostAccount.endsWith('-secondary') ? hostAccount.slice(0, -'-secondary'.length) : hostAccount;
  if (!isAzureAccountName(account)) {
    throw malformed(kind, raw.uri, 'the account name is not valid (3-24 lowercase letters and digits)', expected);
  }
  if (url.username !== '' || url.password !== '') {
    throw malformed(kind, raw.uri, 'credentials in the URL are not used for Azure (give a SAS query or the AZURE_* environment)', expected);
  }
  const badEscape = () => malformed(kind, raw.uri, 'the path has an invalid percent-encoding', expected);
  const decoded = raw.path.split('/').slice(1).map((segment) => decodeComponent(segment, badEscape));
  const container = decoded[0] ?? '';
  if (container === '') throw malformed(kind, raw.uri, `the ${containerWord} name is empty`, expected);
  if (!isAzureContainerName(container)) {
    throw malformed(kind, raw.uri, `the ${containerWord} name is not valid (3-63 lowercase letters, digits and single hyphens)`, expected);
  }
  const key = stripTrailingSlashes(decoded.slice(1).join('/'));
  if (key.split('/').some((segment) => segment === '.' || segment === '..')) {
    throw malformed(kind, raw.uri, 'the path has a "." or ".." segment', expected);
  }
  const sas = raw.query !== undefined && new URLSearchParams(raw.query).has('sig') ? raw.query : undefined;
  const endpoint = url.origin;
  const extra = sas === undefined ? {} : { sas };
  return service === 'file'
    ? { scheme: 'azure-file', account, endpoint, share: container, key, ...extra }
    : { scheme: 'azure-blob', account, endpoint, container, key, ...extra };
}

/**
 * A git repository, or undefined when the URI is not one. `http(s)` URLs are repositories when
 * the path ends in `.git`; `git://` always is.
 *
 * Ref syntax (both accepted, not together): `REPO.git@REF`, as pip writes it, because a
 * fragment may be dropped by tools that treat the URI as a URL; and `#REF`, as npm writes it,
 * because `git://HOST/REPO` has no `.git` to anchor an "@". For `git://` the first "@" in the
 * path starts the ref. The ref may contain "/" (`@release/v2`), is percent-decoded, and must be a
 * valid ref name (never starting with "-", so it cannot become a git option).
 *
 * Credentials in the URL move to username/password (decoded) and leave the URL, so the URL can be
 * logged and passed to git without a secret.
 */
function parseGit(raw: RawParts): Location | undefined {
  const expected = FORMS.git;
  const isGitScheme = raw.scheme === 'git';
  const at = isGitScheme ? raw.path.indexOf('@') : raw.path.toLowerCase().indexOf('.git@');
  let repoPath: string;
  let atRef: string | undefined;
  if (at >= 0) {
    const split = isGitScheme ? at : at + '.git'.length;
    repoPath = raw.path.slice(0, split);
    atRef = raw.path.slice(split + 1);
  } else if (isGitScheme || /\.git\/?$/i.test(raw.path)) {
    repoPath = raw.path;
  } else {
    return undefined;
  }
  if (stripTrailingSlashes(repoPath) === '') throw malformed('Git', raw.uri, 'the repository path is empty', expected);
  if (atRef !== undefined && raw.fragment !== undefined) {
    throw malformed('Git', raw.uri, 'the ref is given twice; use either @REF or #REF', expected);
  }
  const badEscape = () => malformed('Git', raw.uri, 'the ref has an invalid percent-encoding', expected);
  const rawRef = atRef ?? raw.fragment;
  const ref = rawRef === undefined ? undefined : decodeComponent(rawRef, badEscape);
  if (ref === '') throw malformed('Git', raw.uri, 'the ref is empty', expected);
  if (ref !== undefined && !isPlausibleRef(ref)) {
    throw malformed('Git', raw.uri, 'the ref is not a valid branch, tag or commit name', expected);
  }

  const query = raw.query === undefined ? '' : `?${raw.query}`;
  const url = parseUrl(`${raw.scheme}://${raw.authority}${repoPath}${query}`, () =>
    malformed('Git', raw.uri, 'it is not a valid URL', expected),
  );
  const badCredentials = () => malformed('Git', raw.uri, 'the credentials have an invalid percent-encoding', expected);
  const username = url.username === '' ? undefined : decodeComponent(url.username, badCredentials);
  const password = url.password === '' ? undefined : decodeComponent(url.password, badCredentials);
  url.username = '';
  url.password = '';
  return {
    scheme: 'git',
    url: url.href,
    ...(ref === undefined ? {} : { ref }),
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
  };
}
