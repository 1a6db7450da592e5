"""Build the grpc.aio server: services, health, reflection, a safe bind."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from riskbudget.v1 import risk_budget_admin_pb2, risk_budget_service_pb2

from ..engine.addresses import ListenAddress
from ..engine.types import AlertKind, AlertSeverity
from ..service.sidecar import RiskBudgetSidecar
from ..engine.config import SidecarTls
from ..service.config_file import read_pem
from ..service.trusted_paths import changeable_by_others
from .auth import AdminAuth, ClientTokenInterceptor
from .parsing import add_servicer
from .stream_slots import OpenStreams
from .servicers import RiskBudgetAdminServicer, RiskBudgetServicer

SERVICES = (
    risk_budget_service_pb2.DESCRIPTOR.services_by_name["RiskBudgetService"],
    risk_budget_admin_pb2.DESCRIPTOR.services_by_name["RiskBudgetAdminService"],
)
SERVICE_NAMES = tuple(service.full_name for service in SERVICES)
UNLIMITED_SLOTS_AS = 256
"""The call slots the stream bounds are shares of when the server sets no limit on calls."""


class _WatchStream:
    """The servicer context of one Watch stream for the library's watcher, which is cancelled at
    shutdown: a write it began still completes (gRPC takes one write at a time), and then the
    stream's last status."""

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._context = context
        self._last_write: asyncio.Future | None = None
        self._last_status: int | None = None

    async def write(self, response: health_pb2.HealthCheckResponse) -> None:
        self._last_write, self._last_status = asyncio.ensure_future(self._context.write(response)), response.status
        await asyncio.shield(self._last_write)

    async def end_with(self, status: int) -> None:
        if self._last_write is not None:
            await self._last_write
        if self._last_status != status:
            await self._context.write(health_pb2.HealthCheckResponse(status=status))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


