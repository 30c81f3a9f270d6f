// Builds the CLI as one executable (a Node single-executable application): the bundle
// dist/storage-initializer.cjs and its backend bundles injected into a copy of a Node binary, so
// the image needs no Node install and no node_modules.
//
// Usage: node scripts/build-binary.mjs [--arch x64|arm64] [--out PATH]
//   --arch  target CPU (default: this machine's). Another architecture takes the official Node
//           binary of the same version from the npm package node-linux-<arch> (`npm pack`; the
//           blob format is tied to the Node version that writes it) and cannot be run here to check.
//   --out   default dist/storage-initializer (dist/storage-initializer-linux-<arch> for another arch)
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const SENTINEL_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const BUNDLE = resolve('dist/storage-initializer.cjs');
const ARCHES = new Set(['x64', 'arm64']);

const { values } = parseArgs({ options: { arch: { type: 'string' }, out: { type: 'string' } } });
const arch = values.arch ?? process.arch;
const native = arch === process.arch;
if (process.platform !== 'linux') fail(`single executables are built on Linux only (this is ${process.platform})`);
if (!ARCHES.has(arch)) fail(`--arch must be x64 or arm64, not ${JSON.stringify(arch)}`);
const out = resolve(values.out ?? (native ? 'dist/storage-initializer' : `dist/storage-initializer-linux-${arch}`));

function fail(message) {
  console.error(`build-binary: ${message}`);
  process.exit(1);
}

/** Runs a command; its output is shown only when it fails (postject's ELF warnings are noise). */
function run(command, args, { quiet = false } = {}) {
  const result = spawnSync(command, args, { encoding: 'utf8', stdio: quiet ? 'pipe' : 'inherit' });
  if (result.error) fail(`${command} could not be run: ${result.error.message}`);
  if (result.status !== 0) {
    if (quiet) process.stderr.write(`${result.stdout}${result.stderr}`);
    fail(`${command} ${args.join(' ')} exited with ${String(result.status ?? result.signal)}`);
  }
  return result.stdout ?? '';
}

function hasCommand(name) {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/** The official Node binary for another architecture, from the npm package that ships it. */
function foreignNode(work) {
  const pkg = `node-linux-${arch}@${process.versions.node}`;
  console.log(`build-binary: fetching ${pkg} (the blob must be written and read by the same Node version)`);
  run('npm', ['pack', pkg, '--pack-destination', work, '--silent'], { quiet: true });
  const tarball = join(work, `node-linux-${arch}-${process.versions.node}.tgz`);
  run('tar', ['-xzf', tarball, '-C', work, 'package/bin/node']);
  return join(work, 'package/bin/node');
}

const started = Date.now();
run(process.execPath, ['scripts/build.mjs']);

const work = mkdtempSync(join(tmpdir(), 'build-binary-'));
try {
  const blob = join(work, 'sea-prep.blob');
  const config = join(work, 'sea-config.json');
  writeFileSync(config, JSON.stringify({
    main: BUNDLE,
    output: blob,
    disableExperimentalSEAWarning: true,
    // V8's compiled code for the main bundle, written into the blob: faster start-up. It is
    // only valid for the architecture that wrote it, so a cross-build goes without.
    useCodeCache: native,
    // The heavy backends (dist/backends, see scripts/build.mjs) ride along as assets, compiled on use.
    assets: Object.fromEntries(readdirSync(resolve('dist/backends')).map((f) => [`backends/${f}`, resolve('dist/backends', f)])),
  }));
  run(process.execPath, ['--experimental-sea-config', config], { quiet: true });

  const binary = join(work, 'storage-initializer');
  copyFileSync(native ? process.execPath : foreignNode(work), binary);
  chmodSync(binary, 0o755);
  // The Node binary carries ~12 MB of symbols an init container never uses. strip runs before the
  // injection (it would drop the blob's note otherwise); without a strip for the target it is kept.
  const strip = native ? 'strip' : `${arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu-strip`;
  if (hasCommand(strip)) run(strip, ['--strip-all', binary]);
  else console.log(`build-binary: ${strip} not found; the binary keeps its symbols`);

  run(process.execPath, [
    resolve('node_modules/postject/dist/cli.js'), binary, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SENTINEL_FUSE,
  ], { quiet: true });

  if (native) {
    const { version } = JSON.parse(readFileSync('package.json', 'utf8'));
    const said = run(binary, ['--version'], { quiet: true }).trim();
    if (!said.endsWith(version)) fail(`the built binary answered ${JSON.stringify(said)} to --version, expected ${version}`);
  }
  mkdirSync(dirname(out), { recursive: true });
  copyFileSync(binary, out); // not rename: the temp dir may be on another file system
  chmodSync(out, 0o755);
} finally {
  rmSync(work, { recursive: true, force: true });
}

const mib = (statSync(out).size / 1024 / 1024).toFixed(1);
console.log(`build-binary: ${out} (linux-${arch}, ${mib} MiB, ${((Date.now() - started) / 1000).toFixed(1)} s)`);
if (!native) console.log(`build-binary: not run here (this machine is ${process.arch}); run it on linux-${arch} to check it`);
