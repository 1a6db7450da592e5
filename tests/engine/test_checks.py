"""The pre-trade check: every rule alone and together, states, lots and reservations."""

import math

import pytest

from riskbudget_sidecar.engine.book import Book
from riskbudget_sidecar.engine.types import Decision, ReasonCode, Side, TradingState
from tests.engine.builders import (
    NOW, Desk, FakePrices, desk, fill, make_snapshot, order, reservation, strategy_budget,
    symbol_budget,
)

BUY, SELL = Side.BUY, Side.SELL


def codes(evaluation):
    return [reason.code for reason in evaluation.reasons]


# --- approval and gates -------------------------------------------------------

def test_check_trade_within_every_limit_is_approved_as_asked():
    result = desk().check(order(BUY, 100))

    assert result.decision is Decision.APPROVED
    assert result.approved_quantity == 100
    assert result.reasons == ()
    assert result.reduces_exposure is False
    assert result.reference_price == 100.0


def test_check_trade_without_budget_rejects_no_budget():
    trading = desk()
    trading.snapshot = None

    result = trading.check(order(BUY, 100))

    assert (result.decision, codes(result)) == (Decision.REJECTED, [ReasonCode.NO_BUDGET])
    assert result.approved_quantity == 0.0


def test_check_trade_for_a_strategy_missing_from_the_budget_rejects_no_budget():
    trading = Desk(make_snapshot([strategy_budget("alpha", capital=1e9, symbols=("AAA",))],
                                 [symbol_budget("AAA", max_notional=1e9)]))

    result = trading.check(order(BUY, 10, strategy="beta"))

    assert codes(result) == [ReasonCode.NO_BUDGET]


def test_check_trade_for_an_unknown_strategy_rejects_unknown_strategy():
    result = desk().check(order(BUY, 10, strategy="gamma"))

    assert (result.decision, codes(result)) == (Decision.REJECTED, [ReasonCode.UNKNOWN_STRATEGY])


def test_check_trade_for_a_symbol_outside_the_strategy_rejects_unknown_symbol():
    result = desk().check(order(BUY, 10, strategy="alpha", symbol="CCC"))

    assert (result.decision, codes(result)) == (Decision.REJECTED, [ReasonCode.UNKNOWN_SYMBOL])


@pytest.mark.parametrize("quantity", [0.0, -5.0, math.nan, math.inf])
def test_check_trade_with_an_unusable_quantity_fails_closed(quantity):
    result = desk().check(order(BUY, quantity))

    assert (result.decision, codes(result)) == (Decision.REJECTED, [ReasonCode.BELOW_MIN_QUANTITY])


@pytest.mark.parametrize("limit_price", [-1.0, math.nan, math.inf])
def test_check_trade_with_an_unusable_limit_price_fails_closed(limit_price):
    result = desk().check(order(BUY, 10, limit_price=limit_price))

    assert (result.decision, codes(result)) == (Decision.REJECTED, [ReasonCode.PRICE_COLLAR])


# --- market data ----------------------------------------------------------------

def test_check_trade_on_a_stale_price_rejects_stale_market_data():
    trading = desk(now=NOW + 31)

    result = trading.check(order(BUY, 10))

    assert (result.decision, codes(result)) == (Decision.REJECTED, [ReasonCode.STALE_MARKET_DATA])
    assert (result.reasons[0].limit, result.reasons[0].value) == (30.0, 31.0)


def test_check_trade_on_a_price_exactly_as_old_as_allowed_is_approved():
    result = desk(now=NOW + 30).check(order(BUY, 10))

    assert result.decision is Decision.APPROVED


def test_check_trade_without_any_price_rejects_stale_market_data():
    trading = desk(prices=FakePrices({"AAA": 100.0}))

    result = trading.check(order(BUY, 10, symbol="BBB"))

    assert codes(result) == [ReasonCode.STALE_MARKET_DATA]


@pytest.mark.parametrize("price", [0.0, -3.0, math.nan])
def test_check_trade_on_an_unusable_last_price_fails_closed(price):
    trading = desk()
    trading.prices.set("AAA", price)

    result = trading.check(order(BUY, 10))

    assert codes(result) == [ReasonCode.STALE_MARKET_DATA]


