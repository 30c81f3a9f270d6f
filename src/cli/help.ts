import { USAGE } from './args.js';

export const HELP = `${USAGE}

Copies a model from storage into a local directory: the KServe storage initializer.
Each SRC_URI is downloaded into its DEST_PATH, pairs in order.

Sources:
  s3://BUCKET/PREFIX          gs://BUCKET/PREFIX           hdfs://PATH, webhdfs://PATH
  https://ACCOUNT.blob.core.windows.net/CONTAINER/PATH[?SAS]
  https://ACCOUNT.file.core.windows.net/SHARE/PATH
  hf://OWNER/MODEL[:REVISION]  modelscope://OWNER/MODEL[:REVISION]
  oci://REGISTRY/REPO[:TAG|@DIGEST]   https://HOST/PATH/REPO.git   git://HOST/REPO
  http(s)://HOST/PATH/FILE    (.zip .tar .tar.gz .tgz .tar.bz2 .tar.xz .tar.zst are unpacked)
  file://PATH, /PATH          (local or PVC)   /mnt/models (already mounted: nothing to do)

Options (each overrides its environment variable):
  -c, --concurrency N     byte streams in flight          STORAGE_INITIALIZER_CONCURRENCY (8)
      --part-size SIZE    ranged part size, e.g. 16MiB     STORAGE_INITIALIZER_PART_SIZE (16MiB)
      --max-attempts N    attempts per part                STORAGE_INITIALIZER_MAX_ATTEMPTS (5)
      --log-format F      text or json                     STORAGE_INITIALIZER_LOG_FORMAT (text)
      --log-level L       debug, info, warn or error       STORAGE_INITIALIZER_LOG_LEVEL (info)
      --local-mode M      symlink or copy (local sources)  STORAGE_INITIALIZER_LOCAL_MODE (symlink)
      --no-progress       no live progress bar on a terminal
      --deadline D        stop the run after D (90, 30m, 1h30m; partial
                          files kept for the next run)     STORAGE_INITIALIZER_DEADLINE (none)
  -h, --help              this text
  -V, --version           the version

Exit status: 0 success, 1 failure (one log line says why), 130/143 interrupted.
`;
