// Bundles the CLI into one CommonJS file that runs with plain `node` (and later inside a SEA).
import { build } from 'esbuild';

await build({
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/storage-initializer.cjs',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: false,
  sourcemap: false,
  legalComments: 'none',
  banner: { js: '#!/usr/bin/env node' },
  // Some SDKs call createRequire(import.meta.url); in a CJS bundle that is __filename.
  define: { 'import.meta.url': '__import_meta_url' },
  inject: ['scripts/import-meta-url.cjs'],
  // import() of a builtin becomes require(): a single executable built with a code cache has no
  // dynamic-import callback (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING).
  supported: { 'dynamic-import': false },
  logLevel: 'warning',
});
