/** Runs the bundled CLI as a user (or KServe) does, with exactly the environment a test gives it. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';

export const CLI = path.resolve('dist/storage-initializer.cjs');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** The machine's environment is not inherited (it may carry AWS_CA_BUNDLE, proxies, ...). */
export function baseEnv(): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' };
}

export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...baseEnv(), ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); }, options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** The error lines of a run (what an operator reads in `kubectl logs`). */
export function errorLines(result: CliResult): string[] {
  return result.stderr.split('\n').filter((line) => / ERROR /.test(line) || line.startsWith('{"time"') && line.includes('"level":"error"'));
}

/**
 * Asserts a failed run as an operator sees it: exit code 1 and exactly one error line, matching
 * `pattern` (a second error line would be noise in `kubectl logs`). Returns that line.
 */
export function failsWith(result: CliResult, pattern: RegExp): string {
  assert.equal(result.code, 1, result.stderr);
  const errors = errorLines(result);
  assert.equal(errors.length, 1, result.stderr);
  assert.match(errors[0] ?? '', pattern);
  return errors[0] ?? '';
}
