'use strict';
// The recommendation feed resumes after the last recommendation it yielded, drops duplicates,
// stops on a gap or on recommendations no longer kept, and backs off between reconnects.
// Against a scripted sidecar (fake_sidecar.js).

const assert = require('node:assert/strict');
const { test } = require('node:test');
const grpc = require('@grpc/grpc-js');
const {
  FeedDisconnected,
  FeedGapError,
  RecommendationFeed,
  RecommendationsLost,
  RiskBudgetClient,
  RiskBudgetError,
} = require('../../src');
const { fakeSidecar, metadataOf, subscription } = require('./fake_sidecar');

const QUICK = { initialBackoff: 0.001, maxBackoff: 0.01, jitter: 0 };
/** For the log id tests: a feed that fails to stop waits for live recommendations forever. */
const LOG_TIMEOUT = { timeout: 5_000 };

function feedOn(t, target, options = {}) {
  const client = new RiskBudgetClient(target);
  const feed = new RecommendationFeed(client, { ...QUICK, ...options });
  t.after(() => {
    feed.close();
    client.close();
  });
  return feed;
}

/** The sequences of the next `count` recommendations the feed yields, as numbers. */
async function take(feed, count) {
  const sequences = [];
  for await (const recommendation of feed) {
    sequences.push(Number(recommendation.sequence));
    if (sequences.length === count) {
      break;
    }
  }
  return sequences;
}

function askedAfter(sidecar) {
  return sidecar.received.StreamRecommendations.map(({ request }) => Number(request.afterSequence));
}

/** The log id of each StreamRecommendations request the sidecar received. */
function askedOfLog(sidecar) {
  return sidecar.received.StreamRecommendations.map(({ request }) => request.logId);
}

/** The sequences the feed yields until it throws; resolves to [sequences, error]. */
async function untilItThrows(feed) {
  const handled = [];
  try {
    for await (const recommendation of feed) {
      handled.push(Number(recommendation.sequence));
    }
  } catch (error) {
    return [handled, error];
  }
  assert.fail(`the feed ended without an error after ${handled.join(', ')}`);
}

test('the feed yields every recommendation after the checkpoint in order', async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.subscriptions = [subscription([[5, 6], [7]], null)];
  const feed = feedOn(t, sidecar.target, { afterSequence: 4n });

  assert.deepEqual(await take(feed, 3), [5, 6, 7]);
  assert.deepEqual(askedAfter(sidecar), [4]);
  assert.equal(feed.lastSequence, 7n);
});

test('the feed resumes after the last recommendation handled when the stream breaks', async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.subscriptions = [subscription([[1, 2]]), subscription([[3]], null)];
  const disconnects = [];
  const feed = feedOn(t, sidecar.target, { onDisconnect: (event) => disconnects.push(event) });

  assert.deepEqual(await take(feed, 3), [1, 2, 3]);
  assert.deepEqual(askedAfter(sidecar), [0, 2]);
  assert.deepEqual(disconnects.map(({ codeName, details, lastSequence, attempt }) => [codeName, details, lastSequence, attempt]),
    [['UNAVAILABLE', 'connection lost', 2n, 1]]);
});

test('the server ending the stream is a disconnect like any other', async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.subscriptions = [subscription([[1]], { code: grpc.status.OK }), subscription([[2]], null)];
  const feed = feedOn(t, sidecar.target);

  assert.deepEqual(await take(feed, 2), [1, 2]);
  assert.deepEqual(askedAfter(sidecar), [0, 1]);
});

test('the resume point the sidecar sends on a cut-off is reported', async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.subscriptions = [
    subscription([[1]], { code: grpc.status.RESOURCE_EXHAUSTED, details: 'fell behind', metadata: metadataOf({ 'riskbudget-resume-after': '1' }) }),
    subscription([[2]], null),
  ];
  const disconnects = [];
  const feed = feedOn(t, sidecar.target, { onDisconnect: (event) => disconnects.push(event) });

  assert.deepEqual(await take(feed, 2), [1, 2]);
  assert.deepEqual(disconnects.map(({ codeName, serverResumeAfter }) => [codeName, serverResumeAfter]), [['RESOURCE_EXHAUSTED', 1n]]);
});

