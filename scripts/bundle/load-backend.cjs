// Runtime half of the split bundle (scripts/build.mjs): compiles a backend bundle on first use.
// The cloud SDKs are most of the code; keeping them out of the start-up parse keeps a run's
// baseline memory to what it uses. Inside a single executable the backends are SEA assets;
// otherwise they are files beside the main bundle.
const { readFileSync } = require('node:fs');
const { createRequire } = require('node:module');
const path = require('node:path');
const vm = require('node:vm');

function isSea() {
  try {
    return require('node:sea').isSea();
  } catch {
    return false; // Node without node:sea
  }
}

function backendSource(file) {
  if (isSea()) return require('node:sea').getAsset(`backends/${path.basename(file)}`, 'utf8');
  return readFileSync(file, 'utf8');
}

/** Runs backends/NAME.cjs with `core` (path -> module exports) standing in for the modules it shares with the main bundle. */
exports.loadBackend = function loadBackend(name, core) {
  const file = path.join(__dirname, 'backends', `${name}.cjs`);
  const run = vm.compileFunction(backendSource(file), ['exports', 'require', 'module', '__filename', '__dirname', '__core'], { filename: file });
  const module = { exports: {} };
  run(module.exports, createRequire(file), module, file, path.dirname(file), core);
  return module.exports;
};
