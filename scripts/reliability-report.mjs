// Runs the reliability suites (fault matrix, crash trials, local faults, hostile inputs, secrets) with
// RELIABILITY_OUT set, reads the JSON lines they record, and writes docs/reliability.md.
// Usage: node scripts/reliability-report.mjs        (npm run reliability)
//        node scripts/reliability-report.mjs --from DIR   (only re-render from records already in DIR)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const COMMAND = 'npm run reliability';
const OUT_FILE = 'docs/reliability.md';
const SUITE_DIRS = ['test/faults', 'test/hostile', 'test/security'];

function runSuites() {
  const dir = mkdtempSync(join(tmpdir(), 'si-reliability-'));
  const roots = SUITE_DIRS.filter((d) => existsSync(d));
  const run = spawnSync(process.execPath, ['scripts/test.mjs', ...roots], {
    stdio: 'inherit',
    env: { ...process.env, RELIABILITY_OUT: dir },
  });
  return { dir, status: run.status ?? 1, roots };
}

function readSuites(dir) {
  const suites = {};
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.jsonl')) continue;
    suites[name.slice(0, -'.jsonl'.length)] = readFileSync(join(dir, name), 'utf8')
      .split('\n').filter((line) => line.trim() !== '').map((line) => JSON.parse(line));
  }
  return suites;
}