test('a duplicate replayed by the sidecar is dropped', async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.subscriptions = [subscription([[1, 2]]), subscription([[1, 2, 3]], null)];
  const feed = feedOn(t, sidecar.target);

  assert.deepEqual(await take(feed, 3), [1, 2, 3]);
  assert.equal(feed.duplicatesDropped, 2);
});

test('a gap throws FeedGapError after the recommendations before it', async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.subscriptions = [subscription([[1, 2], [5]], null)];
  const feed = feedOn(t, sidecar.target);
  const handled = [];

  await assert.rejects(async () => {
    for await (const recommendation of feed) {
      handled.push(Number(recommendation.sequence));
    }
  }, (error) => error instanceof FeedGapError
    && error.message === 'recommendation 5 arrived after 2: sequences 3 to 4 are missing; the feed stops rather than skip them');
  assert.deepEqual(handled, [1, 2]);
  assert.equal(feed.closed, true);
});

test('recommendations no longer kept throw RecommendationsLost with the oldest kept', async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.subscriptions = [subscription([], {
    code: grpc.status.OUT_OF_RANGE,
    details: 'after_sequence 3 is older than the log keeps',
    metadata: metadataOf({ 'riskbudget-oldest-sequence': '40' }),
  })];
  const feed = feedOn(t, sidecar.target, { afterSequence: 3 });

  await assert.rejects(take(feed, 1), (error) => error instanceof RecommendationsLost
    && error.afterSequence === 3n && error.oldestAvailable === 40n && error.resumeAfter === 39n);
});

test('without the metadata the oldest kept is read from the details', async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.subscriptions = [subscription([], { code: grpc.status.OUT_OF_RANGE, details: 'gone; the oldest available is 12' })];
  const feed = feedOn(t, sidecar.target, { afterSequence: '3' });

  await assert.rejects(take(feed, 1), (error) => error instanceof RecommendationsLost && error.oldestAvailable === 12n);
});

test('the feed learns the log id from the first message and sends it with every resubscription', LOG_TIMEOUT, async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.subscriptions = [subscription([[1, 2]], undefined, { logId: 'log-a' }), subscription([[3]], null, { logId: 'log-a' })];
  const feed = feedOn(t, sidecar.target);
  assert.equal(feed.logId, '');

  assert.deepEqual(await take(feed, 3), [1, 2, 3]);
  assert.equal(feed.logId, 'log-a');
  assert.deepEqual(askedAfter(sidecar), [0, 2]);
  assert.deepEqual(askedOfLog(sidecar), ['', 'log-a']);
});

test('a feed given a log id sends it from the first subscription and keeps it', LOG_TIMEOUT, async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.subscriptions = [subscription([[5]], undefined, { logId: 'log-a' }), subscription([[6]], null, { logId: 'log-a' })];
  const feed = feedOn(t, sidecar.target, { afterSequence: 4n, logId: 'log-a' });
  assert.equal(feed.logId, 'log-a');

  assert.deepEqual(await take(feed, 2), [5, 6]);
  assert.deepEqual(askedOfLog(sidecar), ['log-a', 'log-a']);
  assert.equal(feed.logId, 'log-a');
});

test('a message of another log than the checkpoint\'s throws RecommendationsLost and is never yielded', LOG_TIMEOUT, async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.subscriptions = [subscription([[5, 6]], null, { logId: 'log-b' })];
  const feed = feedOn(t, sidecar.target, { afterSequence: 4n, logId: 'log-a' });

  const [handled, error] = await untilItThrows(feed);

  assert.deepEqual(handled, []);
  assert.ok(error instanceof RecommendationsLost, error);
  assert.equal(error.afterSequence, 4n);
  assert.equal(error.oldestAvailable, null);
  assert.equal(error.details, 'the stream is of recommendation log "log-b", the feed\'s sequences count in "log-a"');
  assert.equal(feed.closed, true);
  assert.equal(feed.lastSequence, 4n);
});

