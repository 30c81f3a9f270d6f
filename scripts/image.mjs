// Builds the hardened container image with buildah (no Docker engine needed) and saves it as an OCI
// archive. The image holds the single executable, exactly the shared libraries it links (from ldd,
// with the dynamic loader), the CA bundle, passwd/group with root and nonroot (65532) and no login
// shell, /tmp, and /mnt/models owned by nonroot: no shell, no package manager, nothing else.
// For WebHDFS Kerberos it also carries the native `kerberos` addon (what loading it needs, nothing
// of its build) next to the executable, and the GSSAPI libraries the addon opens at run time.
// deploy/image-layout.json holds the paths, user and labels that deploy/Dockerfile shares.
//
// Usage: node scripts/image.mjs [--binary PATH] [--out PATH] [--storage DIR] [--tag NAME]
//   --binary   use this single executable (default: build it with scripts/build-binary.mjs)
//   --out      the OCI archive (default dist/storage-initializer-image.oci.tar)
//   --storage  keep buildah's storage (vfs) in DIR, e.g. to run the image afterwards
//              (default: a temp dir, removed at the end)
//   --tag      image name (default <name in image-layout.json>:<package version>)
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, posix, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const layout = JSON.parse(readFileSync('deploy/image-layout.json', 'utf8'));
const pkg = JSON.parse(readFileSync('package.json', 'utf8'));

const { values } = parseArgs({
  options: { binary: { type: 'string' }, out: { type: 'string' }, storage: { type: 'string' }, tag: { type: 'string' } },
});
const out = resolve(values.out ?? 'dist/storage-initializer-image.oci.tar');
const tag = values.tag ?? `${layout.name}:${pkg.version}`;

class BuildError extends Error {}

/** Stops the build with a one-line message (thrown, so the temp dir is still removed). */
function fail(message) {
  throw new BuildError(message);
}

function run(command, args, { quiet = false } = {}) {
  const result = spawnSync(command, args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', quiet ? 'pipe' : 'inherit'],
    // chroot isolation: no daemon, no user namespaces, works as root inside a container.
    env: { ...process.env, BUILDAH_ISOLATION: 'chroot' },
  });
  if (result.error) fail(`${command} could not be run (${result.error.message})${command === 'buildah' ? '; install the Debian package "buildah"' : ''}`);
  if (result.status !== 0) {
    if (quiet) process.stderr.write(result.stderr);
    fail(`${command} ${args.join(' ')} exited with ${String(result.status ?? result.signal)}`);
  }
  return result.stdout;
}

/** The shared objects the binary loads, as ldd reports them (loader included, vDSO excluded). */
function sharedLibraries(binary) {
  const libs = [];
  for (const line of run('ldd', [binary]).split('\n')) {
    if (line.trim() === '' || line.includes('linux-vdso')) continue;
    if (line.includes('not found')) fail(`${binary} needs a library this machine lacks: ${line.trim()}`);
    const match = /(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (!match) fail(`unexpected ldd line: ${line.trim()}`);
    libs.push(match[1]);
  }
  return libs;
}

const ADDON = 'node_modules/kerberos';
const ADDON_BINARY = 'build/Release/kerberos.node';

/** Files under `dir`, relative to it (regular files only, sorted). */
function filesUnder(dir, rel = '') {
  return readdirSync(join(dir, rel), { withFileTypes: true }).flatMap((entry) => {
    const path = posix.join(rel, entry.name);
    if (entry.isDirectory()) return filesUnder(dir, path);
    return entry.isFile() ? [path] : [];
  }).sort();
}

/**
 * What loading the `kerberos` addon needs, relative to its directory: package.json (lib/index.js
 * reads its version), lib/ and the compiled .node. Its package.json dependencies (node-addon-api,
 * prebuild-install) serve only its build; a require of anything else in lib/ stops the build,
 * since the image would not carry it.
 */
function addonFiles() {
  const lib = filesUnder(ADDON, 'lib');
  const builtins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
  for (const file of lib.filter((f) => f.endsWith('.js'))) {
    for (const [, spec] of readFileSync(join(ADDON, file), 'utf8').matchAll(/require\(\s*['"]([^'"]+)['"]\s*\)/g)) {
      if (!spec.startsWith('.') && !builtins.has(spec)) fail(`${ADDON}/${file} requires "${spec}", which the image does not carry; add it to scripts/image.mjs`);
    }
  }
  return ['package.json', ...lib, ADDON_BINARY];
}

/** Where the dynamic loader finds a library by its soname (`ldconfig -p`), for this machine's architecture. */
function libraryPath(soname) {
  const arch = process.arch === 'x64' ? 'x86-64' : 'AArch64';
  const ldconfig = existsSync('/sbin/ldconfig') ? '/sbin/ldconfig' : 'ldconfig';
  for (const line of run(ldconfig, ['-p']).split('\n')) {
    const match = /^\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\/\S+)$/.exec(line);
    if (match?.[1] === soname && match[2].includes(arch)) return match[3];
  }
  return fail(`the kerberos addon opens ${soname}, which this machine lacks; install the GSSAPI libraries (Debian: libgssapi-krb5-2)`);
}

