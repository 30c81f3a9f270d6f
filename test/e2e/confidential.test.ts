/**
 * Confidential models end to end: the bundled CLI downloads JWE files (made with jose) from nginx,
 * one alone and some inside an archive, gets the key from the Confidential Data Hub double and
 * leaves the plaintext in DEST under names without `.jwe`. A 1 GiB JWE file is decrypted under a
 * bounded peak RSS: decryption streams, whatever the file's size.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createCipheriv, randomBytes as cryptoRandomBytes } from 'node:crypto';
import { open, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CompactEncrypt } from 'jose';
import { baseEnv, CLI, failsWith, runCli, type CliResult } from '../helpers/cli.js';
import { skipWithout } from '../helpers/system.js';
import { freshDest, hashOf, hashTree, randomBytes, tempDir, writeTree, type Tree } from '../helpers/tree.js';
import { startCdhDouble, type CdhDouble } from '../servers/cdh-double.js';
import { startNginx, type NginxServer } from '../servers/nginx.js';

const KEY = cryptoRandomBytes(32);
const RESOURCE = 'default/model-key/v1';
const VOCAB = Buffer.from('plaintext-vocabulary-that-must-stay-out-of-logs\n');
const MODEL = randomBytes(2 * 2 ** 20 + 5, 51);
/** What DEST must hold after the archive is unpacked and decrypted. */
const PLAIN_TREE: Tree = new Map([
  ['model/weights.bin', randomBytes(700_000, 52)],
  ['model/config.json', Buffer.from('{"architecture":"demo"}')],
  ['model/tokenizer/vocab.txt', VOCAB],
]);

function encrypt(plaintext: Uint8Array, alg = 'dir', enc = 'A256GCM'): Promise<string> {
  return new CompactEncrypt(plaintext).setProtectedHeader({ alg, enc }).encrypt(KEY);
}

/** Peak RSS allowed for decrypting the 1 GiB file (Node and the bundle alone take about 60 MiB). */
const MAX_RSS_MIB = 300;

/**
 * Writes a compact JWE (dir, A256GCM, KEY) of `size` zero bytes to `file` as it encrypts them, in
 * 3 MiB steps (a multiple of 3, so each step's base64url joins the next without padding): neither
 * the plaintext nor the JWE is ever in memory. jose, which encrypts in memory, cannot make it.
 */
async function writeLargeJwe(file: string, size: number): Promise<void> {
  const header = Buffer.from(JSON.stringify({ alg: 'dir', enc: 'A256GCM' })).toString('base64url');
  const iv = cryptoRandomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', KEY, iv);
  cipher.setAAD(Buffer.from(header, 'ascii'));
  const zeros = Buffer.alloc(3 * 2 ** 20);
  const out = await open(file, 'w');
  try {
    await out.write(`${header}..${iv.toString('base64url')}.`);
    for (let done = 0; done < size; done += zeros.length) {
      await out.write(cipher.update(zeros.subarray(0, Math.min(zeros.length, size - done))).toString('base64url'));
    }
    cipher.final();
    await out.write(`.${cipher.getAuthTag().toString('base64url')}\n`);
  } finally {
    await out.close();
  }
}

/** Whether `file` holds exactly `size` zero bytes, read in steps. */
async function holdsZeros(file: string, size: number): Promise<boolean> {
  const handle = await open(file, 'r');
  try {
    if ((await handle.stat()).size !== size) return false;
    const buffer = Buffer.alloc(4 * 2 ** 20);
    for (let position = 0; position < size;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0 || buffer.subarray(0, bytesRead).some((b) => b !== 0)) return false;
      position += bytesRead;
    }
    return true;
  } finally {
    await handle.close();
  }
}

/** Runs the CLI under /usr/bin/time; returns its exit code, stderr and peak RSS in KiB. */
function runCliMeasured(args: string[], env: Record<string, string>, rssFile: string): Promise<{ code: number | null; stderr: string; maxRssKiB: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-f', '%M', '-o', rssFile, process.execPath, CLI, ...args], { env: { ...baseEnv(), ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); }, 600_000); // a hang guard, not a timing assertion
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      readFile(rssFile, 'utf8').then((text) => { resolve({ code, stderr, maxRssKiB: Number(text.trim().split('\n').pop()) }); }, reject);
    });
  });
}

