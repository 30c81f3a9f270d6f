/**
 * The entry point: argv + env -> settings -> initialize(); one clear line and exit 1 on failure.
 * This file and settings/ are the only readers of process.argv and process.env.
 */
import pkg from '../../package.json' with { type: 'json' };
import { describeError, StorageError } from '../errors.js';
import { initialize } from '../initialize.js';
import { createLogger, type Logger } from '../log.js';
import { loadSettings } from '../settings/settings.js';
import { seconds, timeoutAdvice } from '../net/timeouts.js';
import { formatBytes } from '../transfer/progress.js';
import { redactUri } from '../uri/redact.js';
import { parseCommandLine } from './args.js';
import { HELP } from './help.js';

const SIGNAL_EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

function fallbackLogger(): Logger {
  return createLogger({ level: 'info', format: 'text' });
}

/**
 * Process warnings (an SDK's notice about future Node versions, deprecations) go to the debug log
 * instead of interleaving multi-line text with the init container's log.
 */
function routeWarningsTo(log: Logger): void {
  process.removeAllListeners('warning');
  process.on('warning', (warning) => { log.debug(`warning: ${warning.name}: ${warning.message.split('\n')[0] ?? ''}`); });
}

/**
 * The line for a run the deadline stopped. Whatever a backend made of the abort ("clone
 * cancelled"), the cause is the deadline; the transfer engine's version of it also says how far
 * the download got ("... exceeded after 1.2 GiB of 4.0 GiB"), so that one is kept.
 */
function deadlineFailure(err: unknown, deadline: StorageError): StorageError {
  const said = err instanceof StorageError && err.message.startsWith(deadline.message) ? err.message : deadline.message;
  return new StorageError('Cancelled', `${said}; partial files are kept for the next run (raise --deadline or STORAGE_INITIALIZER_DEADLINE)`, { cause: err });
}

async function main(argv: readonly string[]): Promise<number> {
  let log = fallbackLogger();
  let timeouts = { connectTimeoutMs: 0, readTimeoutMs: 0 };
  let interruptedBy: string | undefined;
  let deadlineTimer: NodeJS.Timeout | undefined;
  let deadlineExceeded: StorageError | undefined;
  try {
    const command = parseCommandLine(argv);
    if (command.kind === 'help') {
      process.stdout.write(HELP);
      return 0;
    }
    if (command.kind === 'version') {
      process.stdout.write(`storage-initializer ${pkg.version}\n`);
      return 0;
    }
    const settings = loadSettings(process.env, command.flags);
    log = createLogger({ ...settings.log, secrets: settings.secrets });
    timeouts = settings.net;
    routeWarningsTo(log);
    const shownArgs = command.pairs.map((p) => `${redactUri(p.uri)} ${p.dest}`).join(' ');
    log.info(`Initializing, args: ${shownArgs}`);

    const controller = new AbortController();
    for (const signal of Object.keys(SIGNAL_EXIT)) {
      process.once(signal, () => {
        log.warn(`received ${signal}; stopping (partial files are kept for the next run)`);
        interruptedBy = signal;
        controller.abort();
        process.once(signal, () => process.exit(SIGNAL_EXIT[signal]));
      });
    }

    if (settings.deadlineMs > 0) {
      deadlineTimer = setTimeout(() => {
        deadlineExceeded = new StorageError('Cancelled', `deadline of ${seconds(settings.deadlineMs)} exceeded`);
        controller.abort(deadlineExceeded);
      }, settings.deadlineMs);
    }

    const summary = await initialize(command.pairs, settings, log, controller.signal);
    const rate = summary.fetchedBytes / 2 ** 20 / Math.max(summary.seconds, 0.001);
    log.info(`Model downloaded in ${summary.seconds.toFixed(3)} seconds.`);
    log.info(`summary: ${summary.files} files, ${formatBytes(summary.bytes)} (${summary.bytes} bytes), ${summary.seconds.toFixed(2)} s, ${rate.toFixed(1)} MiB/s`, {
      files: summary.files, bytes: summary.bytes, fetched_bytes: summary.fetchedBytes, seconds: Number(summary.seconds.toFixed(3)), mib_per_s: Number(rate.toFixed(1)),
    });
    return 0;
  } catch (err) {
    const failure = interruptedBy === undefined && deadlineExceeded !== undefined ? deadlineFailure(err, deadlineExceeded) : err;
    const message = describeError(failure);
    log.error(message + timeoutAdvice(failure, message, timeouts));
    return interruptedBy === undefined ? 1 : (SIGNAL_EXIT[interruptedBy] ?? 1);
  } finally {
    clearTimeout(deadlineTimer);
  }
}

// Logs are written synchronously, so exiting at once loses nothing and no idle socket delays it.
void main(process.argv.slice(2)).then((code) => process.exit(code));
