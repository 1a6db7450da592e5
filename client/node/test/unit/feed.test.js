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
  PreTradeGate,
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

// -- RecommendationsLost's message names the true cause (the sidecar's OUT_OF_RANGE details) ---------------

/** The RecommendationsLost a feed after `afterSequence` (of `logId`) throws on an OUT_OF_RANGE with `details`. */
async function lostOn(t, details, oldest, options) {
  const sidecar = await fakeSidecar(t);
  const metadata = oldest === null ? undefined : metadataOf({ 'riskbudget-oldest-sequence': String(oldest) });
  sidecar.subscriptions = [subscription([], { code: grpc.status.OUT_OF_RANGE, details, metadata })];
  const [, error] = await untilItThrows(feedOn(t, sidecar.target, options));
  assert.ok(error instanceof RecommendationsLost, error);
  return error;
}

test('RecommendationsLost of a checkpoint of another log says so first, not that recommendations are no longer kept', LOG_TIMEOUT, async (t) => {
  const details = "after_sequence 40 counts in recommendation log 'deadbeef', and this sidecar's log is '8749c0' "
    + '(a new or replaced state file, or the memory store restarted): the recommendations after it are not kept; '
    + 'oldest available is 34';
  const error = await lostOn(t, details, 34, { afterSequence: 40n, logId: 'deadbeef' });

  assert.equal(error.message, 'sequence 40 counts in another recommendation log than the sidecar\'s (a new or replaced '
    + `state file, or the memory store restarted); resync your state and subscribe again: ${details}`);
  assert.deepEqual([error.afterSequence, error.oldestAvailable, error.resumeAfter, error.details], [40n, 34n, 33n, details]);
});

test('RecommendationsLost of a checkpoint ahead of the newest recommendation says so first', LOG_TIMEOUT, async (t) => {
  const details = 'after_sequence 64 is ahead of the newest recommendation 63: it comes from another sidecar or a lost log; '
    + 'oldest available is 34';
  const error = await lostOn(t, details, 34, { afterSequence: 64n, logId: 'log-a' });

  assert.ok(error.message.startsWith('sequence 64 is ahead of the sidecar\'s newest recommendation, 63 (a checkpoint of '
    + 'another sidecar or of a lost log); resync your state and subscribe again: after_sequence 64 is ahead'), error.message);
  assert.deepEqual([error.afterSequence, error.oldestAvailable, error.details], [64n, 34n, details]);
});

test('RecommendationsLost ahead of an empty log names no oldest recommendation', LOG_TIMEOUT, async (t) => {
  const details = 'after_sequence 68 is ahead of the newest recommendation 0: it comes from another sidecar or a lost log; '
    + 'oldest available is 0';
  const error = await lostOn(t, details, 0, { afterSequence: 68n, logId: 'log-a' });

  assert.ok(error.message.startsWith('sequence 68 is ahead of the sidecar\'s log, which holds no recommendation'), error.message);
  assert.equal(error.oldestAvailable, 0n);
});

test('RecommendationsLost of a trimmed log still says the recommendations are no longer kept', LOG_TIMEOUT, async (t) => {
  const details = 'recommendations up to 55 are no longer kept; oldest available is 56';
  const error = await lostOn(t, details, 56, { afterSequence: 10n, logId: 'log-a' });

  assert.equal(error.message, 'recommendations after 10 are no longer kept (oldest available: 56); resync your state '
    + `and subscribe again: ${details}`);
});

test('RecommendationsLost of an unexplained OUT_OF_RANGE claims no cause the numbers contradict', LOG_TIMEOUT, async (t) => {
  const error = await lostOn(t, 'out of range; oldest available is 34', 34, { afterSequence: 40n, logId: 'log-a' });

  assert.ok(error.message.startsWith('the sidecar refused to resume after 40 as out of range (oldest available: 34); '),
    error.message);
});

test('RecommendationsLost of a stream naming another log says so first', LOG_TIMEOUT, async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.subscriptions = [subscription([[5, 6]], null, { logId: 'log-b' })];
  const [, error] = await untilItThrows(feedOn(t, sidecar.target, { afterSequence: 4n, logId: 'log-a' }));

  assert.ok(error instanceof RecommendationsLost, error);
  assert.ok(error.message.startsWith('sequence 4 counts in another recommendation log than the sidecar\'s'), error.message);
});

// -- the feed's and the gate's client argument ---------------------------------------------------------------

test('a feed or a gate given something other than a client is a TypeError naming the argument, at construction', () => {
  for (const [client, kind] of [[undefined, 'undefined'], [null, '[object Null]'], [{}, '[object Object]'], [42, 'number']]) {
    assert.throws(() => new RecommendationFeed(client, { afterSequence: 0 }), {
      name: 'TypeError',
      message: "client must be a RiskBudgetClient (or the sidecar's target, such as '127.0.0.1:50051', for a plaintext "
        + `client of the feed's own), got ${kind}`,
    }, String(kind));
  }
  for (const [client, kind] of [[undefined, 'undefined'], [null, '[object Null]'], [{}, '[object Object]'], ['127.0.0.1:1', 'string']]) {
    assert.throws(() => new PreTradeGate(client), { name: 'TypeError', message: `client must be a RiskBudgetClient, got ${kind}` });
  }
});

