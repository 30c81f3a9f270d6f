import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { StorageError } from '../../src/errors.js';
import {
  parseStorageUri,
  redactUri,
  SUPPORTED_URI_FORMS,
  URI_EXAMPLES,
  type Location,
  type ParseOptions,
} from '../../src/uri/index.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

/** Locations are plain data except the http URL; compare that by href. */
function plain(location: Location): unknown {
  return location.scheme === 'http' ? { scheme: 'http', url: location.url.href } : location;
}

function parseError(uri: string, options?: ParseOptions): StorageError {
  try {
    parseStorageUri(uri, options);
  } catch (err) {
    assert.ok(err instanceof StorageError, `expected a StorageError, got ${String(err)}`);
    assert.equal(err.kind, 'InvalidInput');
    assert.ok(!err.message.includes('\n'), 'error messages are one line');
    return err;
  }
  assert.fail(`expected ${JSON.stringify(uri)} to be refused`);
}

const UNRECOGNIZED_TAIL = `. Supported forms: ${SUPPORTED_URI_FORMS.join('; ')}`;

describe('URI_EXAMPLES', () => {
  for (const { uri, scheme } of URI_EXAMPLES) {
    it(`${uri} -> ${scheme}`, () => {
      assert.equal(parseStorageUri(uri).scheme, scheme);
    });
  }

  it('covers every scheme', () => {
    const all: Location['scheme'][] = [
      'models-mount', 'gs', 's3', 'hdfs', 'azure-blob', 'azure-file', 'hf', 'modelscope', 'oci', 'git', 'http', 'local', 'pvc',
    ];
    assert.deepEqual([...new Set(URI_EXAMPLES.map((e) => e.scheme))].sort(), [...all].sort());
  });
});

