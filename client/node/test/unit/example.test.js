'use strict';
// examples/gate_and_feed.js refuses a bad command line with exit status 2 before it sends anything:
// a --follow that is not a whole number (Number('abc') is NaN, which no count ever equals: it
// followed the feed forever), or an option it does not know. Against a scripted sidecar
// (fake_sidecar.js); the example against a real sidecar is in tests/polyglot/test_node_client.py.

const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const path = require('node:path');
const { test } = require('node:test');
const { fakeSidecar } = require('./fake_sidecar');

const EXAMPLE = path.resolve(__dirname, '..', '..', 'examples', 'gate_and_feed.js');

/** Runs the example with `args`; resolves to { status, stdout, stderr }. */
function runExample(args) {
  return new Promise((resolve) => {
    execFile(process.execPath, [EXAMPLE, ...args], { timeout: 10_000 }, (error, stdout, stderr) => {
      resolve({ status: error ? error.code : 0, stdout, stderr });
    });
  });
}

test('a --follow that is not a whole number, or an unknown option, is a usage error (exit 2) before anything is sent', { timeout: 30_000 }, async (t) => {
  const sidecar = await fakeSidecar(t);

  for (const [args, message] of [
    [['--follow', 'abc'], '--follow must be a whole number of recommendations, 0 or more, got "abc"'],
    [['--follow', '1.5'], '--follow must be a whole number of recommendations, 0 or more, got "1.5"'],
    [['--follow=-1'], '--follow must be a whole number of recommendations, 0 or more, got "-1"'],
    [['--follow', ''], '--follow must be a whole number of recommendations, 0 or more, got ""'],
    [['--folow', '3'], "Unknown option '--folow'"],
  ]) {
    const { status, stdout, stderr } = await runExample(['--target', sidecar.target, ...args]);
    assert.equal(status, 2, `${args.join(' ')}: ${stderr}`);
    assert.equal(stdout, '');
    assert.ok(stderr.startsWith(`${message}`), stderr);
    assert.match(stderr, /\nusage: gate_and_feed\.js /);
  }
  assert.equal(sidecar.received.CheckTrade.length, 0);
});
