"""ReloadConfig of a file that cannot be read as a config: refused with the reason and an alert."""

from __future__ import annotations

import pytest

from riskbudget.v1 import types_pb2 as pb

from .test_reload_and_alerts import alerts, reload


@pytest.mark.parametrize("tail, reason", [
    (b"# r\xe9sum\xe9\n", "not UTF-8 text: byte 0xe9"),
    (b"limits: {}\n", "limits: duplicate key"),
], ids=["not-utf8", "duplicate-key"])
async def test_a_reload_of_an_unreadable_file_is_refused_with_the_reason_and_an_alert(harness, tail, reason):
    with open(harness.sidecar._config_path, "ab") as config_file:
        config_file.write(tail)
    before = harness.sidecar.config

    reply = await reload(harness)

    assert not reply.reloaded
    assert any(reason in error for error in reply.errors)
    assert harness.sidecar.config is before
    [alert] = await alerts(harness, pb.ALERT_KIND_CONFIG_RELOAD_REFUSED)
    assert reason in alert.message
