/** The conformance suite on S3: fauxqs (fast, in memory) and OpenStack Swift's s3api (checks signatures). */
import { S3Source } from '../../src/sources/s3.js';
import { s3Client, uploadTree } from '../servers/s3-fixtures.js';
import { startFauxqs } from '../servers/fauxqs.js';
import { startSwift } from '../servers/swift.js';
import { conformanceSettings, runConformance } from './suite.js';

interface S3Server { endpoint: string; accessKeyId: string; secretAccessKey: string; stop(): Promise<void> }

function bindS3(name: string, start: () => Promise<S3Server>, checksSignatures: boolean): void {
  let server: S3Server | undefined;
  const bucket = 'conformance';
  const settingsFor = (secret: string) => conformanceSettings({
    AWS_ENDPOINT_URL: server?.endpoint ?? '',
    AWS_ACCESS_KEY_ID: server?.accessKeyId ?? '',
    AWS_SECRET_ACCESS_KEY: secret,
    AWS_REGION: 'us-east-1',
    S3_MAX_ATTEMPTS: '1',
  });
  runConformance({
    name,
    capabilities: { directoryMarkers: true, auth: checksSignatures },
    async setup(objects) {
      server = await start();
      await uploadTree(s3Client({ endpoint: server.endpoint, accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey, region: 'us-east-1' }), bucket, objects);
    },
    source: (prefix) => Promise.resolve(new S3Source(bucket, prefix, settingsFor(server?.secretAccessKey ?? ''))),
    sourceWithBadCredentials: (prefix) => Promise.resolve(new S3Source(bucket, prefix, settingsFor('not-the-secret'))),
    async teardown() {
      await server?.stop();
    },
  });
}

bindS3('S3 on fauxqs', async () => ({ ...(await startFauxqs()), accessKeyId: 'test', secretAccessKey: 'test' }), false);
bindS3('S3 on Swift s3api', startSwift, true);
