/**
 * Secrets never reach the output. Every source runs with distinctive credential values at debug
 * log level against its real test server, on the success path and on every failure path an
 * operator meets: wrong credentials, an unreachable host, a missing model, server errors (from a
 * fault proxy whose 500 pages echo the credentials back, as careless gateways do), and, where
 * credentials come as JSON or PEM, a malformed value around a secret. No
 * secret, nor its base64 or percent-encoded form, may appear in stdout, stderr or the error line.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ContainerSASPermissions, generateBlobSASQueryParameters, StorageSharedKeyCredential } from '@azure/storage-blob';
import { generateFileSASQueryParameters, ShareSASPermissions, StorageSharedKeyCredential as FileKey } from '@azure/storage-file-share';
import { errorLines, runCli } from '../helpers/cli.js';
import { record } from '../helpers/reliability.js';
import { freshDest, randomBytes, tempDir, type Tree } from '../helpers/tree.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, WRONG_KEY, type AzuriteServer } from '../servers/azurite.js';
import { FILE_ACCOUNT, FILE_KEY, startAzureFileDouble, type AzureFileDouble } from '../servers/azure-file-double.js';
import { startFaultProxy, type FaultProxy } from '../servers/fault-proxy.js';
import { startFauxqs, type FauxqsServer } from '../servers/fauxqs.js';
import { startGcsDouble, type GcsDouble } from '../servers/gcs-double.js';
import { GIT_TEST_PASSWORD, GIT_TEST_USER, startGitServers, type GitServers } from '../servers/git-servers.js';
import { startHfDouble, type HfDouble } from '../servers/hf-double.js';
import { startModelScopeDouble, type ModelScopeDouble } from '../servers/modelscope-double.js';
import { NGINX_BASIC_PASSWORD, NGINX_BASIC_USER, NGINX_BEARER_TOKEN, startNginx, type NginxServer } from '../servers/nginx.js';
import { gzipLayer, makeTar, MEDIA, pushImage, startRegistry, type Registry } from '../servers/oci-registry.js';
import { s3Client, uploadTree } from '../servers/s3-fixtures.js';
import { generateCa } from '../servers/tls.js';
import { startWebHdfsDouble, type WebHdfsDouble } from '../servers/webhdfs-double.js';
import { assertNoLeak, basicForm, closedPort, leaksIn, pemBodyLines } from './leaks.js';

const S3_KEY_ID = 'AKIASECRETaws1234KEYID';
const S3_SECRET = 'SECRETaws1234secretAccessKey/+Zq9';
const S3_SESSION = 'SECRETaws1234sessionToken//FwoGZXIvYXdzEJr=';
const HF_TOKEN = 'hf_SECRETtoken1234hubReader';
const HF_WRONG = 'hf_SECRETwrong5678notAReader';
const MS_TOKEN = 'SECRETms1234modelscopeToken';
const MS_WRONG = 'SECRETms5678wrongToken';
const HDFS_GATEWAY = 'SECRETgw1234gatewayToken';
const HDFS_AUDIT = 'SECRETaudit1234headerValue';
const GIT_TOKEN_USER = 'x-access-token';
const OCI_USER = 'puller';
const OCI_PASSWORD = 'SECRETreg1234Pass!word';
const HTTP_HEADER_SECRET = 'SECREThdr1234customHeader';

const MODEL: Tree = new Map([
  ['models/iris/model.bin', randomBytes(200_000, 71)],
  ['models/iris/config.json', Buffer.from('{"framework":"sklearn"}')],
]);
const HUB_FILES = new Map([['config.json', Buffer.from('{"model_type":"demo"}')], ['model.safetensors', randomBytes(50_000, 72)]]);

/** One way to run the CLI: its arguments and environment. */
interface Run { uri: string; env: Record<string, string> }

