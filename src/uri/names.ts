/**
 * Validity rules for the names inside URIs. Refusing an impossible name here gives the user a
 * message naming the rule, instead of a 400 or 404 from a server several steps later; and some
 * rules keep a name from being read as something else (a ref starting with "-" is a git option).
 */

/** URI path segments; "" stays "" (not [""]) so callers can test for emptiness. */
export function segmentsOf(path: string): string[] {
  return path === '' ? [] : path.split('/');
}

export function hasDotDotSegment(path: string): boolean {
  return path.split('/').includes('..');
}

/** Without trailing slashes; a loop rather than /\/+$/ so a long run of slashes costs linear time. */
export function stripTrailingSlashes(text: string): string {
  let end = text.length;
  while (end > 0 && text[end - 1] === '/') end--;
  return text.slice(0, end);
}

export function stripLeadingSlashes(text: string): string {
  let start = 0;
  while (start < text.length && text[start] === '/') start++;
  return text.slice(start);
}

/**
 * S3 and S3-compatible buckets, leniently: AWS today wants 3-63 of [a-z0-9.-], but legacy
 * us-east-1 buckets and S3-compatible stores (Ceph with relaxed names, gateways, test servers)
 * have uppercase letters, underscores, short or long names (up to 255). We accept those and leave
 * the final word to the server; what we refuse can be no bucket anywhere: empty, ".", "..",
 * anything with "/", ":", "@", "%", spaces, or not starting and ending with a letter or digit.
 */
export function isS3BucketName(name: string): boolean {
  return name.length >= 1 && name.length <= 255 && /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/.test(name);
}

/**
 * GCS has one implementation, so its documented rules apply as they are: lowercase letters,
 * digits, "-", "_", "."; start and end alphanumeric; 3-63 characters, or up to 222 with dots where
 * each dot-separated part is at most 63.
 */
export function isGcsBucketName(name: string): boolean {
  if (!/^[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?$/.test(name) || name.length < 3) return false;
  if (!name.includes('.')) return name.length <= 63;
  return name.length <= 222 && name.split('.').every((part) => part.length <= 63);
}

/** Kubernetes object names (a PersistentVolumeClaim): a DNS-1123 subdomain. */
export function isDns1123Subdomain(name: string): boolean {
  return name.length <= 253 && /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/.test(name);
}

/**
 * Hub repository name parts (owner or model), as the Hugging Face Hub validates them: word
 * characters, "-" and ".", starting and ending with a word character, at most 96, and (Hub only)
 * no "--" or "..". ModelScope ids follow the same shape.
 */
export function isHubNamePart(part: string, hub: 'hf' | 'modelscope'): boolean {
  if (part.length > 96 || !/^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$/.test(part)) return false;
  if (part.includes('..')) return false;
  return hub !== 'hf' || !part.includes('--');
}

/**
 * A branch, tag or commit name, by git's check-ref-format rules (which the hubs follow too). Also
 * refuses a leading "-", so a ref can never be taken for an option of the git command line.
 */
export function isPlausibleRef(ref: string): boolean {
  if (ref.length === 0 || ref.length > 255) return false;
  if (/[\s~^:?*[\\]/.test(ref) || ref.includes('..') || ref.includes('@{') || ref === '@') return false;
  if (ref.startsWith('-') || ref.startsWith('/') || ref.endsWith('/') || ref.endsWith('.') || ref.endsWith('.lock')) return false;
  return ref.split('/').every((part) => part !== '' && !part.startsWith('.'));
}

const HOST_LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?';
const HOST = `(?:${HOST_LABEL}(?:\\.${HOST_LABEL})*|\\[[0-9A-Fa-f:.]+\\])`;

/** `host:port`, the form that tells a namenode apart from the first directory of an HDFS path. */
export const HOST_WITH_PORT = new RegExp(`^${HOST}:[0-9]{1,5}$`);

const REGISTRY = new RegExp(`^${HOST}(?::[0-9]{1,5})?$`);

/** An OCI registry: a host name or bracketed IPv6 address, with an optional port. */
export function isRegistryHost(registry: string): boolean {
  return REGISTRY.test(registry);
}

/** The distribution spec's repository grammar: lowercase path components joined by "/". */
export function isOciRepository(repository: string): boolean {
  const component = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
  return repository.length <= 255 && repository.split('/').every((part) => component.test(part));
}

export function isOciTag(tag: string): boolean {
  return /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag);
}

/** `algorithm:hex`; the length is checked for the algorithms whose length we know. */
export function isOciDigest(digest: string): boolean {
  const match = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-f0-9]{32,})$/.exec(digest);
  if (match === null) return false;
  const [, algorithm, hex] = match;
  if (algorithm === 'sha256') return hex?.length === 64;
  if (algorithm === 'sha512') return hex?.length === 128;
  return true;
}

/** Azure storage account names: 3-24 lowercase letters and digits. */
export function isAzureAccountName(name: string): boolean {
  return /^[a-z0-9]{3,24}$/.test(name);
}

/** Azure containers and file shares: 3-63 of lowercase, digits and single inner hyphens, or a `$` system container. */
export function isAzureContainerName(name: string): boolean {
  if (name === '$root' || name === '$web' || name === '$logs') return true;
  return name.length >= 3 && name.length <= 63 && /^[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$/.test(name);
}