describe('parseStorageUri: exact locations', () => {
  const cases: [string, unknown, ParseOptions?][] = [
    ['/mnt/models', { scheme: 'models-mount', path: '/mnt/models' }],
    ['/mnt/models/', { scheme: 'models-mount', path: '/mnt/models' }],
    ['/mnt/models/a/b', { scheme: 'models-mount', path: '/mnt/models/a/b' }],
    // A directory boundary, unlike upstream's prefix test; and judged after normalization.
    ['/mnt/models2/x', { scheme: 'local', path: '/mnt/models2/x' }],
    ['/mnt/models/../etc', { scheme: 'local', path: '/mnt/etc' }],
    ['/mnt/pvc/models/iris/', { scheme: 'local', path: '/mnt/pvc/models/iris' }],
    ['s3://bucket/models/iris', { scheme: 's3', bucket: 'bucket', key: 'models/iris' }],
    ['s3://bucket', { scheme: 's3', bucket: 'bucket', key: '' }],
    ['s3://bucket/', { scheme: 's3', bucket: 'bucket', key: '' }],
    ['s3://b/models/', { scheme: 's3', bucket: 'b', key: 'models' }],
    ['s3://b/models//', { scheme: 's3', bucket: 'b', key: 'models' }],
    ['S3://bucket/x', { scheme: 's3', bucket: 'bucket', key: 'x' }],
    ['s3://My_Legacy.Bucket/x', { scheme: 's3', bucket: 'My_Legacy.Bucket', key: 'x' }],
    // Keys are raw: "%20" stays three characters, as upstream hands it to the SDK.
    ['s3://b/a%20b/c%2Fd', { scheme: 's3', bucket: 'b', key: 'a%20b/c%2Fd' }],
    ['s3://b/with space/x', { scheme: 's3', bucket: 'b', key: 'with space/x' }],
    ['s3://b/模型/x', { scheme: 's3', bucket: 'b', key: '模型/x' }],
    ['s3://b/a?b#c', { scheme: 's3', bucket: 'b', key: 'a?b#c' }],
    ['s3://b/./x', { scheme: 's3', bucket: 'b', key: './x' }],
    ['s3://b/a..b/x..', { scheme: 's3', bucket: 'b', key: 'a..b/x..' }],
    ['gs://bucket_1.example/dir/file.bin', { scheme: 'gs', bucket: 'bucket_1.example', key: 'dir/file.bin' }],
    ['hdfs://user/me/model', { scheme: 'hdfs', protocol: 'hdfs', path: 'user/me/model' }],
    ['hdfs:///user/me/model/', { scheme: 'hdfs', protocol: 'hdfs', path: '/user/me/model' }],
    ['hdfs://namenode:8020/models', { scheme: 'hdfs', protocol: 'hdfs', host: 'namenode:8020', path: '/models' }],
    ['webhdfs://[::1]:9870/models', { scheme: 'hdfs', protocol: 'webhdfs', host: '[::1]:9870', path: '/models' }],
    ['webhdfs://namenode/models', { scheme: 'hdfs', protocol: 'webhdfs', path: 'namenode/models' }],
    [
      'https://acct.blob.core.windows.net/models/my%20dir/model.onnx?sv=2022-11-02&sig=abc%2Bdef%3D',
      {
        scheme: 'azure-blob', account: 'acct', endpoint: 'https://acct.blob.core.windows.net', container: 'models',
        key: 'my dir/model.onnx', sas: 'sv=2022-11-02&sig=abc%2Bdef%3D',
      },
    ],
    [
      'https://acct.blob.core.windows.net/models?comp=list',
      { scheme: 'azure-blob', account: 'acct', endpoint: 'https://acct.blob.core.windows.net', container: 'models', key: '' },
    ],
    [
      'https://acct-secondary.blob.core.windows.net/models/x',
      { scheme: 'azure-blob', account: 'acct', endpoint: 'https://acct-secondary.blob.core.windows.net', container: 'models', key: 'x' },
    ],
    [
      'https://ACCT.Z42.BLOB.STORAGE.AZURE.NET/$web/index',
      { scheme: 'azure-blob', account: 'acct', endpoint: 'https://acct.z42.blob.storage.azure.net', container: '$web', key: 'index' },
    ],
    [
      'https://acct.file.core.windows.net/share/dir/模型.bin?sig=x',
      { scheme: 'azure-file', account: 'acct', endpoint: 'https://acct.file.core.windows.net', share: 'share', key: 'dir/模型.bin', sas: 'sig=x' },
    ],
    ['hf://owner/model', { scheme: 'hf', repo: 'owner/model' }],
    ['hf://owner/model/', { scheme: 'hf', repo: 'owner/model' }],
    ['hf://owner/model:main', { scheme: 'hf', repo: 'owner/model', revision: 'main' }],
    ['hf://owner/model:refs/pr/3', { scheme: 'hf', repo: 'owner/model', revision: 'refs/pr/3' }],
    ['modelscope://qwen/Qwen2-7B:v1.0', { scheme: 'modelscope', repo: 'qwen/Qwen2-7B', revision: 'v1.0' }],
    ['oci://quay.io/org/model:v1', { scheme: 'oci', fetch: false, registry: 'quay.io', repository: 'org/model', tag: 'v1' }],
    ['oci://quay.io/org/model', { scheme: 'oci', fetch: false, registry: 'quay.io', repository: 'org/model' }],
    [
      `oci+fetch://localhost:5000/a/b:v2@${DIGEST}`,
      { scheme: 'oci', fetch: true, registry: 'localhost:5000', repository: 'a/b', tag: 'v2', digest: DIGEST },
    ],
    ['OCI+FETCH://localhost/a', { scheme: 'oci', fetch: true, registry: 'localhost', repository: 'a' }],
    ['oci://kserve/model:v1', { scheme: 'oci', fetch: false, registry: 'docker.io', repository: 'kserve/model', tag: 'v1' }],
    ['oci://ubuntu:latest', { scheme: 'oci', fetch: false, registry: 'docker.io', repository: 'library/ubuntu', tag: 'latest' }],
    ['https://github.com/org/repo.git', { scheme: 'git', url: 'https://github.com/org/repo.git' }],
    ['https://github.com/org/repo.git/', { scheme: 'git', url: 'https://github.com/org/repo.git/' }],
    ['https://github.com/org/repo.git@v1.0', { scheme: 'git', url: 'https://github.com/org/repo.git', ref: 'v1.0' }],
    ['https://github.com/org/repo.git@feature/x', { scheme: 'git', url: 'https://github.com/org/repo.git', ref: 'feature/x' }],
    ['https://github.com/org/repo.git#main', { scheme: 'git', url: 'https://github.com/org/repo.git', ref: 'main' }],
    [
      'https://alice:s%40cret@git.example.com:8443/team/repo.git@0123abc',
      { scheme: 'git', url: 'https://git.example.com:8443/team/repo.git', ref: '0123abc', username: 'alice', password: 's@cret' },
    ],
    ['https://oauth2@gitlab.com/g/r.git', { scheme: 'git', url: 'https://gitlab.com/g/r.git', username: 'oauth2' }],
    ['git://git.example.com/repo', { scheme: 'git', url: 'git://git.example.com/repo' }],
    ['git://git.example.com:9418/repo.git#v2', { scheme: 'git', url: 'git://git.example.com:9418/repo.git', ref: 'v2' }],
    ['git://git.example.com/repo@release/1', { scheme: 'git', url: 'git://git.example.com/repo', ref: 'release/1' }],
    ['https://example.com/models/model.tar.gz', { scheme: 'http', url: 'https://example.com/models/model.tar.gz' }],
    ['https://example.com/a%20b/model.bin?x=1#frag', { scheme: 'http', url: 'https://example.com/a%20b/model.bin?x=1#frag' }],
    ['http://example.com/repo.git.tar.gz', { scheme: 'http', url: 'http://example.com/repo.git.tar.gz' }],
    ['http://user:pw@example.com/m.zip', { scheme: 'http', url: 'http://user:pw@example.com/m.zip' }],
    ['https://acct.blob.core.windows.net.evil.example/c/x', { scheme: 'http', url: 'https://acct.blob.core.windows.net.evil.example/c/x' }],
    ['file:///models/iris', { scheme: 'local', path: '/models/iris' }],
    ['file://models/iris', { scheme: 'local', path: 'models/iris' }],
    ['models/iris', { scheme: 'local', path: 'models/iris' }, { existsLocally: true }],
    ['foo', { scheme: 'local', path: 'foo' }, { existsLocally: true }],
    // A known scheme wins over a local directory that happens to be called "s3:".
    ['s3://bucket/x', { scheme: 's3', bucket: 'bucket', key: 'x' }, { existsLocally: true }],
    ['pvc://my-claim/models/iris/', { scheme: 'pvc', claim: 'my-claim', path: 'models/iris' }],
    ['pvc://my-claim', { scheme: 'pvc', claim: 'my-claim', path: '' }],
  ];
  for (const [uri, expected, options] of cases) {
    it(`${uri}${options?.existsLocally === true ? ' (exists locally)' : ''}`, () => {
      assert.deepEqual(plain(parseStorageUri(uri, options)), expected);
    });
  }

  it('keeps the http URL a WHATWG URL', () => {
    const location = parseStorageUri('https://example.com/m.bin');
    assert.equal(location.scheme, 'http');
    assert.ok(location.url instanceof URL);
  });
});

