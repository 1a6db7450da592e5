'use strict';
// The recommendation feed and the log id against a real sidecar process: a feed reports the
// sidecar's log, and a checkpoint (logId, sequence) of another log is refused as lost instead of
// being resumed in the wrong log; also after the sidecar was restarted on a new state file whose
// log already numbers past the checkpoint. Run by tests/polyglot/test_node_client.py, which
// also sets RISKBUDGET_STATE_PATH (the state file the sidecar runs on) for the last test.

const assert = require('node:assert/strict');
const { test } = require('node:test');
const { RecommendationFeed, RecommendationsLost, RiskBudgetClient } = require('../../src');
const {
  adminStub, clientToken, next, replaceStateFile, target, triggerRebalance,
} = require('./environment');

const QUICK = { initialBackoff: 0.05, maxBackoff: 0.5 };
const TIMEOUT = { timeout: 60_000 }; // a feed waiting for a recommendation that never comes fails, not hangs

/** The sidecar's own words when a checkpoint counts in `theirs` and its log is `ours`. */
function anotherLog(checkpoint, theirs, ours) {
  return new RegExp(`^after_sequence ${checkpoint} counts in recommendation log '${theirs}', `
    + `and this sidecar's log is '${ours}' .*oldest available is \\d+$`);
}

/** A client, an admin stub and the feeds made with `feedOf`, all closed when the test ends. */
function connect(t) {
  const client = new RiskBudgetClient(target, { clientToken });
  const admin = adminStub();
  const feeds = [];
  t.after(() => {
    feeds.forEach((feed) => feed.close());
    client.close();
    admin.close();
  });
  const feedOf = (options) => {
    const feed = new RecommendationFeed(client, { ...QUICK, ...options });
    feeds.push(feed);
    return feed;
  };
  return { client, admin, feedOf };
}

/** The error the feed throws before it yields anything; fails the test if it yields one. */
async function refusal(feed) {
  try {
    for await (const recommendation of feed) {
      assert.fail(`the feed yielded recommendation ${recommendation.sequence} of log ${JSON.stringify(feed.logId)}`);
    }
  } catch (error) {
    if (error instanceof assert.AssertionError) {
      throw error;
    }
    return error;
  }
  return assert.fail('the feed ended without an error');
}

test('the feed reports the log id of the sidecar\'s recommendation log, as GetStatus does', TIMEOUT, async (t) => {
  const { client, admin, feedOf } = connect(t);
  const status = await client.getStatus();
  const feed = feedOf({ afterSequence: status.lastRecommendationSequence });
  const recommendations = feed[Symbol.asyncIterator]();
  assert.equal(feed.logId, '');

  const triggered = BigInt((await triggerRebalance(admin, 'log id')).sequence);

  assert.deepEqual(await next(recommendations, 1), [triggered]);
  assert.match(status.recommendationLogId, /\S/);
  assert.equal(feed.logId, status.recommendationLogId);
  assert.equal((await client.getStatus()).recommendationLogId, status.recommendationLogId);
});

test('a checkpoint of another log throws RecommendationsLost and yields nothing, though its sequence is kept', TIMEOUT, async (t) => {
  const { client, admin, feedOf } = connect(t);
  const checkpoint = BigInt((await triggerRebalance(admin, 'the checkpoint')).sequence);
  await triggerRebalance(admin, 'after the checkpoint');
  const { recommendationLogId } = await client.getStatus();
  const feed = feedOf({ afterSequence: checkpoint, logId: 'not-this-sidecars-log' });

  const error = await refusal(feed);

  assert.ok(error instanceof RecommendationsLost, error);
  assert.equal(error.afterSequence, checkpoint);
  assert.match(error.details, anotherLog(checkpoint, 'not-this-sidecars-log', recommendationLogId));
  assert.equal(feed.closed, true);
  assert.equal(feed.lastSequence, checkpoint);
});

test('a checkpoint of the old log throws RecommendationsLost on a sidecar restarted on a new state file that is past it', TIMEOUT, async (t) => {
  const { client, admin, feedOf } = connect(t);
  // The checkpoint a rebalancer persisted: (logId, sequence) of the last recommendation handled.
  const before = feedOf({ afterSequence: (await client.getStatus()).lastRecommendationSequence });
  const recommendations = before[Symbol.asyncIterator]();
  for (const reason of ['old log 1', 'old log 2']) {
    await triggerRebalance(admin, reason);
  }
  const [, checkpoint] = await next(recommendations, 2);
  const oldLog = before.logId;
  before.close();

  await replaceStateFile();
  // The new log numbers from 1 again: recommendations until it is past the checkpoint.
  let newest = 0n;
  while (newest <= checkpoint + 1n) {
    newest = BigInt((await triggerRebalance(admin, `new log ${newest + 1n}`)).sequence);
  }
  const status = await client.getStatus();
  assert.notEqual(status.recommendationLogId, oldLog);
  assert.equal(BigInt(status.lastRecommendationSequence), newest);

  // Resuming after the bare sequence would skip the new log's recommendations up to it ...
  const blind = feedOf({ afterSequence: checkpoint });
  assert.deepEqual(await next(blind[Symbol.asyncIterator](), 1), [checkpoint + 1n]);
  assert.equal(blind.logId, status.recommendationLogId);
  blind.close();
  // ... the checkpoint with its log id is refused instead.
  const resumed = feedOf({ afterSequence: checkpoint, logId: oldLog });
  const error = await refusal(resumed);

  assert.ok(error instanceof RecommendationsLost, error);
  assert.equal(error.afterSequence, checkpoint);
  assert.equal(error.oldestAvailable, 1n);
  assert.equal(error.resumeAfter, 0n);
  assert.match(error.details, anotherLog(checkpoint, oldLog, status.recommendationLogId));
});
