"""The position book: positions, reservations and the aggregates the check reads."""

import math
import random

import pytest

from riskbudget_sidecar.engine.book import Book
from riskbudget_sidecar.engine.types import Position, Side, SymbolExposure
from tests.engine.builders import NOW, fill, reservation

PRICES = {"AAA": 100.0, "BBB": 50.0, "CCC": 20.0}


def marked_book() -> Book:
    book = Book()
    for symbol, price in PRICES.items():
        book.mark(symbol, price)
    return book


def test_exposure_of_an_empty_book_is_flat():
    book = Book()

    assert book.exposure("alpha", "AAA") == SymbolExposure()
    assert book.net_exposure("AAA") == SymbolExposure()
    assert book.positions() == []
    assert book.symbols() == ()


def test_fill_without_reservation_moves_the_position():
    book = Book()

    position, remaining = book.apply_fill(fill(Side.SELL, 40, client_order_id="elsewhere"))

    assert position == Position("alpha", "AAA", -40)
    assert remaining == 0.0
    assert book.exposure("alpha", "AAA") == SymbolExposure(position=-40)


def test_reserve_holds_quantity_as_pending_by_direction():
    book = Book()

    book.reserve(reservation(30, client_order_id="buy"))
    book.reserve(reservation(-20, client_order_id="sell"))

    assert book.exposure("alpha", "AAA") == SymbolExposure(0, pending_buy=30, pending_sell=20)
    assert book.reservation("buy") == reservation(30, client_order_id="buy")


def test_reserving_the_same_order_twice_holds_it_once():
    book = Book()

    book.reserve(reservation(30))
    book.reserve(reservation(30))

    assert book.exposure("alpha", "AAA").pending_buy == 30
    assert len(book.reservations()) == 1


def test_reserving_an_order_again_replaces_its_reservation():
    book = Book()
    book.reserve(reservation(30))

    book.reserve(reservation(-10, symbol="BBB"))

    assert book.exposure("alpha", "AAA") == SymbolExposure()
    assert book.exposure("alpha", "BBB").pending_sell == 10


def test_reserve_refuses_a_zero_or_non_finite_quantity():
    book = Book()

    with pytest.raises(ValueError, match="finite and non-zero"):
        book.reserve(reservation(0))
    with pytest.raises(ValueError, match="finite and non-zero"):
        book.reserve(reservation(math.nan))


def test_release_frees_the_reservation_once():
    book = Book()
    book.reserve(reservation(30))

    first = book.release("o-1")
    second = book.release("o-1")

    assert (first, second) == (True, False)
    assert book.exposure("alpha", "AAA") == SymbolExposure()
    assert book.reservations() == []


def test_partial_fill_settles_that_much_of_the_reservation():
    book = Book()
    book.reserve(reservation(100))

    position, remaining = book.apply_fill(fill(Side.BUY, 30))

    assert position.quantity == 30
    assert remaining == 70
    assert book.exposure("alpha", "AAA") == SymbolExposure(30, pending_buy=70)
    assert book.reservation("o-1").signed_quantity == 70


def test_full_fill_removes_the_reservation():
    book = Book()
    book.reserve(reservation(-100))
    book.apply_fill(fill(Side.SELL, 60))

    position, remaining = book.apply_fill(fill(Side.SELL, 40))

    assert position.quantity == -100
    assert remaining == 0.0
    assert book.reservation("o-1") is None
    assert book.exposure("alpha", "AAA") == SymbolExposure(position=-100)


def test_overfill_removes_the_reservation_and_moves_the_whole_fill():
    book = Book()
    book.reserve(reservation(50))

    position, remaining = book.apply_fill(fill(Side.BUY, 80))

    assert (position.quantity, remaining) == (80, 0.0)
    assert book.reservations() == []


def test_fills_summing_to_zero_leave_the_symbol_flat_despite_float_noise():
    book = Book()
    book.apply_fill(fill(Side.BUY, 0.1))
    book.apply_fill(fill(Side.BUY, 0.2))

    position, _ = book.apply_fill(fill(Side.SELL, 0.3))

    assert position.quantity == 0.0
    assert book.positions() == []
    assert book.symbols() == ()


