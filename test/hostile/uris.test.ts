/**
 * Malformed storage URIs, generated systematically (every scheme x every kind of damage) and at
 * random (fast-check): parseStorageUri either returns a Location or throws our InvalidInput error
 * with one line that never contains the password or signature the input carried. A sample goes
 * through the CLI: exit 1, one error line, no secret.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { StorageError } from '../../src/errors.js';
import { parseStorageUri } from '../../src/uri/index.js';
import { runCli } from '../helpers/cli.js';
import { errorLine, newSandbox, report, sandboxRoot, verdict } from './sandbox.js';

const SECRET = 'pw5ecretXYZ';

const SCHEMES = ['gs', 's3', 'hdfs', 'webhdfs', 'http', 'https', 'git', 'hf', 'modelscope', 'oci', 'oci+fetch', 'file', 'pvc', 'S3', 'ftp', 'x-unknown'];

/** Each damage turns a scheme into one URI (`s` is the scheme). */
const DAMAGE: [string, (s: string) => string][] = [
  ['empty authority', (s) => `${s}://`],
  ['only slashes', (s) => `${s}:////`],
  ['single slash', (s) => `${s}:/bucket/x`],
  ['no slashes', (s) => `${s}:bucket`],
  ['password in userinfo', (s) => `${s}://user:${SECRET}@host/models/x`],
  ['password with an unencoded slash', (s) => `${s}://user:pa/${SECRET}@host/x`],
  ['password and a broken host', (s) => `${s}://user:${SECRET}@[bad/x`],
  ['token as the user name', (s) => `${s}://${SECRET}@host/x.git`],
  ['signature in the query', (s) => `${s}://host/x?sv=1&sig=${SECRET}`],
  ['token in the fragment', (s) => `${s}://host/x#access_token=${SECRET}`],
  ['bad percent escape', (s) => `${s}://bucket/%zz/model`],
  ['truncated percent escape', (s) => `${s}://bucket/model%`],
  ['split UTF-8 escape', (s) => `${s}://bucket/%E0%A4%A`],
  ['encoded dot-dot', (s) => `${s}://bucket/%2e%2e/%2e%2e/etc`],
  ['dot-dot segments', (s) => `${s}://bucket/a/../../etc`],
  ['dot segments', (s) => `${s}://bucket/./a/.`],
  ['empty segments', (s) => `${s}://bucket//a///b`],
  ['newline', (s) => `${s}://bucket/a\nINFO forged log line`],
  ['carriage return', (s) => `${s}://bucket/a\r`],
  ['NUL', (s) => `${s}://bucket/a\0b`],
  ['tab', (s) => `${s}://bucket/a\tb`],
  ['DEL', (s) => `${s}://bucket/a\u007fb`],
  ['C1 control (NEL)', (s) => `${s}://bucket/a\u0085b`],
  ['leading space', (s) => ` ${s}://bucket/a`],
  ['trailing space', (s) => `${s}://bucket/a `],
  ['inner space', (s) => `${s}://buck et/a`],
  ['only whitespace after the scheme', (s) => `${s}://   `],
  ['overlong (100k characters)', (s) => `${s}://bucket/${'a/'.repeat(50_000)}`],
  ['overlong host', (s) => `${s}://${'h'.repeat(10_000)}.example.com/x`],
  ['unicode host', (s) => `${s}://模型.example/x`],
  ['unicode path', (s) => `${s}://bucket/模型/ünï`],
  ['bidi override', (s) => `${s}://bucket/\u202egnp.exe`],
  ['zero-width space', (s) => `${s}://buc\u200bket/x`],
  ['unpaired surrogate', (s) => `${s}://bucket/\ud800x`],
  ['bad port', (s) => `${s}://host:99999/x`],
  ['negative port', (s) => `${s}://host:-1/x`],
  ['non-numeric port', (s) => `${s}://host:abc/x`],
  ['IPv6 without brackets', (s) => `${s}://::1/x`],
  ['unclosed IPv6 bracket', (s) => `${s}://[::1/x`],
  ['uppercase and dots in bucket', (s) => `${s}://Bad..Bucket/x`],
  ['backslashes', (s) => `${s}:\\\\host\\share\\x`],
  ['double scheme', (s) => `${s}://${s}://bucket/x`],
  ['revision separators only', (s) => `${s}://owner/model:`],
  ['many colons and ats', (s) => `${s}://a:b:c@d@e:f/g@h:i`],
];

/** Parses `uri` and judges the outcome; the error (if any) is asserted to be ours, one line, secret-free. */
function judge(uri: string, existsLocally = false): 'error' | 'safe' {
  try {
    const location = parseStorageUri(uri, { existsLocally });
    assert.equal(typeof location.scheme, 'string');
    return 'safe';
  } catch (err) {
    assert.ok(err instanceof StorageError, `not our error for ${JSON.stringify(uri.slice(0, 80))}: ${String(err)}`);
    assert.equal(err.kind, 'InvalidInput');
    // JSON quoting escapes C0 controls; C1 controls and U+2028 stay raw but break no log line.
    assert.doesNotMatch(err.message, /[\r\n]/, 'one line');
    assert.ok(!err.message.includes(SECRET), `secret in: ${err.message}`);
    assert.ok(err.message.length < 5000, `message of ${err.message.length} characters`);
    return 'error';
  }
}

