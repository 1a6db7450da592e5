'use strict';
/**
 * The Node.js client of the risk-budget sidecar: what the Python client's RiskBudgetClient
 * does for the calls a trading process makes, with CheckTrade failing closed.
 */

const { Buffer } = require('node:buffer');
const { performance } = require('node:perf_hooks');
const grpc = require('@grpc/grpc-js');
const { RiskBudgetService, enumValueNames, enumName } = require('./contract');

/** Seconds CheckTrade may take before the client rejects the order itself. */
const DEFAULT_CHECK_TRADE_TIMEOUT = 0.25;

/** Seconds every other unary call may take. */
const DEFAULT_TIMEOUT = 5.0;

const CHANNEL_OPTIONS = {
  // The sidecar is on this host: never route to it through an HTTP proxy.
  'grpc.enable_http_proxy': 0,
  // Reconnect within a second of a sidecar restart rather than after gRPC's default backoff
  // of up to two minutes, during which every order would be rejected as unavailable.
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
};

const ACCEPTED_DECISIONS = new Set(['DECISION_APPROVED', 'DECISION_RESIZED', 'DECISION_REJECTED']);
const SIDES = enumValueNames('Side').slice(1); // UNSPECIFIED is never a valid choice
const LARGEST_SEQUENCE = 2n ** 64n - 1n;
const { responseSerialize: encodeCheckTradeResponse, responseDeserialize: decodeCheckTradeResponse } =
  RiskBudgetService.service.CheckTrade;

/** A call to the sidecar failed with a gRPC status other than OK. */
class RiskBudgetError extends Error {
  constructor(method, code, details) {
    super(`${method} failed: ${statusName(code)}: ${details}`);
    this.name = 'RiskBudgetError';
    this.method = method;
    /** The gRPC status code (a number, see `grpc.status`). */
    this.code = code;
    this.details = details;
  }

  /** The status code's name, e.g. 'UNAVAILABLE'. */
  get codeName() {
    return statusName(this.code);
  }
}

/** The name of a gRPC status code. */
function statusName(code) {
  return grpc.status[code] ?? `STATUS_${code}`;
}

/**
 * The most seconds any timeout or wait may be: one day. gRPC throws, uncaught, on a deadline
 * too far ahead (around 1e8 hours), and a timer of more than about 24.8 days fires at once.
 */
const MAX_SECONDS = 86_400;

/**
 * `value` seconds, if a positive number up to MAX_SECONDS (one day); a TypeError naming
 * `argument` when not a number (nothing is converted: '0.25' is refused, not read as 0.25), a
 * RangeError naming it otherwise.
 */
function positiveSeconds(value, argument) {
  if (!(ofType(value, 'number', argument) > 0 && value <= MAX_SECONDS)) {
    throw new RangeError(`${argument} must be a positive number of seconds, at most ${MAX_SECONDS} `
      + `(one day), got ${String(value)}`);
  }
  return value;
}

/** What `value` is, for an error message: its type, or an object's kind ('[object Array]'). */
function kindOf(value) {
  return typeof value === 'object' ? Object.prototype.toString.call(value) : typeof value;
}

/** The known option `name` is a misspelling of (snake_case or another case, e.g. dry_run, servername), or null. */
function meant(name, known) {
  const folded = name.replace(/[_-]/g, '').toLowerCase();
  return known.find((option) => option.toLowerCase() === folded) ?? null;
}

/**
 * `options`, checked to be an object with no keys but `known`; a TypeError otherwise: naming
 * `noun` when not an object, else each key that is not known, as an option `owner` (e.g. 'tls',
 * 'order', 'RiskBudgetClient') does not have, with the known option it misspells (dry_run: dryRun),
 * if any. An option spelled otherwise would be dropped without a word: a dry run sent as a real
 * order, a limit price as none. Every options or request object the client, the gate and the feed
 * take is checked with this, before anything is sent.
 */
