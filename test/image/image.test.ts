/**
 * The hardened container image: built by scripts/image.mjs, loaded back from its OCI archive into
 * a separate buildah storage, inspected (config, every file of the root file system) and run with
 * `buildah run` (chroot isolation, host network) against a real nginx, as KServe runs it: its
 * configured user, a volume at /mnt/models. And against a real MIT KDC and the SPNEGO WebHDFS
 * double, with krb5.conf and the HDFS secret mounted: the image's own kerberos addon and GSSAPI
 * libraries log in (the KDC on loopback is reachable through the host network).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmod, chown, lstat, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { failsWith, type CliResult } from '../helpers/cli.js';
import { skipWithout } from '../helpers/system.js';
import { hashOf, hashTree, randomBytes, tempDir, writeTree, type Tree } from '../helpers/tree.js';
import { startKdc, type Kdc } from '../servers/kdc.js';
import { startNginx, type NginxServer } from '../servers/nginx.js';
import { startWebHdfsDouble, type WebHdfsDouble } from '../servers/webhdfs-double.js';
import { ADDON_BUILT, ADDON_DLOPENS, ADDON_FILES, libcDir, lddPaths } from './kerberos.js';
import { LAYOUT, PACKAGE_VERSION } from './layout.js';

const SHELLS = ['sh', 'bash', 'dash', 'ash', 'zsh', 'busybox'];
const PACKAGE_MANAGERS = ['apt', 'apt-get', 'dpkg', 'apk', 'microdnf', 'yum', 'dnf', 'rpm'];
const MODEL = randomBytes(2 * 2 ** 20 + 13, 21);
const TREE: Tree = new Map([
  ['model/weights.bin', randomBytes(300_000, 22)],
  ['model/config.json', Buffer.from('{"architecture":"demo"}')],
]);
const { uid, gid } = LAYOUT.user;

/** Why the image has no Kerberos to test, or false. The addon is an optional dependency, but CI must have it. */
function skipWithoutAddon(): string | false {
  if (ADDON_BUILT) return false;
  const why = 'node_modules/kerberos is not built, so the image has no Kerberos';
  if (process.env.CI === 'true') throw new Error(`${why}; CI installs libkrb5-dev so that it builds`);
  return why;
}

