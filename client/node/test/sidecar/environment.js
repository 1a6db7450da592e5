'use strict';
/**
 * What the real-sidecar tests are given by tests/polyglot/test_node_client.py, which starts
 * the sidecar process: its address, its tokens, a control URL that kills and restarts it, and
 * (for the tests that replace it) the state file it runs on.
 */

const assert = require('node:assert/strict');
const fs = require('node:fs/promises');
const path = require('node:path');
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

/**
 * Kill the sidecar, move its state file aside (RISKBUDGET_STATE_PATH, with the files beside it
 * named after it: WAL, check journal, lock) and start it again on the same config: on a new,
 * empty state file, so with a new recommendation log. Resolves to the directory the old files
 * were moved to.
 */
async function replaceStateFile() {
  const statePath = required('RISKBUDGET_STATE_PATH');
  await control('kill');
  const directory = path.dirname(statePath);
  const aside = await fs.mkdtemp(path.join(directory, 'replaced-'));
  for (const name of await fs.readdir(directory)) {
    if (name.startsWith(path.basename(statePath)) && path.join(directory, name) !== aside) {
      await fs.rename(path.join(directory, name), path.join(aside, name));
    }
  }
  await control('start');
  return aside;
}

/** A recommendation now, through the admin service; waits for a restarting sidecar. */
function triggerRebalance(admin, reason) {
  return helpers.triggerRebalance(admin, adminToken, reason);
}

function adminStub() {
  return new RiskBudgetAdminService(target, grpc.credentials.createInsecure());
}

/** The sequences of the next `count` recommendations, as bigints. */
async function next(recommendations, count) {
  const sequences = [];
  while (sequences.length < count) {
    const { value, done } = await recommendations.next();
    assert.equal(done, false, `the feed ended after ${sequences.join(', ')}`);
    sequences.push(BigInt(value.sequence));
  }
  return sequences;
}

module.exports = { adminStub, clientToken, control, next, replaceStateFile, target, triggerRebalance };
