'use strict';
// CheckTrade fails closed: no answer, a failed call or a malformed reply is a rejection made by
// the client, and the gate allows nothing on it. Against a scripted sidecar (fake_sidecar.js).

const assert = require('node:assert/strict');
const { test } = require('node:test');
const grpc = require('@grpc/grpc-js');
const { PreTradeGate, RiskBudgetClient, gateResult } = require('../../src');
const { fakeSidecar } = require('./fake_sidecar');

const ORDER = { clientOrderId: 'o-1', strategy: 'momentum', symbol: 'AAPL', side: 'buy', quantity: 100 };

function connect(t, target, options = {}) {
  const client = new RiskBudgetClient(target, { checkTradeTimeout: 2, ...options });
  t.after(() => client.close());
  return client;
}

function orderReply(decision, approvedQuantity, clientOrderId = 'o-1') {
  return () => ({ clientOrderId, decision, requestedQuantity: 100, approvedQuantity });
}

function assertRejectedByTheClient(response, messageStart, code = 'REASON_CODE_SIDECAR_UNAVAILABLE') {
  assert.equal(response.decision, 'DECISION_REJECTED');
  assert.equal(response.approvedQuantity, 0);
  assert.deepEqual(response.reasons.map((reason) => reason.code), [code]);
  assert.ok(response.reasons[0].message.startsWith(messageStart), response.reasons[0].message);
  assert.equal(response.clientOrderId, 'o-1');
  assert.equal(response.requestedQuantity, 100);
}

test('an approval passes through and the gate allows the whole quantity', async (t) => {
  const sidecar = await fakeSidecar(t);
  const gate = new PreTradeGate(connect(t, sidecar.target));

  const result = await gate.check(ORDER);

  assert.deepEqual([result.allowed, result.quantity, result.decision, result.reasons], [true, 100, 'DECISION_APPROVED', []]);
  assert.equal(result.response.approvedQuantity, 100);
});

test('a resize allows the smaller quantity and says why', async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.checkTradeReply = () => ({
    clientOrderId: 'o-1',
    decision: 'DECISION_RESIZED',
    requestedQuantity: 100,
    approvedQuantity: 40,
    reasons: [{ code: 'REASON_CODE_SYMBOL_POSITION_LIMIT', message: 'AAPL limit is 50,000' }],
  });
  const gate = new PreTradeGate(connect(t, sidecar.target));

  const result = await gate.check(ORDER);

  assert.deepEqual([result.allowed, result.quantity], [true, 40]);
  assert.deepEqual(result.reasons, [{ code: 'REASON_CODE_SYMBOL_POSITION_LIMIT', message: 'AAPL limit is 50,000' }]);
});

test("the sidecar's rejection passes through and the gate allows nothing", async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.checkTradeReply = () => ({
    clientOrderId: 'o-1',
    decision: 'DECISION_REJECTED',
    requestedQuantity: 100,
    reasons: [{ code: 'REASON_CODE_TRADING_HALTED', message: 'trading is halted' }],
  });
  const gate = new PreTradeGate(connect(t, sidecar.target));

  const result = await gate.check(ORDER);

  assert.deepEqual([result.allowed, result.quantity, result.decision], [false, 0, 'DECISION_REJECTED']);
  assert.deepEqual(result.reasons, [{ code: 'REASON_CODE_TRADING_HALTED', message: 'trading is halted' }]);
});

for (const [name, reply] of [
  ['more than requested', orderReply('DECISION_APPROVED', 150)],
  ['decision unspecified', orderReply('DECISION_UNSPECIFIED', 100)],
  ['an unknown decision', orderReply(7, 100)],
  ['a NaN quantity', orderReply('DECISION_RESIZED', NaN)],
  ['an infinite quantity', orderReply('DECISION_APPROVED', Infinity)],
  ['a negative quantity', orderReply('DECISION_RESIZED', -1)],
  ['a rejection with a quantity', orderReply('DECISION_REJECTED', 50)],
  ["another order's reply", orderReply('DECISION_APPROVED', 100, 'o-2')],
]) {
  test(`a reply with ${name} is refused: the client rejects the order`, async (t) => {
    const sidecar = await fakeSidecar(t);
    sidecar.checkTradeReply = reply;
    const gate = new PreTradeGate(connect(t, sidecar.target));

    const result = await gate.check(ORDER);

    assertRejectedByTheClient(result.response, 'sidecar reply refused: ');
    assert.deepEqual([result.allowed, result.quantity], [false, 0]);
  });
}

test('an unknown decision is named by its number', async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.checkTradeReply = orderReply(7, 100);

  const response = await connect(t, sidecar.target).checkTrade(ORDER);

  assert.equal(response.reasons[0].message, 'sidecar reply refused: decision DECISION_7');
});

test('a reply that does not decode rejects the order', async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.checkTradeReply = () => Buffer.from([0x10, 0xff]); // field 2 (decision), a varint cut short

  const response = await connect(t, sidecar.target).checkTrade(ORDER);

  assertRejectedByTheClient(response, 'sidecar call failed: INTERNAL: ');
});

test('a failed call rejects the order naming the status', async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.failure = { code: grpc.status.RESOURCE_EXHAUSTED, details: 'too many calls at once' };

  const response = await connect(t, sidecar.target).checkTrade(ORDER);

  assertRejectedByTheClient(response, 'sidecar call failed: RESOURCE_EXHAUSTED: too many calls at once');
});

