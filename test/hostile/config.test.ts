/**
 * Hostile configuration: STORAGE_CONFIG / STORAGE_OVERRIDE_CONFIG, `<host>-headers` and the HDFS
 * secret directory, malformed in every way we could think of, through loadSettings and (a sample)
 * through the CLI. Each is refused with one line that names the variable or file, and no secret
 * value from the input ever appears in it.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { StorageError } from '../../src/errors.js';
import { loadSettings } from '../../src/settings/settings.js';
import { runCli } from '../helpers/cli.js';
import { errorLine, newSandbox, report, sandboxRoot, verdict } from './sandbox.js';

const SECRET = 'Sup3rS3cretValue';

interface ConfigCase {
  name: string;
  env: Record<string, string>;
  /** 'error': refused with a message matching `names`; 'safe': loads. */
  expect: 'error' | 'safe';
  names?: RegExp;
}

/** Loads settings and judges the outcome: a typed one-line error naming the input, never the secret. */
function judge(c: ConfigCase): 'error' | 'safe' {
  try {
    loadSettings(c.env);
    return 'safe';
  } catch (err) {
    assert.ok(err instanceof StorageError, `not a StorageError: ${String(err)}`);
    assert.equal(err.kind, 'InvalidInput');
    assert.doesNotMatch(err.message, /[\r\n]/);
    assert.ok(!err.message.includes(SECRET), `secret echoed: ${err.message}`);
    assert.ok(err.message.length < 1000, 'one readable line');
    if (c.names !== undefined) assert.match(err.message, c.names);
    return 'error';
  }
}

const deep = (n: number): string => '['.repeat(n) + ']'.repeat(n);

