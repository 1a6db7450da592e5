'use strict';
// The recommendation feed against a real sidecar process that is killed (SIGKILL) and started
// again on the same state: the feed resumes after the last recommendation it yielded, with no
// gap and no duplicate. Run by tests/polyglot/test_node_client.py.

const assert = require('node:assert/strict');
const { test } = require('node:test');
const { RecommendationFeed, RiskBudgetClient } = require('../../src');
const {
  adminStub, clientToken, control, next, target, triggerRebalance,
} = require('./environment');

test('the feed resumes across a sidecar killed and restarted, with no gap and no duplicate', async (t) => {
  const client = new RiskBudgetClient(target, { clientToken });
  const admin = adminStub();
  const disconnects = [];
  const start = BigInt((await client.getStatus()).lastRecommendationSequence);
  const feed = new RecommendationFeed(client, {
    afterSequence: start, initialBackoff: 0.05, maxBackoff: 0.5, onDisconnect: (event) => disconnects.push(event),
  });
  t.after(() => {
    feed.close();
    client.close();
    admin.close();
  });
  const recommendations = feed[Symbol.asyncIterator]();
  for (const reason of ['before 1', 'before 2', 'before 3']) {
    await triggerRebalance(admin, reason);
  }

  const beforeTheCrash = await next(recommendations, 2);
  await control('kill');
  await control('start');
  const triggered = [];
  for (const reason of ['after 1', 'after 2']) {
    triggered.push(BigInt((await triggerRebalance(admin, reason)).sequence));
  }
  const afterTheRestart = await next(recommendations, 3);

  assert.deepEqual(beforeTheCrash, [start + 1n, start + 2n]);
  assert.deepEqual(triggered, [start + 4n, start + 5n]);
  assert.deepEqual(afterTheRestart, [start + 3n, start + 4n, start + 5n]);
  assert.equal(feed.lastSequence, start + 5n);
  assert.ok(disconnects.length >= 1, 'the feed never saw the sidecar go');
});
