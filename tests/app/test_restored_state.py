"""`riskbudget restored-state`: a state file put back from a backup gets a new recommendation log
and budget versions past those the lost run used, so that no subscriber skips and no version
goes back."""

from __future__ import annotations

from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget_sidecar.app.cli import main
from riskbudget_sidecar.app.serve import stop
from riskbudget_sidecar.store.sqlite import RESTORED_VERSION_GAP

from ..rpc.conftest import start_harness, write_config
from ..rpc.test_recommendations import trigger


async def started(tmp_path):
    return await start_harness(tmp_path)


async def closed(harness) -> None:
    await harness.channel.close()
    await stop(harness.sidecar, harness.server)


async def test_a_restored_state_file_starts_a_new_log_and_numbers_budgets_past_the_lost_run(tmp_path, capsys):
    first = await started(tmp_path)
    await trigger(first)
    before = await first.stub.GetStatus(spb.GetStatusRequest())
    versions_before = first.sidecar.store.budget_versions_reserved()
    await closed(first)

    status = main(["restored-state", "--config", str(tmp_path / "sidecar.yaml")])
    printed = capsys.readouterr().out

    again = await started(tmp_path)
    try:
        after = await again.stub.GetStatus(spb.GetStatusRequest())
        next_one = await trigger(again)
    finally:
        await closed(again)

    assert status == 0 and "a new recommendation log" in printed
    assert after.recommendation_log_id != before.recommendation_log_id
    assert next_one.sequence == before.last_recommendation_sequence + 1  # sequences still go on
    assert after.budget.version > versions_before + RESTORED_VERSION_GAP


async def test_restored_state_refuses_a_state_file_a_running_sidecar_holds(tmp_path, capsys):
    running = await started(tmp_path)
    try:
        status = main(["restored-state", "--config", str(tmp_path / "sidecar.yaml")])
    finally:
        await closed(running)

    assert status == 1
    assert "cannot open the state file" in capsys.readouterr().err


def test_restored_state_refuses_a_store_path_with_no_state_file(tmp_path, capsys):
    config = write_config(tmp_path)  # its store.path names a file not made yet

    status = main(["restored-state", "--config", str(config)])

    assert status == 1 and "no state file at" in capsys.readouterr().err
    assert not (tmp_path / "state.sqlite3").exists()


def test_restored_state_refuses_a_config_without_a_state_file_to_ready(tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "state.sqlite3").write_bytes(b"")  # another sidecar's file at the path it names
    config = write_config(tmp_path, store__backend="memory", store__path=str(other / "state.sqlite3"))

    status = main(["restored-state", "--config", str(config)])

    assert status == 1 and "store.backend is memory" in capsys.readouterr().err
