"""ReloadConfig, alerts and admin auditing against a real server."""

from __future__ import annotations

import asyncio
import logging

import grpc
import pytest
import structlog
import yaml

from riskbudget.v1 import risk_budget_admin_pb2 as apb
from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import types_pb2 as pb
from riskbudget_sidecar.rpc.converters import timestamp
from riskbudget_sidecar.service import sidecar as sidecar_module
from riskbudget_sidecar.engine.types import FirmGrant
from riskbudget_sidecar.store.errors import StoreError

from .conftest import T0


def edit_config(harness, change) -> None:
    path = harness.sidecar._config_path
    data = yaml.safe_load(open(path).read())
    change(data)
    with open(path, "w") as handle:
        handle.write(yaml.safe_dump(data, sort_keys=False))


async def reload(harness, requested_by: str = "pytest") -> apb.ReloadConfigResponse:
    return await harness.admin.ReloadConfig(apb.ReloadConfigRequest(requested_by=requested_by),
                                            metadata=harness.admin_metadata)


async def alerts(harness, kind) -> list[pb.Alert]:
    reply = await harness.stub.ListAlerts(spb.ListAlertsRequest())
    return [a for a in reply.alerts if a.kind == kind]


async def test_a_valid_config_is_swapped_in_and_used_by_the_next_check(harness):
    prices = await harness.publish_last_prices()
    edit_config(harness, lambda data: data["limits"].update(max_order_notional=10 * prices["AAA"]))

    reply = await reload(harness)
    decision = await harness.check("o-after-reload", 50)

    assert reply.reloaded and list(reply.errors) == []
    assert decision.approved_quantity == 10
    assert pb.REASON_CODE_MAX_ORDER_NOTIONAL in [r.code for r in decision.reasons]


async def test_reloads_that_change_nothing_raise_no_alert_and_make_no_new_budget(harness):
    """Found by a tester: a config reloader's SIGHUP at every sync raised an alert each (1,060 of
    them pushed a halt's alerts out of the book) and a new budget version each."""
    await harness.admin.SetTradingState(apb.SetTradingStateRequest(state=pb.TRADING_STATE_HALTED, set_by="pytest"),
                                        metadata=harness.admin_metadata)
    version = harness.sidecar.snapshot.version

    with structlog.testing.capture_logs() as logs:
        replies = [await reload(harness) for _ in range(5)]

    assert all(reply.reloaded for reply in replies)
    assert await alerts(harness, pb.ALERT_KIND_CONFIG_RELOADED) == []
    assert len(await alerts(harness, pb.ALERT_KIND_TRADING_STATE_CHANGED)) == 1
    assert harness.sidecar.snapshot.version == version
    assert [entry["changed"] for entry in logs if entry["event"] == "config_reloaded"] == [[]] * 5


async def test_a_reload_is_audited_by_an_alert_and_a_log_line_naming_the_keys_it_changed(harness):
    def loosen(data):
        data["limits"].update(max_order_notional=400_000)
        data["sidecar"].update(shadow_mode=True)
    edit_config(harness, loosen)

    with structlog.testing.capture_logs() as logs:
        reply = await reload(harness)

    assert reply.reloaded
    [alert] = await alerts(harness, pb.ALERT_KIND_CONFIG_RELOADED)
    assert alert.severity == pb.ALERT_SEVERITY_WARNING
    assert alert.message == (f"config reloaded from {harness.sidecar._config_path} by pytest: "
                             "changed sidecar.shadow_mode, limits.max_order_notional")
    [logged] = [entry for entry in logs if entry["event"] == "config_reloaded"]
    assert logged["changed"] == ["sidecar.shadow_mode", "limits.max_order_notional"]
    assert logged["requested_by"] == "pytest"


async def test_a_reload_that_changes_many_keys_names_the_first_ten_and_how_many_more(harness):
    def tighten(data):
        data["limits"].update(near_limit_fraction=0.7, position_headroom=1.1, max_order_notional=100_000,
                              price_collar=0.04, max_staleness=20, reservation_ttl=30)
        data["risk_budgeting"]["monitoring_interval"] = 1800
        for regime in ("bull", "bear", "crisis"):
            data["risk_budgeting"]["regime_allocations"][regime]["vol_target"] *= 0.9
        data["sidecar"]["shadow_mode"] = True
        data["sidecar"]["shutdown_grace"] = 3

    edit_config(harness, tighten)

    reply = await reload(harness)

    assert reply.reloaded
    [alert] = await alerts(harness, pb.ALERT_KIND_CONFIG_RELOADED)
    assert alert.message.endswith(", limits.max_order_notional, limits.price_collar, and 2 more")