const STORAGE_CONFIG_CASES: ConfigCase[] = [
  { name: 'not JSON, secret unquoted', env: { STORAGE_CONFIG: `{"type":"s3","secret_access_key": ${SECRET}}` }, expect: 'error', names: /STORAGE_CONFIG: malformed JSON/ },
  { name: 'not JSON, the secret alone', env: { STORAGE_CONFIG: SECRET }, expect: 'error', names: /STORAGE_CONFIG/ },
  { name: 'not JSON, trailing comma after a secret', env: { STORAGE_CONFIG: `{"secret_access_key":"${SECRET}",}` }, expect: 'error', names: /STORAGE_CONFIG/ },
  { name: 'not JSON, secret in an unterminated string', env: { STORAGE_CONFIG: `{"secret_access_key":"${SECRET}` }, expect: 'error', names: /STORAGE_CONFIG/ },
  { name: 'a JSON array', env: { STORAGE_CONFIG: `["${SECRET}"]` }, expect: 'error', names: /STORAGE_CONFIG: expected a JSON object/ },
  { name: 'a JSON string', env: { STORAGE_CONFIG: `"${SECRET}"` }, expect: 'error', names: /STORAGE_CONFIG: expected a JSON object/ },
  { name: 'JSON null', env: { STORAGE_CONFIG: 'null' }, expect: 'error', names: /STORAGE_CONFIG/ },
  { name: 'a number', env: { STORAGE_CONFIG: '42' }, expect: 'error', names: /STORAGE_CONFIG/ },
  { name: 'type is a number', env: { STORAGE_CONFIG: '{"type": 5}' }, expect: 'error', names: /"type" must be a string/ },
  { name: 'nested object as an S3 value', env: { STORAGE_CONFIG: `{"type":"s3","endpoint_url":{"url":"${SECRET}"}}` }, expect: 'error', names: /"endpoint_url"/ },
  { name: 'array as an S3 secret', env: { STORAGE_CONFIG: `{"type":"s3","secret_access_key":["${SECRET}"]}` }, expect: 'error', names: /"secret_access_key"/ },
  { name: 'verify_ssl neither true nor false', env: { STORAGE_CONFIG: '{"type":"s3","verify_ssl":"maybe"}' }, expect: 'error', names: /STORAGE_CONFIG\.verify_ssl/ },
  { name: 'anonymous as an object', env: { STORAGE_CONFIG: '{"type":"s3","anonymous":{}}' }, expect: 'error', names: /"anonymous"/ },
  { name: 'unknown type is kept, not fatal', env: { STORAGE_CONFIG: '{"type":"ftp","x":1}' }, expect: 'safe' },
  { name: '__proto__ key does not pollute', env: { STORAGE_CONFIG: '{"__proto__":{"type":"s3","polluted":true},"constructor":{"prototype":{"polluted":true}}}' }, expect: 'safe' },
  { name: 'nesting 100k deep', env: { STORAGE_CONFIG: deep(100_000) }, expect: 'error', names: /STORAGE_CONFIG/ },
  { name: 'huge object (5 MB, 100k keys)', env: { STORAGE_CONFIG: JSON.stringify(Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, 'v'.repeat(40)]))) }, expect: 'safe' },
  { name: 'override not JSON, secret unquoted', env: { STORAGE_CONFIG: '{"type":"s3"}', STORAGE_OVERRIDE_CONFIG: `{"secret_access_key": ${SECRET}}` }, expect: 'error', names: /STORAGE_OVERRIDE_CONFIG/ },
  { name: 'override an array', env: { STORAGE_OVERRIDE_CONFIG: '[]' }, expect: 'error', names: /STORAGE_OVERRIDE_CONFIG: expected a JSON object/ },
  { name: 'override turns type into an object', env: { STORAGE_CONFIG: '{"type":"s3"}', STORAGE_OVERRIDE_CONFIG: '{"type":{"x":1}}' }, expect: 'error', names: /"type" must be a string/ },
  { name: 'hdfs TLS_KEY not base64', env: { STORAGE_CONFIG: `{"type":"hdfs","TLS_KEY":"!!${SECRET}!!"}` }, expect: 'error', names: /STORAGE_CONFIG\.TLS_KEY: expected base64/ },
  { name: 'hdfs TLS_CERT base64 of garbage', env: { STORAGE_CONFIG: `{"type":"hdfs","TLS_CERT":"${Buffer.from(SECRET).toString('base64')}","TLS_KEY":"${Buffer.from(SECRET).toString('base64')}"}` }, expect: 'error', names: /STORAGE_CONFIG\.TLS_CERT: expected a PEM certificate/ },
  { name: 'hdfs TLS_KEY base64 of garbage', env: { STORAGE_CONFIG: `{"type":"webhdfs","TLS_KEY":"${Buffer.from(SECRET).toString('base64')}"}` }, expect: 'error', names: /STORAGE_CONFIG\.TLS_KEY: expected a PEM private key/ },
  { name: 'hdfs HEADERS not JSON', env: { STORAGE_CONFIG: JSON.stringify({ type: 'hdfs', HEADERS: `{"X-Token": ${SECRET}` }) }, expect: 'error', names: /STORAGE_CONFIG\.HEADERS: malformed JSON/ },
  { name: 'hdfs HEADERS an object, not a string', env: { STORAGE_CONFIG: JSON.stringify({ type: 'hdfs', HEADERS: { 'X-Token': SECRET } }) }, expect: 'error', names: /STORAGE_CONFIG\.HEADERS/ },
  { name: 'hdfs namenode with credentials', env: { STORAGE_CONFIG: JSON.stringify({ type: 'hdfs', HDFS_NAMENODE: `http://user:${SECRET}@nn:9870` }) }, expect: 'error', names: /HDFS_NAMENODE/ },
  { name: 'hdfs namenode unparsable with credentials', env: { STORAGE_CONFIG: JSON.stringify({ type: 'hdfs', HDFS_NAMENODE: `http://user:${SECRET}@[nn` }) }, expect: 'error', names: /HDFS_NAMENODE/ },
  { name: 'hdfs namenode of another scheme with credentials', env: { STORAGE_CONFIG: JSON.stringify({ type: 'hdfs', HDFS_NAMENODE: `ftp://user:${SECRET}@nn:21` }) }, expect: 'error', names: /HDFS_NAMENODE.*not ftp:/ },
  { name: 'hdfs N_THREADS not a number', env: { STORAGE_CONFIG: '{"type":"hdfs","N_THREADS":"many"}' }, expect: 'error', names: /STORAGE_CONFIG\.N_THREADS/ },
];

