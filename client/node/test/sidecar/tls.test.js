'use strict';
// The client's `tls` option against real sidecar processes listening with `sidecar.tls`: one with
// server TLS, one with mutual TLS (`client_ca_file`), and one at 127.0.0.1 whose certificate names
// only RISKBUDGET_TLS_SERVER_NAME (reached with `tls.serverName`). Orders are approved and
// recommendations streamed over TLS; a client that cannot verify the sidecar (plaintext, another
// CA, the system roots, no or the wrong server name) or that the sidecar refuses (no certificate,
// one from another CA) gets no approval: every order is the client's own rejection. Run by
// tests/polyglot/test_node_client_tls.py, which makes the certificates and starts the sidecars.

const assert = require('node:assert/strict');
const { readFileSync } = require('node:fs');
const { after, before, test } = require('node:test');
const {
  PreTradeGate, RecommendationFeed, RiskBudgetAdminService, RiskBudgetClient, channelCredentials, channelOptions,
} = require('../../src');

const helpers = require('./helpers');

const { publishFreshPrices, triggerRebalance } = helpers;
const required = (name) => helpers.required(name, 'tests/polyglot/test_node_client_tls.py');

const tlsTarget = required('RISKBUDGET_TLS_TARGET');
const mutualTarget = required('RISKBUDGET_MUTUAL_TLS_TARGET');
/** 127.0.0.1:<port> of a sidecar whose certificate names only `serverName`. */
const namedTarget = required('RISKBUDGET_NAMED_TLS_TARGET');
const serverName = required('RISKBUDGET_TLS_SERVER_NAME');
const clientToken = required('RISKBUDGET_CLIENT_TOKEN');
const adminToken = required('RISKBUDGET_ADMIN_TOKEN');
/** The test CA as a Buffer, the client's certificate and key as strings: both forms are PEM to the client. */
const ca = readFileSync(required('RISKBUDGET_TLS_CA_FILE'));
const otherCa = readFileSync(required('RISKBUDGET_TLS_OTHER_CA_FILE'));
const clientCert = readFileSync(required('RISKBUDGET_TLS_CLIENT_CERT_FILE'), 'utf8');
const clientKey = readFileSync(required('RISKBUDGET_TLS_CLIENT_KEY_FILE'), 'utf8');
const intruderCert = readFileSync(required('RISKBUDGET_TLS_INTRUDER_CERT_FILE'), 'utf8');
const intruderKey = readFileSync(required('RISKBUDGET_TLS_INTRUDER_KEY_FILE'), 'utf8');

const trusted = new RiskBudgetClient(tlsTarget, { clientToken, checkTradeTimeout: 5, tls: { ca } });
const mutual = new RiskBudgetClient(mutualTarget, {
  clientToken, checkTradeTimeout: 5, tls: { ca, cert: clientCert, key: clientKey },
});
const named = new RiskBudgetClient(namedTarget, { clientToken, checkTradeTimeout: 5, tls: { ca, serverName } });
let orders = 0;

/** Node's DEP0123 warnings, "Setting the TLS ServerName to an IP address is not permitted". */
const ipServerNameWarnings = [];
process.on('warning', (warning) => {
  if (warning.code === 'DEP0123') {
    ipServerNameWarnings.push(warning);
  }
});
/** How many there were once `named` had connected, before any other client did. */
let ipServerNameWarningsFromNamed;

function order(fields = {}) {
  orders += 1;
  return {
    clientOrderId: `node-tls-${process.pid}-${orders}`, strategy: 'equity_momentum', symbol: 'SPY', side: 'buy',
    quantity: 10, ...fields,
  };
}

/** The gate's answer for an order that fits, through a client built with `options`. */
async function checkWith(target, options) {
  const client = new RiskBudgetClient(target, { clientToken, checkTradeTimeout: 5, ...options });
  try {
    return await new PreTradeGate(client).check(order());
  } finally {
    client.close();
  }
}

function assertRefusedByTheClient(result) {
  assert.deepEqual([result.allowed, result.quantity, result.decision], [false, 0, 'DECISION_REJECTED']);
  assert.deepEqual(result.reasons.map((reason) => reason.code), ['REASON_CODE_SIDECAR_UNAVAILABLE']);
  assert.match(result.reasons[0].message, /^sidecar call failed: UNAVAILABLE: /);
}

