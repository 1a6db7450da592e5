"""A fail-closed pre-trade gate: the trading engine sends an order only when
the gate allows it, and only the quantity the gate gives."""

from __future__ import annotations

import math
from dataclasses import dataclass

from riskbudget.v1 import risk_budget_service_pb2 as service_pb2
from riskbudget.v1 import types_pb2
from riskbudget_client._common import enum_name
from riskbudget_client.aio import AsyncRiskBudgetClient
from riskbudget_client.sync import RiskBudgetClient

_ALLOWING_DECISIONS = frozenset({types_pb2.DECISION_APPROVED, types_pb2.DECISION_RESIZED})


@dataclass(frozen=True, slots=True)
class GateResult:
    """Whether an order may be sent, and how much of it."""

    allowed: bool
    quantity: float
    """The quantity to send; 0 when not allowed."""
    decision: types_pb2.Decision
    reasons: tuple[tuple[str, str], ...]
    """(reason code name, message) for every rule that bound or rejected the order."""
    response: service_pb2.CheckTradeResponse

    @classmethod
    def from_response(cls, response: service_pb2.CheckTradeResponse) -> GateResult:
        quantity = response.approved_quantity
        allowed = (
            response.decision in _ALLOWING_DECISIONS and math.isfinite(quantity) and quantity > 0
        )
        return cls(
            allowed=allowed,
            quantity=quantity if allowed else 0.0,
            decision=response.decision,
            reasons=tuple(
                (enum_name(types_pb2.ReasonCode, reason.code), reason.message)
                for reason in response.reasons
            ),
            response=response,
        )


class PreTradeGate:
    """Checks each order with the sidecar before it is sent."""

    def __init__(self, client: RiskBudgetClient) -> None:
        self._client = client

    def check(
        self,
        order_id: str,
        strategy: str,
        symbol: str,
        side: str | int,
        quantity: float,
        limit_price: float = 0.0,
    ) -> GateResult:
        response = self._client.check_trade(
            order_id, strategy, symbol, side, quantity, limit_price=limit_price
        )
        return GateResult.from_response(response)


class AsyncPreTradeGate:
    """Checks each order with the sidecar before it is sent, in asyncio code."""

    def __init__(self, client: AsyncRiskBudgetClient) -> None:
        self._client = client

    async def check(
        self,
        order_id: str,
        strategy: str,
        symbol: str,
        side: str | int,
        quantity: float,
        limit_price: float = 0.0,
    ) -> GateResult:
        response = await self._client.check_trade(
            order_id, strategy, symbol, side, quantity, limit_price=limit_price
        )
        return GateResult.from_response(response)