const HEADER_CASES: ConfigCase[] = [
  { name: 'not JSON, secret unquoted', env: { 'models.example.com-headers': `{"Authorization": Bearer ${SECRET}}` }, expect: 'error', names: /models\.example\.com-headers: malformed JSON/ },
  { name: 'not JSON, the secret alone', env: { 'models.example.com-headers': SECRET }, expect: 'error', names: /models\.example\.com-headers/ },
  { name: 'a JSON array', env: { 'h-headers': `["${SECRET}"]` }, expect: 'error', names: /h-headers: expected a JSON object/ },
  { name: 'a nested object value', env: { 'h-headers': `{"Authorization":{"token":"${SECRET}"}}` }, expect: 'error', names: /header "Authorization" must be a string/ },
  { name: 'a boolean value', env: { 'h-headers': '{"X-Flag": true}' }, expect: 'error', names: /"X-Flag" must be a string/ },
  { name: 'a null value', env: { 'h-headers': '{"X-Null": null}' }, expect: 'error', names: /"X-Null" must be a string/ },
  { name: 'CRLF injection in a value', env: { 'h-headers': JSON.stringify({ 'X-A': `v\r\nAuthorization: Bearer ${SECRET}` }) }, expect: 'error', names: /"X-A" contains a line break/ },
  { name: 'lone LF in a value', env: { 'h-headers': JSON.stringify({ 'X-A': `v\n${SECRET}` }) }, expect: 'error', names: /line break/ },
  { name: 'NUL in a value', env: { 'h-headers': JSON.stringify({ 'X-A': `v\0${SECRET}` }) }, expect: 'error', names: /h-headers/ },
  { name: 'other control character in a value', env: { 'h-headers': JSON.stringify({ 'X-A': `v\u0001${SECRET}` }) }, expect: 'error', names: /h-headers.*"X-A"/ },
  { name: 'CRLF injection in a name', env: { 'h-headers': JSON.stringify({ 'X-A\r\nEvil': 'v' }) }, expect: 'error', names: /not a valid header name/ },
  { name: 'colon and space in a name', env: { 'h-headers': JSON.stringify({ 'X-A: b': 'v' }) }, expect: 'error', names: /not a valid header name/ },
  { name: 'empty name', env: { 'h-headers': JSON.stringify({ '': 'v' }) }, expect: 'error', names: /not a valid header name/ },
  { name: 'a number value is taken as text', env: { 'h-headers': '{"X-Count": 3}' }, expect: 'safe' },
  { name: 'a 100 KB value', env: { 'h-headers': JSON.stringify({ 'X-Big': 'b'.repeat(100_000) }) }, expect: 'safe' },
];

describe('hostile STORAGE_CONFIG and STORAGE_OVERRIDE_CONFIG through loadSettings', () => {
  for (const c of STORAGE_CONFIG_CASES) {
    it(`${c.name}: ${c.expect}`, () => {
      const outcome = judge(c);
      report('config-storage-config', c.name, outcome, false);
      assert.equal(outcome, c.expect);
      assert.equal((Object.prototype as Record<string, unknown>).polluted, undefined);
    });
  }
});

describe('hostile <host>-headers through loadSettings', () => {
  for (const c of HEADER_CASES) {
    it(`${c.name}: ${c.expect}`, () => {
      const outcome = judge(c);
      report('config-headers', c.name, outcome, false);
      assert.equal(outcome, c.expect);
    });
  }
});

