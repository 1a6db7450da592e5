'use strict';
/**
 * What the real-sidecar tests are given by tests/polyglot/test_node_client.py, which starts
 * the sidecar process: its address, its tokens, and a control URL that kills and restarts it.
 */

const assert = require('node:assert/strict');
const grpc = require('@grpc/grpc-js');
const { RiskBudgetAdminService } = require('../../src');
const helpers = require('./helpers');

const required = (name) => helpers.required(name, 'tests/polyglot/test_node_client.py');
const target = required('RISKBUDGET_TARGET');
const clientToken = required('RISKBUDGET_CLIENT_TOKEN');
const adminToken = required('RISKBUDGET_ADMIN_TOKEN');
const controlUrl = required('RISKBUDGET_CONTROL_URL');

/** Ask the test harness to `kill` (SIGKILL) or `start` the sidecar; resolves once done. */
async function control(action) {
  const response = await fetch(`${controlUrl}/${action}`, { method: 'POST' });
  assert.ok(response.ok, `control ${action}: HTTP ${response.status} ${await response.text()}`);
}

/** A recommendation now, through the admin service; waits for a restarting sidecar. */
function triggerRebalance(admin, reason) {
  return helpers.triggerRebalance(admin, adminToken, reason);
}

function adminStub() {
  return new RiskBudgetAdminService(target, grpc.credentials.createInsecure());
}

module.exports = { adminStub, clientToken, control, target, triggerRebalance };
