/**
 * What a storage URI names, once parsed. One variant per backend; the registry picks a source by
 * `scheme`, and the source never has to look at the original string again.
 */
export type Location =
  /** `/mnt/models[/...]`: KServe already mounted the model (multi-model serving); nothing to do. */
  | { scheme: 'models-mount'; path: string }
  /** `key` is the raw object key or prefix (never percent-decoded), without trailing slashes. */
  | { scheme: 'gs'; bucket: string; key: string }
  | { scheme: 's3'; bucket: string; key: string }
  /**
   * `host` is `NAMENODE:PORT` when the URI names one; otherwise the namenode comes from settings.
   * `path` starts with `/` when absolute (`hdfs:///a/b`); a relative path (`hdfs://a/b`, upstream's
   * form) is resolved by the source against `HDFS_ROOTPATH`, or `/` when that is unset.
   */
  | { scheme: 'hdfs'; protocol: 'hdfs' | 'webhdfs'; host?: string; path: string }
  /** `key` is percent-decoded (it came from a URL). `sas` is the raw query string, without `?`. */
  | { scheme: 'azure-blob'; account: string; endpoint: string; container: string; key: string; sas?: string }
  | { scheme: 'azure-file'; account: string; endpoint: string; share: string; key: string; sas?: string }
  | { scheme: 'hf'; repo: string; revision?: string }
  | { scheme: 'modelscope'; repo: string; revision?: string }
  /** `registry` is as written (`docker.io` for Docker Hub short names; the source maps it to its API host). */
  | { scheme: 'oci'; fetch: boolean; registry: string; repository: string; tag?: string; digest?: string }
  /** `url` has neither credentials nor the ref suffix; username/password are percent-decoded. */
  | { scheme: 'git'; url: string; ref?: string; username?: string; password?: string }
  /** Any other http(s) URL: one file. Userinfo, if any, is kept in the URL (basic auth, as curl does). */
  | { scheme: 'http'; url: URL }
  | { scheme: 'local'; path: string }
  /** `pvc://CLAIM[/PATH]`: KServe mounts the claim itself; `path` has no leading or trailing slash. */
  | { scheme: 'pvc'; claim: string; path: string };

export type LocationScheme = Location['scheme'];

export interface ParseOptions {
  /** The caller checked that the string is an existing local path (parsing itself does no I/O). */
  existsLocally?: boolean;
}
