/**
 * The faults of the matrix and the seeded schedules that place them. A cell's seed is derived from
 * its (source, fault) names, so a cell always breaks the same data request (the Nth request that
 * carries file bytes, counted across every proxy of the source) and its name says which.
 */
import { mulberry32, type Fault, type ProxyRequestInfo, type Schedule } from '../servers/fault-proxy.js';

export interface MatrixFault {
  /** Column name in the report. */
  readonly name: string;
  readonly fault: Fault;
  /** How many data requests in a row get the fault: 1, or every one from the target on. */
  readonly persistent: boolean;
  /** What a downloader must do: recover (one transient fault) or may fail cleanly (a fault that never ends). */
  readonly expect: 'identical' | 'identical-or-clean-error';
}

const once = (name: string, fault: Fault): MatrixFault => ({ name, fault, persistent: false, expect: 'identical' });

export const MATRIX_FAULTS: readonly MatrixFault[] = [
  once('reset mid-body', { kind: 'reset-mid-body' }),
  once('500', { kind: 'status', status: 500 }),
  once('503', { kind: 'status', status: 503 }),
  once('503 + Retry-After', { kind: 'status', status: 503, retryAfter: '1' }),
  once('429 + Retry-After', { kind: 'status', status: 429, retryAfter: '1' }),
  once('429', { kind: 'status', status: 429 }),
  // No `ms`: the proxy stays silent until the client gives up (its idle timeout).
  once('stall', { kind: 'stall' }),
  once('truncate', { kind: 'truncate' }),
  once('wrong Content-Length', { kind: 'wrong-length' }),
  once('flipped byte', { kind: 'flip-byte' }),
  // Faults that never end: the run must stop in one clear line, and leave nothing wrong behind.
  { name: 'always 503', fault: { kind: 'status', status: 503, retryAfter: '0' }, persistent: true, expect: 'identical-or-clean-error' },
  { name: 'always flipped', fault: { kind: 'flip-byte' }, persistent: true, expect: 'identical-or-clean-error' },
];

/** Data requests the seed chooses among; every fixture makes more than this many. */
const TARGETS = 4;

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export interface CellPlan {
  readonly seed: number;
  /** 0-based index of the first data request that gets the fault. */
  readonly target: number;
}

export function planCell(source: string, fault: string): CellPlan {
  const seed = fnv1a(`${source}\u0000${fault}`);
  return { seed, target: Math.floor(mulberry32(seed)() * TARGETS) };
}

export const seedLabel = (plan: CellPlan): string => `seed 0x${plan.seed.toString(16).padStart(8, '0')}, data request #${plan.target}`;

/**
 * The schedule of one cell, shared by every proxy of a source (a hub and its CDN count together):
 * data requests are counted in arrival order and the target (and, if persistent, every later one)
 * gets the fault; other requests (listings, probes, HEADs) pass untouched.
 */
export function cellSchedule(fault: MatrixFault, plan: CellPlan): (isData: (req: ProxyRequestInfo) => boolean) => Schedule {
  let seen = 0;
  return (isData) => (req) => {
    if (!isData(req)) return { kind: 'none' };
    const index = seen++;
    const hit = fault.persistent ? index >= plan.target : index === plan.target;
    return hit ? fault.fault : { kind: 'none' };
  };
}