describe('hostile HDFS secret directories through loadSettings', () => {
  let sandboxes: Awaited<ReturnType<typeof sandboxRoot>>;
  before(async () => { sandboxes = await sandboxRoot('si-hostile-hdfs-'); });
  after(() => sandboxes.dispose());

  /** Files of the secret dir: a Buffer is a file, 'dir' a directory in its place. */
  const CASES: { name: string; files: Record<string, Buffer | 'dir'>; expect: 'error' | 'safe'; names?: RegExp }[] = [
    { name: 'missing directory (no HDFS credentials)', files: {}, expect: 'safe' },
    { name: 'every key empty', files: { HDFS_NAMENODE: Buffer.alloc(0), TLS_CERT: Buffer.alloc(0), TLS_KEY: Buffer.alloc(0), HEADERS: Buffer.alloc(0) }, expect: 'safe' },
    { name: 'a directory instead of HEADERS', files: { HEADERS: 'dir' }, expect: 'error', names: /HEADERS in HDFS_SECRET_DIR/ },
    { name: 'a directory instead of TLS_KEY', files: { TLS_KEY: 'dir' }, expect: 'error', names: /TLS_KEY in HDFS_SECRET_DIR/ },
    { name: 'binary TLS_CERT', files: { TLS_CERT: Buffer.from([0, 1, 2, 0xff, 0xfe, ...Buffer.from(SECRET)]), TLS_KEY: Buffer.from(`-----BEGIN PRIVATE KEY-----\n${SECRET}\n-----END PRIVATE KEY-----\n`) }, expect: 'error', names: /TLS_CERT .*expected a PEM certificate/ },
    { name: 'binary TLS_KEY', files: { TLS_KEY: Buffer.from([0xde, 0xad, 0, ...Buffer.from(SECRET)]) }, expect: 'error', names: /TLS_KEY .*expected a PEM private key/ },
    { name: 'TLS_KEY without TLS_CERT', files: { TLS_KEY: Buffer.from(`-----BEGIN PRIVATE KEY-----\n${SECRET}\n-----END PRIVATE KEY-----\n`) }, expect: 'error', names: /TLS_CERT and TLS_KEY go together/ },
    { name: 'binary HEADERS', files: { HEADERS: Buffer.from([0xff, 0, 0x7b, ...Buffer.from(SECRET)]) }, expect: 'error', names: /HEADERS .*malformed JSON/ },
    { name: 'HEADERS with CRLF injection', files: { HEADERS: Buffer.from(JSON.stringify({ 'X-Gw': `a\r\nX-Evil: ${SECRET}` })) }, expect: 'error', names: /line break/ },
    { name: 'HEADERS larger than 1 MiB', files: { HEADERS: Buffer.alloc(2 * 2 ** 20, 0x20) }, expect: 'error', names: /HEADERS .*larger than 1 MiB/ },
    { name: 'HDFS_NAMENODE of another scheme', files: { HDFS_NAMENODE: Buffer.from('ftp://nn:21') }, expect: 'error', names: /HDFS_NAMENODE/ },
    { name: 'HDFS_NAMENODE with credentials', files: { HDFS_NAMENODE: Buffer.from(`http://admin:${SECRET}@nn:9870`) }, expect: 'error', names: /HDFS_NAMENODE/ },
    { name: 'HDFS_ROOTPATH relative with ..', files: { HDFS_ROOTPATH: Buffer.from('/user/../../etc') }, expect: 'error', names: /HDFS_ROOTPATH/ },
    { name: 'USER_PROXY with a newline', files: { USER_PROXY: Buffer.from('alice\nbob') }, expect: 'error', names: /USER_PROXY/ },
    { name: 'TLS_SKIP_VERIFY neither true nor false', files: { TLS_SKIP_VERIFY: Buffer.from('perhaps') }, expect: 'error', names: /TLS_SKIP_VERIFY/ },
    { name: 'N_THREADS binary', files: { N_THREADS: Buffer.from([0xff, 0xfe]) }, expect: 'error', names: /N_THREADS/ },
    { name: 'unknown files are ignored', files: { 'random-file': Buffer.from(SECRET), '.hidden': 'dir' }, expect: 'safe' },
  ];

  for (const c of CASES) {
    it(`${c.name}: ${c.expect}`, async () => {
      const box = await newSandbox(sandboxes.root);
      const dir = path.join(box.dir, 'hdfscreds');
      if (Object.keys(c.files).length > 0) await mkdir(dir);
      for (const [name, content] of Object.entries(c.files)) {
        if (content === 'dir') await mkdir(path.join(dir, name));
        else await writeFile(path.join(dir, name), content);
      }
      const outcome = judge({ name: c.name, env: { HDFS_SECRET_DIR: dir }, expect: c.expect, ...(c.names === undefined ? {} : { names: c.names }) });
      report('config-hdfs-secret-dir', c.name, outcome, false);
      assert.equal(outcome, c.expect);
    });
  }

  it('HDFS_SECRET_DIR naming a file: error', async () => {
    const box = await newSandbox(sandboxes.root);
    const outcome = judge({ name: 'file as dir', env: { HDFS_SECRET_DIR: path.join(box.dir, 'sentinel.txt') }, expect: 'error', names: /HDFS_SECRET_DIR/ });
    report('config-hdfs-secret-dir', 'HDFS_SECRET_DIR naming a file', outcome, false);
    assert.equal(outcome, 'error');
  });
});