test('a resubscription that reaches another log than the first message named throws RecommendationsLost', LOG_TIMEOUT, async (t) => {
  const sidecar = await fakeSidecar(t);
  // As a sidecar that ignored the request's log id would: the new log numbers from 1 again.
  sidecar.subscriptions = [subscription([[1, 2]], undefined, { logId: 'log-a' }), subscription([[3]], null, { logId: 'log-b' })];
  const feed = feedOn(t, sidecar.target);

  const [handled, error] = await untilItThrows(feed);

  assert.deepEqual(handled, [1, 2]);
  assert.ok(error instanceof RecommendationsLost && error.afterSequence === 2n, error);
  assert.deepEqual(askedOfLog(sidecar), ['', 'log-a']);
});

test('a message naming no log (a sidecar from before log ids) is not checked', LOG_TIMEOUT, async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.subscriptions = [subscription([[5]], null)];
  const feed = feedOn(t, sidecar.target, { afterSequence: 4n, logId: 'log-a' });

  assert.deepEqual(await take(feed, 1), [5]);
  assert.equal(feed.logId, 'log-a');
});

test('the sidecar refusing a sequence of another log (OUT_OF_RANGE) throws RecommendationsLost', LOG_TIMEOUT, async (t) => {
  const sidecar = await fakeSidecar(t);
  const details = "after_sequence 7 counts in recommendation log 'log-a', and this sidecar's log is 'log-b' "
    + '(a new or replaced state file, or the memory store restarted): the recommendations after it are not kept; '
    + 'oldest available is 1';
  sidecar.subscriptions = [subscription([], {
    code: grpc.status.OUT_OF_RANGE, details, metadata: metadataOf({ 'riskbudget-oldest-sequence': '1' }),
  })];
  const feed = feedOn(t, sidecar.target, { afterSequence: 7n, logId: 'log-a' });

  await assert.rejects(take(feed, 1), (error) => error instanceof RecommendationsLost
    && error.afterSequence === 7n && error.oldestAvailable === 1n && error.resumeAfter === 0n && error.details === details);
  assert.deepEqual(askedOfLog(sidecar), ['log-a']);
});

test('a feed after a sequence with no log id sends the log id GetStatus names from its first subscription', LOG_TIMEOUT, async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.statusReply = { recommendationLogId: 'log-a', lastRecommendationSequence: '4' };
  sidecar.subscriptions = [subscription([[5]], undefined, { logId: 'log-a' }), subscription([[6]], null, { logId: 'log-a' })];
  const feed = feedOn(t, sidecar.target, { afterSequence: 4n });
  assert.equal(feed.logId, '');

  assert.deepEqual(await take(feed, 2), [5, 6]);
  assert.deepEqual(askedOfLog(sidecar), ['log-a', 'log-a']);
  assert.equal(sidecar.received.GetStatus.length, 1); // before the first subscription only
  assert.equal(feed.logId, 'log-a');
});

test('a sidecar restarted on a new log between GetStatus and the first recommendation throws RecommendationsLost', LOG_TIMEOUT, async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.statusReply = { recommendationLogId: 'log-a' };
  // As a sidecar that ignored the request's log id would: the new log is already past 4.
  sidecar.subscriptions = [subscription([[5, 6]], null, { logId: 'log-b' })];
  const feed = feedOn(t, sidecar.target, { afterSequence: 4n });

  const [handled, error] = await untilItThrows(feed);

  assert.deepEqual(handled, []);
  assert.ok(error instanceof RecommendationsLost && error.afterSequence === 4n, error);
  assert.deepEqual(askedOfLog(sidecar), ['log-a']);
});

