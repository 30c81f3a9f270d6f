// esbuild inject: gives bundled ESM code a CommonJS-compatible import.meta.url.
export const __import_meta_url = require('node:url').pathToFileURL(__filename).href;
