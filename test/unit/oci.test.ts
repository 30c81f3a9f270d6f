/** OCI pieces without a registry: settings, challenges, media types, platforms, the Bearer token flow, whiteouts. */
import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import { silentLogger } from '../../src/log.js';
import { loadOciSettings } from '../../src/settings/oci.js';
import { loadSettings } from '../../src/settings/settings.js';
import { parseChallenge, RegistryClient } from '../../src/sources/oci-client.js';
import { applyLayer } from '../../src/sources/oci-layers.js';
import { layerFormat, pickPlatform } from '../../src/sources/oci-manifest.js';
import { tempDir } from '../helpers/tree.js';
import { listenOnLoopback } from '../servers/ports.js';

describe('oci settings', () => {
  it('reads auth and username/password entries, normalizing registry keys', async () => {
    await using work = await tempDir('si-oci-unit-');
    const file = path.join(work.dir, 'config.json');
    await writeFile(file, JSON.stringify({ auths: {
      'https://index.docker.io/v1/': { auth: Buffer.from('hub:pw1').toString('base64') },
      'Quay.io': { username: 'q', password: 'pw2' },
    } }));
    const s = loadOciSettings({ KSERVE_OCI_DOCKER_CONFIG: file, KSERVE_OCI_INSECURE_REGISTRY: 'a.local:5000, http://b.local' });
    assert.deepEqual(s.credentials.get('docker.io'), { username: 'hub', password: 'pw1' });
    assert.deepEqual(s.credentials.get('quay.io'), { username: 'q', password: 'pw2' });
    assert.deepEqual(s.insecureRegistries, ['a.local:5000', 'b.local']);
    assert.equal(s.insecureAll, false);
    assert.ok(s.secrets.includes('pw1'));
  });

  it('treats a missing default file as anonymous and a broken named file as a problem, without quoting it', async () => {
    await using work = await tempDir('si-oci-unit-');
    assert.equal(loadOciSettings({}).dockerConfigProblem, undefined);
    const file = path.join(work.dir, 'bad.json');
    await writeFile(file, '{"auths": secret-value');
    const s = loadOciSettings({ KSERVE_OCI_DOCKER_CONFIG: file, KSERVE_OCI_INSECURE_REGISTRY: 'true' });
    assert.match(s.dockerConfigProblem ?? '', /not valid JSON/);
    assert.ok(!(s.dockerConfigProblem ?? '').includes('secret-value'));
    assert.equal(s.insecureAll, true);
  });
});

describe('oci manifests', () => {
  it('parses Bearer challenges', () => {
    assert.deepEqual(parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"'), {
      scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull' },
    });
  });

  it('maps layer media types to archive kinds', () => {
    assert.equal(layerFormat('application/vnd.oci.image.layer.v1.tar+gzip'), 'tar.gz');
    assert.equal(layerFormat('application/vnd.docker.image.rootfs.diff.tar.gzip'), 'tar.gz');
    assert.equal(layerFormat('application/vnd.oci.image.layer.v1.tar+zstd'), 'tar.zst');
    assert.equal(layerFormat('application/vnd.oci.image.layer.nondistributable.v1.tar'), 'tar');
    assert.equal(layerFormat('application/vnd.cncf.helm.chart.content.v1.tar+gzip'), 'tar.gz');
    assert.equal(layerFormat('application/octet-stream'), undefined);
  });

  it('picks linux/<arch> and names what an index offers otherwise', () => {
    const manifests = [
      { digest: 'sha256:a', platform: { os: 'linux', architecture: 'arm64' } },
      { digest: 'sha256:b', platform: { os: 'linux', architecture: 'amd64' } },
      { digest: 'sha256:c', platform: { os: 'unknown', architecture: 'unknown' } },
    ];
    assert.equal(pickPlatform(manifests, 'amd64', 'x').digest, 'sha256:b');
    assert.throws(() => pickPlatform(manifests, 's390x', 'x'), /no linux\/s390x image \(it has: linux\/arm64, linux\/amd64, unknown\/unknown\)/);
  });
});

describe('oci whiteouts', () => {
  it('removes lower entries named by .wh. files and empties opaque directories', async () => {
    await using work = await tempDir('si-oci-unit-');
    const merged = path.join(work.dir, 'merged');
    const layer = path.join(work.dir, 'layer');
    await mkdir(path.join(merged, 'm/opaque'), { recursive: true });
    await mkdir(path.join(merged, 'm/gone'), { recursive: true });
    await writeFile(path.join(merged, 'm/opaque/old'), 'old');
    await writeFile(path.join(merged, 'm/gone/x'), 'x');
    await writeFile(path.join(merged, 'm/file'), 'v1');
    await mkdir(path.join(layer, 'm/opaque'), { recursive: true });
    await writeFile(path.join(layer, 'm/opaque/.wh..wh..opq'), '');
    await writeFile(path.join(layer, 'm/opaque/new'), 'new');
    await writeFile(path.join(layer, 'm/.wh.gone'), '');
    await writeFile(path.join(layer, 'm/file'), 'v2');
    await applyLayer(layer, merged);
    assert.deepEqual((await readdir(path.join(merged, 'm'))).sort(), ['file', 'opaque']);
    assert.deepEqual(await readdir(path.join(merged, 'm/opaque')), ['new']);
  });
});

describe('oci Bearer token flow', () => {
  it('answers a Bearer challenge with a token fetched using the config.json credentials', async () => {
    await using work = await tempDir('si-oci-unit-');
    const seen: string[] = [];
    const server: Server = createServer((req, res) => {
      const auth = req.headers.authorization ?? '';
      seen.push(`${req.url ?? ''} ${auth.split(' ')[0] ?? ''}`);
      if (req.url?.startsWith('/token')) {
        const url = new URL(req.url, 'http://x');
        const ok = auth === `Basic ${Buffer.from('u:p').toString('base64')}` && url.searchParams.get('scope') === 'repository:team/model:pull';
        res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' }).end(ok ? '{"token":"tok-123"}' : '{}');
        return;
      }
      if (auth !== 'Bearer tok-123') {
        const { port } = server.address() as AddressInfo;
        res.writeHead(401, { 'www-authenticate': `Bearer realm="http://127.0.0.1:${port}/token",service="test",scope="repository:team/model:pull"` }).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end('manifest');
    });
    const port = await listenOnLoopback(server);
    try {
      const host = `127.0.0.1:${port}`;
      const file = path.join(work.dir, 'config.json');
      await writeFile(file, JSON.stringify({ auths: { [host]: { username: 'u', password: 'p' } } }));
      const settings = loadSettings({ KSERVE_OCI_DOCKER_CONFIG: file, KSERVE_OCI_INSECURE_REGISTRY: host });
      const client = new RegistryClient(host, 'team/model', `oci://${host}/team/model:v1`, settings, silentLogger);
      const signal = new AbortController().signal;
      const response = await client.get('/v2/team/model/manifests/v1', {}, 'manifest', signal);
      assert.equal(await response.body.text(), 'manifest');
      // The token is kept for later requests.
      assert.equal(await (await client.get('/v2/team/model/blobs/sha256:x', {}, 'blob', signal)).body.text(), 'manifest');
      await client.close();
      assert.deepEqual(seen.slice(-4), ['/v2/team/model/manifests/v1 ', '/token?service=test&scope=repository%3Ateam%2Fmodel%3Apull Basic', '/v2/team/model/manifests/v1 Bearer', '/v2/team/model/blobs/sha256:x Bearer']);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
