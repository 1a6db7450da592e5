'use strict';
/**
 * A recommendation feed that survives disconnects: how a rebalancer consumes
 * StreamRecommendations, as the Python client's RecommendationFeed does.
 *
 * The sidecar keeps a log of recommendations with strictly increasing sequence numbers (never
 * reused, also across restarts, as long as the state file is kept); a subscriber asks for
 * everything after the last sequence it handled and gets it in order, then live ones. The log has
 * an identity, its log id, which every stream message names: a sidecar on a new or replaced state
 * file (or the memory store, restarted) starts another log, numbered from 1 again. The feed builds
 * on that:
 *
 * - `for await (const recommendation of feed)` yields recommendations one at a time, in
 *   sequence order, and records the sequence of each one it yields in `lastSequence`: once
 *   the loop asks for the next, the one before counts as handled;
 * - when the stream breaks (UNAVAILABLE, CANCELLED, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED
 *   because the subscriber fell behind, a refused connection, or the server ending the stream)
 *   it waits (exponential backoff with jitter) and subscribes again after `lastSequence`, so
 *   nothing is missed and nothing is handled twice;
 * - a recommendation at or below `lastSequence` is dropped (counted in `duplicatesDropped`);
 *   one that skips a sequence throws FeedGapError: the feed never skips silently;
 * - every subscription names the log `lastSequence` counts in (`logId`: the one given, else the
 *   one GetStatus named before the first subscription, else the one the first stream message
 *   named); the sidecar refuses a sequence of another log with OUT_OF_RANGE, and a message naming
 *   another log is never yielded either;
 * - when the sidecar refuses its resume point (OUT_OF_RANGE: trimmed from the log, of another log,
 *   or ahead of the newest recommendation) it throws RecommendationsLost, its message naming
 *   which; any other failure (UNAUTHENTICATED, UNIMPLEMENTED, ...) throws RiskBudgetError. Either
 *   ends the feed.
 *
 * Checkpointing: persist `recommendation.sequence` (or `feed.lastSequence`) after handling each
 * one, with `feed.logId`, and pass them back as `afterSequence` and `logId` on the next start. A
 * checkpoint of an old log then throws RecommendationsLost on a sidecar with a new one, instead of
 * silently skipping the new log's recommendations up to the checkpoint's sequence. A feed started
 * without a log id but after a sequence (`afterSequence` > 0: a checkpoint from before log ids, or
 * a live-only start after GetStatus `lastRecommendationSequence`) asks GetStatus for the sidecar's
 * log id just before its first subscription and takes that as the log its `afterSequence` counts
 * in, so a sidecar restarted on a new state file between then and the first recommendation is
 * caught rather than resumed in its new log; if GetStatus fails (UNAVAILABLE, an older sidecar
 * naming no log id, ...) the feed subscribes unchecked, as before. From `afterSequence` 0
 * (everything from the start) it needs no log id. Either way a feed with no log id yet learns it
 * from the first message and checks it from then on.
 */

const grpc = require('@grpc/grpc-js');
const {
  RiskBudgetClient, RiskBudgetError, kindOf, ofType, optionsObject, positiveSeconds, sequenceNumber, statusName,
} = require('./client');

/** The options of RecommendationFeed. */
const FEED_OPTIONS = [
  'afterSequence', 'logId', 'fromLatest', 'initialBackoff', 'backoffMultiplier', 'maxBackoff', 'jitter', 'maxReconnects', 'onDisconnect',
];

/** Trailing metadata of OUT_OF_RANGE: the oldest sequence the sidecar still keeps. */
const OLDEST_SEQUENCE_METADATA = 'riskbudget-oldest-sequence';

/** Trailing metadata of RESOURCE_EXHAUSTED and of a shutdown: the last sequence sent. */
const RESUME_AFTER_METADATA = 'riskbudget-resume-after';

/** Statuses after which the feed subscribes again (a refused connection is UNAVAILABLE). */
const RECONNECT_CODES = new Set([
  grpc.status.UNAVAILABLE,
  grpc.status.CANCELLED,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.RESOURCE_EXHAUSTED,
]);

const OLDEST_IN_DETAILS = /oldest available is (\d+)/;
/** The sidecar's (and the feed's own) words for a resume point of another log. */
const OTHER_LOG_IN_DETAILS = /counts in recommendation log|the stream is of recommendation log/;
/** The sidecar's words for a resume point past its newest recommendation (which it names). */
const AHEAD_IN_DETAILS = /is ahead of the newest recommendation(?: (\d+))?/;
/** The sidecar's words for a resume point trimmed from the log. */
const TRIMMED_IN_DETAILS = /(?:are|is) no longer kept/;
const METHOD = 'StreamRecommendations';

