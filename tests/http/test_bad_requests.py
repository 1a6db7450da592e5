"""Requests aiohttp cannot serve (malformed, or a handler that failed) are one structlog line
each, without the request's bytes, and a flood of them does not flood the log."""

from __future__ import annotations

import asyncio
import json
import logging
import socket

import pytest
import structlog
from aiohttp.http_exceptions import BadHttpMessage

from riskbudget_sidecar.http.server import ERROR_LOG_LIMIT, ServerErrorLog

SECRET = "s3cr3t-admin-token-part"

MALFORMED = {
    "oversized-authorization": (b"POST /api/rebalance HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                                + SECRET.encode() * 4000 + b"\r\nContent-Length: 2\r\n\r\n{}", "LineTooLong"),
    "oversized-header": (b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: " + SECRET.encode() * 500
                         + b"\r\n\r\n", "LineTooLong"),
    "bad-content-length": (b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + SECRET.encode()
                           + b"\r\n\r\n", "BadHttpMessage"),
    "nul-in-path": (b"GET /" + SECRET.encode() + b"\x00 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "InvalidURLError"),
}


def _send(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        return connection.recv(4096)


@pytest.mark.parametrize("request_bytes, error", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_request_is_answered_400_and_logged_as_one_line_without_its_bytes(
        harness, caplog, request_bytes, error):
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as logs:
        reply = await asyncio.to_thread(_send, harness.server.http_url, request_bytes)
        await asyncio.sleep(0.05)

    assert reply.startswith(b"HTTP/1.0 400 ") or reply.startswith(b"HTTP/1.1 400 ")
    assert [entry for entry in logs if entry["event"] == "http_bad_request"] == [
        {"event": "http_bad_request", "log_level": "warning", "peer": "127.0.0.1", "status": 400, "error": error}]
    assert SECRET not in json.dumps(logs, default=str)
    assert [record.getMessage() for record in caplog.records if record.name.startswith("aiohttp")] == []


async def test_a_failing_handler_is_one_line_with_its_traceback(harness, monkeypatch, http, caplog):
    def broken() -> None:
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(harness.sidecar, "refresh_metrics", broken)
    with structlog.testing.capture_logs() as logs:
        response = await http.get("/metrics")

    assert response.status == 500
    (entry,) = [entry for entry in logs if entry["event"] == "http_error"]
    assert entry["log_level"] == "error" and entry["peer"] == "127.0.0.1"
    assert isinstance(entry["exc_info"], RuntimeError)
    assert [record.getMessage() for record in caplog.records if record.name.startswith("aiohttp")] == []


def test_past_the_limit_lines_are_counted_and_the_count_logged_when_the_window_ends():
    now = [0.0]
    errors = ServerErrorLog(limit=3, window=10.0, clock=lambda: now[0])
    bad = BadHttpMessage("not http")
    with structlog.testing.capture_logs() as logs:
        for _ in range(5):
            errors.exception("Error handling request from %s", "127.0.0.1", exc_info=bad)
        now[0] = 10.5
        errors.exception("Error handling request from %s", "127.0.0.1", exc_info=bad)

    assert [entry["event"] for entry in logs] == ["http_bad_request"] * 3 + [
        "http_errors_suppressed", "http_bad_request"]
    assert logs[3]["count"] == 2


async def test_the_count_is_logged_at_the_end_of_the_window_without_another_error():
    errors = ServerErrorLog(limit=1, window=0.05)
    with structlog.testing.capture_logs() as logs:
        for _ in range(4):
            errors.exception("Unhandled exception", exc_info=BadHttpMessage("x"))
        await asyncio.sleep(0.2)

    assert [entry["event"] for entry in logs] == ["http_bad_request", "http_errors_suppressed"]
    assert logs[1]["count"] == 3


async def test_malformed_requests_do_not_suppress_the_traceback_of_a_handler_failure(harness, monkeypatch, http):
    """Found by a reviewer: the two shared one budget, so ten garbage requests a minute, which
    need no token, hid every real failure's traceback."""
    def broken() -> None:
        raise RuntimeError("a real bug")

    with structlog.testing.capture_logs() as logs:
        for _ in range(ERROR_LOG_LIMIT):  # anyone who reaches the port can send these
            reply = await asyncio.to_thread(_send, harness.server.http_url, b"GARBAGE\x01 / HTTP/1.1\r\n\r\n")
            assert b" 400 " in reply
        await asyncio.sleep(0.05)
        monkeypatch.setattr(harness.sidecar, "refresh_metrics", broken)
        response = await http.get("/metrics")
        assert response.status == 500

    failures = [entry for entry in logs if entry["event"] == "http_error"]
    assert failures and isinstance(failures[0].get("exc_info"), RuntimeError), \
        [entry["event"] for entry in logs if entry["event"].startswith("http_")]
