"""The admin-token check of operator calls, one for every transport.

`AdminAuth.check` is the whole check: it takes what the caller presented (the
`authorization` value: gRPC metadata or the HTTP header), compares the token in
constant time, audits the outcome, and tells `on_refused` of every refusal. The
token itself is never logged. gRPC calls it through `require_admin`, the admin
HTTP port directly.
"""

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

    def check(self, authorization: str | None, *, action: str, peer: str) -> None:
        """Raise unless `authorization` is `Bearer <admin token>`.

        Unauthenticated without a value; PermissionDenied with a wrong token, or
        when the sidecar has no admin token configured.
        """
        if authorization is None:
            self._refuse(action, peer, "no token")
            raise Unauthenticated("admin calls need 'authorization: Bearer <token>'")
        scheme, _, token = authorization.partition(" ")
        if self._token is None:
            self._refuse(action, peer, "admin disabled")
            raise PermissionDenied("admin calls are disabled: the sidecar has no admin token configured")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), self._token):
            self._refuse(action, peer, "wrong token")
            raise PermissionDenied("the admin token is not valid")
        audit.info("admin_allowed", action=action, peer=peer)

    def require_admin(self, context: grpc.aio.ServicerContext, action: str) -> None:
        """The check for a gRPC call: its `authorization` metadata."""
        presented = dict(context.invocation_metadata() or ()).get("authorization")
        self.check(presented, action=action, peer=context.peer())