/** The feed stopped and cannot go on by itself. */
class FeedError extends Error {
  constructor(message) {
    super(message);
    this.name = this.constructor.name;
  }
}

/**
 * A recommendation arrived that skips sequences: those in between were never received. The
 * sidecar promises no gaps, so this is a fault to report; the feed stops rather than skip.
 */
class FeedGapError extends FeedError {
  constructor(lastSequence, received) {
    super(`recommendation ${received} arrived after ${lastSequence}: sequences `
      + `${lastSequence + 1n} to ${received - 1n} are missing; the feed stops rather than skip them`);
    this.lastSequence = lastSequence;
    this.received = received;
  }
}

/**
 * The sidecar refused to resume after `afterSequence` (OUT_OF_RANGE): the recommendations after it
 * are no longer kept (trimmed from its log), or `afterSequence` counts in another log than the
 * sidecar's, or it is ahead of the sidecar's newest recommendation; the message starts with
 * which, from the sidecar's `details`. The oldest it has is `oldestAvailable` (null if it did not
 * say). Resync your state from the sidecar (GetBudget), then start a new feed after
 * `resumeAfter`, with the sidecar's log id (GetStatus `recommendationLogId`) or none.
 */
class RecommendationsLost extends FeedError {
  constructor(afterSequence, oldestAvailable, details) {
    super(`${lostCause(afterSequence, oldestAvailable, details)}; resync your state and subscribe again: ${details}`);
    this.afterSequence = afterSequence;
    this.oldestAvailable = oldestAvailable;
    this.details = details;
  }

  /** The afterSequence that replays everything still kept, or null. */
  get resumeAfter() {
    return this.oldestAvailable === null ? null : (this.oldestAvailable > 0n ? this.oldestAvailable - 1n : 0n);
  }
}

/**
 * The feed gave up: `maxReconnects` reconnects in a row brought no new recommendation. `code`
 * and `details` are those of the last failure (OK when the server ended the stream).
 */
class FeedDisconnected extends FeedError {
  constructor(code, details, reconnects, lastSequence) {
    super(`${METHOD} gave up after ${reconnects} reconnects without a new recommendation `
      + `(last sequence ${lastSequence}): ${statusName(code)}: ${details}`);
    this.code = code;
    this.details = details;
    this.reconnects = reconnects;
    this.lastSequence = lastSequence;
  }
}

/**
 * Why the feed cannot resume after `afterSequence`, as the head of RecommendationsLost's message:
 * from the sidecar's OUT_OF_RANGE details (or the feed's own, for a stream of another log), else
 * from the numbers. Only a resume point older than the oldest kept is said to be "no longer kept".
 */
function lostCause(afterSequence, oldestAvailable, details) {
  const oldest = oldestAvailable ?? 'unknown';
  if (OTHER_LOG_IN_DETAILS.test(details)) {
    return `sequence ${afterSequence} counts in another recommendation log than the sidecar's `
      + '(a new or replaced state file, or the memory store restarted)';
  }
  const ahead = AHEAD_IN_DETAILS.exec(details);
  if (ahead !== null) {
    const newest = ahead[1] === undefined ? 'newest recommendation'
      : (ahead[1] === '0' ? 'log, which holds no recommendation' : `newest recommendation, ${ahead[1]}`);
    return `sequence ${afterSequence} is ahead of the sidecar's ${newest} (a checkpoint of another sidecar or of a lost log)`;
  }
  if (TRIMMED_IN_DETAILS.test(details) || (oldestAvailable !== null && afterSequence + 1n < oldestAvailable)) {
    return `recommendations after ${afterSequence} are no longer kept (oldest available: ${oldest})`;
  }
  return `the sidecar refused to resume after ${afterSequence} as out of range (oldest available: ${oldest})`;
}

/** The first value of `key` in gRPC metadata as a bigint, or null. */
function sequenceInMetadata(metadata, key) {
  const [value] = metadata ? metadata.get(key) : [];
  return typeof value === 'string' && /^\d+$/.test(value.trim()) ? BigInt(value.trim()) : null;
}

