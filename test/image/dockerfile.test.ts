/**
 * deploy/Dockerfile cannot be built where the tests run (no Docker engine), so it is held to the
 * layout scripts/image.mjs builds with buildah: same entrypoint path, user, model directory,
 * environment and labels, all from deploy/image-layout.json, and the same Kerberos: the addon's
 * files, and every GSSAPI library the addon opens or they link (ldd on this machine, Debian bookworm
 * as the build stage) that distroless cc lacks.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ADDON_DLOPENS, ADDON_FILES, libcDir, lddPaths } from './kerberos.js';
import { LAYOUT, PACKAGE_VERSION } from './layout.js';

interface Instruction {
  readonly keyword: string;
  readonly args: string;
  /** Index of the FROM this instruction follows (0 = the first stage). */
  readonly stage: number;
}

/** The Dockerfile as instructions: comments dropped, `\` continuations joined. */
function parseDockerfile(text: string): Instruction[] {
  const logical: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    logical.push(pending + line);
    pending = '';
  }
  const out: Instruction[] = [];
  let stage = -1;
  for (const line of logical) {
    const match = /^(\S+)\s+(.*)$/.exec(line);
    assert.ok(match, `not an instruction: ${line}`);
    const keyword = (match[1] ?? '').toUpperCase();
    if (keyword === 'FROM') stage += 1;
    out.push({ keyword, args: match[2] ?? '', stage });
  }
  return out;
}

/** `KEY=value KEY2="value 2"` pairs, as LABEL, ENV and ARG write them. */
function pairs(args: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of args.matchAll(/([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
    const value = m[2] ?? '';
    out.set(m[1] ?? '', value.startsWith('"') ? (JSON.parse(value) as string) : value);
  }
  return out;
}

const instructions = parseDockerfile(readFileSync('deploy/Dockerfile', 'utf8'));
const lastStage = Math.max(...instructions.map((i) => i.stage));
const runtime = instructions.filter((i) => i.stage === lastStage);
const build = instructions.filter((i) => i.stage === 0);
const all = (keyword: string, list = runtime): string[] => list.filter((i) => i.keyword === keyword).map((i) => i.args);
const merged = (keyword: string): Map<string, string> => new Map(all(keyword).flatMap((args) => [...pairs(args)]));

/** What distroless cc already has: glibc (libresolv included), libgcc_s and libstdc++. */
const IN_DISTROLESS_CC = /^(?:ld-linux[\w.-]*\.so\.\d+|lib(?:c|m|dl|pthread|resolv|rt)\.so\.\d+|libgcc_s\.so\.1|libstdc\+\+\.so\.6)$/;

describe('deploy/Dockerfile', () => {
  it('builds the single executable on Node and runs it on distroless cc as nonroot', () => {
    assert.match(all('FROM', build)[0] ?? '', /^node:(20|22)-bookworm AS build$/);
    const runs = all('RUN', build).join(' && ');
    assert.match(runs, /npm ci\b/);
    assert.match(runs, /npm run build:binary\b/);
    assert.deepEqual(all('FROM'), ['gcr.io/distroless/cc-debian12:nonroot']);
  });

  it('has the layout of the buildah image: entrypoint, model directory, user, working directory', () => {
    const copies = all('COPY');
    assert.ok(copies.includes(`--from=build /src/dist/storage-initializer ${LAYOUT.entrypoint}`), copies.join('\n'));
    assert.ok(copies.some((c) => c.startsWith(`--from=build --chown=${LAYOUT.user.uid}:${LAYOUT.user.gid} `) && c.endsWith(` ${LAYOUT.modelDir}`)), copies.join('\n'));
    assert.deepEqual(JSON.parse(all('ENTRYPOINT').at(-1) ?? 'null'), [LAYOUT.entrypoint]);
    assert.equal(all('USER').at(-1), `${LAYOUT.user.uid}:${LAYOUT.user.gid}`);
    assert.equal(all('WORKDIR').at(-1), LAYOUT.workdir);
    assert.deepEqual(Object.fromEntries(merged('ENV')), LAYOUT.env);
  });

  it('carries the kerberos addon next to the executable, as much of it as the buildah image', () => {
    assert.ok(all('COPY').includes(`--from=build /layout/kerberos ${LAYOUT.kerberosAddon}`), all('COPY').join('\n'));
    const runs = all('RUN', build).join(' && ');
    // package.json and lib/ copied whole, the .node by itself: together what ADDON_FILES lists.
    assert.match(runs, /cp -R node_modules\/kerberos\/package\.json node_modules\/kerberos\/lib \/layout\/kerberos\/ /);
    assert.match(runs, /cp node_modules\/kerberos\/build\/Release\/kerberos\.node \/layout\/kerberos\/build\/Release\/ /);
    assert.deepEqual(ADDON_FILES.filter((f) => !f.startsWith('lib/') && f !== 'package.json'), ['build/Release/kerberos.node']);
  });

  it('carries every GSSAPI library the addon needs that distroless cc lacks, into the multiarch directory', () => {
    const dir = libcDir(lddPaths(process.execPath));
    const opened = ADDON_DLOPENS.map((soname) => path.posix.join(dir, soname));
    const needed = new Set([...opened, ...opened.flatMap(lddPaths)].map((lib) => path.posix.basename(lib)).filter((name) => !IN_DISTROLESS_CC.test(name)));
    const loop = /for lib in ([^;]+); do cp -L "\/usr\/lib\/\$multiarch\/\$lib" "\/layout\/gssapi\/usr\/lib\/\$multiarch\/"/.exec(all('RUN', build).join(' && '));
    assert.ok(loop, 'the build stage copies the GSSAPI libraries in one loop');
    assert.deepEqual((loop[1] ?? '').trim().split(/\s+/).sort(), [...needed].sort());
    assert.match(all('RUN', build).join(' && '), /multiarch="\$\(gcc -print-multiarch\)"/);
    assert.ok(all('COPY').includes('--from=build /layout/gssapi/ /'), all('COPY').join('\n'));
  });

  it('carries the same OCI labels, its version following package.json', () => {
    const labels = merged('LABEL');
    for (const [key, value] of Object.entries(LAYOUT.labels)) assert.equal(labels.get(key), value, key);
    assert.equal(labels.get('org.opencontainers.image.version'), '${VERSION}');
    assert.equal(merged('ARG').get('VERSION'), PACKAGE_VERSION);
    assert.equal(labels.get('org.opencontainers.image.source'), '${SOURCE}');
    assert.deepEqual([...labels.keys()].sort(), [
      ...Object.keys(LAYOUT.labels), 'org.opencontainers.image.version', 'org.opencontainers.image.source',
    ].sort());
  });
});
