/**
 * Python fnmatch semantics, because STORAGE_ALLOW_PATTERNS/STORAGE_IGNORE_PATTERNS come from
 * upstream, where `*` also matches `/` ("*.json" matches "sub/config.json") and `[!x]` negates.
 */
export function fnmatchToRegExp(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern.charAt(i);
    if (c === '*') {
      source += '.*';
    } else if (c === '?') {
      source += '.';
    } else if (c === '[') {
      const close = pattern.indexOf(']', pattern.charAt(i + 1) === '!' ? i + 3 : i + 2);
      if (close === -1) {
        source += '\\[';
        continue;
      }
      let body = pattern.slice(i + 1, close);
      const negate = body.startsWith('!');
      if (negate) body = body.slice(1);
      source += `[${negate ? '^' : ''}${body.replace(/\\/g, '\\\\').replace(/\^/g, '\\^')}]`;
      i = close;
    } else {
      source += c.replace(/[.+^${}()|\\/]/g, '\\$&');
    }
  }
  return new RegExp(`^${source}$`, 's');
}

export interface PathFilter {
  (relativePath: string): boolean;
}

/** A file is kept when it matches one allow pattern (if there are any) and no ignore pattern. */
export function createPathFilter(allow: readonly string[], ignore: readonly string[]): PathFilter {
  const allowRe = allow.map(fnmatchToRegExp);
  const ignoreRe = ignore.map(fnmatchToRegExp);
  return (relativePath) =>
    (allowRe.length === 0 || allowRe.some((re) => re.test(relativePath))) && !ignoreRe.some((re) => re.test(relativePath));
}
