"""Admin-token check for operator calls. The token is compared in constant time, never logged."""

from __future__ import annotations

import hmac

import grpc
import structlog

from ..service.errors import PermissionDenied, Unauthenticated

audit = structlog.get_logger("riskbudget.audit")


class AdminAuth:
    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    def require_admin(self, context: grpc.aio.ServicerContext, action: str) -> None:
        """Raise unless the call carries `authorization: Bearer <admin token>`."""
        presented = dict(context.invocation_metadata() or ()).get("authorization")
        peer = context.peer()
        if presented is None:
            audit.warning("admin_refused", action=action, peer=peer, why="no token")
            raise Unauthenticated("admin calls need 'authorization: Bearer <token>' metadata")
        scheme, _, token = presented.partition(" ")
        if self._token is None:
            audit.warning("admin_refused", action=action, peer=peer, why="admin disabled")
            raise PermissionDenied("admin calls are disabled: the sidecar has no admin token configured")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), self._token):
            audit.warning("admin_refused", action=action, peer=peer, why="wrong token")
            raise PermissionDenied("the admin token is not valid")
        audit.info("admin_allowed", action=action, peer=peer)