/**
 * The shared objects the addon needs: those it links (ldd) and those it opens with dlopen (it is
 * built to dlopen libgssapi_krb5, libkrb5 and libcom_err: ldd cannot see them), with theirs. The
 * sonames it may open are taken from the .node file itself, so a new one in a later version is not
 * missed. MIT krb5's plugin directory is left out: a keytab login with or without encrypted-timestamp
 * preauthentication uses only built-in modules, and krb5 skips a plugin it cannot load.
 */
function addonLibraries(node) {
  const linked = sharedLibraries(node);
  const linkedNames = new Set(linked.map((lib) => lib.split('/').at(-1)));
  const opened = [...new Set(readFileSync(node).toString('latin1').match(/lib[\w+-]+\.so\.\d+/g) ?? [])]
    .filter((soname) => !linkedNames.has(soname))
    .map(libraryPath);
  return [...new Set([...linked, ...opened, ...opened.flatMap(sharedLibraries)])];
}

/** Copies a file's content (symlinks followed) to `path` inside `root`, with the given mode. */
function place(root, path, source, mode) {
  const target = join(root, path);
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(source, target);
  chmodSync(target, mode);
}

function dir(root, path, mode) {
  mkdirSync(join(root, path), { recursive: true });
  chmodSync(join(root, path), mode); // mkdir's mode is cut by the umask (1777 would not survive)
}

process.umask(0o022); // directories the image creates are world-readable, whatever the caller's umask
try {
  build();
} catch (err) {
  if (!(err instanceof BuildError)) throw err;
  console.error(`image: ${err.message}`);
  process.exitCode = 1;
}

