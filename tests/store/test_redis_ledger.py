"""The firm-wide ledger against a real valkey-server: exact arithmetic, limits that hold
under concurrent orders from many clients and processes, outages, keys and change
notifications."""

from __future__ import annotations

import asyncio
import math
import json
import random
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator

import pytest
import redis.asyncio
from redis.crc import key_slot

from riskbudget_sidecar.engine.types import Side
from riskbudget_sidecar.store import StoreError
from riskbudget_sidecar.store.redis_ledger import (
    CHANGE_OVERRIDES, CHANGE_TRADING_STATE, RESYNC, FirmExposure, Grant, GrantSpent, GrantsPaused,
    LedgerPosition, LedgerReservation, LedgerUnavailable, LotSizesDiffer, OrderIdReused, RedisLedger,
    StrategiesClaimed, TradingStopped, cover_lots, limit_cents, lot_cents,
)
from tests.store.valkey import ValkeyProcess

REPO = Path(__file__).resolve().parents[2]
EXPIRES = 10**12
"""An expiry (ms) no test reaches unless it reclaims past it."""

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyProcess]:
    """One server for the module; each test keeps to its own prefix."""
    with ValkeyProcess(tmp_path_factory.mktemp("valkey")) as running:
        yield running


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def open_ledger(server: ValkeyProcess, prefix: str) -> AsyncIterator[Callable[..., Any]]:
    """Connect RedisLedgers to the module's server under the test's prefix; all closed after.
    The timeout is generous: these tests are about arithmetic, not a loaded machine's tails."""
    opened: list[RedisLedger] = []

    async def open_(url: str | None = None, **options: Any) -> RedisLedger:
        options = {"prefix": prefix, "timeout": 5.0, **options}
        ledger = RedisLedger(url or server.url, **options)
        opened.append(ledger)
        await ledger.connect()
        await ledger.mark_asserted()  # as a sidecar does once it asserted its (here empty) book
        return ledger

    yield open_
    for ledger in opened:
        await ledger.close()


@pytest.fixture
async def ledger(open_ledger) -> RedisLedger:
    return await open_ledger()


async def reserve(ledger: RedisLedger, client_order_id: str, side: Side, lots: int, *,
                  strategy: str = "alpha", symbol: str = "AAA", lot_cents: int = 10_000,
                  symbol_limit: int = 10**12, total_limit: int = 10**12,
                  expires_at_ms: int = EXPIRES) -> Grant:
    return await ledger.check_and_reserve(
        client_order_id=client_order_id, strategy=strategy, symbol=symbol, side=side, lots=lots,
        lot_cents=lot_cents, symbol_limit_cents=symbol_limit, total_limit_cents=total_limit,
        expires_at_ms=expires_at_ms)


async def fill(ledger: RedisLedger, client_order_id: str, side: Side, lots: int, *,
               strategy: str = "alpha", symbol: str = "AAA", lot_cents: int = 10_000):
    return await ledger.apply_fill(client_order_id=client_order_id, strategy=strategy,
                                   symbol=symbol, side=side, lots=lots, lot_cents=lot_cents)


async def wait_for(queue: asyncio.Queue, seconds: float = 15.0) -> str:
    return await asyncio.wait_for(queue.get(), seconds)


# -- units ----------------------------------------------------------------------------------


def test_cover_lots_rounds_away_from_zero_but_not_past_a_whole_number_float_noise_hides() -> None:
    assert cover_lots(2.01, 1) == 3
    assert cover_lots(37, 100) == 1 and cover_lots(-37, 100) == -1
    assert cover_lots(0.3, 0.1) == 3  # 2.9999999999999996 in floats
    assert cover_lots(0.7, 0.1) == 7  # 7.000000000000001 in floats
    assert cover_lots(0.0, 100) == 0
    assert cover_lots(0.1 + 0.2 - 0.3, 0.1) == 0  # 5.6e-17: what float noise leaves of a round trip
    assert cover_lots(0.043 - (0.23 - 0.187), 0.1) == 0
    with pytest.raises(ValueError, match="finite"):
        cover_lots(math.nan, 1)


def test_lot_cents_is_the_value_of_one_lot_in_cents_rounded_up() -> None:
    assert lot_cents(101.57, 100) == 1_015_700
    assert lot_cents(0.29, 1) == 29  # 28.999999999999996 in floats
    assert lot_cents(14.9, 0.001) == 2  # 1.49 cents: never valued below its price
    assert lot_cents(0.001, 1) == 1
    with pytest.raises(ValueError, match="finite"):
        lot_cents(math.inf, 1)


def test_limit_cents_rounds_down() -> None:
    assert limit_cents(1_185_412.129) == 118_541_212
    assert limit_cents(0.29) == 29  # 28.999999999999996 in floats
    with pytest.raises(ValueError, match="non-negative"):
        limit_cents(-1)


async def test_inputs_beyond_2_53_are_refused_before_reaching_the_server(ledger) -> None:
    with pytest.raises(ValueError, match="2\\^53"):
        await reserve(ledger, "o-1", Side.BUY, 2**40, lot_cents=2**20)
    with pytest.raises(ValueError, match="2\\^53"):
        await reserve(ledger, "o-1", Side.BUY, 1, symbol_limit=2**53)
    with pytest.raises(ValueError, match="integer"):
        await reserve(ledger, "o-1", Side.BUY, 1.0)
    with pytest.raises(ValueError, match="x1f"):
        await reserve(ledger, "o-1", Side.BUY, 1, symbol="A\x1fB")
    assert await ledger.reservations() == []


async def test_a_change_the_stored_state_would_take_past_2_53_is_refused_and_writes_nothing(
        ledger) -> None:
    await ledger.set_positions([("alpha", "AAA", 2**40)], None, {"AAA": 1})
    before = await ledger.firm_exposure()

    with pytest.raises(ValueError, match="2\\^53"):
        await fill(ledger, "o-1", Side.BUY, 1, lot_cents=2**20)
    with pytest.raises(ValueError, match="2\\^53"):
        await reserve(ledger, "o-2", Side.SELL, 1, lot_cents=2**20)

    assert await ledger.firm_exposure() == before
    assert await ledger.positions() == [("alpha", "AAA", 2**40)]


def test_a_prefix_with_braces_is_refused_since_the_hash_tag_is_the_ledgers() -> None:
    with pytest.raises(ValueError, match="braces"):
        RedisLedger("redis://127.0.0.1:1", prefix="desk{1}")


# -- arithmetic -----------------------------------------------------------------------------


async def test_the_symbol_limit_grants_exactly_the_whole_lots_below_it(ledger) -> None:
    grant = await reserve(ledger, "o-1", Side.BUY, 100, lot_cents=10_000, symbol_limit=555_000)

    assert grant == Grant(55, symbol_limited=True, total_limited=False,
                          symbol_value_cents=1_000_000, total_value_cents=1_000_000)
    assert await ledger.firm_exposure() == FirmExposure(550_000, {"AAA": 55})
    assert await ledger.reservations() == [("o-1", "alpha", "AAA", 55, EXPIRES)]


