'use strict';
// The `tls` option of RiskBudgetClient: what it accepts, what it refuses (naming the option) before
// any channel is made, and that a TLS client fails closed on a sidecar it cannot verify. TLS to a
// real sidecar, with certificates, is in test/sidecar/tls.test.js.

const assert = require('node:assert/strict');
const { generateKeyPairSync } = require('node:crypto');
const { test } = require('node:test');
const { rootCertificates } = require('node:tls');
const {
  PreTradeGate, RiskBudgetClient, channelCredentials, channelOptions,
} = require('../../src');
const { fakeSidecar } = require('./fake_sidecar');

const ORDER = { clientOrderId: 'o-1', strategy: 'momentum', symbol: 'AAPL', side: 'buy', quantity: 100 };

/** A real certificate, as a string: one of Node's bundled roots. */
const CERTIFICATE = rootCertificates[0];

/** A real private key (of no certificate here: the checks below come before any use of it). */
const KEY = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' });

function build(tls) {
  new RiskBudgetClient('127.0.0.1:1', { tls }).close();
}

test('tls with a CA as a string or a Buffer, or with none (the system roots), builds a client', () => {
  for (const tls of [{}, { ca: CERTIFICATE }, { ca: Buffer.from(CERTIFICATE) }, { ca: undefined }, { ca: null }]) {
    assert.doesNotThrow(() => build(tls), JSON.stringify(tls));
  }
});

test('a tls option that is neither a Buffer nor a string is a TypeError naming it', () => {
  for (const name of ['ca', 'cert', 'key']) {
    for (const value of [42, true, {}, [CERTIFICATE], new Uint8Array(Buffer.from(CERTIFICATE))]) {
      const tls = { ca: CERTIFICATE, cert: CERTIFICATE, key: KEY, [name]: value };
      assert.throws(() => build(tls), {
        name: 'TypeError',
        message: new RegExp(`^tls\\.${name} must be PEM as a Buffer or a string, got `),
      }, `${name}: ${String(value)}`);
    }
  }
});

test('cert without key, or key without cert, is a TypeError naming both', () => {
  assert.throws(() => build({ cert: CERTIFICATE }), {
    name: 'TypeError',
    message: 'tls.cert needs tls.key: mutual TLS takes both (or neither)',
  });
  assert.throws(() => build({ ca: CERTIFICATE, key: Buffer.from(KEY) }), {
    name: 'TypeError',
    message: 'tls.key needs tls.cert: mutual TLS takes both (or neither)',
  });
});

test('tls that is not an object, or has an option it does not know, is a TypeError', () => {
  for (const [tls, message] of [
    [CERTIFICATE, 'tls must be an object { ca, cert, key, serverName }, got string'],
    [true, 'tls must be an object { ca, cert, key, serverName }, got boolean'],
    [[CERTIFICATE], 'tls must be an object { ca, cert, key, serverName }, got an array'],
    [{ ca: CERTIFICATE, certificate: CERTIFICATE },
      "tls has no option 'certificate': its options are 'ca', 'cert', 'key', 'serverName'"],
    [{ ca: CERTIFICATE, servername: 'riskbudget.internal' },
      "tls has no option 'servername' (did you mean 'serverName'?): its options are 'ca', 'cert', 'key', 'serverName'"],
    [{ ca: CERTIFICATE, server_name: 'riskbudget.internal', pem: CERTIFICATE },
      "tls has no option 'server_name' (did you mean 'serverName'?), 'pem': its options are 'ca', 'cert', 'key', 'serverName'"],
  ]) {
    assert.throws(() => build(tls), { name: 'TypeError', message });
  }
});

test('tls.serverName, a host name, builds a client; without it the channel checks the target host', () => {
  for (const serverName of ['riskbudget.internal', 'localhost', 'xn--bcher-kva.example', undefined, null]) {
    assert.doesNotThrow(() => build({ ca: CERTIFICATE, serverName }), String(serverName));
  }
  assert.equal(channelOptions({ ca: CERTIFICATE, serverName: 'riskbudget.internal' })['grpc.ssl_target_name_override'],
    'riskbudget.internal');
  for (const tls of [undefined, {}, { ca: CERTIFICATE, serverName: null }]) {
    assert.equal('grpc.ssl_target_name_override' in channelOptions(tls), false, JSON.stringify(tls));
  }
});

