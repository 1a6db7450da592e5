"""Admin-token check for operator calls. The token is compared in constant time, never logged."""

from __future__ import annotations

import hmac
from typing import Callable

import grpc
import structlog

from ..service.errors import PermissionDenied, Unauthenticated

audit = structlog.get_logger("riskbudget.audit")


class AdminAuth:
    def __init__(self, token: str | None, *, on_refused: Callable[[str, str, str], None] | None = None) -> None:
        """`on_refused(action, peer, why)` is told of every refusal (the sidecar raises an alert)."""
        self._token = token.encode() if token else None
        self._on_refused = on_refused or (lambda action, peer, why: None)

    def _refuse(self, action: str, peer: str, why: str) -> None:
        audit.warning("admin_refused", action=action, peer=peer, why=why)
        self._on_refused(action, peer, why)

    def require_admin(self, context: grpc.aio.ServicerContext, action: str) -> None:
        """Raise unless the call carries `authorization: Bearer <admin token>`."""
        presented = dict(context.invocation_metadata() or ()).get("authorization")
        peer = context.peer()
        if presented is None:
            self._refuse(action, peer, "no token")
            raise Unauthenticated("admin calls need 'authorization: Bearer <token>' metadata")
        scheme, _, token = presented.partition(" ")
        if self._token is None:
            self._refuse(action, peer, "admin disabled")
            raise PermissionDenied("admin calls are disabled: the sidecar has no admin token configured")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), self._token):
            self._refuse(action, peer, "wrong token")
            raise PermissionDenied("the admin token is not valid")
        audit.info("admin_allowed", action=action, peer=peer)