async def test_a_symbol_limit_exactly_reached_grants_in_full(ledger) -> None:
    grant = await reserve(ledger, "o-1", Side.SELL, 100, lot_cents=10_000, symbol_limit=1_000_000)

    assert (grant.granted_lots, grant.symbol_limited) == (100, False)
    assert await ledger.reservations() == [("o-1", "alpha", "AAA", -100, EXPIRES)]


async def test_the_total_limit_binds_on_the_rest_of_the_firm(ledger) -> None:
    await ledger.set_positions([("beta", "BBB", -30)], None, {"BBB": 20_000})  # 600_000 cents

    grant = await reserve(ledger, "o-1", Side.BUY, 100, lot_cents=10_000, total_limit=1_000_000)

    assert grant == Grant(40, symbol_limited=False, total_limited=True,
                          symbol_value_cents=1_000_000, total_value_cents=1_600_000)
    assert await ledger.firm_exposure() == FirmExposure(1_000_000, {"AAA": 40, "BBB": 30})


async def test_when_both_limits_bind_the_tighter_one_decides(ledger) -> None:
    await ledger.set_positions([("beta", "BBB", 30)], None, {"BBB": 20_000})

    grant = await reserve(ledger, "o-1", Side.BUY, 100, lot_cents=10_000,
                          symbol_limit=250_000, total_limit=1_000_000)

    assert (grant.granted_lots, grant.symbol_limited, grant.total_limited) == (25, True, True)


async def test_reservations_of_every_strategy_count_in_the_orders_direction_only(ledger) -> None:
    await ledger.set_positions([("alpha", "AAA", 10), ("beta", "AAA", 20)], None, {"AAA": 100})
    await reserve(ledger, "o-1", Side.BUY, 15, strategy="beta", lot_cents=100)
    await reserve(ledger, "o-2", Side.SELL, 500, strategy="gamma", lot_cents=100)

    # net 30: buying reaches 30 + 15 (+ the order), selling 30 - 500, a worst case of 470
    assert (await ledger.firm_exposure()).worst_case_lots == {"AAA": 470}
    grant = await reserve(ledger, "o-3", Side.BUY, 600, lot_cents=100, symbol_limit=50_000)

    assert (grant.granted_lots, grant.symbol_limited) == (500 - 45, True)
    assert (await ledger.firm_exposure()).worst_case_lots == {"AAA": 500}


async def test_an_order_that_does_not_raise_the_worst_case_passes_any_limit(ledger) -> None:
    await ledger.set_positions([("alpha", "AAA", 100)], None, {"AAA": 10_000})

    # selling up to 200 only swings the position to -100: the worst case stays 100 lots
    within = await reserve(ledger, "o-1", Side.SELL, 150, symbol_limit=0, total_limit=0)
    beyond = await reserve(ledger, "o-2", Side.SELL, 100, symbol_limit=0, total_limit=0)

    assert (within.granted_lots, within.symbol_limited, within.total_limited) == (150, False, False)
    assert (beyond.granted_lots, beyond.symbol_limited, beyond.total_limited) == (50, True, True)
    assert (await ledger.firm_exposure()).worst_case_lots == {"AAA": 100}


async def test_a_repeated_order_id_gets_the_first_grant_and_reserves_nothing_more(ledger) -> None:
    first = await reserve(ledger, "o-1", Side.BUY, 100, symbol_limit=555_000)
    exposure = await ledger.firm_exposure()

    again = await reserve(ledger, "o-1", Side.BUY, 100, symbol_limit=10**12, lot_cents=99)

    assert again == Grant(55, True, False, 1_000_000, 1_000_000, replayed=True)
    assert (first.replayed, again.granted_lots) == (False, first.granted_lots)
    assert await ledger.firm_exposure() == exposure
    assert len(await ledger.reservations()) == 1


@pytest.mark.parametrize("ended_by", ["release", "fill", "part fill"])
async def test_a_repeat_of_a_grant_whose_reservation_ended_or_shrank_is_refused(ledger, ended_by) -> None:
    """Found by a tester: a sidecar keeps an order id for less long than the server keeps its
    grant; sent again once the sidecar had forgotten it, the order's filled grant was replayed and
    approved with nothing reserved, taking the firm to 116% of a symbol's limit."""
    await reserve(ledger, "o-1", Side.BUY, 10)
    if ended_by == "release":
        await ledger.release("o-1")
    else:
        await fill(ledger, "o-1", Side.BUY, 10 if ended_by == "fill" else 4)
    exposure = await ledger.firm_exposure()

    with pytest.raises(GrantSpent, match="o-1 was granted 10 lots"):
        await reserve(ledger, "o-1", Side.BUY, 10)
    assert await ledger.firm_exposure() == exposure


async def test_a_strategy_is_claimed_by_one_instance_at_a_time_and_released_as_it_stops(open_ledger) -> None:
    first, second = await open_ledger(instance="first"), await open_ledger(instance="second")

    async def refusal(ledger, strategies, lot_sizes="lots") -> str | None:
        try:
            await ledger.claim_strategies(strategies, lot_sizes)
        except StrategiesClaimed as refused:
            return str(refused)
        return None

    assert await refusal(first, ["trend", "carry"]) is None
    assert "'carry' by sidecar instance first" in await refusal(second, ["carry", "macro"])
    assert await refusal(first, ["trend"]) is None  # carry released: it no longer lists it
    assert await refusal(second, ["carry", "macro"]) is None
    assert "'trend' by sidecar instance first" in await refusal(second, ["trend"])
    assert await refusal(first, ()) is None  # as it stops
    assert await refusal(second, ["trend"]) is None  # and it no longer owns carry or macro
    assert await refusal(first, ["carry", "macro"]) is None


async def test_a_sidecar_counting_in_other_lot_sizes_than_the_server_claims_nothing(open_ledger) -> None:
    """Found by a reviewer: a sidecar started with other lot sizes added lots of 1 to another's
    lots of 100 on the server (the firm at 1.74 times a symbol's limit); and once the other had
    stopped, its positions stayed there in lots of 100 (1.67 times)."""
    first, second = await open_ledger(instance="first"), await open_ledger(instance="second")
    await first.claim_strategies(["trend"], "lots of 100")
    await first.set_positions([("trend", "AAA", 5), ("carry", "AAA", -5)], None, {"AAA": 10_000})  # net 0

    with pytest.raises(LotSizesDiffer, match="counts in other lot sizes"):
        await second.claim_strategies(["carry"], "lots of 1")
    await first.claim_strategies((), "lots of 100")  # it stops; what it held stays in lots of 100
    with pytest.raises(LotSizesDiffer, match="counts in other lot sizes"):
        await second.claim_strategies(["carry"], "lots of 1")
    await first.set_positions([], None, {"AAA": 10_000})  # flat: nothing counts in any lot size
    await second.claim_strategies(["carry"], "lots of 1")  # found by a reviewer: else stuck for good
    with pytest.raises(LotSizesDiffer, match="counts in other lot sizes"):
        await first.claim_strategies(["trend"], "lots of 100")