describe('parseStorageUri: refused inputs', () => {
  const unrecognized: [string, string][] = [
    ['empty', ''],
    ['whitespace', ' \t '],
    ['NUL byte', 's3://bucket/a\0b'],
    ['newline', 's3://bucket/model\n'],
    ['C1 control', 's3://bucket/a\u0085b'],
    ['bidi override', 's3://bucket/\u202egpj.exe'],
    ['lone surrogate', 's3://bucket/\ud800'],
    ['unknown scheme', 'ftp://host/x'],
    ['bare word', 'foo'],
    ['relative path not known to exist', 'models/iris'],
    ['leading space', ' s3://bucket/x'],
    ['scheme without slashes', 's3:bucket/x'],
  ];
  for (const [name, uri] of unrecognized) {
    it(`${name}: Cannot recognize storage type`, () => {
      const err = parseError(uri);
      assert.ok(err.message.startsWith(`Cannot recognize storage type for URI ${JSON.stringify(uri)}.`), err.message);
      assert.ok(err.message.endsWith(UNRECOGNIZED_TAIL), err.message);
    });
  }

  it('whitespace and control characters are refused even when the caller says the path exists', () => {
    assert.match(parseError('   ', { existsLocally: true }).message, /^Cannot recognize storage type/);
    assert.match(parseError('a\nb', { existsLocally: true }).message, /^Cannot recognize storage type/);
  });

  const malformed: [string, RegExp][] = [
    ['s3://', /^Invalid S3 URI "s3:\/\/": the bucket name is empty; expected s3:\/\/BUCKET\[\/PREFIX\]$/],
    ['s3:///key', /^Invalid S3 URI "s3:\/\/\/key": the bucket name is empty/],
    ['gs://', /^Invalid GCS URI "gs:\/\/": the bucket name is empty/],
    ['gs://Upper/x', /^Invalid GCS URI .*bucket name is not valid/],
    ['gs://ab/x', /^Invalid GCS URI .*bucket name is not valid/],
    ['s3://-bucket/x', /^Invalid S3 URI .*bucket name is not valid/],
    ['s3://../x', /^Invalid S3 URI .*bucket name is not valid/],
    ['s3://user:pw@bucket/x', /^Invalid S3 URI .*bucket name is not valid/],
    ['gs://bucket/../x', /^Invalid GCS URI "gs:\/\/bucket\/..\/x": the key has a "\.\." segment/],
    ['s3://b/a/../../x', /^Invalid S3 URI .*the key has a "\.\." segment/],
    ['s3://b/..', /the key has a "\.\." segment/],
    ['s3://b/x/../', /the key has a "\.\." segment/],
    ['hdfs://', /^Invalid HDFS URI .*the path is empty/],
    ['hdfs:///', /^Invalid HDFS URI .*the path is empty/],
    ['webhdfs://namenode:9870/', /^Invalid WebHDFS URI .*the path is empty/],
    ['hdfs://user/../etc', /^Invalid HDFS URI .*"\.\." segment/],
    ['hf://only-one', /^Invalid Hugging Face URI "hf:\/\/only-one": it must name exactly OWNER\/MODEL/],
    ['hf://', /^Invalid Hugging Face URI .*OWNER\/MODEL/],
    ['hf://a/b/c', /^Invalid Hugging Face URI .*OWNER\/MODEL/],
    ['hf://a/b:', /^Invalid Hugging Face URI .*the revision after ":" is empty/],
    ['hf://a/b:-x', /revision is not a valid/],
    ['hf://a/b:x..y', /revision is not a valid/],
    ['hf://../b', /^Invalid Hugging Face URI .*OWNER and MODEL/],
    ['hf://a/..', /^Invalid Hugging Face URI .*OWNER and MODEL/],
    ['hf://a/b--c', /^Invalid Hugging Face URI .*OWNER and MODEL/],
    ['hf://a/b c', /^Invalid Hugging Face URI .*OWNER and MODEL/],
    ['modelscope://only-one', /^Invalid ModelScope URI .*OWNER\/MODEL/],
    ['oci://', /^Invalid OCI URI .*the image reference is empty/],
    ['oci://quay.io', /^Invalid OCI URI .*registry but no repository/],
    ['oci://localhost:5000', /^Invalid OCI URI .*registry but no repository/],
    ['oci://registry:5000', /^Invalid OCI URI .*registry but no repository/],
    ['oci://quay.io/', /^Invalid OCI URI .*the repository is empty/],
    ['oci+fetch://quay.io/:v1', /^Invalid OCI URI .*the repository is empty/],
    ['oci://quay.io/org/Model', /^Invalid OCI URI .*repository must be lowercase/],
    ['oci://quay.io/org/model:', /^Invalid OCI URI .*the tag is not valid/],
    ['oci://quay.io/org/model@sha256:abc', /^Invalid OCI URI .*the digest must be ALGORITHM:HEX/],
    ['oci://quay.io/org/model@sha256', /the digest must be ALGORITHM:HEX/],
    [`oci://quay.io/org/model@sha256:${'AB'.repeat(32)}`, /the digest must be ALGORITHM:HEX/],
    [`oci://quay.io/org/model@${'ab'.repeat(32)}`, /the digest must be ALGORITHM:HEX/],
    ['oci://bad_host.io/org/model', /^Invalid OCI URI .*registry is not a valid host/],
    ['git://', /^Invalid Git URI "git:\/\/": the host is empty/],
    ['git:///repo', /^Invalid Git URI .*the host is empty/],
    ['git://host', /^Invalid Git URI .*repository path is empty/],
    ['git://host/', /^Invalid Git URI .*repository path is empty/],
    ['https://host/repo.git@', /^Invalid Git URI .*the ref is empty/],
    ['https://host/repo.git#', /^Invalid Git URI .*the ref is empty/],
    ['https://host/repo.git@v1#v2', /^Invalid Git URI .*given twice/],
    ['https://host/repo.git@--upload-pack=touch', /^Invalid Git URI .*not a valid branch/],
    ['https://host/repo.git@a..b', /not a valid branch/],
    ['https://host/repo.git@%zz', /invalid percent-encoding/],
    ['https://', /^Invalid HTTP URI "https:\/\/": the host is empty/],
    ['https:///path/file', /^Invalid HTTP URI .*the host is empty/],
    ['http://user@/file', /^Invalid HTTP URI .*the host is empty/],
    ['https://host:99999/file', /^Invalid HTTP URI .*not a valid URL/],
    ['https://host\\evil/file', /backslash/],
    ['https://ab.blob.core.windows.net/models/x', /^Invalid Azure Blob URI .*account name is not valid/],
    ['https://acct.blob.core.windows.net', /^Invalid Azure Blob URI .*container name is empty/],
    ['https://acct.blob.core.windows.net/', /container name is empty/],
    ['https://acct.file.core.windows.net/', /^Invalid Azure File URI .*share name is empty/],
    ['https://acct.blob.core.windows.net/Bad_Container/x', /container name is not valid/],
    ['https://acct.blob.core.windows.net/models/../other/x', /"\." or "\.\." segment/],
    ['https://acct.blob.core.windows.net/models/%2e%2e/x', /"\." or "\.\." segment/],
    ['https://acct.blob.core.windows.net/models/a%2F..%2Fb', /"\." or "\.\." segment/],
    ['https://acct.blob.core.windows.net/models/./x', /"\." or "\.\." segment/],
    ['https://acct.blob.core.windows.net/models/%zz', /invalid percent-encoding/],
    ['https://user:pw@acct.blob.core.windows.net/models/x', /credentials in the URL are not used/],
    ['file://', /^Invalid local URI .*the path is empty/],
    ['pvc://', /^Invalid PVC URI .*claim name is empty/],
    ['pvc://Bad_Claim/x', /claim name is not a valid/],
    ['pvc://claim/../x', /"\.\." segment/],
  ];
  for (const [uri, pattern] of malformed) {
    it(`${uri}: ${pattern.source}`, () => {
      assert.match(parseError(uri).message, pattern);
    });
  }

  it('quotes the URI so control characters are visible and the message stays one line', () => {
    assert.ok(parseError('s3://bucket/a\nb').message.includes('"s3://bucket/a\\nb"'));
  });

  it('cuts very long URIs in messages', () => {
    const err = parseError(`ftp://host/${'x'.repeat(10_000)}`);
    assert.ok(err.message.length < 2_000);
  });
});