def test_fill_refuses_a_non_positive_quantity():
    with pytest.raises(ValueError, match="positive and finite"):
        Book().apply_fill(fill(Side.BUY, 0))


def test_net_exposure_sums_strategies():
    book = Book()
    book.set_positions([Position("alpha", "AAA", 100), Position("beta", "AAA", -30)])
    book.reserve(reservation(50, client_order_id="a", strategy="alpha"))
    book.reserve(reservation(-20, client_order_id="b", strategy="beta"))

    net = book.net_exposure("AAA")

    assert net == SymbolExposure(70, pending_buy=50, pending_sell=20)
    assert dict(book.symbol_exposures("AAA")) == {
        "alpha": SymbolExposure(100, pending_buy=50),
        "beta": SymbolExposure(-30, pending_sell=20),
    }


def test_net_exposure_is_the_remaining_strategys_once_the_other_goes_flat():
    book = marked_book()
    book.set_positions([Position("alpha", "AAA", 100), Position("beta", "AAA", -30)])
    book.reserve(reservation(-20, client_order_id="b", strategy="beta"))

    book.apply_fill(fill(Side.SELL, 100))

    assert book.net_exposure("AAA") == SymbolExposure(-30, pending_sell=20)
    assert book.total_gross(PRICES.get) == 50 * 100
    assert book.gross_besides("alpha", "BBB", PRICES.get) == (0.0, 50 * 100)


def test_quantities_are_the_positions_by_strategy_and_symbol_without_reservations():
    book = Book()
    book.set_positions([Position("alpha", "AAA", 100), Position("beta", "CCC", -10)])
    book.reserve(reservation(50, symbol="BBB"))

    quantities = book.quantities()

    assert quantities == {("alpha", "AAA"): 100, ("beta", "CCC"): -10}
    assert quantities == {(p.strategy, p.symbol): p.quantity for p in book.positions()}


def test_set_positions_replaces_the_whole_book_and_keeps_reservations():
    book = Book()
    book.set_positions([Position("alpha", "AAA", 100), Position("beta", "CCC", 10)])
    book.reserve(reservation(5, symbol="BBB"))

    held = book.set_positions([Position("beta", "AAA", -7), Position("alpha", "BBB", 0)])

    assert held == 1
    assert book.positions() == [Position("beta", "AAA", -7)]
    assert book.exposure("alpha", "BBB") == SymbolExposure(0, pending_buy=5)


def test_set_positions_for_one_strategy_leaves_the_others_alone():
    book = Book()
    book.set_positions([Position("alpha", "AAA", 100), Position("alpha", "BBB", 5),
                        Position("beta", "AAA", 30)])

    book.set_positions([Position("alpha", "BBB", 8)], strategy="alpha")

    assert sorted(book.positions(), key=lambda p: p.strategy) == [
        Position("alpha", "BBB", 8), Position("beta", "AAA", 30)]
    assert book.net_exposure("AAA") == SymbolExposure(position=30)


def test_set_positions_twice_is_the_same_as_once():
    book = Book()
    positions = [Position("alpha", "AAA", 100), Position("beta", "CCC", -10)]
    book.set_positions(positions)
    before = (book.positions(), book.strategy_gross("alpha", PRICES.get),
              book.total_gross(PRICES.get))

    book.set_positions(positions)

    assert (book.positions(), book.strategy_gross("alpha", PRICES.get),
            book.total_gross(PRICES.get)) == before


@pytest.mark.parametrize("positions, strategy, message", [
    ([Position("beta", "AAA", 1)], "alpha", "when replacing 'alpha'"),
    ([Position("alpha", "AAA", 1), Position("alpha", "AAA", 2)], None, "duplicate position"),
    ([Position("alpha", "AAA", math.inf)], None, "must be finite"),
])
def test_set_positions_refuses_bad_input_and_changes_nothing(positions, strategy, message):
    book = Book()
    book.set_positions([Position("alpha", "BBB", 3)])

    with pytest.raises(ValueError, match=message):
        book.set_positions(positions, strategy)

    assert book.positions() == [Position("alpha", "BBB", 3)]


