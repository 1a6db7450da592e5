"""The pre-trade check: approve, resize or reject an order against the budget.

First the gates, in this order, each of which rejects alone because nothing
else can be judged without it: a valid quantity, a known strategy and symbol, a
budget, a usable limit price, a fresh last price.

Then the rules. Each gives, in closed form, the largest quantity it allows on
its own (its cap); the order gets the smallest cap, rounded down to whole lots,
and every rule whose cap is below the request is listed as a reason. The same
computation with an unbounded request is `max_quantity`, the sizing answer, so
`evaluate` of a huge order approves exactly `max_quantity`.

Conventions:

- Reducing: an order reduces exposure when it only brings the strategy's
  position towards zero, counting the strategy's orders already in flight in
  the same direction (long 100 with a sell of 30 reserved can close 70 more).
  The closing quantity is what may pass a halt, a reducing-only state or a
  restriction; an order crossing through zero is cut to it. Reducing orders
  skip the strategy and total limits, not the collar, the maximum order
  notional or the gates. The symbol limit bounds the position summed over
  strategies, so there an order counts as reducing only if it brings that sum
  towards zero: one strategy closing a short while another is long may take the
  symbol past its limit, and is cut like any other order.
- Reference price: max(limit price, last price) for a limit order, on either
  side, else the last price. A buy limit above the market fills near the market
  and one below it only once the price has fallen; a sell limit above the
  market fills only once the price has risen to it. The larger of the two is
  thus never below the price at which the position could be marked, and the
  collar bounds it at (1 + collar) x last.
- Worst case: a position's exposure is the largest absolute position reachable
  if every open reservation in one direction fills (SymbolExposure.worst_case_abs).
  The strategy's exposure in the order's symbol is valued at the reference
  price; the rest of the book at the book's marks (Book.gross_besides), which
  the owner keeps at last live prices, stale or not. While another symbol held
  has no mark (no live price since a restart, or none at all), the book's
  exposure is unknown: only reducing orders pass.
- Lots: a request that binds no rule is approved unchanged; quantities the
  check computes are rounded down to whole lots, and one below a lot rejects,
  except the closing quantity, which may be an odd lot: an order that may close
  the position is never cut below it.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Collection, Mapping, NamedTuple, Protocol

from .book import Book
from .config import Limits
from .types import (
    BudgetSnapshot, Decision, FirmGrant, FirmLimits, OrderRequest, Reason, ReasonCode, Side,
    SymbolExposure, TradeDecision, TradingState,
)

_LOT_EPS = 1e-9
"""Float noise tolerated when comparing and rounding quantities, in lots."""
_COLLAR_EPS = 1e-9
"""The relative float noise a limit price's distance from the last price is allowed past the collar."""


class PriceView(Protocol):
    """The last price of each symbol, and when its last live one was seen (None if it has only
    history, such as a warm-up's; MarketState satisfies it)."""

    def last_price(self, symbol: str) -> float | None: ...

    def live_time(self, symbol: str) -> float | None: ...


class Evaluation(NamedTuple):
    """The outcome of the check, before it is recorded or reserved. A named tuple, not a frozen
    dataclass: it is built on every check, and costs half as much to build."""

    decision: Decision
    approved_quantity: float
    reasons: tuple[Reason, ...]
    reduces_exposure: bool
    reference_price: float


def evaluate(
    order: OrderRequest,
    *,
    snapshot: BudgetSnapshot | None,
    book: Book,
    prices: PriceView,
    limits: Limits,
    trading_state: TradingState,
    trading_scope: str = "",
    restricted: frozenset[str],
    lot_size: float,
    known_strategies: Mapping[str, frozenset[str]],
    traded_elsewhere: Collection[str] = (),
    now: float,
) -> Evaluation:
    """Approve, resize or reject `order`; fails closed (REJECTED) on any unusable input.
    `traded_elsewhere`: strategies of the config another sidecar sharing the firm's limits
    trades (this one's book lacks their positions, so it cannot check their orders)."""
    quantity = order.quantity
    if not (math.isfinite(quantity) and quantity > 0):
        return _rejected(ReasonCode.BELOW_MIN_QUANTITY,
                         f"quantity must be positive and finite, got {quantity!r}")
    if quantity <= lot_size * _LOT_EPS:  # within the float noise every rule tolerates: none would bind
        return _rejected(ReasonCode.BELOW_MIN_QUANTITY,
                         f"quantity {quantity:g} is float noise, not an order (a lot is {lot_size:g})",
                         limit=lot_size, value=quantity)
    if order.strategy in traded_elsewhere:
        return _rejected(ReasonCode.UNKNOWN_STRATEGY,
                         f"strategy {order.strategy!r} is traded through another sidecar (not in this one's "
                         "shared.owned_strategies): check its orders there")
    return _decide(order.strategy, order.symbol, order.side, order.limit_price, quantity,
                   snapshot=snapshot, book=book, prices=prices, limits=limits,
                   trading_state=trading_state, trading_scope=trading_scope, restricted=restricted,
                   lot_size=lot_size, known_strategies=known_strategies, now=now)