describe('generated malformed URIs through parseStorageUri', () => {
  const generated = SCHEMES.flatMap((scheme) => DAMAGE.map(([damage, make]) => ({ name: `${scheme}: ${damage}`, uri: make(scheme) })));

  it(`has 100+ cases (${generated.length})`, () => {
    assert.ok(generated.length >= 100);
  });

  it('each parses to a location or is refused with one secret-free line', () => {
    const outcomes = { error: 0, safe: 0 };
    for (const { name, uri } of generated) {
      const outcome = judge(uri);
      outcomes[outcome]++;
      report('uris', name, outcome, false);
    }
    // Most damage is refused; what parses (an odd but valid key, a literal "%zz") is still a location.
    assert.ok(outcomes.error > outcomes.safe, JSON.stringify(outcomes));
  });

  it('control characters, whitespace and unpaired surrogates are refused for every scheme', () => {
    for (const scheme of SCHEMES) {
      for (const damage of ['newline', 'carriage return', 'NUL', 'tab', 'DEL', 'C1 control (NEL)', 'leading space', 'unpaired surrogate', 'bidi override']) {
        const make = DAMAGE.find(([d]) => d === damage)?.[1];
        assert.ok(make !== undefined);
        assert.equal(judge(make(scheme)), 'error', `${scheme}: ${damage}`);
        // A leading space may be part of an existing local directory's name; a control character never is.
        if (damage !== 'leading space') assert.equal(judge(make(scheme), true), 'error', `${scheme}: ${damage} (exists locally)`);
      }
    }
  });

  it('dot-dot segments never reach a bucket key or an HDFS or PVC path', () => {
    for (const scheme of ['gs', 's3', 'hdfs', 'webhdfs', 'pvc']) assert.equal(judge(`${scheme}://bucket/a/../../etc`), 'error', scheme);
  });
});

describe('random URIs through parseStorageUri (fast-check)', () => {
  const schemes = fc.constantFrom(...SCHEMES.map((s) => `${s}://`), 'file:', 'https:');
  const paths = fc.constantFrom('', '/', 'https://acct.blob.core.windows.net/', 'https://acct.file.core.windows.net/', 'hf://', 's3://b/');
  const units = fc.constantFrom(...'aZ09-_.~/:@?#%&=+ \\[]'.split(''), '..', '%2e', '%2F', '%zz', '%', 'sig=', '.git', '\n', '\0', '\u202e', '模', '\ud800');

  it('never throws anything but our InvalidInput error, never leaks the password', () => {
    fc.assert(
      fc.property(schemes, paths, fc.string({ unit: units, maxLength: 40 }), fc.string({ unit: units, maxLength: 20 }), fc.boolean(), (scheme, prefix, tail, host, existsLocally) => {
        // The secret sits in userinfo, where every scheme's redaction must find it.
        judge(`${scheme}user:${SECRET}@${host.replace(/[/?#@]/g, '')}/${tail}`, existsLocally);
        // Without a secret, any prefix and any tail.
        judge(`${prefix}${tail}`, existsLocally);
      }),
      { numRuns: 3000 },
    );
  });

  it('arbitrary full-Unicode strings never crash the parser', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), fc.boolean(), (uri, existsLocally) => { judge(uri, existsLocally); }), { numRuns: 3000 });
  });
});

describe('malformed URIs through the CLI', { concurrency: 3 }, () => {
  let sandboxes: Awaited<ReturnType<typeof sandboxRoot>>;
  before(async () => { sandboxes = await sandboxRoot('si-hostile-uris-'); });
  after(() => sandboxes.dispose());

  const SAMPLE = [
    `s3://user:${SECRET}@Bad..Bucket/x`,
    `gs://bucket/a/../../etc?sig=${SECRET}`,
    `hdfs://user:${SECRET}@nn:9870/a/../../x`,
    `https://user:${SECRET}@[bad/model.bin`,
    `git://${SECRET}@host/repo.git\nERROR forged`,
    `hf://user:${SECRET}@owner/model/extra`,
    `oci://user:${SECRET}@REGISTRY/Repo:tag@sha256:abc`,
    `pvc://user:${SECRET}@Claim_/x`,
    `ftp://user:${SECRET}@host/model`,
    `modelscope://a/b\u202e`,
    `s3://bucket/${'k/'.repeat(20_000)}\u0085`,
    ' ',
  ];

  for (const uri of SAMPLE) {
    it(`${JSON.stringify(uri.slice(0, 60))}: error`, async () => {
      const box = await newSandbox(sandboxes.root);
      const result = await runCli([uri, box.dest], { timeoutMs: 20_000 });
      const outcome = verdict(result);
      report('uris-cli', uri.slice(0, 80), outcome, false);
      assert.equal(outcome, 'error', result.stderr);
      assert.match(errorLine(result), /URI|uri/);
      assert.ok(!result.stderr.includes(SECRET), result.stderr);
      assert.doesNotMatch(result.stderr, /^ERROR forged/m, 'a newline in a URI cannot forge a log line');
    });
  }
});