function build() {
  const started = Date.now();
  if (values.binary === undefined) process.stdout.write(run(process.execPath, ['scripts/build-binary.mjs']));
  const binary = resolve(values.binary ?? 'dist/storage-initializer');
  if (process.arch !== 'x64' && process.arch !== 'arm64') fail(`unsupported build machine ${process.arch}`);

  const work = mkdtempSync(join(tmpdir(), 'image-'));
  const storage = values.storage === undefined ? join(work, 'storage') : resolve(values.storage);
  const buildah = ['--storage-driver', 'vfs', '--root', join(storage, 'root'), '--runroot', join(storage, 'run')];
  let container;
  try {
    // Everything owned by root: the program, its libraries, the CA bundle, the account files.
    const rootfs = join(work, 'rootfs');
    dir(rootfs, '.', 0o755);
    place(rootfs, layout.entrypoint, binary, 0o755);
    const libraries = new Set(sharedLibraries(binary));
    if (existsSync(join(ADDON, ADDON_BINARY))) {
      // The executable requires it relative to itself: <its directory>/node_modules/kerberos.
      for (const file of addonFiles()) place(rootfs, posix.join(layout.kerberosAddon, file), join(ADDON, file), file === ADDON_BINARY ? 0o755 : 0o644);
      for (const lib of addonLibraries(join(ADDON, ADDON_BINARY))) libraries.add(lib);
    } else {
      console.log(`image: ${ADDON} is not built (the optional dependency did not install), so this image has no Kerberos for WebHDFS`);
    }
    for (const lib of libraries) place(rootfs, lib, realpathSync(lib), statSync(lib).mode & 0o777);
    place(rootfs, layout.caBundle, layout.caBundle, 0o644);
    const { name, uid, gid, home } = layout.user;
    // No login shell for either account; /sbin/nologin is a name, the image has no such program.
    writeFileSync(join(rootfs, 'etc/passwd'), `root:x:0:0:root:/root:/sbin/nologin\n${name}:x:${uid}:${gid}:${name}:${home}:/sbin/nologin\n`);
    writeFileSync(join(rootfs, 'etc/group'), `root:x:0:\n${name}:x:${gid}:\n`);
    // /etc/hosts before DNS (glibc's default without this file asks DNS first).
    writeFileSync(join(rootfs, 'etc/nsswitch.conf'), 'passwd: files\ngroup: files\nhosts: files dns\n');
    for (const file of ['etc/passwd', 'etc/group', 'etc/nsswitch.conf']) chmodSync(join(rootfs, file), 0o644);
    dir(rootfs, 'tmp', 0o1777);
    dir(rootfs, 'root', 0o700);
    dir(rootfs, dirname(layout.modelDir), 0o755);
    dir(rootfs, dirname(home), 0o755);

    // Owned by nonroot: the model directory KServe mounts over, and the home directory.
    const owned = join(work, 'owned');
    dir(owned, layout.modelDir, 0o755);
    dir(owned, home, 0o700);

    container = run('buildah', [...buildah, 'from', 'scratch'], { quiet: true }).trim();
    run('buildah', [...buildah, 'copy', '--quiet', container, rootfs, '/'], { quiet: true });
    // Copying a parent directory's contents keeps the existing parent root-owned and chowns only
    // what it creates.
    for (const path of [layout.modelDir, home]) {
      run('buildah', [...buildah, 'copy', '--quiet', '--chown', `${uid}:${gid}`, container, join(owned, dirname(path)), dirname(path)], { quiet: true });
    }
    const labels = {
      ...layout.labels,
      'org.opencontainers.image.version': pkg.version,
      ...(repositoryUrl() === undefined ? {} : { 'org.opencontainers.image.source': repositoryUrl() }),
    };
    run('buildah', [
      ...buildah, 'config',
      '--entrypoint', JSON.stringify([layout.entrypoint]),
      '--cmd', '',
      '--user', `${uid}:${gid}`,
      '--workingdir', layout.workdir,
      ...Object.entries(layout.env).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
      ...Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
      container,
    ], { quiet: true });
    run('buildah', [...buildah, 'commit', '--quiet', '--rm', '--format', 'oci', container, tag], { quiet: true });
    container = undefined;
    mkdirSync(dirname(out), { recursive: true });
    rmSync(out, { force: true });
    run('buildah', [...buildah, 'push', '--quiet', tag, `oci-archive:${out}:${tag}`], { quiet: true });
    const imageSize = run('buildah', [...buildah, 'images', '--format', '{{.Size}}', tag], { quiet: true }).trim();
    const mib = (statSync(out).size / 1024 / 1024).toFixed(1);
    console.log(`image: ${tag} (${imageSize} unpacked) saved as ${out} (${mib} MiB), ${((Date.now() - started) / 1000).toFixed(1)} s`);
    if (!labels['org.opencontainers.image.source']) console.log('image: package.json has no repository, so the image has no org.opencontainers.image.source label');
  } finally {
    if (container !== undefined) spawnSync('buildah', [...buildah, 'rm', container], { stdio: 'ignore' });
    rmSync(work, { recursive: true, force: true });
  }
}

function repositoryUrl() {
  const repo = pkg.repository;
  const url = typeof repo === 'string' ? repo : repo?.url;
  return typeof url === 'string' && url !== '' ? url.replace(/^git\+/, '') : undefined;
}
