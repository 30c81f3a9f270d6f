import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bypassesProxy } from '../../src/net/proxy.js';

describe('NO_PROXY', () => {
  it('matches hosts, domain suffixes, ports and *', () => {
    assert.ok(bypassesProxy('s3.internal.example.com', 443, 'example.com'));
    assert.ok(bypassesProxy('s3.internal.example.com', 443, '.example.com'));
    assert.ok(bypassesProxy('example.com', 443, '*.example.com'));
    assert.ok(!bypassesProxy('badexample.com', 443, 'example.com'));
    assert.ok(bypassesProxy('127.0.0.1', 9000, 'localhost, 127.0.0.1'));
    assert.ok(bypassesProxy('minio', 9000, 'minio:9000'));
    assert.ok(!bypassesProxy('minio', 9001, 'minio:9000'));
    assert.ok(bypassesProxy('anything', 1, '*'));
    assert.ok(!bypassesProxy('anything', 1, undefined));
  });
});
