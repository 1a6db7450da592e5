"""structlog set-up: one JSON object per line on stdout (or another file)."""

from __future__ import annotations

import collections
import io
import logging
import os
import sys
import threading
from typing import TextIO

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

LOG_QUEUE_LINES = 10_000
"""The most log lines `BackgroundLogWriter` holds for its thread; past them, lines are dropped."""


_stdlib_handler: logging.Handler | None = None
"""The handler configure_logging put on the standard library's root logger, if any."""


class BackgroundLogWriter:
    """A file for log lines that never blocks its caller nor raises: `write` queues the line
    (at most `capacity` wait) for a thread that writes them. A line that does not fit, or that
    the file refuses (its reader gone, its disk full), is counted in `dropped`.

    Found by a tester: written on the event loop, a log whose reader stalled froze every call
    (and SIGTERM) once the pipe was full, and one whose reader had gone (EPIPE) or whose disk
    was full failed every admin call, a halt included, while checks went on being approved."""

    def __init__(self, file: TextIO, capacity: int = LOG_QUEUE_LINES) -> None:
        self._file = file
        try:
            self._descriptor: int | None = file.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):  # an in-memory stream
            self._descriptor = None
        self._capacity = capacity
        self._lines: collections.deque[str] = collections.deque()
        self._turn = threading.Condition()
        self._writing = False
        self._cut = False
        """A write failed part way through a line: the next write starts a line of its own."""
        self.dropped = 0
        self.last_error: str | None = None
        """Why the last lines that could not be written were dropped."""
        threading.Thread(target=self._run, name="log-writer", daemon=True).start()

    def write(self, text: str) -> int:
        with self._turn:
            if len(self._lines) >= self._capacity:
                self.dropped += 1
                self.last_error = "the log's reader did not keep up"
            else:
                self._lines.append(text)
                self._turn.notify_all()
        return len(text)

    def flush(self) -> None:
        """Nothing: the thread writes as soon as it can (see `drain`)."""

    def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for every line queued to be written (or dropped)."""
        with self._turn:
            return self._turn.wait_for(lambda: not self._lines and not self._writing, timeout)

    def _run(self) -> None:
        while True:
            with self._turn:
                self._turn.wait_for(lambda: self._lines)
                batch, self._writing = list(self._lines), True
                self._lines.clear()
            try:
                self._write(("\n" if self._cut else "") + "".join(batch))
            except (OSError, ValueError) as error:  # ValueError: the file was closed
                with self._turn:
                    self.dropped += len(batch)
                    self.last_error = getattr(error, "strerror", None) or str(error)
            finally:
                with self._turn:
                    self._writing = False
                    self._turn.notify_all()

    def _write(self, text: str) -> None:
        if self._descriptor is None:
            self._file.write(text)
            self._file.flush()
            self._cut = False
            return
        data = memoryview(text.encode("utf-8", "replace"))
        while data:  # a pipe may take part of a large write
            written = os.write(self._descriptor, data)
            if written:  # cut short unless it ended a line
                self._cut = data[written - 1] != ord("\n")
            data = data[written:]


_background: BackgroundLogWriter | None = None


def background_log_writer() -> BackgroundLogWriter | None:
    """The writer of `configure_logging(..., background=True)`, if logging goes through one."""
    return _background


def configure_logging(level: str = "info", file: TextIO | None = None, *, background: bool = False) -> None:
    """structlog's events, and the standard library's (the state store's writer thread,
    libraries), as the same JSON lines on `file`, stdout by default (as it is when called: a
    closed one is given a stream at start): found by a tester, the latter went to stderr as
    bare text. `background`: through a `BackgroundLogWriter` (`riskbudget serve`), so that the
    log never holds up nor fails a call."""
    global _stdlib_handler, _background
    file = sys.stdout if file is None else file
    _background = BackgroundLogWriter(file) if background else None
    file = _background or file
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            stamp,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.WriteLoggerFactory(file=file),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(file)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.JSONRenderer()],
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name, stamp,
                           structlog.processors.format_exc_info]))
    root = logging.getLogger()
    if _stdlib_handler is not None:
        root.removeHandler(_stdlib_handler)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    _stdlib_handler = handler