def test_expire_drops_reservations_due_by_now_and_keeps_later_ones():
    book = Book()
    book.reserve(reservation(10, client_order_id="due", expires_at=NOW))
    book.reserve(reservation(20, client_order_id="later", expires_at=NOW + 1))

    expired = book.expire(NOW)

    assert [r.client_order_id for r in expired] == ["due"]
    assert book.exposure("alpha", "AAA").pending_buy == 20


def test_expire_skips_released_and_re_reserved_orders_and_keeps_a_part_filled_ones_time():
    book = Book()
    book.reserve(reservation(10, client_order_id="released", expires_at=NOW))
    book.release("released")
    book.reserve(reservation(10, client_order_id="again", expires_at=NOW))
    book.reserve(reservation(15, client_order_id="again", expires_at=NOW + 5))  # replaces it
    book.reserve(reservation(20, client_order_id="filled", expires_at=NOW + 1))
    book.apply_fill(fill(Side.BUY, 5, client_order_id="filled"))

    at_now, at_one, at_five = book.expire(NOW), book.expire(NOW + 1), book.expire(NOW + 5)

    assert at_now == []
    assert [(r.client_order_id, r.signed_quantity) for r in at_one] == [("filled", 15)]
    assert [r.client_order_id for r in at_five] == ["again"]
    assert book.reservations() == []


def test_strategy_gross_is_worst_case_over_the_strategys_symbols():
    book = Book()
    book.set_positions([Position("alpha", "AAA", 100), Position("alpha", "BBB", -40),
                        Position("beta", "CCC", 1000)])
    book.reserve(reservation(-300, symbol="AAA"))  # worst case: 100 - 300 = -200

    gross = book.strategy_gross("alpha", PRICES.get)

    assert gross == 200 * 100 + 40 * 50


def test_total_gross_adds_strategies_without_netting_but_symbol_gross_nets():
    book = Book()
    book.set_positions([Position("alpha", "AAA", 100), Position("beta", "AAA", -60)])

    assert book.total_gross(PRICES.get) == 160 * 100
    assert book.symbol_gross("AAA", PRICES.get) == 40 * 100


def test_symbol_without_a_price_is_valued_at_zero():
    book = Book()
    book.set_positions([Position("alpha", "AAA", 100), Position("alpha", "ZZZ", 100)])

    assert book.strategy_gross("alpha", PRICES.get) == 100 * 100
    assert book.symbol_gross("ZZZ", PRICES.get) == 0.0


def test_gross_besides_leaves_out_the_strategys_own_exposure_in_the_symbol():
    book = marked_book()
    book.set_positions([Position("alpha", "AAA", 100), Position("alpha", "BBB", 40),
                        Position("beta", "AAA", 10), Position("beta", "CCC", 50)])

    strategy_rest, total_rest = book.gross_besides("alpha", "AAA", PRICES.get)

    assert strategy_rest == 40 * 50
    assert total_rest == 40 * 50 + 10 * 100 + 50 * 20


def test_gross_besides_at_marks_matches_the_price_lookup_after_any_writes():
    book = marked_book()
    book.set_positions([Position("alpha", "AAA", 100), Position("beta", "CCC", 50)])
    book.reserve(reservation(-250, client_order_id="a"))
    book.reserve(reservation(30, client_order_id="b", symbol="BBB"))
    book.apply_fill(fill(Side.SELL, 100, client_order_id="a"))
    book.mark("AAA", 110.0)
    book.release("b")
    book.set_positions([Position("beta", "AAA", 5)], strategy="beta")
    prices = {**PRICES, "AAA": 110.0}

    marked = book.gross_besides("alpha", "CCC", prices.get)

    assert marked == pytest.approx((book.strategy_gross("alpha", prices.get),
                                    book.total_gross(prices.get)))


def test_gross_besides_values_unmarked_symbols_with_the_price_lookup():
    book = Book()
    book.mark("AAA", 100.0)
    book.set_positions([Position("alpha", "AAA", 10), Position("alpha", "BBB", 4),
                        Position("beta", "BBB", 6)])

    strategy_rest, total_rest = book.gross_besides("alpha", "BBB", PRICES.get)

    assert strategy_rest == 10 * 100
    assert total_rest == 10 * 100 + 6 * 50