describe('secrets never reach messages or redactUri', () => {
  it('a password in a git URL', () => {
    const uri = 'https://alice:hunter2@git.example.com/team/repo.git@v1';
    const location = parseStorageUri(uri);
    assert.equal(location.scheme === 'git' ? location.url : '', 'https://git.example.com/team/repo.git');
    assert.equal(redactUri(uri), 'https://alice:***@git.example.com/team/repo.git@v1');
  });

  it('a password in a malformed URL', () => {
    for (const uri of ['https://alice:hunter2@host:99999/m.zip', 'ftp://alice:hunter2@host/x', 'https://alice:hunt/er2@host/x']) {
      const message = parseError(uri).message;
      assert.ok(!message.includes('hunter2') && !message.includes('hunt/er2'), message);
      assert.ok(!redactUri(uri).includes('er2'), redactUri(uri));
    }
  });

  it('a password containing "@"', () => {
    assert.equal(redactUri('https://alice:p@ss@host/x'), 'https://alice:***@host/x');
  });

  it('a token as the user name', () => {
    assert.equal(redactUri('https://ghp_0123456789abcdef@github.com/o/r.git'), 'https://***@github.com/o/r.git');
  });

  it('an Azure SAS signature', () => {
    const uri = 'https://acct.blob.core.windows.net/models/x?sv=2022-11-02&se=2030-01-01&sp=rl&sig=SeCrEt%2Bsig%3D';
    assert.equal(redactUri(uri), 'https://acct.blob.core.windows.net/models/x?sv=2022-11-02&se=2030-01-01&sp=rl&sig=***');
    const message = parseError(uri.replace('/models/', '/Bad_Container/')).message;
    assert.ok(!message.includes('SeCrEt'), message);
  });

  it('presigned S3 and GCS parameters, tokens, keys, secrets', () => {
    const uri =
      'https://h/m.bin?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIA%2F2024&X-Amz-Security-Token=tok&X-Amz-Signature=abc' +
      '&X-Goog-Signature=g&access_token=t&api_key=k&password=p&client_secret=s&keep=1#id_token=f';
    assert.equal(
      redactUri(uri),
      'https://h/m.bin?X-Amz-Algorithm=AWS4&X-Amz-Credential=***&X-Amz-Security-Token=***&X-Amz-Signature=***' +
        '&X-Goog-Signature=***&access_token=***&api_key=***&password=***&client_secret=***&keep=1#id_token=***',
    );
  });

  it('leaves URIs without secrets alone', () => {
    for (const { uri } of URI_EXAMPLES) {
      if (!uri.includes('sig=')) assert.equal(redactUri(uri), uri);
    }
    assert.equal(redactUri('oci://localhost:5000/a:v1'), 'oci://localhost:5000/a:v1');
    assert.equal(redactUri('https://[::1]:8080/x'), 'https://[::1]:8080/x');
    assert.equal(redactUri(''), '');
  });
});