describe('hostile configuration through the CLI', { concurrency: 3 }, () => {
  let sandboxes: Awaited<ReturnType<typeof sandboxRoot>>;
  before(async () => { sandboxes = await sandboxRoot('si-hostile-config-cli-'); });
  after(() => sandboxes.dispose());

  const CASES: { name: string; env: (dir: string) => Promise<Record<string, string>>; names: RegExp }[] = [
    { name: 'STORAGE_CONFIG not JSON with a secret', env: () => Promise.resolve({ STORAGE_CONFIG: `{"type":"s3","secret_access_key": ${SECRET}}` }), names: /STORAGE_CONFIG: malformed JSON/ },
    { name: 'STORAGE_OVERRIDE_CONFIG an array', env: () => Promise.resolve({ STORAGE_OVERRIDE_CONFIG: `["${SECRET}"]` }), names: /STORAGE_OVERRIDE_CONFIG/ },
    { name: 'headers with CRLF injection', env: () => Promise.resolve({ 'models.example.com-headers': JSON.stringify({ Authorization: `Bearer ${SECRET}\r\nX-Evil: 1` }) }), names: /models\.example\.com-headers/ },
    { name: 'headers not JSON', env: () => Promise.resolve({ 'models.example.com-headers': `{Authorization: ${SECRET}}` }), names: /models\.example\.com-headers/ },
    {
      name: 'HDFS secret dir with a directory as TLS_KEY',
      env: async (dir) => { await mkdir(path.join(dir, 'creds', 'TLS_KEY'), { recursive: true }); return { HDFS_SECRET_DIR: path.join(dir, 'creds') }; },
      names: /TLS_KEY in HDFS_SECRET_DIR/,
    },
    {
      name: 'HDFS secret dir with binary HEADERS',
      env: async (dir) => { await mkdir(path.join(dir, 'creds')); await writeFile(path.join(dir, 'creds', 'HEADERS'), Buffer.from([0xff, ...Buffer.from(SECRET)])); return { HDFS_SECRET_DIR: path.join(dir, 'creds') }; },
      names: /HEADERS .*malformed JSON/,
    },
  ];

  for (const c of CASES) {
    it(`${c.name}: error`, async () => {
      const box = await newSandbox(sandboxes.root);
      const env = await c.env(box.dir);
      // Settings are read before any download, so any URI will do.
      const result = await runCli([`file://${box.dir}/outside`, box.dest], { env, timeoutMs: 20_000 });
      const outcome = verdict(result);
      report('config-cli', c.name, outcome, false);
      assert.equal(outcome, 'error', result.stderr);
      assert.match(errorLine(result), c.names);
      assert.ok(!result.stderr.includes(SECRET), result.stderr);
    });
  }
});
