/**
 * deploy/Dockerfile cannot be built where the tests run (no Docker engine), so it is held to the
 * layout scripts/image.mjs builds with buildah: same entrypoint path, user, model directory,
 * environment and labels, all from deploy/image-layout.json.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
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