/** Everything the feed decides (what to ask for, what to pass on, whether and when to reconnect). No I/O. */
class FeedPolicy {
  constructor(afterSequence, {
    logId, fromLatest = false, initialBackoff, backoffMultiplier, maxBackoff, jitter, maxReconnects, onDisconnect,
  }) {
    this.lastSequence = sequenceNumber(afterSequence, 'afterSequence');
    // '' (as the contract's default): not known yet, so not checked.
    this.logId = logId === null || logId === undefined ? '' : ofType(logId, 'string', 'logId');
    // Until the first subscription: start after the sidecar's newest recommendation (GetStatus).
    this.fromLatest = ofType(fromLatest, 'boolean', 'fromLatest');
    if (this.fromLatest && (this.lastSequence !== 0n || this.logId !== '')) {
      throw new TypeError('fromLatest starts after the sidecar\'s newest recommendation: it takes no afterSequence '
        + `or logId (a checkpoint to resume from), got afterSequence ${this.lastSequence}, logId ${JSON.stringify(this.logId)}`);
    }
    this.initialBackoff = positiveSeconds(initialBackoff, 'initialBackoff');
    if (!(ofType(backoffMultiplier, 'number', 'backoffMultiplier') >= 1 && Number.isFinite(backoffMultiplier))) {
      throw new RangeError(`backoffMultiplier must be 1 or more, got ${String(backoffMultiplier)}`);
    }
    this.backoffMultiplier = backoffMultiplier;
    this.maxBackoff = positiveSeconds(maxBackoff, 'maxBackoff');
    if (this.maxBackoff < this.initialBackoff) {
      throw new RangeError(`maxBackoff must be seconds, at least initialBackoff (${this.initialBackoff}), `
        + `got ${this.maxBackoff}`);
    }
    if (!(ofType(jitter, 'number', 'jitter') >= 0 && jitter < 1)) {
      throw new RangeError(`jitter must be a fraction from 0 to below 1, got ${String(jitter)}`);
    }
    this.jitter = jitter;
    if (maxReconnects !== null) {
      ofType(maxReconnects, 'number', 'maxReconnects');
    }
    if (!(maxReconnects === null || (Number.isSafeInteger(maxReconnects) && maxReconnects >= 0))) {
      throw new RangeError(`maxReconnects must be null or a whole number, 0 or more, got ${String(maxReconnects)}`);
    }
    this.maxReconnects = maxReconnects;
    this.onDisconnect = onDisconnect === null ? null : ofType(onDisconnect, 'function', 'onDisconnect');
    this.reconnects = 0;
    this.duplicatesDropped = 0;
    this.backoff = this.initialBackoff;
  }

  /**
   * Before the first subscription: the log id GetStatus named (`status.recommendationLogId`)
   * becomes the log `lastSequence` counts in, if the feed has none and `lastSequence` is past 0
   * (from 0, every log's recommendations are wanted from the start). Whether the feed asks.
   */
  wantsStatusLogId() {
    return this.fromLatest || (this.logId === '' && this.lastSequence > 0n);
  }

  /**
   * Takes the log id of a GetStatus reply (see wantsStatusLogId); '' or none leaves it unchecked.
   * A feed `fromLatest` also takes the newest sequence (`lastRecommendationSequence`) as the one
   * to resume after: the next recommendation is the first it yields, and a disconnect before it
   * resumes there, with no gap.
   */
  statusReceived(status) {
    const logId = status?.recommendationLogId;
    if (this.fromLatest) {
      this.lastSequence = sequenceNumber(status?.lastRecommendationSequence ?? 0, 'lastRecommendationSequence');
      this.logId = typeof logId === 'string' ? logId : '';
      this.fromLatest = false;
    } else if (this.wantsStatusLogId() && typeof logId === 'string') {
      this.logId = logId;
    }
  }

  /**
   * The recommendations of a stream message, once its log is known to be the feed's: the first
   * message names the log of a feed that had none; one naming another log throws
   * RecommendationsLost (its sequences mean nothing against `lastSequence`).
   */
  received(message) {
    if (this.logId === '') {
      this.logId = message.logId;
    } else if (message.logId !== '' && message.logId !== this.logId) {
      throw new RecommendationsLost(this.lastSequence, null, `the stream is of recommendation log `
        + `${JSON.stringify(message.logId)}, the feed's sequences count in ${JSON.stringify(this.logId)}`);
    }
    return message.recommendations;
  }

