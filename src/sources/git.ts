/**
 * Git repositories: `https://host/path/repo.git[@REF]`, `http://...`, `git://host[:port]/path[@REF]`
 * (also `#REF`). REF is a branch or a tag (annotated tags are peeled); without one, the remote's
 * default branch (its HEAD). Commit ids are not fetched: servers refuse unadvertised objects by default.
 *
 * A shallow fetch (depth 1, that one ref, no tags) lands in a staging directory inside DEST
 * (`DEST/.git-clone-XXXX`), the commit's tree is checked for paths and links that would escape,
 * checked out, LFS pointers are replaced by their verified objects, and the working tree is moved
 * into DEST. The `.git` directory is dropped unless GIT_KEEP_DOT_GIT=true (then HEAD is detached
 * at the fetched commit and `.git/shallow` marks the depth-1 history).
 *
 * Smart HTTP goes through our undici dispatcher (CA bundle, proxies); `git://` through a small
 * transport that speaks to the git daemon over TCP. Credentials: GIT_USERNAME / GIT_PASSWORD, or
 * the user (and password) in the URL, offered when the server answers 401.
 */
import git, { type HttpClient } from 'isomorphic-git';
import fs from 'node:fs';
import { mkdtemp, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Dispatcher } from 'undici';
import { authFailed, describeError, errorCode, forbidden, invalidInput, localIO, network, notFound, StorageError } from '../errors.js';
import type { Logger } from '../log.js';
import { createDispatcher } from '../net/http-client.js';
import type { Settings } from '../settings/settings.js';
import type { Location } from '../uri/location.js';
import { redactUri } from '../uri/redact.js';
import { createGitDaemonClient, GIT_DAEMON_PORT } from './git-daemon.js';
import { createGitHttpClient } from './git-http.js';
import { fetchLfsObjects, findPointers } from './git-lfs.js';
import { inspectWorkTree, validateCommitTree } from './git-tree.js';
import type { Context, Summary, TreeSource } from './types.js';

type GitLocation = Extract<Location, { scheme: 'git' }>;

const STAGING_PREFIX = '.git-clone-';

function errorData(err: unknown): { statusCode?: number; statusMessage?: string } {
  if (typeof err === 'object' && err !== null && 'data' in err && typeof err.data === 'object' && err.data !== null) return err.data;
  return {};
}

export class GitSource implements TreeSource {
  readonly kind = 'tree';
  readonly name = 'Git';
  readonly displayUri: string;
  private readonly url: URL;
  private readonly ref: string | undefined;
  private readonly username: string | undefined;
  private readonly password: string | undefined;
  private dispatcher: Dispatcher | undefined;

  constructor(location: GitLocation, private readonly settings: Settings, private readonly log: Logger) {
    this.url = new URL(location.url);
    this.ref = location.ref;
    this.displayUri = redactUri(location.url);
    // A user in the URL is the username (upstream); its password, if any, wins over GIT_PASSWORD.
    this.username = location.username ?? settings.git.username;
    this.password = location.password ?? settings.git.password;
  }

  private get hasCredentials(): boolean {
    return this.username !== undefined || this.password !== undefined;
  }

  private get isDaemon(): boolean {
    return this.url.protocol === 'git:';
  }

  private shown(): string {
    return this.ref === undefined ? this.displayUri : `${this.displayUri} (ref ${this.ref})`;
  }

  /** The URL isomorphic-git is given (it knows only http(s)) and the client that serves it. */
  private transport(signal: AbortSignal): { url: string; http: HttpClient } {
    if (this.isDaemon) {
      const port = this.url.port === '' ? GIT_DAEMON_PORT : Number(this.url.port);
      const host = this.url.hostname.replace(/^\[(.*)\]$/, '$1');
      return {
        url: `http://${this.url.host === '' ? 'localhost' : this.url.host}${this.url.pathname}`,
        http: createGitDaemonClient({
          host, port, displayUri: this.displayUri, signal,
          connectTimeoutMs: this.settings.net.connectTimeoutMs, idleTimeoutMs: this.settings.transfer.idleTimeoutMs,
        }),
      };
    }
    this.dispatcher ??= createDispatcher({ net: this.settings.net });
    return { url: this.url.href, http: createGitHttpClient(this.dispatcher, this.displayUri, signal) };
  }

  private basicAuthorization(): string | undefined {
    if (!this.hasCredentials) return undefined;
    return `Basic ${Buffer.from(`${this.username ?? ''}:${this.password ?? ''}`).toString('base64')}`;
  }