function optionsObject(options, known, owner, noun = owner) {
  if (typeof options !== 'object' || options === null || Array.isArray(options) || Buffer.isBuffer(options)) {
    const kind = options === null ? 'null' : (Array.isArray(options) ? 'an array' : typeof options);
    throw new TypeError(`${noun} must be an object { ${known.join(', ')} }, got ${kind}`);
  }
  const unknown = Object.keys(options).filter((name) => !known.includes(name));
  if (unknown.length > 0) {
    const named = unknown.map((name) => {
      const option = meant(name, known);
      return option === null ? `'${name}'` : `'${name}' (did you mean '${option}'?)`;
    });
    throw new TypeError(`${owner} has no option ${named.join(', ')}: `
      + `its options are ${known.map((name) => `'${name}'`).join(', ')}`);
  }
  return options;
}

/**
 * `value`, if of type `type` ('string', 'number', 'boolean', 'function'); a TypeError naming
 * `argument` (and not holding `value`) otherwise. Nothing is converted: gRPC would send 42 as
 * "42", true as 1, [7] as 7 and '0x10' as 16. NaN and the infinities are numbers: the sidecar
 * refuses them.
 */
function ofType(value, type, argument) {
  if (typeof value !== type) {
    throw new TypeError(`${argument} must be a ${type}, got ${kindOf(value)}`);
  }
  return value;
}

/**
 * The authorization header of `token`: a TypeError naming `argument` unless a string, a
 * RangeError unless printable ASCII without spaces, not empty (a newline read from a file or an
 * environment variable is no valid header value: gRPC would fail every call). Neither message
 * holds the token.
 */
function bearer(token, argument) {
  if (!/^[\x21-\x7e]+$/.test(ofType(token, 'string', argument))) {
    throw new RangeError(`${argument} must be printable ASCII without spaces or line breaks, not empty `
      + '(strip the newline a file or a variable may end with)');
  }
  return `Bearer ${token}`;
}

/** A sequence number as a bigint: a bigint, a safe integer or a string of digits, 0 to 2^64-1. */
function sequenceNumber(value, argument) {
  const whole = typeof value === 'bigint' || Number.isSafeInteger(value)
    || (typeof value === 'string' && /^\d+$/.test(value));
  const sequence = whole ? BigInt(value) : -1n;
  if (sequence < 0n || sequence > LARGEST_SEQUENCE) {
    throw new RangeError(`${argument} must be a sequence number, 0 or more, got ${String(value)}`);
  }
  return sequence;
}

const TLS_OPTIONS = ['ca', 'cert', 'key', 'serverName'];

/** The options of RiskBudgetClient. */
const CLIENT_OPTIONS = ['clientToken', 'checkTradeTimeout', 'timeout', 'clock', 'tls'];

/** The fields of an order (CheckTradeRequest). */
const ORDER_FIELDS = ['clientOrderId', 'strategy', 'symbol', 'side', 'quantity', 'limitPrice', 'dryRun'];

/** The options of RiskBudgetClient.streamRecommendations. */
const STREAM_OPTIONS = ['fromLatest'];

/** The fields of a tick (PriceTick). */
const TICK_FIELDS = ['symbol', 'price', 'time'];

/** What each PEM `tls` option must hold, as the sidecar's own check of its PEM files says it. */
const PEM_BLOCKS = {
  ca: { kind: 'CERTIFICATE', pattern: /-----BEGIN CERTIFICATE-----/ },
  cert: { kind: 'CERTIFICATE', pattern: /-----BEGIN CERTIFICATE-----/ },
  key: { kind: 'PRIVATE KEY', pattern: /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/ },
};

/** `tls.<name>` as a Buffer, or null when not given; a TypeError or RangeError naming it otherwise. */
function pemOption(tls, name) {
  const value = tls[name];
  if (value === undefined || value === null) {
    return null;
  }
  if (!(typeof value === 'string' || Buffer.isBuffer(value))) {
    throw new TypeError(`tls.${name} must be PEM as a Buffer or a string, got ${kindOf(value)}`);
  }
  const pem = Buffer.from(value);
  const { kind, pattern } = PEM_BLOCKS[name];
  if (!pattern.test(pem.toString('latin1'))) {
    // Most often a file's path given instead of its contents.
    throw new RangeError(`tls.${name} holds no PEM ${kind} (give the file's contents, not its path)`);
  }
  return pem;
}

