"""Python client of the riskbudget sidecar: sync and asyncio clients that fail
closed on CheckTrade, position sizing from the budget, a pre-trade gate and a
recommendation feed that resumes across disconnects."""

from riskbudget_client._common import (
    DEFAULT_CHECK_TRADE_TIMEOUT,
    DEFAULT_TIMEOUT,
    RiskBudgetError,
)
from riskbudget_client.aio import AsyncRiskBudgetClient
from riskbudget_client.feed import (
    AsyncRecommendationFeed,
    Disconnect,
    FeedDisconnected,
    FeedError,
    FeedGapError,
    RecommendationFeed,
    RecommendationsLost,
)
from riskbudget_client.gate import AsyncPreTradeGate, GateResult, PreTradeGate
from riskbudget_client.sizing import max_size_from_budget, position_size
from riskbudget_client.sync import RiskBudgetClient

__all__ = [
    "DEFAULT_CHECK_TRADE_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "AsyncPreTradeGate",
    "AsyncRecommendationFeed",
    "AsyncRiskBudgetClient",
    "Disconnect",
    "FeedDisconnected",
    "FeedError",
    "FeedGapError",
    "GateResult",
    "PreTradeGate",
    "RecommendationFeed",
    "RecommendationsLost",
    "RiskBudgetClient",
    "RiskBudgetError",
    "max_size_from_budget",
    "position_size",
]