  /** Whether to yield `recommendation` now; if so, it is the caller's from here on. */
  take(recommendation) {
    const sequence = BigInt(recommendation.sequence);
    if (sequence <= this.lastSequence) {
      this.duplicatesDropped += 1;
      return false;
    }
    if (sequence !== this.lastSequence + 1n) {
      throw new FeedGapError(this.lastSequence, sequence);
    }
    this.lastSequence = sequence;
    this.reconnects = 0;
    this.backoff = this.initialBackoff;
    return true;
  }

  /** Seconds to wait before subscribing again after the stream ended with `status`; throws when the feed must stop. */
  disconnected({ code, details, metadata }) {
    if (code === grpc.status.OUT_OF_RANGE) {
      const match = OLDEST_IN_DETAILS.exec(details);
      const oldest = sequenceInMetadata(metadata, OLDEST_SEQUENCE_METADATA) ?? (match ? BigInt(match[1]) : null);
      throw new RecommendationsLost(this.lastSequence, oldest, details);
    }
    if (code !== grpc.status.OK && !RECONNECT_CODES.has(code)) {
      throw new RiskBudgetError(METHOD, code, details);
    }
    if (this.maxReconnects !== null && this.reconnects >= this.maxReconnects) {
      throw new FeedDisconnected(code, details, this.reconnects, this.lastSequence);
    }
    this.reconnects += 1;
    const delay = this.backoff * (1 - this.jitter * Math.random());
    this.backoff = Math.min(this.backoff * this.backoffMultiplier, this.maxBackoff);
    this.onDisconnect?.({
      code,
      codeName: statusName(code),
      details,
      lastSequence: this.lastSequence,
      serverResumeAfter: sequenceInMetadata(metadata, RESUME_AFTER_METADATA),
      attempt: this.reconnects,
      delay,
    });
    return delay;
  }
}

/**
 * Recommendations after `afterSequence` (of the log `logId`, when given), then live ones, in
 * order, across disconnects and sidecar restarts, read through `client`: a RiskBudgetClient (left
 * open), or the sidecar's target ('127.0.0.1:50051', as Python's RecommendationFeed takes: the
 * feed's own plaintext client without a token, closed with the feed); anything else is a
 * TypeError naming it. See the module's documentation. `fromLatest: true` (a boolean; not with
 * `afterSequence` or `logId`, a TypeError) starts after the sidecar's newest recommendation and
 * in its log, both from GetStatus just before the first subscription (a GetStatus the sidecar
 * refuses throws RiskBudgetError), so the first yielded is the next one made and a disconnect
 * before it resumes with no gap. `logId` is the log id a feed reported with the
 * checkpoint (`feed.logId`); null (the default), undefined or '': with `afterSequence` past 0 the
 * log id GetStatus names just before the first subscription (unchecked if GetStatus fails), else
 * not checked until the first message names one. Reconnects wait `initialBackoff` seconds, then
 * `backoffMultiplier` times more each time up to `maxBackoff`, each wait shortened by a random
 * fraction up to `jitter`; a new recommendation resets the wait. After `maxReconnects` reconnects in a row without a new
 * recommendation it throws FeedDisconnected (null: never gives up). `onDisconnect(event)` is
 * told of each reconnect: `{ code, codeName, details, lastSequence, serverResumeAfter,
 * attempt, delay }`. An option out of its range (`initialBackoff` and `maxBackoff`: more than 0,
 * at most 86400 seconds, `maxBackoff` at least `initialBackoff`, as in Python) throws a RangeError
 * naming it; a numeric option that is not a number (such as '2'), an `onDisconnect` that is
 * neither null nor a function, a `logId` that is neither null nor a string, or an option the feed
 * does not have (e.g. `after_sequence`: the message suggests `afterSequence`), a TypeError.
 */
class RecommendationFeed {
  #client;
  #ownsClient;
  #policy;
  #call = null;
  #closed = false;
  #wake = null;
  #recommendations = null;