def max_quantity(
    strategy: str,
    symbol: str,
    side: Side,
    *,
    limit_price: float = 0.0,
    snapshot: BudgetSnapshot | None,
    book: Book,
    prices: PriceView,
    limits: Limits,
    trading_state: TradingState,
    trading_scope: str = "",
    restricted: frozenset[str],
    lot_size: float,
    known_strategies: Mapping[str, frozenset[str]],
    now: float,
) -> float:
    """The largest quantity, in whole lots (or the closing quantity, if larger), an order
    could have now; 0 if none.

    Exactly what `evaluate` approves for an order of any larger quantity.
    """
    return _decide(strategy, symbol, side, limit_price, math.inf,
                   snapshot=snapshot, book=book, prices=prices, limits=limits,
                   trading_state=trading_state, trading_scope=trading_scope, restricted=restricted,
                   lot_size=lot_size, known_strategies=known_strategies, now=now).approved_quantity


class _Cap(NamedTuple):
    """The largest quantity one rule allows alone, and what the request would reach."""

    quantity: float
    code: ReasonCode
    limit: float
    value: float
    message: str
    """A format string over limit, value and allowed (this cap)."""

    def reason(self) -> Reason:
        text = self.message.format(limit=self.limit, value=self.value, allowed=self.quantity)
        return Reason(self.code, text, self.limit, self.value)


_COLLAR = "limit price is {value:.2%} from the last price, beyond the {limit:.2%} collar"
_HALTED = "trading{of} is halted: only reducing orders pass, here at most {{limit:g}}"
_REDUCING = "trading{of} is reducing-only: only reducing orders pass, here at most {{limit:g}}"
"""Formatted twice: first with whose state it is (" of the book", " of trend": `trading_scope`, or
nothing without one), then as a cap's message."""
_RESTRICTED = "symbol is restricted: only reducing orders pass, here at most {limit:g}"
_ORDER_NOTIONAL = ("order notional {value:,.2f} is above the maximum {limit:,.2f}; "
                   "at most {allowed:g} fits")
_SYMBOL_LIMIT = ("symbol worst-case position notional {value:,.2f} would exceed its limit "
                 "{limit:,.2f}; at most {allowed:g} fits")
_STRATEGY_LIMIT = ("strategy worst-case gross exposure {value:,.2f} would exceed its limit "
                   "{limit:,.2f}; at most {allowed:g} fits")
_TOTAL_LIMIT = ("book worst-case gross exposure {value:,.2f} would exceed NAV x total leverage "
                "limit {limit:,.2f}; at most {allowed:g} fits")
_UNVALUED = ("no live price yet for {held}, held in the book: its exposure cannot be valued, so "
             "only reducing orders pass, here at most {{limit:g}}")