def test_check_trade_on_stale_data_rejects_even_a_reducing_order():
    trading = desk(now=NOW + 31)
    trading.hold("alpha", "AAA", 100)

    result = trading.check(order(SELL, 50))

    assert (result.decision, codes(result)) == (Decision.REJECTED, [ReasonCode.STALE_MARKET_DATA])
    assert result.reduces_exposure is True


# --- price collar and reference price ---------------------------------------------

def test_check_trade_with_a_limit_price_beyond_the_collar_rejects_price_collar():
    result = desk().check(order(BUY, 10, limit_price=106.0))

    assert (result.decision, codes(result)) == (Decision.REJECTED, [ReasonCode.PRICE_COLLAR])
    assert result.reasons[0].limit == 0.05
    assert result.reasons[0].value == pytest.approx(0.06)


@pytest.mark.parametrize("last", [101.57, 79.1, 78.7, 94.7, 96.2, 61.4, 117.3, 67.9, 110.0, 0.37, 4321.99])
@pytest.mark.parametrize("factor", [1.05, 0.95])
def test_a_limit_price_exactly_at_the_collar_passes_it(last, factor):
    """Found by a tester: half of the limit prices at exactly 5% were rejected, their distance a
    float a hair past 0.05."""
    trading = desk()
    trading.prices.set("AAA", last)

    result = trading.check(order(BUY, 1, limit_price=last * factor))

    assert ReasonCode.PRICE_COLLAR not in codes(result)


def test_check_trade_beyond_the_collar_rejects_even_a_reducing_order():
    trading = desk()
    trading.hold("alpha", "AAA", 100)

    result = trading.check(order(SELL, 50, limit_price=90.0))

    assert (result.decision, codes(result)) == (Decision.REJECTED, [ReasonCode.PRICE_COLLAR])


@pytest.mark.parametrize("side, limit_price, reference", [
    (BUY, 0.0, 100.0),
    (BUY, 104.0, 104.0),
    (BUY, 97.0, 100.0),
    (SELL, 104.0, 104.0),
    (SELL, 97.0, 100.0),
])
def test_reference_price_is_the_larger_of_limit_and_last(side, limit_price, reference):
    result = desk().check(order(side, 10, limit_price=limit_price))

    assert result.decision is Decision.APPROVED
    assert result.reference_price == reference


# --- each size limit alone --------------------------------------------------------

def test_check_trade_above_max_order_notional_is_resized_to_fit():
    result = desk(max_order_notional=10_000).check(order(BUY, 150))

    assert (result.decision, result.approved_quantity) == (Decision.RESIZED, 100)
    assert result.reasons[0].code is ReasonCode.MAX_ORDER_NOTIONAL
    assert (result.reasons[0].limit, result.reasons[0].value) == (10_000, 15_000)


def test_max_order_notional_uses_the_reference_price():
    result = desk(max_order_notional=10_000).check(order(BUY, 150, limit_price=104.0))

    assert result.approved_quantity == 96  # 10,000 / 104 = 96.15


def test_max_order_notional_applies_to_reducing_orders_too():
    trading = desk(max_order_notional=10_000)
    trading.hold("alpha", "AAA", 500)

    result = trading.check(order(SELL, 200))

    assert (result.decision, result.approved_quantity) == (Decision.RESIZED, 100)
    assert result.reduces_exposure is True


def test_symbol_position_limit_counts_every_strategys_position():
    trading = desk(symbol_limit=30_000)
    trading.hold("beta", "AAA", 100)

    result = trading.check(order(BUY, 300))

    assert (result.decision, result.approved_quantity) == (Decision.RESIZED, 200)
    assert codes(result) == [ReasonCode.SYMBOL_POSITION_LIMIT]
    assert (result.reasons[0].limit, result.reasons[0].value) == (30_000, 40_000)


def test_symbol_position_limit_lets_a_buy_cross_another_strategys_short():
    trading = desk(symbol_limit=30_000)
    trading.hold("beta", "AAA", -100)

    result = trading.check(order(BUY, 500))

    assert result.approved_quantity == 400  # net -100 + 400 = +300 at the limit
    assert result.reasons[0].value == 40_000


