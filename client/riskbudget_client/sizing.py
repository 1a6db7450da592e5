"""Position sizing from the risk budget: the seed's integration point,
`min(calculated_size, max_size_from_budget)`.

Sizes are unsigned quantities in units of the symbol; the side is separate, as
in the contract. The cap is taken from a Budget as returned by `get_budget`.
It ignores what is already held or reserved, the book's total leverage limit,
the trading state, lot sizes and `limits.max_order_notional`: CheckTrade
enforces those before the order is sent.
"""

from __future__ import annotations

import math

from riskbudget.v1 import types_pb2
from riskbudget_client._common import number


def max_size_from_budget(
    budget: types_pb2.Budget, strategy: str, symbol: str, price: float, *, limit_price: float | None = None
) -> float:
    """The largest quantity of `symbol` that `strategy` may hold at `price` (the symbol's
    `checked_price` in the budget, the price checks use; its `last_price` is lower while a tick is
    held back, and sized at it an order comes back resized):
    the smaller of the strategy's max_gross_exposure and the symbol's max_position_notional,
    over the price CheckTrade values the order at, the larger of `limit_price` (if any) and
    `price`; 0 for a restricted symbol (only reducing orders pass)."""
    price = float(number(price, "price"))  # a bool would be taken as 1.0; a Decimal works too
    if not (math.isfinite(price) and price > 0):
        raise ValueError(f"price must be positive and finite, got {price!r}")
    if limit_price is not None:
        limit_price = float(number(limit_price, "limit_price"))
        if not (math.isfinite(limit_price) and limit_price >= 0):
            raise ValueError(f"limit_price must be finite, 0 or more (0: none), got {limit_price!r}")
        price = max(price, limit_price)
    strategy_budget = _strategy_budget(budget, strategy)
    if all(weight.symbol != symbol for weight in strategy_budget.symbols):
        raise ValueError(f"symbol {symbol!r} is not in the universe of strategy {strategy!r}")
    symbol_budget = _symbol_budget(budget, symbol)
    if symbol_budget.restricted:
        return 0.0
    notional = min(strategy_budget.max_gross_exposure, symbol_budget.max_position_notional)
    return notional / price


def position_size(
    calculated_size: float,
    budget: types_pb2.Budget,
    strategy: str,
    symbol: str,
    price: float,
    *,
    limit_price: float | None = None,
) -> float:
    """`calculated_size`, cut down to what the budget allows at `price`, the symbol's
    `checked_price` in the budget (with the order's `limit_price`, at the larger of the two, as
    CheckTrade values it)."""
    calculated_size = float(number(calculated_size, "calculated_size"))
    if not (math.isfinite(calculated_size) and calculated_size >= 0):
        raise ValueError(
            f"calculated_size must be a finite quantity, 0 or more, got {calculated_size!r}"
        )
    return min(calculated_size, max_size_from_budget(budget, strategy, symbol, price, limit_price=limit_price))


def _strategy_budget(budget: types_pb2.Budget, strategy: str) -> types_pb2.StrategyBudget:
    for strategy_budget in budget.strategies:
        if strategy_budget.strategy == strategy:
            return strategy_budget
    raise ValueError(f"strategy {strategy!r} is not in the budget (version {budget.ref.version})")


def _symbol_budget(budget: types_pb2.Budget, symbol: str) -> types_pb2.SymbolBudget:
    for symbol_budget in budget.symbols:
        if symbol_budget.symbol == symbol:
            return symbol_budget
    raise ValueError(f"symbol {symbol!r} is not in the budget (version {budget.ref.version})")
