'use strict';
/** The Node.js client of the riskbudget sidecar. */

const {
  DEFAULT_CHECK_TRADE_TIMEOUT,
  DEFAULT_TIMEOUT,
  RiskBudgetClient,
  RiskBudgetError,
  channelCredentials,
  channelOptions,
} = require('./client');
const { RiskBudgetAdminService, RiskBudgetService } = require('./contract');
const {
  FeedDisconnected,
  FeedError,
  FeedGapError,
  RecommendationFeed,
  RecommendationsLost,
} = require('./feed');
const { PreTradeGate, gateResult } = require('./gate');

module.exports = {
  DEFAULT_CHECK_TRADE_TIMEOUT,
  DEFAULT_TIMEOUT,
  FeedDisconnected,
  FeedError,
  FeedGapError,
  PreTradeGate,
  RecommendationFeed,
  RecommendationsLost,
  RiskBudgetAdminService,
  RiskBudgetClient,
  RiskBudgetError,
  RiskBudgetService,
  channelCredentials,
  channelOptions,
  gateResult,
};
