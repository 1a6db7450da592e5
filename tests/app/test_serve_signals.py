"""`serve` and its signals, in process: a SIGHUP during start-up is a reload once serving."""

from __future__ import annotations

import asyncio
import os
import signal

from riskbudget_sidecar.app import serve as serve_module
from riskbudget_sidecar.service.config_file import load_config

from ..rpc.conftest import write_config


async def test_a_sighup_during_start_up_reloads_once_serving_instead_of_ending_the_process(
        tmp_path, monkeypatch):
    path = write_config(tmp_path)
    reloads, real_start = [], serve_module.start

    async def start_hit_by_sighup(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGHUP)  # the default action would end this process
        await asyncio.sleep(0)
        return await real_start(*args, **kwargs)

    async def recorded_reload(sidecar):
        reloads.append(sidecar.config)
        os.kill(os.getpid(), signal.SIGTERM)  # then stop, as an operator would
    monkeypatch.setattr(serve_module, "start", start_hit_by_sighup)
    monkeypatch.setattr(serve_module, "_reload", recorded_reload)

    await serve_module.serve(load_config(path), config_path=str(path))

    assert len(reloads) == 1