async def test_an_invalid_config_is_refused_with_reasons_the_old_one_stays_and_an_alert_fires(harness):
    before = harness.sidecar.config
    edit_config(harness, lambda data: data["limits"].update(price_colar=0.1))

    reply = await reload(harness)

    assert not reply.reloaded
    assert any("limits.price_colar: unknown key" in error for error in reply.errors)
    assert harness.sidecar.config is before
    assert len(await alerts(harness, pb.ALERT_KIND_CONFIG_RELOAD_REFUSED)) == 1


async def test_a_truncated_config_file_is_never_loaded(harness):
    path = harness.sidecar._config_path
    text = open(path).read()
    open(path, "w").write(text[: len(text) // 3])
    before = harness.sidecar.config

    reply = await reload(harness)

    assert not reply.reloaded and reply.errors
    assert harness.sidecar.config is before


async def test_a_reload_refused_for_many_problems_names_the_first_ten_each_clipped_and_how_many_more(harness):
    long_key = "k" * 100_000
    edit_config(harness, lambda data: data["limits"].update(
        {long_key: 1, **{f"unknown_{number}": number for number in range(2_000)}}))

    reply = await reload(harness)
    listed = await harness.stub.ListAlerts(spb.ListAlertsRequest())  # a reply of at most 64 KiB here

    assert not reply.reloaded
    assert len(reply.errors) == 11 and reply.errors[-1] == "and 1991 more"
    assert reply.errors[0].endswith("k...") and len(reply.errors[0]) == 500
    assert reply.errors[1].endswith("limits.unknown_0: unknown key")
    [refused] = [a for a in listed.alerts if a.kind == pb.ALERT_KIND_CONFIG_RELOAD_REFUSED]
    assert refused.message == (f"config reload of {harness.sidecar._config_path} asked by pytest refused: "
                               + "; ".join(reply.errors))  # the file named (found by a tester)


async def test_a_change_that_needs_a_restart_is_refused(harness):
    edit_config(harness, lambda data: data["sidecar"].update(listen="127.0.0.1:1"))

    reply = await reload(harness)

    assert not reply.reloaded
    assert any("sidecar.listen" in error for error in reply.errors)


def rename_strategy(data, old, new):
    data["portfolio"]["strategies"] = {new if name == old else name: strategy
                                       for name, strategy in data["portfolio"]["strategies"].items()}


async def test_a_reload_that_drops_a_strategy_still_holding_reservations_is_refused(harness):
    await harness.publish_last_prices()
    await harness.check("o-held", 10)  # a reservation of strategy trend
    edit_config(harness, lambda data: rename_strategy(data, "trend", "trend_v2"))

    reply = await reload(harness)

    assert not reply.reloaded
    assert ("portfolio.strategies: 'trend' still holds 1 open reservation in 'AAA'; close or release them "
            "(SetPositions, ReleaseOrder) before removing the strategy") in reply.errors


async def test_a_reload_may_rename_a_strategy_that_holds_nothing(harness):
    edit_config(harness, lambda data: rename_strategy(data, "trend", "trend_v2"))

    reply = await reload(harness)

    assert reply.reloaded, reply.errors


async def test_a_reload_that_drops_a_halted_strategy_or_the_target_of_an_override_is_refused(harness):
    await harness.admin.SetTradingState(apb.SetTradingStateRequest(
        strategy="trend", state=pb.TRADING_STATE_HALTED, set_by="pytest", reason="drill"),
        metadata=harness.admin_metadata)
    override = (await harness.admin.SetOverride(apb.SetOverrideRequest(override=pb.Override(
        scope=pb.OVERRIDE_SCOPE_STRATEGY, target="carry", kind=pb.OVERRIDE_KIND_CAP_STRATEGY_CAPITAL,
        value=10_000.0, set_by="pytest", reason="review")), metadata=harness.admin_metadata)).override

    def rename_both(data):
        rename_strategy(data, "trend", "trend_v2")
        rename_strategy(data, "carry", "carry_v2")
    edit_config(harness, rename_both)
    reply = await reload(harness)

    assert not reply.reloaded
    assert sorted(reply.errors) == [
        f"override {override.id} is on strategy 'carry'; clear it before removing the strategy",
        "portfolio.strategies: 'trend' is HALTED; set it ACTIVE before removing the strategy"]


async def test_a_reload_whose_own_step_fails_leaves_the_old_config_in_force(harness):
    before = harness.sidecar.config.limits.max_order_notional

    def fails(value):
        raise ValueError("a client token can be added or removed only by a restart")
    harness.sidecar.on_reload(lambda new: None, fails)
    edit_config(harness, lambda data: data["limits"].update(max_order_notional=before / 2))
    reply = await reload(harness)

    assert not reply.reloaded
    assert reply.errors == ["the reload could not be applied: a client token can be added or removed only by a restart"]
    assert harness.sidecar.config.limits.max_order_notional == before
    assert await alerts(harness, pb.ALERT_KIND_CONFIG_RELOAD_REFUSED)


async def test_an_override_that_has_expired_does_not_hold_a_strategy_back_from_a_reload(harness):
    await harness.admin.SetOverride(apb.SetOverrideRequest(override=pb.Override(
        scope=pb.OVERRIDE_SCOPE_STRATEGY, target="trend", kind=pb.OVERRIDE_KIND_CAP_STRATEGY_CAPITAL,
        value=10_000.0, set_by="pytest", reason="review", expires_at=timestamp(T0 + 60))),
        metadata=harness.admin_metadata)
    harness.clock.advance(61)  # expired; the timer, on the real clock, has not removed it yet
    edit_config(harness, lambda data: rename_strategy(data, "trend", "trend_v2"))

    reply = await reload(harness)

    assert reply.reloaded, reply.errors


def move_symbol(data, symbol, source, destination):
    strategies = data["portfolio"]["strategies"]
    strategies[source]["symbols"].remove(symbol)
    strategies[destination]["symbols"].append(symbol)


async def reload_moving_aaa_from_trend_to_carry(harness, held: str) -> apb.ReloadConfigResponse:
    """With a position of 10 in `held` (trend's), a reload that moves AAA from trend to carry."""
    await harness.publish_last_prices()
    await harness.stub.SetPositions(spb.SetPositionsRequest(positions=[
        pb.Position(strategy="trend", symbol=held, quantity=10)]))
    edit_config(harness, lambda data: move_symbol(data, "AAA", "trend", "carry"))
    return await reload(harness)


async def test_a_reload_that_moves_a_symbol_out_of_the_strategy_holding_it_is_refused_naming_the_pair(harness):
    reply = await reload_moving_aaa_from_trend_to_carry(harness, held="AAA")
    reducing = await harness.check("o-reduce", 10, side=pb.SIDE_SELL)

    assert not reply.reloaded
    assert reply.errors == [
        "portfolio.strategies.trend.symbols: 'trend' still holds a position of 10 in 'AAA'; close or release "
        "them (SetPositions, ReleaseOrder) before moving 'AAA' out of it"]
    assert reducing.decision == pb.DECISION_APPROVED


async def test_a_reload_may_move_a_symbol_its_strategy_holds_nothing_in(harness):
    reply = await reload_moving_aaa_from_trend_to_carry(harness, held="BBB")

    assert reply.reloaded, reply.errors
    assert harness.sidecar.config.portfolio.strategies["carry"].symbols == ["CCC", "DDD", "AAA"]


async def test_a_reload_to_a_warmup_file_the_next_start_could_not_read_is_refused(harness, tmp_path):
    missing = tmp_path / "no-prices.csv"
    edit_config(harness, lambda data: data.update(warmup={"source": "csv", "path": str(missing)}))

    reply = await reload(harness)

    assert not reply.reloaded
    assert reply.errors == [f"warmup.path: cannot read {missing}: No such file or directory"]


async def test_the_log_level_needs_a_restart_it_is_not_accepted_and_ignored(harness):
    edit_config(harness, lambda data: data["sidecar"].update(log_level="debug"))

    reply = await reload(harness)

    assert not reply.reloaded
    assert "sidecar.log_level: changes need a restart" in reply.errors


async def test_a_reloaded_monitoring_interval_paces_the_next_ticks_at_once(harness, monkeypatch):
    ticks = []

    async def counted_tick() -> None:
        ticks.append(asyncio.get_running_loop().time())
    monkeypatch.setattr(harness.sidecar, "monitor_once", counted_tick)
    edit_config(harness, lambda data: data["risk_budgeting"].update(monitoring_interval=0.01))

    reply = await reload(harness)  # the monitor sleeps one interval of 3600 s
    while len(ticks) < 3:
        await asyncio.sleep(0.01)  # bounded by the test's timeout, never by a time assertion

    assert reply.reloaded


async def test_a_refused_admin_call_is_audited_as_an_alert(harness):
    with pytest.raises(grpc.aio.AioRpcError):
        await harness.admin.ReloadConfig(apb.ReloadConfigRequest(requested_by="pytest"),
                                         metadata=(("authorization", "Bearer no"),))

    refused = await alerts(harness, pb.ALERT_KIND_ADMIN_REFUSED)

    assert len(refused) == 1 and "wrong token" in refused[0].message
    assert "Bearer" not in refused[0].message


async def test_trading_state_changes_and_stale_prices_are_alerts_with_severity(harness):
    await harness.admin.SetTradingState(
        apb.SetTradingStateRequest(state=pb.TRADING_STATE_HALTED, reason="drill", set_by="ops"),
        metadata=harness.admin_metadata)
    await harness.sidecar.monitor_once()  # warm-up prices are history: stale
    await harness.sidecar.monitor_once()  # a persisting condition is not raised again

    state_alerts = await alerts(harness, pb.ALERT_KIND_TRADING_STATE_CHANGED)
    stale_alerts = await alerts(harness, pb.ALERT_KIND_STALE_MARKET_DATA)
    warnings = await harness.stub.ListAlerts(spb.ListAlertsRequest(min_severity=pb.ALERT_SEVERITY_WARNING))

    assert state_alerts[0].severity == pb.ALERT_SEVERITY_WARNING and "HALTED" in state_alerts[0].message
    assert len(stale_alerts) == 1
    assert all(a.severity >= pb.ALERT_SEVERITY_WARNING for a in warnings.alerts)


async def test_a_tick_whose_store_refuses_the_expiries_still_checks_prices_and_alerts_both(harness, monkeypatch):
    async def refused(now, limit=None):
        raise StoreError("the shared store is down")
    monkeypatch.setattr(harness.sidecar.store, "expire", refused)

    await harness.sidecar.monitor_once()  # warm-up prices are history: stale

    assert len(await alerts(harness, pb.ALERT_KIND_STORE_ERROR)) == 1
    assert len(await alerts(harness, pb.ALERT_KIND_STALE_MARKET_DATA)) == 1


async def test_checks_failing_closed_for_one_cause_raise_one_alert_a_minute_and_name_it(harness, monkeypatch):
    await harness.publish_last_prices()

    async def refused(*args, **kwargs):
        raise StoreError("the disk is full")
    monkeypatch.setattr(harness.sidecar.store, "record_check", refused)

    replies = [await harness.check(f"o-{n}", 1) for n in range(5)]
    harness.clock.advance(61)
    later = await harness.check("o-later", 1)

    assert all(r.decision == pb.DECISION_REJECTED for r in [*replies, later])
    assert "the disk is full" in replies[0].reasons[0].message
    assert len(await alerts(harness, pb.ALERT_KIND_STORE_ERROR)) == 2  # the first, and one a minute on


async def test_a_limit_breach_raises_a_critical_alert(harness):
    await harness.publish_last_prices()
    await harness.stub.SetPositions(spb.SetPositionsRequest(positions=[
        pb.Position(strategy="trend", symbol="AAA", quantity=1_000_000)]))

    await harness.sidecar.monitor_once()
    breached = await alerts(harness, pb.ALERT_KIND_LIMIT_BREACHED)

    assert breached and all(a.severity == pb.ALERT_SEVERITY_CRITICAL for a in breached)
    assert {"AAA", "trend", "(total)"} <= {a.subject for a in breached}


async def test_a_usage_moving_about_its_limit_raises_one_alert_a_level_until_it_falls_below_near(harness):
    """Found by a tester: a usage moving between 90% and 105% of its limit raised a near or a
    breach alert at every crossing, about 300 in 5 minutes of a crash day; then by a reviewer, a
    breach three times the limit after a partial recovery raised none."""
    for utilization in (0.9, 1.05, 0.95, 1.05, 0.85, 1.1, 1.2, 0.7, 0.9, 1.01, 0.95, 3.0):
        harness.sidecar._limit_alert("trend", utilization, near=utilization >= 0.8, breached=utilization > 1,
                                     now=harness.clock.now())
    harness.clock.advance(61)
    for utilization in (0.95, 1.02):  # breached again a minute on
        harness.sidecar._limit_alert("trend", utilization, near=True, breached=utilization > 1, now=harness.clock.now())
    for utilization in (0.5, 1.2, 0.9):  # straight past the limit: the breach says it all
        harness.sidecar._limit_alert("carry", utilization, near=utilization >= 0.8, breached=utilization > 1,
                                     now=harness.clock.now())

    near = await alerts(harness, pb.ALERT_KIND_LIMIT_NEAR)
    breached = await alerts(harness, pb.ALERT_KIND_LIMIT_BREACHED)

    assert [a.message for a in reversed(near)] == ["trend uses 90.0% of its limit", "trend uses 90.0% of its limit"]
    assert [a.message for a in reversed(breached)] == [  # 120%: 10% worse; 101%: after a fall below near;
        "trend uses 105.0% of its limit", "trend uses 120.0% of its limit", "trend uses 101.0% of its limit",
        "trend uses 300.0% of its limit", "trend uses 102.0% of its limit",  # 300%: worse, however soon
        "carry uses 120.0% of its limit"]


async def test_a_usage_just_under_its_limit_is_not_shown_as_all_of_it(harness):
    """Found by a tester: 99.996% read "uses 100% of its limit", as a breach."""
    harness.sidecar._limit_alert("trend", 0.99996, near=True, breached=False, now=harness.clock.now())

    assert [a.message for a in await alerts(harness, pb.ALERT_KIND_LIMIT_NEAR)] == ["trend uses 99.9% of its limit"]


async def test_a_reloads_own_steps_prepare_off_the_event_loop(harness):
    """Found by a reviewer: the tokens' files, and who may change them (the user database, slow
    where it is a directory server), were read on the event loop, holding checks up."""
    import threading

    applied = []
    harness.sidecar.on_reload(lambda new: threading.current_thread(), lambda thread: applied.append(thread))

    reply = await reload(harness)

    assert reply.reloaded and applied and applied[0] is not threading.current_thread()


async def test_a_reload_step_that_fails_unexpectedly_refuses_the_reload_with_an_alert(harness):
    """Found by a reviewer: a step's ValueError (a NUL in a token file's path) ended a SIGHUP's
    reload with no alert and no log line."""
    harness.sidecar.on_reload(lambda new: 1 / 0, lambda value: None)

    reply = await reload(harness)
    refused = await alerts(harness, pb.ALERT_KIND_CONFIG_RELOAD_REFUSED)

    assert not reply.reloaded
    assert reply.errors == ["the reload could not be prepared: ZeroDivisionError: division by zero"]
    assert refused and refused[0].message.endswith("the reload could not be prepared: ZeroDivisionError: "
                                                   "division by zero")


async def test_a_position_capped_at_0_raises_its_breach_and_the_tick_goes_on(harness):
    """Found by a reviewer: the usage of a limit of 0 is infinite, and its alert's text failed the
    monitoring tick every time (no breach alert, nor any other alert after it)."""
    from .test_overrides import set_override

    await harness.publish_last_prices()
    await harness.stub.SetPositions(spb.SetPositionsRequest(positions=[
        pb.Position(strategy="trend", symbol="AAA", quantity=10)]))
    await set_override(harness, scope=pb.OVERRIDE_SCOPE_SYMBOL, target="AAA",
                       kind=pb.OVERRIDE_KIND_CAP_SYMBOL_POSITION, value=0)
    harness.clock.advance(2 * harness.sidecar.config.limits.max_staleness)

    await harness.sidecar.monitor_once()
    await harness.sidecar.monitor_once()

    breached = [a.message for a in await alerts(harness, pb.ALERT_KIND_LIMIT_BREACHED)]
    assert breached.count("AAA holds exposure against a limit of 0") == 1
    assert await alerts(harness, pb.ALERT_KIND_STALE_MARKET_DATA)  # the tick went on past it


async def test_operator_alerts_name_no_empty_target_or_reason(harness):
    """Found by a tester: "(force_regime on global )" and "by ops: " with no reason."""
    await harness.admin.SetOverride(apb.SetOverrideRequest(override=pb.Override(
        scope=pb.OVERRIDE_SCOPE_GLOBAL, kind=pb.OVERRIDE_KIND_FORCE_REGIME, regime=pb.REGIME_BEAR,
        set_by="ops", reason="drill")), metadata=harness.admin_metadata)
    await harness.admin.SetTradingState(apb.SetTradingStateRequest(
        state=pb.TRADING_STATE_REDUCING, set_by="ops"), metadata=harness.admin_metadata)

    messages = [a.message for a in harness.sidecar.alerts.recent(10)]

    assert any(m.endswith("(force_regime on global) set by ops: drill") for m in messages), messages
    assert "trading state of the book set to REDUCING by ops" in messages


@pytest.fixture
def debug_logging():
    """Debug events on, whatever the configuration the session had (restored after)."""
    previous = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    yield
    structlog.configure(**previous)


async def test_a_tick_logs_its_expired_reservations_in_one_line_with_each_order_at_debug(
        harness, debug_logging):
    await harness.publish_last_prices()
    for number in range(3):
        await harness.check(f"unfilled-{number}", 1)
    harness.clock.advance(61)  # past reservation_ttl

    with structlog.testing.capture_logs() as logs:
        await harness.sidecar.monitor_once()

    [summary] = [entry for entry in logs if entry["event"] == "reservations_expired"]
    each = [entry for entry in logs if entry["event"] == "reservation_expired"]
    assert summary["log_level"] == "info" and summary["count"] == 3 and summary["strategies"] == {"trend": 3}
    assert sorted(entry["client_order_id"] for entry in each) == ["unfilled-0", "unfilled-1", "unfilled-2"]
    assert {entry["log_level"] for entry in each} == {"debug"}


async def test_a_tick_with_many_due_expires_them_a_chunk_at_a_time_letting_other_work_run_between(
        harness, monkeypatch):
    monkeypatch.setattr(sidecar_module, "HOUSEKEEPING_CHUNK", 2)
    await harness.publish_last_prices()
    for number in range(5):
        await harness.check(f"unfilled-{number}", 1)
    harness.clock.advance(200)  # past reservation_ttl, and the decisions' 2 x ttl
    open_orders_seen: list[int] = []

    async def watch() -> None:
        while True:
            open_orders_seen.append(len(harness.sidecar.store.book.reservations()))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0)
    await harness.sidecar.monitor_once()
    watcher.cancel()

    assert open_orders_seen[0] == 5 and open_orders_seen[-1] == 0
    assert {3, 1} <= set(open_orders_seen)  # seen between the chunks of 2
    assert harness.sidecar.store.remembered("unfilled-4") is None


async def test_a_reload_that_moves_a_symbol_while_a_check_waits_on_the_shared_store_rejects_that_check(
        harness, monkeypatch):
    await harness.publish_last_prices()
    sidecar, released = harness.sidecar, []
    edit_config(harness, lambda data: move_symbol(data, "AAA", "trend", "carry"))

    async def held_while_reloading(order, quantity, firm, expires_at):  # the server's round trip
        assert (await reload(harness)).reloaded  # the book holds nothing in AAA yet: allowed
        return FirmGrant(quantity)

    async def release(order_id):
        released.append(order_id)
    monkeypatch.setattr(type(sidecar.store), "shares_limits", True)
    monkeypatch.setattr(sidecar.store, "hold_firm_wide", held_while_reloading, raising=False)
    monkeypatch.setattr(sidecar.store, "release_firm_wide", release, raising=False)

    reply = await harness.check("o-moved", 10)

    assert reply.decision == pb.DECISION_REJECTED and not reply.reserved
    assert "took 'AAA' out of strategy 'trend'" in reply.reasons[0].message
    assert released == ["o-moved"] and sidecar.store.book.reservation("o-moved") is None