test('a feed given the sidecar\'s target, as in Python, reads through a client of its own', LOG_TIMEOUT, async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.subscriptions = [subscription([[5, 6]], null, { logId: 'log-a' })];
  const feed = new RecommendationFeed(sidecar.target, { ...QUICK, afterSequence: 4n, logId: 'log-a' });
  t.after(() => feed.close());

  assert.deepEqual(await take(feed, 2), [5, 6]);
  assert.equal(feed.closed, true);
  feed.close(); // twice: the client is closed once
});

// -- option checks as in Python --------------------------------------------------------------------------------

test('a maxBackoff below initialBackoff is a RangeError, as in Python', () => {
  const client = new RiskBudgetClient('127.0.0.1:1');
  try {
    assert.throws(() => new RecommendationFeed(client, { initialBackoff: 2, maxBackoff: 1 }), {
      name: 'RangeError', message: 'maxBackoff must be seconds, at least initialBackoff (2), got 1',
    });
    assert.throws(() => new RecommendationFeed(client, { initialBackoff: 10 }), {
      name: 'RangeError', message: 'maxBackoff must be seconds, at least initialBackoff (10), got 5',
    });
    new RecommendationFeed(client, { initialBackoff: 2, maxBackoff: 2 }).close();
  } finally {
    client.close();
  }
});

test('a numeric feed option that is not a number is a TypeError naming it, not a RangeError showing its value', () => {
  const client = new RiskBudgetClient('127.0.0.1:1');
  try {
    for (const name of ['initialBackoff', 'maxBackoff', 'backoffMultiplier', 'jitter', 'maxReconnects']) {
      assert.throws(() => new RecommendationFeed(client, { [name]: '1' }), {
        name: 'TypeError', message: `${name} must be a number, got string`,
      }, name);
    }
  } finally {
    client.close();
  }
});

// -- fromLatest, as Python's from_latest ------------------------------------------------------------------------

test('streamRecommendations takes fromLatest, a boolean, as Python\'s stream_recommendations takes from_latest', async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.subscriptions = [subscription([], null), subscription([], null), subscription([], null)];
  const client = new RiskBudgetClient(sidecar.target);
  t.after(() => client.close());

  for (const [fromLatest, kind] of [['yes', 'string'], [1, 'number'], [null, '[object Null]']]) {
    assert.throws(() => client.streamRecommendations(0, '', { fromLatest }), {
      name: 'TypeError', message: `fromLatest must be a boolean, got ${kind}`,
    });
  }
  assert.throws(() => client.streamRecommendations(0, '', true), { name: 'TypeError', message: /streamRecommendations options must be an object \{ fromLatest \}/ });
  assert.throws(() => client.streamRecommendations(0, '', { from_latest: true }), { name: 'TypeError', message: /'from_latest' \(did you mean 'fromLatest'\?\)/ });

  // As in Python, afterSequence is not refused beside it: the sidecar ignores it.
  const calls = [client.streamRecommendations(0, '', { fromLatest: true }), client.streamRecommendations(9, 'log-a', { fromLatest: true }),
    client.streamRecommendations(3)];
  calls.forEach((call) => call.on('error', () => {})); // cancelled below
  while (sidecar.received.StreamRecommendations.length < 3) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  calls.forEach((call) => call.cancel());
  assert.deepEqual(sidecar.received.StreamRecommendations.map(({ request }) => [request.fromLatest, Number(request.afterSequence)]),
    [[true, 0], [true, 9], [false, 3]]);
});

test('a feed fromLatest starts after the newest recommendation GetStatus names and resumes there, with no gap', LOG_TIMEOUT, async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.statusReply = { recommendationLogId: 'log-a', lastRecommendationSequence: '7' };
  sidecar.subscriptions = [subscription([]), subscription([[8, 9]], null, { logId: 'log-a' })];
  const feed = feedOn(t, sidecar.target, { fromLatest: true });

  assert.deepEqual(await take(feed, 2), [8, 9]);
  assert.deepEqual(askedAfter(sidecar), [7, 7]);
  assert.deepEqual(askedOfLog(sidecar), ['log-a', 'log-a']);
  assert.equal(sidecar.received.GetStatus.length, 1);
});

test('a feed fromLatest whose GetStatus fails for good throws rather than start from the beginning', LOG_TIMEOUT, async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.statusFailure = { code: grpc.status.PERMISSION_DENIED, details: 'no' };
  const [, error] = await untilItThrows(feedOn(t, sidecar.target, { fromLatest: true }));

  assert.ok(error instanceof RiskBudgetError && error.codeName === 'PERMISSION_DENIED', error);
  assert.equal(sidecar.received.StreamRecommendations.length, 0);
});

test('a feed fromLatest is a boolean and takes no checkpoint beside it', () => {
  const client = new RiskBudgetClient('127.0.0.1:1');
  try {
    assert.throws(() => new RecommendationFeed(client, { fromLatest: 'true' }), { name: 'TypeError', message: 'fromLatest must be a boolean, got string' });
    for (const options of [{ afterSequence: 3 }, { logId: 'log-a' }]) {
      assert.throws(() => new RecommendationFeed(client, { fromLatest: true, ...options }), {
        name: 'TypeError', message: /^fromLatest starts after the sidecar's newest recommendation: it takes no afterSequence or logId/,
      });
    }
    new RecommendationFeed(client, { fromLatest: false, afterSequence: 3 }).close();
  } finally {
    client.close();
  }
});