function run(command: string, args: readonly string[], timeoutMs: number): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { ...process.env, BUILDAH_ISOLATION: 'chroot' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

async function succeeds(command: string, args: readonly string[], timeoutMs = 120_000): Promise<string> {
  const result = await run(command, args, timeoutMs);
  assert.equal(result.code, 0, `${command} ${args.join(' ')}\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

interface ImageConfig {
  User?: string;
  Entrypoint?: string[];
  Cmd?: string[] | null;
  WorkingDir?: string;
  Env?: string[];
  Labels?: Record<string, string>;
}

describe('container image (buildah)', { skip: skipWithout('buildah'), timeout: 300_000 }, () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let buildah: string[];
  let container: string | undefined;
  let rootfs: string;
  let config: ImageConfig;
  let nginx: NginxServer | undefined;

  /** Runs the image's entrypoint with `args`, as its configured user, with `volume` at the model dir (and `options` for buildah run). */
  const runImage = (volume: string, args: readonly string[], options: readonly string[] = []): Promise<CliResult> =>
    run('buildah', [...buildah, 'run', '--network', 'host', '--volume', `${volume}:${LAYOUT.modelDir}`, ...options, container ?? '', '--', ...(config.Entrypoint ?? []), ...args], 120_000);

  before(async () => {
    work = await tempDir('si-image-');
    const archive = path.join(work.dir, 'image.oci.tar');
    await succeeds(process.execPath, ['scripts/image.mjs', '--out', archive, '--tag', 'localhost/storage-initializer:test'], 240_000);
    // A storage of its own: what runs below comes from the archive, not from the build's storage.
    const storage = path.join(work.dir, 'storage');
    buildah = ['--storage-driver', 'vfs', '--root', path.join(storage, 'root'), '--runroot', path.join(storage, 'run')];
    container = (await succeeds('buildah', [...buildah, 'from', '--quiet', `oci-archive:${archive}`])).trim();
    rootfs = (await succeeds('buildah', [...buildah, 'mount', container])).trim();
    const inspected = JSON.parse(await succeeds('buildah', [...buildah, 'inspect', '--type', 'container', container])) as { OCIv1: { config: ImageConfig } };
    config = inspected.OCIv1.config;

    const root = path.join(work.dir, 'www');
    await mkdir(root);
    await writeFile(path.join(root, 'model.bin'), MODEL);
    const src = path.join(work.dir, 'tree');
    await writeTree(src, TREE);
    execFileSync('tar', ['-czf', path.join(root, 'model.tar.gz'), '-C', src, 'model']);
    nginx = await startNginx({ root });
  });

  after(async () => {
    await nginx?.stop();
    if (container !== undefined) await run('buildah', [...buildah, 'rm', container], 60_000);
    await work[Symbol.asyncDispose]();
  });

  it('is configured to run the entrypoint as nonroot with the OCI labels', () => {
    assert.deepEqual(config.Entrypoint, [LAYOUT.entrypoint]);
    assert.equal(config.User, `${uid}:${gid}`);
    assert.equal(config.WorkingDir, LAYOUT.workdir);
    for (const [key, value] of Object.entries(LAYOUT.env)) assert.ok(config.Env?.includes(`${key}=${value}`), JSON.stringify(config.Env));
    const labels = config.Labels ?? {};
    for (const [key, value] of Object.entries(LAYOUT.labels)) assert.equal(labels[key], value, key);
    assert.equal(labels['org.opencontainers.image.version'], PACKAGE_VERSION);
  });

  it('holds the program, its libraries, the CA bundle and account files: no shell, no package manager', async () => {
    const files: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(path.join(rootfs, dir), { withFileTypes: true })) {
        const rel = path.posix.join(dir, entry.name);
        const base = entry.name;
        assert.ok(!SHELLS.includes(base), `a shell in the image: ${rel}`);
        assert.ok(!PACKAGE_MANAGERS.includes(base), `a package manager in the image: ${rel}`);
        if (entry.isDirectory()) await walk(rel);
        else files.push(rel);
      }
    };
    await walk('/');
    await assert.rejects(lstat(path.join(rootfs, 'bin/sh')), { code: 'ENOENT' });

    // Every shared object the entrypoint links, and nothing more.
    const linked = lddPaths(path.join(rootfs, LAYOUT.entrypoint));
    assert.ok(linked.some((lib) => lib.includes('ld-linux')), 'the dynamic loader is among the libraries');
    const expected = new Set([LAYOUT.entrypoint, LAYOUT.caBundle, '/etc/passwd', '/etc/group', '/etc/nsswitch.conf', ...linked]);
    if (ADDON_BUILT) {
      // The addon next to the executable, and the GSSAPI libraries it opens where the loader
      // looks without a cache (libc's directory), with everything they and the addon link.
      const addon = ADDON_FILES.map((file) => path.posix.join(LAYOUT.kerberosAddon, file));
      const opened = ADDON_DLOPENS.map((soname) => path.posix.join(libcDir(linked), soname));
      for (const file of [...addon, ...opened]) expected.add(file);
      for (const file of [addon.at(-1) ?? '', ...opened]) {
        for (const lib of lddPaths(path.join(rootfs, file))) expected.add(lib);
      }
    }
    assert.deepEqual(files.sort(), [...expected].sort());
    for (const file of files) assert.ok((await lstat(path.join(rootfs, file))).isFile(), `${file} is a regular file`);

    const passwd = await readFile(path.join(rootfs, 'etc/passwd'), 'utf8');
    assert.equal(passwd, `root:x:0:0:root:/root:/sbin/nologin\n${LAYOUT.user.name}:x:${uid}:${gid}:${LAYOUT.user.name}:${LAYOUT.user.home}:/sbin/nologin\n`);
    assert.equal(await readFile(path.join(rootfs, 'etc/group'), 'utf8'), `root:x:0:\n${LAYOUT.user.name}:x:${gid}:\n`);
    const tmp = await lstat(path.join(rootfs, 'tmp'));
    assert.equal(tmp.mode & 0o7777, 0o1777);
    const models = await lstat(path.join(rootfs, LAYOUT.modelDir));
    assert.deepEqual([models.uid, models.gid], [uid, gid]);
    const entrypoint = await lstat(path.join(rootfs, LAYOUT.entrypoint));
    assert.deepEqual([entrypoint.uid, entrypoint.mode & 0o777], [0, 0o755], 'the program belongs to root and nonroot cannot change it');
  });

  it('downloads a file and an unpacked archive into the volume as UID 65532', async () => {
    const volume = path.join(work.dir, 'volume-ok');
    await mkdir(volume);
    await chown(volume, uid, gid);
    const url = nginx?.httpUrl ?? '';
    const result = await runImage(volume, [`${url}/model.bin`, LAYOUT.modelDir, `${url}/model.tar.gz`, `${LAYOUT.modelDir}/unpacked`]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await readFile(path.join(volume, 'model.bin')), MODEL);
    const got = await hashTree(path.join(volume, 'unpacked'));
    const want = await hashTree(path.join(work.dir, 'tree'));
    assert.deepEqual(got, want);
    for (const file of ['model.bin', 'unpacked', 'unpacked/model/weights.bin']) {
      const stat = await lstat(path.join(volume, file));
      assert.deepEqual([stat.uid, stat.gid], [uid, gid], `${file} is written by the image's user`);
    }
  });

  it('says how to fix a volume that UID 65532 cannot write', async () => {
    const volume = path.join(work.dir, 'volume-root');
    await mkdir(volume);
    await chmod(volume, 0o755); // root's, as an unprepared hostPath or PVC is
    const result = await runImage(volume, [`${nginx?.httpUrl ?? ''}/model.bin`, LAYOUT.modelDir]);
    failsWith(result, /make the destination writable by UID 65532 \(chown -R 65532:65532 \/mnt\/models\)/);
  });

  // After the file list: buildah run makes the mount points below in the container's root file system.
  describe('WebHDFS with Kerberos', { skip: skipWithout('krb5kdc') || skipWithout('kadmin.local') || skipWithoutAddon() }, () => {
    const HDFS_ROOT = '/user/kserve';
    const KERBEROS_TREE: Tree = new Map([
      ['models/iris/model.bin', randomBytes(200_000, 23)],
      ['models/iris/config.json', Buffer.from('{"framework":"sklearn"}')],
      ['models/iris/sub dir/ünï.txt', Buffer.from('nested\n')],
    ]);
    let kdc: Kdc | undefined;
    let hdfs: WebHdfsDouble | undefined;
    let secretDir: string;

    before(async () => {
      kdc = await startKdc();
      await kdc.addPrincipal('HTTP/localhost');
      await kdc.addPrincipal('kserve');
      // As real KDCs do: the login must prove the key first (encrypted timestamp, built into libkrb5).
      execFileSync('kadmin.local', ['-r', kdc.realm, '-q', 'modprinc +requires_preauth kserve'], { env: { ...process.env, ...kdc.env }, stdio: 'ignore' });
      const serviceKeytab = await kdc.exportKeytab('HTTP/localhost', 'http.keytab');
      const userKeytab = await readFile(await kdc.exportKeytab('kserve', 'kserve.keytab'));
      hdfs = await startWebHdfsDouble({ spnego: { keytabFile: serviceKeytab, krb5Config: kdc.krb5Config } });
      hdfs.mkdir(HDFS_ROOT, { owner: 'kserve', permission: '700' });
      for (const [key, content] of KERBEROS_TREE) hdfs.putFile(`${HDFS_ROOT}/${key}`, content, { owner: 'kserve', permission: '600' });
      // The hdfscreds secret as KServe mounts it: one file per key, the keytab binary; readable by 65532.
      secretDir = path.join(work.dir, 'hdfscreds');
      await mkdir(secretDir);
      const secrets: Record<string, string | Buffer> = {
        HDFS_NAMENODE: `${hdfs.standbyUrl};${hdfs.activeUrl}`,
        HDFS_ROOTPATH: HDFS_ROOT,
        KERBEROS_PRINCIPAL: 'kserve@TEST.REALM',
        KERBEROS_KEYTAB: userKeytab,
      };
      for (const [key, value] of Object.entries(secrets)) await writeFile(path.join(secretDir, key), value, { mode: 0o644 });
    });

    after(async () => {
      await hdfs?.stop();
      await kdc?.stop();
    });

    it('downloads a tree byte-identical over SPNEGO as UID 65532, with krb5.conf and the HDFS secret mounted', async () => {
      const volume = path.join(work.dir, 'volume-kerberos');
      await mkdir(volume);
      await chown(volume, uid, gid);
      const requestsBefore = hdfs?.requests.length ?? 0;
      const result = await runImage(volume, ['hdfs://models/iris', LAYOUT.modelDir], [
        '--volume', `${kdc?.krb5Config ?? ''}:/etc/krb5/krb5.conf:ro`,
        '--volume', `${secretDir}:/var/secrets/kserve-hdfscreds:ro`,
        '--env', 'KRB5_CONFIG=/etc/krb5/krb5.conf',
      ]);
      assert.equal(result.code, 0, result.stderr);
      const want = hashOf(new Map([...KERBEROS_TREE].map(([key, content]) => [key.slice('models/iris/'.length), content])));
      assert.deepEqual(await hashTree(volume), want);
      for (const file of ['model.bin', 'sub dir', 'sub dir/ünï.txt']) {
        const stat = await lstat(path.join(volume, file));
        assert.deepEqual([stat.uid, stat.gid], [uid, gid], `${file} is written by the image's user`);
      }
      const namenode = (hdfs?.requests.slice(requestsBefore) ?? []).filter((r) => r.server !== 'dn');
      assert.ok(namenode.length > 0 && namenode.every((r) => r.authUser === 'kserve'), 'every namenode request authenticated with Kerberos as kserve');
    });
  });
});