@pytest.mark.parametrize("state", [TradingState.ACTIVE, TradingState.HALTED])
def test_a_strategy_closing_its_short_is_cut_where_the_symbol_summed_over_strategies_would_pass_its_limit(state):
    trading = desk(symbol_limit=30_000, trading_state=state)
    trading.hold("alpha", "AAA", -200)
    trading.hold("beta", "AAA", 400)  # net +200: closing alpha's short adds to it

    result = trading.check(order(BUY, 200))
    sized = trading.max_quantity(BUY)

    assert (result.decision, result.approved_quantity) == (Decision.RESIZED, 100)
    assert ReasonCode.SYMBOL_POSITION_LIMIT in codes(result)
    assert result.reasons[codes(result).index(ReasonCode.SYMBOL_POSITION_LIMIT)].value == 40_000
    assert result.reduces_exposure is True  # for the strategy: it only closes
    assert sized == 100


def test_a_strategy_closing_its_long_passes_the_symbol_limit_when_that_brings_the_sum_towards_zero():
    trading = desk(symbol_limit=30_000)
    trading.hold("alpha", "AAA", 300)
    trading.hold("beta", "AAA", 200)  # net +500, over the limit of 300 already

    result = trading.check(order(SELL, 300))

    assert (result.decision, result.approved_quantity) == (Decision.APPROVED, 300)


def test_symbol_position_limit_counts_another_strategys_reservation():
    trading = desk(symbol_limit=30_000)
    trading.book.reserve(reservation(100, client_order_id="b-1", strategy="beta"))

    result = trading.check(order(BUY, 300))

    assert result.approved_quantity == 200


def test_a_pending_sell_does_not_make_room_for_a_buy():
    trading = desk(symbol_limit=30_000)
    trading.book.reserve(reservation(-200, client_order_id="a-0"))

    result = trading.check(order(BUY, 500))

    assert result.approved_quantity == 300


def test_strategy_exposure_limit_counts_the_strategys_other_symbols_only():
    trading = desk(alpha_limit=25_000)
    trading.hold("alpha", "BBB", 200)  # 10,000
    trading.hold("beta", "CCC", 5_000)  # 100,000, another strategy's

    result = trading.check(order(BUY, 200))

    assert (result.decision, result.approved_quantity) == (Decision.RESIZED, 150)
    assert codes(result) == [ReasonCode.STRATEGY_EXPOSURE_LIMIT]
    assert (result.reasons[0].limit, result.reasons[0].value) == (25_000, 30_000)


def test_total_leverage_limit_counts_every_strategy():
    trading = desk(total_limit=30_000)
    trading.hold("beta", "CCC", 1_000)  # 20,000

    result = trading.check(order(BUY, 200))

    assert (result.decision, result.approved_quantity) == (Decision.RESIZED, 100)
    assert codes(result) == [ReasonCode.TOTAL_LEVERAGE_LIMIT]
    assert (result.reasons[0].limit, result.reasons[0].value) == (30_000, 40_000)


def test_exposure_is_valued_at_the_reference_price():
    result = desk(alpha_limit=20_800).check(order(BUY, 300, limit_price=104.0))

    assert result.approved_quantity == 200


def test_several_binding_rules_are_all_listed_and_the_tightest_wins():
    trading = desk(max_order_notional=25_000, symbol_limit=20_000, alpha_limit=15_000,
                   total_limit=100_000)

    result = trading.check(order(BUY, 300))

    assert (result.decision, result.approved_quantity) == (Decision.RESIZED, 150)
    assert codes(result) == [ReasonCode.MAX_ORDER_NOTIONAL, ReasonCode.SYMBOL_POSITION_LIMIT,
                             ReasonCode.STRATEGY_EXPOSURE_LIMIT]


def test_order_crossing_through_zero_when_active_is_sized_by_the_limits():
    trading = desk(alpha_limit=20_000)
    trading.hold("alpha", "AAA", 100)

    result = trading.check(order(SELL, 400))

    assert (result.decision, result.approved_quantity) == (Decision.RESIZED, 300)  # short 200
    assert result.reduces_exposure is False