def _decide(
    strategy: str,
    symbol: str,
    side: Side,
    limit_price: float,
    requested: float,
    *,
    snapshot: BudgetSnapshot | None,
    book: Book,
    prices: PriceView,
    limits: Limits,
    trading_state: TradingState,
    trading_scope: str = "",
    restricted: frozenset[str],
    lot_size: float,
    known_strategies: Mapping[str, frozenset[str]],
    now: float,
) -> Evaluation:
    symbols = known_strategies.get(strategy)
    if symbols is None:
        return _rejected(ReasonCode.UNKNOWN_STRATEGY, f"unknown strategy {strategy!r}")
    if symbol not in symbols:
        return _rejected(ReasonCode.UNKNOWN_SYMBOL,
                         f"symbol {symbol!r} is not traded by strategy {strategy!r}")

    sign = side.sign
    exposure = book.exposure(strategy, symbol)
    closable = _closable(exposure, sign)
    tolerance = lot_size * _LOT_EPS
    reduces = requested <= closable + tolerance

    if snapshot is None:
        return _rejected(ReasonCode.NO_BUDGET, "no budget has been computed yet", reduces=reduces)
    strategy_budget = snapshot.strategies.get(strategy)
    symbol_budget = snapshot.symbols.get(symbol)
    if strategy_budget is None or symbol_budget is None:
        return _rejected(ReasonCode.NO_BUDGET,
                         f"the budget has no limits for strategy {strategy!r} and symbol {symbol!r}",
                         reduces=reduces)
    if not (math.isfinite(limit_price) and limit_price >= 0):
        return _rejected(ReasonCode.PRICE_COLLAR,
                         f"limit price must be finite and non-negative, got {limit_price!r}",
                         reduces=reduces)
    price_of = prices.last_price
    last = price_of(symbol)
    seen = prices.live_time(symbol)
    if last is None or seen is None or not (math.isfinite(last) and last > 0):
        return _rejected(ReasonCode.STALE_MARKET_DATA, f"no live price for {symbol!r} yet",
                         reduces=reduces)
    age = now - seen
    if not age <= limits.max_staleness:  # a NaN age is stale too
        return _rejected(ReasonCode.STALE_MARKET_DATA,
                         f"last price of {symbol!r} is {age:g}s old, over {limits.max_staleness:g}s",
                         limit=limits.max_staleness, value=age, reduces=reduces)
    reference = max(limit_price, last)

    bound = requested - tolerance  # a cap below it binds: it allows less than the request
    # The rules that may bind; those every order meets (the maximum order notional and the
    # exposure limits) only where they do, so that no reason is built for nothing.
    caps: list[_Cap] = []
    if limit_price > 0:
        distance = abs(limit_price - last) / last
        # A limit price exactly at the collar passes: its distance comes out of floats a hair
        # either side of it (found by a tester: half of the limits at exactly 5% were rejected).
        if distance > limits.price_collar * (1 + _COLLAR_EPS):
            caps.append(_Cap(0.0, ReasonCode.PRICE_COLLAR, limits.price_collar, distance, _COLLAR))
    of = f" of {trading_scope}" if trading_scope else ""
    if trading_state is TradingState.HALTED:
        caps.append(_Cap(closable, ReasonCode.TRADING_HALTED, closable, requested, _HALTED.format(of=of)))
    elif trading_state is TradingState.REDUCING:
        caps.append(_Cap(closable, ReasonCode.TRADING_REDUCING, closable, requested, _REDUCING.format(of=of)))
    if symbol in restricted:
        caps.append(_Cap(closable, ReasonCode.RESTRICTED_SYMBOL, closable, requested, _RESTRICTED))
    order_cap = limits.max_order_notional / reference
    if order_cap < bound:
        caps.append(_Cap(order_cap, ReasonCode.MAX_ORDER_NOTIONAL, limits.max_order_notional,
                         requested * reference, _ORDER_NOTIONAL))
    # Each limit holds `rest + worst_case_abs(sign * q) * reference <= limit`; closing what it
    # bounds always fits: the symbol's position over every strategy, or this strategy's.
    net = book.net_exposure(symbol)
    symbol_limit = symbol_budget.max_position_notional
    fits = max(_room(net, sign, symbol_limit / reference), _closable(net, sign))
    if fits < bound:
        caps.append(_Cap(fits, ReasonCode.SYMBOL_POSITION_LIMIT, symbol_limit,
                         net.worst_case_abs(sign * requested) * reference, _SYMBOL_LIMIT))
    if not reduces and book.has_unmarked_besides(symbol):
        unvalued = sorted(held for held in book.unmarked() if held != symbol)
        held = ", ".join(repr(name) for name in unvalued[:5]) + (" and others" if len(unvalued) > 5 else "")
        caps.append(_Cap(closable, ReasonCode.STALE_MARKET_DATA, closable, requested,
                         _UNVALUED.format(held=held)))
    elif not reduces:
        strategy_rest, total_rest = book.gross_besides(strategy, symbol, price_of)
        for rest, limit, code, message in (
                (strategy_rest, strategy_budget.max_gross_exposure, ReasonCode.STRATEGY_EXPOSURE_LIMIT,
                 _STRATEGY_LIMIT),
                (total_rest, snapshot.max_total_gross_exposure, ReasonCode.TOTAL_LEVERAGE_LIMIT, _TOTAL_LIMIT)):
            fits = max(_room(exposure, sign, (limit - rest) / reference), closable)
            if fits < bound:
                value = rest + exposure.worst_case_abs(sign * requested) * reference
                caps.append(_Cap(fits, code, limit, value, message))

    binding = [cap for cap in caps if cap.quantity < bound]
    if not binding:
        return Evaluation(Decision.APPROVED, requested, (), reduces, reference)
    allowed = min(cap.quantity for cap in binding)
    approved = math.floor(allowed / lot_size + _LOT_EPS) * lot_size
    if approved < closable <= allowed + tolerance:  # closing an odd-lot position whole is never cut
        approved = closable
    reasons = [cap.reason() for cap in binding]
    if approved <= 0:
        if allowed > tolerance:
            reasons.append(Reason(
                ReasonCode.BELOW_MIN_QUANTITY,
                f"the allowed quantity {allowed:g} is below one lot of {lot_size:g}",
                lot_size, allowed))
        return Evaluation(Decision.REJECTED, 0.0, tuple(reasons), reduces, reference)
    return Evaluation(Decision.RESIZED, approved, tuple(reasons),
                      approved <= closable + tolerance, reference)


