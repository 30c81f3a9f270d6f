/**
 * The same Azure Blob prefix downloaded side by side by this tool and rclone 1.60 (its azureblob
 * backend; azcopy and az are not installed here), from Azurite (Microsoft's emulator, in memory,
 * a child process) on loopback. Every run is verified file by file (sha256). Reports median wall
 * time, CPU time, peak RSS, MiB/s and rclone's time relative to ours, plus the ceiling: the largest
 * blob read by parallel ranged curls (with a read-only container SAS) into /dev/null.
 *
 *   npm run bench:azure -- [--runs 3] [--llm-gib 1] [--llm-files 3] [--small 2000] [--dest DIR]
 *
 * Our CLI is given the real-looking https://devstoreaccount1.blob.core.windows.net/bench/PREFIX URI
 * with AZURE_STORAGE_BLOB_ENDPOINT pointing at Azurite and the account key. rclone 1.60 cannot be
 * given Azurite's address with account + key: its --azureblob-endpoint is a host suffix
 * (https://ACCOUNT.ENDPOINT), and --azureblob-use-emulator is fixed to 127.0.0.1:10000. So it gets
 * the container SAS URL (--azureblob-sas-url), whose host it takes as is: same server, same bytes,
 * a different signing scheme (a SAS costs no HMAC per request, the shared key does).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ContainerSASPermissions, generateBlobSASQueryParameters, StorageSharedKeyCredential } from '@azure/storage-blob';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, uploadTree } from '../test/servers/azurite.js';
import { benchArgs, runBench, workloads, type Tool } from './workloads.js';

const args = benchArgs();
const CLI = path.resolve('dist/storage-initializer.cjs');

const azurite = await startAzurite();
const work = args.dest ?? await mkdtemp(path.join(tmpdir(), 'si-bench-azure-'));
try {
  await azurite.service.getContainerClient('bench').create();
  const sas = generateBlobSASQueryParameters({
    containerName: 'bench', permissions: ContainerSASPermissions.parse('rl'), expiresOn: new Date(Date.now() + 24 * 3600_000),
  }, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY)).toString();
  const container = `${azurite.blobEndpoint}/bench`;
  const env = { PATH: process.env.PATH ?? '', HOME: work };
  const tools: Tool[] = [
    {
      name: 'storage-initializer',
      command: (prefix, dest) => [process.execPath, [CLI, '--no-progress', `https://${AZURITE_ACCOUNT}.blob.core.windows.net/bench/${prefix}`, dest]],
      env: { AZURE_STORAGE_BLOB_ENDPOINT: azurite.blobEndpoint, AZURE_STORAGE_ACCESS_KEY: AZURITE_KEY },
    },
    {
      name: 'rclone 1.60',
      command: (prefix, dest) => ['rclone', ['copy', `:azureblob:bench/${prefix}`, dest, '--azureblob-sas-url', `${container}?${sas}`,
        '--transfers', '8', '--multi-thread-streams', '8', '--checkers', '16']],
    },
  ];
  await runBench({
    work, runs: args.runs, env, tools,
    upload: (tree) => uploadTree(azurite.service, 'bench', tree),
    ceilingUrl: (key) => `${container}/${key.split('/').map(encodeURIComponent).join('/')}?${sas}`,
  }, workloads(args));
} finally {
  await azurite.stop();
  if (args.dest === undefined) await rm(work, { recursive: true, force: true });
}
