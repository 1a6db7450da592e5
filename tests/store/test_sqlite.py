"""What only the SQLite store does: survive a restart and a crash, log decisions in the
background, and refuse a change it cannot make durable."""

from __future__ import annotations

import inspect
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from riskbudget_sidecar.engine.config import StoreSettings
from riskbudget_sidecar.engine.types import DecisionRecord, Position, Side, TradingState
from riskbudget_sidecar.store import MemoryStore, StoreError
from riskbudget_sidecar.store.serialization import from_dict, to_dict
from riskbudget_sidecar.store import sqlite as sqlite_store
from riskbudget_sidecar.store.sqlite import _CHECKPOINT_EVERY
from tests.engine.builders import NOW, fill, order, reservation
from tests.store.builders import (
    decision, decision_record, held_by, override, recommendation, write_lock,
)

REPO = Path(__file__).resolve().parents[2]


async def make_changes(store) -> None:
    """One change of every kind a sidecar makes; the crash test's child runs it too."""
    await store.set_positions([Position("alpha", "AAA", 50), Position("beta", "CCC", -20)], None)
    await store.reserve(reservation(30, client_order_id="o-1"))
    await store.reserve(reservation(-10, client_order_id="o-2", symbol="BBB"))
    await store.apply_fill(fill(Side.BUY, 10, client_order_id="o-1"))
    await store.reserve(reservation(5, client_order_id="o-3"))
    await store.release("o-3")
    request = order(client_order_id="o-1", quantity=30)
    store.remember(request, decision(request, approved=20), forget_after=NOW + 120)
    checked = order(client_order_id="o-4", quantity=7, symbol="BBB")
    await store.record_check(checked, decision(checked), reservation(7, client_order_id="o-4", symbol="BBB"),
                             forget_after=NOW + 120, decided_at=NOW)
    await store.set_trading_state(TradingState.REDUCING)
    await store.set_trading_state(TradingState.HALTED, "beta")
    await store.add_override(override("b"))
    await store.add_override(override("a", expires_at=NOW + 600))
    for reason in ("drift", "regime change", "vol breach"):
        store.append_recommendation(recommendation(reason))


# -- restart -------------------------------------------------------------------------------------


async def test_reopening_shows_everything_the_store_held(open_sqlite) -> None:
    first = open_sqlite()
    await make_changes(first)
    before = held_by(first)
    first.close()

    again = open_sqlite()

    assert held_by(again) == before
    assert again.book.reservation("o-1") == reservation(20, client_order_id="o-1")
    assert again.remembered("o-1").decision.approved_quantity == 20
    assert again.recommendation_bounds() == (1, 3)
    assert again.recommendation_log_id == first.recommendation_log_id


async def test_a_new_state_file_starts_another_recommendation_log(open_sqlite, db_path) -> None:
    first = open_sqlite()
    first.append_recommendation(recommendation("one"))
    first.close()
    db_path.parent.rename(db_path.parent.with_name("moved"))

    replaced = open_sqlite()

    assert replaced.append_recommendation(recommendation("again")).sequence == 1
    assert len(replaced.recommendation_log_id) == 32
    assert replaced.recommendation_log_id != first.recommendation_log_id


async def test_a_fill_remembered_by_its_execution_id_is_not_applied_again_after_a_restart(open_sqlite) -> None:
    import dataclasses

    first = open_sqlite()
    executed = dataclasses.replace(fill(Side.BUY, 40), execution_id="x-1")
    await first.apply_fill(executed, forget_after=NOW + 60)
    first.close()

    again = open_sqlite()
    retried = await again.apply_fill(executed, forget_after=NOW + 60)

    assert retried == (Position("alpha", "AAA", 40), 0.0)
    assert again.book.positions() == [Position("alpha", "AAA", 40)]


def test_recommendation_sequences_continue_after_a_restart(open_sqlite) -> None:
    first = open_sqlite()
    first.append_recommendation(recommendation("one"))
    first.append_recommendation(recommendation("two"))
    first.close()

    next_one = open_sqlite().append_recommendation(recommendation("three"))

    assert next_one.sequence == 3


