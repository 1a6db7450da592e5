"""The durable store: MemoryStore written through to one SQLite file.

Memory stays the read side (the hot path never reads the database); every
change is durable before the method returns, and on open the file is loaded back
into memory, so a restarted sidecar carries on where it stopped. CheckTrade's
record (its reservation and its decision) is appended to a check journal beside
the database, which the writer thread folds into SQLite in batches (see
SqliteStore); every other change is committed to SQLite directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import dataclasses
import json
import logging
import mmap
import errno
import os
import shutil
import sqlite3
import threading
from collections import deque
from pathlib import Path
from typing import IO, Any, Callable, Iterator, NamedTuple, Sequence

from ..engine.config import StoreSettings
from ..engine.types import (
    DecisionRecord, Fill, OrderRequest, Override, Position, Recommendation, Regime,
    RegimeRecord, RememberedFill, Reservation, TradeDecision, TradingState,
)
from ..engine.triggers import DRIFT_KEY
from .errors import StoreError
from .memory import MemoryStore
from .serialization import from_dict, to_dict, to_json

SCHEMA_VERSION = 1

_SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version SELECT {SCHEMA_VERSION} WHERE NOT EXISTS (SELECT 1 FROM schema_version);
CREATE TABLE IF NOT EXISTS positions (
    strategy TEXT NOT NULL, symbol TEXT NOT NULL, quantity REAL NOT NULL,
    PRIMARY KEY (strategy, symbol));
CREATE TABLE IF NOT EXISTS reservations (
    client_order_id TEXT PRIMARY KEY, strategy TEXT NOT NULL, symbol TEXT NOT NULL,
    signed_quantity REAL NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS remembered_decisions (
    client_order_id TEXT PRIMARY KEY, order_json TEXT NOT NULL, decision_json TEXT NOT NULL,
    forget_after REAL NOT NULL);
CREATE TABLE IF NOT EXISTS trading_states (strategy TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS remembered_fills (
    execution_id TEXT PRIMARY KEY, fill_json TEXT NOT NULL, position_json TEXT NOT NULL,
    reserved_remaining REAL NOT NULL, forget_after REAL NOT NULL);
CREATE TABLE IF NOT EXISTS triggers_fired (
    trigger TEXT PRIMARY KEY, fired_at REAL NOT NULL, severity REAL NOT NULL);
CREATE TABLE IF NOT EXISTS drift_fired (
    strategy TEXT PRIMARY KEY, fired_at REAL NOT NULL, severity REAL NOT NULL);
CREATE TABLE IF NOT EXISTS regime_record (
    detected TEXT NOT NULL, detected_since REAL NOT NULL, effective TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS overrides (
    position INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, override_json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS recommendations (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT, recommendation_json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS recommendation_log (id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS budget_versions (reserved INTEGER NOT NULL);
INSERT INTO recommendation_log SELECT lower(hex(randomblob(16)))
    WHERE NOT EXISTS (SELECT 1 FROM recommendation_log);
CREATE TABLE IF NOT EXISTS decision_log (
    id INTEGER PRIMARY KEY, time REAL NOT NULL, client_order_id TEXT NOT NULL,
    record_json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS check_journal (applied_sequence INTEGER NOT NULL);
INSERT INTO check_journal SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM check_journal);
COMMIT;
"""
"""trading_states keeps the book's own state under strategy ''. The recommendations'
AUTOINCREMENT keeps a sequence from being reused even after its row is trimmed;
recommendation_log names the log, made with the file (a file from before it gets one).
drift_fired keeps each strategy's drift cooldown apart from triggers_fired, whose rows an
earlier version reads as trigger names: a file written now still opens there (a rollback).
check_journal holds the sequence of the last journaled check folded into the tables."""

# One SQL string per statement: sqlite3 prepares each once and reuses it from its cache.
_SAVE_POSITION = "INSERT OR REPLACE INTO positions (strategy, symbol, quantity) VALUES (?, ?, ?)"
_DELETE_POSITION = "DELETE FROM positions WHERE strategy = ? AND symbol = ?"
_SAVE_RESERVATION = ("INSERT OR REPLACE INTO reservations "
                     "(client_order_id, strategy, symbol, signed_quantity, expires_at) VALUES (?, ?, ?, ?, ?)")
_DELETE_RESERVATION = "DELETE FROM reservations WHERE client_order_id = ?"
_SAVE_DECISION = ("INSERT OR REPLACE INTO remembered_decisions "
                  "(client_order_id, order_json, decision_json, forget_after) VALUES (?, ?, ?, ?)")
_DELETE_DECISION = "DELETE FROM remembered_decisions WHERE client_order_id = ?"
_SAVE_FILL = ("INSERT OR REPLACE INTO remembered_fills "
              "(execution_id, fill_json, position_json, reserved_remaining, forget_after) VALUES (?, ?, ?, ?, ?)")
_DELETE_FILL = "DELETE FROM remembered_fills WHERE execution_id = ?"
_SAVE_STATE = "INSERT OR REPLACE INTO trading_states (strategy, state) VALUES (?, ?)"
_SAVE_OVERRIDE = ("INSERT INTO overrides (id, override_json) VALUES (?, ?) "
                  "ON CONFLICT (id) DO UPDATE SET override_json = excluded.override_json")
_DELETE_OVERRIDE = "DELETE FROM overrides WHERE id = ?"
_APPEND_RECOMMENDATION = "INSERT INTO recommendations (recommendation_json) VALUES (?)"
_TRIM_RECOMMENDATIONS = "DELETE FROM recommendations WHERE sequence <= ?"
_LOG_DECISIONS = "INSERT INTO decision_log (id, time, client_order_id, record_json) VALUES (?, ?, ?, ?)"
"""With the id given when the decision was made: rows are in decision order, however they reach the table."""
_LAST_LOGGED = "SELECT coalesce(max(id), 0) FROM decision_log"
_OLDEST_DECISION = "SELECT time FROM decision_log ORDER BY id LIMIT 1"
_TRIM_DECISIONS = ("DELETE FROM decision_log WHERE id IN "
                   "(SELECT id FROM decision_log ORDER BY id LIMIT ?) AND time < ?")
"""Among the oldest rows (by id, the order they were written in), those older than the cutoff."""
_FOLDED_UP_TO = "UPDATE check_journal SET applied_sequence = ?"

RESTORED_VERSION_GAP = 10**12
"""Budget versions skipped after a restored backup: more than the run that followed it can have
used (a version per price update: 31 years at 1,000 a second), and far below 2^53."""

