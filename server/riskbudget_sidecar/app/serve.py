"""Run the sidecar: load config, start, serve until SIGTERM or SIGINT, shut down gracefully."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import structlog

from ..engine.addresses import parse_listen_address
from ..engine.config import Config
from ..service.clock import Clock, SystemClock
from ..service.config_file import ConfigError
from ..service.errors import ConfigRefused
from ..service.sidecar import RiskBudgetSidecar
from ..rpc.server import RunningServer, start_server

log = structlog.get_logger("riskbudget.app")


def read_admin_token(config: Config) -> str | None:
    """The admin token from the configured file or environment variable, if any."""
    settings = config.sidecar
    if settings.admin_token_file:
        try:
            token = Path(settings.admin_token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError([f"sidecar.admin_token_file: cannot read: {exc.strerror or exc}"]) from None
        if not token:
            raise ConfigError(["sidecar.admin_token_file: the file is empty"])
        return token
    if settings.admin_token_env:
        return os.environ.get(settings.admin_token_env) or None
    return None


async def start(config: Config, *, listen: str | None = None, clock: Clock | None = None,
                config_path: str | None = None) -> tuple[RiskBudgetSidecar, RunningServer]:
    """Start a sidecar and its server; health turns SERVING once the first budget exists."""
    address = parse_listen_address(listen or config.sidecar.listen,
                                   allow_non_loopback=config.sidecar.allow_non_loopback)
    sidecar = RiskBudgetSidecar(config, clock=clock or SystemClock(), config_path=config_path)
    try:
        server = await start_server(sidecar, address, admin_token=read_admin_token(config),
                                    max_message_bytes=config.sidecar.max_message_bytes)
    except BaseException:
        await sidecar.stop()
        raise
    try:
        await sidecar.start()
    except BaseException:
        await server.stop(0)
        await sidecar.stop()
        raise
    sidecar.on_availability(lambda available: asyncio.ensure_future(server.set_serving(available)))
    await server.set_serving(sidecar.available)
    snapshot = sidecar.require_snapshot()
    log.info("serving", target=server.target, budget_version=snapshot.version,
             regime=snapshot.regime.value, limit_source=snapshot.limit_source.value)
    return sidecar, server


async def _reload(sidecar: RiskBudgetSidecar) -> None:
    """SIGHUP: reload the config file; a refusal is already an alert, the old config stays."""
    try:
        await sidecar.reload_config()
    except ConfigRefused:
        pass


async def stop(sidecar: RiskBudgetSidecar, server: RunningServer) -> None:
    """Health goes NOT_SERVING first, in-flight calls finish within the grace period."""
    log.info("shutting_down", grace=sidecar.config.sidecar.shutdown_grace)
    await server.set_serving(False)
    sidecar.end_streams()
    await server.stop(sidecar.config.sidecar.shutdown_grace)
    await sidecar.stop()
    log.info("stopped")


async def serve(config: Config, *, config_path: str, listen: str | None = None) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):  # before start: a signal during start-up waits
        loop.add_signal_handler(signum, stopping.set)
    sidecar, server = await start(config, listen=listen, config_path=config_path)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(_reload(sidecar)))
    await stopping.wait()
    await stop(sidecar, server)
