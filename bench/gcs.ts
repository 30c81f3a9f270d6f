/**
 * The same GCS prefix downloaded side by side by this tool and `gcloud storage cp -r`, from the GCS
 * JSON API double (test/servers/gcs-double.ts, in this process) on loopback. The bucket is public,
 * so both read anonymously: our CLI finds no credentials and falls back to anonymous; gcloud runs
 * with CLOUDSDK_AUTH_DISABLE_CREDENTIALS. Every run is verified file by file (sha256). Reports
 * median wall time, CPU time, peak RSS, MiB/s and gcloud's time relative to ours, plus the ceiling:
 * the largest object read as `?alt=media` by parallel ranged curls into /dev/null.
 *
 *   npm run bench:gcs -- [--runs 3] [--llm-gib 1] [--llm-files 3] [--small 2000] [--dest DIR]
 *
 * The double keeps every object in memory (a copy of the fixture), so the LLM-like workload needs
 * about twice its size in RAM, in the benchmark's own process, which also serves every byte.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startGcsDouble } from '../test/servers/gcs-double.js';
import { benchArgs, runBench, workloads, type Tool } from './workloads.js';

const args = benchArgs();
const CLI = path.resolve('dist/storage-initializer.cjs');

const gcs = await startGcsDouble();
const work = args.dest ?? await mkdtemp(path.join(tmpdir(), 'si-bench-gcs-'));
try {
  gcs.createBucket('bench', { public: true });
  const env = {
    PATH: process.env.PATH ?? '', HOME: work,
    // An empty gcloud config (no account, no ADC of this machine); nothing probes a real metadata server.
    CLOUDSDK_CONFIG: path.join(work, 'gcloud'), GCE_METADATA_HOST: `127.0.0.1:${gcs.port}`,
  };
  const tools: Tool[] = [
    {
      name: 'storage-initializer',
      command: (prefix, dest) => [process.execPath, [CLI, '--no-progress', `gs://bench/${prefix}`, dest]],
      env: { STORAGE_EMULATOR_HOST: gcs.url },
    },
    {
      name: 'gcloud storage',
      // `cp -r gs://b/PREFIX DEST` lands in DEST/PREFIX, as cp -r does.
      command: (prefix, dest) => ['gcloud', ['storage', 'cp', '-r', `gs://bench/${prefix}`, dest]],
      root: (prefix, dest) => path.join(dest, prefix),
      env: {
        CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE: `${gcs.url}/`, // the trailing slash is required
        CLOUDSDK_AUTH_DISABLE_CREDENTIALS: 'true',
        CLOUDSDK_CORE_DISABLE_PROMPTS: '1',
        CLOUDSDK_CORE_DISABLE_USAGE_REPORTING: 'true',
        CLOUDSDK_CORE_CHECK_GCE_METADATA: 'false',
        CLOUDSDK_CORE_DISABLE_FILE_LOGGING: 'true',
        // The "Copying ..." line per object and the progress output, as --no-progress and --only-show-errors for the others.
        CLOUDSDK_CORE_USER_OUTPUT_ENABLED: 'false',
      },
    },
  ];
  await runBench({
    work, runs: args.runs, env, tools,
    upload: (tree) => {
      for (const [name, data] of tree) gcs.putObject('bench', name, data);
      return Promise.resolve();
    },
    ceilingUrl: (key) => `${gcs.url}/storage/v1/b/bench/o/${encodeURIComponent(key)}?alt=media`,
  }, workloads(args));
} finally {
  await gcs.stop();
  if (args.dest === undefined) await rm(work, { recursive: true, force: true });
}