async def test_a_zero_grant_reserves_nothing_but_is_remembered(ledger) -> None:
    refused = await reserve(ledger, "o-1", Side.BUY, 10, symbol_limit=0)
    again = await reserve(ledger, "o-1", Side.BUY, 10)

    assert (refused.granted_lots, refused.symbol_limited) == (0, True)
    assert (again.granted_lots, again.replayed) == (0, True)
    assert await ledger.reservations() == []
    assert await ledger.firm_exposure() == FirmExposure(0, {})


async def test_an_order_id_reused_for_another_request_is_refused(ledger) -> None:
    await reserve(ledger, "o-1", Side.BUY, 10)

    with pytest.raises(OrderIdReused, match="o-1"):
        await reserve(ledger, "o-1", Side.BUY, 10, strategy="beta")
    with pytest.raises(OrderIdReused):
        await reserve(ledger, "o-1", Side.SELL, 10)
    assert issubclass(OrderIdReused, StoreError)


async def test_only_the_instance_holding_a_reservation_releases_or_settles_it(open_ledger) -> None:
    mine, other = await open_ledger(), await open_ledger()
    await reserve(mine, "o-1", Side.BUY, 10)

    with pytest.raises(OrderIdReused):  # the same id through another sidecar is another order
        await reserve(other, "o-1", Side.BUY, 10)
    released = await other.release("o-1")
    filled = await fill(other, "o-1", Side.SELL, 4, strategy="beta", symbol="BBB")

    assert (released, filled) == (False, (-4, 0))  # the fill moved its position, nothing else
    assert await mine.reservations() == [("o-1", "alpha", "AAA", 10, EXPIRES)]
    assert await fill(mine, "o-1", Side.BUY, 6) == (6, 4)
    restarted = await open_ledger(instance=mine.instance)
    assert await restarted.release("o-1") is True
    assert await mine.positions() == [("alpha", "AAA", 6), ("beta", "BBB", -4)]
    assert await mine.firm_exposure() == FirmExposure(6 * 10_000 + 4 * 10_000, {"AAA": 6, "BBB": 4})


async def test_fills_settle_the_reservation_and_move_the_position(ledger) -> None:
    await reserve(ledger, "o-1", Side.BUY, 50)

    assert await fill(ledger, "o-1", Side.BUY, 20) == (20, 30)
    assert await ledger.reservations() == [("o-1", "alpha", "AAA", 30, EXPIRES)]
    assert await fill(ledger, "o-1", Side.BUY, 30, lot_cents=12_000) == (50, 0)
    assert await ledger.reservations() == []
    assert await ledger.positions() == [LedgerPosition("alpha", "AAA", 50)]
    assert await ledger.firm_exposure() == FirmExposure(600_000, {"AAA": 50})


async def test_a_fill_with_no_reservation_still_moves_the_position(ledger) -> None:
    assert await fill(ledger, "unknown", Side.SELL, 7, lot_cents=3) == (-7, 0)
    assert await fill(ledger, "unknown", Side.BUY, 7, lot_cents=3) == (0, 0)

    assert await ledger.positions() == []
    assert await ledger.firm_exposure() == FirmExposure(0, {})


async def test_release_frees_the_reservation_and_restores_the_total(ledger) -> None:
    await ledger.set_positions([("beta", "BBB", 3)], None, {"BBB": 1_000})
    await reserve(ledger, "o-1", Side.SELL, 40)

    assert await ledger.release("o-1") is True
    assert await ledger.release("o-1") is False
    assert await ledger.firm_exposure() == FirmExposure(3_000, {"BBB": 3})


async def test_reclaim_frees_expired_reservations_once_and_forgets_grants_later(open_ledger) -> None:
    ledger = await open_ledger(grant_retention_ms=1_000)
    await reserve(ledger, "o-1", Side.BUY, 10, expires_at_ms=5_000)
    await reserve(ledger, "o-2", Side.BUY, 10, expires_at_ms=6_000)

    assert await ledger.reclaim_expired(4_999) == []
    assert await ledger.reclaim_expired(5_000) == ["o-1"]
    assert await ledger.reclaim_expired(5_000) == []
    with pytest.raises(GrantSpent):  # still remembered, and its reservation is gone
        await reserve(ledger, "o-1", Side.BUY, 10)
    assert await ledger.reclaim_expired(6_000) == ["o-2"]
    assert await ledger.reclaim_expired(6_000) == []  # o-1's grant is forgotten here
    assert not (await reserve(ledger, "o-1", Side.BUY, 10)).replayed
    assert await ledger.firm_exposure() == FirmExposure(100_000, {"AAA": 10})


async def test_a_grant_forgotten_before_its_reservation_was_reclaimed_frees_it(open_ledger) -> None:
    patient, hasty = await open_ledger(grant_retention_ms=10_000), await open_ledger(grant_retention_ms=0)
    await reserve(patient, "o-1", Side.BUY, 1, expires_at_ms=1_000)
    await reserve(patient, "o-2", Side.BUY, 1, expires_at_ms=1_001)
    await reserve(hasty, "o-3", Side.BUY, 1, expires_at_ms=1_500)  # forgotten first, at 1_500

    assert await hasty.reclaim_expired(20_000, limit=1) == ["o-1", "o-3"]
    assert await hasty.reclaim_expired(20_000, limit=1) == ["o-2"]
    assert await hasty.reclaim_expired(20_000, limit=1) == []
    assert await hasty.firm_exposure() == FirmExposure(0, {})


async def server_time_ms(server: ValkeyProcess) -> int:
    raw = redis.asyncio.Redis.from_url(server.url)
    seconds, microseconds = await raw.time()
    await raw.aclose()
    return seconds * 1000 + microseconds // 1000


async def test_a_clock_running_ahead_frees_its_own_reservations_early_but_not_anothers(
        open_ledger, server: ValkeyProcess) -> None:
    holder, ahead = await open_ledger(), await open_ledger()
    now = await server_time_ms(server)
    for ledger, order_id in ((holder, "o-held"), (ahead, "o-own")):
        await reserve(ledger, order_id, Side.BUY, 10, expires_at_ms=now + 600_000)

    freed = await ahead.reclaim_expired(now + 1_200_000)  # its clock twenty minutes ahead

    assert freed == ["o-own"]  # its own, and its own grant is forgotten
    assert [r.client_order_id for r in await holder.reservations()] == ["o-held"]
    assert (await reserve(holder, "o-held", Side.BUY, 10, expires_at_ms=now + 600_000)).replayed
    assert not (await reserve(ahead, "o-own", Side.BUY, 10, expires_at_ms=now + 600_000)).replayed
    assert await holder.reclaim_expired(now + 600_000) == ["o-held"]  # by its holder's clock


async def test_anothers_reservations_not_yet_due_do_not_crowd_out_the_callers_own(
        open_ledger, server: ValkeyProcess) -> None:
    holder, ahead = await open_ledger(), await open_ledger()
    now = await server_time_ms(server)
    for number in range(5):  # another's, due only within the caller's lead
        await reserve(holder, f"o-held-{number}", Side.BUY, 1, expires_at_ms=now + 600_000)
    await reserve(ahead, "o-own", Side.BUY, 1, expires_at_ms=now + 600_001)

    freed = await ahead.reclaim_expired(now + 1_200_000, limit=2)  # its clock twenty minutes ahead

    assert freed == ["o-own"]


