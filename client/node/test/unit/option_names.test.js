'use strict';
// Options and request objects with a key the client does not know (a typo, or the proto's
// snake_case spelling, as in `buf curl` examples) are refused, naming the key and the option it
// misspells, before anything is sent: otherwise `dry_run: true` went out as a real, reserved order
// and `limit_price: 50` as an unlimited one. And seconds options are bounded (at most a day):
// gRPC throws, uncaught, on a deadline too far ahead. Against a scripted sidecar (fake_sidecar.js).

const assert = require('node:assert/strict');
const { test } = require('node:test');
const grpc = require('@grpc/grpc-js');
const { PreTradeGate, RecommendationFeed, RiskBudgetClient } = require('../../src');
const { ORDER, TICK, connect, fakeSidecar, subscription } = require('./fake_sidecar');

const ORDER_OPTIONS = "its options are 'clientOrderId', 'strategy', 'symbol', 'side', 'quantity', 'limitPrice', 'dryRun'";
const CLIENT_OPTIONS = "its options are 'clientToken', 'checkTradeTimeout', 'timeout', 'clock', 'tls'";
const FEED_OPTIONS = "its options are 'afterSequence', 'logId', 'fromLatest', 'initialBackoff', 'backoffMultiplier', "
  + "'maxBackoff', 'jitter', 'maxReconnects', 'onDisconnect'";

test('an order with a key checkTrade does not know is a TypeError naming it (and the option it misspells) before anything is sent', async (t) => {
  const sidecar = await fakeSidecar(t);
  const client = connect(t, sidecar.target);
  const gate = new PreTradeGate(client);

  for (const [extra, named] of [
    [{ dry_run: true }, "'dry_run' (did you mean 'dryRun'?)"],
    [{ limit_price: 50 }, "'limit_price' (did you mean 'limitPrice'?)"],
    [{ dryrun: true }, "'dryrun' (did you mean 'dryRun'?)"],
    [{ client_order_id: 'o-2' }, "'client_order_id' (did you mean 'clientOrderId'?)"],
    [{ reduceOnly: true }, "'reduceOnly'"],
    [{ dry_run: undefined, price: 50 }, "'dry_run' (did you mean 'dryRun'?), 'price'"],
  ]) {
    const refusal = { name: 'TypeError', message: `order has no option ${named}: ${ORDER_OPTIONS}` };
    await assert.rejects(client.checkTrade({ ...ORDER, ...extra }), refusal, JSON.stringify(extra));
    await assert.rejects(gate.check({ ...ORDER, ...extra }), refusal, JSON.stringify(extra));
  }
  assert.equal(sidecar.received.CheckTrade.length, 0);

  await client.checkTrade({ ...ORDER, limitPrice: 50, dryRun: true });
  assert.deepEqual(sidecar.received.CheckTrade.map(({ request }) => [request.limitPrice, request.dryRun]), [[50, true]]);
});

test('an order that is not an object is a TypeError before anything is sent', async (t) => {
  const sidecar = await fakeSidecar(t);
  const client = connect(t, sidecar.target);

  for (const [order, kind] of [[null, 'null'], [undefined, 'undefined'], ['o-1', 'string'], [[ORDER], 'an array']]) {
    await assert.rejects(client.checkTrade(order), {
      name: 'TypeError',
      message: `order must be an object { clientOrderId, strategy, symbol, side, quantity, limitPrice, dryRun }, got ${kind}`,
    }, String(order));
  }
  assert.equal(sidecar.received.CheckTrade.length, 0);
});

test('a tick with another key than symbol, price and time, or not an object, is a TypeError before anything is sent', async (t) => {
  const sidecar = await fakeSidecar(t);
  const client = connect(t, sidecar.target);

  for (const [ticks, message] of [
    [[TICK, { ...TICK, volume: 10 }], "tick has no option 'volume': its options are 'symbol', 'price', 'time'"],
    [[{ symbol: 'AAPL', price: 1, timestamp: new Date(), Time: new Date() }],
      "tick has no option 'timestamp', 'Time' (did you mean 'time'?): its options are 'symbol', 'price', 'time'"],
    [[TICK, null], 'tick must be an object { symbol, price, time }, got null'],
    [[['AAPL', 101.5, new Date()]], 'tick must be an object { symbol, price, time }, got an array'],
  ]) {
    assert.throws(() => client.publishMarketData(ticks), { name: 'TypeError', message });
  }
  assert.equal(sidecar.received.PublishMarketData.length, 0);
});