  private translate(err: unknown): StorageError {
    if (err instanceof StorageError) return err;
    const code = errorCode(err);
    const { statusCode, statusMessage } = errorData(err);
    if (code === 'HttpError' || (code === undefined && statusCode !== undefined)) {
      if (statusCode === 401 || statusCode === 203) {
        return this.hasCredentials
          ? authFailed(`Git authentication failed for ${this.displayUri}. Verify GIT_USERNAME/GIT_PASSWORD (or the user in the URL).`)
          : authFailed(`Git repository ${this.displayUri} requires authentication: set GIT_USERNAME and GIT_PASSWORD.`);
      }
      if (statusCode === 403) return forbidden(`Git access denied for ${this.displayUri}. Verify the credentials' permissions.`);
      if (statusCode === 404) {
        const detail = statusMessage !== undefined && statusMessage !== '' && this.isDaemon ? ` (daemon: ${statusMessage})` : '';
        return notFound(`Git repository not found at ${this.displayUri}${detail}`);
      }
      return network(`Git server answered HTTP ${String(statusCode)} for ${this.displayUri}`, {
        retryable: statusCode === undefined || statusCode >= 500 || statusCode === 429,
      });
    }
    if (code === 'NotFoundError') {
      return this.ref === undefined
        ? notFound(`Git repository ${this.displayUri} has no default branch (is it empty?)`)
        : notFound(`Git ref "${this.ref}" not found in ${this.displayUri}; give a branch or tag name`);
    }
    if (code === 'SmartHttpError') return invalidInput(`${this.displayUri} is not a Git smart HTTP endpoint (dumb HTTP is not supported)`);
    if (code === 'ObjectTypeError') return invalidInput(`Git ref "${this.ref ?? 'HEAD'}" of ${this.displayUri} does not name a commit`);
    if (code === 'UserCanceledError') return authFailed(`Git authentication failed for ${this.displayUri}.`);
    return network(`Git fetch of ${this.shown()} failed: ${describeError(err)}`, { retryable: false, cause: err });
  }

  /** Shallow fetch of the ref into `dir`; returns the commit id (tags peeled). */
  private async fetchCommit(dir: string, signal: AbortSignal): Promise<string> {
    const { url, http } = this.transport(signal);
    await git.init({ fs, dir, defaultBranch: 'main' });
    await git.addRemote({ fs, dir, remote: 'origin', url });
    const credentials = { ...(this.username === undefined ? {} : { username: this.username }), ...(this.password === undefined ? {} : { password: this.password }) };
    const result = await git.fetch({
      fs, http, dir, url, remote: 'origin', depth: 1, singleBranch: true, tags: false,
      ...(this.ref === undefined ? {} : { ref: this.ref }),
      onAuth: () => (this.hasCredentials ? credentials : undefined),
      onAuthFailure: () => undefined,
    });
    // The remote as written by the user, without credentials (they never reach .git/config).
    if (this.isDaemon) await git.setConfig({ fs, dir, path: 'remote.origin.url', value: this.url.href });
    let oid = result.fetchHead;
    if (oid === null) throw this.translate(Object.assign(new Error('no ref'), { code: 'NotFoundError' }));
    for (let depth = 0; depth < 10; depth++) {
      try {
        oid = (await git.readTag({ fs, dir, oid })).tag.object;
        continue;
      } catch (err) {
        if (errorCode(err) !== 'ObjectTypeError') throw err;
      }
      await git.readCommit({ fs, dir, oid });
      return oid;
    }
    throw invalidInput(`Git ref "${this.ref ?? 'HEAD'}" of ${this.displayUri} is a chain of tags too long to follow`);
  }

  async materialize(dest: string, ctx: Context): Promise<Summary> {
    const root = path.resolve(dest);
    // A restarted init container may find the staging area of an interrupted run.
    for (const name of await readdir(root)) {
      if (name.startsWith(STAGING_PREFIX)) await rm(path.join(root, name), { recursive: true, force: true });
    }
    const staging = await mkdtemp(path.join(root, STAGING_PREFIX));
    try {
      this.log.debug(`fetching ${this.shown()} (depth 1) into ${staging}`);
      let commit: string;
      try {
        commit = await this.fetchCommit(staging, ctx.signal);
        const { commit: parsed } = await git.readCommit({ fs, dir: staging, oid: commit });
        await validateCommitTree(staging, parsed.tree, this.log);
        await git.checkout({ fs, dir: staging, ref: commit, force: true });
      } catch (err) {
        if (ctx.signal.aborted) throw new StorageError('Cancelled', `Git fetch of ${this.displayUri} was cancelled`, { cause: err });
        throw this.translate(err);
      }
      this.log.info(`Git checked out ${commit.slice(0, 12)} of ${this.shown()}`);
      await this.resolveLfs(staging, ctx);
      const summary = await inspectWorkTree(staging);
      if (summary.files === 0) throw notFound(`Failed to fetch model. No model found in ${this.shown()}.`);
      await this.moveInto(staging, root);
      return summary;
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }

  private async resolveLfs(staging: string, ctx: Context): Promise<void> {
    if (!this.settings.git.lfs) return;
    const pointers = await findPointers(staging);
    if (pointers.length === 0) return;
    if (this.isDaemon || this.dispatcher === undefined) {
      this.log.warn(`${String(pointers.length)} Git LFS pointer file(s) left as pointers: git:// has no LFS; use the https:// URL of ${this.displayUri}`);
      return;
    }
    this.log.info(`fetching ${String(pointers.length)} Git LFS object(s) for ${this.displayUri}`);
    await fetchLfsObjects(pointers, {
      repoUrl: this.url.href, displayUri: this.displayUri, dispatcher: this.dispatcher,
      authorization: this.basicAuthorization(), log: this.log, signal: ctx.signal,
    });
  }

  /** Moves the checked-out entries into DEST, replacing those of an earlier run. */
  private async moveInto(staging: string, root: string): Promise<void> {
    for (const name of await readdir(staging)) {
      if (name === '.git' && !this.settings.git.keepDotGit) continue;
      const target = path.join(root, name);
      try {
        await rm(target, { recursive: true, force: true });
        await rename(path.join(staging, name), target);
      } catch (err) {
        throw localIO(`cannot move ${name} into ${root}: ${describeError(err)}`, err);
      }
    }
  }

  async close(): Promise<void> {
    await this.dispatcher?.close();
  }
}
