/**
 * Storage URI -> Location. Pure: no I/O, no environment. Whether a relative string names an
 * existing local path is the caller's question (`options.existsLocally`).
 *
 * Dispatch follows the contract's order. Schemes are matched case-insensitively (RFC 3986); after
 * that only the prefix decides the backend, so a malformed URI of a known scheme gets a message
 * about that scheme rather than the generic "Cannot recognize".
 */
import path from 'node:path';
import { FORMS } from './forms.js';
import type { Location, ParseOptions } from './location.js';
import { malformed, unrecognized } from './messages.js';
import {
  HOST_WITH_PORT,
  hasDotDotSegment,
  isDns1123Subdomain,
  isGcsBucketName,
  isHubNamePart,
  isOciDigest,
  isOciRepository,
  isOciTag,
  isPlausibleRef,
  isRegistryHost,
  isS3BucketName,
  segmentsOf,
  stripLeadingSlashes,
  stripTrailingSlashes,
} from './names.js';
import { parseWebUri } from './parse-web.js';

/**
 * Characters no URI we accept may hold: C0/C1 controls (a newline would forge log lines),
 * unpaired surrogates (not encodable as UTF-8), line separators, and the bidi overrides of
 * "Trojan Source" (they make a URI read differently from what it is).
 */
const FORBIDDEN = /[\p{Cc}\p{Cs}\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;

const MODELS_MOUNT = '/mnt/models';

export function parseStorageUri(uri: string, options: ParseOptions = {}): Location {
  if (uri.trim() === '' || FORBIDDEN.test(uri)) throw unrecognized(uri);
  if (uri.startsWith('/')) return parseAbsolutePath(uri);
  const match = SCHEME.exec(uri);
  if (match !== null) {
    const rest = uri.slice(match[0].length);
    switch (match[1]?.toLowerCase()) {
      case 'gs':
        return parseBucketUri('gs', uri, rest);
      case 's3':
        return parseBucketUri('s3', uri, rest);
      case 'hdfs':
        return parseHdfs('hdfs', uri, rest);
      case 'webhdfs':
        return parseHdfs('webhdfs', uri, rest);
      case 'https':
      case 'http':
      case 'git':
        // Azure, then git, then a plain file: the order the contract gives for http(s).
        return parseWebUri(uri);
      case 'hf':
        return parseHub('hf', uri, rest);
      case 'modelscope':
        return parseHub('modelscope', uri, rest);
      case 'oci':
        return parseOci(uri, rest, false);
      case 'oci+fetch':
        return parseOci(uri, rest, true);
      case 'file':
        return parseFileUri(uri, rest);
      case 'pvc':
        return parsePvc(uri, rest);
      default:
        break;
    }
  }
  // After the schemes, so a local directory that happens to be called "s3:" cannot shadow s3://.
  if (options.existsLocally === true) return { scheme: 'local', path: uri };
  throw unrecognized(uri);
}

/**
 * `/mnt/models` is a directory boundary (upstream's plain prefix test would also swallow
 * `/mnt/models2`), judged after normalization so `/mnt/models/../x` is the local path `/mnt/x`.
 */
function parseAbsolutePath(uri: string): Location {
  const normalized = path.posix.normalize(uri);
  const clean = normalized === '/' ? normalized : stripTrailingSlashes(normalized);
  if (clean === MODELS_MOUNT || clean.startsWith(`${MODELS_MOUNT}/`)) return { scheme: 'models-mount', path: clean };
  return { scheme: 'local', path: clean };
}

/**
 * `s3://BUCKET[/KEY]`, `gs://BUCKET[/KEY]`. The key is kept raw, never percent-decoded: upstream
 * passes it to the SDK as written and a real key may contain "%". Trailing slashes are dropped
 * (`s3://b/models/` is the prefix `models`, which the engine treats as a directory boundary).
 * A ".." segment is refused: it is how a hostile prefix would reach outside the destination.
 */
function parseBucketUri(scheme: 's3' | 'gs', uri: string, rest: string): Location {
  const kind = scheme === 's3' ? 'S3' : 'GCS';
  const expected = FORMS[scheme];
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const key = slash < 0 ? '' : stripTrailingSlashes(rest.slice(slash + 1));
  if (bucket === '') throw malformed(kind, uri, 'the bucket name is empty', expected);
  const valid = scheme === 's3' ? isS3BucketName(bucket) : isGcsBucketName(bucket);
  if (!valid) {
    const rule =
      scheme === 's3'
        ? 'up to 255 letters, digits, ".", "-" or "_", starting and ending with a letter or digit'
        : '3-63 lowercase letters, digits, ".", "-" or "_" (up to 222 with dots), starting and ending with a letter or digit';
    throw malformed(kind, uri, `the bucket name is not valid (${rule})`, expected);
  }
  if (hasDotDotSegment(key)) throw malformed(kind, uri, 'the key has a ".." segment', expected);
  return { scheme, bucket, key };
}

/**
 * Upstream takes everything after the scheme as the path (`hdfs://user/me/model` is
 * `user/me/model`, resolved against HDFS_ROOTPATH) and the namenode from settings. We keep that,
 * and also read a namenode when the first segment is `host:port`: HDFS forbids ":" in names, so
 * that segment cannot be a directory. `hdfs:///abs` is the absolute path `/abs`. A bare host
 * without a port stays the first directory, as upstream reads it.
 */
function parseHdfs(protocol: 'hdfs' | 'webhdfs', uri: string, rest: string): Location {
  const kind = protocol === 'hdfs' ? 'HDFS' : 'WebHDFS';
  const expected = FORMS.hdfs;
  const slash = rest.indexOf('/');
  const first = slash < 0 ? rest : rest.slice(0, slash);
  const host = HOST_WITH_PORT.test(first) ? first : undefined;
  const hdfsPath = stripTrailingSlashes(host === undefined ? rest : rest.slice(first.length));
  if (hdfsPath === '') throw malformed(kind, uri, 'the path is empty', expected);
  if (hasDotDotSegment(hdfsPath)) throw malformed(kind, uri, 'the path has a ".." segment', expected);
  return host === undefined ? { scheme: 'hdfs', protocol, path: hdfsPath } : { scheme: 'hdfs', protocol, host, path: hdfsPath };
}

/** `hf://OWNER/MODEL[:REVISION]` and the same for ModelScope: exactly two parts, a non-empty revision. */
function parseHub(hub: 'hf' | 'modelscope', uri: string, rest: string): Location {
  const kind = hub === 'hf' ? 'Hugging Face' : 'ModelScope';
  const expected = FORMS[hub];
  // Repository names cannot hold ":", so the first one starts the revision (which may hold "/").
  const colon = rest.indexOf(':');
  const parts = segmentsOf(stripTrailingSlashes(colon < 0 ? rest : rest.slice(0, colon)));
  const revision = colon < 0 ? undefined : rest.slice(colon + 1);
  if (parts.length !== 2) throw malformed(kind, uri, 'it must name exactly OWNER/MODEL', expected);
  if (!parts.every((part) => isHubNamePart(part, hub))) {
    throw malformed(kind, uri, 'OWNER and MODEL are 1-96 letters, digits, "_", "-" or ".", starting and ending with a letter, digit or "_"', expected);
  }
  const repo = parts.join('/');
  if (revision === undefined) return { scheme: hub, repo };
  if (revision === '') throw malformed(kind, uri, 'the revision after ":" is empty', expected);
  if (!isPlausibleRef(revision)) throw malformed(kind, uri, 'the revision is not a valid branch, tag or commit name', expected);
  return { scheme: hub, repo, revision };
}

/**
 * `oci://REGISTRY/REPOSITORY[:TAG][@DIGEST]`. A first component that is no host (no "." or ":",
 * not "localhost") means Docker Hub, exactly as the kubelet reads the same string for a modelcar,
 * so `oci://kserve/model:v1` is `docker.io/kserve/model:v1` in both modes. A lone host
 * (`oci://quay.io`) names a registry and no repository, and is refused.
 */
function parseOci(uri: string, rest: string, fetch: boolean): Location {
  const kind = 'OCI';
  const expected = FORMS.oci;
  if (rest === '') throw malformed(kind, uri, 'the image reference is empty', expected);
  const at = rest.indexOf('@');
  const digest = at < 0 ? undefined : rest.slice(at + 1);
  const name = at < 0 ? rest : rest.slice(0, at);
  if (digest !== undefined && !isOciDigest(digest)) {
    throw malformed(kind, uri, 'the digest must be ALGORITHM:HEX, e.g. "sha256:" and 64 lowercase hex digits', expected);
  }
  const slash = name.indexOf('/');
  const first = slash < 0 ? name : name.slice(0, slash);
  const isLocalhost = first === 'localhost' || first.startsWith('localhost:');
  let registry: string;
  let remainder: string;
  if (slash < 0) {
    // Without a "/", Docker reads "name:tag" as a Docker Hub image. We part from it only for
    // "name:PORT" (all digits) and dotted names: those are registries typed without a repository.
    if (first.includes('.') || isLocalhost || /^[^:]+:[0-9]+$/.test(first)) {
      throw malformed(kind, uri, 'it names a registry but no repository', expected);
    }
    registry = 'docker.io';
    remainder = `library/${name}`;
  } else if (first.includes('.') || first.includes(':') || isLocalhost) {
    registry = first;
    remainder = name.slice(slash + 1);
  } else {
    registry = 'docker.io';
    remainder = name;
  }
  if (!isRegistryHost(registry)) throw malformed(kind, uri, 'the registry is not a valid host[:port]', expected);
  const colon = remainder.lastIndexOf(':');
  const hasTag = colon > remainder.lastIndexOf('/');
  const repository = hasTag ? remainder.slice(0, colon) : remainder;
  const tag = hasTag ? remainder.slice(colon + 1) : undefined;
  if (repository === '') throw malformed(kind, uri, 'the repository is empty', expected);
  if (!isOciRepository(repository)) {
    throw malformed(kind, uri, 'the repository must be lowercase path components of letters, digits and single separators', expected);
  }
  if (tag !== undefined && !isOciTag(tag)) throw malformed(kind, uri, 'the tag is not valid (1-128 of letters, digits, "_", "." or "-")', expected);
  return {
    scheme: 'oci',
    fetch,
    registry,
    repository,
    ...(tag === undefined ? {} : { tag }),
    ...(digest === undefined ? {} : { digest }),
  };
}

/**
 * `file://PATH` as upstream reads it: the rest of the string, raw (`file:///abs` is `/abs`,
 * `file://rel/x` is the relative `rel/x`). A local path chosen by the operator may use "..".
 */
function parseFileUri(uri: string, rest: string): Location {
  if (rest === '') throw malformed('local', uri, 'the path is empty', FORMS.local);
  return { scheme: 'local', path: rest };
}

/** `pvc://CLAIM[/PATH]`: KServe mounts the claim; we only check the names. */
function parsePvc(uri: string, rest: string): Location {
  const expected = FORMS.pvc;
  const slash = rest.indexOf('/');
  const claim = slash < 0 ? rest : rest.slice(0, slash);
  const sub = slash < 0 ? '' : stripTrailingSlashes(stripLeadingSlashes(rest.slice(slash + 1)));
  if (claim === '') throw malformed('PVC', uri, 'the claim name is empty', expected);
  if (!isDns1123Subdomain(claim)) throw malformed('PVC', uri, 'the claim name is not a valid Kubernetes name', expected);
  if (hasDotDotSegment(sub)) throw malformed('PVC', uri, 'the path has a ".." segment', expected);
  return { scheme: 'pvc', claim, path: sub };
}
