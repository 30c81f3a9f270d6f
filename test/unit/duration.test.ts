/** The deadline's duration syntax, and the deadline setting's sources (flag over variable). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadSettings } from '../../src/settings/settings.js';
import { parseDuration } from '../../src/settings/values.js';

describe('parseDuration', () => {
  it('reads plain seconds, units and combinations, in milliseconds', () => {
    const cases: [string, number][] = [
      ['90', 90_000], ['2.5', 2500], ['500ms', 500], ['30s', 30_000], ['30m', 1_800_000], ['1h', 3_600_000],
      ['1h30m', 5_400_000], ['2d', 172_800_000], [' 45S ', 45_000], ['1m30s', 90_000], ['1.5h', 5_400_000],
    ];
    for (const [text, ms] of cases) assert.equal(parseDuration('X', text), ms, text);
  });

  it('takes unset, empty and 0 as no deadline', () => {
    assert.equal(parseDuration('X', undefined), 0);
    assert.equal(parseDuration('X', ''), 0);
    assert.equal(parseDuration('X', '0'), 0);
    assert.equal(parseDuration('X', '0s'), 0);
  });

  it('refuses what it cannot read, naming the origin', () => {
    for (const bad of ['soon', '-5', '5 m', '1x', 'm', '1h 30m', '30min', '1e3', '9'.repeat(400) + 'd']) {
      assert.throws(() => parseDuration('--deadline', bad), /invalid --deadline=.*expected seconds or a duration/, bad);
    }
  });
});

describe('deadline setting', () => {
  it('is none by default, comes from STORAGE_INITIALIZER_DEADLINE, and the flag wins', () => {
    assert.equal(loadSettings({}).deadlineMs, 0);
    assert.equal(loadSettings({ STORAGE_INITIALIZER_DEADLINE: '30m' }).deadlineMs, 1_800_000);
    assert.equal(loadSettings({ STORAGE_INITIALIZER_DEADLINE: '30m' }, { deadline: '10' }).deadlineMs, 10_000);
    assert.throws(() => loadSettings({ STORAGE_INITIALIZER_DEADLINE: 'tomorrow' }), /invalid STORAGE_INITIALIZER_DEADLINE="tomorrow"/);
  });
});