describe('confidential models (nginx + CDH double)', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let nginx: NginxServer;
  let cdh: CdhDouble;

  before(async () => {
    work = await tempDir('si-confidential-e2e-');
    const root = path.join(work.dir, 'root');
    await mkdir(root);
    await writeFile(path.join(root, 'model.bin.jwe'), await encrypt(MODEL));
    // In the archive: a .jwe file, a JWE without the suffix, and a plain file.
    const src = path.join(work.dir, 'tree');
    await writeTree(src, new Map([
      ['model/weights.bin.jwe', Buffer.from(await encrypt(PLAIN_TREE.get('model/weights.bin') ?? Buffer.alloc(0), 'A256KW', 'A256CBC-HS512'))],
      ['model/config.json', PLAIN_TREE.get('model/config.json') ?? Buffer.alloc(0)],
      ['model/tokenizer/vocab.txt', Buffer.from(await encrypt(VOCAB))],
    ]));
    execFileSync('tar', ['-czf', path.join(root, 'model.tar.gz'), '-C', src, 'model']);
    nginx = await startNginx({ root });
    // The CDH returns the key base64url-encoded, as a KBS resource written from text usually is.
    cdh = await startCdhDouble({ [RESOURCE]: KEY.toString('base64url') });
  });

  after(async () => {
    await cdh.stop();
    await nginx.stop();
    await work[Symbol.asyncDispose]();
  });

  function env(extra: Record<string, string> = {}): Record<string, string> {
    return { CONFIDENTIAL_ENABLED: 'true', CONFIDENTIAL_RESOURCE_ID: `kbs:///${RESOURCE}`, CDH_ADDR: cdh.url, ...extra };
  }

  async function run(uris: string[], extraEnv: Record<string, string>): Promise<{ result: CliResult; dests: string[] }> {
    const dests = uris.map(() => freshDest(path.join(work.dir, 'out')));
    const result = await runCli(uris.flatMap((uri, i) => [uri, dests[i] ?? '']), { env: extraEnv });
    return { result, dests };
  }

  it('downloads, unpacks and decrypts to byte-identical plaintext without .jwe, keeping key and plaintext out of the log', async () => {
    const { result, dests } = await run([`${nginx.httpUrl}/model.bin.jwe`, `${nginx.httpUrl}/model.tar.gz`], env({ STORAGE_INITIALIZER_LOG_LEVEL: 'debug' }));
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await hashTree(dests[0] ?? ''), hashOf(new Map([['model.bin', MODEL]])));
    assert.deepEqual(await hashTree(dests[1] ?? ''), hashOf(PLAIN_TREE));
    assert.match(result.stderr, / INFO decrypted 1 files\n/);
    assert.match(result.stderr, / INFO decrypted 2 files\n/);
    assert.match(result.stderr, / DEBUG decrypted model\/tokenizer\/vocab\.txt\n/);
    const output = result.stdout + result.stderr;
    for (const form of [KEY.toString('base64url'), KEY.toString('base64'), KEY.toString('hex'), KEY.toString('latin1')]) {
      assert.ok(!output.includes(form), 'the key appears in the output');
    }
    assert.ok(!output.includes(VOCAB.toString().trim()), 'plaintext appears in the output');
    assert.deepEqual(cdh.requests.slice(-2), [`/cdh/resource/${RESOURCE}`, `/cdh/resource/${RESOURCE}`]);
  });

  it('decrypts a 1 GiB JWE file in bounded memory', { skip: skipWithout('/usr/bin/time') }, async (t) => {
    const size = 768 * 2 ** 20 + 5; // base64url makes this a JWE file of just over 1 GiB
    const root = path.join(work.dir, 'root');
    await writeLargeJwe(path.join(root, 'large.bin.jwe'), size);
    const dest = freshDest(path.join(work.dir, 'out'));
    try {
      const run = await runCliMeasured([`${nginx.httpUrl}/large.bin.jwe`, dest], env(), path.join(work.dir, 'large.rss'));
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(await readdir(dest), ['large.bin']);
      assert.ok(await holdsZeros(path.join(dest, 'large.bin'), size), 'the decrypted file is not the plaintext');
      const mib = Math.round(run.maxRssKiB / 1024);
      t.diagnostic(`peak RSS of the CLI downloading and decrypting a 1 GiB JWE file: ${mib} MiB`);
      assert.ok(mib < MAX_RSS_MIB, `peak RSS ${mib} MiB, over ${MAX_RSS_MIB} MiB`);
    } finally {
      await rm(dest, { recursive: true, force: true });
      await rm(path.join(root, 'large.bin.jwe'), { force: true });
    }
  });

  it('fails with one clear line when the CDH is down, leaving the JWE file', async () => {
    const down = await startCdhDouble();
    await down.stop();
    const { result, dests } = await run([`${nginx.httpUrl}/model.bin.jwe`], env({ CDH_ADDR: down.url, STORAGE_INITIALIZER_MAX_ATTEMPTS: '2' }));
    failsWith(result, new RegExp(`cannot reach the Confidential Data Hub for the model key at ${down.url}/cdh/resource/${RESOURCE}: .*ECONNREFUSED.*check CDH_ADDR \\(${down.url}\\)`));
    assert.deepEqual([...(await hashTree(dests[0] ?? '')).keys()], ['model.bin.jwe']);
  });

  it('names a malformed or unknown resource id', async () => {
    const malformed = await run([`${nginx.httpUrl}/model.bin.jwe`], env({ CONFIDENTIAL_RESOURCE_ID: 'kbs:///default/model-key' }));
    failsWith(malformed.result, /invalid CONFIDENTIAL_RESOURCE_ID="kbs:\/\/\/default\/model-key": it needs exactly three non-empty path segments; expected kbs:\/\/\/<repo>\/<type>\/<tag>/);
    const unknown = await run([`${nginx.httpUrl}/model.bin.jwe`], env({ CONFIDENTIAL_RESOURCE_ID: 'kbs:///default/model-key/v2' }));
    failsWith(unknown.result, /the Confidential Data Hub answered HTTP 404 for \/cdh\/resource\/default\/model-key\/v2 \(CDH_ADDR=http:\/\/127\.0\.0\.1:\d+, CONFIDENTIAL_RESOURCE_ID=kbs:\/\/\/default\/model-key\/v2\)/);
  });
});
