/**
 * The OCI source end to end: the bundled CLI against a real registry (Debian's docker-registry),
 * with an image built by umoci and pushed by skopeo, and images, indexes and odd layers (zstd,
 * whiteouts, path traversal) pushed through the registry API by the test's push helper.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { failsWith, runCli, type CliResult } from '../helpers/cli.js';
import { freshDest, hashTree, tempDir } from '../helpers/tree.js';
import {
  gzipLayer, makeTar, MEDIA, pushImage, sha256, startRegistry, umociSkopeoImage, zstdLayer, type Registry,
} from '../servers/oci-registry.js';
import { generateCa, type TlsFiles } from '../servers/tls.js';

const USER = 'puller';
const PASSWORD = 'S3cret-Registry-Pass!';
const HOST_ARCH = process.arch === 'arm64' ? 'arm64' : 'amd64';
const OTHER_ARCH = HOST_ARCH === 'arm64' ? 'amd64' : 'arm64';

const hashes = (entries: Record<string, string>): Map<string, string> =>
  new Map(Object.entries(entries).map(([k, v]) => [k, sha256(v).slice('sha256:'.length)]));

describe('oci source (CLI against docker-registry)', () => {
  let work: Awaited<ReturnType<typeof tempDir>>;
  let plain: Registry;
  let secure: Registry;
  let tls: TlsFiles;
  let umociDigest: string;
  let caMount: string;

  before(async () => {
    work = await tempDir('si-oci-e2e-');
    tls = await generateCa(path.join(work.dir, 'tls'));
    [plain, secure] = await Promise.all([
      startRegistry(path.join(work.dir, 'plain')),
      startRegistry(path.join(work.dir, 'secure'), { tls, htpasswd: { username: USER, password: PASSWORD } }),
    ]);
    await umociSkopeoImage(path.join(work.dir, 'umoci'), plain, 'kserve/iris', 'v1', new Map([
      ['models/model.bin', Buffer.from('weights-v1')],
      ['models/sub/config.json', Buffer.from('{"a":1}')],
      ['etc/not-the-model', Buffer.from('x')],
    ]));
    const modelTar = makeTar([{ name: 'models/' }, { name: 'models/model.bin', content: Buffer.from('secure weights') }]);
    await pushImage(secure, 'private/model', 'v1', [{ data: gzipLayer(modelTar), mediaType: MEDIA.gzip }]);
    // Multi-arch: an index whose entries hold different content per architecture.
    const entries = [];
    for (const arch of [OTHER_ARCH, HOST_ARCH]) {
      const tar = makeTar([{ name: 'models/arch.txt', content: Buffer.from(arch) }]);
      const image = await pushImage(plain, 'multi/model', `only-${arch}`, [{ data: gzipLayer(tar), mediaType: MEDIA.gzip }], { os: 'linux', architecture: arch });
      entries.push({ mediaType: MEDIA.manifest, digest: image.digest, size: image.size, platform: { os: 'linux', architecture: arch } });
    }
    await plain.pushManifest('multi/model', 'latest', { schemaVersion: 2, mediaType: MEDIA.index, manifests: entries }, MEDIA.index);
    // Layers laid over each other: a zstd upper layer removes a lower directory with a whiteout.
    const lower = makeTar([
      { name: 'models/keep.txt', content: Buffer.from('keep') },
      { name: 'models/old/gone.txt', content: Buffer.from('gone') },
      { name: 'models/replaced.txt', content: Buffer.from('v1') },
    ]);
    const upper = makeTar([
      { name: 'models/.wh.old', content: Buffer.alloc(0) },
      { name: 'models/replaced.txt', content: Buffer.from('v2') },
      { name: 'models/new.txt', content: Buffer.from('new') },
    ]);
    await pushImage(plain, 'layers/model', 'v1', [{ data: gzipLayer(lower), mediaType: MEDIA.gzip }, { data: await zstdLayer(upper), mediaType: MEDIA.zstd }]);
    await pushImage(plain, 'flat/model', 'v1', [{ data: makeTar([{ name: 'model.onnx', content: Buffer.from('onnx') }]), mediaType: MEDIA.tar }]);
    await pushImage(plain, 'evil/model', 'v1', [{ data: gzipLayer(makeTar([{ name: 'models/ok.txt', content: Buffer.from('ok') }, { name: '../evil', content: Buffer.from('pwned') }])), mediaType: MEDIA.gzip }]);
    // A digest for the umoci image, as a user would read it from the registry.
    umociDigest = sha256(await (await fetch(`http://${plain.host}/v2/kserve/iris/manifests/v1`, { headers: { accept: MEDIA.manifest } })).arrayBuffer().then((b) => Buffer.from(b)));
    caMount = path.join(work.dir, 'ca');
    await mkdir(caMount);
    await copyFile(tls.caCertFile, path.join(caMount, 'cabundle.crt'));
  });

  after(async () => {
    await Promise.all([plain.stop(), secure.stop()]);
    await work[Symbol.asyncDispose]();
  });

  const insecure = (): Record<string, string> => ({ KSERVE_OCI_INSECURE_REGISTRY: plain.host, KSERVE_OCI_DOCKER_CONFIG: path.join(work.dir, 'none.json') });
  const trustCa = (): Record<string, string> => ({ CA_BUNDLE_CONFIGMAP_NAME: 'ca', CA_BUNDLE_VOLUME_MOUNT_POINT: caMount });

  async function download(uri: string, env: Record<string, string>): Promise<{ result: CliResult; files: Map<string, string>; dest: string }> {
    const dest = freshDest(path.join(work.dir, 'out'));
    const result = await runCli([uri, dest], { env });
    return { result, files: await hashTree(dest).catch(() => new Map<string, string>()), dest };
  }


  const IRIS = hashes({ 'model.bin': 'weights-v1', 'sub/config.json': '{"a":1}' });

  it('downloads the /models tree of an umoci-built image by tag (insecure registry over plain HTTP)', async () => {
    const { result, files, dest } = await download(`oci://${plain.host}/kserve/iris:v1`, insecure());
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, IRIS);
    assert.deepEqual((await readdir(dest)).sort(), ['model.bin', 'sub'], 'no staging directories left');
  });

  it('downloads by digest (oci+fetch) and verifies the manifest digest', async () => {
    const { result, files } = await download(`oci+fetch://${plain.host}/kserve/iris@${umociDigest}`, insecure());
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, IRIS);
  });

  it('refuses a plain-HTTP registry that is not listed as insecure, naming KSERVE_OCI_INSECURE_REGISTRY', async () => {
    const { result } = await download(`oci://${plain.host}/kserve/iris:v1`, {});
    failsWith(result, /KSERVE_OCI_INSECURE_REGISTRY/);
  });

  it(`picks linux/${HOST_ARCH} from a multi-arch index`, async () => {
    const { result, files } = await download(`oci://${plain.host}/multi/model:latest`, insecure());
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, hashes({ 'arch.txt': HOST_ARCH }));
  });

  it('lays a zstd layer over a gzip layer, honouring whiteouts', async () => {
    const { result, files } = await download(`oci://${plain.host}/layers/model:v1`, insecure());
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, hashes({ 'keep.txt': 'keep', 'new.txt': 'new', 'replaced.txt': 'v2' }));
  });

  it('keeps the whole tree of an image without /models', async () => {
    const { result, files } = await download(`oci://${plain.host}/flat/model:v1`, insecure());
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, hashes({ 'model.onnx': 'onnx' }));
  });

  it('fails with NotFound naming the reference for a missing tag', async () => {
    const { result } = await download(`oci://${plain.host}/kserve/iris:v9`, insecure());
    failsWith(result, new RegExp(`OCI manifest ${plain.host.replace(/\./g, '\\.')}/kserve/iris:v9 not found.*MANIFEST_UNKNOWN`));
  });

  it('refuses a layer with a ../ entry and writes nothing outside DEST', async () => {
    const { result, dest } = await download(`oci://${plain.host}/evil/model:v1`, insecure());
    failsWith(result, /refusing archive entry "\.\.\/evil"/);
    const parent = path.dirname(dest);
    assert.deepEqual(await readdir(parent), ['models']);
    assert.deepEqual(await readdir(dest), [], 'staging and blobs removed after a refused image');
  });

  it('pulls from an htpasswd + TLS registry with config.json credentials, never printing them', async () => {
    const config = path.join(work.dir, 'config.json');
    const auth = Buffer.from(`${USER}:${PASSWORD}`).toString('base64');
    await writeFile(config, JSON.stringify({ auths: { [secure.host]: { auth } } }));
    const { result, files } = await download(`oci://${secure.host}/private/model:v1`, { ...trustCa(), KSERVE_OCI_DOCKER_CONFIG: config, STORAGE_INITIALIZER_LOG_LEVEL: 'debug' });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(files, hashes({ 'model.bin': 'secure weights' }));
    for (const secret of [PASSWORD, auth]) assert.ok(!result.stderr.includes(secret) && !result.stdout.includes(secret), 'credential printed');
  });

  it('fails with one AuthFailed line naming the registry and KSERVE_OCI_DOCKER_CONFIG without credentials', async () => {
    const { result } = await download(`oci://${secure.host}/private/model:v1`, { ...trustCa(), KSERVE_OCI_DOCKER_CONFIG: path.join(work.dir, 'absent.json') });
    const line = failsWith(result, /requires authentication/);
    assert.match(line, new RegExp(secure.host.replace(/\./g, '\\.')));
    assert.match(line, /KSERVE_OCI_DOCKER_CONFIG/);
  });

  it('fails with AuthFailed for a wrong password, without printing it', async () => {
    const config = path.join(work.dir, 'wrong.json');
    await writeFile(config, JSON.stringify({ auths: { [`https://${secure.host}`]: { username: USER, password: 'wrong-password-123' } } }));
    const { result } = await download(`oci://${secure.host}/private/model:v1`, { ...trustCa(), KSERVE_OCI_DOCKER_CONFIG: config });
    failsWith(result, /KSERVE_OCI_DOCKER_CONFIG/);
    assert.ok(!result.stderr.includes('wrong-password-123'));
  });
});