def test_trimmed_sequences_are_never_reused_after_a_restart(open_sqlite) -> None:
    first = open_sqlite(recommendation_retention=2)
    for n in range(5):
        first.append_recommendation(recommendation(str(n)))
    first.close()

    again = open_sqlite(recommendation_retention=2)
    kept = again.recommendations_after(0, limit=10)
    next_one = again.append_recommendation(recommendation("5"))

    assert [(r.sequence, r.reason) for r in kept] == [(4, "3"), (5, "4")]
    assert next_one.sequence == 6
    assert again.recommendation_bounds() == (5, 6)


def test_a_smaller_retention_keeps_only_the_newest_on_reopening(open_sqlite) -> None:
    first = open_sqlite(recommendation_retention=10)
    for n in range(5):
        first.append_recommendation(recommendation(str(n)))
    first.close()

    again = open_sqlite(recommendation_retention=2)

    assert again.recommendation_bounds() == (4, 5)


def killed_after_acknowledging(script: str, db_path: Path) -> tuple[str, int]:
    """Run `script` on the database until it prints its first line, then SIGKILL it: that
    line, and the exit code."""
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(db_path)], cwd=REPO,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        acknowledged = child.stdout.readline()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdin.close()
        child.stdout.close()
    return acknowledged, child.returncode


async def test_every_change_a_killed_process_acknowledged_is_there_after_reopening(
        open_sqlite, db_path: Path) -> None:
    acknowledged, returncode = killed_after_acknowledging(CHILD, db_path)
    unclosed_log = db_path.with_name(db_path.name + "-wal").stat().st_size
    expected = MemoryStore()
    await make_changes(expected)

    reopened = open_sqlite()

    assert acknowledged == "acknowledged\n"
    assert returncode == -signal.SIGKILL
    assert unclosed_log > 0
    assert held_by(reopened) == held_by(expected)


CHILD = """
import asyncio
import sys
from riskbudget_sidecar.engine.config import StoreSettings
from riskbudget_sidecar.store import SqliteStore
from tests.store.test_sqlite import make_changes

store = SqliteStore(StoreSettings(path=sys.argv[1]))
asyncio.run(make_changes(store))
print("acknowledged", flush=True)
sys.stdin.read()  # blocks: the parent kills this process before any close
"""


def test_the_database_is_in_wal_mode(open_sqlite, db_path: Path) -> None:
    open_sqlite()

    other = sqlite3.connect(db_path)
    [(mode,)] = other.execute("PRAGMA journal_mode").fetchall()
    other.close()

    assert mode == "wal"


async def test_the_writer_checkpoints_so_that_the_wal_starts_over(open_sqlite, db_path: Path) -> None:
    store = open_sqlite()
    for n in range(_CHECKPOINT_EVERY):
        await store.set_trading_state(TradingState.HALTED if n % 2 else TradingState.ACTIVE)
    assert store.flush(timeout=10)

    await store.set_trading_state(TradingState.REDUCING)

    other = sqlite3.connect(db_path)
    [(_, frames_in_wal, _)] = other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    other.close()
    assert 0 < frames_in_wal < 10


def test_a_database_of_another_schema_version_is_refused(open_sqlite, db_path: Path) -> None:
    open_sqlite().close()
    other = sqlite3.connect(db_path)
    with other:
        other.execute("UPDATE schema_version SET version = 99")
    other.close()

    with pytest.raises(StoreError, match="schema version 99"):
        open_sqlite()