def test_exposure_already_over_a_limit_rejects_an_increase_outright():
    trading = desk(alpha_limit=10_000)
    trading.hold("alpha", "AAA", 150)

    result = trading.check(order(BUY, 10))

    assert (result.decision, codes(result)) == (
        Decision.REJECTED, [ReasonCode.STRATEGY_EXPOSURE_LIMIT])


def test_exposure_already_over_a_limit_passes_a_reducing_order():
    trading = desk(alpha_limit=10_000, symbol_limit=10_000, total_limit=10_000)
    trading.hold("alpha", "AAA", 150)

    result = trading.check(order(SELL, 50))

    assert (result.decision, result.approved_quantity) == (Decision.APPROVED, 50)
    assert result.reduces_exposure is True


def test_exposure_over_a_limit_resizes_a_crossing_order_to_the_close():
    trading = desk(alpha_limit=10_000)
    trading.hold("alpha", "AAA", 150)

    result = trading.check(order(SELL, 300))

    assert (result.decision, result.approved_quantity) == (Decision.RESIZED, 150)
    assert codes(result) == [ReasonCode.STRATEGY_EXPOSURE_LIMIT]
    assert result.reduces_exposure is True


# --- lots -------------------------------------------------------------------------

def test_resized_quantity_rounds_down_to_whole_lots():
    result = desk(alpha_limit=15_550, lot_size=10).check(order(BUY, 300))

    assert result.approved_quantity == 150  # 155.5 rounded down


def test_resized_quantity_rounds_down_to_fractional_lots():
    result = desk(alpha_limit=15_560, lot_size=0.25).check(order(BUY, 300))

    assert result.approved_quantity == 155.5  # 155.6 rounded down


def test_resize_landing_on_a_lot_despite_float_noise_keeps_that_lot():
    result = desk(alpha_limit=70, lot_size=0.1).check(order(BUY, 1))  # 0.7 / 0.1 = 6.999...

    assert result.approved_quantity == pytest.approx(0.7)


def test_allowed_quantity_below_one_lot_rejects_below_min_quantity():
    result = desk(alpha_limit=5_000, lot_size=100).check(order(BUY, 300))

    assert result.decision is Decision.REJECTED
    assert codes(result) == [ReasonCode.STRATEGY_EXPOSURE_LIMIT, ReasonCode.BELOW_MIN_QUANTITY]
    assert (result.reasons[1].limit, result.reasons[1].value) == (100, 50)


def test_request_off_the_lot_grid_binding_nothing_is_approved_unchanged():
    result = desk(lot_size=10).check(order(BUY, 15))

    assert (result.decision, result.approved_quantity) == (Decision.APPROVED, 15)


# --- trading states and restrictions ------------------------------------------------

@pytest.mark.parametrize("state, code", [
    (TradingState.HALTED, ReasonCode.TRADING_HALTED),
    (TradingState.REDUCING, ReasonCode.TRADING_REDUCING),
])
def test_check_trade_when_halted_or_reducing_rejects_an_increase(state, code):
    result = desk(trading_state=state).check(order(BUY, 100))

    assert (result.decision, codes(result)) == (Decision.REJECTED, [code])
    assert result.reduces_exposure is False


def test_check_trade_when_halted_with_nothing_to_close_reports_a_limit_of_plus_zero():
    result = desk(trading_state=TradingState.HALTED).check(order(BUY, 100))

    [reason] = result.reasons
    assert math.copysign(1.0, reason.limit) == 1.0  # 0.0, not -0.0 (shown as "-0" to a trader)


@pytest.mark.parametrize("state", [TradingState.HALTED, TradingState.REDUCING])
@pytest.mark.parametrize("held, side", [(100, SELL), (-100, BUY)])
def test_check_trade_when_halted_or_reducing_passes_a_reducing_order(state, held, side):
    trading = desk(trading_state=state)
    trading.hold("alpha", "AAA", held)

    result = trading.check(order(side, 60))

    assert (result.decision, result.approved_quantity) == (Decision.APPROVED, 60)
    assert result.reduces_exposure is True


@pytest.mark.parametrize("state", [TradingState.HALTED, TradingState.REDUCING])
def test_check_trade_when_halted_or_reducing_rejects_an_increase_too_small_to_bind_a_rule(state):
    result = desk(trading_state=state).check(order(BUY, 1e-10))

    assert (result.decision, codes(result)) == (Decision.REJECTED, [ReasonCode.BELOW_MIN_QUANTITY])
    assert result.approved_quantity == 0


