"""structlog set-up: one JSON object per line on stdout (or another file)."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


_stdlib_handler: logging.Handler | None = None
"""The handler configure_logging put on the standard library's root logger, if any."""


def configure_logging(level: str = "info", file: TextIO | None = None) -> None:
    """structlog's events, and the standard library's (the state store's writer thread,
    libraries), as the same JSON lines on `file`, stdout by default (as it is when called: a
    closed one is given a stream at start): found by a tester, the latter went to stderr as
    bare text."""
    file = sys.stdout if file is None else file
    global _stdlib_handler
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
