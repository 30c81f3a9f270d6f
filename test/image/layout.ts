/** deploy/image-layout.json, typed: the paths, user and labels the buildah script and the Dockerfile share. */
import { readFileSync } from 'node:fs';

export interface ImageLayout {
  readonly name: string;
  readonly entrypoint: string;
  /** Where the native `kerberos` addon goes: the executable requires it from its own directory. */
  readonly kerberosAddon: string;
  readonly user: { readonly name: string; readonly uid: number; readonly gid: number; readonly home: string };
  readonly workdir: string;
  readonly modelDir: string;
  readonly caBundle: string;
  readonly env: Readonly<Record<string, string>>;
  readonly labels: Readonly<Record<string, string>>;
}

export const LAYOUT = JSON.parse(readFileSync('deploy/image-layout.json', 'utf8')) as ImageLayout;
export const PACKAGE_VERSION = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
