/**
 * Progress for humans: a log line every few seconds (bytes, files, rate, ETA), a live bar when
 * stderr is a terminal, and the closing summary line.
 */
import type { Logger } from '../log.js';

const MiB = 2 ** 20;

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value.toString() : value.toFixed(1)} ${units[unit] ?? 'B'}`;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m` : s >= 60 ? `${Math.floor(s / 60)}m${s % 60}s` : `${s}s`;
}

export interface ProgressOptions {
  log: Logger;
  intervalMs: number;
  /** A terminal to draw a bar on, or undefined for log lines only. */
  tty: NodeJS.WriteStream | undefined;
}

export class Progress {
  private readonly options: ProgressOptions;
  private readonly startedAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private totalBytes = 0;
  private totalFiles = 0;
  /** Bytes that came over the network in this run. */
  fetchedBytes = 0;
  /** Bytes found already complete or resumable on disk. */
  reusedBytes = 0;
  doneFiles = 0;

  constructor(options: ProgressOptions) {
    this.options = options;
  }

  start(totalFiles: number, totalBytes: number): void {
    this.totalFiles = totalFiles;
    this.totalBytes = totalBytes;
    this.timer = setInterval(() => { this.report(); }, this.options.tty === undefined ? this.options.intervalMs : 250);
    this.timer.unref();
  }

  addBytes(n: number): void {
    this.fetchedBytes += n;
  }

  fileDone(): void {
    this.doneFiles++;
  }

  stop(): void {
    clearInterval(this.timer);
    if (this.options.tty !== undefined) this.options.tty.write('\r\x1b[2K');
  }

  elapsedSeconds(): number {
    return (Date.now() - this.startedAt) / 1000;
  }

  private report(): void {
    const elapsed = this.elapsedSeconds();
    const done = this.fetchedBytes + this.reusedBytes;
    const rate = this.fetchedBytes / Math.max(elapsed, 0.001);
    const eta = rate > 0 ? (this.totalBytes - done) / rate : Number.POSITIVE_INFINITY;
    const text = `${formatBytes(done)} of ${formatBytes(this.totalBytes)}, ${this.doneFiles}/${this.totalFiles} files, ${(rate / MiB).toFixed(1)} MiB/s, ETA ${formatDuration(eta)}`;
    const tty = this.options.tty;
    if (tty === undefined) {
      this.options.log.info(`progress: ${text}`);
      return;
    }
    const width = 30;
    const filled = this.totalBytes > 0 ? Math.min(width, Math.round((done / this.totalBytes) * width)) : 0;
    tty.write(`\r\x1b[2K[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}`);
  }
}