async def test_reclaim_drops_ids_left_without_their_reservation_or_grant(ledger, server: ValkeyProcess) -> None:
    now = await server_time_ms(server)
    await reserve(ledger, "o-real", Side.BUY, 3, expires_at_ms=now - 1)
    keys = ledger._keys
    await ledger._run("strays", lambda redis: redis.zadd(keys["expiries"], {"o-evicted": now - 5}))
    await ledger._run("strays", lambda redis: redis.zadd(keys["forget"], {"o-forgotten": now - 5}))

    freed = await ledger.reclaim_expired(now)

    assert freed == ["o-real"]
    assert await ledger._run("left", lambda redis: redis.zrange(keys["expiries"], 0, -1)) == []


async def test_set_positions_of_one_strategy_leaves_the_others_and_revalues(ledger) -> None:
    await ledger.set_positions([("alpha", "AAA", 5), ("beta", "AAA", 7), ("beta", "BBB", -2)],
                               None, {"AAA": 100, "BBB": 1_000})

    held = await ledger.set_positions([("beta", "CCC", 4), ("beta", "BBB", 0)], "beta",
                                      {"AAA": 200, "CCC": 50})

    assert held == 1
    assert await ledger.positions() == [("alpha", "AAA", 5), ("beta", "CCC", 4)]
    assert await ledger.firm_exposure() == FirmExposure(5 * 200 + 4 * 50, {"AAA": 5, "CCC": 4})


async def test_set_positions_refuses_bad_input_and_changes_nothing(ledger) -> None:
    await ledger.set_positions([("alpha", "AAA", 5)], None, {"AAA": 100})

    with pytest.raises(ValueError, match="no mark"):
        await ledger.set_positions([("alpha", "NEW", 1)], None, {})
    with pytest.raises(ValueError, match="duplicate"):
        await ledger.set_positions([("alpha", "AAA", 1), ("alpha", "AAA", 2)], None, {})
    with pytest.raises(ValueError, match="another|of strategy"):
        await ledger.set_positions([("beta", "AAA", 1)], "alpha", {})

    assert await ledger.positions() == [("alpha", "AAA", 5)]
    assert await ledger.firm_exposure() == FirmExposure(500, {"AAA": 5})


# -- the ledger against a pure-Python model of its rules ------------------------------------


class Model:
    """The ledger's rules in Python integers, recomputed from scratch at every step: the
    grant by bisection over the rule's definition, aggregates and total by summing."""

    def __init__(self, retention_ms: int) -> None:
        self.retention_ms = retention_ms
        self.positions: dict[tuple[str, str], int] = {}
        self.reservations: dict[str, list] = {}  # id -> [strategy, symbol, signed lots, expires]
        self.grants: dict[str, tuple] = {}  # id -> (request, answer, forget at)
        self.marks: dict[str, int] = {}
        self.contributions: dict[str, int] = {}

    @property
    def total(self) -> int:
        return sum(self.contributions.values())

    def worst(self, symbol: str, buy_more: int = 0, sell_more: int = 0) -> int:
        net = sum(lots for (_, held), lots in self.positions.items() if held == symbol)
        buy = buy_more + sum(r[2] for r in self.reservations.values() if r[1] == symbol and r[2] > 0)
        sell = sell_more - sum(r[2] for r in self.reservations.values() if r[1] == symbol and r[2] < 0)
        return max(abs(net + buy), abs(net - sell))

    def revalue(self, symbol: str, mark: int | None = None) -> None:
        worst = self.worst(symbol)
        if worst == 0:
            self.marks.pop(symbol, None)
            self.contributions.pop(symbol, None)
        else:
            self.marks[symbol] = mark or self.marks[symbol]
            self.contributions[symbol] = worst * self.marks[symbol]

    def check_and_reserve(self, order_id, strategy, symbol, side, lots, lot_cents, symbol_limit,
                          total_limit, expires_at) -> tuple:
        request = (strategy, symbol, side, lots)
        if order_id in self.grants:
            if self.grants[order_id][0] != request:
                raise OrderIdReused(order_id)
            answer = self.grants[order_id][1]
            held = self.reservations.get(order_id)
            if answer[0] and (held is None or abs(held[2]) < answer[0]):
                raise GrantSpent(order_id)
            return (True, *answer)

        def worst(granted: int) -> int:
            return self.worst(symbol, *((granted, 0) if side is Side.BUY else (0, granted)))

        now, others = worst(0), self.total - self.contributions.get(symbol, 0)

        def allowed(granted: int) -> bool:
            value = worst(granted) * lot_cents
            return worst(granted) <= now or (value <= symbol_limit and others + value <= total_limit)

        low, high = 0, lots  # allowed(low) always holds; bisect for the largest allowed
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if allowed(middle) else (low, middle - 1)
        full = worst(lots) * lot_cents
        answer = (low, worst(lots) > now and full > symbol_limit,
                  worst(lots) > now and others + full > total_limit, full, others + full)
        self.grants[order_id] = (request, answer, expires_at + self.retention_ms)
        if low:
            self.reservations[order_id] = [strategy, symbol, side.sign * low, expires_at]
            self.revalue(symbol, lot_cents)
        return (False, *answer)

    def release(self, order_id: str) -> bool:
        held = self.reservations.pop(order_id, None)
        if held is not None:
            self.revalue(held[1])
        return held is not None

    def apply_fill(self, order_id, strategy, symbol, side, lots, lot_cents) -> tuple[int, int]:
        key = (strategy, symbol)
        self.positions[key] = self.positions.get(key, 0) + side.sign * lots
        if not self.positions[key]:
            del self.positions[key]
        remaining = 0
        held = self.reservations.get(order_id)
        if held is not None:
            remaining = max(abs(held[2]) - lots, 0)
            if remaining:
                held[2] = remaining if held[2] > 0 else -remaining
            else:
                del self.reservations[order_id]
            self.revalue(held[1])
        self.revalue(symbol, lot_cents)
        return self.positions.get(key, 0), remaining

    def set_positions(self, positions, strategy, marks) -> int:
        replaced = [key for key in self.positions if strategy is None or key[0] == strategy]
        touched = {key[1] for key in replaced} | {symbol for _, symbol, _ in positions} | set(marks)
        kept = dict(self.positions)
        for key in replaced:
            del self.positions[key]
        self.positions.update({(owner, symbol): lots for owner, symbol, lots in positions if lots})
        missing = [s for s in touched if self.worst(s) and s not in marks and s not in self.marks]
        if missing:
            self.positions = kept
            raise ValueError(f"no mark for {missing}")
        for symbol in touched:
            self.revalue(symbol, marks.get(symbol))
        return sum(1 for *_, lots in positions if lots)

    def reclaim_expired(self, now: int) -> list[str]:
        freed = [i for i, held in self.reservations.items() if held[3] <= now]
        for order_id in freed:
            self.release(order_id)
        for order_id in [i for i, grant in self.grants.items() if grant[2] <= now]:
            del self.grants[order_id]
        return sorted(freed)

    def exposure(self) -> FirmExposure:
        symbols = {symbol for _, symbol in self.positions} | {r[1] for r in self.reservations.values()}
        worst = {symbol: self.worst(symbol) for symbol in sorted(symbols)}
        return FirmExposure(self.total, {symbol: lots for symbol, lots in worst.items() if lots})


