/** Facts about the machine the tests run on. */
import { execFileSync } from 'node:child_process';

/**
 * A node:test `skip` value for tests that need a system tool. CI installs every tool
 * (scripts/install-system-deps.sh), so there a missing one is a failure, not a quiet skip, except
 * for tools CI does not install (`notInstalledByCi`: peers that come with some machine images).
 */
export function skipWithout(tool: string, opts: { readonly notInstalledByCi?: boolean } = {}): string | false {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return false;
  } catch {
    if (process.env.CI === 'true' && opts.notInstalledByCi !== true) throw new Error(`${tool} is not installed; scripts/install-system-deps.sh installs it`);
    return `${tool} is not installed`;
  }
}