_CHECKPOINT_EVERY = 250
"""Commits of the event loop, or decisions written, between two checkpoints."""

_MAX_WAL_FRAMES = 10_000
"""A WAL this long (about 40 MB) is checkpointed holding the write lock (see _checkpoint)."""

_LINGER = 0.02
"""Seconds the writer lets a batch fill after its first record: a decision is written
within about this long, in a few large transactions rather than one per decision."""

_SEGMENT_BYTES = 4 << 20
"""The size of a check journal segment: about 5,000 checks."""

_FOLD_ROWS = 2_000
"""Rows the writer thread changes per transaction when it folds the journal in."""

_TRIM_BATCH = 5_000
"""Decision log rows deleted per transaction: the write lock is held for one batch at a time."""

_REFUSED_RETRY = 0.5
"""Seconds the writer waits before folding in journaled checks again after the database
refused them (they are safe in the journal meanwhile)."""

_BOOK = ""
"""The trading_states row of the book's own state."""

_log = logging.getLogger(__name__)


class SqliteStore(MemoryStore):
    """MemoryStore made durable in SQLite, with an asynchronous decision log.

    Durability: WAL journal with synchronous=NORMAL. A commit appends to the WAL
    without an fsync, so it costs no disk flush, yet once a method has returned
    its change is in the operating system's hands and survives the process being
    killed (kill -9, a crash), which is what the sidecar promises. Only an
    operating-system crash or a power loss can lose the last few transactions;
    the database itself stays consistent even then.

    Every mutation is one transaction, committed before the method returns. It
    changes memory, writes what memory now holds for the keys it touched and
    commits; if the database refuses (locked, disk full, read-only), the method
    raises StoreError and memory is put back as it was, so memory and disk never
    disagree.

    CheckTrade's record (`record_check`) is the exception: it is appended to the
    check journal (see _CheckJournal), one write() that costs a few microseconds
    where a commit costs tens, and is as durable (in the operating system's hands
    once written). The writer thread folds journaled checks into the tables in
    batches, and every other mutation folds those still waiting into its own
    transaction first, so the tables see the changes in the order they were made.
    On open, journaled checks the database has not folded are read back. Expired
    reservations and forgotten decisions are deleted the same way, queued behind
    the journaled checks (in memory only: after a crash they come back past due and
    are removed again).

    All methods run on one thread at a time (the event loop), through one
    connection, except `log_decision`, which only enqueues. A writer thread with
    its own connection drains the decision log and the check journal in batches
    and runs the WAL checkpoints, which copy pages and fsync: run by the committing connection,
    as SQLite does by default, they stalled the event loop for about 10 ms every
    few hundred commits. The two connections take turns on an in-process lock
    rather than meeting in SQLite's busy handler, which sleeps at least a
    millisecond per collision.

    `fallback_log` receives, as dicts, the decisions the log could not take
    (backlog full, or the database refused the batch); it may be called from the
    writer thread. `busy_timeout` is how long, in seconds, a write waits for a
    lock held elsewhere before it fails.
    """

    def __init__(self, settings: StoreSettings, *,
                 fallback_log: Callable[[dict[str, Any]], None] | None = None,
                 busy_timeout: float = 5.0) -> None:
        super().__init__(settings)
        self._path = Path(settings.path)
        self._busy_timeout = busy_timeout
        self._write_lock = threading.Lock()
        self._commits = 0
        self._last_check: tuple[OrderRequest, TradeDecision] | None = None
        """The last journaled check's order and decision, whose decision log record the journal
        holds already (see log_decision)."""
        self._owner = _claim(self._path)
        self._file = self._path.resolve()
        """The file itself, links followed: its journal lies beside it, whichever path opened it."""
        try:
            self._db = _connect(self._file, busy_timeout)
            opened = os.stat(self._file)
        except BaseException:
            self._owner.close()
            raise
        self._identity = (opened.st_dev, opened.st_ino)
        self._file_lost: str | None = None
        """Why the file opened is no longer at its path, once `lost_state_file` saw it."""
        try:
            self._open(fallback_log or _log_fallback)
        except BaseException:
            self._db.close()
            self._owner.close()
            raise

    # -- open ------------------------------------------------------------------------------

    def _open(self, fallback_log: Callable[[dict[str, Any]], None]) -> None:
        try:
            self._db.executescript(_SCHEMA)
            self._check_schema_version()
            self._load()
            self._journal = self._replay_journal()
            [(last_logged,)] = self._db.execute(_LAST_LOGGED).fetchall()
            # decision_log ids, given on the event loop as decisions are made (see _LOG_DECISIONS)
            self._decision_ids = itertools.count(last_logged + 1)
        except OSError as error:
            raise StoreError(f"cannot open the check journal of {self._path}: {error}") from error
        except sqlite3.Error as error:
            raise StoreError(f"cannot open the state store {self._path}: {error}") from error
        except (ValueError, KeyError, TypeError) as error:
            raise StoreError(f"the state store {self._path} holds what this sidecar cannot read: "
                             f"{error!r}") from error
        self._writer = _BackgroundWriter(
            _connect(self._file, self._busy_timeout), self._write_lock, self._journal,
            capacity=self._settings.decision_log_queue, batch=self._settings.decision_log_batch,
            retention=self._settings.decision_log_retention, fallback_log=fallback_log)

    def _check_schema_version(self) -> None:
        [(version,)] = self._db.execute("SELECT version FROM schema_version").fetchall()
        if version != SCHEMA_VERSION:
            raise StoreError(f"the state store {self._path} has schema version {version}; "
                             f"this sidecar reads version {SCHEMA_VERSION}")

    def _load(self) -> None:
        """Bring everything the file holds back into memory."""
        db = self._db
        self.book.set_positions(
            [Position(*row) for row in db.execute("SELECT strategy, symbol, quantity FROM positions")])
        for row in db.execute("SELECT client_order_id, strategy, symbol, signed_quantity, expires_at "
                              "FROM reservations ORDER BY rowid"):
            self.book.reserve(Reservation(*row))
        for order, decision, forget_after in db.execute(
                "SELECT order_json, decision_json, forget_after "
                "FROM remembered_decisions ORDER BY rowid"):
            MemoryStore.remember(self, from_dict(OrderRequest, json.loads(order)),
                                 from_dict(TradeDecision, json.loads(decision)), forget_after)
        for strategy, state in db.execute("SELECT strategy, state FROM trading_states"):
            self._put_trading_state(TradingState[state], strategy if strategy != _BOOK else None)
        for fill, position, remaining, forget_after in db.execute(
                "SELECT fill_json, position_json, reserved_remaining, forget_after FROM remembered_fills"):
            self._remember_fill(RememberedFill(from_dict(Fill, json.loads(fill)),
                                               from_dict(Position, json.loads(position)), remaining, forget_after))
        MemoryStore.record_triggers_fired(self, {
            **{trigger: (fired_at, severity) for trigger, fired_at, severity
               in db.execute("SELECT trigger, fired_at, severity FROM triggers_fired")},
            **{DRIFT_KEY + strategy: (fired_at, severity) for strategy, fired_at, severity
               in db.execute("SELECT strategy, fired_at, severity FROM drift_fired")}})
        for detected, since, effective in db.execute(
                "SELECT detected, detected_since, effective FROM regime_record"):
            MemoryStore.record_regime(self, RegimeRecord(Regime(detected), since, Regime(effective)))
        for (override,) in db.execute("SELECT override_json FROM overrides ORDER BY position"):
            self._put_override(from_dict(Override, json.loads(override)))
        newest_first = db.execute(
            "SELECT sequence, recommendation_json FROM recommendations ORDER BY sequence DESC LIMIT ?",
            (self._settings.recommendation_retention,)).fetchall()
        for sequence, recommendation in reversed(newest_first):
            self._keep_recommendation(dataclasses.replace(
                from_dict(Recommendation, json.loads(recommendation)), sequence=sequence))
        [(self.recommendation_log_id,)] = db.execute("SELECT id FROM recommendation_log").fetchall()
        for (reserved,) in db.execute("SELECT reserved FROM budget_versions"):
            MemoryStore.reserve_budget_versions(self, reserved)

    def _replay_journal(self) -> _CheckJournal:
        """Bring back the journaled checks the database had not folded in (a crash came first),
        fold them in, and start a new journal."""
        [(applied,)] = self._db.execute("SELECT applied_sequence FROM check_journal").fetchall()
        records, segments = _read_journal(self._file, applied)
        checks = []
        for record in records:
            order = from_dict(OrderRequest, record["order"])
            decision = from_dict(TradeDecision, record["decision"])
            reserved = record["reservation"]
            reservation = None if reserved is None else Reservation(order.client_order_id, *reserved)
            self._keep_check(order, decision, reservation, record["forget_after"])
            checks.append(_journaled(record["sequence"], order.client_order_id, json.dumps(record["order"]),
                                     json.dumps(record["decision"]), reservation, record["forget_after"],
                                     record.get("logged_as")))
        if checks:
            with _transaction(self._db):
                _fold(self._db, checks)
        for segment in segments:
            segment.unlink()
        return _CheckJournal(self._file, next_sequence=max([applied, *(c.sequence for c in checks)]) + 1)

    # -- availability ----------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """Whether changes can be made: not while the database refuses the journaled checks,
        nor once its file is no longer at its path."""
        return self._journal.refused is None and self._file_lost is None

    def lost_state_file(self) -> str | None:
        """Found by a tester: with the state directory deleted under a running sidecar, checks
        went on being approved into a file without a name (lost at the next start), and a
        second sidecar could start on the path. Once seen, every change is refused."""
        if self._file_lost is None:
            try:
                found = os.stat(self._path)
            except OSError as error:
                if error.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    return None  # cannot tell (a directory made unreadable): the writes say more
                self._file_lost = (f"the state file {self._path} is gone (deleted or moved) under the running "
                                   f"sidecar ({error.strerror})")
            else:
                if (found.st_dev, found.st_ino) != self._identity:
                    self._file_lost = f"the state file {self._path} was replaced under the running sidecar"
        return self._file_lost

    def _refuse_if_lost(self) -> None:
        if self._file_lost is not None:
            raise StoreError(f"{self._file_lost}: changes are refused until the sidecar is restarted")

    def watch(self, *, on_change: Callable[[], None], on_availability: Callable[[bool], None],
              on_data_loss: Callable[[str], None] = lambda message: None,
              on_refusal: Callable[[str | None], None] = lambda reason: None) -> None:
        """`on_refusal` is told on the event loop when the database starts refusing the
        journaled checks (why) and when it takes them again (None)."""
        loop = asyncio.get_running_loop()

        def tell(reason: str | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is left to tell
                loop.call_soon_threadsafe(on_refusal, reason)

        self._journal.on_refusal = tell

    # -- writing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _change(self, *undo: Callable[[], object]) -> Iterator[sqlite3.Connection]:
        """One durable change: the body changes memory, then writes; all is committed on exit.

        The journaled checks not yet folded in are folded into the same transaction
        first: they came before this change. If the database refuses, the `undo`
        steps put memory back, the checks go back to wait, and StoreError is raised.
        Any other error rolls the database back and propagates: bodies do nothing
        else that can fail once memory has changed (the book validates before it
        changes anything; rows are serialized before the body).
        """
        self._refuse_if_lost()
        if not self._write_lock.acquire(timeout=self._busy_timeout):
            raise StoreError(f"the state store {self._path} refused the change: its writer "
                             f"thread held the write lock for over {self._busy_timeout} s")
        began = False
        folded: list[_JournaledCheck | _Removal] = []
        finished: list[Path] = []
        try:
            with _transaction(self._db):
                began = True
                folded, finished = self._journal.take()
                _fold(self._db, folded)
                yield self._db
        except sqlite3.Error as error:
            self._journal.put_back(folded, finished)
            if began:
                for step in undo:
                    step()
            if isinstance(error, sqlite3.OperationalError):  # locked, full, read-only: checks would be
                self._journal.set_refused(str(error))  # refused too; the writer sees when it takes them again
                self._writer.wake()
            raise StoreError(f"the state store {self._path} refused the change: {error}") from error
        except BaseException:
            self._journal.put_back(folded, finished)
            raise
        finally:
            self._write_lock.release()
        for segment in finished:
            segment.unlink(missing_ok=True)
        # The database took a change, and the journaled checks waiting with it: found by a
        # reviewer, a refusal the writer saw stuck when this fold left it nothing to retry.
        self._journal.set_refused(None)
        self._commits += 1
        if self._commits % _CHECKPOINT_EVERY == 0:
            self._writer.request_checkpoint()

    def _save_position(self, strategy: str, symbol: str) -> None:
        quantity = self.book.exposure(strategy, symbol).position
        if quantity:
            self._db.execute(_SAVE_POSITION, (strategy, symbol, quantity))
        else:
            self._db.execute(_DELETE_POSITION, (strategy, symbol))

    def _save_reservation(self, client_order_id: str) -> None:
        reservation = self.book.reservation(client_order_id)
        if reservation is None:
            self._db.execute(_DELETE_RESERVATION, (client_order_id,))
        else:
            self._db.execute(_SAVE_RESERVATION, (
                client_order_id, reservation.strategy, reservation.symbol,
                reservation.signed_quantity, reservation.expires_at))

    def _positions_in(self, strategy: str | None) -> list[Position]:
        """The book's positions, or one strategy's."""
        return [p for p in self.book.positions() if strategy is None or p.strategy == strategy]

    # -- undo steps: each captures the state now and returns what puts it back -------------

    def _reservation_restorer(self, client_order_id: str) -> Callable[[], object]:
        prior = self.book.reservation(client_order_id)
        if prior is None:
            return lambda: self.book.release(client_order_id)
        return lambda: self.book.reserve(prior)

    def _position_restorer(self, strategy: str, symbol: str) -> Callable[[], object]:
        prior = Position(strategy, symbol, self.book.exposure(strategy, symbol).position)

        def restore() -> None:
            others = [p for p in self._positions_in(strategy) if p.symbol != symbol]
            self.book.set_positions([*others, prior], strategy)
        return restore

    def _decision_restorer(self, client_order_id: str) -> Callable[[], object]:
        prior = self._decisions.get(client_order_id)
        if prior is None:
            return lambda: self._decisions.pop(client_order_id, None)
        return lambda: MemoryStore.remember(self, prior.order, prior.decision, prior.forget_after)

    def _overrides_restorer(self) -> Callable[[], object]:
        prior = dict(self._overrides)

        def restore() -> None:
            self._overrides.clear()
            self._overrides.update(prior)
        return restore

    # -- book ------------------------------------------------------------------------------

    async def reserve(self, reservation: Reservation) -> None:
        order_id = reservation.client_order_id
        with self._change(self._reservation_restorer(order_id)):
            await super().reserve(reservation)
            self._save_reservation(order_id)

    async def release(self, client_order_id: str) -> bool:
        if self.book.reservation(client_order_id) is None:
            return False
        with self._change(self._reservation_restorer(client_order_id)):
            await super().release(client_order_id)
            self._save_reservation(client_order_id)
        return True

    async def apply_fill(self, fill: Fill, *, forget_after: float | None = None) -> tuple[Position, float]:
        """The fill, and its execution id with what it left, in one transaction: a crash
        between them would apply a retried fill twice."""
        if (kept := self.remembered_fill(fill.execution_id)) is not None:
            return kept.position, kept.reserved_remaining
        with self._change(self._position_restorer(fill.strategy, fill.symbol),
                          self._reservation_restorer(fill.client_order_id),
                          lambda: self._fills.pop(fill.execution_id, None)) as db:
            position, remaining = await super().apply_fill(fill, forget_after=forget_after)
            self._save_position(fill.strategy, fill.symbol)
            self._save_reservation(fill.client_order_id)
            if (kept := self.remembered_fill(fill.execution_id)) is not None:
                db.execute(_SAVE_FILL, (fill.execution_id, to_json(fill), to_json(position), remaining,
                                        kept.forget_after))
        return position, remaining

    def forget_fills_before(self, now: float) -> int:
        forgotten = self._forget_fills(now)
        self._remove_later(_DELETE_FILL, forgotten)
        return len(forgotten)

    async def set_positions(self, positions: Sequence[Position], strategy: str | None) -> int:
        prior = self._positions_in(strategy)
        with self._change(lambda: self.book.set_positions(prior, strategy)) as db:
            held = await super().set_positions(positions, strategy)
            if strategy is None:
                db.execute("DELETE FROM positions")
            else:
                db.execute("DELETE FROM positions WHERE strategy = ?", (strategy,))
            db.executemany(_SAVE_POSITION, [(p.strategy, p.symbol, p.quantity)
                                            for p in self._positions_in(strategy)])
        return held

    async def expire(self, now: float, limit: int | None = None) -> list[Reservation]:
        expired = await super().expire(now, limit)
        self._remove_later(_DELETE_RESERVATION, [r.client_order_id for r in expired])
        return expired

    # -- idempotency of CheckTrade ---------------------------------------------------------

    def remember(self, order: OrderRequest, decision: TradeDecision, forget_after: float) -> None:
        row = (order.client_order_id, to_json(order), to_json(decision),
               forget_after)
        with self._change(self._decision_restorer(order.client_order_id)) as db:
            super().remember(order, decision, forget_after)
            db.execute(_SAVE_DECISION, row)

    async def record_check(self, order: OrderRequest, decision: TradeDecision,
                           reservation: Reservation | None, forget_after: float, decided_at: float) -> None:
        """Reservation, decision and its decision-log record (at `decided_at`) in one journal
        record: the one write on CheckTrade's path. The decision log takes the record when the
        journal is folded in, in the same transaction: a crash loses neither without the other.

        StoreError (the check fails closed) if the journal refuses it (a full disk; memory
        is then put back), or while the database refuses to fold journaled checks in (as a
        commit would be refused: locked past busy_timeout, unwritable)."""
        self._refuse_if_lost()
        if self._journal.refused is not None:
            raise StoreError(f"the state store {self._path} refuses the journaled checks "
                             f"({self._journal.refused}): checks fail closed until it takes them")
        order_id = order.client_order_id
        order_json, decision_json = to_json(order), to_json(decision)
        undo = (self._reservation_restorer(order_id), self._decision_restorer(order_id))
        await super().record_check(order, decision, reservation, forget_after, decided_at)
        try:
            first_waiting = self._journal.append(order_id, order_json, decision_json, reservation, forget_after,
                                                 (next(self._decision_ids), decided_at))
        except OSError as error:
            for step in undo:
                step()
            raise StoreError(f"the check journal of {self._path} refused the record: {error}") from error
        self._last_check = (order, decision)
        if first_waiting:
            self._writer.wake()

    def forget_decisions_before(self, now: float, limit: int | None = None) -> int:
        forgotten = self._forget_decisions(now, limit)
        self._remove_later(_DELETE_DECISION, [kept.order.client_order_id for kept in forgotten])
        return len(forgotten)

    def _remove_later(self, statement: str, client_order_ids: list[str]) -> None:
        """Delete the rows of what expired or was forgotten through the writer thread, in
        order with the journaled checks, instead of a commit on the event loop: a busy
        book expires and forgets tens of thousands at once. A crash before the writer
        deletes them brings them back, past due, to be removed again at the next tick."""
        if client_order_ids and self._journal.remove(statement, client_order_ids):
            self._writer.wake()

    # -- trading state ---------------------------------------------------------------------

    async def set_trading_state(self, state: TradingState, strategy: str | None = None) -> None:
        prior = self.trading_state() if strategy is None else self.own_trading_state(strategy)
        with self._change(lambda: self._put_trading_state(prior, strategy)) as db:
            await super().set_trading_state(state, strategy)
            db.execute(_SAVE_STATE, (_BOOK if strategy is None else strategy, state.name))

    # -- regime ----------------------------------------------------------------------------

    def record_regime(self, record: RegimeRecord) -> None:
        prior = self.regime_record()
        with self._change(lambda: setattr(self, "_regime_record", prior)) as db:
            MemoryStore.record_regime(self, record)
            db.execute("DELETE FROM regime_record")
            db.execute("INSERT INTO regime_record (detected, detected_since, effective) VALUES (?, ?, ?)",
                       (record.detected.value, record.detected_since, record.effective.value))

    def after_restore(self) -> None:
        """This file was put back from a backup: the run that followed the backup used recommendation
        sequences and budget versions this file does not know. A new recommendation log (its
        subscribers' checkpoints become OUT_OF_RANGE, never a silent skip) and budget versions a
        RESTORED_VERSION_GAP further on."""
        self.reserve_budget_versions(self.budget_versions_reserved() + RESTORED_VERSION_GAP)
        with self._change() as db:
            db.execute("UPDATE recommendation_log SET id = lower(hex(randomblob(16)))")
            [(self.recommendation_log_id,)] = db.execute("SELECT id FROM recommendation_log").fetchall()

    def reserve_budget_versions(self, up_to: int) -> None:
        prior = self.budget_versions_reserved()
        with self._change(lambda: MemoryStore.reserve_budget_versions(self, prior)) as db:
            MemoryStore.reserve_budget_versions(self, up_to)
            db.execute("DELETE FROM budget_versions")
            db.execute("INSERT INTO budget_versions (reserved) VALUES (?)", (up_to,))

    def record_triggers_fired(self, fired: dict[str, tuple[float, float]]) -> None:
        prior = self.triggers_fired()
        with self._change(lambda: MemoryStore.record_triggers_fired(self, prior)) as db:
            MemoryStore.record_triggers_fired(self, fired)
            db.execute("DELETE FROM triggers_fired")
            db.execute("DELETE FROM drift_fired")
            db.executemany("INSERT INTO triggers_fired (trigger, fired_at, severity) VALUES (?, ?, ?)",
                           [(key, *state) for key, state in fired.items() if not key.startswith(DRIFT_KEY)])
            db.executemany("INSERT INTO drift_fired (strategy, fired_at, severity) VALUES (?, ?, ?)",
                           [(key.removeprefix(DRIFT_KEY), *state) for key, state in fired.items()
                            if key.startswith(DRIFT_KEY)])

    # -- overrides -------------------------------------------------------------------------

    async def add_override(self, override: Override) -> None:
        row = (override.id, to_json(override))
        with self._change(self._overrides_restorer()) as db:
            await super().add_override(override)
            db.execute(_SAVE_OVERRIDE, row)

    async def remove_override(self, override_id: str) -> Override | None:
        if override_id not in self._overrides:
            return None
        with self._change(self._overrides_restorer()) as db:
            removed = await super().remove_override(override_id)
            db.execute(_DELETE_OVERRIDE, (override_id,))
        return removed

    # -- recommendation log ----------------------------------------------------------------

    def append_recommendation(self, recommendation: Recommendation) -> Recommendation:
        """Numbered by the database, so a sequence is never reused, even after a restart."""
        with self._change() as db:
            sequence = db.execute(_APPEND_RECOMMENDATION, (to_json(recommendation),)).lastrowid
            db.execute(_TRIM_RECOMMENDATIONS, (sequence - self._settings.recommendation_retention,))
        return self._keep_recommendation(dataclasses.replace(recommendation, sequence=sequence))

    # -- decision log ----------------------------------------------------------------------

    def log_decision(self, record: DecisionRecord) -> None:
        """Queue it for the writer thread; never blocks. Serialized here, on the caller's
        thread: done by the writer thread, the work would come in bursts holding the GIL
        and stall the event loop for milliseconds. The check just journaled is in the
        journal already (see record_check): only replays, dry runs and refusals are queued."""
        last, self._last_check = self._last_check, None
        if last is not None and last[0] is record.order and last[1] is record.decision:
            return
        self._writer.put((next(self._decision_ids), record.time, record.order.client_order_id, to_json(record)))

    def decision_log_stats(self) -> tuple[int, int]:
        return self._writer.stats()

    def decisions(self, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` decisions written to the log, as dicts, oldest first (read back
        through the domain types, so that records an earlier version wrote look the same)."""
        rows = self._db.execute(
            "SELECT record_json FROM decision_log ORDER BY id DESC LIMIT ?", (max(limit, 0),)).fetchall()
        return [to_dict(from_dict(DecisionRecord, json.loads(record))) for (record,) in reversed(rows)]

    def disk_free(self) -> int:
        return shutil.disk_usage(self._path.parent).free

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the queued decisions to be written and the
        journaled checks folded in (and a requested checkpoint to be done); False if they
        were not."""
        return self._writer.flush(timeout)

    def close(self) -> None:
        """Write the queued decisions and fold the journal in, stop the writer, close the
        database, let it go. Checks the database would not take stay in the journal, for
        the next start."""
        self._writer.close()
        self._journal.close()
        self._db.close()
        self._owner.close()


class _JournaledCheck(NamedTuple):
    """A journaled CheckTrade record, as the table rows it becomes."""

    sequence: int
    reservation: tuple[str, str, str, float, float] | None
    """The reservations row, if the check reserved."""
    decision: tuple[str, str, str, float]
    """The remembered_decisions row."""
    logged: tuple[int, float, str, str] | None
    """The decision_log row (None in a journal an earlier version wrote: it queued that row)."""


def _journaled(sequence: int, order_id: str, order_json: str, decision_json: str,
               reservation: Reservation | None, forget_after: float,
               logged_as: tuple[int, float] | None) -> _JournaledCheck:
    reservation_row = None if reservation is None else (
        order_id, reservation.strategy, reservation.symbol, reservation.signed_quantity,
        reservation.expires_at)
    logged = None if logged_as is None else (
        *logged_as, order_id, _decision_record_json(logged_as[1], order_json, decision_json))
    return _JournaledCheck(sequence, reservation_row, (order_id, order_json, decision_json, forget_after), logged)


class _Removal(NamedTuple):
    """Rows of reservations that expired or decisions forgotten, to delete in their turn."""

    statement: str
    client_order_ids: tuple[str, ...]


def _fold(db: sqlite3.Connection, entries: Sequence[_JournaledCheck | _Removal]) -> None:
    """Write journaled checks to their tables, and that they are in, and delete what was
    removed, in the order it happened, within the caller's transaction."""
    checks: list[_JournaledCheck] = []
    for entry in entries:
        if isinstance(entry, _Removal):
            _save_checks(db, checks)
            checks = []
            db.executemany(entry.statement, [(client_order_id,) for client_order_id in entry.client_order_ids])
        else:
            checks.append(entry)
    _save_checks(db, checks)
    folded = [entry.sequence for entry in entries if isinstance(entry, _JournaledCheck)]
    if folded:
        db.execute(_FOLDED_UP_TO, (folded[-1],))


def _within(entries: list[_JournaledCheck | _Removal], rows: int) -> int:
    """How many of the first entries change at most `rows` rows (at least one)."""
    changed = 0
    for count, entry in enumerate(entries):
        changed += len(entry.client_order_ids) if isinstance(entry, _Removal) else 3
        if changed > rows:
            return max(count, 1)
    return len(entries)


def _decision_record_json(time: float, order_json: str, decision_json: str) -> str:
    """A DecisionRecord's JSON (as to_json would write it), from its order's and decision's."""
    return f'{{"time": {to_json(time)}, "order": {order_json}, "decision": {decision_json}}}'


def _save_checks(db: sqlite3.Connection, checks: list[_JournaledCheck]) -> None:
    db.executemany(_SAVE_RESERVATION, [c.reservation for c in checks if c.reservation is not None])
    db.executemany(_SAVE_DECISION, [c.decision for c in checks])
    db.executemany(_LOG_DECISIONS, [c.logged for c in checks if c.logged is not None])


class _CheckJournal:
    """Append-only files of CheckTrade records that the database has not folded in yet.

    A record is one JSON line, copied into a shared memory map of the journal file
    before record_check returns. Like a WAL commit with synchronous=NORMAL, it is
    then in the operating system's page cache and survives the process being killed
    (an operating-system crash can lose the last few, and leave a torn last line,
    which reading skips). A copy into the map is a memcpy: no system call, and no
    release of the GIL for another thread to take, which a write() costs on a busy
    event loop. Records carry increasing sequence numbers; the database keeps the
    last one it folded in (check_journal.applied_sequence) in the same transaction
    as the rows, so each record is applied exactly once whatever the crash.

    The files are segments `<database>-checks.<n>` of `_SEGMENT_BYTES`, allocated on
    disk when opened (posix_fallocate: a full disk refuses the segment, and so the
    check, instead of failing a store into the map), zeros after the last record.
    When a record does not fit, the next segment takes it; a finished segment is
    deleted once the records taken with it are committed. Records already folded in
    may stay in a segment meanwhile: reading skips them. `append` runs on the event
    loop; `take` and `put_back` under the store's write lock, from either thread.
    """

    def __init__(self, database: Path, *, next_sequence: int) -> None:
        self._database = database
        self.refused: str | None = None
        """Why the database refused the last attempt to fold records in; None once it took them."""
        self.on_refusal: Callable[[str | None], None] = lambda reason: None
        """Told, on the writer's thread, when the database starts refusing (why) and takes them again (None)."""
        self._lock = threading.Lock()
        self._waiting: list[_JournaledCheck | _Removal] = []
        """Records not yet folded in, and removals queued among them (these only in memory)."""
        self._next_sequence = next_sequence
        self._segment_number = 0
        self._map, self._segment = self._open_next_segment()
        self._offset = 0
        self._finished: list[Path] = []
        """Full segments, each holding only records taken by now or waiting."""

    def set_refused(self, reason: str | None) -> None:
        changed = (reason is None) != (self.refused is None)
        self.refused = reason
        if changed:
            self.on_refusal(reason)

    @staticmethod
    def segments(database: Path) -> list[Path]:
        """The journal's files beside `database`, oldest first."""
        prefix = database.name + "-checks."
        found = [p for p in database.parent.glob(prefix + "*") if p.name[len(prefix):].isdigit()]
        return sorted(found, key=lambda p: int(p.name[len(prefix):]))

    @property
    def waiting(self) -> int:
        """Records and removals not yet folded into the database."""
        return len(self._waiting)

    def remove(self, statement: str, client_order_ids: Sequence[str]) -> bool:
        """Queue the deletion of rows behind the records waiting; True if nothing else waits
        (the writer thread is to be woken)."""
        with self._lock:
            self._waiting.append(_Removal(statement, tuple(client_order_ids)))
            return len(self._waiting) == 1

    def append(self, order_id: str, order_json: str, decision_json: str,
               reservation: Reservation | None, forget_after: float, logged_as: tuple[int, float]) -> bool:
        """Write one check's record; True if it is the only one waiting (the writer thread
        is to be woken). OSError if it could not be written (nothing is then kept)."""
        with self._lock:
            sequence = self._next_sequence
            check = _journaled(sequence, order_id, order_json, decision_json, reservation, forget_after, logged_as)
            reserved = None if check.reservation is None else check.reservation[1:]
            line = (f'{{"sequence": {sequence}, "logged_as": {to_json(logged_as)}, '
                    f'"forget_after": {to_json(forget_after)}, '
                    f'"reservation": {to_json(reserved)}, "order": {order_json}, '
                    f'"decision": {decision_json}}}\n').encode()
            end = self._offset + len(line)
            if end > _SEGMENT_BYTES:
                self._start_next_segment(len(line))
                end = len(line)
            self._map[self._offset:end] = line
            self._offset = end
            self._next_sequence += 1
            self._waiting.append(check)
            return len(self._waiting) == 1

    def take(self, rows: int | None = None) -> tuple[list[_JournaledCheck | _Removal], list[Path]]:
        """The waiting records and removals, oldest first, to be folded in (with `rows`, those
        that change about that many rows), and the full segments that hold only them and
        records folded before (delete those once the records are committed)."""
        with self._lock:
            count = len(self._waiting) if rows is None else _within(self._waiting, rows)
            taken, self._waiting = self._waiting[:count], self._waiting[count:]
            finished: list[Path] = []
            if not self._waiting:  # a finished segment's records are all taken only then
                finished, self._finished = self._finished, []
        return taken, finished

    def put_back(self, taken: list[_JournaledCheck | _Removal], finished: list[Path]) -> None:
        """Records that were taken but not committed: they wait again, ahead of newer ones,
        and the segments that hold them stay."""
        with self._lock:
            self._waiting[:0] = taken
            self._finished[:0] = finished

    def close(self) -> None:
        """Unmap the segment (once); delete the segments if every record was folded in."""
        if self._map.closed:
            return
        self._map.close()
        if not self._waiting:
            for segment in (*self._finished, self._segment):
                with contextlib.suppress(OSError):  # its directory gone, or made a file (ENOTDIR)
                    segment.unlink(missing_ok=True)

    def _start_next_segment(self, record_length: int) -> None:
        if record_length > _SEGMENT_BYTES:
            raise OSError(f"a check journal record of {record_length} bytes is longer than a segment")
        opened, path = self._open_next_segment()
        self._map.close()
        self._finished.append(self._segment)
        self._map, self._segment, self._offset = opened, path, 0

    def _open_next_segment(self) -> tuple[mmap.mmap, Path]:
        path = self._database.with_name(f"{self._database.name}-checks.{self._segment_number + 1}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.posix_fallocate(fd, 0, _SEGMENT_BYTES)
            mapped = mmap.mmap(fd, _SEGMENT_BYTES)
        except OSError:
            path.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)
        self._segment_number += 1
        return mapped, path


def _read_journal(database: Path, applied: int) -> tuple[list[dict[str, Any]], list[Path]]:
    """The journal's records after sequence `applied`, oldest first, and its segments.

    A segment's records end at its first zero byte (JSON holds none). A line that does
    not parse is skipped if it is the very last (a write torn by an operating-system
    crash: never acknowledged); anywhere else it is an error."""
    segments = _CheckJournal.segments(database)
    records = []
    for segment_index, segment in enumerate(segments):
        lines = segment.read_bytes().split(b"\0", 1)[0].split(b"\n")
        for line_index, line in enumerate(lines):
            if not line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                if segment_index == len(segments) - 1 and line_index == len(lines) - 1:
                    break
                raise ValueError(f"{segment} line {line_index + 1} is not a journal record") from None
            if record["sequence"] > applied:
                records.append(record)
    return records, segments


class _BackgroundWriter:
    """A daemon thread that writes the decision log in batches, folds the check journal
    into the tables, and checkpoints the WAL.

    The decision backlog is bounded, counting the batch being written too, so it
    never holds more than `capacity` records; past it, records go to
    `fallback_log` and count as overflowed. A batch the database refuses goes
    there as well.
    """

    def __init__(self, db: sqlite3.Connection, write_lock: threading.Lock, journal: _CheckJournal, *,
                 capacity: int, batch: int, retention: float | None,
                 fallback_log: Callable[[dict[str, Any]], None]) -> None:
        self._db = db
        self._write_lock = write_lock
        self._journal = journal
        self._capacity = capacity
        self._batch = batch
        self._retention = retention
        self._oldest_logged = self._oldest_decision_time()
        """The time of the oldest decision_log row (None: empty), so that a batch checks the
        retention without a query."""
        self._fallback_log = fallback_log
        self._pending: deque[tuple[int, float, str, str]] = deque()
        """Rows for the decision_log table: (id, time, client order id, record JSON)."""
        self._writing = 0
        self._written_since_checkpoint = 0
        self._overflowed = 0
        self._checkpoint_due = False
        self._idle = True
        self._closing = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="riskbudget-store-writer", daemon=True)
        self._thread.start()

    def put(self, row: tuple[int, float, str, str]) -> None:
        """Queue a decision_log row; past the capacity it goes to the fallback log."""
        with self._changed:
            if not self._closing and len(self._pending) + self._writing < self._capacity:
                self._pending.append(row)
                if len(self._pending) in (1, self._batch):  # wake the writer only when it waits for this
                    self._changed.notify_all()
                return
            self._overflowed += 1
        self._fallback_log(json.loads(row[3]))

    def wake(self) -> None:
        """A check was journaled while none waited: fold it in (after the linger)."""
        with self._changed:
            self._changed.notify_all()

    def request_checkpoint(self) -> None:
        with self._changed:
            self._checkpoint_due = True
            self._changed.notify_all()

    def stats(self) -> tuple[int, int]:
        """(backlog, overflowed): the backlog counts the journaled checks not yet folded in,
        whose decisions the log takes with them."""
        with self._changed:
            return len(self._pending) + self._writing + self._journal.waiting, self._overflowed

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the writer to finish all it has to do."""
        with self._changed:
            return self._changed.wait_for(
                lambda: (self._idle and not self._pending and not self._journal.waiting
                         and not self._checkpoint_due), timeout)

    def close(self) -> None:
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._thread.join()
        self._db.close()

    def _run(self) -> None:
        linger = _LINGER
        while True:
            with self._changed:
                # Asleep until there is work; while the database refuses changes, awake every
                # _REFUSED_RETRY to see whether it takes them again (a refusal can come while asleep).
                while not (self._pending or self._journal.waiting or self._checkpoint_due or self._closing):
                    refused = self._journal.refused is not None
                    if not self._changed.wait(timeout=_REFUSED_RETRY if refused else None) and refused:
                        break
                if self._pending or self._journal.waiting:
                    self._changed.wait_for(lambda: len(self._pending) >= self._batch or self._closing,
                                           timeout=linger)
                if self._closing and not self._pending and not self._journal.waiting:
                    return
                closing = self._closing
                batch = [self._pending.popleft() for _ in range(min(self._batch, len(self._pending)))]
                self._writing = len(batch)
                checkpoint, self._checkpoint_due = self._checkpoint_due, False
                self._idle = False
            if batch:
                self._write(batch)
            folded = self._fold_journal()
            linger = _LINGER if folded is not None else _REFUSED_RETRY
            self._written_since_checkpoint += len(batch) + (folded or 0)
            if checkpoint or self._written_since_checkpoint >= _CHECKPOINT_EVERY:
                self._checkpoint()
                self._written_since_checkpoint = 0
            with self._changed:
                self._writing = 0
                self._idle = True
                self._changed.notify_all()
                if closing and folded is None and not self._pending:
                    return  # the database refuses the journaled checks: they wait in the journal

    def _fold_journal(self) -> int | None:
        """Fold the journaled checks and removals into the tables, `_FOLD_ROWS` rows to a
        transaction, the write lock free between them (a change on the event loop waits for
        one transaction at most): how many, None if the database refused (they wait again,
        and the next round retries). Only what waited at the start: under a steady flow of
        checks the decision log and the checkpoints get their turn too."""
        folded, waited = 0, self._journal.waiting
        if not waited and self._journal.refused is not None:  # nothing to retry: see if it takes a change
            try:
                with self._write_lock, _transaction(self._db):
                    pass
            except sqlite3.Error as error:
                self._journal.set_refused(str(error))
                return None
            self._journal.set_refused(None)
            return 0
        while folded < waited and self._journal.waiting:
            with self._write_lock:
                taken, finished = self._journal.take(_FOLD_ROWS)
                try:
                    with _transaction(self._db):
                        _fold(self._db, taken)
                except sqlite3.Error as error:
                    self._journal.put_back(taken, finished)
                    if self._journal.refused is None:  # once, not at every retry: the alert says the rest
                        _log.error("the state store refused %d journaled checks and removals (%s); they stay "
                                   "in the journal and are retried", len(taken), error)
                    self._journal.set_refused(str(error))
                    return None
            self._journal.set_refused(None)
            for segment in finished:
                segment.unlink(missing_ok=True)
            folded += len(taken)
            logged = [entry.logged[1] for entry in taken if isinstance(entry, _JournaledCheck) and entry.logged]
            if logged:
                self._logged_up_to(max(logged))
        return folded

    def _write(self, batch: list[tuple[int, float, str, str]]) -> None:
        try:
            with self._write_lock, _transaction(self._db):
                self._db.executemany(_LOG_DECISIONS, batch)
        except sqlite3.Error as error:
            _log.error("the decision log refused %d records (%s); they go to the fallback log",
                       len(batch), error)
            with self._changed:
                self._overflowed += len(batch)
            for *_, record in batch:
                self._fallback_log(json.loads(record))
            return
        self._logged_up_to(max(time for _, time, _, _ in batch))

    def _logged_up_to(self, newest: float) -> None:
        """Decisions up to `newest` went into the log: trim it to the retention."""
        if self._retention is None:
            return
        if self._oldest_logged is None:
            self._oldest_logged = self._oldest_decision_time()
        if self._oldest_logged is not None and self._oldest_logged < newest - self._retention:
            self._trim(newest - self._retention)

    def _trim(self, cutoff: float) -> None:
        """Delete the decisions logged before `cutoff`, a batch per transaction, the oldest
        first; a refusal leaves them for the next batch's trim."""
        try:
            while True:
                with self._write_lock, _transaction(self._db):
                    deleted = self._db.execute(_TRIM_DECISIONS, (_TRIM_BATCH, cutoff)).rowcount
                if deleted < _TRIM_BATCH:
                    break
            self._oldest_logged = self._oldest_decision_time()
        except sqlite3.Error as error:
            _log.warning("trimming the decision log to its retention failed (%s); the next batch retries",
                         error)

    def _oldest_decision_time(self) -> float | None:
        row = self._db.execute(_OLDEST_DECISION).fetchone()
        return None if row is None else row[0]

    def _checkpoint(self) -> None:
        """Copy the WAL into the database, while the event loop goes on writing (PASSIVE).

        The next write starts the WAL over only if a checkpoint copied all of it, and
        under a steady stream of writes none does: the WAL would grow without end.
        So once it is `_MAX_WAL_FRAMES` long, the frames written during the copy are
        copied holding the write lock, which stalls the event loop for a millisecond
        or two (the fsyncs), rarely, instead of at every checkpoint.
        """
        try:
            [(_, frames, _)] = self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            if frames >= _MAX_WAL_FRAMES:
                with self._write_lock:
                    self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as error:  # the next one retries; SQLite stays consistent meanwhile
            _log.warning("WAL checkpoint of the state store failed: %s", error)


