/**
 * Git settings. Upstream reads `GIT_USERNAME` / `GIT_PASSWORD` (a user in the URL is used as the
 * username). Ours adds `GIT_KEEP_DOT_GIT=true` (keep the clone's `.git` directory in DEST; by
 * default the model tree arrives without it, as upstream's `rm -rf .git`) and honours git-lfs's
 * own `GIT_LFS_SKIP_SMUDGE=1` (leave LFS pointer files as they are). GIT_PASSWORD is listed as a
 * secret in settings.ts, so the logger masks it.
 */
import { parseBoolean } from './values.js';

type Env = Readonly<Record<string, string | undefined>>;

export interface GitSettings {
  username: string | undefined;
  password: string | undefined;
  /** Keep `.git` (shallow, depth 1) in DEST instead of removing it. */
  keepDotGit: boolean;
  /** Fetch Git LFS objects for pointer files after checkout (off with GIT_LFS_SKIP_SMUDGE=1). */
  lfs: boolean;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

export function loadGitSettings(env: Env): GitSettings {
  return {
    username: nonEmpty(env.GIT_USERNAME),
    password: nonEmpty(env.GIT_PASSWORD),
    keepDotGit: parseBoolean('GIT_KEEP_DOT_GIT', env.GIT_KEEP_DOT_GIT, false),
    lfs: !parseBoolean('GIT_LFS_SKIP_SMUDGE', env.GIT_LFS_SKIP_SMUDGE, false),
  };
}
