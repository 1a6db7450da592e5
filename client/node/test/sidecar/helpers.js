'use strict';
/** What the real-sidecar tests share, whichever sidecar (plaintext or TLS) they run against. */

const assert = require('node:assert/strict');
const grpc = require('@grpc/grpc-js');

/** The environment variable `name`, set by `startedBy` (the pytest file that starts the sidecar). */
function required(name, startedBy) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: these tests run against a real sidecar, started by ${startedBy} (make test)`);
  }
  return value;
}

/** The warm-up prices are history, and a stale price rejects every order: publish fresh ones. */
async function publishFreshPrices(client) {
  const { budget } = await client.getBudget();
  const now = new Date();
  const published = await client.publishMarketData(
    budget.symbols.map(({ symbol, lastPrice }) => ({ symbol, price: lastPrice, time: now })));
  assert.equal(published.accepted, budget.symbols.length);
}

/**
 * A recommendation now, through the admin service (which the client does not wrap); waits for a restarting sidecar.
 * `requestedBy`, who asks, is required: the sidecar refuses an admin change that names no one.
 */
function triggerRebalance(admin, adminToken, reason, requestedBy = 'pytest') {
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${adminToken}`);
  return new Promise((resolve, reject) => {
    admin.TriggerRebalance({ reason, requestedBy }, metadata, { deadline: Date.now() + 30_000, waitForReady: true },
      (error, reply) => (error ? reject(error) : resolve(reply.recommendation)));
  });
}

module.exports = { publishFreshPrices, required, triggerRebalance };