  constructor(client, options = {}) {
    if (!(client instanceof RiskBudgetClient || typeof client === 'string')) {
      throw new TypeError('client must be a RiskBudgetClient (or the sidecar\'s target, such as '
        + `'127.0.0.1:50051', for a plaintext client of the feed's own), got ${kindOf(client)}`);
    }
    const {
      afterSequence = 0n,
      logId = null,
      fromLatest = false,
      initialBackoff = 0.1,
      backoffMultiplier = 2,
      maxBackoff = 5,
      jitter = 0.2,
      maxReconnects = null,
      onDisconnect = null,
    } = optionsObject(options, FEED_OPTIONS, 'RecommendationFeed', 'RecommendationFeed options');
    this.#policy = new FeedPolicy(afterSequence, {
      logId, fromLatest, initialBackoff, backoffMultiplier, maxBackoff, jitter, maxReconnects, onDisconnect,
    });
    // A target: the feed's own client (no token, plaintext), closed with the feed, as in Python.
    this.#ownsClient = typeof client === 'string';
    this.#client = this.#ownsClient ? new RiskBudgetClient(client) : client;
  }

  /** The sequence of the last recommendation yielded (afterSequence before any): the feed resumes after it. */
  get lastSequence() {
    return this.#policy.lastSequence;
  }

  /**
   * The log `lastSequence` counts in: the `logId` given, else the one GetStatus named before the
   * first subscription (with `afterSequence` past 0), else the one the first stream message named
   * ('' until then). Keep it with the checkpoint and pass it back as `logId`.
   */
  get logId() {
    return this.#policy.logId;
  }

  /** Reconnects since the last new recommendation. */
  get reconnects() {
    return this.#policy.reconnects;
  }

  /** Recommendations dropped because the feed had already yielded them. */
  get duplicatesDropped() {
    return this.#policy.duplicatesDropped;
  }

  get closed() {
    return this.#closed;
  }

  /**
   * The feed's one iterator. Leaving a `for await` loop over the feed (break, return, throw)
   * closes it; to read some recommendations now and more later, call `next()` on this iterator.
   */
  [Symbol.asyncIterator]() {
    this.#recommendations ??= this.#read();
    return this.#recommendations;
  }

  async* #read() {
    try {
      while (!this.#closed && !(await this.#askStatusLogId())) {
        // the sidecar is away: a subscription now could resume in a log replaced meanwhile
      }
      while (!this.#closed) {
        const call = this.#client.streamRecommendations(this.#policy.lastSequence, this.#policy.logId);
        this.#call = call;
        let status = { code: grpc.status.OK, details: 'the stream ended', metadata: null };
        try {
          for await (const batch of call) {
            for (const recommendation of this.#policy.received(batch)) {
              if (this.#policy.take(recommendation)) {
                yield recommendation;
              }
              if (this.#closed) {
                return;
              }
            }
          }
        } catch (error) {
          if (this.#closed) {
            return;
          }
          if (!(error instanceof Error && 'code' in error && 'metadata' in error)) {
            throw error; // not the call's status: a FeedGapError, RecommendationsLost of another log, or a fault of the client itself
          }
          status = error;
        } finally {
          this.#call = null;
          call.cancel();
        }
        await this.#sleep(this.#policy.disconnected(status));
      }
    } finally {
      this.close();
    }
  }

  /**
   * Before the first subscription of a feed after a sequence with no log id: the sidecar's log id
   * from GetStatus (see FeedPolicy.wantsStatusLogId). True once settled: asked, or the sidecar
   * will not tell (UNIMPLEMENTED, refused: the feed goes on unchecked, as before); false after a
   * failure that reconnecting may cure (UNAVAILABLE, ...), once the backoff has passed, to ask
   * again. close() cuts either wait short.
   */
  async #askStatusLogId() {
    if (this.#closed || !this.#policy.wantsStatusLogId()) {
      return true;
    }
    let status;
    try {
      status = await new Promise((resolve, reject) => {
        this.#wake = () => resolve(null);
        this.#client.getStatus().then(resolve, reject);
      });
    } catch (error) {
      if (!(error instanceof RiskBudgetError)) {
        throw error;
      }
      if (!RECONNECT_CODES.has(error.code)) {
        if (this.#policy.fromLatest) {
          throw error; // without the newest sequence the feed cannot start from it
        }
        return true;
      }
      this.#wake = null;
      await this.#sleep(this.#policy.disconnected({ code: error.code, details: error.details, metadata: null }));
      return false;
    } finally {
      this.#wake = null;
    }
    if (!this.#closed) {
      this.#policy.statusReceived(status);
    }
    return true;
  }

  #sleep(seconds) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, seconds * 1000);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Stop: the current stream is cancelled, a wait is cut short and iteration ends. Safe to call twice. */
  close() {
    const already = this.#closed;
    this.#closed = true;
    this.#call?.cancel();
    this.#wake?.();
    if (this.#ownsClient && !already) {
      this.#client.close();
    }
  }
}

module.exports = {
  FeedDisconnected,
  FeedError,
  FeedGapError,
  OLDEST_SEQUENCE_METADATA,
  RECONNECT_CODES,
  RESUME_AFTER_METADATA,
  RecommendationFeed,
  RecommendationsLost,
};
