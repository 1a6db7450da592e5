'use strict';
// The pre-trade gate against a real sidecar process: approvals, resizes and rejections with
// their reasons pass through; a missing token, a deadline too short and a sidecar that is down
// are the client's own rejections. Run by tests/polyglot/test_node_client.py.

const assert = require('node:assert/strict');
const { before, after, test } = require('node:test');
const { PreTradeGate, RiskBudgetClient } = require('../../src');
const { clientToken, control, target } = require('./environment');
const helpers = require('./helpers');

const client = new RiskBudgetClient(target, { clientToken, checkTradeTimeout: 5 });
const gate = new PreTradeGate(client);
let orders = 0;

function order(fields) {
  orders += 1;
  return { clientOrderId: `node-${process.pid}-${orders}`, strategy: 'equity_momentum', side: 'buy', ...fields };
}

function codes(result) {
  return result.reasons.map((reason) => reason.code);
}

const publishFreshPrices = () => helpers.publishFreshPrices(client);

before(publishFreshPrices);

after(() => client.close());

test('an order that fits is approved as asked', async () => {
  const result = await gate.check(order({ symbol: 'SPY', quantity: 10 }));

  assert.deepEqual([result.allowed, result.quantity, result.decision, result.reasons], [true, 10, 'DECISION_APPROVED', []]);
  assert.equal(result.response.reserved, true);
});

test('too big an order is resized to what fits, with every rule that bound it', async () => {
  const result = await gate.check(order({ symbol: 'QQQ', quantity: 1_000_000 }));

  assert.equal(result.decision, 'DECISION_RESIZED');
  assert.ok(result.allowed && result.quantity > 0 && result.quantity < 1_000_000, String(result.quantity));
  assert.ok(codes(result).includes('REASON_CODE_MAX_ORDER_NOTIONAL'), codes(result).join());
  assert.ok(result.reasons.every((reason) => reason.message.length > 0));
});

test('an order for a symbol outside the universe is rejected with its reason', async () => {
  const result = await gate.check(order({ symbol: 'NOPE', quantity: 10 }));

  assert.deepEqual([result.allowed, result.quantity, result.decision], [false, 0, 'DECISION_REJECTED']);
  assert.deepEqual(codes(result), ['REASON_CODE_UNKNOWN_SYMBOL']);
});

test('without the client token the order does not go', async () => {
  const tokenless = new RiskBudgetClient(target, { checkTradeTimeout: 5 });
  try {
    const result = await new PreTradeGate(tokenless).check(order({ symbol: 'SPY', quantity: 10 }));

    assert.deepEqual([result.allowed, result.quantity, codes(result)], [false, 0, ['REASON_CODE_SIDECAR_UNAVAILABLE']]);
    assert.match(result.reasons[0].message, /^sidecar call failed: UNAUTHENTICATED: /);
  } finally {
    tokenless.close();
  }
});

test('a deadline too short for any answer fails closed', async () => {
  const hurried = new RiskBudgetClient(target, { clientToken, checkTradeTimeout: 1e-6 });
  try {
    const result = await new PreTradeGate(hurried).check(order({ symbol: 'SPY', quantity: 10 }));

    assert.deepEqual([result.allowed, result.quantity, codes(result)], [false, 0, ['REASON_CODE_SIDECAR_UNAVAILABLE']]);
    assert.match(result.reasons[0].message, /DEADLINE_EXCEEDED/);
  } finally {
    hurried.close();
  }
});

test('while the sidecar is down every order is refused, and approved again once it is back', async () => {
  await control('kill');
  const whileDown = await gate.check(order({ symbol: 'SPY', quantity: 10 }));
  await control('start');
  await client.waitForReady(30); // the channel reconnects within a second (its backoff)
  await publishFreshPrices(); // the restarted sidecar warmed up from history again
  const afterRestart = await gate.check(order({ symbol: 'SPY', quantity: 10 }));

  assert.deepEqual([whileDown.allowed, whileDown.quantity, codes(whileDown)], [false, 0, ['REASON_CODE_SIDECAR_UNAVAILABLE']]);
  assert.match(whileDown.reasons[0].message, /^sidecar call failed: UNAVAILABLE: /);
  assert.equal(afterRestart.decision, 'DECISION_APPROVED');
});