test('an order the sidecar refuses as malformed is rejected as an invalid request', async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.failure = { code: grpc.status.INVALID_ARGUMENT, details: 'quantity: must be positive' };

  const response = await connect(t, sidecar.target).checkTrade(ORDER);

  assertRejectedByTheClient(response, 'sidecar call failed: INVALID_ARGUMENT: quantity: must be positive',
    'REASON_CODE_INVALID_REQUEST');
});

test('no reply within the deadline rejects the order as DEADLINE_EXCEEDED', async (t) => {
  const sidecar = await fakeSidecar(t);
  sidecar.hang = true;

  const response = await connect(t, sidecar.target, { checkTradeTimeout: 0.05 }).checkTrade(ORDER);

  assertRejectedByTheClient(response, 'sidecar call failed: DEADLINE_EXCEEDED: ');
});

test('a reply handed over after the deadline rejects the order', async (t) => {
  const sidecar = await fakeSidecar(t);
  const readings = [1000, 1250.5]; // the client's clock, in ms: 250.5 ms pass during the call
  const client = connect(t, sidecar.target, { checkTradeTimeout: 0.25, clock: () => readings.shift() });

  const response = await client.checkTrade(ORDER);

  assertRejectedByTheClient(
    response, 'sidecar reply came after the deadline: DEADLINE_EXCEEDED (250.500 ms > 250.000 ms)');
});

test('without a sidecar the order is rejected as unavailable', async (t) => {
  const client = connect(t, 'unix:/nonexistent/riskbudget.sock');

  const response = await client.checkTrade(ORDER);

  assertRejectedByTheClient(response, 'sidecar call failed: UNAVAILABLE: ');
});

test('a closed client rejects the order', async (t) => {
  const sidecar = await fakeSidecar(t);
  const client = connect(t, sidecar.target);
  client.close();

  const response = await client.checkTrade(ORDER);

  assertRejectedByTheClient(response, 'sidecar call failed: ');
});

test('the order is sent as given, with the client token', async (t) => {
  const sidecar = await fakeSidecar(t);
  const client = connect(t, sidecar.target, { clientToken: 'trading-token' });

  await client.checkTrade({ ...ORDER, side: 'SIDE_SELL', limitPrice: 101.5, dryRun: true });

  const [{ request, metadata }] = sidecar.received.CheckTrade;
  assert.deepEqual(
    [request.clientOrderId, request.strategy, request.symbol, request.side, request.quantity, request.limitPrice, request.dryRun],
    ['o-1', 'momentum', 'AAPL', 'SIDE_SELL', 100, 101.5, true]);
  assert.equal(metadata.authorization, 'Bearer trading-token');
});

test('without a client token no authorization is sent', async (t) => {
  const sidecar = await fakeSidecar(t);

  await connect(t, sidecar.target).checkTrade(ORDER);

  assert.equal(sidecar.received.CheckTrade[0].metadata.authorization, undefined);
});

test('an unknown side is refused before anything is sent', async (t) => {
  const sidecar = await fakeSidecar(t);
  const client = connect(t, sidecar.target);

  await assert.rejects(client.checkTrade({ ...ORDER, side: 'short' }), {
    name: 'RangeError',
    message: "side must be one of 'buy', 'sell', got short",
  });
  assert.equal(sidecar.received.CheckTrade.length, 0);
});

test('a timeout that is not a positive number of seconds is refused', () => {
  for (const value of [0, -1, NaN, Infinity]) {
    assert.throws(() => new RiskBudgetClient('127.0.0.1:1', { checkTradeTimeout: value }),
      { name: 'RangeError', message: /^checkTradeTimeout must be a positive/ });
    assert.throws(() => new RiskBudgetClient('127.0.0.1:1', { timeout: value }),
      { name: 'RangeError', message: /^timeout must be a positive/ });
  }
});

test('a timeout that is not a number (a string such as \'0.25\') is a TypeError saying so, not a RangeError showing 0.25', () => {
  for (const [value, kind] of [['0.25', 'string'], ['1', 'string'], [1n, 'bigint'], [null, '[object Null]'], [[1], '[object Array]']]) {
    for (const name of ['checkTradeTimeout', 'timeout']) {
      assert.throws(() => new RiskBudgetClient('127.0.0.1:1', { [name]: value }).close(),
        { name: 'TypeError', message: `${name} must be a number, got ${kind}` }, `${name}: ${String(value)}`);
    }
  }
  const client = new RiskBudgetClient('127.0.0.1:1');
  try {
    assert.throws(() => client.waitForReady('5'), { name: 'TypeError', message: 'seconds must be a number, got string' });
  } finally {
    client.close();
  }
});

test('anything but a positive finite approval or resize allows nothing', () => {
  for (const [decision, approvedQuantity] of [
    ['DECISION_APPROVED', 0], ['DECISION_RESIZED', -5], ['DECISION_RESIZED', NaN],
    ['DECISION_APPROVED', Infinity], ['DECISION_UNSPECIFIED', 100], [9, 100],
  ]) {
    const result = gateResult({ decision, approvedQuantity, reasons: [] });
    assert.deepEqual([result.allowed, result.quantity], [false, 0], `${decision} ${approvedQuantity}`);
  }
});

test('a reason code newer than the client keeps a readable name', () => {
  const result = gateResult({ decision: 'DECISION_REJECTED', approvedQuantity: 0, reasons: [{ code: 99, message: 'new' }] });

  assert.deepEqual(result.reasons, [{ code: 'REASON_CODE_99', message: 'new' }]);
});
