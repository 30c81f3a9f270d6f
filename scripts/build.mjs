// Bundles the CLI into dist/storage-initializer.cjs, runnable with plain `node` and inside a SEA,
// plus dist/backends/*.cjs, the heavy backends it compiles only when a run needs one
// (scripts/bundle/split-build.mjs says how and why).
import { splitBuild } from './bundle/split-build.mjs';

await splitBuild({ entry: 'src/cli/main.ts', outfile: 'dist/storage-initializer.cjs' });
