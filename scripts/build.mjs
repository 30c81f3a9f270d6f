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
  logLevel: 'warning',
});