/** `tls.serverName`, or null when not given; a TypeError or RangeError naming it otherwise. */
function serverNameOption(tls) {
  const value = tls.serverName;
  if (value === undefined || value === null) {
    return null;
  }
  if (typeof value !== 'string') {
    throw new TypeError(`tls.serverName must be a host name as a string, got ${kindOf(value)}`);
  }
  if (!/^[^\s\p{Cc}]+$/u.test(value)) {
    throw new RangeError('tls.serverName must be a host name, not empty and without whitespace or control '
      + `characters, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** `tls` checked to be null or an object of TLS_OPTIONS only; a TypeError otherwise. */
function tlsObject(tls) {
  return tls === undefined || tls === null ? null : optionsObject(tls, TLS_OPTIONS, 'tls');
}

/**
 * The channel credentials for the `tls` option of RiskBudgetClient: plaintext without it, TLS
 * trusting `ca` (the system's roots without it) with it, presenting `cert` and `key` (mutual TLS)
 * when both are given. Exported, with channelOptions (which carries `serverName`), for stubs built
 * by hand (e.g. of RiskBudgetAdminService).
 */
function channelCredentials(tls) {
  if (tlsObject(tls) === null) {
    return grpc.credentials.createInsecure();
  }
  serverNameOption(tls); // refused here too: both functions refuse the same `tls`
  const [ca, cert, key] = ['ca', 'cert', 'key'].map((name) => pemOption(tls, name));
  if ((cert === null) !== (key === null)) {
    const [given, missing] = cert === null ? ['key', 'cert'] : ['cert', 'key'];
    throw new TypeError(`tls.${given} needs tls.${missing}: mutual TLS takes both (or neither)`);
  }
  try {
    return grpc.credentials.createSsl(ca, key, cert);
  } catch (error) {
    // PEM whose blocks do not parse. (A key that does not belong to its certificate may pass
    // here: the sidecar then refuses the handshake, and every call fails as UNAVAILABLE.)
    throw new Error(`tls: the certificates or key cannot be used: ${error.message}`, { cause: error });
  }
}

/**
 * The channel options RiskBudgetClient uses for the `tls` option: with `serverName`, the name the
 * sidecar's certificate is checked against and sent as SNI instead of the target's host. A stub
 * built by hand takes them beside channelCredentials(tls):
 * `new RiskBudgetAdminService(target, channelCredentials(tls), channelOptions(tls))`.
 */
function channelOptions(tls) {
  const serverName = tlsObject(tls) === null ? null : serverNameOption(tls);
  // grpc-js checks the certificate against this name and sends it as SNI. The calls' :authority
  // stays the target's (no grpc.default_authority): the sidecar does not check it.
  return serverName === null
    ? { ...CHANNEL_OPTIONS }
    : { ...CHANNEL_OPTIONS, 'grpc.ssl_target_name_override': serverName };
}

/** The full name of a side given in any case, with or without its prefix ('buy', 'SIDE_SELL'). */
function sideName(side) {
  const name = typeof side === 'string' ? side.toUpperCase() : '';
  const full = name.startsWith('SIDE_') ? name : `SIDE_${name}`;
  if (!SIDES.includes(full)) {
    const choices = SIDES.map((choice) => `'${choice.slice('SIDE_'.length).toLowerCase()}'`);
    throw new RangeError(`side must be one of ${choices.join(', ')}, got ${String(side)}`);
  }
  return full;
}

/** A protobuf Timestamp from a Date. */
function timestamp(time, argument) {
  const millis = time instanceof Date ? time.getTime() : NaN;
  if (!Number.isFinite(millis)) {
    throw new RangeError(`${argument} must be a valid Date, got ${String(time)}`);
  }
  const seconds = Math.floor(millis / 1000);
  return { seconds: String(seconds), nanos: Math.round((millis - seconds * 1000) * 1e6) };
}

/** The client's own rejection of an order: the sidecar gave no usable answer. */
function rejection(request, message, code = 'REASON_CODE_SIDECAR_UNAVAILABLE') {
  // Through the contract's own encoder and decoder, so that it has every field a reply has.
  return decodeCheckTradeResponse(encodeCheckTradeResponse({
    clientOrderId: request.clientOrderId,
    decision: 'DECISION_REJECTED',
    requestedQuantity: request.quantity,
    approvedQuantity: 0,
    reasons: [{ code, message }],
  }));
}

/** What is wrong with a CheckTrade reply, or null when it is well formed. */
function malformation(request, reply) {
  const approved = reply.approvedQuantity;
  if (!ACCEPTED_DECISIONS.has(reply.decision)) {
    return `decision ${enumName('DECISION', reply.decision)}`;
  }
  // Written so that NaN fails the comparison too.
  if (!(approved >= 0 && approved <= request.quantity)) {
    return `approvedQuantity ${approved} is outside 0 to the requested ${request.quantity}`;
  }
  if (reply.decision === 'DECISION_REJECTED' && approved !== 0) {
    return `a rejection with approvedQuantity ${approved}`;
  }
  if (reply.clientOrderId !== request.clientOrderId) {
    return `the reply is for order ${JSON.stringify(reply.clientOrderId)}`;
  }
  return null;
}

/**
 * Calls the sidecar at `target` ('127.0.0.1:50051', 'unix:/path', or 'host:port' of a sidecar
 * listening with `sidecar.tls`). Without `tls` the channel is plaintext: loopback or a unix
 * socket. With `tls: { ca, cert, key, serverName }` (`ca`, `cert` and `key` each PEM, a Buffer
 * or a string: the contents, not a path) it is TLS: the sidecar's certificate must chain to `ca`
 * (the system's roots when `ca` is left out) and name the target's host, or `serverName` when
 * given (a host name, also sent as SNI: for a target reached by another name, e.g. 127.0.0.1
 * through a tunnel); `cert` and `key` together are the client's own certificate and key, for a
 * sidecar with `sidecar.tls.client_ca_file` (mutual TLS). A `tls` that is not an object, a PEM
 * option that is not a Buffer or string, a `serverName` that is not a string, or `cert` without
 * `key` (or the reverse) throws a TypeError naming it; PEM with no certificate (`ca`, `cert`) or
 * private key (`key`) in it, or a `serverName` that is empty or has whitespace or control
 * characters, a RangeError. A sidecar the client cannot verify (or that refuses the client)
 * fails every call as UNAVAILABLE.
 *
 * `checkTrade` fails closed: it never throws for a failed call and never approves on one.
 * Every other method rejects with a RiskBudgetError when the call fails. `clientToken` is
 * sent on every call (needed when the sidecar has a client token configured; undefined or null:
 * none): one that is not a string throws a TypeError naming it, one that is empty or not
 * printable ASCII without spaces (a newline read from a file) a RangeError; neither message
 * holds the token. `clock()` reads monotonic milliseconds (default `performance.now`; not a
 * function: a TypeError). `checkTradeTimeout` (default 0.25) and `timeout` (default 5) are
 * seconds, more than 0 and at most 86400 (one day): a value that is not a number (such as the
 * string '0.25') is a TypeError naming it, any other a RangeError naming it. An option the client does not have (a misspelling, e.g. `client_token`) is a TypeError naming it
 * (and the option it misspells, if any); so is an unknown key of an order, a tick or `tls`.
 */
class RiskBudgetClient {
  #stub;
  #metadata;
  #checkTradeTimeout;
  #timeout;
  #clock;

  constructor(target, options = {}) {
    const {
      clientToken,
      checkTradeTimeout = DEFAULT_CHECK_TRADE_TIMEOUT,
      timeout = DEFAULT_TIMEOUT,
      clock = () => performance.now(),
      tls,
    } = optionsObject(options, CLIENT_OPTIONS, 'RiskBudgetClient', 'RiskBudgetClient options');
    this.#checkTradeTimeout = positiveSeconds(checkTradeTimeout, 'checkTradeTimeout');
    this.#timeout = positiveSeconds(timeout, 'timeout');
    this.#clock = ofType(clock, 'function', 'clock');
    this.#metadata = new grpc.Metadata();
    if (clientToken !== undefined && clientToken !== null) {
      this.#metadata.set('authorization', bearer(clientToken, 'clientToken'));
    }
    this.#stub = new RiskBudgetService(target, channelCredentials(tls), channelOptions(tls));
  }

  close() {
    this.#stub.close();
  }

  /**
   * Resolves once the channel has connected to the sidecar; rejects after `seconds` (default:
   * `timeout`). `seconds` more than 0 and at most 86400, else a RangeError before waiting.
   */
  waitForReady(seconds = this.#timeout) {
    const deadline = Date.now() + positiveSeconds(seconds, 'seconds') * 1000;
    return new Promise((resolve, reject) => {
      this.#stub.waitForReady(deadline, (error) => (error ? reject(error) : resolve()));
    });
  }

  /**
   * The current budget, of `strategy` and its symbols or (empty) of the whole book. Throws a
   * TypeError, before sending anything, when `strategy` is not a string.
   */
  getBudget(strategy = '') {
    return this.#call('GetBudget', { strategy: ofType(strategy, 'string', 'strategy') }, this.#timeout);
  }

  /**
   * The sidecar's own state, e.g. `lastRecommendationSequence`, and `recommendationLogId`: the
   * log id the recommendation stream names (a feed's `logId` on this sidecar).
   */
  getStatus() {
    return this.#call('GetStatus', {}, this.#timeout);
  }

  /**
   * Send prices: `[{ symbol, price, time }]`, each `symbol` a string, `price` a number and `time`
   * a Date. Throws before sending anything: a TypeError when `ticks` is not an array, a tick is not
   * an object or has another key, or a symbol or price is not of its type, a RangeError for a time
   * that is not a valid Date.
   */
  publishMarketData(ticks) {
    if (!Array.isArray(ticks)) {
      throw new TypeError(`ticks must be an array of { symbol, price, time }, got ${kindOf(ticks)}`);
    }
    const request = {
      ticks: ticks.map((tick) => optionsObject(tick, TICK_FIELDS, 'tick')).map(({ symbol, price, time }) => ({
        symbol: ofType(symbol, 'string', 'tick symbol'),
        price: ofType(price, 'number', 'tick price'),
        time: timestamp(time, 'tick time'),
      })),
    };
    return this.#call('PublishMarketData', request, this.#timeout);
  }

  /**
   * The sidecar's decision on an order `{ clientOrderId, strategy, symbol, side, quantity,
   * limitPrice = 0, dryRun = false }`, or the client's own rejection (reason
   * REASON_CODE_SIDECAR_UNAVAILABLE) when the call fails, the reply is malformed or comes after
   * the deadline; REASON_CODE_INVALID_REQUEST when the sidecar refused the order as malformed
   * (e.g. a NaN or infinite quantity). Rejects only before sending anything: with a TypeError when
   * `clientOrderId`, `strategy` or `symbol` is not a string, `quantity` or `limitPrice` not a
   * number or `dryRun` not a boolean (nothing is converted), or `order` has a key not among these
   * (e.g. `dry_run`, `limit_price`: the message names the option meant), a RangeError for an
   * unknown side.
   *
   * After a timeout the sidecar may still have reserved the order; the reservation lapses at
   * expiry or on ReleaseOrder.
   */
  async checkTrade(order) {
    const {
      clientOrderId, strategy, symbol, side, quantity, limitPrice = 0, dryRun = false,
    } = optionsObject(order, ORDER_FIELDS, 'order');
    const request = {
      clientOrderId: ofType(clientOrderId, 'string', 'clientOrderId'),
      strategy: ofType(strategy, 'string', 'strategy'),
      symbol: ofType(symbol, 'string', 'symbol'),
      side: sideName(side),
      quantity: ofType(quantity, 'number', 'quantity'),
      limitPrice: ofType(limitPrice, 'number', 'limitPrice'),
      dryRun: ofType(dryRun, 'boolean', 'dryRun'),
    };
    const started = this.#clock();
    let reply;
    try {
      reply = await this.#call('CheckTrade', request, this.#checkTradeTimeout);
    } catch (error) {
      const why = error instanceof RiskBudgetError ? `${error.codeName}: ${error.details}` : String(error);
      // A malformed order is the sender's fault, not the sidecar's: a code of its own.
      const malformed = error instanceof RiskBudgetError && error.codeName === 'INVALID_ARGUMENT';
      return rejection(request, `sidecar call failed: ${why}`,
        malformed ? 'REASON_CODE_INVALID_REQUEST' : 'REASON_CODE_SIDECAR_UNAVAILABLE');
    }
    // gRPC keeps deadlines to the millisecond and may hand over a reply that came after a
    // shorter one: an order the client stopped waiting for is never sent.
    const elapsed = this.#clock() - started;
    if (elapsed > this.#checkTradeTimeout * 1000) {
      return rejection(request, 'sidecar reply came after the deadline: DEADLINE_EXCEEDED '
        + `(${elapsed.toFixed(3)} ms > ${(this.#checkTradeTimeout * 1000).toFixed(3)} ms)`);
    }
    const problem = malformation(request, reply);
    return problem === null ? reply : rejection(request, `sidecar reply refused: ${problem}`);
  }

  /**
   * The raw StreamRecommendations call after `afterSequence` (a bigint, a safe integer or a
   * string of digits; anything else throws a RangeError before subscribing) of the log `logId`
   * (a string: the `logId` of the messages `afterSequence` was read from; null, undefined or '',
   * the default: not checked; anything else throws a TypeError before subscribing): a readable
   * stream of `{ recommendations, logId }` batches. If the sidecar's log is another (a new or
   * replaced state file, the memory store restarted), the stream fails with OUT_OF_RANGE.
   * `options.fromLatest` (a boolean, default false; anything else throws a TypeError before
   * subscribing), as the Python client's `from_latest`: only recommendations made from now on,
   * the sidecar ignoring `afterSequence` and `logId`. RecommendationFeed builds on it.
   */
  streamRecommendations(afterSequence, logId = '', options = {}) {
    const { fromLatest = false } = optionsObject(options, STREAM_OPTIONS, 'streamRecommendations',
      'streamRecommendations options');
    const request = {
      afterSequence: String(sequenceNumber(afterSequence, 'afterSequence')),
      logId: logId === null || logId === undefined ? '' : ofType(logId, 'string', 'logId'),
      fromLatest: ofType(fromLatest, 'boolean', 'fromLatest'),
    };
    return this.#stub.StreamRecommendations(request, this.#metadata.clone());
  }

  #call(method, request, timeoutSeconds) {
    return new Promise((resolve, reject) => {
      const options = { deadline: Date.now() + timeoutSeconds * 1000 };
      this.#stub[method](request, this.#metadata.clone(), options, (error, reply) => {
        if (error) {
          reject(new RiskBudgetError(method, error.code, error.details));
        } else {
          resolve(reply);
        }
      });
    });
  }
}

module.exports = {
  DEFAULT_CHECK_TRADE_TIMEOUT,
  DEFAULT_TIMEOUT,
  RiskBudgetClient,
  RiskBudgetError,
  channelCredentials,
  channelOptions,
  kindOf,
  ofType,
  optionsObject,
  positiveSeconds,
  sequenceNumber,
  statusName,
};
