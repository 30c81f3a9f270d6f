// Bundles the CLI as one main file plus one file per heavy backend (the cloud SDKs, isomorphic-git).
//
// The main bundle holds everything a run needs to start (CLI, settings, engine, HTTP, archives).
// Each backend bundle holds its SDK; modules it shares with the main bundle (our errors, the HTTP
// client, undici, ...) are not copied into it but handed over at load time (load-backend.cjs), so
// there is one instance of each class and of each connection pool.
//
// Three esbuild passes: (1) the main bundle with placeholders, to learn which modules it holds;
// (2) the backends, each import of such a module becoming `__core[path]`; (3) the main bundle
// again, each placeholder now loading its backend with exactly the modules that backend uses.
import { build } from 'esbuild';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const HEAVY_BACKENDS = ['s3', 'azure-blob', 'azure-file', 'gcs', 'git'];

const root = path.resolve(import.meta.dirname, '../..');
const loader = path.join(root, 'scripts/bundle/load-backend.cjs');

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  // import() becomes require(): vm.compileFunction, which runs the backend bundles, has no
  // dynamic-import hook, and a few SDK paths (AWS instance metadata, GCS crypto) import lazily.
  supported: { 'dynamic-import': false },
  // Whitespace only: full minification makes V8 compile more eagerly and costs memory at start-up.
  minifyWhitespace: true,
  sourcemap: false,
  legalComments: 'none',
  // A native addon cannot be bundled; it is loaded at run time, only when Kerberos is configured.
  external: ['kerberos'],
  // Some SDKs call createRequire(import.meta.url); in a CJS bundle that is __filename.
  define: { 'import.meta.url': '__import_meta_url' },
  inject: [path.join(root, 'scripts/import-meta-url.cjs')],
  logLevel: 'warning',
  metafile: true,
};

/** Main-bundle plugin: a heavy backend's source file becomes a stub that loads its bundle. */
function backendStubs(usesByBackend) {
  return {
    name: 'backend-stubs',
    setup(b) {
      b.onResolve({ filter: /^\.\/[a-z0-9-]+\.js$/ }, (args) => {
        const name = /^\.\/([a-z0-9-]+)\.js$/.exec(args.path)[1];
        if (!HEAVY_BACKENDS.includes(name) || !args.importer.endsWith(`${path.sep}src${path.sep}sources${path.sep}registry.ts`)) return undefined;
        // Outside the file namespace the stub is CommonJS whatever package.json says.
        return { path: name, namespace: 'backend-stub' };
      });
      b.onLoad({ filter: /.*/, namespace: 'backend-stub' }, (args) => {
        const uses = usesByBackend?.get(args.path) ?? [];
        const core = uses.map((p) => `  ${JSON.stringify(p)}: require(${JSON.stringify(path.join(root, p))}),`).join('\n');
        const contents = `module.exports = require(${JSON.stringify(loader)}).loadBackend(${JSON.stringify(args.path)}, {\n${core}\n});\n`;
        return { contents, loader: 'js', resolveDir: root };
      });
    },
  };
}

/** Backend plugin: an import of a module the main bundle holds becomes `__core[path]`. */
function shareWithMain(mainInputs, uses) {
  return {
    name: 'share-with-main',
    setup(b) {
      b.onResolve({ filter: /.*/ }, async (args) => {
        if (args.pluginData === 'inner' || args.kind === 'entry-point') return undefined;
        const resolved = await b.resolve(args.path, { kind: args.kind, resolveDir: args.resolveDir, importer: args.importer, pluginData: 'inner' });
        if (resolved.errors.length > 0 || resolved.external) return undefined;
        const rel = path.relative(root, resolved.path).split(path.sep).join('/');
        if (!mainInputs.has(rel)) return resolved;
        uses.add(rel);
        return { path: rel, namespace: 'main-bundle' };
      });
      b.onLoad({ filter: /.*/, namespace: 'main-bundle' }, (args) => ({ contents: `module.exports = __core[${JSON.stringify(args.path)}];`, loader: 'js' }));
    },
  };
}

/** ASCII only: one non-ASCII character makes V8 hold the whole source as UTF-16, twice the memory. */
function asciiOnly(file) {
  const text = readFileSync(file, 'utf8');
  writeFileSync(file, text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

export async function splitBuild({ entry, outfile }) {
  const outdir = path.dirname(outfile);
  // Built aside and renamed into place: a test run elsewhere may be starting the CLI meanwhile.
  mkdirSync(outdir, { recursive: true });
  const staging = mkdtempSync(path.join(outdir, '.build-'));
  try {
    const first = await build({ ...common, entryPoints: [entry], outfile: path.join(staging, 'main.cjs'), write: false, plugins: [backendStubs(undefined)] });
    const mainInputs = new Set(Object.keys(first.metafile.inputs).filter((p) => !p.includes(':')));
    const usesByBackend = new Map();
    for (const name of HEAVY_BACKENDS) {
      const uses = new Set();
      const file = path.join(staging, 'backends', `${name}.cjs`);
      await build({ ...common, entryPoints: [path.join(root, `src/sources/${name}.ts`)], outfile: file, plugins: [shareWithMain(mainInputs, uses)] });
      usesByBackend.set(name, [...uses].sort());
      asciiOnly(file);
    }
    const main = path.join(staging, path.basename(outfile));
    await build({ ...common, entryPoints: [entry], outfile: main, banner: { js: '#!/usr/bin/env node' }, plugins: [backendStubs(usesByBackend)] });
    asciiOnly(main);
    mkdirSync(path.join(outdir, 'backends'), { recursive: true });
    for (const name of HEAVY_BACKENDS) renameSync(path.join(staging, 'backends', `${name}.cjs`), path.join(outdir, 'backends', `${name}.cjs`));
    renameSync(main, outfile);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}