def _claim(path: Path) -> IO[str]:
    """An exclusive lock on `<path>.lock`: one sidecar per state file (the kernel frees it on exit).
    The lock sits beside the file itself, symbolic links followed: a link to another sidecar's
    state file is that file."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        real = path.resolve()
        owner = open(real.with_name(real.name + ".lock"), "w", opener=_private)
        os.close(_private(str(path), os.O_RDWR | os.O_CREAT))  # the book: not for other users
    except OSError as error:  # e.g. a directory on the way is a file: name the setting
        raise StoreError(f"cannot open the state store {path} (store.path): {error}") from error
    try:
        fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner.close()
        alias = "" if real == path.absolute() else f" (the file {real})"
        raise StoreError(f"the state store {path}{alias} is in use by another sidecar") from None
    return owner


def _private(path: str, flags: int) -> int:
    """Open (or create) a file only its owner may read: the state file holds the book, and
    SQLite gives its WAL the database's permissions."""
    return os.open(path, flags | os.O_CLOEXEC, 0o600)


def _connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """A connection in WAL mode with synchronous=NORMAL (see SqliteStore) and explicit transactions."""
    try:
        db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as error:
        raise StoreError(f"cannot open the state store {path} (store.path): {error}") from error
    try:
        [(mode,)] = db.execute("PRAGMA journal_mode=WAL").fetchall()
        if mode != "wal":
            raise StoreError(f"the state store {path} cannot use WAL mode (journal_mode is {mode})")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA wal_autocheckpoint=0")  # the writer thread checkpoints, see SqliteStore
    except sqlite3.Error as error:
        db.close()
        raise StoreError(f"cannot open the state store {path} (store.path): {error}") from error
    except BaseException:
        db.close()
        raise
    return db


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE (take the write lock up front) ... COMMIT; roll back on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # the original error is the one to report
                db.execute("ROLLBACK")
        raise


def _log_fallback(record: dict[str, Any]) -> None:
    _log.error("decision not written to the decision log: %s", json.dumps(record))
