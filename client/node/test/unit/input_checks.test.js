'use strict';
// What the client refuses before it sends anything: a client token that is no valid header
// value (without echoing it), and arguments of the wrong type, which gRPC would otherwise convert
// (42 sent as "42", true as 1, '0x10' as 16). Against a scripted sidecar (fake_sidecar.js).

const assert = require('node:assert/strict');
const { test } = require('node:test');
const grpc = require('@grpc/grpc-js');
const { RiskBudgetClient } = require('../../src');
const { ORDER, TICK, connect, fakeSidecar, subscription } = require('./fake_sidecar');

const TOKEN_MESSAGE = 'clientToken must be printable ASCII without spaces or line breaks, not empty '
  + '(strip the newline a file or a variable may end with)';

test('a client token with a line break, a space or a character not ASCII, or empty, is a RangeError naming it but not its value', () => {
  for (const clientToken of ['s3cr3t-token\n', 's3cr3t-token\r\n', 's3cr3t-tökén', 's3cr3t token', 's3cr3t\ttoken', '']) {
    assert.throws(() => new RiskBudgetClient('127.0.0.1:1', { clientToken }), (error) => {
      assert.equal(error.name, 'RangeError');
      assert.equal(error.message, TOKEN_MESSAGE);
      assert.ok(!error.message.includes('s3cr3t'));
      return true;
    }, JSON.stringify(clientToken));
  }
});

test('a client token that is not a string is a TypeError naming it', () => {
  for (const [clientToken, kind] of [[42, 'number'], [true, 'boolean'], [Buffer.from('token'), '[object Uint8Array]']]) {
    assert.throws(() => new RiskBudgetClient('127.0.0.1:1', { clientToken }), {
      name: 'TypeError',
      message: `clientToken must be a string, got ${kind}`,
    });
  }
});

test('a null client token, like none, sends no authorization', async (t) => {
  const sidecar = await fakeSidecar(t);

  await connect(t, sidecar.target, { clientToken: null }).checkTrade(ORDER);

  assert.equal(sidecar.received.CheckTrade[0].metadata.authorization, undefined);
});

test('a clock that is not a function is a TypeError naming it', () => {
  assert.throws(() => new RiskBudgetClient('127.0.0.1:1', { clock: 1000 }), {
    name: 'TypeError',
    message: 'clock must be a function, got number',
  });
});

for (const [field, type, values] of [
  ['quantity', 'number', [[true, 'boolean'], [[7], '[object Array]'], ['0x10', 'string'], [null, '[object Null]'], [100n, 'bigint']]],
  ['limitPrice', 'number', [['101.5', 'string'], [null, '[object Null]'], [true, 'boolean']]],
  ['dryRun', 'boolean', [['false', 'string'], [1, 'number'], [null, '[object Null]']]],
  ['clientOrderId', 'string', [[42, 'number'], [undefined, 'undefined'], [null, '[object Null]']]],
  ['strategy', 'string', [[42, 'number'], [undefined, 'undefined']]],
  ['symbol', 'string', [[['AAPL'], '[object Array]'], [undefined, 'undefined']]],
]) {
  test(`a ${field} that is not a ${type} is a TypeError before anything is sent`, async (t) => {
    const sidecar = await fakeSidecar(t);
    const client = connect(t, sidecar.target);

    for (const [value, kind] of values) {
      await assert.rejects(client.checkTrade({ ...ORDER, [field]: value }), {
        name: 'TypeError',
        message: `${field} must be a ${type}, got ${kind}`,
      }, String(value));
    }
    assert.equal(sidecar.received.CheckTrade.length, 0);
  });
}

test('NaN and infinite quantities are numbers: sent, and the sidecar refuses them as invalid requests', async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.failure = { code: grpc.status.INVALID_ARGUMENT, details: 'quantity: must be finite' };
  const client = connect(t, sidecar.target);

  for (const quantity of [NaN, Infinity, -Infinity]) {
    const response = await client.checkTrade({ ...ORDER, quantity });
    assert.equal(response.decision, 'DECISION_REJECTED');
    assert.deepEqual(response.reasons.map((reason) => reason.code), ['REASON_CODE_INVALID_REQUEST']);
  }
  assert.deepEqual(sidecar.received.CheckTrade.map(({ request }) => request.quantity), [NaN, Infinity, -Infinity]);
});

test('getBudget with a strategy that is not a string is a TypeError before anything is sent', async (t) => {
  const sidecar = await fakeSidecar(t);
  const client = connect(t, sidecar.target);

  assert.throws(() => client.getBudget(42), { name: 'TypeError', message: 'strategy must be a string, got number' });
  await client.getBudget('momentum');
  assert.deepEqual(sidecar.received.GetBudget.map(({ request }) => request.strategy), ['momentum']);
});

test('publishMarketData with ticks not an array, or a tick symbol or price not of its type, is a TypeError before anything is sent', async (t) => {
  const sidecar = await fakeSidecar(t);
  const client = connect(t, sidecar.target);

  for (const [ticks, message] of [
    [TICK, 'ticks must be an array of { symbol, price, time }, got [object Object]'],
    [[TICK, { ...TICK, symbol: 42 }], 'tick symbol must be a string, got number'],
    [[TICK, { ...TICK, price: '101.5' }], 'tick price must be a number, got string'],
  ]) {
    assert.throws(() => client.publishMarketData(ticks), { name: 'TypeError', message });
  }
  await client.publishMarketData([TICK]);
  assert.deepEqual(sidecar.received.PublishMarketData.map(({ request }) => request.ticks.map((tick) => tick.symbol)), [['AAPL']]);
});

test('streamRecommendations after something that is not a sequence number is a RangeError before subscribing', async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.subscriptions = [subscription([], { code: grpc.status.OK, details: '' })];
  const client = connect(t, sidecar.target);

  for (const afterSequence of ['abc', '-1', -1n, 1.5, undefined]) {
    assert.throws(() => client.streamRecommendations(afterSequence), {
      name: 'RangeError',
      message: `afterSequence must be a sequence number, 0 or more, got ${String(afterSequence)}`,
    });
  }
  const call = client.streamRecommendations(7n);
  for await (const batch of call) {
    assert.fail(`no batch was scripted, got ${JSON.stringify(batch)}`);
  }
  assert.deepEqual(sidecar.received.StreamRecommendations.map(({ request }) => request.afterSequence), ['7']);
});
