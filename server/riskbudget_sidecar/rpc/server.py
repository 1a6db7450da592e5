"""Build the grpc.aio server: services, health, reflection, a safe bind."""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from riskbudget.v1 import risk_budget_admin_pb2, risk_budget_admin_pb2_grpc
from riskbudget.v1 import risk_budget_service_pb2, risk_budget_service_pb2_grpc

from ..engine.addresses import ListenAddress
from ..engine.types import AlertKind, AlertSeverity
from ..service.sidecar import RiskBudgetSidecar
from .auth import AdminAuth
from .servicers import RiskBudgetAdminServicer, RiskBudgetServicer

SERVICE_NAMES = (
    risk_budget_service_pb2.DESCRIPTOR.services_by_name["RiskBudgetService"].full_name,
    risk_budget_admin_pb2.DESCRIPTOR.services_by_name["RiskBudgetAdminService"].full_name,
)


@dataclass
class RunningServer:
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    target: str
    """Where clients reach it: host:port with the real port, or unix:/path."""
    auth: AdminAuth
    """The admin-token check of this sidecar (the admin HTTP port uses the same one)."""
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
                       max_concurrent_rpcs: int | None = None) -> RunningServer:
    """Start serving at `address`; health says NOT_SERVING until told otherwise."""
    server = grpc.aio.server(maximum_concurrent_rpcs=max_concurrent_rpcs, options=[
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),  # a second sidecar on the same port must fail, not share it
    ])
    risk_budget_service_pb2_grpc.add_RiskBudgetServiceServicer_to_server(RiskBudgetServicer(sidecar), server)
    auth = AdminAuth(admin_token, on_refused=lambda action, peer, why: sidecar.alerts.raise_alert(
        AlertKind.ADMIN_REFUSED, AlertSeverity.WARNING, f"admin call {action} from {peer} refused: {why}",
        now=sidecar.now()))
    risk_budget_admin_pb2_grpc.add_RiskBudgetAdminServiceServicer_to_server(
        RiskBudgetAdminServicer(sidecar, auth), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    target = _bind(server, address)
    running = RunningServer(server, health_servicer, target, auth)
    await running.set_serving(False)
    await server.start()
    return running


def _bind(server: grpc.aio.Server, address: ListenAddress) -> str:
    if address.unix_path is not None:
        socket_path = Path(address.unix_path)
        socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _remove_stale_socket(socket_path)
        server.add_insecure_port(address.grpc_target)
        os.chmod(socket_path, 0o600)
        return address.grpc_target
    try:
        port = server.add_insecure_port(address.grpc_target)
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {address.grpc_target}: {exc}") from None
    if port == 0:
        raise OSError(f"cannot listen on {address.grpc_target}: the address is in use or unavailable")
    return ListenAddress(address.host, port, None).grpc_target


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
