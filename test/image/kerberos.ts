/** What the images carry for WebHDFS Kerberos, as both image tests check it. */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

/** Of the kerberos addon (v7), relative to its directory: its package.json, lib/ and the compiled .node. */
export const ADDON_FILES = ['package.json', 'lib/index.js', 'lib/util.js', 'build/Release/kerberos.node'];
/** The libraries the addon opens with dlopen (ldd does not list them). */
export const ADDON_DLOPENS = ['libgssapi_krb5.so.2', 'libkrb5.so.3', 'libcom_err.so.2'];
/** Whether the optional addon built on this machine (the buildah image carries it only then). */
export const ADDON_BUILT = existsSync('node_modules/kerberos/build/Release/kerberos.node');

/** The shared objects ldd lists for a file (paths on this machine). */
export function lddPaths(file: string): string[] {
  return execFileSync('ldd', [file], { encoding: 'utf8' })
    .split('\n').map((line) => /(\/\S+)\s+\(0x/.exec(line)?.[1]).filter((lib) => lib !== undefined);
}

/** The directory of libc among `libraries`: where the loader looks for a dlopen by name when there is no cache. */
export function libcDir(libraries: readonly string[]): string {
  const libc = libraries.find((lib) => /\/libc\.so\.\d+$/.test(lib));
  if (libc === undefined) throw new Error(`no libc among ${libraries.join(', ')}`);
  return path.posix.dirname(libc);
}