class BoundedHealthServicer(health.aio.HealthServicer):
    """grpc.health.v1 whose Watch streams count in `streams` (Check is unary, and stays free),
    and end once shutdown began, after their last status: left open, a watcher held the
    server's stop for its whole grace period."""

    def __init__(self, streams: OpenStreams) -> None:
        super().__init__()
        self._streams = streams
        self._shut_down = asyncio.Event()

    async def enter_graceful_shutdown(self) -> None:
        await super().enter_graceful_shutdown()
        self._shut_down.set()

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext) -> None:
        async with self._streams.slot(context):
            stream = _WatchStream(context)
            watching = asyncio.ensure_future(super().Watch(request, stream))
            shut_down = asyncio.ensure_future(self._shut_down.wait())
            try:
                await asyncio.wait((watching, shut_down), return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (watching, shut_down):
                    task.cancel()
                await asyncio.gather(watching, shut_down, return_exceptions=True)
            if shut_down.cancelled():  # the watcher ended first: the client went away
                await watching
            else:
                await stream.end_with(self._server_status.get(
                    request.service, health_pb2.HealthCheckResponse.SERVICE_UNKNOWN))


class BoundedReflectionServicer(reflection.aio.ReflectionServicer):
    """Server reflection whose streams count in `streams`."""

    def __init__(self, service_names: tuple[str, ...], streams: OpenStreams) -> None:
        super().__init__(service_names)
        self._streams = streams

    async def ServerReflectionInfo(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        async with self._streams.slot(context):
            async for response in super().ServerReflectionInfo(request_iterator, context):
                yield response


@dataclass
class RunningServer:
    server: grpc.aio.Server
    health: BoundedHealthServicer
    target: str
    """Where clients reach it: host:port with the real port, or unix:/path."""
    auth: AdminAuth
    """The token checks of this sidecar (the admin HTTP port uses the same one)."""
    serving: bool = False
    """What grpc.health.v1 says now: True exactly when every service is SERVING."""
    shutting_down: bool = False
    """True once shutdown began: health is NOT_SERVING for good."""

    async def set_serving(self, serving: bool) -> None:
        if self.shutting_down:  # the health servicer ignores it too
            return
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, status)
        self.serving = serving and not self.shutting_down

    async def begin_shutdown(self) -> None:
        """Health NOT_SERVING for every service, with no way back."""
        self.shutting_down, self.serving = True, False
        await self.health.enter_graceful_shutdown()

    async def stop(self, grace: float) -> None:
        await self.begin_shutdown()
        await self.server.stop(grace)


async def start_server(sidecar: RiskBudgetSidecar, address: ListenAddress, *,
                       admin_token: str | None, max_message_bytes: int,
                       max_concurrent_rpcs: int | None = None, client_token: str | None = None,
                       read_token: str | None = None,
                       credentials: grpc.ServerCredentials | None = None) -> RunningServer:
    """Start serving at `address` (over TLS with `credentials`); health says NOT_SERVING
    until told otherwise. With a `client_token`, RiskBudgetService calls need it (or the
    admin token), and a `read_token` may make the calls that change nothing; health and
    reflection stay open. Recommendation streams may hold at most half of the call slots,
    health watchers and reflection streams a quarter: the rest stays for the trading calls."""
    auth = AdminAuth(admin_token, client_token=client_token, read_token=read_token,
                     on_refused=lambda action, peer, why: sidecar.alerts.raise_alert(
                         AlertKind.ADMIN_REFUSED, AlertSeverity.WARNING,
                         f"admin call {action} from {peer} refused: {why}", now=sidecar.now()))
    # Only with a client token: a sidecar without one pays nothing per call.
    interceptors = [ClientTokenInterceptor(auth, SERVICE_NAMES[0])] if auth.client_token_required else []
    # maximum_concurrent_rpcs counts the calls the event loop has taken; a loop busy with CPU
    # work takes calls only as fast as it answers them, and the rest would queue in gRPC core
    # for seconds. Core's own bound on calls not yet taken drops that excess at once.
    pending = [] if max_concurrent_rpcs is None else [
        ("grpc.server.max_pending_requests", max_concurrent_rpcs),
        ("grpc.server.max_pending_requests_hard_limit", 2 * max_concurrent_rpcs)]
    server = grpc.aio.server(maximum_concurrent_rpcs=max_concurrent_rpcs, interceptors=interceptors, options=[
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),  # a second sidecar on the same port must fail, not share it
        *pending,
    ])
    slots = max_concurrent_rpcs or UNLIMITED_SLOTS_AS
    recommendation_streams = OpenStreams(max(1, slots // 2), "recommendation streams")
    add_servicer(server, RiskBudgetServicer(sidecar, auth, recommendation_streams), SERVICES[0])
    add_servicer(server, RiskBudgetAdminServicer(sidecar, auth), SERVICES[1])
    token_free_streams = OpenStreams(max(1, slots // 4), "health watchers and reflection streams")
    health_servicer = BoundedHealthServicer(token_free_streams)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(BoundedReflectionServicer(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), token_free_streams), server)
    target = _bind(server, address, credentials)
    running = RunningServer(server, health_servicer, target, auth)
    await running.set_serving(False)
    await server.start()
    return running


def server_credentials(tls: SidecarTls) -> grpc.ServerCredentials:
    """The TLS credentials of `sidecar.tls`: the PEM files read now, mutual TLS with a client CA."""
    key = read_pem(tls.key_file, "sidecar.tls.key_file", "PRIVATE KEY")
    chain = read_pem(tls.cert_file, "sidecar.tls.cert_file", "CERTIFICATE")
    if tls.client_ca_file is None:
        return grpc.ssl_server_credentials([(key, chain)])
    client_ca = read_pem(tls.client_ca_file, "sidecar.tls.client_ca_file", "CERTIFICATE")
    return grpc.ssl_server_credentials([(key, chain)], root_certificates=client_ca, require_client_auth=True)


def _add_port(server: grpc.aio.Server, target: str, credentials: grpc.ServerCredentials | None) -> int:
    if credentials is None:
        return server.add_insecure_port(target)
    return server.add_secure_port(target, credentials)


def _bind(server: grpc.aio.Server, address: ListenAddress,
          credentials: grpc.ServerCredentials | None = None) -> str:
    if credentials is None and not address.is_local:  # whatever the caller checked before
        raise ValueError(f"cannot listen on {address.grpc_target} without TLS: a non-loopback "
                         "listener needs sidecar.tls")
    if address.unix_path is not None:
        try:
            return _bind_unix(server, address, credentials)
        except (OSError, RuntimeError) as exc:  # a refusal naming the address, never a traceback
            raise OSError(_naming(address.grpc_target, exc)) from None
    try:
        port = _add_port(server, address.grpc_target, credentials)
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {address.grpc_target}: {exc}") from None
    if port == 0:
        raise OSError(f"cannot listen on {address.grpc_target}: the address is in use or unavailable")
    return ListenAddress(address.host, port, None).grpc_target


def _naming(target: str, exc: OSError | RuntimeError) -> str:
    """`exc` as one line that starts with the address it failed on."""
    if isinstance(exc, OSError) and exc.strerror:
        message = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    else:
        message = str(exc)
    prefix = f"cannot listen on {target}: "
    return message if message.startswith(prefix) else prefix + message


def _bind_unix(server: grpc.aio.Server, address: ListenAddress,
               credentials: grpc.ServerCredentials | None) -> str:
    socket_path = Path(address.unix_path)
    try:
        # Each missing directory 0700, not only the last (`parents=True` makes the others by the
        # umask: under umask 002 or 000 the sidecar then refused the way it had made itself).
        missing = [directory for directory in (socket_path.parent, *socket_path.parent.parents)
                   if not directory.exists()]
        for directory in reversed(missing):
            directory.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create the socket's directory {socket_path.parent}: "
                      f"{exc.strerror or exc}") from None
    require_private_directory(socket_path.parent, address.grpc_target)
    _remove_stale_socket(socket_path)
    if _add_port(server, address.grpc_target, credentials) == 0:
        raise OSError("the socket cannot be bound")
    os.chmod(socket_path, 0o600)
    return address.grpc_target


def require_private_directory(directory: Path, target: str) -> None:
    """The socket's directory must be this user's and closed to everyone else: one made
    beforehand (by someone else, or open to a group) would let others reach or replace it. So
    must the way to it: a tester swapped a link another user owned on the path for one to a
    socket of their own, which approved every order and read the client token."""
    if (problem := changeable_by_others(directory)) is not None:
        raise OSError(f"cannot listen on {target}: {problem}; set sidecar.listen to a path only this user "
                      "(and root) can change")
    info = directory.stat()
    if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise OSError(f"cannot listen on {target}: the socket's directory {directory} must belong to "
                      f"this user with mode 0700 (it is uid {info.st_uid}, mode "
                      f"{stat.S_IMODE(info.st_mode):04o}); set sidecar.listen to a path in such a directory")


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket file left by a sidecar that died; refuse if one still listens there."""
    if not path.exists():
        return
    if not stat.S_ISSOCK(path.stat().st_mode):
        raise OSError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        path.unlink()
        return
    finally:
        probe.close()
    raise OSError(f"{path}: another sidecar is listening there")