before(async () => {
  // Node gives a warning once per process: `named` connects first, while its own can be told apart.
  await named.waitForReady().catch(() => {}); // a failure shows in the tests of `named`
  ipServerNameWarningsFromNamed = ipServerNameWarnings.length;
  await publishFreshPrices(trusted);
});

after(() => {
  trusted.close();
  mutual.close();
  named.close();
});

test('over TLS, with the CA that signed the sidecar, an order that fits is approved', async () => {
  const result = await new PreTradeGate(trusted).check(order());

  assert.deepEqual([result.allowed, result.quantity, result.decision, result.reasons], [true, 10, 'DECISION_APPROVED', []]);
  assert.equal(result.response.reserved, true);
});

test('over TLS the feed streams a recommendation triggered through a stub with channelCredentials', async (t) => {
  const admin = new RiskBudgetAdminService(tlsTarget, channelCredentials({ ca }));
  const start = BigInt((await trusted.getStatus()).lastRecommendationSequence);
  const feed = new RecommendationFeed(trusted, { afterSequence: start, maxReconnects: 0 });
  t.after(() => {
    feed.close();
    admin.close();
  });
  const triggered = await triggerRebalance(admin, adminToken, 'over tls');

  const { value, done } = await feed[Symbol.asyncIterator]().next();

  assert.equal(done, false);
  assert.deepEqual([BigInt(value.sequence), BigInt(triggered.sequence)], [start + 1n, start + 1n]);
  assert.match(value.reason, /^over tls/);
});

test('a plaintext client gets no approval from a TLS sidecar', async () => {
  assertRefusedByTheClient(await checkWith(tlsTarget, {}));
});

test('a client trusting another CA refuses the sidecar: no approval, and other calls reject as UNAVAILABLE', async () => {
  const result = await checkWith(tlsTarget, { tls: { ca: otherCa } });
  const client = new RiskBudgetClient(tlsTarget, { clientToken, tls: { ca: otherCa } });
  try {
    await assert.rejects(client.getBudget(), { name: 'RiskBudgetError', codeName: 'UNAVAILABLE' });
  } finally {
    client.close();
  }

  assertRefusedByTheClient(result);
});

test('a client trusting only the system roots refuses a sidecar signed by a private CA', async () => {
  assertRefusedByTheClient(await checkWith(tlsTarget, { tls: {} }));
});

test('over mutual TLS, with the client certificate and key, an order that fits is approved', async () => {
  await publishFreshPrices(mutual);
  const result = await new PreTradeGate(mutual).check(order());

  assert.deepEqual([result.allowed, result.quantity, result.decision, result.reasons], [true, 10, 'DECISION_APPROVED', []]);
});

test('a mutual-TLS sidecar refuses a client without a certificate: no approval', async () => {
  assertRefusedByTheClient(await checkWith(mutualTarget, { tls: { ca } }));
});

test('a mutual-TLS sidecar refuses a client certificate from another CA: no approval', async () => {
  assertRefusedByTheClient(await checkWith(mutualTarget, { tls: { ca, cert: intruderCert, key: intruderKey } }));
});

test('with tls.serverName, a sidecar at 127.0.0.1 whose certificate has only that name approves', async () => {
  await publishFreshPrices(named);
  const result = await new PreTradeGate(named).check(order());

  assert.deepEqual([result.allowed, result.quantity, result.decision, result.reasons], [true, 10, 'DECISION_APPROVED', []]);
  assert.equal(ipServerNameWarningsFromNamed, 0, 'Node warned (DEP0123) of an IP address as the TLS server name');
});

test('channelOptions gives a stub built by hand the server name', async (t) => {
  const tls = { ca, serverName };
  const admin = new RiskBudgetAdminService(namedTarget, channelCredentials(tls), channelOptions(tls));
  t.after(() => admin.close());

  const triggered = await triggerRebalance(admin, adminToken, 'to a named sidecar');

  assert.match(triggered.reason, /^to a named sidecar/);
});

test('without tls.serverName a client refuses a sidecar whose certificate does not name its host', async () => {
  assertRefusedByTheClient(await checkWith(namedTarget, { tls: { ca } }));
  // Node warns of the IP address sent as server name: the check of `named` above sees such warnings.
  assert.equal(ipServerNameWarnings.length, 1);
});

test('with a tls.serverName the certificate does not hold, a client refuses the sidecar', async () => {
  assertRefusedByTheClient(await checkWith(namedTarget, { tls: { ca, serverName: 'other.test' } }));
});
