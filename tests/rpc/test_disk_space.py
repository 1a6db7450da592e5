"""store.min_free_disk_mib: an alert while the state store's filesystem runs low, before a
full disk makes checks fail closed; the free bytes as a metric."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import types_pb2 as pb
from riskbudget_sidecar.app.serve import stop

from .conftest import start_harness

MIB = 2**20


async def disk_alerts(harness) -> list[pb.Alert]:
    reply = await harness.stub.ListAlerts(spb.ListAlertsRequest())
    return [a for a in reply.alerts if a.kind == pb.ALERT_KIND_DISK_SPACE_LOW]


def free_bytes_metric(harness) -> list[tuple[dict, float]]:
    """The samples of riskbudget_state_disk_free_bytes: (labels, value)."""
    return [(sample.labels, sample.value) for family in harness.sidecar.metrics.registry.collect()
            for sample in family.samples if sample.name == "riskbudget_state_disk_free_bytes"]


@pytest.fixture
async def started(tmp_path):
    """Start a harness with config overrides; every one started is stopped at the end."""
    running = []

    async def start(**overrides):
        harness = await start_harness(tmp_path / f"sidecar-{len(running)}", **overrides)
        running.append(harness)
        return harness

    (tmp_path / "sidecar-0").mkdir()
    (tmp_path / "sidecar-1").mkdir()
    yield start
    for harness in running:
        await harness.channel.close()
        await stop(harness.sidecar, harness.server)


async def test_below_the_minimum_free_space_a_monitoring_tick_raises_a_warning_naming_the_setting(started):
    harness = await started(store__min_free_disk_mib=1e12)  # more than any disk holds

    await harness.sidecar.monitor_once()
    await harness.sidecar.monitor_once()  # a level alert: raised once while the condition lasts

    [alert] = await disk_alerts(harness)
    assert alert.severity == pb.ALERT_SEVERITY_WARNING
    assert "store.min_free_disk_mib" in alert.message and "fail closed" in alert.message


async def test_with_room_to_spare_or_the_alert_turned_off_none_is_raised(started):
    with_room = await started(store__min_free_disk_mib=1 / MIB)  # one byte
    turned_off = await started(store__min_free_disk_mib=0)

    for harness in (with_room, turned_off):
        await harness.sidecar.monitor_once()

    assert await disk_alerts(with_room) == [] and await disk_alerts(turned_off) == []


async def test_the_free_bytes_of_the_state_store_filesystem_are_a_metric(started, tmp_path):
    harness = await started()

    harness.sidecar.refresh_metrics()

    [(labels, free)] = free_bytes_metric(harness)
    actual = shutil.disk_usage(tmp_path).free
    assert labels == {"database": harness.sidecar.config.store.path}
    assert abs(free - actual) < 64 * MIB  # the same filesystem, read moments apart


async def test_the_alert_is_raised_again_only_after_the_space_came_back(started, monkeypatch):
    harness = await started(store__min_free_disk_mib=100)
    free = 0
    monkeypatch.setattr(harness.sidecar.store, "disk_free", lambda: free)

    for free_mib in (50, 60, 500, 40):
        free = free_mib * MIB
        await harness.sidecar.monitor_once()

    alerts = await disk_alerts(harness)
    assert len(alerts) == 2
    assert sorted(a.message.split(" MiB")[0] for a in alerts) == ["40", "50"]


async def test_a_free_space_that_cannot_be_read_leaves_the_tick_and_the_checks_running(started, monkeypatch):
    harness = await started(store__min_free_disk_mib=1e12)

    def unreadable():
        raise FileNotFoundError("the state directory is gone")

    monkeypatch.setattr(harness.sidecar.store, "disk_free", unreadable)
    await harness.publish_last_prices()
    await harness.sidecar.monitor_once()
    decision = await harness.check("o-after-tick", 1)

    assert await disk_alerts(harness) == []
    assert decision.decision == pb.DECISION_APPROVED


async def test_a_memory_store_writes_no_disk_and_so_has_neither_alert_nor_metric(started):
    harness = await started(store__backend="memory", store__min_free_disk_mib=1e12)

    await harness.sidecar.monitor_once()

    assert await disk_alerts(harness) == []
    assert free_bytes_metric(harness) == []


@pytest.mark.parametrize("gone", ["deleted", "replaced", "directory made a file"])
async def test_a_state_file_gone_from_its_path_fails_checks_closed_with_a_critical_alert(started, gone):
    """Found by a tester: with the state directory deleted under a running sidecar, checks went
    on being approved into a file without a name (lost at the next start), health said SERVING,
    and a second sidecar could start on the path."""
    harness = await started()
    await harness.publish_last_prices()
    before = await harness.check("o-before", 1)
    database = Path(harness.sidecar.config.store.path)
    moved = database.with_name("moved.sqlite3")
    database.rename(moved)
    if gone == "replaced":
        shutil.copy(moved, database)
    elif gone == "directory made a file":  # found by a reviewer: `rm -rf state && touch state` (ENOTDIR)
        directory = database.parent
        directory.rename(directory.with_name(directory.name + "-moved"))
        directory.touch()

    await harness.sidecar.monitor_once()
    after = await harness.check("o-after", 1)
    alerts = await state_file_alerts(harness, database)
    await harness.sidecar.monitor_once()  # one alert, not one a tick

    assert before.decision == pb.DECISION_APPROVED
    assert after.decision == pb.DECISION_REJECTED
    assert [r.code for r in after.reasons] == [pb.REASON_CODE_STATE_UNAVAILABLE]
    assert len(alerts) == 1 and alerts[0].severity == pb.ALERT_SEVERITY_CRITICAL
    assert "checks fail closed and health is NOT_SERVING until the sidecar is restarted" in alerts[0].message
    assert not harness.sidecar.available
    assert len(await state_file_alerts(harness, database)) == 1


async def state_file_alerts(harness, database: Path) -> list[pb.Alert]:
    reply = await harness.stub.ListAlerts(spb.ListAlertsRequest())
    return [a for a in reply.alerts if a.kind == pb.ALERT_KIND_STORE_ERROR
            and a.message.startswith(f"the state file {database}")]
