import type { LocationScheme } from './location.js';

/**
 * One human line per accepted form. Errors quote these ("expected ..."), so a user who typed a
 * URI wrong sees the shape we wanted next to what they gave.
 */
export const FORMS = {
  modelsMount: '/mnt/models[/PATH] (already mounted; nothing is downloaded)',
  gs: 'gs://BUCKET[/PREFIX]',
  s3: 's3://BUCKET[/PREFIX]',
  hdfs: 'hdfs://PATH, hdfs:///ABSOLUTE/PATH or hdfs://NAMENODE:PORT/PATH (likewise webhdfs://)',
  azureBlob:
    'https://ACCOUNT.blob.core.windows.net/CONTAINER[/PATH][?SAS] (also ACCOUNT.zNN.blob.storage.azure.net, blob.core.chinacloudapi.cn, blob.core.usgovcloudapi.net)',
  azureFile: 'https://ACCOUNT.file.core.windows.net/SHARE[/PATH][?SAS] (also ACCOUNT.zNN.file.storage.azure.net)',
  hf: 'hf://OWNER/MODEL[:REVISION]',
  modelscope: 'modelscope://OWNER/MODEL[:REVISION]',
  oci: 'oci://REGISTRY[:PORT]/REPOSITORY[:TAG][@ALGORITHM:HEX] (also oci+fetch://)',
  git: 'http(s)://HOST/PATH/REPO.git[@REF] or git://HOST/PATH/REPO[.git][@REF] (the ref may also be given as #REF)',
  http: 'http(s)://HOST/PATH/FILE (a single file; archives are unpacked)',
  local: 'file://PATH, an absolute path such as /mnt/pvc/PATH, or an existing local path',
  pvc: 'pvc://CLAIM[/PATH]',
} as const;

/** The lines of the "Cannot recognize storage type" error, in dispatch order. */
export const SUPPORTED_URI_FORMS: readonly string[] = Object.freeze(Object.values(FORMS));

const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;

/**
 * Accepted URIs, at least one per form, with the backend each selects. The unit tests parse every
 * one; the Kubernetes manifest test reuses them as realistic `storageUri` values.
 */
export const URI_EXAMPLES: readonly { uri: string; scheme: LocationScheme }[] = Object.freeze([
  { uri: '/mnt/models', scheme: 'models-mount' },
  { uri: '/mnt/models/llama-3', scheme: 'models-mount' },
  { uri: 'gs://kfserving-examples/models/sklearn/1.0/model', scheme: 'gs' },
  { uri: 'gs://my_bucket.example.com', scheme: 'gs' },
  { uri: 's3://models/iris', scheme: 's3' },
  { uri: 's3://models', scheme: 's3' },
  { uri: 's3://Legacy_Bucket/models/v1/', scheme: 's3' },
  { uri: 's3://models/with space/模型/a%20b', scheme: 's3' },
  { uri: 'hdfs://user/kserve/models/iris', scheme: 'hdfs' },
  { uri: 'hdfs:///models/iris', scheme: 'hdfs' },
  { uri: 'webhdfs://namenode.example.com:9870/models/iris', scheme: 'hdfs' },
  { uri: 'https://kfserving.blob.core.windows.net/triton/simple_string/', scheme: 'azure-blob' },
  { uri: 'https://account.z13.blob.storage.azure.net/models/iris?sv=2022-11-02&sr=c&sp=rl&sig=c2lnbmF0dXJl', scheme: 'azure-blob' },
  { uri: 'https://account.blob.core.chinacloudapi.cn/models/my%20model/model.onnx', scheme: 'azure-blob' },
  { uri: 'https://account.blob.core.usgovcloudapi.net/models/iris', scheme: 'azure-blob' },
  { uri: 'https://account.file.core.windows.net/share/models/iris', scheme: 'azure-file' },
  { uri: 'https://account.z5.file.storage.azure.net/share/model.bin', scheme: 'azure-file' },
  { uri: 'hf://meta-llama/Llama-3.1-8B-Instruct', scheme: 'hf' },
  { uri: 'hf://google-bert/bert-base-uncased:main', scheme: 'hf' },
  { uri: 'hf://openai-community/gpt2:refs/pr/1', scheme: 'hf' },
  { uri: 'modelscope://qwen/Qwen2-0.5B-Instruct', scheme: 'modelscope' },
  { uri: 'modelscope://qwen/Qwen2-0.5B-Instruct:v1.0.0', scheme: 'modelscope' },
  { uri: 'oci://quay.io/kserve/sklearn-model:v1', scheme: 'oci' },
  { uri: `oci+fetch://localhost:5000/models/iris@${DIGEST}`, scheme: 'oci' },
  { uri: 'oci://ghcr.io/org/models/llama:3.1-q4', scheme: 'oci' },
  { uri: 'oci://kserve/sklearn-model:latest', scheme: 'oci' },
  { uri: 'https://github.com/kserve/example-models.git', scheme: 'git' },
  { uri: 'https://gitlab.example.com/team/models.git@release/v2', scheme: 'git' },
  { uri: 'http://git.example.com/team/models.git#v1.2.0', scheme: 'git' },
  { uri: 'git://git.example.com/models', scheme: 'git' },
  { uri: 'https://storage.googleapis.com/bucket/model.tar.gz', scheme: 'http' },
  { uri: 'http://models.example.com:8080/iris/model.zip?download=1', scheme: 'http' },
  { uri: 'http://account.blob.core.windows.net/public/model.joblib', scheme: 'http' },
  { uri: 'file:///models/iris', scheme: 'local' },
  { uri: '/mnt/pvc/models/iris', scheme: 'local' },
  { uri: 'pvc://model-store/models/iris', scheme: 'pvc' },
  { uri: 'pvc://model-store', scheme: 'pvc' },
]);