def test_marked_gross_resets_to_zero_when_the_book_goes_flat():
    book = marked_book()
    book.apply_fill(fill(Side.BUY, 0.1))
    book.mark("AAA", 100.3)
    book.apply_fill(fill(Side.SELL, 0.1))

    assert book.gross_besides("alpha", "BBB", PRICES.get) == (0.0, 0.0)


def test_mark_refuses_a_non_positive_price():
    with pytest.raises(ValueError, match="positive and finite"):
        Book().mark("AAA", 0.0)


def test_pending_sums_follow_reservations_made_released_and_part_filled_in_any_order():
    rng = random.Random(17)
    book = Book()
    open_orders: dict[str, float] = {}
    for step in range(400):
        if open_orders and rng.random() < 0.45:
            order_id = rng.choice(list(open_orders))
            if rng.random() < 0.5 or abs(open_orders[order_id]) < 0.01:
                book.release(order_id)
                del open_orders[order_id]
            else:
                quantity = open_orders[order_id]
                part = round(abs(quantity) * rng.uniform(0.1, 0.9), 3)
                book.apply_fill(fill(Side.BUY if quantity > 0 else Side.SELL, part, client_order_id=order_id))
                open_orders[order_id] = math.copysign(abs(quantity) - part, quantity)
        else:
            order_id = f"o-{step}"
            open_orders[order_id] = rng.choice([1, -1]) * round(rng.uniform(0.001, 500.0), 3)
            book.reserve(reservation(open_orders[order_id], client_order_id=order_id))

        exposure = book.exposure("alpha", "AAA")
        assert exposure.pending_buy == pytest.approx(sum(q for q in open_orders.values() if q > 0), abs=1e-9)
        assert exposure.pending_sell == pytest.approx(-sum(q for q in open_orders.values() if q < 0), abs=1e-9)

    for order_id in list(open_orders):
        book.release(order_id)
    assert (book.exposure("alpha", "AAA").pending_buy, book.exposure("alpha", "AAA").pending_sell) == (0.0, 0.0)


def test_after_a_mass_expiry_every_aggregate_is_that_of_a_book_holding_only_the_survivors():
    rng = random.Random(23)
    book, survivors_only = marked_book(), marked_book()
    for book_of in (book, survivors_only):
        book_of.apply_fill(fill(Side.BUY, 7, client_order_id="held", strategy="beta", symbol="BBB"))
    for n in range(300):
        made = reservation(rng.choice([1, -1]) * rng.randint(1, 50), client_order_id=f"o-{n}",
                           strategy=rng.choice(["alpha", "beta"]), symbol=rng.choice(list(PRICES)),
                           expires_at=NOW + rng.choice([0, 0, 0, 5]))
        book.reserve(made)
        if made.expires_at > NOW:
            survivors_only.reserve(made)

    expired = book.expire(NOW)

    assert len(expired) == 300 - len(survivors_only.reservations())
    for strategy in ("alpha", "beta"):
        assert book.strategy_gross(strategy, PRICES.get) == pytest.approx(
            survivors_only.strategy_gross(strategy, PRICES.get))
        for symbol in PRICES:
            assert book.exposure(strategy, symbol) == pytest.approx(survivors_only.exposure(strategy, symbol))
            assert book.net_exposure(symbol) == pytest.approx(survivors_only.net_exposure(symbol))
    assert book.total_gross(PRICES.get) == pytest.approx(survivors_only.total_gross(PRICES.get))


def test_has_unmarked_besides_names_another_exposed_symbol_without_a_mark():
    book = Book()
    empty = book.has_unmarked_besides("AAA")
    book.set_positions([Position("alpha", "AAA", 10)])
    only_itself, another = book.has_unmarked_besides("AAA"), book.has_unmarked_besides("BBB")
    book.set_positions([Position("alpha", "AAA", 10), Position("alpha", "BBB", 5)])
    two = book.has_unmarked_besides("AAA")
    book.mark("BBB", 50.0)

    assert (empty, only_itself, another, two) == (False, False, True, True)
    assert book.has_unmarked_besides("AAA") is False and book.unmarked() == ("AAA",)
