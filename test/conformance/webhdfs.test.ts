/**
 * The conformance suite on the WebHDFS source against the WebHDFS double: an HA pair whose first
 * namenode is standby, a root path only its owner may read, paged directory listings, and ranged
 * OPENs redirected to the datanode. A user without access is refused (AccessControlException).
 */
import { silentLogger } from '../../src/log.js';
import { loadHdfsSettings } from '../../src/settings/hdfs.js';
import type { Settings } from '../../src/settings/settings.js';
import { WebHdfsSource } from '../../src/sources/webhdfs.js';
import { startWebHdfsDouble, type WebHdfsDouble } from '../servers/webhdfs-double.js';
import { runConformance } from './suite.js';

const ROOT = '/user/kserve';
let hdfs: WebHdfsDouble | undefined;

function sourceAs(user: string, prefix: string, settings: Settings): Promise<WebHdfsSource> {
  if (hdfs === undefined) throw new Error('setup did not run');
  const hdfsSettings = loadHdfsSettings({}, {
    type: 'webhdfs', HDFS_NAMENODE: `${hdfs.standbyUrl};${hdfs.activeUrl}`, HDFS_ROOTPATH: ROOT, USER_PROXY: user,
  });
  return Promise.resolve(new WebHdfsSource({ scheme: 'hdfs', protocol: 'hdfs', path: prefix }, { ...settings, hdfs: hdfsSettings }, silentLogger));
}

runConformance({
  name: 'WebHDFS (HA double, first namenode standby, simple auth)',
  capabilities: { directoryMarkers: false, auth: true },
  async setup(objects) {
    hdfs = await startWebHdfsDouble({ batchLimit: 1000 });
    hdfs.mkdir(ROOT, { owner: 'kserve', permission: '700' });
    for (const [key, content] of objects) hdfs.putFile(`${ROOT}/${key}`, content, { owner: 'kserve', permission: '600' });
  },
  source: (prefix, settings) => sourceAs('kserve', prefix, settings),
  sourceWithBadCredentials: (prefix, settings) => sourceAs('mallory', prefix, settings),
  async teardown() {
    await hdfs?.stop();
  },
});
