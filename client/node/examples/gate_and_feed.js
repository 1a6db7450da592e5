#!/usr/bin/env node
'use strict';
/**
 * A trading process and a rebalancer in a few lines: ask the pre-trade gate whether an order
 * may be sent (and how much of it), then follow the recommendation feed.
 *
 *   node examples/gate_and_feed.js --target 127.0.0.1:50051 \
 *     --strategy equity_momentum --symbol SPY --side buy --quantity 500 --follow 3
 *
 * --follow N stops after N recommendations (0, the default: until Ctrl-C); --after SEQ resumes
 * after a checkpointed sequence (default: only new ones), --log-id ID names the log it counts in
 * (the feed's `logId` when SEQ was handled: a sequence of another log, e.g. of a replaced state
 * file, ends the feed with RecommendationsLost instead of skipping). The client token, if the
 * sidecar wants one, comes from RISKBUDGET_CLIENT_TOKEN. Exits 0 when the order may be sent, 3
 * when not, 2 on a usage error (an unknown option, or a --follow that is not a whole number)
 * before sending anything.
 */

const { parseArgs } = require('node:util');
const { PreTradeGate, RecommendationFeed, RiskBudgetClient } = require('..');

const USAGE = 'usage: gate_and_feed.js [--target HOST:PORT] [--strategy NAME] [--symbol SYMBOL] [--side buy|sell] '
  + '[--quantity N] [--follow N] [--after SEQ] [--log-id ID]';

/** The command line's options, or null after reporting a usage error (exit status 2). */
function parse() {
  let args;
  try {
    ({ values: args } = parseArgs({
      options: {
        target: { type: 'string', default: '127.0.0.1:50051' },
        strategy: { type: 'string', default: 'equity_momentum' },
        symbol: { type: 'string', default: 'SPY' },
        side: { type: 'string', default: 'buy' },
        quantity: { type: 'string', default: '100' },
        follow: { type: 'string', default: '0' },
        after: { type: 'string' },
        'log-id': { type: 'string' },
      },
    }));
  } catch (error) {
    return usageError(error.message);
  }
  // Number('abc') is NaN, which no count of recommendations ever equals: the feed would never stop.
  if (!/^\d+$/.test(args.follow)) {
    return usageError(`--follow must be a whole number of recommendations, 0 or more, got ${JSON.stringify(args.follow)}`);
  }
  return args;
}

function usageError(message) {
  console.error(`${message}\n${USAGE}`);
  process.exitCode = 2;
  return null;
}

const args = parse();

async function main() {
  const client = new RiskBudgetClient(args.target, { clientToken: process.env.RISKBUDGET_CLIENT_TOKEN || null });
  try {
    const result = await new PreTradeGate(client).check({
      clientOrderId: `example-${Date.now()}`,
      strategy: args.strategy,
      symbol: args.symbol,
      side: args.side,
      quantity: Number(args.quantity),
    });
    console.log(`${result.decision}: ${result.allowed ? `send ${result.quantity}` : 'do not send'}`);
    for (const { code, message } of result.reasons) {
      console.log(`  ${code}: ${message}`);
    }
    await follow(client, Number(args.follow));
    return result.allowed ? 0 : 3;
  } finally {
    client.close();
  }
}

async function follow(client, count) {
  // Without a checkpoint: from the sidecar's newest, in its log.
  const status = args.after === undefined ? await client.getStatus() : null;
  const afterSequence = args.after ?? status.lastRecommendationSequence;
  const logId = args['log-id'] ?? status?.recommendationLogId ?? null;
  const feed = new RecommendationFeed(client, { afterSequence, logId });
  process.once('SIGINT', () => feed.close());
  let received = 0;
  for await (const recommendation of feed) {
    const triggers = recommendation.triggers.map((trigger) => trigger.replace('RECOMMENDATION_TRIGGER_', ''));
    console.log(`recommendation ${recommendation.sequence} [${triggers.join(', ')}] ${recommendation.reason}: `
      + `${recommendation.targetAllocation.length} target weights`);
    received += 1;
    if (received === count) {
      break; // leaving the loop closes the feed; persist feed.logId and recommendation.sequence to resume later
    }
  }
}

if (args !== null) {
  main().then((code) => { process.exitCode = code; }, (error) => {
    console.error(error.message);
    process.exitCode = 1;
  });
}