interface Target {
  source: string;
  /** The secrets of every run of this target (wrong ones included). */
  secrets: string[];
  /** The real server's base URL. */
  upstream: () => string;
  /** A run with good credentials against `base`: the real server, a fault proxy, or a closed port. */
  at: (base: string) => Promise<Run> | Run;
  /** More ways to give good credentials, each run on the success path. */
  alternatives?: () => Promise<Run[]> | Run[];
  wrongCredentials: () => Promise<Run> | Run;
  notFound: () => Promise<Run> | Run;
  /** Credentials that cannot be read (broken JSON or PEM around a secret): refused without quoting them. */
  malformed?: () => Promise<Run> | Run;
}

const common = {
  STORAGE_INITIALIZER_LOG_LEVEL: 'debug', STORAGE_INITIALIZER_MAX_ATTEMPTS: '2', S3_MAX_ATTEMPTS: '1',
  STORAGE_INITIALIZER_CONNECT_TIMEOUT: '3', STORAGE_INITIALIZER_READ_TIMEOUT: '10',
};

describe('secrets never reach the output (every source, every path, debug level)', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let fauxqs: FauxqsServer;
  let gcs: GcsDouble;
  let azurite: AzuriteServer;
  let files: AzureFileDouble;
  let hf: HfDouble;
  let ms: ModelScopeDouble;
  let hdfs: WebHdfsDouble;
  let git: GitServers;
  let registry: Registry;
  let nginx: NginxServer;
  let unreachable: string;
  const targets: Target[] = [];
  const proxies = new Map<string, FaultProxy>();

  before(async () => {
    work = await tempDir('si-secrets-');
    const nginxRoot = path.join(work.dir, 'nginx');
    await mkdir(nginxRoot);
    // Served under /auth/ (Basic) and /bearer/ (a token) alike.
    await writeFile(path.join(nginxRoot, 'model.bin'), randomBytes(100_000, 73));
    [fauxqs, gcs, azurite, files, hf, ms, hdfs, git, registry, nginx] = await Promise.all([
      startFauxqs(), startGcsDouble(), startAzurite(), startAzureFileDouble(), startHfDouble({ tokens: [HF_TOKEN, HF_WRONG] }),
      startModelScopeDouble({ tokens: [MS_TOKEN, MS_WRONG] }), startWebHdfsDouble({ requiredHeaders: { 'X-Gateway-Token': HDFS_GATEWAY } }),
      startGitServers(), startRegistry(path.join(work.dir, 'registry'), { htpasswd: { username: OCI_USER, password: OCI_PASSWORD } }),
      startNginx({ root: nginxRoot }),
    ]);
    unreachable = `http://127.0.0.1:${await closedPort()}`;

    // S3
    await uploadTree(s3Client({ endpoint: fauxqs.endpoint, accessKeyId: 'a', secretAccessKey: 'b', region: 'us-east-1' }), 'bucket', MODEL);
    const s3Keys = { AWS_ACCESS_KEY_ID: S3_KEY_ID, AWS_SECRET_ACCESS_KEY: S3_SECRET, AWS_SESSION_TOKEN: S3_SESSION, AWS_REGION: 'us-east-1' };
    targets.push({
      source: 's3',
      secrets: [S3_SECRET, S3_SESSION, S3_KEY_ID],
      upstream: () => fauxqs.endpoint,
      at: (base) => ({ uri: 's3://bucket/models/iris', env: { ...s3Keys, AWS_ENDPOINT_URL: base } }),
      alternatives: () => [{ uri: 's3://bucket/models/iris', env: { STORAGE_CONFIG: JSON.stringify({ type: 's3', access_key_id: S3_KEY_ID, secret_access_key: S3_SECRET, endpoint_url: fauxqs.endpoint, region: 'us-east-1' }) } }],
      // fauxqs checks no signatures: a proxy answers as S3 does to a bad key, quoting the key id and what was signed.
      wrongCredentials: async () => {
        const proxy = await startFaultProxy({ upstream: fauxqs.endpoint });
        proxies.set('s3-wrong', proxy);
        const body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message><AWSAccessKeyId>${S3_KEY_ID}</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256 ${S3_SESSION}</StringToSign></Error>`;
        proxy.setSchedule(() => ({ kind: 'status', status: 403, body, headers: { 'content-type': 'application/xml' } }));
        return { uri: 's3://bucket/models/iris', env: { ...s3Keys, AWS_ENDPOINT_URL: proxy.url } };
      },
      notFound: () => ({ uri: 's3://no-such-bucket/models', env: { ...s3Keys, AWS_ENDPOINT_URL: fauxqs.endpoint } }),
      malformed: () => ({ uri: 's3://bucket/models/iris', env: { STORAGE_CONFIG: `{"type": "s3", "secret_access_key": ${S3_SECRET}, "session": "${S3_SESSION}"` } }),
    });

    // GCS: a service-account key (its private key is the secret) exchanged for a bearer token.
    gcs.createBucket('private-models', { readers: [] });
    for (const [name, content] of MODEL) gcs.putObject('private-models', name, content);
    const key = gcs.createServiceAccount('loader@double-project.iam.gserviceaccount.com');
    gcs.createBucket('readers-only', { readers: [key.client_email] });
    for (const [name, content] of MODEL) gcs.putObject('readers-only', name, content);
    const forged = gcs.unknownServiceAccount(key.client_email);
    const keyFile = path.join(work.dir, 'gcs-key.json');
    const forgedFile = path.join(work.dir, 'gcs-forged.json');
    await writeFile(keyFile, JSON.stringify(key));
    await writeFile(forgedFile, JSON.stringify(forged));
    const home = path.join(work.dir, 'home');
    await mkdir(home);
    const gcsEnv = (base: string, credentials: string): Record<string, string> => ({
      HOME: home, CLOUDSDK_CONFIG: path.join(home, 'gcloud'), STORAGE_EMULATOR_HOST: base, GCE_METADATA_HOST: `127.0.0.1:${gcs.port}`,
      GOOGLE_APPLICATION_CREDENTIALS: credentials,
    });
    targets.push({
      source: 'gcs',
      secrets: [...pemBodyLines(key.private_key), key.private_key_id, ...pemBodyLines(forged.private_key)],
      upstream: () => gcs.url,
      at: (base) => ({ uri: 'gs://readers-only/models/iris', env: gcsEnv(base, keyFile) }),
      wrongCredentials: () => ({ uri: 'gs://readers-only/models/iris', env: gcsEnv(gcs.url, forgedFile) }),
      notFound: () => ({ uri: 'gs://no-such-bucket/models', env: gcsEnv(gcs.url, keyFile) }),
      malformed: async () => {
        const broken = path.join(work.dir, 'gcs-broken.json');
        await writeFile(broken, JSON.stringify(key).replace('"private_key":', '"private_key" '));
        return { uri: 'gs://readers-only/models/iris', env: gcsEnv(gcs.url, broken) };
      },
    });

    // Azure Blob on Azurite: account key, SAS in the URI, connection string.
    await azurite.createContainer('private', MODEL);
    const blobSas = generateBlobSASQueryParameters({
      containerName: 'private', permissions: ContainerSASPermissions.parse('rl'), expiresOn: new Date(Date.now() + 3600_000),
    }, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY)).toString();
    const blobUri = (container = 'private'): string => `https://${AZURITE_ACCOUNT}.blob.core.windows.net/${container}/models/iris`;
    const connection = `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${azurite.blobEndpoint};`;
    targets.push({
      source: 'azure-blob',
      secrets: [AZURITE_KEY, WRONG_KEY, new URLSearchParams(blobSas).get('sig') ?? blobSas, connection],
      upstream: () => `http://127.0.0.1:${azurite.port}`,
      at: (base) => ({ uri: blobUri(), env: { AZURE_STORAGE_BLOB_ENDPOINT: `${base}/${AZURITE_ACCOUNT}`, AZURE_STORAGE_ACCESS_KEY: AZURITE_KEY } }),
      alternatives: (): Run[] => [
        { uri: `${blobUri()}?${blobSas}`, env: { AZURE_STORAGE_BLOB_ENDPOINT: azurite.blobEndpoint } },
        { uri: blobUri(), env: { AZURE_STORAGE_CONNECTION_STRING: connection } },
      ],
      wrongCredentials: () => ({ uri: blobUri(), env: { AZURE_STORAGE_BLOB_ENDPOINT: azurite.blobEndpoint, AZURE_STORAGE_ACCESS_KEY: WRONG_KEY } }),
      notFound: () => ({ uri: blobUri('missing'), env: { AZURE_STORAGE_BLOB_ENDPOINT: azurite.blobEndpoint, AZURE_STORAGE_ACCESS_KEY: AZURITE_KEY } }),
    });

    // Azure File on the File double: a SAS in the URI.
    files.addShare('models', MODEL);
    const sasFor = (accountKey: string): string => generateFileSASQueryParameters({
      shareName: 'models', permissions: ShareSASPermissions.parse('rl'), expiresOn: new Date(Date.now() + 3600_000),
    }, new FileKey(FILE_ACCOUNT, accountKey)).toString();
    const fileSas = sasFor(FILE_KEY);
    const wrongFileSas = sasFor(WRONG_KEY);
    const fileUri = (sas: string, folder = 'iris'): string => `https://${FILE_ACCOUNT}.file.core.windows.net/models/models/${folder}?${sas}`;
    const fileRoot = new URL(files.endpoint).origin;
    targets.push({
      source: 'azure-file',
      secrets: [new URLSearchParams(fileSas).get('sig') ?? fileSas, new URLSearchParams(wrongFileSas).get('sig') ?? wrongFileSas],
      upstream: () => fileRoot,
      at: (base) => ({ uri: fileUri(fileSas), env: { AZURE_STORAGE_FILE_ENDPOINT: `${base}/${FILE_ACCOUNT}` } }),
      wrongCredentials: () => ({ uri: fileUri(wrongFileSas), env: { AZURE_STORAGE_FILE_ENDPOINT: files.endpoint } }),
      notFound: () => ({ uri: fileUri(fileSas, 'no-such-model'), env: { AZURE_STORAGE_FILE_ENDPOINT: files.endpoint } }),
    });

    // Hugging Face and ModelScope: tokens for private repositories.
    hf.addRepo('acme/private-llm', HUB_FILES, { private: true, readers: [HF_TOKEN] });
    targets.push({
      source: 'huggingface',
      secrets: [HF_TOKEN, HF_WRONG],
      upstream: () => hf.url,
      at: (base) => ({ uri: 'hf://acme/private-llm', env: { HF_ENDPOINT: base, HF_TOKEN } }),
      wrongCredentials: () => ({ uri: 'hf://acme/private-llm', env: { HF_ENDPOINT: hf.url, HF_TOKEN: HF_WRONG } }),
      notFound: () => ({ uri: 'hf://acme/no-such-model', env: { HF_ENDPOINT: hf.url, HF_TOKEN } }),
    });
    ms.addModel('qwen/private', HUB_FILES, { private: true, readers: [MS_TOKEN] });
    targets.push({
      source: 'modelscope',
      secrets: [MS_TOKEN, MS_WRONG],
      upstream: () => ms.url,
      at: (base) => ({ uri: 'modelscope://qwen/private', env: { MODELSCOPE_ENDPOINT: base, MODELSCOPE_API_TOKEN: MS_TOKEN } }),
      wrongCredentials: () => ({ uri: 'modelscope://qwen/private', env: { MODELSCOPE_ENDPOINT: ms.url, MODELSCOPE_API_TOKEN: MS_WRONG } }),
      notFound: () => ({ uri: 'modelscope://qwen/no-such-model', env: { MODELSCOPE_ENDPOINT: ms.url, MODELSCOPE_API_TOKEN: MS_TOKEN } }),
    });

    // WebHDFS: a secret dir (gateway header, user, client certificate and key) and <host>-headers.
    hdfs.mkdir('/user/kserve', { owner: 'kserve', permission: '700' });
    for (const [name, content] of MODEL) hdfs.putFile(`/user/kserve/${name}`, content, { owner: 'kserve', permission: '600' });
    const client = await generateCa(path.join(work.dir, 'hdfs-tls'));
    const clientKey = await readFile(client.keyFile, 'utf8');
    const clientCert = await readFile(client.certFile, 'utf8');
    let dirs = 0;
    const secretDir = async (namenode: string, gateway: string, headers = JSON.stringify({ 'X-Gateway-Token': gateway })): Promise<Record<string, string>> => {
      const dir = path.join(work.dir, 'hdfs-secrets', String(++dirs));
      await mkdir(dir, { recursive: true });
      const values: Record<string, string> = {
        HDFS_NAMENODE: namenode, HDFS_ROOTPATH: '/user/kserve', USER_PROXY: 'kserve', HEADERS: headers,
        TLS_CERT: clientCert, TLS_KEY: clientKey,
      };
      for (const [name, value] of Object.entries(values)) await writeFile(path.join(dir, name), `${value}\n`);
      return { HDFS_SECRET_DIR: dir, '127.0.0.1-headers': JSON.stringify({ 'X-Audit-Token': HDFS_AUDIT }) };
    };
    targets.push({
      source: 'webhdfs',
      secrets: [HDFS_GATEWAY, HDFS_AUDIT, 'SECRETgw5678wrongGateway', ...pemBodyLines(clientKey)],
      upstream: () => hdfs.activeUrl,
      at: async (base) => ({ uri: 'hdfs://models/iris', env: await secretDir(base, HDFS_GATEWAY) }),
      wrongCredentials: async () => ({ uri: 'hdfs://models/iris', env: await secretDir(hdfs.activeUrl, 'SECRETgw5678wrongGateway') }),
      notFound: async () => ({ uri: 'hdfs://models/no-such-model', env: await secretDir(hdfs.activeUrl, HDFS_GATEWAY) }),
      malformed: async () => ({ uri: 'hdfs://models/iris', env: await secretDir(hdfs.activeUrl, HDFS_GATEWAY, `{"X-Gateway-Token": ${HDFS_GATEWAY}}`) }),
    });

    // Git over HTTP: a password in the URL, or a token in GIT_PASSWORD.
    const gitUri = (base: string, password = GIT_TEST_PASSWORD, repo = 'models'): string => {
      const url = new URL(`${base}/private/${repo}.git`);
      url.username = GIT_TEST_USER;
      url.password = password;
      return url.href;
    };
    targets.push({
      source: 'git-http',
      secrets: [GIT_TEST_PASSWORD, basicForm(GIT_TEST_USER, GIT_TEST_PASSWORD), 'SECRETgit5678wrongPassword', basicForm(GIT_TEST_USER, 'SECRETgit5678wrongPassword'), 'SECRETgit1234tokenValue'],
      upstream: () => git.httpUrl,
      at: (base) => ({ uri: gitUri(base), env: {} }),
      alternatives: () => [{ uri: `${git.httpUrl}/private/models.git`, env: { GIT_USERNAME: GIT_TEST_USER, GIT_PASSWORD: GIT_TEST_PASSWORD } }],
      wrongCredentials: () => ({ uri: `${git.httpUrl}/private/models.git`, env: { GIT_USERNAME: GIT_TOKEN_USER, GIT_PASSWORD: 'SECRETgit1234tokenValue' } }),
      notFound: () => ({ uri: gitUri(git.httpUrl, GIT_TEST_PASSWORD, 'no-such-repo'), env: {} }),
    });

    // OCI: docker config.json with Basic credentials for the registry.
    await pushImage(registry, 'private/model', 'v1', [{ data: gzipLayer(makeTar([{ name: 'models/' }, { name: 'models/model.bin', content: Buffer.from('weights') }])), mediaType: MEDIA.gzip }]);
    let configs = 0;
    const dockerConfig = async (host: string, password: string): Promise<string> => {
      const file = path.join(work.dir, 'docker', `${++configs}.json`);
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, JSON.stringify({ auths: { [host]: { auth: basicForm(OCI_USER, password) } } }));
      return file;
    };
    const ociRun = async (host: string, password = OCI_PASSWORD, repo = 'private/model'): Promise<Run> => ({
      uri: `oci://${host}/${repo}:v1`,
      env: { KSERVE_OCI_INSECURE_REGISTRY: host, KSERVE_OCI_DOCKER_CONFIG: await dockerConfig(host, password) },
    });
    targets.push({
      source: 'oci',
      secrets: [OCI_PASSWORD, basicForm(OCI_USER, OCI_PASSWORD), 'SECRETreg5678Wrong', basicForm(OCI_USER, 'SECRETreg5678Wrong')],
      upstream: () => `http://${registry.host}`,
      at: (base) => ociRun(new URL(base).host),
      wrongCredentials: () => ociRun(registry.host, 'SECRETreg5678Wrong'),
      notFound: () => ociRun(registry.host, OCI_PASSWORD, 'private/no-such-model'),
      malformed: async () => {
        const run = await ociRun(registry.host);
        const file = run.env.KSERVE_OCI_DOCKER_CONFIG ?? '';
        await writeFile(file, `{"auths": {"${registry.host}": {"auth": "${basicForm(OCI_USER, OCI_PASSWORD)}",}}`);
        return run;
      },
    });

    // HTTP: userinfo in the URL, and <host>-headers (Authorization and a custom header).
    const httpUri = (base: string, password = NGINX_BASIC_PASSWORD, file = 'auth/model.bin'): string => {
      const url = new URL(`${base}/${file}`);
      url.username = NGINX_BASIC_USER;
      url.password = password;
      return url.href;
    };
    targets.push({
      source: 'http',
      secrets: [NGINX_BASIC_PASSWORD, basicForm(NGINX_BASIC_USER, NGINX_BASIC_PASSWORD), NGINX_BEARER_TOKEN, HTTP_HEADER_SECRET, 'SECREThttp5678wrong', basicForm(NGINX_BASIC_USER, 'SECREThttp5678wrong')],
      upstream: () => nginx.httpUrl,
      at: (base) => ({ uri: httpUri(base), env: { '127.0.0.1-headers': JSON.stringify({ 'X-Api-Key': HTTP_HEADER_SECRET }) } }),
      alternatives: () => [{ uri: `${nginx.httpUrl}/bearer/model.bin`, env: { '127.0.0.1-headers': JSON.stringify({ Authorization: `Bearer ${NGINX_BEARER_TOKEN}`, 'X-Api-Key': HTTP_HEADER_SECRET }) } }],
      wrongCredentials: () => ({ uri: httpUri(nginx.httpUrl, 'SECREThttp5678wrong'), env: {} }),
      notFound: () => ({ uri: httpUri(nginx.httpUrl, NGINX_BASIC_PASSWORD, 'auth/no-such-model.bin'), env: {} }),
      malformed: () => ({ uri: `${nginx.httpUrl}/bearer/model.bin`, env: { '127.0.0.1-headers': `{"Authorization": Bearer ${NGINX_BEARER_TOKEN}, "X-Api-Key": "${HTTP_HEADER_SECRET}"}` } }),
    });

    // Server errors: a fault proxy in front of each server answers 500 with a page quoting every secret.
    for (const target of targets) {
      const proxy = await startFaultProxy({ upstream: target.upstream() });
      const echo = `internal error; request was: ${target.secrets.join(' ')}`;
      proxy.setSchedule(() => ({ kind: 'status', status: 500, body: echo, headers: { 'content-type': 'text/plain', 'x-debug-echo': target.secrets.join(',').replace(/[\r\n]/g, '') } }));
      proxies.set(target.source, proxy);
    }
  });

  after(async () => {
    await Promise.all([...proxies.values()].map((p) => p.stop()));
    const servers: { stop(): Promise<void> }[] = [fauxqs, gcs, azurite, files, hf, ms, hdfs, git, registry, nginx];
    await Promise.all(servers.map((server) => server.stop()));
    await work[Symbol.asyncDispose]();
  });

  /** What each failure path's error line says, so a run that failed for another reason is noticed. */
  const expectedError: Record<string, RegExp> = {
    // The Hub hides a private repository from a token that may not read it: "not found ... or the token".
    'wrong-credentials': /auth|denied|forbidden|refused|401|403|credential|signature|token/i,
    unreachable: /ECONNREFUSED|connect/i,
    'not-found': /not found|no such|No model|404|does not exist/i,
    'server-error': /500|server error/i,
    // Refused as unreadable, or (a docker config is optional) ignored and then refused by the server.
    'malformed-input': /invalid|malformed|not valid|JSON|unauthori|denied|401/i,
  };

  async function check(target: Target, pathName: string, run: Run, expectSuccess: boolean): Promise<void> {
    const dest = freshDest(work.dir);
    const result = await runCli(['--log-level', 'debug', run.uri, dest], { env: { ...common, ...run.env }, timeoutMs: 60_000 });
    const leaked = leaksIn(result, target.secrets).length > 0;
    record('secrets', { source: target.source, path: pathName, leaked });
    assert.equal(result.code, expectSuccess ? 0 : 1, `${target.source} ${pathName}:\n${result.stderr}`);
    if (expectSuccess) assert.match(result.stderr, / DEBUG /, `${target.source}: debug lines are written`);
    else assert.match(errorLines(result).join('\n'), expectedError[pathName] ?? /./, `${target.source} ${pathName}:\n${result.stderr}`);
    assertNoLeak(result, target.secrets, `${target.source} ${pathName}`);
  }

  it('the check has teeth: a distinctive value the CLI does print (a path in the URI) is found', async () => {
    const control = 'SECRETcontrol1234notASecret';
    const result = await runCli(['--log-level', 'debug', `${nginx.httpUrl}/${control}.bin`, freshDest(work.dir)], { env: common });
    assert.equal(result.code, 1, result.stderr);
    assert.deepEqual(leaksIn(result, [control]), [control]);
  });

  const sources = ['s3', 'gcs', 'azure-blob', 'azure-file', 'huggingface', 'modelscope', 'webhdfs', 'git-http', 'oci', 'http'];
  const find = (source: string): Target => {
    const target = targets.find((t) => t.source === source);
    assert.ok(target !== undefined, source);
    return target;
  };
  for (const source of sources) {
    it(`${source}: success, wrong credentials, unreachable, not found, server error, malformed input`, async () => {
      const target = find(source);
      await check(target, 'success', await target.at(target.upstream()), true);
      for (const alternative of await target.alternatives?.() ?? []) await check(target, 'success', alternative, true);
      await check(target, 'wrong-credentials', await target.wrongCredentials(), false);
      await check(target, 'unreachable', await target.at(unreachable), false);
      await check(target, 'not-found', await target.notFound(), false);
      const proxy = proxies.get(source);
      assert.ok(proxy !== undefined);
      await check(target, 'server-error', await target.at(proxy.url), false);
      if (target.malformed !== undefined) await check(target, 'malformed-input', await target.malformed(), false);
    });
  }
});
