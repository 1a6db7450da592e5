"""A reload is all or nothing and always recorded, whatever happens to the call that asked for it;
its file is parsed off the event loop."""

from __future__ import annotations

import asyncio
import threading

import pytest
from structlog.testing import capture_logs

from riskbudget.v1 import risk_budget_admin_pb2 as apb
from riskbudget.v1 import types_pb2 as pb
from riskbudget_sidecar.service import reload as reload_module

from .test_reload_and_alerts import alerts, edit_config, reload


async def test_a_reload_whose_call_is_cancelled_mid_way_still_finishes_and_is_logged_and_alerted(
        harness, monkeypatch):
    sidecar = harness.sidecar
    recomputing, may_finish, call_cancelled = asyncio.Event(), asyncio.Event(), asyncio.Event()
    real_recompute, real_reload = sidecar._recompute_now, sidecar.reload_config
    recomputed = []

    async def held_recompute() -> None:  # where the call was cancelled (the CLI's 5 s deadline)
        recomputing.set()
        await may_finish.wait()
        await real_recompute()
        recomputed.append(sidecar.config.sidecar.shadow_mode)

    async def watched_reload(requested_by: str):
        try:
            return await real_reload(requested_by)
        except asyncio.CancelledError:
            call_cancelled.set()
            raise
    monkeypatch.setattr(sidecar, "_recompute_now", held_recompute)
    monkeypatch.setattr(sidecar, "reload_config", watched_reload)
    edit_config(harness, lambda data: data["sidecar"].update(shadow_mode=True))

    with capture_logs() as logs:
        call = harness.admin.ReloadConfig(apb.ReloadConfigRequest(requested_by="pytest"),
                                          metadata=harness.admin_metadata)
        await recomputing.wait()
        call.cancel()
        await call_cancelled.wait()
        may_finish.set()
        await reload(harness)  # reloads run one at a time: this one ends after the first

    with pytest.raises(asyncio.CancelledError):
        await call
    assert recomputed == [True]  # the budget of the first reload too, not just its config (the second changed nothing)
    [first, second] = [entry for entry in logs if entry["event"] == "config_reloaded"]
    assert first["changed"] == ["sidecar.shadow_mode"] and second["changed"] == []
    [alert] = await alerts(harness, pb.ALERT_KIND_CONFIG_RELOADED)
    assert alert.message.endswith(": changed sidecar.shadow_mode")
    assert sidecar.config.sidecar.shadow_mode


async def test_a_reload_parses_the_file_off_the_event_loop(harness, monkeypatch):
    parsed_on, real_load = [], reload_module.load_config

    def recorded_load(path):
        parsed_on.append(threading.get_ident())
        return real_load(path)
    monkeypatch.setattr(reload_module, "load_config", recorded_load)

    reply = await reload(harness)

    assert reply.reloaded
    assert parsed_on and parsed_on[0] != threading.get_ident()  # not the event loop's thread
