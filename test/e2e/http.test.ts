/**
 * The HTTP(S) source end to end: the bundled CLI against a real nginx (plain and TLS with a
 * generated CA), archives of every supported codec, hostile archives, auth and error pages.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startForwardProxy } from '../servers/forward-proxy.js';
import { NGINX_BASIC_PASSWORD, NGINX_BASIC_USER, NGINX_BEARER_TOKEN, startNginx, type NginxServer } from '../servers/nginx.js';
import { generateCa, generateUntrustedCa, type TlsFiles } from '../servers/tls.js';
import { failsWith, runCli, type CliResult } from '../helpers/cli.js';
import { freshDest, hashOf, hashTree, randomBytes, tempDir, writeTree, type Tree } from '../helpers/tree.js';

const MODEL = randomBytes(3 * 2 ** 20 + 77, 11);
const TREE: Tree = new Map([
  ['model/weights.bin', randomBytes(200_000, 12)],
  ['model/config.json', Buffer.from('{"architecture":"demo"}')],
  ['model/tokenizer/vocab 词表.txt', Buffer.from('a\nb\nc\n')],
  ['model/__init__.py', Buffer.alloc(0)],
]);
const ARCHIVES: [string, string[]][] = [
  ['model.tar.gz', ['-czf']], ['model.tgz', ['-czf']], ['model.tar', ['-cf']],
  ['model.tar.bz2', ['-cjf']], ['model.tar.xz', ['-cJf']], ['model.tar.zst', ['--zstd', '-cf']],
];

describe('http source (nginx)', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let nginx: NginxServer;
  let tls: TlsFiles;
  let caMount: string;

  before(async () => {
    work = await tempDir('si-http-');
    const root = path.join(work.dir, 'root');
    await mkdir(root);
    await writeFile(path.join(root, 'model.bin'), MODEL);
    await writeFile(path.join(root, 'empty.bin'), Buffer.alloc(0));
    const src = path.join(work.dir, 'tree');
    await writeTree(src, TREE);
    for (const [name, flags] of ARCHIVES) execFileSync('tar', [...flags, path.join(root, name), '-C', src, 'model']);
    execFileSync('zip', ['-qr', path.join(root, 'model.zip'), 'model'], { cwd: src });
    // Hostile archives: traversal, an absolute-looking link, a symlink escaping DEST.
    await writeFile(path.join(work.dir, 'evil.txt'), 'evil');
    execFileSync('tar', ['-czf', path.join(root, 'evil-traversal.tar.gz'), '-P', '--transform=s,^,../../,', 'evil.txt'], { cwd: work.dir });
    await symlink('/etc/passwd', path.join(work.dir, 'link'));
    execFileSync('tar', ['-czf', path.join(root, 'evil-link.tar.gz'), 'link'], { cwd: work.dir });
    await writeFile(path.join(root, 'corrupt.tar.gz'), Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), randomBytes(5000, 3)]));
    await copyFile(path.join(root, 'model.zip'), path.join(root, 'model.pt'));

    tls = await generateCa(path.join(work.dir, 'tls'));
    caMount = path.join(work.dir, 'ca-mount');
    await mkdir(caMount);
    await copyFile(tls.caCertFile, path.join(caMount, 'cabundle.crt'));
    nginx = await startNginx({ root, tls, extraConfig: `location = /md5/model.bin { alias ${root}/model.bin; add_header Content-MD5 "${createHash('md5').update(MODEL).digest('base64')}"; }` });
  });

  after(async () => {
    await nginx.stop();
    await work[Symbol.asyncDispose]();
  });

  async function download(url: string, env: Record<string, string> = {}, args: string[] = []): Promise<{ result: CliResult; files: Map<string, string>; dest: string }> {
    const dest = freshDest(path.join(work.dir, 'out'));
    const result = await runCli([...args, url, dest], { env });
    const files = await hashTree(dest).catch(() => new Map<string, string>());
    return { result, files, dest };
  }


  it('downloads a file in parallel ranged parts, byte-identical', async () => {
    const before = (await nginx.readAccessLog()).split('\n').length;
    const { result, files } = await download(`${nginx.httpUrl}/model.bin`, {}, ['--part-size', '256KiB']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, hashOf(new Map([['model.bin', MODEL]])));
    const ranged = (await nginx.readAccessLog()).split('\n').slice(before - 1).filter((l) => l.includes('/model.bin') && / 206 /.test(l));
    assert.ok(ranged.length >= 13, `expected ranged part requests, got ${ranged.length}`);
    assert.match(result.stderr, /Successfully copied http:\/\/127\.0\.0\.1:\d+\/model\.bin to/);
    assert.match(result.stderr, /Model downloaded in [\d.]+ seconds\./);
  });

  it('verifies a Content-MD5 the server sends', async () => {
    const { result, files } = await download(`${nginx.httpUrl}/md5/model.bin`, {}, ['--part-size', '1MiB']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, hashOf(new Map([['model.bin', MODEL]])));
  });

  it('downloads a 0-byte file', async () => {
    const { result, files } = await download(`${nginx.httpUrl}/empty.bin`);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, hashOf(new Map([['empty.bin', Buffer.alloc(0)]])));
  });

  it('downloads from a server without range support in one stream', async () => {
    const { result, files } = await download(`${nginx.httpUrl}/norange/model.bin`, {}, ['--part-size', '256KiB']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, hashOf(new Map([['model.bin', MODEL]])));
  });

  it('follows redirects', async () => {
    const { result, files } = await download(`${nginx.httpUrl}/redirect/model.bin`);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, hashOf(new Map([['model.bin', MODEL]])));
  });

  for (const name of [...ARCHIVES.map(([n]) => n), 'model.zip']) {
    it(`unpacks ${name} into DEST and removes the archive`, async () => {
      const { result, files } = await download(`${nginx.httpUrl}/${name}`);
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(files, hashOf(TREE));
    });
  }

  it('keeps a zip-based model file (.pt) as it is', async () => {
    const { result, files } = await download(`${nginx.httpUrl}/model.pt`);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual([...files.keys()], ['model.pt']);
  });

  for (const [name, pattern] of [
    ['evil-traversal.tar.gz', /\.\./],
    ['evil-link.tar.gz', /link/],
    ['corrupt.tar.gz', /Failed to unpack archive file/],
  ] as const) {
    it(`refuses ${name} with a clear error and writes nothing outside DEST`, async () => {
      const { result, dest } = await download(`${nginx.httpUrl}/${name}`);
      failsWith(result, pattern);
      const outside = await readdir(path.dirname(dest));
      assert.deepEqual(outside, ['models'], 'nothing beside DEST');
      assert.deepEqual((await readdir(dest)).filter((n) => !n.endsWith('.tar.gz')), [], 'no half-unpacked tree in DEST');
    });
  }

  it('downloads over HTTPS trusting the KServe CA bundle', async () => {
    const https = nginx.httpsUrl ?? assert.fail('nginx has no TLS port');
    const { result, files } = await download(`${https}/model.bin`, { CA_BUNDLE_CONFIGMAP_NAME: 'cabundle', CA_BUNDLE_VOLUME_MOUNT_POINT: caMount });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, hashOf(new Map([['model.bin', MODEL]])));
  });

  it('refuses a server whose CA is not trusted, saying how to trust it', async () => {
    const untrusted = await generateUntrustedCa(path.join(work.dir, 'untrusted'));
    const otherMount = path.join(work.dir, 'other-mount');
    await mkdir(otherMount, { recursive: true });
    await copyFile(untrusted.caCertFile, path.join(otherMount, 'cabundle.crt'));
    const https = nginx.httpsUrl ?? assert.fail('nginx has no TLS port');
    const { result } = await download(`${https}/model.bin`, { CA_BUNDLE_CONFIGMAP_NAME: 'x', CA_BUNDLE_VOLUME_MOUNT_POINT: otherMount });
    failsWith(result, /CA_BUNDLE_CONFIGMAP_NAME/);
  });

  it('sends <hostname>-headers and never logs their values', async () => {
    const basic = `Basic ${Buffer.from(`${NGINX_BASIC_USER}:${NGINX_BASIC_PASSWORD}`).toString('base64')}`;
    const denied = await download(`${nginx.httpUrl}/auth/model.bin`);
    failsWith(denied.result, /HTTP authentication failed for http:\/\/127\.0\.0\.1:\d+\/auth\/model\.bin\. Verify credentials\./);
    const ok = await download(`${nginx.httpUrl}/auth/model.bin`, { '127.0.0.1-headers': JSON.stringify({ Authorization: basic }) }, ['--log-level', 'debug']);
    assert.equal(ok.result.code, 0, ok.result.stderr);
    assert.ok(!ok.result.stderr.includes(basic) && !ok.result.stderr.includes(NGINX_BASIC_PASSWORD));
    const bearer = await download(`${nginx.httpUrl}/bearer/model.bin`, { '127.0.0.1-headers': JSON.stringify({ Authorization: `Bearer ${NGINX_BEARER_TOKEN}` }) });
    assert.equal(bearer.result.code, 0, bearer.result.stderr);
  });

  it('uses and hides a password given in the URL', async () => {
    const url = new URL(`${nginx.httpUrl}/auth/model.bin`);
    url.username = NGINX_BASIC_USER;
    url.password = NGINX_BASIC_PASSWORD;
    const { result, files } = await download(url.href, {}, ['--log-level', 'debug']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(files.size, 1);
    assert.ok(!result.stderr.includes(NGINX_BASIC_PASSWORD));
    const wrong = new URL(url.href);
    wrong.password = 'not-the-password';
    const denied = await download(wrong.href);
    failsWith(denied.result, /authentication failed/);
    assert.ok(!denied.result.stderr.includes('not-the-password'));
  });

  it('reports 403, 404 and an HTML page in one line each', async () => {
    failsWith((await download(`${nginx.httpUrl}/forbidden/model.bin`)).result, /HTTP access denied for/);
    failsWith((await download(`${nginx.httpUrl}/missing.bin`)).result, /HTTP resource not found at http:\/\/127\.0\.0\.1:\d+\/missing\.bin/);
    failsWith((await download(`${nginx.httpUrl}/html/model.bin`)).result, /HTML page, not a model file/);
  });

  it('goes through HTTP_PROXY and HTTPS_PROXY, and around them for NO_PROXY', async () => {
    const proxy = await startForwardProxy();
    try {
      const https = nginx.httpsUrl ?? assert.fail('nginx has no TLS port');
      const env = { HTTP_PROXY: proxy.url, HTTPS_PROXY: proxy.url, CA_BUNDLE_CONFIGMAP_NAME: 'c', CA_BUNDLE_VOLUME_MOUNT_POINT: caMount };
      const plain = await download(`${nginx.httpUrl}/model.bin`, env);
      assert.equal(plain.result.code, 0, plain.result.stderr);
      const secure = await download(`${https}/model.bin`, env);
      assert.equal(secure.result.code, 0, secure.result.stderr);
      // undici tunnels plain HTTP through CONNECT as well.
      for (const port of [nginx.httpPort, nginx.httpsPort]) {
        assert.ok(proxy.seen.includes(`CONNECT 127.0.0.1:${port}`), proxy.seen.join('\n'));
      }
      const seen = proxy.seen.length;
      const bypass = await download(`${nginx.httpUrl}/model.bin`, { ...env, NO_PROXY: '127.0.0.1' });
      assert.equal(bypass.result.code, 0, bypass.result.stderr);
      assert.equal(proxy.seen.length, seen, 'NO_PROXY bypasses the proxy');
    } finally {
      await proxy.stop();
    }
  });

  it('downloads every pair in order', async () => {
    const a = path.join(work.dir, 'pairs', 'a');
    const b = path.join(work.dir, 'pairs', 'b');
    const result = await runCli([`${nginx.httpUrl}/model.tgz`, a, `${nginx.httpUrl}/model.bin`, b]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await hashTree(a), hashOf(TREE));
    assert.deepEqual(await readFile(path.join(b, 'model.bin')), MODEL);
  });
});
