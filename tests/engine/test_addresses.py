"""Which two listen addresses would take the same port (check-config and serve refuse them)."""

from __future__ import annotations

import pytest

from riskbudget_sidecar.engine.addresses import parse_listen_address, same_listener


def address(text: str):
    return parse_listen_address(text, allow_non_loopback=True)


@pytest.mark.parametrize("first, second, clash", [
    ("127.0.0.1:7000", "127.0.0.1:7000", True),
    ("127.0.0.1:7000", "127.0.0.1:7001", False),
    ("127.0.0.1:0", "127.0.0.1:0", False),  # each gets a free port
    ("0.0.0.0:7000", "127.0.0.1:7000", True),
    ("[::]:7000", "127.0.0.1:7000", True),  # dual stack
    ("[::1]:7000", "[::1]:7000", True),
    # found by a reviewer: both bind here ...
    ("[::1]:7000", "0.0.0.0:7000", False),
    # ... and here the second cannot, an IPv4-mapped address being its IPv4 one
    ("[::ffff:127.0.0.1]:7000", "127.0.0.1:7000", True),
    ("unix:/tmp/sock", "127.0.0.1:7000", False),
])
def test_two_listeners_clash_exactly_when_they_would_take_the_same_port(first, second, clash):
    assert same_listener(address(first), address(second)) is clash
    assert same_listener(address(second), address(first)) is clash
