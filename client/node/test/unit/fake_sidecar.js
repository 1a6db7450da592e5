'use strict';
/**
 * A scripted sidecar: a real grpc-js server on an ephemeral loopback port that answers as its
 * fields say and records what each call received.
 */

const grpc = require('@grpc/grpc-js');
const { RiskBudgetClient } = require('../../src');
const { RiskBudgetService } = require('../../src/contract');

/**
 * A subscription's script: batches of sequences, then how the stream ends; each message names
 * the recommendation log `logId` ('' as a sidecar from before log ids: none).
 */
function subscription(batches, end = { code: grpc.status.UNAVAILABLE, details: 'connection lost' }, { logId = '' } = {}) {
  return { batches, end, logId };
}

/** Trailing metadata with `key: value` entries. */
function metadataOf(entries) {
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(entries)) {
    metadata.set(key, value);
  }
  return metadata;
}

class FakeSidecar {
  constructor() {
    /** CheckTrade's reply to `request`: an object, or a Buffer sent as the raw reply bytes. */
    this.checkTradeReply = (request) => ({
      clientOrderId: request.clientOrderId,
      decision: 'DECISION_APPROVED',
      requestedQuantity: request.quantity,
      approvedQuantity: request.quantity,
    });
    /** `{ code, details }` every CheckTrade fails with, or null. */
    this.failure = null;
    /** CheckTrade never answers. */
    this.hang = false;
    /** One script per StreamRecommendations call, in order; `end: null` keeps the stream open. */
    this.subscriptions = [];
    /** GetStatus's reply (e.g. `{ recommendationLogId }`; unset fields their defaults). */
    this.statusReply = {};
    /** `{ code, details }` every GetStatus fails with, or null. */
    this.statusFailure = null;
    /** GetStatus never answers. */
    this.statusHang = false;
    /** Per method, the requests received, each with its metadata. */
    this.received = {
      CheckTrade: [], GetBudget: [], GetStatus: [], PublishMarketData: [], StreamRecommendations: [],
    };
    this.target = null;
    this.server = new grpc.Server();
  }

  async start() {
    const definition = RiskBudgetService.service;
    const encode = definition.CheckTrade.responseSerialize;
    this.server.addService({
      ...definition,
      CheckTrade: { ...definition.CheckTrade, responseSerialize: (reply) => (Buffer.isBuffer(reply) ? reply : encode(reply)) },
    }, {
      CheckTrade: (call, callback) => this.#checkTrade(call, callback),
      GetBudget: (call, callback) => this.#recordAndAnswer('GetBudget', call, callback),
      GetStatus: (call, callback) => this.#getStatus(call, callback),
      PublishMarketData: (call, callback) => this.#recordAndAnswer('PublishMarketData', call, callback),
      StreamRecommendations: (call) => this.#streamRecommendations(call),
    });
    const port = await new Promise((resolve, reject) => {
      this.server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (
        error ? reject(error) : resolve(bound)));
    });
    this.target = `127.0.0.1:${port}`;
    return this;
  }

  stop() {
    this.server.forceShutdown();
  }

  #record(method, call) {
    this.received[method].push({ request: call.request, metadata: call.metadata.getMap() });
  }

  /** Records the call and answers it with an empty reply (every field its default). */
  #recordAndAnswer(method, call, callback) {
    this.#record(method, call);
    callback(null, {});
  }

  #getStatus(call, callback) {
    this.#answer('GetStatus', call, callback, this.statusHang, this.statusFailure, () => this.statusReply);
  }

  #checkTrade(call, callback) {
    this.#answer('CheckTrade', call, callback, this.hang, this.failure, () => this.checkTradeReply(call.request));
  }

  /** Records the call, then never answers (`hang`), fails with `failure`, or answers `reply()`. */
  #answer(method, call, callback, hang, failure, reply) {
    this.#record(method, call);
    if (hang) {
      return;
    }
    if (failure !== null) {
      callback(failure);
      return;
    }
    callback(null, reply());
  }

  #streamRecommendations(call) {
    this.#record('StreamRecommendations', call);
    const script = this.subscriptions.shift() ?? subscription([], null);
    for (const sequences of script.batches) {
      call.write({
        recommendations: sequences.map((sequence) => ({ sequence: String(sequence), reason: `r${sequence}` })),
        logId: script.logId,
      });
    }
    if (script.end === null) {
      return; // open until the client cancels
    }
    if (script.end.code === grpc.status.OK) {
      call.end();
    } else {
      call.emit('error', script.end); // grpc-js sends it as the status, after the writes
    }
  }
}

/** A started FakeSidecar, stopped when the test ends. */
async function fakeSidecar(t) {
  const sidecar = await new FakeSidecar().start();
  t.after(() => sidecar.stop());
  return sidecar;
}

/** A well-formed order and price tick, for tests that vary one field. */
const ORDER = { clientOrderId: 'o-1', strategy: 'momentum', symbol: 'AAPL', side: 'buy', quantity: 100 };
const TICK = { symbol: 'AAPL', price: 101.5, time: new Date() };

/** A client of `target` for a test, closed when the test ends. */
function connect(t, target, options = {}) {
  const client = new RiskBudgetClient(target, { checkTradeTimeout: 2, ...options });
  t.after(() => client.close());
  return client;
}

module.exports = { ORDER, TICK, connect, fakeSidecar, metadataOf, subscription };