def test_a_state_path_under_a_regular_file_is_refused_naming_store_path(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")

    with pytest.raises(StoreError, match=r"cannot open the state store .*a-file/state.sqlite3 \(store.path\)"):
        sqlite_store.SqliteStore(StoreSettings(path=str(tmp_path / "a-file" / "state.sqlite3")))


async def test_a_database_holding_what_this_sidecar_cannot_read_is_refused(
        open_sqlite, db_path: Path) -> None:
    first = open_sqlite()
    await first.set_trading_state(TradingState.HALTED)
    first.close()
    other = sqlite3.connect(db_path)
    with other:
        other.execute("UPDATE trading_states SET state = 'PANIC'")
    other.close()

    with pytest.raises(StoreError, match="cannot read: KeyError.*PANIC"):
        open_sqlite()


# -- check journal -------------------------------------------------------------------------------


async def record_check(store, client_order_id: str, quantity: float = 5) -> None:
    request = order(client_order_id=client_order_id, quantity=quantity)
    await store.record_check(request, decision(request),
                             reservation(quantity, client_order_id=client_order_id), forget_after=NOW + 120, decided_at=NOW)


def table(db_path: Path, sql: str) -> list[tuple]:
    other = sqlite3.connect(db_path)
    try:
        return other.execute(sql).fetchall()
    finally:
        other.close()


async def test_checks_are_recorded_while_the_database_is_locked_and_folded_in_once_it_is_free(
        open_sqlite, db_path: Path) -> None:
    store = open_sqlite()
    with write_lock(db_path):
        await record_check(store, "o-1")
        await record_check(store, "o-2")
        waiting = store.flush(timeout=0.05)

    flushed = store.flush(timeout=10)

    assert (waiting, flushed) == (False, True)
    assert table(db_path, "SELECT client_order_id FROM reservations ORDER BY rowid") == [("o-1",), ("o-2",)]
    assert table(db_path, "SELECT applied_sequence FROM check_journal") == [(2,)]


async def test_a_full_journal_segment_is_deleted_once_its_checks_are_folded_in(
        open_sqlite, db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("riskbudget_sidecar.store.sqlite._SEGMENT_BYTES", 1000)  # one record each
    store = open_sqlite()
    for n in range(3):
        await record_check(store, f"o-{n}")
        assert store.flush(timeout=10)
    segments = [p.name for p in db_path.parent.glob(db_path.name + "-checks.*")]
    store.close()

    reopened = open_sqlite()

    assert segments == [db_path.name + "-checks.3"]
    assert [reopened.book.reservation(f"o-{n}").signed_quantity for n in range(3)] == [5, 5, 5]


async def test_a_backlog_is_folded_in_a_few_rows_per_transaction_and_no_segment_goes_before_its_records(
        open_sqlite, db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("riskbudget_sidecar.store.sqlite._SEGMENT_BYTES", 1000)  # one record each
    monkeypatch.setattr("riskbudget_sidecar.store.sqlite._FOLD_ROWS", 2)  # one check per transaction
    store = open_sqlite()
    with write_lock(db_path):
        for n in range(4):
            await record_check(store, f"o-{n}")
        await store.expire(NOW + 3600)  # a removal of 4 rows behind them
        await record_check(store, "o-9")
    assert store.flush(timeout=10)
    segments = [p.name for p in db_path.parent.glob(db_path.name + "-checks.*")]
    store.close()

    reopened = open_sqlite()

    assert segments == [db_path.name + "-checks.5"]
    assert [r.client_order_id for r in reopened.book.reservations()] == ["o-9"]
    assert table(db_path, "SELECT applied_sequence FROM check_journal") == [(5,)]


def test_a_full_segment_is_handed_over_for_deletion_only_with_the_last_of_its_records(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("riskbudget_sidecar.store.sqlite._SEGMENT_BYTES", 1000)  # one record each
    journal = sqlite_store._CheckJournal(tmp_path / "state.sqlite3", next_sequence=1)
    padded = json.dumps({"pad": "x" * 300})  # one record fills most of a segment
    for n in range(3):
        journal.append(f"o-{n}", padded, padded, None, NOW, (n + 1, NOW))

    first, finished_first = journal.take(rows=2)
    rest, finished_rest = journal.take(rows=2), journal.take()
    journal.close()

    assert ([c.sequence for c in first], finished_first) == ([1], [])
    assert [c.sequence for c in rest[0]] == [2] and rest[1] == []
    assert [c.sequence for c in finished_rest[0]] == [3]
    assert [p.name for p in finished_rest[1]] == ["state.sqlite3-checks.1", "state.sqlite3-checks.2"]


async def test_a_change_after_a_check_folds_the_check_in_first(open_sqlite, db_path: Path) -> None:
    store = open_sqlite()
    await record_check(store, "o-1")

    await store.release("o-1")  # before the writer's linger is over: the release's transaction folds it
    store.close()

    reopened = open_sqlite()
    assert reopened.book.reservation("o-1") is None
    assert reopened.remembered("o-1").decision == decision(order(client_order_id="o-1", quantity=5))


async def test_journaled_checks_the_database_never_took_are_there_after_a_kill_9(
        open_sqlite, db_path: Path) -> None:
    acknowledged, _ = killed_after_acknowledging(LOCKED_CHILD, db_path)
    folded_before = table(db_path, "SELECT client_order_id FROM reservations")

    reopened = open_sqlite()

    assert acknowledged == "acknowledged\n"
    assert folded_before == []
    assert reopened.book.reservation("o-1") == reservation(5, client_order_id="o-1")
    assert reopened.book.reservation("o-2") == reservation(6, client_order_id="o-2")
    assert reopened.remembered("o-2").decision == decision(order(client_order_id="o-2", quantity=6))
    assert table(db_path, "SELECT applied_sequence FROM check_journal") == [(2,)]
    assert list(db_path.parent.glob(db_path.name + "-checks.*")) == [
        db_path.with_name(db_path.name + "-checks.1")]  # the new store's own, empty
    # their decisions are logged with them, not lost with a queue that died with the process
    assert [(time, order_id, json.loads(record)["decision"]["approved_quantity"]) for time, order_id, record
            in table(db_path, "SELECT time, client_order_id, record_json FROM decision_log ORDER BY id")] == [
        (NOW, "o-1", 5), (NOW, "o-2", 6)]


def test_a_journal_an_earlier_version_wrote_without_decision_times_is_read_back(open_sqlite, db_path: Path) -> None:
    segment = kill_with_checks_waiting(db_path)
    segment.write_bytes(re.sub(rb'"logged_as": \[[^]]*\], ', b"", segment.read_bytes()))  # as such a journal reads

    reopened = open_sqlite()

    assert reopened.book.reservation("o-2") == reservation(6, client_order_id="o-2")
    assert table(db_path, "SELECT client_order_id FROM decision_log") == []  # that version queued them


LOCKED_CHILD = """
import asyncio
import sqlite3
import sys
from riskbudget_sidecar.engine.config import StoreSettings
from riskbudget_sidecar.store import SqliteStore
from tests.store.test_sqlite import record_check

store = SqliteStore(StoreSettings(path=sys.argv[1]))
blocker = sqlite3.connect(sys.argv[1], isolation_level=None)
blocker.execute("BEGIN IMMEDIATE")  # the writer thread cannot fold the checks in
asyncio.run(record_check(store, "o-1"))
asyncio.run(record_check(store, "o-2", quantity=6))
print("acknowledged", flush=True)
sys.stdin.read()  # blocks: the parent kills this process before any close
"""


async def test_a_check_the_journal_refuses_raises_and_leaves_memory_as_it_was(
        open_sqlite, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("riskbudget_sidecar.store.sqlite._SEGMENT_BYTES", 1000)  # one record each
    store = open_sqlite()
    await record_check(store, "o-1")
    before = held_by(store)

    def disk_full(fd: int, offset: int, length: int) -> None:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr("riskbudget_sidecar.store.sqlite.os.posix_fallocate", disk_full)
    with pytest.raises(StoreError, match="check journal .* refused the record: .*No space left"):
        await record_check(store, "o-2")  # needs the next segment
    monkeypatch.undo()

    assert held_by(store) == before
    assert store.book.reservation("o-2") is None and store.remembered("o-2") is None


def kill_with_checks_waiting(db_path: Path, setup: str = "") -> Path:
    """Run LOCKED_CHILD (after `setup`) to an exit without close: its two checks are in the
    journal only. Returns the journal's first segment."""
    script = setup + LOCKED_CHILD.replace("sys.stdin.read()", "import os; os._exit(0)")
    child = subprocess.run([sys.executable, "-c", script, str(db_path)], cwd=REPO,
                           capture_output=True, text=True, check=True)
    assert child.stdout == "acknowledged\n"
    return db_path.with_name(db_path.name + "-checks.1")


def test_checks_journaled_over_several_segments_are_all_read_back(open_sqlite, db_path: Path) -> None:
    kill_with_checks_waiting(db_path, "import riskbudget_sidecar.store.sqlite as s; s._SEGMENT_BYTES = 1000\n")
    segments = sorted(p.name for p in db_path.parent.glob(db_path.name + "-checks.*"))

    reopened = open_sqlite()

    assert segments == [db_path.name + "-checks.1", db_path.name + "-checks.2"]
    assert reopened.book.reservation("o-1") == reservation(5, client_order_id="o-1")
    assert reopened.book.reservation("o-2") == reservation(6, client_order_id="o-2")


def test_a_torn_last_journal_line_is_skipped(open_sqlite, db_path: Path) -> None:
    segment = kill_with_checks_waiting(db_path)
    with segment.open("r+b") as journal:
        journal.seek(segment.read_bytes().index(b"\0"))  # where the next record would go
        journal.write(b'{"sequence": 3, "forget_af')

    reopened = open_sqlite()

    assert reopened.book.reservation("o-2") == reservation(6, client_order_id="o-2")
    assert table(db_path, "SELECT applied_sequence FROM check_journal") == [(2,)]


def test_a_journal_damaged_before_its_last_line_is_refused(open_sqlite, db_path: Path) -> None:
    segment = kill_with_checks_waiting(db_path)
    segment.write_bytes(b"garbage\n" + segment.read_bytes())

    with pytest.raises(StoreError, match="checks.1 line 1 is not a journal record"):
        open_sqlite()


async def test_a_checks_decision_log_record_reads_back_as_the_dict_of_its_record(open_sqlite) -> None:
    store = open_sqlite()
    request = order(client_order_id="o-1", quantity=5)
    checked = decision(request)
    await store.record_check(request, checked, reservation(5), forget_after=NOW + 120, decided_at=NOW)

    store.log_decision(DecisionRecord(NOW, request, checked))  # from the journal's JSON
    store.flush(timeout=10)

    assert store.decisions(limit=1) == [to_dict(DecisionRecord(NOW, request, checked))]


# -- decision log --------------------------------------------------------------------------------


def test_decisions_queued_while_the_writer_waits_are_all_written_once_it_can(
        open_sqlite, db_path: Path) -> None:
    store = open_sqlite(decision_log_batch=2)
    with write_lock(db_path):
        for n in range(5):
            store.log_decision(decision_record(f"o-{n}"))
        waiting = store.decision_log_stats()
        flushed_while_locked = store.flush(timeout=0.01)

    flushed = store.flush(timeout=10)

    assert (waiting, flushed_while_locked, flushed) == ((5, 0), False, True)
    assert [d["order"]["client_order_id"] for d in store.decisions(limit=10)] == [
        "o-0", "o-1", "o-2", "o-3", "o-4"]
    assert store.decision_log_stats() == (0, 0)


def test_a_logged_decision_reads_back_as_the_dict_of_its_record(open_sqlite) -> None:
    store = open_sqlite()
    store.log_decision(decision_record("o-1"))
    store.flush(timeout=10)

    (written,) = store.decisions(limit=1)

    assert written == to_dict(decision_record("o-1"))
    assert from_dict(DecisionRecord, written) == decision_record("o-1")


def written_by_name(record: DecisionRecord) -> dict:
    """The record as earlier versions of the store wrote it: enums by name."""
    written = to_dict(record)
    written["order"]["side"] = record.order.side.name
    written["decision"]["decision"] = record.decision.decision.name
    written["decision"]["regime"] = record.decision.regime.name
    return written


def test_a_state_file_with_enums_written_by_name_still_loads(open_sqlite, db_path: Path) -> None:
    record = decision_record("o-1")
    open_sqlite().close()
    legacy = written_by_name(record)
    with sqlite3.connect(db_path) as db:
        db.execute("INSERT INTO remembered_decisions VALUES (?, ?, ?, ?)",
                   ("o-1", json.dumps(legacy["order"]), json.dumps(legacy["decision"]), NOW + 120))
        db.execute("INSERT INTO decision_log (time, client_order_id, record_json) VALUES (?, ?, ?)",
                   (NOW, "o-1", json.dumps(legacy)))

    store = open_sqlite()

    assert store.remembered("o-1").decision == record.decision
    assert store.decisions(limit=1) == [to_dict(record)]


def test_decisions_beyond_the_queue_go_to_the_fallback_log_and_are_counted(
        open_sqlite, db_path: Path) -> None:
    fallback: list[dict] = []
    store = open_sqlite(decision_log_queue=2, fallback_log=fallback.append)
    with write_lock(db_path):
        for n in range(5):
            store.log_decision(decision_record(f"o-{n}"))
        stats_while_blocked = store.decision_log_stats()
    store.flush(timeout=10)

    assert stats_while_blocked == (2, 3)
    assert [d["order"]["client_order_id"] for d in fallback] == ["o-2", "o-3", "o-4"]
    assert [d["order"]["client_order_id"] for d in store.decisions(limit=10)] == ["o-0", "o-1"]
    assert store.decision_log_stats() == (0, 3)


def test_a_batch_the_database_refuses_goes_to_the_fallback_log(open_sqlite, db_path: Path) -> None:
    fallback: list[dict] = []
    store = open_sqlite(fallback_log=fallback.append)
    refuse(db_path, "INSERT", "decision_log")

    store.log_decision(decision_record("o-1"))
    store.flush(timeout=10)

    assert fallback == [to_dict(decision_record("o-1"))]
    assert store.decision_log_stats() == (0, 1)


def test_close_writes_the_queued_decisions(open_sqlite, db_path: Path) -> None:
    store = open_sqlite()
    with write_lock(db_path):
        store.log_decision(decision_record("o-1"))
    store.close()

    assert [d["order"]["client_order_id"] for d in open_sqlite().decisions(limit=10)] == ["o-1"]


def test_a_decision_logged_after_close_goes_to_the_fallback_log(open_sqlite) -> None:
    fallback: list[dict] = []
    store = open_sqlite(fallback_log=fallback.append)
    store.close()

    store.log_decision(decision_record("o-1"))

    assert len(fallback) == 1
    assert store.decision_log_stats() == (0, 1)


def logged_ids(store) -> list[str]:
    return [d["order"]["client_order_id"] for d in store.decisions(limit=100)]


def test_the_decision_log_keeps_its_retention_counted_back_from_the_newest_decision(open_sqlite) -> None:
    store = open_sqlite(decision_log_retention=10)
    for at in (0, 5, 12):
        store.log_decision(decision_record(f"o-{at}", at=NOW + at))
        store.flush(timeout=10)  # one batch each: the last one trims
    assert logged_ids(store) == ["o-5", "o-12"]

    store.log_decision(decision_record("o-30", at=NOW + 30))
    store.flush(timeout=10)

    assert logged_ids(store) == ["o-30"]


def test_without_a_retention_every_decision_is_kept(open_sqlite) -> None:
    store = open_sqlite()
    for at in (0, 1e6):
        store.log_decision(decision_record(f"o-{at:g}", at=NOW + at))
        store.flush(timeout=10)

    assert logged_ids(store) == ["o-0", "o-1e+06"]


def test_the_retention_trims_a_backlog_batch_by_batch_and_on_a_reopened_file(
        open_sqlite, monkeypatch) -> None:
    monkeypatch.setattr(sqlite_store, "_TRIM_BATCH", 3)
    kept_everything = open_sqlite()
    for n in range(10):
        kept_everything.log_decision(decision_record(f"old-{n}", at=NOW + n))
    kept_everything.close()

    store = open_sqlite(decision_log_retention=60)
    store.log_decision(decision_record("new", at=NOW + 100))
    store.flush(timeout=10)

    assert logged_ids(store) == ["new"]


def test_a_retention_must_be_positive_and_finite() -> None:
    for bad in (0, -1, float("inf")):
        with pytest.raises(ValidationError, match="decision_log_retention"):
            StoreSettings(decision_log_retention=bad)


# -- a database that refuses a change ------------------------------------------------------------


async def test_a_locked_database_refuses_a_reservation_and_memory_is_unchanged(
        open_sqlite, db_path: Path) -> None:
    store = open_sqlite(busy_timeout=0.01)
    await store.reserve(reservation(10, client_order_id="o-1"))
    before = held_by(store)

    with write_lock(db_path), pytest.raises(StoreError, match="database is locked"):
        await store.reserve(reservation(20, client_order_id="o-2"))

    assert held_by(store) == before


def refuse(db_path: Path, statement: str, table: str) -> None:
    """Make the database refuse a kind of write, as a full disk would, after the store began."""
    other = sqlite3.connect(db_path)
    with other:
        other.execute(f"CREATE TRIGGER refuse_{statement.lower()}_{table} BEFORE {statement} ON {table} "
                      f"BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
    other.close()


REFUSED_CHANGES = {
    "reserve": ("INSERT", "reservations", lambda s: s.reserve(reservation(5, client_order_id="o-1"))),
    "release": ("DELETE", "reservations", lambda s: s.release("o-1")),
    "fill": ("INSERT", "positions", lambda s: s.apply_fill(fill(Side.BUY, 4, client_order_id="o-1"))),
    "set_positions": ("DELETE", "positions", lambda s: s.set_positions([Position("beta", "AAA", 1)], None)),
    "remember": ("INSERT", "remembered_decisions",
                 lambda s: s.remember(order(client_order_id="o-1"), decision(order()), NOW + 60)),
    "trading_state": ("INSERT", "trading_states", lambda s: s.set_trading_state(TradingState.ACTIVE)),
    "add_override": ("UPDATE", "overrides", lambda s: s.add_override(override("b", value=0.1))),
    "remove_override": ("DELETE", "overrides", lambda s: s.remove_override("a")),
    "recommendation": ("INSERT", "recommendations", lambda s: s.append_recommendation(recommendation())),
}


@pytest.mark.parametrize("change", REFUSED_CHANGES.values(), ids=REFUSED_CHANGES.keys())
async def test_a_change_the_database_refuses_raises_and_leaves_memory_and_disk_as_they_were(
        open_sqlite, db_path: Path, change) -> None:
    statement, table, act = change
    store = open_sqlite()
    await make_changes(store)
    before = held_by(store)
    refuse(db_path, statement, table)

    with pytest.raises(StoreError, match="refused by the test"):
        outcome = act(store)
        if inspect.isawaitable(outcome):
            await outcome

    assert held_by(store) == before
    store.close()
    assert held_by(open_sqlite()) == before


def test_decisions_the_database_would_not_delete_come_back_after_a_restart_and_are_forgotten_when_due(
        open_sqlite, db_path: Path) -> None:
    store = open_sqlite()
    for order_id in ("o-1", "o-2"):
        request = order(client_order_id=order_id)
        store.remember(request, decision(request), forget_after=NOW + 60)
    refuse(db_path, "DELETE", "remembered_decisions")

    forgotten = store.forget_decisions_before(NOW + 61)  # in memory at once; the rows wait
    deleted = store.flush(timeout=0.5)
    store.close()
    table(db_path, "DROP TRIGGER refuse_delete_remembered_decisions")
    reopened = open_sqlite()

    assert (forgotten, deleted) == (2, False)
    assert reopened.forget_decisions_before(NOW + 59) == 0
    assert reopened.forget_decisions_before(NOW + 61) == 2
    assert reopened.flush(timeout=10)
    assert table(db_path, "SELECT count(*) FROM remembered_decisions") == [(0,)]


# -- expiries and forgotten decisions: deleted by the writer, in order -------------------------


async def test_expiries_and_forgotten_decisions_never_wait_for_a_locked_database(
        open_sqlite, db_path: Path) -> None:
    store = open_sqlite(busy_timeout=0.01)
    await record_check(store, "o-1")
    assert store.flush(timeout=10)

    with write_lock(db_path):
        expired = await store.expire(NOW + 3600)
        forgotten = store.forget_decisions_before(NOW + 3600)
        deleted_while_locked = store.flush(timeout=0.05)
    deleted = store.flush(timeout=10)

    assert ([r.client_order_id for r in expired], forgotten) == (["o-1"], 1)
    assert (store.book.reservation("o-1"), store.remembered("o-1")) == (None, None)
    assert (deleted_while_locked, deleted) == (False, True)
    assert table(db_path, "SELECT count(*) FROM reservations UNION ALL "
                          "SELECT count(*) FROM remembered_decisions") == [(0,), (0,)]


async def test_an_expiry_and_a_forget_are_deleted_in_their_turn_between_the_checks_of_the_same_id(
        open_sqlite) -> None:
    store = open_sqlite()
    await record_check(store, "o-1", quantity=5)
    await store.expire(NOW + 3600)
    store.forget_decisions_before(NOW + 3600)
    await record_check(store, "o-1", quantity=7)  # the id again, once forgotten: a new order
    assert store.flush(timeout=10)
    store.close()

    reopened = open_sqlite()

    assert reopened.book.reservation("o-1").signed_quantity == 7
    assert reopened.remembered("o-1").order.quantity == 7


def test_a_second_store_on_the_same_file_is_refused_until_the_first_closes(tmp_path) -> None:
    from riskbudget_sidecar.engine.config import StoreSettings
    from riskbudget_sidecar.store import SqliteStore, StoreError

    settings = StoreSettings(path=str(tmp_path / "state.sqlite3"))
    first = SqliteStore(settings)

    with pytest.raises(StoreError, match="in use by another sidecar"):
        SqliteStore(settings)
    first.close()
    second = SqliteStore(settings)
    second.close()


def test_a_store_on_a_link_to_a_file_in_use_is_refused(tmp_path) -> None:
    from riskbudget_sidecar.engine.config import StoreSettings
    from riskbudget_sidecar.store import SqliteStore, StoreError

    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = SqliteStore(StoreSettings(path=str(tmp_path / "first" / "state.sqlite3")))
    (tmp_path / "second" / "state.sqlite3").symlink_to(tmp_path / "first" / "state.sqlite3")
    (tmp_path / "linked").symlink_to(tmp_path / "first", target_is_directory=True)

    for path in (tmp_path / "second" / "state.sqlite3", tmp_path / "linked" / "state.sqlite3"):
        with pytest.raises(StoreError, match="in use by another sidecar"):
            SqliteStore(StoreSettings(path=str(path)))
    first.close()


def test_when_the_triggers_fired_is_read_back_after_a_reopen(tmp_path) -> None:
    from riskbudget_sidecar.engine.config import StoreSettings
    from riskbudget_sidecar.store import SqliteStore

    settings = StoreSettings(path=str(tmp_path / "state.sqlite3"))
    store = SqliteStore(settings)
    store.record_triggers_fired({"drift:alpha": (10.0, 0.5)})
    store.record_triggers_fired({"vol_breach": (20.0, 1.7), "drift:beta": (30.0, 0.2)})
    store.close()
    reopened = SqliteStore(settings)

    assert reopened.triggers_fired() == {"vol_breach": (20.0, 1.7), "drift:beta": (30.0, 0.2)}
    # an earlier version reads triggers_fired's rows as trigger names: each strategy's drift is apart
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        assert db.execute("SELECT trigger FROM triggers_fired").fetchall() == [("vol_breach",)]
    reopened.close()


def test_the_regime_recorded_is_read_back_after_a_reopen(tmp_path) -> None:
    from riskbudget_sidecar.engine.config import StoreSettings
    from riskbudget_sidecar.engine.types import Regime, RegimeRecord
    from riskbudget_sidecar.store import SqliteStore

    settings = StoreSettings(path=str(tmp_path / "state.sqlite3"))
    store = SqliteStore(settings)
    store.record_regime(RegimeRecord(Regime.BEAR, 10.0, Regime.BEAR))
    store.record_regime(RegimeRecord(Regime.CRISIS, 20.0, Regime.BULL))
    store.close()
    reopened = SqliteStore(settings)

    assert reopened.regime_record() == RegimeRecord(Regime.CRISIS, 20.0, Regime.BULL)
    reopened.close()


async def test_the_check_journal_lies_beside_the_state_file_whichever_link_opened_it(tmp_path) -> None:
    from riskbudget_sidecar.engine.config import StoreSettings
    from riskbudget_sidecar.store import SqliteStore

    (tmp_path / "real").mkdir()
    (tmp_path / "link").mkdir()
    SqliteStore(StoreSettings(path=str(tmp_path / "real" / "state.sqlite3"))).close()
    (tmp_path / "link" / "state.sqlite3").symlink_to(tmp_path / "real" / "state.sqlite3")

    store = SqliteStore(StoreSettings(path=str(tmp_path / "link" / "state.sqlite3")))
    await store.record_check(order(), decision(order()), None, forget_after=NOW + 60, decided_at=NOW)
    beside = ({p.name for p in (tmp_path / "real").glob("state.sqlite3-checks.*")},
              {p.name for p in (tmp_path / "link").glob("state.sqlite3-checks.*")})
    store.close()

    assert beside[0] and not beside[1]  # a restart through either path replays it


def test_a_new_state_file_and_its_directory_are_for_their_owner_only(tmp_path) -> None:
    import stat

    from riskbudget_sidecar.engine.config import StoreSettings
    from riskbudget_sidecar.store import SqliteStore

    path = tmp_path / "state" / "state.sqlite3"
    store = SqliteStore(StoreSettings(path=str(path)))
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [path.parent, *path.parent.iterdir()]}
    store.close()

    assert modes["state"] == 0o700
    assert {name: mode for name, mode in modes.items() if name != "state"} == {
        name: 0o600 for name in modes if name != "state"}
    assert {"state.sqlite3", "state.sqlite3-wal", "state.sqlite3.lock"} <= set(modes)
