"""PriceScreen: a price too far from the last live one waits for the next to confirm it."""

from __future__ import annotations

import pytest

from riskbudget_sidecar.engine.price_screen import PriceScreen
from riskbudget_sidecar.engine.types import PriceTick


def tick(price: float, time: float = 1.0, symbol: str = "SPY") -> PriceTick:
    return PriceTick(symbol, price, time)


def test_a_price_within_the_move_either_way_passes():
    screen = PriceScreen(0.25)

    assert screen.screen(tick(125.0), 100.0) == (tick(125.0),)
    assert screen.screen(tick(80.0), 100.0) == (tick(80.0),)


def test_a_first_price_with_nothing_to_compare_it_with_waits_for_a_later_one_near_it():
    """Taken as it came, a first print of 0.0001 with no warm-up sized orders 1e6 times a limit."""
    screen = PriceScreen(0.25)

    assert screen.screen(tick(0.0001), None) == ()
    assert screen.screen(tick(0.0001), None) == ()  # the same tick again confirms nothing
    assert screen.screen(tick(100.0, 2.0), None) == ()  # far from it: held in its place
    assert screen.screen(tick(101.0, 3.0), None) == (tick(100.0, 2.0), tick(101.0, 3.0))
    assert screen.held("SPY") is None


@pytest.mark.parametrize("bad", [0.0001, 79.9, 125.1, 1e6])
def test_a_price_beyond_the_move_is_held_and_dropped_when_the_next_comes_back(bad):
    screen = PriceScreen(0.25)

    assert screen.screen(tick(bad), 100.0) == ()
    assert screen.held("SPY") == tick(bad)
    assert screen.screen(tick(101.0, 2.0), 100.0) == (tick(101.0, 2.0),)
    assert screen.held("SPY") is None


def test_a_held_price_the_next_one_confirms_is_applied_before_it():
    screen = PriceScreen(0.25)
    screen.screen(tick(150.0), 100.0)

    assert screen.screen(tick(152.0, 2.0), 100.0) == (tick(150.0), tick(152.0, 2.0))
    assert screen.held("SPY") is None


def test_a_next_price_far_from_both_is_held_in_place_of_the_first():
    screen = PriceScreen(0.25)
    screen.screen(tick(0.0001), 100.0)

    assert screen.screen(tick(500.0, 2.0), 100.0) == ()
    assert screen.held("SPY") == tick(500.0, 2.0)
    assert screen.held("QQQ") is None


def test_a_reload_changes_the_move_allowed():
    screen = PriceScreen(0.25)
    screen.reconfigure(1.0)

    assert screen.screen(tick(199.0), 100.0) == (tick(199.0),)
    assert screen.screen(tick(201.0), 100.0) == ()


def test_the_held_tick_sent_again_confirms_nothing():
    """Found by a reviewer: a retried publish (or a batch with the tick twice) confirmed the bad
    print with itself."""
    screen = PriceScreen(0.25)
    screen.screen(tick(0.0001), 100.0)

    assert screen.screen(tick(0.0001), 100.0) == ()
    assert screen.screen(tick(0.0001, 2.0), 100.0) == (tick(0.0001), tick(0.0001, 2.0))