test('a feed from the start or given a log id does not ask GetStatus', LOG_TIMEOUT, async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.statusReply = { recommendationLogId: 'log-status' };
  sidecar.subscriptions = [subscription([[1]], null, { logId: 'log-a' }), subscription([[5]], null, { logId: 'log-a' })];
  const fromStart = feedOn(t, sidecar.target, { afterSequence: 0n });
  assert.deepEqual(await take(fromStart, 1), [1]);
  const given = feedOn(t, sidecar.target, { afterSequence: 4n, logId: 'log-a' });
  assert.deepEqual(await take(given, 1), [5]);

  assert.equal(sidecar.received.GetStatus.length, 0);
  assert.deepEqual(askedOfLog(sidecar), ['', 'log-a']);
  assert.equal(fromStart.logId, 'log-a');
});

test('a feed asks GetStatus again while the sidecar is away, and never subscribes unchecked meanwhile', LOG_TIMEOUT, async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.statusFailure = { code: grpc.status.UNAVAILABLE, details: 'not yet' };
  sidecar.statusReply = { recommendationLogId: 'log-a' };
  sidecar.subscriptions = [subscription([[5]], null, { logId: 'log-a' })];
  const feed = feedOn(t, sidecar.target, {
    afterSequence: 4n,
    onDisconnect: () => { sidecar.statusFailure = null; }, // back after the first wait
  });

  assert.deepEqual(await take(feed, 1), [5]);
  assert.equal(sidecar.received.GetStatus.length, 2);
  assert.deepEqual(askedOfLog(sidecar), ['log-a']);
});

test('a feed whose GetStatus will not tell or names no log subscribes unchecked and learns the log from the first message', LOG_TIMEOUT, async (t) => {
  for (const [failure, reply] of [
    [{ code: grpc.status.UNIMPLEMENTED, details: 'no GetStatus' }, {}],
    [{ code: grpc.status.PERMISSION_DENIED, details: 'not for this token' }, {}],
    [null, {}], // a sidecar from before log ids
  ]) {
    const sidecar = await fakeSidecar(t);
    sidecar.statusFailure = failure;
    sidecar.statusReply = reply;
    sidecar.subscriptions = [subscription([[5]], undefined, { logId: 'log-a' }), subscription([[6]], null, { logId: 'log-a' })];
    const feed = feedOn(t, sidecar.target, { afterSequence: 4n });

    assert.deepEqual(await take(feed, 2), [5, 6], failure?.details);
    assert.equal(sidecar.received.GetStatus.length, 1);
    assert.deepEqual(askedOfLog(sidecar), ['', 'log-a']);
    assert.equal(feed.logId, 'log-a');
  }
});

test('close() cuts a GetStatus wait short', LOG_TIMEOUT, async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.statusHang = true;
  const feed = feedOn(t, sidecar.target, { afterSequence: 4n });
  const iteration = take(feed, 1);

  await new Promise((resolve) => { setTimeout(resolve, 50); });
  const closing = performance.now();
  feed.close();

  assert.deepEqual(await iteration, []);
  assert.ok(performance.now() - closing < 1_000, 'the feed waited for GetStatus to time out');
  assert.equal(sidecar.received.GetStatus.length, 1);
  assert.equal(sidecar.received.StreamRecommendations.length, 0);
});

test('a failure that reconnecting cannot fix throws RiskBudgetError', async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.subscriptions = [subscription([], { code: grpc.status.UNAUTHENTICATED, details: 'missing client token' })];
  const feed = feedOn(t, sidecar.target);

  await assert.rejects(take(feed, 1), (error) => error instanceof RiskBudgetError
    && error.code === grpc.status.UNAUTHENTICATED && error.details === 'missing client token');
  assert.equal(sidecar.received.StreamRecommendations.length, 1);
});

test('the backoff grows to its maximum, resets after a new recommendation, and the feed gives up after maxReconnects', async (t) => {
  const sidecar = await fakeSidecar(t);
  const broken = () => subscription([]);
  sidecar.subscriptions = [broken(), broken(), broken(), subscription([[1]]), broken(), broken(), broken()];
  const delays = [];
  const feed = feedOn(t, sidecar.target, {
    initialBackoff: 0.001, backoffMultiplier: 2, maxBackoff: 0.003, maxReconnects: 3, onDisconnect: ({ delay }) => delays.push(delay),
  });

  await assert.rejects(take(feed, 2), (error) => error instanceof FeedDisconnected
    && error.reconnects === 3 && error.lastSequence === 1n && error.code === grpc.status.UNAVAILABLE);
  assert.deepEqual(delays, [0.001, 0.002, 0.003, 0.001, 0.002, 0.003]);
});