describe('properties', () => {
  const uriChars = fc.constantFrom(...'abcAB09-_.~/:@?#%&=+ 模\\'.split(''), '..', '%2e', '%2F', '%zz', 'sig=', '.git', '\n', '\0');
  const prefixes = fc.constantFrom(
    '', '/', '/mnt/models', 's3://', 'S3://', 'gs://', 'hdfs://', 'webhdfs://', 'http://', 'https://', 'git://', 'hf://',
    'modelscope://', 'oci://', 'oci+fetch://', 'file://', 'pvc://', 'ftp://', 'https://acct.blob.core.windows.net/',
    'https://acct.file.core.windows.net/', 'https://host/repo.git', 's3://bucket/', 'gs://bucket/',
  );
  const structured = fc.tuple(prefixes, fc.string({ unit: uriChars, maxLength: 24 })).map(([p, s]) => p + s);
  const anyString = fc.oneof(structured, fc.string({ unit: 'binary', maxLength: 60 }), fc.string({ maxLength: 60 }));

  it('parseStorageUri returns a Location or throws an InvalidInput StorageError, never anything else', () => {
    fc.assert(
      fc.property(anyString, fc.boolean(), (uri, existsLocally) => {
        let location: Location;
        try {
          location = parseStorageUri(uri, { existsLocally });
        } catch (err) {
          return err instanceof StorageError && err.kind === 'InvalidInput' && !err.message.includes('\n');
        }
        if (location.scheme === 's3' || location.scheme === 'gs') {
          return !location.key.split('/').includes('..') && !location.key.endsWith('/') && location.bucket !== '';
        }
        if (location.scheme === 'azure-blob' || location.scheme === 'azure-file') {
          return !location.key.split('/').some((s) => s === '.' || s === '..');
        }
        // Credentials leave the git URL: its authority (between "//" and the next "/") has no "@".
        if (location.scheme === 'git') return !(location.url.split('/')[2] ?? '').includes('@');
        return true;
      }),
      { numRuns: 3000 },
    );
  });

  it('redactUri never throws', () => {
    fc.assert(
      fc.property(anyString, (uri) => typeof redactUri(uri) === 'string'),
      { numRuns: 3000 },
    );
  });

  it('a URL password never appears in redactUri output or in a parse error', () => {
    const secretChars = fc.constantFrom(...'abcXYZ0189!$&\'()*+,;=:%-._~/?#'.split(''));
    fc.assert(
      fc.property(
        fc.constantFrom('https://', 'http://', 'git://', 'ftp://', 'oci://'),
        fc.string({ unit: secretChars, minLength: 1, maxLength: 12 }),
        fc.constantFrom('host', 'git.example.com:8443', 'acct.blob.core.windows.net', ''),
        fc.constantFrom('/repo.git', '/m.zip', '/models/x', ''),
        (scheme, secretTail, host, path) => {
          const secret = `Pw${secretTail}`;
          const uri = `${scheme}user:${secret}@${host}${path}`;
          if (redactUri(uri).includes(secret)) return false;
          try {
            const location = parseStorageUri(uri);
            return location.scheme === 'http' || !JSON.stringify(location.scheme === 'git' ? location.url : location).includes(secret);
          } catch (err) {
            return err instanceof StorageError && !err.message.includes(secret);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('a SAS signature never appears in redactUri output', () => {
    const sigChars = fc.constantFrom(...'abcXYZ0189+/=%'.split(''));
    fc.assert(
      fc.property(fc.string({ unit: sigChars, minLength: 1, maxLength: 20 }), fc.boolean(), (tail, first) => {
        const sig = `S1g${tail}`;
        const query = first ? `sig=${sig}&sv=2022` : `sv=2022&sp=r&sig=${sig}`;
        return !redactUri(`https://acct.blob.core.windows.net/models/x?${query}`).includes(sig);
      }),
      { numRuns: 1000 },
    );
  });
});