def test_check_trade_when_halted_resizes_an_order_crossing_zero_to_the_close():
    trading = desk(trading_state=TradingState.HALTED)
    trading.hold("alpha", "AAA", 100)

    result = trading.check(order(SELL, 250))

    assert (result.decision, result.approved_quantity) == (Decision.RESIZED, 100)
    assert codes(result) == [ReasonCode.TRADING_HALTED]
    assert result.reduces_exposure is True


@pytest.mark.parametrize("held, lot, sized", [(5, 10, 5), (150, 100, 150), (250, 100, 250)])
def test_check_trade_when_halted_closes_an_odd_lot_position_whole(held, lot, sized):
    trading = desk(trading_state=TradingState.HALTED, lot_size=lot)
    trading.hold("alpha", "AAA", held)

    result = trading.check(order(SELL, 2 * held))

    assert (result.decision, result.approved_quantity) == (Decision.RESIZED, sized)
    assert codes(result) == [ReasonCode.TRADING_HALTED]
    assert result.reduces_exposure is True
    assert trading.max_quantity(SELL) == sized


def test_closing_quantity_counts_orders_already_in_flight_the_same_way():
    trading = desk(trading_state=TradingState.HALTED)
    trading.hold("alpha", "AAA", 100)
    trading.book.reserve(reservation(-80, client_order_id="earlier"))

    result = trading.check(order(SELL, 50, client_order_id="later"))

    assert (result.decision, result.approved_quantity) == (Decision.RESIZED, 20)


def test_check_trade_on_a_restricted_symbol_rejects_an_increase():
    result = desk(restricted=frozenset({"AAA"})).check(order(BUY, 10))

    assert (result.decision, codes(result)) == (Decision.REJECTED, [ReasonCode.RESTRICTED_SYMBOL])


def test_check_trade_on_a_restricted_symbol_passes_a_reducing_order():
    trading = desk(restricted=frozenset({"AAA"}))
    trading.hold("alpha", "AAA", 100)

    result = trading.check(order(SELL, 100))

    assert (result.decision, result.approved_quantity) == (Decision.APPROVED, 100)


def test_check_trade_on_a_restricted_symbol_resizes_a_crossing_order_to_the_close():
    trading = desk(restricted=frozenset({"AAA"}))
    trading.hold("alpha", "AAA", 100)

    result = trading.check(order(SELL, 150))

    assert (result.decision, result.approved_quantity) == (Decision.RESIZED, 100)
    assert codes(result) == [ReasonCode.RESTRICTED_SYMBOL]


def test_halted_and_restricted_together_are_both_listed():
    trading = desk(trading_state=TradingState.HALTED, restricted=frozenset({"AAA"}))

    result = trading.check(order(BUY, 10, limit_price=120.0))

    assert codes(result) == [ReasonCode.PRICE_COLLAR, ReasonCode.TRADING_HALTED,
                             ReasonCode.RESTRICTED_SYMBOL]


# --- reservations -----------------------------------------------------------------

def test_two_orders_in_flight_cannot_spend_the_same_budget():
    trading = desk(alpha_limit=30_000)

    first = trading.check_and_reserve(order(BUY, 200, client_order_id="o-1"))
    second = trading.check_and_reserve(order(BUY, 200, client_order_id="o-2"))

    assert (first.decision, first.approved_quantity) == (Decision.APPROVED, 200)
    assert (second.decision, second.approved_quantity) == (Decision.RESIZED, 100)
    assert codes(second) == [ReasonCode.STRATEGY_EXPOSURE_LIMIT]


def test_a_third_order_after_the_budget_is_spent_is_rejected():
    trading = desk(alpha_limit=30_000)
    trading.check_and_reserve(order(BUY, 200, client_order_id="o-1"))
    trading.check_and_reserve(order(BUY, 200, client_order_id="o-2"))

    third = trading.check(order(BUY, 1, client_order_id="o-3"))

    assert third.decision is Decision.REJECTED