async def same_state(ledger: RedisLedger, model: Model, raw: redis.asyncio.Redis, prefix: str) -> None:
    assert await ledger.firm_exposure() == model.exposure()
    assert await ledger.positions() == sorted(
        LedgerPosition(*key, lots) for key, lots in model.positions.items())
    assert await ledger.reservations() == [
        LedgerReservation(order_id, *held) for order_id, held in sorted(model.reservations.items())]
    stored = {name: {field: int(value) for field, value in
                     (await raw.hgetall(f"{prefix}:{{rb}}:{name}")).items()}
              for name in ("marks", "contributions")}
    assert stored == {"marks": model.marks, "contributions": model.contributions}
    assert int(await raw.get(f"{prefix}:{{rb}}:total") or 0) == model.total


async def outcome(call: Callable[[], Any]) -> Any:
    """What a call returned, or the type of what it raised: ledger and model must agree."""
    try:
        result = call()
        if asyncio.iscoroutine(result):
            result = await result
    except (ValueError, OrderIdReused, GrantSpent) as error:
        return type(error)
    if isinstance(result, Grant):
        return (result.replayed, result.granted_lots, result.symbol_limited, result.total_limited,
                result.symbol_value_cents, result.total_value_cents)
    return tuple(result) if isinstance(result, tuple) else result


