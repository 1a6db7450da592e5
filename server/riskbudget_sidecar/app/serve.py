"""Run the sidecar: load config, start, serve until SIGTERM or SIGINT, shut down gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import stat
from dataclasses import dataclass
from pathlib import Path

import structlog
from prometheus_client import Gauge
from threadpoolctl import threadpool_limits

from ..engine.addresses import parse_listen_address, same_listener
from ..engine.config import Config
from ..engine.types import AlertKind, AlertSeverity
from ..service.clock import Clock, SystemClock
from ..service.config_file import ConfigError
from ..service.errors import ConfigRefused, TokensRotated
from ..service.sidecar import RiskBudgetSidecar
from ..service.trusted_paths import changeable_by_others
from ..service.warmup import check_warmup_file
from ..http import AdminHttpServer, start_http_server
from ..rpc.auth import AdminAuth
from ..rpc.server import RunningServer, require_private_directory, server_credentials, start_server
from .logging import BackgroundLogWriter, background_log_writer

log = structlog.get_logger("riskbudget.app")
HTTP_SHUTDOWN_TIMEOUT = 5.0
GC_THRESHOLDS = (10_000, 10, 10)
LOG_WATCH_SECONDS = 5.0
"""How often `serve` looks for log lines dropped since its last look."""
LOG_ALERT_INTERVAL = 60.0
"""Seconds between two alerts of dropped log lines (each counts what was dropped since the last)."""
"""The cyclic garbage collector's thresholds while serving. Every check leaves a few objects
that live for minutes (its remembered decision, its reservation). At Python's default
(700, 10, 10) the collector ran every ~80 checks and now and then scanned all of them: over
80,000 checks on SQLite, pauses of up to 192 ms on the event loop and 11% of the checks'
time; at these thresholds, 36 ms and 3%, and no full collection (`bench/hot_path.py`). Full
collections still come, less often: what they scan grows with the checks remembered."""


@dataclass
class Servers:
    """What `start` brought up: the gRPC server and, if enabled, the admin HTTP port."""

    grpc: RunningServer
    http: AdminHttpServer | None = None

    @property
    def target(self) -> str:
        """Where gRPC clients reach the sidecar: host:port or unix:/path."""
        return self.grpc.target

    @property
    def http_url(self) -> str | None:
        """Where the admin HTTP port listens (http://host:port), None if it is disabled."""
        return self.http.url if self.http is not None else None


def read_admin_token(config: Config) -> str | None:
    """The admin token from the configured file or environment variable, if any (an unset or
    blank variable: admin calls are off). Held to the rule of the other tokens: a token of spaces
    was once accepted, and granted admin to whoever sent spaces."""
    settings = config.sidecar
    if settings.admin_token_file:
        return _valid_token(_read_token_file(settings.admin_token_file, "sidecar.admin_token_file"),
                            "sidecar.admin_token_file")
    if settings.admin_token_env:
        token = os.environ.get(settings.admin_token_env, "").strip()
        return _valid_token(token, "sidecar.admin_token_env") if token else None
    return None


def read_tokens(config: Config) -> tuple[str | None, str | None, str | None]:
    """The admin, client and read tokens, each None when not configured."""
    admin = read_admin_token(config)
    client = _read_scope_token(config, "client", differ_from={"admin": admin})
    read = _read_scope_token(config, "read", differ_from={"admin": admin, "client": client})
    return admin, client, read


def _read_scope_token(config: Config, scope: str, differ_from: dict[str, str | None]) -> str | None:
    """The `scope` token (client or read) from `sidecar.<scope>_token_file` or `_env`; None when
    neither is configured. Configured but missing is an error: the sidecar must not serve open
    by mistake."""
    token_file = getattr(config.sidecar, f"{scope}_token_file")
    token_env = getattr(config.sidecar, f"{scope}_token_env")
    if token_file:
        field = f"sidecar.{scope}_token_file"
        token = _read_token_file(token_file, field)
    elif token_env:
        field = f"sidecar.{scope}_token_env"
        token = os.environ.get(token_env, "").strip()
        if not token:
            raise ConfigError([f"{field}: the environment variable {token_env} is not set or empty"])
    else:
        return None
    _valid_token(token, field)
    for other, other_token in differ_from.items():
        if token == other_token:
            raise ConfigError([f"{field}: the {scope} token must differ from the {other} token"])
    return token


def startup_problems(config: Config) -> list[str]:
    """What `serve` would refuse in a valid config, found without starting (`check-config`): a
    token setting that gives no token (an environment variable unset, a file missing or empty), a
    TLS file that holds no PEM, a warm-up file that cannot be read, a unix socket's existing
    directory that others can enter, the admin HTTP port on the gRPC listener's address."""
    problems = []
    for check in (read_tokens, _read_tls_files, check_warmup_file, _check_socket_directory,
                  check_listeners_apart):
        try:
            check(config)
        except ConfigError as refused:
            problems += refused.errors
    return problems


def check_listeners_apart(config: Config, listen: str | None = None) -> None:
    """The admin HTTP port and the gRPC listener (`listen`, the --listen override, else
    sidecar.listen) must not take the same port: the second to bind would fail with "address
    already in use", naming neither setting. Port 0 on both is fine: each gets a free port."""
    if not config.http.enabled:
        return
    grpc_address = parse_listen_address(config.sidecar.listen if listen is None else listen,
                                        allow_non_loopback=True)
    if same_listener(grpc_address, parse_listen_address(config.http.listen, allow_non_loopback=True)):
        setting = "sidecar.listen" if listen is None else "--listen"
        raise ConfigError([f"http.listen: {config.http.listen} is the same address as {setting} "
                           f"({grpc_address.grpc_target}): give the admin HTTP port a port of its own"])


def _check_socket_directory(config: Config) -> None:
    """The check `serve` makes on a unix socket's directory if it exists already; else on the way
    to the nearest directory that does (`serve` creates the rest, private)."""
    address = parse_listen_address(config.sidecar.listen,
                                   allow_non_loopback=config.sidecar.allow_non_loopback)
    if address.unix_path is None:
        return
    directory = Path(address.unix_path).parent
    try:
        if directory.is_dir():
            require_private_directory(directory, address.grpc_target)
            return
        existing = next(parent for parent in directory.parents if parent.is_dir())
        # `serve` makes the rest, this user's; the way to it must be too (found by a reviewer).
        if (problem := changeable_by_others(existing)) is not None:
            raise OSError(f"cannot listen on {address.grpc_target}: {problem}")
    except OSError as refused:
        raise ConfigError([f"sidecar.listen: {refused}"]) from None


def _read_tls_files(config: Config) -> None:
    if config.sidecar.tls is not None:
        server_credentials(config.sidecar.tls)


def _tokens_for_reload(config: Config, auth: AdminAuth) -> tuple[str | None, str | None, str | None]:
    """The tokens a reload brings (the token files read again: rotating a leaked token needs no
    restart); a ConfigError refuses the reload with the old tokens in force."""
    tokens = read_tokens(config)
    if (tokens[1] is not None) != auth.client_token_required:
        raise ConfigError(["sidecar.client_token_*: a client token can be added or removed only by a restart"])
    _warn_of_exposed_token_files(config)  # a rotated file written under umask 022 (found by a tester)
    return tokens


def _warn_of_exposed_token_files(config: Config) -> None:
    for warning in exposed_token_files(config):
        log.warning("token_file_exposed", problem=warning)


def _valid_token(token: str, field: str) -> str:
    if not (token.isascii() and token.isprintable() and " " not in token):
        raise ConfigError([f"{field}: the token must be printable ASCII without spaces"])
    return token


TOKEN_FILES = ("admin_token_file", "client_token_file", "read_token_file")


def exposed_token_files(config: Config) -> list[str]:
    """Token files that other users of the host may read (a warning, not a refusal: a container's
    secret mount is commonly 0644, and its only user is the sidecar). One they may change is
    refused when read (`_read_token_file`)."""
    warnings = []
    for name in TOKEN_FILES:
        path = getattr(config.sidecar, name)
        with contextlib.suppress(OSError):  # unreadable: read_tokens refuses it, naming the field
            mode = os.stat(path).st_mode if path else 0
            if mode & stat.S_IROTH:
                warnings.append(f"sidecar.{name}: {path} (mode {stat.S_IMODE(mode):04o}) may be read by other "
                                "users: chmod 600 it, or 640 for a group of the sidecar's")
    return warnings


def _read_token_file(path: str, field: str) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{field}: cannot read: {getattr(exc, 'strerror', None) or exc}"]) from None
    if not token:
        raise ConfigError([f"{field}: the file is empty"])
    try:
        problem = changeable_by_others(Path(path).absolute())
    except OSError as exc:  # the path changed under the walk (a secret updated as it was read)
        raise ConfigError([f"{field}: cannot check who may change it: {exc.strerror or exc}"]) from None
    if problem is not None:
        # Found by a tester: another user replaced a 0600 token file in a directory open to all,
        # and the next reload made their token the admin token.
        raise ConfigError([f"{field}: {problem}; keep the file where only this user (and root) can change it"])
    return token


async def start(config: Config, *, listen: str | None = None, clock: Clock | None = None,
                config_path: str | None = None) -> tuple[RiskBudgetSidecar, Servers]:
    """Start a sidecar, its gRPC server and its admin HTTP port; health turns SERVING once the
    first budget exists (the HTTP port serves liveness during the warm-up already)."""
    address = parse_listen_address(config.sidecar.listen if listen is None else listen,
                                   allow_non_loopback=config.sidecar.allow_non_loopback)
    check_listeners_apart(config, listen)  # before either binds
    tls = config.sidecar.tls
    if tls is None and not address.is_local:  # a --listen override is held to the config's rule
        raise ConfigError([f"sidecar.tls is required: listen {address.grpc_target} is not loopback"])
    admin_token, client_token, read_token = read_tokens(config)
    credentials = server_credentials(tls) if tls is not None else None
    sidecar = RiskBudgetSidecar(config, clock=clock or SystemClock(), config_path=config_path)
    try:
        servers = Servers(await start_server(sidecar, address, admin_token=admin_token,
                                             client_token=client_token, read_token=read_token,
                                             credentials=credentials,
                                             max_message_bytes=config.sidecar.max_message_bytes,
                                             max_concurrent_rpcs=config.sidecar.max_concurrent_rpcs))
    except BaseException:
        await sidecar.stop()
        raise
    def rotate(tokens: tuple[str | None, str | None, str | None]) -> str | None:
        if not servers.grpc.auth.rotate(*tokens):
            return None
        sidecar.end_streams(TokensRotated)  # those opened with a token rotated out must not go on
        return "sidecar tokens (rotated)"

    sidecar.on_reload(lambda new: _tokens_for_reload(new, servers.grpc.auth), rotate)
    try:
        if config.http.enabled:
            servers.http = await start_http_server(
                sidecar, config.http, health=servers.grpc, auth=servers.grpc.auth,
                shutdown_timeout=min(config.sidecar.shutdown_grace, HTTP_SHUTDOWN_TIMEOUT))
        await sidecar.start()
    except BaseException:
        if servers.http is not None:
            await servers.http.stop()
        await servers.grpc.stop(0)
        await sidecar.stop()
        raise
    _warn_of_exposed_token_files(config)
    server = servers.grpc
    sidecar.on_availability(lambda available: asyncio.ensure_future(server.set_serving(available)))
    await server.set_serving(sidecar.available)
    snapshot = sidecar.require_snapshot()
    log.info("serving", target=server.target, http_url=servers.http_url, budget_version=snapshot.version,
             regime=snapshot.regime.value, limit_source=snapshot.limit_source.value)
    return sidecar, servers


async def _reload(sidecar: RiskBudgetSidecar) -> None:
    """SIGHUP: reload the config file; a refusal is already an alert, the old config stays."""
    try:
        await sidecar.reload_config(requested_by="SIGHUP")
    except ConfigRefused:
        pass


async def watch_the_log(sidecar: RiskBudgetSidecar, writer: BackgroundLogWriter) -> None:
    """Raise an alert when log lines were dropped (the log cannot say so itself), at most one
    every LOG_ALERT_INTERVAL, each with how many since the one before; and export the count."""
    Gauge("riskbudget_log_lines_dropped", "Log lines dropped since start: the log's reader stalled or "
          "is gone, or its disk is full", registry=sidecar.metrics.registry).set_function(lambda: writer.dropped)
    reported = 0
    while True:
        await asyncio.sleep(LOG_WATCH_SECONDS)
        dropped = writer.dropped
        if dropped > reported:
            sidecar.alerts.raise_alert(
                AlertKind.LOG_LINES_DROPPED, AlertSeverity.WARNING,
                f"{dropped - reported} log lines were dropped ({writer.last_error}): the log's reader stalled "
                "or is gone, or its disk is full; the sidecar goes on serving", now=sidecar.now())
            reported = dropped
            await asyncio.sleep(LOG_ALERT_INTERVAL - LOG_WATCH_SECONDS)


async def stop(sidecar: RiskBudgetSidecar, servers: Servers) -> None:
    """Health goes NOT_SERVING first (gRPC and HTTP alike), the admin HTTP port stops, then
    streams end and in-flight gRPC calls finish within the grace period."""
    log.info("shutting_down", grace=sidecar.config.sidecar.shutdown_grace)
    await servers.grpc.begin_shutdown()
    if servers.http is not None:
        await servers.http.stop()
    sidecar.end_streams()
    await servers.grpc.stop(sidecar.config.sidecar.shutdown_grace)
    await sidecar.stop()
    log.info("stopped")


def tune_garbage_collector() -> None:
    """Leave what start-up built (modules, config, the warmed-up budget) out of every later
    collection, and collect less often (see GC_THRESHOLDS)."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def serve(config: Config, *, config_path: str, listen: str | None = None) -> None:
    # The numeric work runs on one worker thread beside the event loop: BLAS threads of its
    # own would take the cores from the event loop (and spin on a busy machine).
    threadpool_limits(limits=1, user_api="blas")
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):  # before start: a signal during start-up waits
        loop.add_signal_handler(signum, stopping.set)
    reload_asked = asyncio.Event()  # SIGHUP's default would end the process during start-up
    loop.add_signal_handler(signal.SIGHUP, reload_asked.set)
    sidecar, servers = await start(config, listen=listen, config_path=config_path)
    if (writer := background_log_writer()) is not None:
        watching = asyncio.create_task(watch_the_log(sidecar, writer), name="log-watch")
    tune_garbage_collector()
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(_reload(sidecar)))
    if reload_asked.is_set():
        await _reload(sidecar)
    await stopping.wait()
    if writer is not None:
        watching.cancel()
    await stop(sidecar, servers)