def only_reduces(exposure: SymbolExposure, sign: int, quantity: float, lot_size: float) -> bool:
    """Whether an order of `quantity` in this direction only reduces the position."""
    return quantity <= _closable(exposure, sign) + lot_size * _LOT_EPS


def _closable(exposure: SymbolExposure, sign: int) -> float:
    """How much an order of this direction may trade and still only reduce the position."""
    pending = exposure.pending_buy if sign > 0 else exposure.pending_sell
    return max(0.0, -sign * exposure.position - pending)  # 0.0 first: max keeps the first of equals, not -0.0


def _room(exposure: SymbolExposure, sign: int, bound: float) -> float:
    """The largest q >= 0 with exposure.worst_case_abs(sign * q) <= bound, 0 if none.

    In the order's direction (sign-adjusted), worst_case_abs is
    max(|toward + q|, |away|): `away`, the worst case the other way, does not
    move with q, and toward >= -|away|, so q = bound - toward when |away| <= bound.
    """
    if sign > 0:
        toward = exposure.position + exposure.pending_buy
        away = exposure.position - exposure.pending_sell
    else:
        toward = exposure.pending_sell - exposure.position
        away = exposure.position + exposure.pending_buy
    if abs(away) > bound:
        return 0.0
    return max(bound - toward, 0.0)


def _rejected(code: ReasonCode, message: str, *, limit: float = 0.0, value: float = 0.0,
              reduces: bool = False) -> Evaluation:
    return Evaluation(Decision.REJECTED, 0.0, (Reason(code, message, limit, value),), reduces, 0.0)


def firm_wide_decision(decision: TradeDecision, grant: FirmGrant, firm: FirmLimits, *,
                       shadow: bool = False) -> TradeDecision:
    """A decision cut down to what the limits shared with other sidecars granted.

    The firm-wide symbol and total limits are the same rules as this sidecar's own,
    applied to every sidecar's book at once; a cut lists them with the firm-wide value.
    In shadow mode the decision stays as it was and only says what the cut would be.
    """
    if grant.quantity >= decision.approved_quantity:
        return decision
    reasons = list(decision.reasons)
    if grant.symbol_limited:
        reasons.append(Reason(
            ReasonCode.SYMBOL_POSITION_LIMIT,
            f"firm-wide worst-case position notional {grant.symbol_value:,.2f} (every sidecar) "
            f"would exceed the limit {firm.symbol_limit:,.2f}; at most {grant.quantity:g} fits",
            firm.symbol_limit, grant.symbol_value))
    if grant.total_limited:
        reasons.append(Reason(
            ReasonCode.TOTAL_LEVERAGE_LIMIT,
            f"firm-wide gross exposure {grant.total_value:,.2f} (every sidecar) would exceed "
            f"the limit {firm.total_limit:,.2f}; at most {grant.quantity:g} fits",
            firm.total_limit, grant.total_value))
    outcome = Decision.RESIZED if grant.quantity >= firm.lot_size else Decision.REJECTED
    if shadow:
        return replace(decision, reasons=tuple(reasons), shadow_decision=outcome)
    return replace(
        decision, decision=outcome, approved_quantity=grant.quantity if outcome is Decision.RESIZED else 0.0,
        reasons=tuple(reasons), reserved=decision.reserved and outcome is Decision.RESIZED,
        reservation_expires_at=decision.reservation_expires_at if outcome is Decision.RESIZED else None)
