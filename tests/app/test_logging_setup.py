"""The sidecar's log: structlog's events and the standard library's alike, one JSON object a line."""

from __future__ import annotations

import errno
import json
import logging
import os
import types

import pytest
import structlog

from riskbudget_sidecar.app import logging as app_logging
from riskbudget_sidecar.app.logging import BackgroundLogWriter, configure_logging
from riskbudget_sidecar.http.server import ServerErrorLog


@pytest.fixture
def log_file(tmp_path):
    """configure_logging to a file; the root logger and structlog as they were afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    path = tmp_path / "log.jsonl"
    with path.open("w") as file:
        configure_logging("info", file=file)
        structlog.configure(cache_logger_on_first_use=False)  # other tests capture module loggers
        try:
            yield path
        finally:
            structlog.reset_defaults()
            root.handlers[:] = handlers
            root.setLevel(level)


def test_a_standard_library_record_is_a_json_line_like_the_rest(log_file):
    """Found by a tester: the state store's writer thread logged its refusals through the
    standard library, to stderr as bare text, beside the JSON lines."""
    logging.getLogger("riskbudget_sidecar.store.sqlite").error(
        "the state store refused %d journaled checks and removals (%s)", 3, "database is locked")
    logging.getLogger("riskbudget_sidecar.store.sqlite").debug("below the level: not written")
    structlog.get_logger("riskbudget").info("an_event", n=1)

    lines = [json.loads(line) for line in log_file.read_text().splitlines()]

    assert [(entry["event"], entry["level"]) for entry in lines] == [
        ("the state store refused 3 journaled checks and removals (database is locked)", "error"),
        ("an_event", "info")]
    assert lines[0]["logger"] == "riskbudget_sidecar.store.sqlite" and lines[0]["timestamp"]


def test_an_admin_http_error_is_one_json_line_with_its_traceback(log_file):
    errors = ServerErrorLog()
    try:
        raise RuntimeError("a handler failed")
    except RuntimeError as error:
        errors.exception("Error handling request from %s", "127.0.0.1", exc_info=error)

    (line,) = log_file.read_text().splitlines()
    entry = json.loads(line)
    assert entry["event"] == "http_error" and "RuntimeError: a handler failed" in entry["exception"]


def test_the_background_writer_writes_every_line_in_order_and_drains():
    reading, writing = os.pipe()
    with os.fdopen(writing, "w") as sink:
        writer = BackgroundLogWriter(sink)
        for n in range(1000):
            writer.write(f"line {n}\n")
        drained = writer.drain(timeout=30)
    with os.fdopen(reading) as source:
        lines = source.read().splitlines()

    assert drained and writer.dropped == 0
    assert lines == [f"line {n}" for n in range(1000)]


def test_the_background_writer_neither_blocks_nor_raises_when_its_reader_stalls_or_goes():
    """Found by a tester: a log written on the event loop froze the sidecar once its pipe was
    full, and failed every admin call once its reader had gone (EPIPE)."""
    reading, writing = os.pipe()
    sink = os.fdopen(writing, "w")
    writer = BackgroundLogWriter(sink, capacity=100)
    for n in range(10_000):  # the pipe holds a few hundred of these; nobody reads
        writer.write(f"a line of the log that nobody reads, number {n:05d}\n")
    stalled = writer.dropped, writer.last_error
    os.close(reading)  # the reader goes: the thread's blocked write fails, and every one after it
    for n in range(10):
        writer.write(f"after {n}\n")
    gone = writer.drain(timeout=30)
    sink.close()

    assert stalled[0] > 9_000 and stalled[1] == "the log's reader did not keep up"
    assert gone and writer.last_error == "Broken pipe"


@pytest.mark.parametrize("taken, expected", [(5, ['{"eve', '{"event": "second"}']),
                                              (19, ['{"event": "first"}', '{"event": "second"}'])])
def test_a_line_a_failed_write_cut_short_is_not_glued_to_the_next(monkeypatch, taken, expected):
    """Found by a reviewer: a write that failed part way (a full disk) left a cut line, and the
    next line was written onto its end (and, cut at a line's end, none is to be added)."""
    reading, writing = os.pipe()
    calls = []

    def write(descriptor, data):
        calls.append(bytes(data))
        if len(calls) == 1:
            return os.write(descriptor, bytes(data[:taken]))  # part of the batch
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(descriptor, data)
    monkeypatch.setattr(app_logging, "os", types.SimpleNamespace(write=write))
    with os.fdopen(writing, "w") as sink:
        writer = BackgroundLogWriter(sink)
        writer.write('{"event": "first"}\n{"event": "lost"}\n')  # one batch
        writer.drain(timeout=30)
        writer.write('{"event": "second"}\n')
        writer.drain(timeout=30)
    with os.fdopen(reading) as source:
        lines = source.read().splitlines()

    assert lines == expected
    assert writer.last_error == "No space left on device"
