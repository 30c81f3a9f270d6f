// Life cycle of the server child processes the test doubles spawn: stop them politely, escalate to
// SIGKILL, and never leave one behind when the test process exits.
//
// Two ways to signal a child, chosen by how it was spawned:
// - killGroup: the child was spawned `detached: true`, so it leads its own process group and the
//   signal reaches everything it forked too (Swift's supervisor and its four servers).
// - killProcess: the child shares our process group; only the child itself may be signalled.
import type { ChildProcess } from 'node:child_process';

/** How to send a signal to a child (and whatever belongs to it). */
export type Signaller = (child: ChildProcess, signal: NodeJS.Signals) => void;

/** True once the child has exited or was killed (its exit status is known). */
export function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/**
 * Signals the child's whole process group, so its own children die too. Only for children spawned
 * `detached: true` (group leaders); falls back to the child alone if the group is gone.
 */
export function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || exited(child)) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

/** Signals only the child: for children that share our process group (not spawned detached). */
export function killProcess(child: ChildProcess, signal: NodeJS.Signals): void {
  if (exited(child)) return;
  child.kill(signal);
}

const live = new Map<ChildProcess, Signaller>();
let exitHookInstalled = false;

/**
 * Remembers a running child until it exits. The process 'exit' hook is the last resort when a test
 * forgets stop() (or fails before reaching it): every child still running is SIGKILLed with its
 * own signaller, so no server outlives the test process.
 */
export function track(child: ChildProcess, signaller: Signaller): void {
  live.set(child, signaller);
  child.once('exit', () => live.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const [c, kill] of live) kill(c, 'SIGKILL');
    });
  }
}

/** Resolves true once the child has exited, false if it is still running after `ms`. */
export function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, ms);
    child.once('exit', onExit);
  });
}

/**
 * SIGTERM so the server can shut down cleanly, SIGKILL if it is still running after 5 s (then wait
 * up to 5 s more): a hung server must not hang the test run.
 */
export async function killChild(child: ChildProcess, signaller: Signaller): Promise<void> {
  if (exited(child)) return;
  signaller(child, 'SIGTERM');
  if (await waitExit(child, 5000)) return;
  signaller(child, 'SIGKILL');
  await waitExit(child, 5000);
}