def test_a_fill_moves_the_spent_budget_from_reservation_to_position():
    trading = desk(alpha_limit=30_000)
    trading.check_and_reserve(order(BUY, 200, client_order_id="o-1"))

    _, remaining = trading.book.apply_fill(fill(BUY, 50, client_order_id="o-1"))
    second = trading.check(order(BUY, 200, client_order_id="o-2"))

    assert remaining == 150
    assert second.approved_quantity == 100


def test_a_release_frees_the_reserved_budget():
    trading = desk(alpha_limit=30_000)
    trading.check_and_reserve(order(BUY, 200, client_order_id="o-1"))

    trading.book.release("o-1")
    second = trading.check(order(BUY, 200, client_order_id="o-2"))

    assert second.decision is Decision.APPROVED


def test_expiry_frees_the_reserved_budget():
    trading = desk(alpha_limit=30_000)
    trading.check_and_reserve(order(BUY, 200, client_order_id="o-1"))

    trading.book.expire(NOW + trading.limits.reservation_ttl)
    second = trading.check(order(BUY, 200, client_order_id="o-2"))

    assert second.decision is Decision.APPROVED


# --- valuation of the rest of the book ----------------------------------------------

def test_while_another_symbol_held_has_no_mark_only_reducing_orders_pass():
    trading = desk(alpha_limit=25_000)
    trading.book = Book()  # no live price since a restart: nothing is marked
    trading.hold("alpha", "BBB", 200)
    trading.hold("beta", "AAA", 300)

    adding = trading.check(order(BUY, 200))
    elsewhere = trading.check(order(BUY, 10, strategy="beta", symbol="CCC"))
    closing = trading.check(order(SELL, 500, strategy="beta"))
    own = trading.check(order(SELL, 100, symbol="BBB"))  # BBB's own price is live: it reduces
    sized = trading.max_quantity(BUY)
    trading.book.mark("BBB", 50.0)
    marked = trading.check(order(BUY, 200))

    assert (adding.decision, codes(adding)) == (Decision.REJECTED, [ReasonCode.STALE_MARKET_DATA])
    assert "no live price yet for 'BBB', held in the book" in adding.reasons[0].message
    assert (elsewhere.decision, codes(elsewhere)) == (Decision.REJECTED, [ReasonCode.STALE_MARKET_DATA])
    assert "'AAA', 'BBB'" in elsewhere.reasons[0].message
    assert (closing.decision, closing.approved_quantity) == (Decision.RESIZED, 300)
    assert own.decision is Decision.APPROVED
    assert sized == 0
    assert marked.approved_quantity == 150  # (25,000 - 200 x 50) / 100


def test_check_values_the_rest_of_the_book_at_its_marks():
    trading = desk(alpha_limit=25_000)
    trading.hold("alpha", "BBB", 200)
    trading.book.mark("BBB", 60.0)

    result = trading.check(order(BUY, 200))

    assert result.approved_quantity == 130  # (25,000 - 200 x 60) / 100


def test_a_new_price_for_the_orders_symbol_is_used_at_once():
    trading = desk(alpha_limit=25_000)
    trading.hold("alpha", "AAA", 100)
    trading.prices.set("AAA", 125.0)  # the book's mark still says 100

    result = trading.check(order(BUY, 200))

    assert result.approved_quantity == 100  # 25,000 / 125 - 100 held


# --- sizing -----------------------------------------------------------------------

def test_max_quantity_is_what_a_huge_order_is_approved():
    trading = desk(alpha_limit=25_550, lot_size=10)
    trading.hold("alpha", "BBB", 200)

    largest = trading.max_quantity(BUY)
    huge = trading.check(order(BUY, 1e12))

    assert largest == huge.approved_quantity == 150


def test_max_quantity_with_no_other_limit_is_the_max_order_notional():
    trading = desk(max_order_notional=10_000)

    assert trading.max_quantity(BUY) == 100
    assert trading.max_quantity(BUY, limit_price=104.0) == 96


def test_max_quantity_when_halted_is_the_close():
    trading = desk(trading_state=TradingState.HALTED)
    trading.hold("alpha", "AAA", 100)

    assert trading.max_quantity(SELL) == 100
    assert trading.max_quantity(BUY) == 0.0


def test_max_quantity_on_stale_data_is_zero():
    assert desk(now=NOW + 31).max_quantity(BUY) == 0.0
