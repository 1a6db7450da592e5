'use strict';
/**
 * A fail-closed pre-trade gate: the trading engine sends an order only when the gate allows
 * it, and only the quantity the gate gives.
 */

const { RiskBudgetClient, kindOf } = require('./client');
const { enumName } = require('./contract');

const ALLOWING_DECISIONS = new Set(['DECISION_APPROVED', 'DECISION_RESIZED']);

/**
 * Whether an order may be sent, and how much of it:
 * `{ allowed, quantity, decision, reasons: [{ code, message }], response }`. `quantity` is 0
 * when not allowed; `reasons` name every rule that bound or rejected the order (or the
 * client's own REASON_CODE_SIDECAR_UNAVAILABLE); `response` is the CheckTrade reply.
 */
function gateResult(response) {
  const quantity = response.approvedQuantity;
  const allowed = ALLOWING_DECISIONS.has(response.decision) && Number.isFinite(quantity) && quantity > 0;
  return Object.freeze({
    allowed,
    quantity: allowed ? quantity : 0,
    decision: enumName('DECISION', response.decision),
    reasons: Object.freeze(response.reasons.map((reason) => Object.freeze({
      code: enumName('REASON_CODE', reason.code),
      message: reason.message,
    }))),
    response,
  });
}

/**
 * Checks each order with the sidecar (through `client`, a RiskBudgetClient: anything else is a
 * TypeError naming it, as in Python the gate takes a client, not a target) before it is sent.
 */
class PreTradeGate {
  #client;

  constructor(client) {
    if (!(client instanceof RiskBudgetClient)) {
      throw new TypeError(`client must be a RiskBudgetClient, got ${kindOf(client)}`);
    }
    this.#client = client;
  }

  /** The gate's answer for `order` (see RiskBudgetClient.checkTrade for its fields). */
  async check(order) {
    return gateResult(await this.#client.checkTrade(order));
  }
}

module.exports = { PreTradeGate, gateResult };