const sum = (rows, key) => rows.reduce((n, r) => n + (Number(r[key]) || 0), 0);
const unique = (values) => [...new Set(values)];
const esc = (text) => String(text ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ');
const table = (header, rows) => [
  `| ${header.join(' | ')} |`,
  `| ${header.map(() => '---').join(' | ')} |`,
  ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
].join('\n');
const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

function matrixSection(rows) {
  if (rows === undefined) return { text: '## Faults x sources\n\nNot run.\n', totals: undefined };
  const faulted = rows.filter((r) => r.fault !== 'none');
  const ordered = (key, order) => unique([...rows].sort((a, b) => (a[order] ?? 0) - (b[order] ?? 0)).map((r) => r[key]));
  const faults = ordered('fault', 'faultOrder');
  const sources = ordered('source', 'sourceOrder');
  const cell = (source, fault) => {
    const r = rows.find((x) => x.source === source && x.fault === fault);
    if (r === undefined) return 'not run';
    const extra = r.extraRequests > 0 && r.retries === 0 ? ` (+${r.extraRequests} req)` : '';
    return r.outcome === 'identical' || r.outcome === 'clean-error'
      ? `${r.outcome} · ${r.retries}${extra}`
      : `**${r.outcome}**`;
  };
  const undetectable = faulted.filter((r) => r.outcome === 'undetectable');
  const broken = faulted.filter((r) => r.outcome === 'broken');
  const lostWhereVerified = sum(faulted.filter((r) => r.detectsCorruption), 'bytesLost');
  const text = [
    '## Faults x sources',
    '',
    'Each cell is one run of the built CLI through fault proxies in front of the source\'s real server',
    '(or faithful double): the outcome, then the retries the CLI logged (ranges resumed or repeated,',
    'listings retried, files fetched again after a checksum mismatch). `identical`: exit 0 and every',
    'file\'s sha256 equal to the fixture\'s. `clean-error`: exit 1, one error line, and no file under',
    'its final name that differs from the fixture (`.part` files are allowed). `undetectable`: exit 0',
    'with a wrong file, possible only where the source publishes no checksum. "+N req" marks a cell',
    'whose retries happened inside a cloud SDK (the S3 SDK retries 5xx and 429 itself, without',
    'logging): N requests more than the fault-free run.',
    '',
    table(['source', 'verified by', ...faults], sources.map((s) => [s, rows.find((r) => r.source === s)?.verifies ?? '', ...faults.map((f) => cell(s, f))])),
    '',
    'The error line of each `clean-error` cell:',
    '',
    table(['source', 'fault', 'error line'], faulted.filter((r) => r.outcome === 'clean-error').map((r) => [r.source, r.fault, r.error])),
    '',
    'Seeds (which data request each fault hit, counted in arrival order across the source\'s proxies):',
    '',
    table(['source', ...faults.filter((f) => f !== 'none')], sources.map((s) => [s, ...faults.filter((f) => f !== 'none').map((f) => {
      const r = rows.find((x) => x.source === s && x.fault === f);
      return r === undefined ? '' : `${r.seed} → #${r.target}`;
    })])),
    '',
  ];
  if (undetectable.length > 0) {
    text.push(
      '**Undetectable corruption.** A source that publishes no checksum can only check sizes, so a byte',
      `flipped in transit lands in a file that looks complete: ${unique(undetectable.map((r) => r.source)).join(', ')}`,
      `(${plural(undetectable.length, 'cell')}, ${plural(sum(undetectable, 'bytesLost'), 'byte')} wrong). Plain HTTP can be verified when the`,
      'server sends `Content-MD5` or `Digest: sha-256=` (the "Content-MD5" row shows it caught).',
      'The tests assert these cells stay undetectable, so the gap cannot',
      'close or widen unnoticed.',
      '',
    );
  }
  if (broken.length > 0) {
    text.push(`**Broken cells** (neither identical nor a clean error): ${broken.map((r) => `${r.source} × ${r.fault}`).join(', ')}.`, '');
  }
  return {
    text: text.join('\n'),
    totals: {
      faultsInjected: sum(faulted, 'faultsInjected'),
      runs: rows.length,
      filesVerified: sum(rows, 'filesVerified'),
      bytesVerified: sum(rows, 'bytesVerified'),
      lostWhereVerified,
      undetectable,
      broken,
      sources: sources.length,
      faults: faults.length - 1,
    },
  };
}

function crashSection(rows) {
  if (rows === undefined) return { text: '## Crash and restart\n\nNot run.\n', totals: undefined };
  const pct = (r) => (r.totalBytes > 0 ? (100 * r.refetchedBytes) / r.totalBytes : 0);
  const maxRefetch = Math.max(0, ...rows.map(pct));
  return {
    text: [
      '## Crash and restart',
      '',
      'The CLI killed with SIGKILL part-way, then run again into the same destination.',
      '',
      table(['trial', 'killed after bytes', 'refetched bytes', 'total bytes', 'refetched %', 'identical'],
        rows.map((r) => [r.trial, r.killedAfterBytes, r.refetchedBytes, r.totalBytes, pct(r).toFixed(1), r.identical ? 'yes' : '**no**'])),
      '',
    ].join('\n'),
    totals: { trials: rows.length, maxRefetch, notIdentical: rows.filter((r) => !r.identical).length },
  };
}

function hostileSection(rows) {
  if (rows === undefined) return { text: '## Hostile inputs\n\nNot run.\n', totals: undefined };
  const categories = unique(rows.map((r) => r.category));
  return {
    text: [
      '## Hostile inputs',
      '',
      'Keys, archives and listings crafted to write outside the destination or to exhaust the machine.',
      '`error`: refused with a clear message; `safe`: handled without harm; escapes: any byte written outside DEST.',
      '',
      table(['category', 'cases', 'error', 'safe', 'escapes'], categories.map((c) => {
        const of = rows.filter((r) => r.category === c);
        return [c, of.length, of.filter((r) => r.outcome === 'error').length, of.filter((r) => r.outcome === 'safe').length, of.filter((r) => r.escaped === true).length];
      })),
      '',
    ].join('\n'),
    totals: { cases: rows.length, escapes: rows.filter((r) => r.escaped === true).length },
  };
}

function localSection(rows) {
  if (rows === undefined) return '## Local faults\n\nNot run.\n';
  const keys = unique(rows.flatMap((r) => Object.keys(r)));
  return ['## Local faults', '', 'Faults of the local machine (disk full, permissions, a destination that changes underneath).', '',
    table(keys, rows.map((r) => keys.map((k) => (typeof r[k] === 'object' && r[k] !== null ? JSON.stringify(r[k]) : r[k])))), ''].join('\n');
}

function secretsSection(rows) {
  if (rows === undefined) return '## Secrets\n\nNot run.\n';
  const sources = unique(rows.map((r) => r.source));
  return ['## Secrets', '',
    'Every source run at debug level with known secret values (keys, tokens, SAS, URL passwords, header values,',
    'HDFS secrets), through success and failure paths; a leak is any of the values, raw, base64 or',
    'percent-encoded, in stdout, stderr or the error line.', '',
    table(['source', 'paths', 'leaks'], sources.map((s) => {
      const of = rows.filter((r) => r.source === s);
      return [s, unique(of.map((r) => r.path)).join(', '), of.filter((r) => r.leaked === true).length];
    })), ''].join('\n');
}

function render(suites, note) {
  const matrix = matrixSection(suites['fault-matrix']);
  const crash = crashSection(suites['crash-restart']);
  const hostile = hostileSection(suites.hostile);
  const m = matrix.totals;
  const totals = [
    m === undefined ? '- Fault matrix: not run.' : [
      `- Faults injected: ${m.faultsInjected} (${m.faults} kinds of fault x ${m.sources} sources)`,
      `- Runs: ${m.runs} (one fault-free control run per source included)`,
      `- Files verified byte-identical (sha256 against the fixture): ${m.filesVerified} (${m.bytesVerified} bytes)`,
      `- Bytes lost: ${m.lostWhereVerified} where the source publishes a checksum`
        + (m.undetectable.length > 0 ? `; ${sum(m.undetectable, 'bytesLost')} flipped bytes went unnoticed in ${plural(m.undetectable.length, 'run')} of sources that publish none (see below)` : ''),
      `- Runs neither identical nor a clean error: ${m.broken.length}`,
    ].join('\n'),
    hostile.totals === undefined ? '- Hostile inputs: not run.' : `- Hostile inputs tried: ${hostile.totals.cases}; escapes: ${hostile.totals.escapes}`,
    crash.totals === undefined ? '- Crash trials: not run.'
      : `- Crash trials: ${crash.totals.trials}; max refetched after restart: ${crash.totals.maxRefetch.toFixed(1)} % of the model; not identical: ${crash.totals.notIdentical}`,
    suites['local-faults'] === undefined ? '- Local faults: not run.' : `- Local faults tried: ${suites['local-faults'].length}`,
    suites.secrets === undefined ? '- Secrets: not run.'
      : `- Secret-bearing runs: ${suites.secrets.length}; leaks: ${suites.secrets.filter((r) => r.leaked === true).length}`,
  ];
  return [
    '# Reliability',
    '',
    'Generated by `scripts/reliability-report.mjs` from the records the reliability tests write; do not edit by hand.',
    `Regenerate with \`${COMMAND}\` (runs \`node scripts/test.mjs ${SUITE_DIRS.join(' ')}\` with RELIABILITY_OUT set).`,
    ...(note === '' ? [] : ['', note]),
    '',
    '## Totals',
    '',
    ...totals,
    '',
    matrix.text,
    crash.text,
    hostile.text,
    localSection(suites['local-faults']),
    secretsSection(suites.secrets),
  ].join('\n');
}

const fromIndex = process.argv.indexOf('--from');
let note = '';
let suites;
if (fromIndex !== -1) {
  suites = readSuites(process.argv[fromIndex + 1]);
} else {
  const { dir, status } = runSuites();
  suites = readSuites(dir);
  rmSync(dir, { recursive: true, force: true });
  if (status !== 0) {
    note = '**Some reliability tests failed in the run that produced this page; see the test output.**';
    process.exitCode = status;
  }
}
mkdirSync('docs', { recursive: true });
writeFileSync(OUT_FILE, `${render(suites, note)}\n`);
console.log(`wrote ${OUT_FILE}`);