test('jitter shortens each wait by at most its fraction', async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.subscriptions = Array.from({ length: 20 }, () => subscription([]));
  const delays = [];
  const feed = feedOn(t, sidecar.target, {
    initialBackoff: 0.002, backoffMultiplier: 1, maxBackoff: 0.002, jitter: 0.5, maxReconnects: 19, onDisconnect: ({ delay }) => delays.push(delay),
  });

  await assert.rejects(take(feed, 1), FeedDisconnected);
  assert.ok(delays.every((delay) => delay > 0.001 && delay <= 0.002), delays.join());
});

test('close() ends a feed waiting for live recommendations', async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.subscriptions = [subscription([[1]], null)];
  const feed = feedOn(t, sidecar.target);
  const handled = [];

  for await (const recommendation of feed) {
    handled.push(Number(recommendation.sequence));
    setTimeout(() => feed.close(), 20);
  }

  assert.deepEqual(handled, [1]);
  assert.equal(feed.closed, true);
});

test('close() cuts a backoff wait short', async (t) => {
  const feed = feedOn(t, 'unix:/nonexistent/riskbudget.sock', { initialBackoff: 600, maxBackoff: 600 });
  const iteration = take(feed, 1);

  await new Promise((resolve) => { setTimeout(resolve, 50); });
  feed.close();

  assert.deepEqual(await iteration, []);
});

test('bad settings are refused', () => {
  const client = new RiskBudgetClient('127.0.0.1:1');
  try {
    for (const [options, message] of [
      [{ afterSequence: -1 }, /afterSequence must be a sequence number/],
      [{ afterSequence: 1.5 }, /afterSequence must be a sequence number/],
      [{ afterSequence: 2n ** 64n }, /afterSequence must be a sequence number/],
      [{ initialBackoff: 0 }, /initialBackoff must be a positive number of seconds/],
      [{ backoffMultiplier: 0.5 }, /backoffMultiplier must be 1 or more/],
      [{ maxBackoff: -1 }, /maxBackoff must be a positive number of seconds/],
      [{ jitter: 1 }, /jitter must be a fraction/],
      [{ maxReconnects: -1 }, /maxReconnects must be null or a whole number/],
    ]) {
      assert.throws(() => new RecommendationFeed(client, options), message);
    }
  } finally {
    client.close();
  }
});

test('a logId that is neither null nor a string is a TypeError naming it', () => {
  const client = new RiskBudgetClient('127.0.0.1:1');
  try {
    for (const [logId, kind] of [[42, 'number'], [{}, '[object Object]'], [true, 'boolean'], [7n, 'bigint']]) {
      const refusal = { name: 'TypeError', message: `logId must be a string, got ${kind}` };
      assert.throws(() => new RecommendationFeed(client, { logId }), refusal);
      assert.throws(() => client.streamRecommendations(0, logId), refusal);
    }
    for (const logId of [null, undefined, '', 'a1b2']) {
      const feed = new RecommendationFeed(client, { logId });
      assert.equal(feed.logId, logId ?? '');
      feed.close();
    }
  } finally {
    client.close();
  }
});

test('an onDisconnect that is neither null nor a function is a TypeError naming it', () => {
  const client = new RiskBudgetClient('127.0.0.1:1');
  try {
    for (const [onDisconnect, kind] of [['log', 'string'], [{}, '[object Object]'], [true, 'boolean']]) {
      assert.throws(() => new RecommendationFeed(client, { onDisconnect }), {
        name: 'TypeError',
        message: `onDisconnect must be a function, got ${kind}`,
      });
    }
    assert.doesNotThrow(() => new RecommendationFeed(client, { onDisconnect: null }).close());
  } finally {
    client.close();
  }
});