@pytest.mark.parametrize("seed", [11, 12])
async def test_many_random_operations_leave_exactly_the_models_state(
        open_ledger, server: ValkeyProcess, prefix: str, seed: int) -> None:
    retention = 5_000
    ledger = await open_ledger(grant_retention_ms=retention)
    model = Model(retention)
    raw = redis.asyncio.Redis.from_url(server.url, decode_responses=True)
    rng = random.Random(seed)
    symbols, strategies = ("AAA", "BBB", "CCC", "DDD"), ("alpha", "beta", "gamma")
    base = {"AAA": 10_137, "BBB": 2_501, "CCC": 99_999, "DDD": 7}
    now, issued, grants = 1_000_000, [], Counter()

    def mark(symbol: str) -> int:
        return max(1, base[symbol] + rng.randint(-base[symbol] // 5, base[symbol] // 5))

    for step in range(2_000):
        now += rng.randint(0, 300)
        roll = rng.random()
        if roll < 0.45:
            if issued and rng.random() < 0.15:  # a repeat, of the same request or not
                order_id, request = rng.choice(issued)
                if rng.random() < 0.3:
                    request = (*request[:3], request[3] + 1)
            else:
                order_id = f"o-{step}"
                request = (rng.choice(strategies), rng.choice(symbols), rng.choice(list(Side)),
                           rng.randint(1, 300))
                issued.append((order_id, request))
            strategy, symbol, side, lots = request
            args = (order_id, strategy, symbol, side, lots, mark(symbol),
                    rng.randint(0, 60) * 50_000, rng.randint(0, 200) * 100_000,
                    now + rng.randint(500, 20_000))
            expected = await outcome(lambda: model.check_and_reserve(*args))
            got = await outcome(lambda: ledger.check_and_reserve(**dict(zip(
                ("client_order_id", "strategy", "symbol", "side", "lots", "lot_cents",
                 "symbol_limit_cents", "total_limit_cents", "expires_at_ms"), args))))
            if isinstance(got, tuple) and not got[0]:
                grants["zero" if not got[1] else "cut" if got[1] < lots else "full"] += 1
        elif roll < 0.7:
            if model.reservations and rng.random() < 0.8:
                order_id = rng.choice(sorted(model.reservations))
                strategy, symbol, signed, _ = model.reservations[order_id]
                side = Side.BUY if signed > 0 else Side.SELL
                if rng.random() < 0.1:
                    symbol, side = rng.choice(symbols), rng.choice(list(Side))
                lots = rng.randint(1, abs(signed) + 20)
            else:
                order_id, strategy, symbol = "around", rng.choice(strategies), rng.choice(symbols)
                side, lots = rng.choice(list(Side)), rng.randint(1, 100)
            args = (order_id, strategy, symbol, side, lots, mark(symbol))
            expected = await outcome(lambda: model.apply_fill(*args))
            got = await outcome(lambda: ledger.apply_fill(**dict(zip(
                ("client_order_id", "strategy", "symbol", "side", "lots", "lot_cents"), args))))
        elif roll < 0.85:
            order_id = rng.choice(sorted(model.reservations) or ["none"])
            expected, got = model.release(order_id), await ledger.release(order_id)
        elif roll < 0.95:
            expected, got = model.reclaim_expired(now), sorted(await ledger.reclaim_expired(now))
        else:
            strategy = rng.choice([None, *strategies])
            positions = [(strategy or rng.choice(strategies), symbol, rng.randint(-500, 500))
                         for symbol in rng.sample(symbols, rng.randint(0, 3))]
            marks = {symbol: mark(symbol) for symbol in symbols if rng.random() < 0.7}
            expected = await outcome(lambda: model.set_positions(positions, strategy, marks))
            got = await outcome(lambda: ledger.set_positions(positions, strategy, marks))
        assert got == expected, f"step {step}"
        if step % 100 == 0:
            await same_state(ledger, model, raw, prefix)

    await same_state(ledger, model, raw, prefix)
    assert min(grants["full"], grants["cut"], grants["zero"]) > 50, grants
    await raw.aclose()


# -- concurrency: limits hold whatever the interleaving -------------------------------------

LOT_CENTS = {"AAA": 10_000, "BBB": 25_000, "CCC": 3_333}
SYMBOL_LIMITS = {"AAA": 4_000_000, "BBB": 6_000_000, "CCC": 1_000_000}
TOTAL_LIMIT = 9_000_000
"""Marks stay fixed here, so only orders can move the exposure, and no order may pass a limit."""
START = [("seed", "AAA", 150), ("seed", "BBB", -100), ("seed", "CCC", 30)]


async def place_random_orders(ledger: RedisLedger, name: str, seed: int, count: int) -> dict:
    """One client's random orders, fills and releases; returns how many orders were cut down
    and the reservations it still holds."""
    rng = random.Random(seed)
    held: dict[str, list] = {}  # order id -> [symbol, side, lots]
    cut = 0
    for number in range(count):
        roll = rng.random()
        if roll < 0.7 or not held:
            order_id, symbol, side = f"{name}-{number}", rng.choice(list(LOT_CENTS)), rng.choice(list(Side))
            lots = rng.randint(1, 120)
            grant = await ledger.check_and_reserve(
                client_order_id=order_id, strategy=name, symbol=symbol, side=side, lots=lots,
                lot_cents=LOT_CENTS[symbol], symbol_limit_cents=SYMBOL_LIMITS[symbol],
                total_limit_cents=TOTAL_LIMIT, expires_at_ms=EXPIRES)
            cut += grant.granted_lots < lots
            if grant.granted_lots:
                held[order_id] = [symbol, side, grant.granted_lots]
        elif roll < 0.85:
            order_id = rng.choice(sorted(held))
            symbol, side, lots = held[order_id]
            filled = rng.randint(1, lots)
            _, remaining = await ledger.apply_fill(
                client_order_id=order_id, strategy=name, symbol=symbol, side=side, lots=filled,
                lot_cents=LOT_CENTS[symbol])
            assert remaining == lots - filled
            held[order_id][2] = remaining
            if not remaining:
                del held[order_id]
        else:
            order_id = rng.choice(sorted(held))
            del held[order_id]
            assert await ledger.release(order_id) is True
    return {"cut": cut,
            "held": {order_id: (symbol, side.sign * lots) for order_id, (symbol, side, lots) in held.items()}}


def within_limits(exposure: FirmExposure) -> None:
    for symbol, worst in exposure.worst_case_lots.items():
        assert worst * LOT_CENTS[symbol] <= SYMBOL_LIMITS[symbol], symbol
    assert exposure.total_gross_cents <= TOTAL_LIMIT


async def watch(ledger: RedisLedger, done: asyncio.Event) -> int:
    """Check every snapshot the ledger shows while the orders run; returns how many."""
    snapshots = 0
    while not done.is_set():
        within_limits(await ledger.firm_exposure())
        snapshots += 1
        await asyncio.sleep(0.005)
    return snapshots


async def check_after_the_run(ledger: RedisLedger, results: list[dict]) -> None:
    """The reservations are exactly what the clients hold, and rebuilt from the positions and
    reservations alone, the exposure is within every limit and equal to the ledger's."""
    held = {order_id: lots for result in results for order_id, (_, lots) in result["held"].items()}
    reservations = await ledger.reservations()
    assert {r.client_order_id: r.signed_lots for r in reservations} == held
    net = {symbol: 0 for symbol in LOT_CENTS}
    for _, symbol, lots in await ledger.positions():
        net[symbol] += lots
    rebuilt = {}
    for symbol in LOT_CENTS:
        buy = sum(r.signed_lots for r in reservations if r.symbol == symbol and r.signed_lots > 0)
        sell = -sum(r.signed_lots for r in reservations if r.symbol == symbol and r.signed_lots < 0)
        rebuilt[symbol] = max(abs(net[symbol] + buy), abs(net[symbol] - sell))
    exposure = FirmExposure(sum(lots * LOT_CENTS[s] for s, lots in rebuilt.items()),
                            {s: lots for s, lots in rebuilt.items() if lots})
    within_limits(exposure)
    assert await ledger.firm_exposure() == exposure
    assert sum(result["cut"] for result in results) > 0  # the limits did bind


async def test_concurrent_clients_never_jointly_pass_a_limit(open_ledger) -> None:
    ledgers = [await open_ledger() for _ in range(8)]
    await ledgers[0].set_positions(START, None, {s: LOT_CENTS[s] for s in LOT_CENTS})
    done = asyncio.Event()
    watcher = asyncio.create_task(watch(ledgers[0], done))

    results = await asyncio.gather(*(place_random_orders(ledger, f"client{n}", 100 + n, 250)
                                     for n, ledger in enumerate(ledgers)))
    done.set()

    assert await watcher > 0
    await check_after_the_run(ledgers[0], results)


WORKER = """
import asyncio, json, sys
from riskbudget_sidecar.store.redis_ledger import RedisLedger
from tests.store.test_redis_ledger import place_random_orders

async def main(url, prefix, name, seed, count):
    ledger = RedisLedger(url, prefix=prefix, timeout=5.0)
    await ledger.connect()
    await ledger.mark_asserted()
    try:
        print(json.dumps(await place_random_orders(ledger, name, int(seed), int(count))))
    finally:
        await ledger.close()

asyncio.run(main(*sys.argv[1:]))
"""


async def test_concurrent_processes_never_jointly_pass_a_limit(open_ledger, server, prefix) -> None:
    ledger = await open_ledger()
    await ledger.set_positions(START, None, {s: LOT_CENTS[s] for s in LOT_CENTS})
    done = asyncio.Event()
    watcher = asyncio.create_task(watch(ledger, done))

    workers = [await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKER, server.url, prefix, f"process{n}", str(200 + n), "300",
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for n in range(4)]
    outputs = [await worker.communicate() for worker in workers]
    done.set()

    assert [worker.returncode for worker in workers] == [0] * 4, [err.decode() for _, err in outputs]
    await watcher
    await check_after_the_run(ledger, [json.loads(out) for out, _ in outputs])


# -- outages --------------------------------------------------------------------------------


OUTAGE_TIMEOUT = 0.2
"""Short, as a sidecar would set it, with room for a reconnect on a busy machine."""


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ValkeyProcess]:
    """A server of the test's own, to stop, freeze and restart."""
    with ValkeyProcess(tmp_path / "valkey") as running:
        yield running


def every_call(ledger: RedisLedger) -> list[Callable[[], Awaitable[Any]]]:
    return [
        lambda: reserve(ledger, "o-1", Side.BUY, 1), lambda: ledger.release("o-1"),
        lambda: fill(ledger, "o-1", Side.BUY, 1), lambda: ledger.set_positions([], None, {}),
        lambda: ledger.reclaim_expired(0), ledger.positions, ledger.reservations,
        ledger.firm_exposure, lambda: ledger.set_trading_state("", "halted"),
        ledger.trading_states, lambda: ledger.put_override("x", "{}"),
        lambda: ledger.delete_override("x"), ledger.overrides,
    ]


@pytest.mark.timeout(60)
async def test_calls_fail_closed_while_the_server_is_down_and_work_once_it_is_back(
        open_ledger, own_server: ValkeyProcess) -> None:
    ledger = await open_ledger(own_server.url, timeout=OUTAGE_TIMEOUT)
    await reserve(ledger, "o-0", Side.BUY, 1)

    own_server.stop()
    for call in every_call(ledger):
        with pytest.raises(LedgerUnavailable, match="unavailable"):
            await call()
    assert await ledger.ping() is False

    own_server.start()  # same port, empty: nothing was saved
    assert await ledger.ping() is True
    with pytest.raises(LedgerUnavailable, match="does not hold this sidecar's marker"):
        await reserve(ledger, "o-0", Side.BUY, 1)  # no grant against a ledger that lost the firm's book
    await ledger.mark_asserted()  # what a sidecar does once it put its book back
    assert (await reserve(ledger, "o-0", Side.BUY, 1)).replayed is False
    for call in every_call(ledger):
        await call()


@pytest.mark.timeout(60)
async def test_a_frozen_server_makes_calls_time_out(open_ledger, own_server: ValkeyProcess) -> None:
    ledger = await open_ledger(own_server.url, timeout=OUTAGE_TIMEOUT)

    own_server.pause()
    try:
        with pytest.raises(LedgerUnavailable, match=f"no answer within {OUTAGE_TIMEOUT} s"):
            await reserve(ledger, "o-1", Side.BUY, 1)
        with pytest.raises(LedgerUnavailable):
            await ledger.positions()
    finally:
        own_server.resume()

    assert (await reserve(ledger, "o-1", Side.BUY, 1)).granted_lots == 1


async def test_a_ledger_that_could_not_connect_at_first_works_once_the_server_is_up(
        own_server: ValkeyProcess) -> None:
    ledger = RedisLedger(own_server.url, timeout=OUTAGE_TIMEOUT)
    own_server.stop()
    try:
        with pytest.raises(LedgerUnavailable, match="connect"):
            await ledger.connect()
        own_server.start()
        await ledger.mark_asserted()

        assert (await reserve(ledger, "o-1", Side.BUY, 1)).granted_lots == 1
    finally:
        await ledger.close()


@pytest.mark.timeout(60)
async def test_listen_resyncs_after_the_server_comes_back(open_ledger, own_server: ValkeyProcess) -> None:
    listener, writer = await open_ledger(own_server.url), await open_ledger(own_server.url)
    changes: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(listener.listen(changes.put_nowait, max_backoff=0.5))
    try:
        assert await wait_for(changes) == RESYNC

        own_server.stop()
        await asyncio.sleep(1.0)  # the listener tries and backs off meanwhile
        own_server.start()

        assert await wait_for(changes) == RESYNC
        await writer.put_override("ovr-1", "{}")
        assert await wait_for(changes) == CHANGE_OVERRIDES
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.timeout(60)
async def test_listen_notices_a_frozen_server_and_resyncs_when_it_wakes(
        open_ledger, own_server: ValkeyProcess) -> None:
    listener = await open_ledger(own_server.url)
    changes: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(listener.listen(changes.put_nowait, max_backoff=0.5))
    try:
        assert await wait_for(changes) == RESYNC

        own_server.pause()  # the connection stays open; only an unanswered ping tells
        await asyncio.sleep(3.0)
        own_server.resume()

        assert await wait_for(changes) == RESYNC
    finally:
        own_server.resume()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.timeout(120)
async def test_a_listener_cancelled_as_it_finds_the_server_restarted_stops(
        open_ledger, own_server: ValkeyProcess) -> None:
    listener = await open_ledger(own_server.url)
    for pause in range(0, 4_000, 200):  # microseconds: the moments around its reading the closed connection
        changes: asyncio.Queue[str] = asyncio.Queue()
        task = asyncio.create_task(listener.listen(changes.put_nowait))
        assert await wait_for(changes) == RESYNC

        own_server.stop()
        own_server.start()
        await asyncio.sleep(pause / 1e6)
        task.cancel()

        done, _ = await asyncio.wait([task], timeout=10)
        assert done == {task} and task.cancelled(), pause  # not hidden behind redis-py's error


async def test_a_listener_cancelled_as_it_subscribes_or_waits_stops(open_ledger) -> None:
    listener = await open_ledger()
    for pause in range(0, 5_000, 250):  # microseconds after it starts: subscribing, then waiting
        task = asyncio.create_task(listener.listen(lambda kind: None))
        await asyncio.sleep(pause / 1e6)
        task.cancel()

        done, _ = await asyncio.wait([task], timeout=10)
        assert done == {task} and task.cancelled(), pause  # not taken for redis-py's read timeout


# -- keys -----------------------------------------------------------------------------------


async def test_every_key_lives_under_the_prefix_and_one_hash_tag(
        open_ledger, own_server: ValkeyProcess) -> None:
    ledger = await open_ledger(own_server.url, prefix="desk-7")
    await ledger.set_positions([("alpha", "AAA", 5)], None, {"AAA": 100})
    await reserve(ledger, "o-1", Side.BUY, 10)
    await reserve(ledger, "o-2", Side.SELL, 10, symbol="BBB")
    await reserve(ledger, "o-3", Side.BUY, 10, symbol_limit=0)
    await fill(ledger, "o-1", Side.BUY, 4)
    await ledger.set_trading_state("alpha", "reducing")
    await ledger.put_override("ovr-1", "{}")
    raw = redis.asyncio.Redis.from_url(own_server.url, decode_responses=True)

    keys = [key async for key in raw.scan_iter(count=1000)]
    await raw.aclose()

    assert len(keys) >= 10
    assert all(key.startswith("desk-7:{rb}:") for key in keys), keys
    assert {key_slot(key.encode()) for key in keys} == {key_slot(b"rb")}


async def test_two_prefixes_on_one_server_do_not_see_each_other(open_ledger) -> None:
    first, second = await open_ledger(prefix="desk-a"), await open_ledger(prefix="desk-b")
    await reserve(first, "o-1", Side.BUY, 10)

    assert await second.reservations() == []
    assert not (await reserve(second, "o-1", Side.SELL, 10)).replayed


# -- operator state and change notifications ------------------------------------------------


async def test_operator_state_is_shared_and_each_change_reaches_other_listeners(open_ledger) -> None:
    writer, listener = await open_ledger(), await open_ledger()
    changes: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(listener.listen(changes.put_nowait))
    try:
        assert await wait_for(changes) == RESYNC

        await writer.set_trading_state("", "halted")
        await writer.set_trading_state("alpha", "reducing")
        await writer.put_override("ovr-1", '{"kind": "restrict_symbol"}')
        assert await writer.delete_override("missing") is False  # not announced
        assert await writer.delete_override("ovr-1") is True

        assert [await wait_for(changes) for _ in range(4)] == [
            CHANGE_TRADING_STATE, CHANGE_TRADING_STATE, CHANGE_OVERRIDES, CHANGE_OVERRIDES]
        assert await listener.trading_states() == {"": "halted", "alpha": "reducing"}
        assert await listener.overrides() == {}
        await writer.put_override("ovr-2", "{}")
        assert await wait_for(changes) == CHANGE_OVERRIDES
        assert changes.empty()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_failing_callback_does_not_stop_the_listener(open_ledger, caplog) -> None:
    writer, listener = await open_ledger(), await open_ledger()
    changes: asyncio.Queue[str] = asyncio.Queue()

    def on_change(kind: str) -> None:
        changes.put_nowait(kind)
        if kind == CHANGE_TRADING_STATE:
            raise RuntimeError("the caller's bug")

    task = asyncio.create_task(listener.listen(on_change))
    try:
        assert await wait_for(changes) == RESYNC
        await writer.set_trading_state("", "halted")
        await writer.put_override("ovr-1", "{}")

        assert [await wait_for(changes) for _ in range(2)] == [CHANGE_TRADING_STATE, CHANGE_OVERRIDES]
        assert "callback failed" in caplog.text
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_after_a_loss_no_new_grant_until_the_window_closes_though_reservations_go_back(
        ledger, server: ValkeyProcess) -> None:
    now = await server_time_ms(server)

    until = await ledger.begin_resync(60_000)
    again = await ledger.begin_resync(1)  # another sidecar finding the loss later: no change
    with pytest.raises(GrantsPaused, match="lost its data: firm-wide grants are refused until") as paused:
        await reserve(ledger, "o-new", Side.BUY, 5)
    put_back = await ledger.check_and_reserve(
        client_order_id="o-held", strategy="alpha", symbol="AAA", side=Side.BUY, lots=5, lot_cents=10_000,
        symbol_limit_cents=2**53 - 1, total_limit_cents=2**53 - 1, expires_at_ms=EXPIRES, reassert=True)
    await ledger._run("close the window", lambda redis: redis.set(ledger._keys["resync_until"], now))
    after = await reserve(ledger, "o-new", Side.BUY, 5)

    assert now + 60_000 <= until < now + 70_000 and again == until
    assert paused.value.until_ms == until
    assert put_back.granted_lots == 5 and after.granted_lots == 5 and not after.replayed
    assert await ledger.begin_resync(60_000) is None  # found after the window closed: it stays closed


@pytest.mark.parametrize("scope", ["", "alpha"])
@pytest.mark.parametrize("state", ["HALTED", "REDUCING"])
async def test_a_grant_that_adds_exposure_is_refused_under_a_trading_state_the_server_holds(ledger, scope, state):
    await ledger.set_trading_state(scope, state)

    with pytest.raises(TradingStopped) as stopped:
        await ledger.check_and_reserve(
            client_order_id="o-adds", strategy="alpha", symbol="AAA", side=Side.BUY, lots=1, lot_cents=10_000,
            symbol_limit_cents=10**12, total_limit_cents=10**12, expires_at_ms=EXPIRES, adds=True)
    reducing = await reserve(ledger, "o-reduces", Side.SELL, 1)  # adds=False: a reducing order

    assert (stopped.value.state, stopped.value.scope) == (state, scope)
    assert [r.client_order_id for r in await ledger.reservations()] == ["o-reduces"]
    assert reducing.granted_lots == 1


async def test_an_active_state_or_a_reservation_put_back_is_granted_though(ledger):
    await ledger.set_trading_state("alpha", "ACTIVE")
    active = await ledger.check_and_reserve(
        client_order_id="o-active", strategy="alpha", symbol="AAA", side=Side.BUY, lots=1, lot_cents=10_000,
        symbol_limit_cents=10**12, total_limit_cents=10**12, expires_at_ms=EXPIRES, adds=True)
    await ledger.set_trading_state("", "HALTED")
    put_back = await ledger.check_and_reserve(
        client_order_id="o-before", strategy="alpha", symbol="AAA", side=Side.BUY, lots=1, lot_cents=10_000,
        symbol_limit_cents=10**12, total_limit_cents=10**12, expires_at_ms=EXPIRES, reassert=True, adds=True)

    assert (active.granted_lots, put_back.granted_lots) == (1, 1)


async def test_marks_value_a_symbol_at_the_highest_fresh_mark_and_past_2_53_write_nothing(ledger, open_ledger):
    """Found by reviewers: one mark a symbol let a lagging sidecar, or the one whose rally mark
    stood seeing prices fall first, mark down a rally another still saw (1.16 times a limit)."""
    await ledger.set_positions([("alpha", "AAA", 10), ("alpha", "BBB", -5)], None, {"AAA": 100, "BBB": 200})
    other = await open_ledger()

    revalued = await ledger.mark({"AAA": 150, "BBB": 150, "CCC": 999})  # CCC is held by no one
    marked = await ledger.firm_exposure()
    lower_elsewhere = await other.mark({"AAA": 120})  # another's lower price: this one's 150 stands
    tie = await other.mark({"AAA": 150})
    own_falls = await ledger.mark({"AAA": 120})  # the other still sees 150
    both_fall = await other.mark({"AAA": 110})
    after = await ledger.firm_exposure()
    with pytest.raises(ValueError, match="2\\^53"):
        await ledger.mark({"BBB": 300, "AAA": 2**60})

    assert (revalued, lower_elsewhere, tie, own_falls, both_fall) == (2, 0, 0, 0, 1)
    assert marked.total_gross_cents == 10 * 150 + 5 * 150
    assert after.total_gross_cents == 10 * 120 + 5 * 150
    assert await ledger.valued(["AAA", "BBB", "CCC"]) == {"AAA", "BBB"}
    assert await ledger.firm_exposure() == after


async def test_a_fill_without_a_live_price_keeps_the_servers_mark(ledger):
    """Found by a reviewer: a sidecar with no live price (restarted, or not fed the symbol) valued
    the firm's whole position at a one-share fill's price of 0.0001."""
    await ledger.set_positions([("alpha", "AAA", 10)], None, {"AAA": 10_000})

    await ledger.apply_fill(client_order_id="o-stray", strategy="alpha", symbol="AAA", side=Side.SELL, lots=1,
                            lot_cents=1, keep_mark=True)
    kept = await ledger.firm_exposure()
    await ledger.apply_fill(client_order_id="o-new", strategy="alpha", symbol="BBB", side=Side.BUY, lots=1,
                            lot_cents=500, keep_mark=True)  # no mark yet: the fill's price values it

    assert kept.total_gross_cents == 9 * 10_000
    assert (await ledger.firm_exposure()).total_gross_cents == 9 * 10_000 + 500


async def test_an_order_or_fill_at_a_lower_price_keeps_a_value_a_price_mark_set(ledger, open_ledger):
    """Found by a reviewer: one share at a lagging sidecar's price marked another's rally down."""
    await ledger.set_positions([("alpha", "AAA", 10)], None, {"AAA": 100})
    await ledger.mark({"AAA": 150})
    other = await open_ledger()

    await other.apply_fill(client_order_id="o-fill", strategy="beta", symbol="AAA", side=Side.BUY, lots=1,
                           lot_cents=100)
    after_fill = await ledger.firm_exposure()
    await reserve(other, "o-order", Side.BUY, 1, strategy="beta", lot_cents=100)
    after_order = await ledger.firm_exposure()
    lowered = await ledger.mark({"AAA": 120})  # the sidecar that saw the rally still takes it back

    assert after_fill.total_gross_cents == 11 * 150
    assert after_order.total_gross_cents == 12 * 150
    assert lowered == 1 and (await ledger.firm_exposure()).total_gross_cents == 12 * 120


async def test_a_price_mark_stops_holding_a_value_up_once_it_is_no_longer_fresh(ledger, open_ledger, server):
    """Found by a reviewer: a sidecar that marked a rally and then stopped held the value up for
    good, and the firm was refused orders it had room for."""
    await ledger.set_positions([("alpha", "AAA", 10)], None, {"AAA": 100})
    await ledger.mark({"AAA": 150})
    key = ledger._keys["price_marks"]
    client = redis.asyncio.Redis.from_url(server.url)
    try:  # its mark made 61 s ago, by the server's clock
        seconds, micros = await client.time()
        stale = f"{ledger.instance}\x1f150\x1f{seconds * 1000 + micros // 1000 - 61_000}"
        await client.hset(key, "AAA", stale)
    finally:
        await client.aclose()
    other = await open_ledger()

    lowered = await other.mark({"AAA": 110})

    assert lowered == 1 and (await ledger.firm_exposure()).total_gross_cents == 10 * 110