test('a RiskBudgetClient option the client does not have is a TypeError naming it, before any channel is made', () => {
  for (const [options, named] of [
    [{ checkTradeTimout: 0.001 }, "'checkTradeTimout'"],
    [{ client_token: 'abc' }, "'client_token' (did you mean 'clientToken'?)"],
    [{ clienttoken: 'abc', check_trade_timeout: 1 },
      "'clienttoken' (did you mean 'clientToken'?), 'check_trade_timeout' (did you mean 'checkTradeTimeout'?)"],
  ]) {
    assert.throws(() => new RiskBudgetClient('127.0.0.1:1', options), {
      name: 'TypeError',
      message: `RiskBudgetClient has no option ${named}: ${CLIENT_OPTIONS}`,
    }, JSON.stringify(options));
  }
  for (const [options, kind] of [[null, 'null'], [5, 'number'], ['127.0.0.1:2', 'string']]) {
    assert.throws(() => new RiskBudgetClient('127.0.0.1:1', options), {
      name: 'TypeError',
      message: `RiskBudgetClient options must be an object { clientToken, checkTradeTimeout, timeout, clock, tls }, got ${kind}`,
    }, String(options));
  }
  new RiskBudgetClient('127.0.0.1:1').close();
  new RiskBudgetClient('127.0.0.1:1', undefined).close();
});

test('a RecommendationFeed option the feed does not have is a TypeError naming it, so a checkpoint is never dropped', async (t) => {
  const sidecar = await fakeSidecar(t);
  const client = connect(t, sidecar.target);

  for (const [options, named] of [
    [{ after_sequence: 13, log_id: 'a1b2' },
      "'after_sequence' (did you mean 'afterSequence'?), 'log_id' (did you mean 'logId'?)"],
    [{ aftersequence: 13 }, "'aftersequence' (did you mean 'afterSequence'?)"],
    [{ afterSequence: 13, max_reconnects: 2, backoff: 1 }, "'max_reconnects' (did you mean 'maxReconnects'?), 'backoff'"],
  ]) {
    assert.throws(() => new RecommendationFeed(client, options), {
      name: 'TypeError',
      message: `RecommendationFeed has no option ${named}: ${FEED_OPTIONS}`,
    }, JSON.stringify(options));
  }
  assert.throws(() => new RecommendationFeed(client, 13), {
    name: 'TypeError',
    message: 'RecommendationFeed options must be an object { afterSequence, logId, fromLatest, initialBackoff, backoffMultiplier, '
      + 'maxBackoff, jitter, maxReconnects, onDisconnect }, got number',
  });
  assert.equal(sidecar.received.StreamRecommendations.length, 0);
});

test('a timeout of more than a day is a RangeError naming it when the client is built', () => {
  for (const value of [86_400.001, 1e6, 1e12, 1e300, Number.MAX_VALUE]) {
    for (const name of ['checkTradeTimeout', 'timeout']) {
      assert.throws(() => new RiskBudgetClient('127.0.0.1:1', { [name]: value }).close(), {
        name: 'RangeError',
        message: `${name} must be a positive number of seconds, at most 86400 (one day), got ${String(value)}`,
      }, `${name}: ${value}`);
    }
  }
});

test('the longest timeouts, a day, work: the calls go out and are answered', async (t) => {
  const sidecar = await fakeSidecar(t);
  const client = connect(t, sidecar.target, { checkTradeTimeout: 86_400, timeout: 86_400 });

  await client.waitForReady(86_400);
  const response = await client.checkTrade(ORDER);
  await client.getBudget('momentum');

  assert.equal(response.decision, 'DECISION_APPROVED');
  assert.equal(sidecar.received.GetBudget.length, 1);
});

test('waitForReady for more than a day is a RangeError before waiting', async (t) => {
  const sidecar = await fakeSidecar(t);
  const client = connect(t, sidecar.target);

  // 1e12 first: unbounded, it overflows grpc-js's timer, which fails the wait at once (and leaves no timer behind).
  for (const seconds of [1e12, 86_401, Infinity, 0]) {
    assert.throws(() => client.waitForReady(seconds), {
      name: 'RangeError',
      message: `seconds must be a positive number of seconds, at most 86400 (one day), got ${String(seconds)}`,
    });
  }
});

test('a feed backoff of more than a day is a RangeError naming it', () => {
  const client = new RiskBudgetClient('127.0.0.1:1');
  try {
    for (const name of ['initialBackoff', 'maxBackoff']) {
      for (const value of [86_401, 1e7, 1e12]) {
        assert.throws(() => new RecommendationFeed(client, { [name]: value }).close(), {
          name: 'RangeError',
          message: `${name} must be a positive number of seconds, at most 86400 (one day), got ${String(value)}`,
        }, `${name}: ${value}`);
      }
    }
    new RecommendationFeed(client, { initialBackoff: 86_400, maxBackoff: 86_400 }).close();
  } finally {
    client.close();
  }
});