test('a tls.serverName that is not a string is a TypeError naming it', () => {
  for (const [value, got] of [[42, 'number'], [true, 'boolean'], [['riskbudget.internal'], '[object Array]'],
    [Buffer.from('riskbudget.internal'), '[object Uint8Array]']]) {
    assert.throws(() => build({ ca: CERTIFICATE, serverName: value }), {
      name: 'TypeError',
      message: `tls.serverName must be a host name as a string, got ${got}`,
    }, String(value));
  }
});

test('a tls.serverName that is empty or has whitespace or control characters is a RangeError naming it', () => {
  const spaced = ['', ' ', 'riskbudget internal', ' riskbudget.internal', 'riskbudget\tinternal', 'riskbudget\u00a0.test'];
  const controlled = ['riskbudget.internal\n', 'riskbudget\u0000.internal', 'riskbudget\u007f.internal'];
  for (const value of [...spaced, ...controlled]) {
    assert.throws(() => build({ ca: CERTIFICATE, serverName: value }), {
      name: 'RangeError',
      message: 'tls.serverName must be a host name, not empty and without whitespace or control characters, '
        + `got ${JSON.stringify(value)}`,
    }, JSON.stringify(value));
  }
});

test("a file's path instead of its contents is refused as holding no PEM", () => {
  for (const [tls, message] of [
    [{ ca: '/etc/riskbudget/ca.pem' }, "tls.ca holds no PEM CERTIFICATE (give the file's contents, not its path)"],
    [{ cert: '/etc/riskbudget/client.pem', key: KEY }, "tls.cert holds no PEM CERTIFICATE (give the file's contents, not its path)"],
    [{ cert: CERTIFICATE, key: Buffer.from('client.key') }, "tls.key holds no PEM PRIVATE KEY (give the file's contents, not its path)"],
    [{ ca: '' }, "tls.ca holds no PEM CERTIFICATE (give the file's contents, not its path)"],
  ]) {
    assert.throws(() => build(tls), { name: 'RangeError', message });
  }
});

test('PEM that does not parse is refused when the client is built', () => {
  const garbled = '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n';
  assert.throws(() => build({ cert: CERTIFICATE, key: garbled }), {
    name: 'Error',
    message: /^tls: the certificates or key cannot be used: /,
  });
});

test('channelCredentials and channelOptions are what the client uses, for stubs built by hand', () => {
  assert.equal(channelCredentials()._isSecure(), false);
  assert.equal(channelCredentials({ ca: CERTIFICATE })._isSecure(), true);
  assert.equal(channelCredentials({ ca: CERTIFICATE, serverName: 'riskbudget.internal' })._isSecure(), true);
  assert.throws(() => channelCredentials({ key: KEY }), { name: 'TypeError', message: /^tls\.key needs tls\.cert/ });
  for (const make of [channelCredentials, channelOptions]) {
    assert.throws(() => make({ serverName: '' }), { name: 'RangeError', message: /^tls\.serverName must be/ });
    assert.throws(() => make([]), { name: 'TypeError', message: /^tls must be an object/ });
  }
  // The client's reconnect backoff, and no HTTP proxy, with or without a server name.
  assert.equal(channelOptions()['grpc.max_reconnect_backoff_ms'], 1000);
  assert.equal(channelOptions({ serverName: 'riskbudget.internal' })['grpc.enable_http_proxy'], 0);
});

test('a TLS client on a plaintext sidecar fails closed: the order is rejected, nothing reaches the sidecar', async (t) => {
  const sidecar = await fakeSidecar(t);
  const client = new RiskBudgetClient(sidecar.target, { checkTradeTimeout: 5, tls: { ca: CERTIFICATE } });
  t.after(() => client.close());

  const result = await new PreTradeGate(client).check(ORDER);

  assert.deepEqual([result.allowed, result.quantity, result.decision], [false, 0, 'DECISION_REJECTED']);
  assert.deepEqual(result.reasons.map((reason) => reason.code), ['REASON_CODE_SIDECAR_UNAVAILABLE']);
  assert.match(result.reasons[0].message, /^sidecar call failed: UNAVAILABLE: /);
  assert.equal(sidecar.received.CheckTrade.length, 0);
});
