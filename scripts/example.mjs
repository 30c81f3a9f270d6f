// The embedded example: packs examples/iris as a .tar.gz, serves it from a local HTTP server
// (with byte ranges, like any real model server), and runs the bundled CLI against it, as KServe
// would: storage-initializer http://127.0.0.1:PORT/iris.tar.gz .tmp/example/models
import { spawnSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import path from 'node:path';
import { create } from 'tar';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const work = path.join(root, '.tmp', 'example');
const archive = path.join(work, 'iris.tar.gz');
const dest = path.join(work, 'models');
const cli = path.join(root, 'dist', 'storage-initializer.cjs');

const build = spawnSync(process.execPath, [path.join(root, 'scripts', 'build.mjs')], { stdio: 'inherit', cwd: root });
if (build.status !== 0) process.exit(1);
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
await create({ gzip: true, file: archive, cwd: path.join(root, 'examples', 'iris'), portable: true }, ['.']);

const server = createServer((req, res) => {
  if (req.url !== '/iris.tar.gz') {
    res.writeHead(404).end();
    return;
  }
  const size = statSync(archive).size;
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  const start = range ? Number(range[1]) : 0;
  const end = range && range[2] !== '' ? Math.min(Number(range[2]), size - 1) : size - 1;
  res.writeHead(range ? 206 : 200, {
    'content-type': 'application/gzip',
    'accept-ranges': 'bytes',
    'content-length': end - start + 1,
    ...(range ? { 'content-range': `bytes ${start}-${end}/${size}` } : {}),
  });
  createReadStream(archive, { start, end }).pipe(res);
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const url = `http://127.0.0.1:${server.address().port}/iris.tar.gz`;

console.log(`$ storage-initializer ${url} ${path.relative(root, dest)}`);
const child = spawn(process.execPath, [cli, url, dest], { stdio: 'inherit' });
const code = await new Promise((resolve) => child.on('close', resolve));
server.close();
if (code !== 0) process.exit(code ?? 1);

// Show and check what landed: every file of examples/iris, byte for byte.
const sha = (file) => createHash('sha256').update(readFileSync(file)).digest('hex');
const walk = (dir, rel = '') => readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
  e.isDirectory() ? walk(path.join(dir, e.name), path.join(rel, e.name)) : [path.join(rel, e.name)]);
const expected = walk(path.join(root, 'examples', 'iris')).sort();
const landed = walk(dest).sort();
console.log(`\n${path.relative(root, dest)}:`);
for (const file of landed) console.log(`  ${file}`);
const same = expected.length === landed.length && expected.every((f, i) => f === landed[i]
  && sha(path.join(root, 'examples', 'iris', f)) === sha(path.join(dest, f)));
console.log(same ? '\nexample OK: the model tree arrived byte-identical' : '\nexample FAILED: the tree differs');
process.exit(same ? 0 : 1);
