"""An operator's change that moves the targets is recommended (MANUAL) whichever way it comes:
refused by the store and retried, applied by the monitoring tick, seen twice at once. Each case
found by a reviewer, when the change was recommended only from the call that made it."""

from __future__ import annotations

import asyncio
import dataclasses

from riskbudget.v1 import types_pb2 as pb
from riskbudget_sidecar.store.errors import StoreError

from .conftest import T0, timestamp
from .test_overrides import budget, set_override
from .test_recommendations import recommendations_after


def trend_gross(b: pb.Budget) -> float:
    return next(s.max_gross_exposure for s in b.strategies if s.strategy == "trend")


async def test_a_moved_targets_recommendation_the_store_refused_is_made_later(harness, monkeypatch):
    """Before, one the store refused was dropped for good: drift (mixes only) never sees a change
    of size, so the rebalancer never heard of the cap."""
    await harness.publish_last_prices()
    append = harness.sidecar.store.append_recommendation

    def refused(recommendation):
        raise StoreError("the disk is full")
    monkeypatch.setattr(harness.sidecar.store, "append_recommendation", refused)
    await set_override(harness, scope=pb.OVERRIDE_SCOPE_STRATEGY, target="trend",
                       kind=pb.OVERRIDE_KIND_SCALE_LEVERAGE, value=0.5)
    monkeypatch.setattr(harness.sidecar.store, "append_recommendation", append)
    # the store is back: ticks, monitoring, anything that would retry
    await harness.publish_last_prices()
    await harness.sidecar.monitor_once()
    harness.clock.advance(5)
    await harness.publish_last_prices()
    await harness.sidecar.monitor_once()

    made = await recommendations_after(harness, 0)
    assert made, "the cap of trend's targets by 50% was never recommended"


async def test_an_expiry_the_monitoring_tick_applies_is_recommended(harness):
    """The monitoring tick expires overrides itself: before, an expiry it applied before the timer
    did moved the targets with no recommendation."""
    await harness.publish_last_prices()
    await set_override(harness, scope=pb.OVERRIDE_SCOPE_STRATEGY, target="trend",
                       kind=pb.OVERRIDE_KIND_SCALE_LEVERAGE, value=0.5, expires_at=timestamp(T0 + 60))
    capped = await budget(harness)
    assert len(await recommendations_after(harness, 0)) == 1  # the set is recommended

    harness.clock.advance(61)  # the wall clock passes the expiry; the monitoring tick comes first
    await harness.sidecar.monitor_once()
    await harness.sidecar.expire_overrides()  # the timer, late: nothing left to expire
    after = await budget(harness)
    made = await recommendations_after(harness, 0)

    assert trend_gross(after) > 1.9 * trend_gross(capped)  # the targets doubled back
    assert len(made) == 2, [r.reason for r in made]


async def test_an_expiry_the_store_refused_then_a_tick_then_the_retry_is_recommended(harness, monkeypatch):
    """A refused removal takes the override out of force at once and a tick recomputes: before, the
    retry then compared the already-moved budget with itself."""
    await harness.publish_last_prices()
    await set_override(harness, scope=pb.OVERRIDE_SCOPE_STRATEGY, target="trend",
                       kind=pb.OVERRIDE_KIND_SCALE_LEVERAGE, value=0.5, expires_at=timestamp(T0 + 60))
    remove = harness.sidecar.store.remove_override

    async def refused(override_id):
        raise StoreError("the disk is full")
    monkeypatch.setattr(harness.sidecar.store, "remove_override", refused)
    harness.clock.advance(61)
    await harness.sidecar.expire_overrides()  # refused: out of force, retry scheduled
    await harness.publish_last_prices()  # any tick recomputes the budget without it
    monkeypatch.setattr(harness.sidecar.store, "remove_override", remove)
    await harness.sidecar.expire_overrides()  # the retry removes it
    made = await recommendations_after(harness, 0)

    assert len(made) == 2, [r.reason for r in made]


async def test_one_operator_change_seen_twice_at_once_is_recommended_once(harness):
    """A shared store echoes this sidecar's own announcement back while the call's own recompute
    runs: before, both compared with the budget of before the change, and made two MANUALs."""
    await harness.publish_last_prices()
    sidecar = harness.sidecar
    draft = await set_override(harness, scope=pb.OVERRIDE_SCOPE_STRATEGY, target="carry",
                               kind=pb.OVERRIDE_KIND_SCALE_LEVERAGE, value=0.99)  # under the threshold
    made_before = len(await recommendations_after(harness, 0))
    stored = next(o for o in sidecar.store.overrides() if o.id == draft.id)
    capped = dataclasses.replace(stored, id="ovr-review-r2", target="trend", value=0.5)
    await sidecar.store.add_override(capped)
    now = sidecar.now()
    await asyncio.gather(sidecar._overrides_changed(now, f"override {capped.id} set"),
                         sidecar._overrides_changed(now, "another sidecar's operator change"))
    made = await recommendations_after(harness, 0)

    assert len(made) - made_before == 1, [r.reason for r in made]


async def test_operator_changes_each_under_the_threshold_are_recommended_once_they_add_up_past_it(harness):
    """Found by a tester: each change under the threshold reset the budget compared with, so five
    leverage caps of 4% each moved trend's targets by 20% with no recommendation, and so did
    clearing them."""
    await harness.publish_last_prices()
    leverage = next(s.leverage_limit for s in (await budget(harness)).strategies if s.strategy == "trend")
    made_before = len(await recommendations_after(harness, 0))
    counts, caps = [], []
    for step in (0.96, 0.92, 0.88):  # 4%, 8%, 12% below the budget before the first
        caps.append(await set_override(harness, scope=pb.OVERRIDE_SCOPE_STRATEGY, target="trend",
                                       kind=pb.OVERRIDE_KIND_CAP_LEVERAGE, value=step * leverage))
        counts.append(len(await recommendations_after(harness, 0)) - made_before)
    made = await recommendations_after(harness, 0)

    assert counts == [0, 0, 1]
    assert list(made[-1].triggers) == [pb.RECOMMENDATION_TRIGGER_MANUAL]
    assert all(cap.id in made[-1].reason for cap in caps), made[-1].reason


async def test_a_small_operator_change_does_not_make_later_price_moves_its_own(harness):
    """What is kept after a change under the threshold is measured again only at the next
    operator change: prices that move the targets alone are no operator's change."""
    prices = await harness.publish_last_prices()
    await set_override(harness, scope=pb.OVERRIDE_SCOPE_STRATEGY, target="carry",
                       kind=pb.OVERRIDE_KIND_SCALE_LEVERAGE, value=0.99)  # under the threshold
    before = await budget(harness)
    made_before = len(await recommendations_after(harness, 0))
    harness.clock.advance(1)
    await harness.publish({symbol: price * 1.2 for symbol, price in prices.items()})  # targets' notional moves
    after = await budget(harness)
    made = await recommendations_after(harness, 0)

    assert abs(trend_gross(after) / trend_gross(before) - 1) > 0.1
    assert all(pb.RECOMMENDATION_TRIGGER_MANUAL not in r.triggers for r in made[made_before:])
