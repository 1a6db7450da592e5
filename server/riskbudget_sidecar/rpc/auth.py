"""Token checks, one for every transport: the admin, client and read scopes.

Three tokens, three scopes, each narrower than the one before:

- the admin token: operator calls (RiskBudgetAdminService, the admin HTTP port's
  controls); it implies the client scope too;
- the client token (optional): the trading and read calls of RiskBudgetService
  (CheckTrade, GetBudget, PublishMarketData, ReportFill, StreamRecommendations...).
  It is refused on every admin call. Without one configured, those calls need no
  token (the default: a loopback or unix-socket sidecar beside its trading process);
- the read token (optional, and only beside a client token): the calls of
  RiskBudgetService that change nothing, `READ_CALLS` and CheckTrade with dry_run.
  Every other call is refused with it, before the servicer runs.

`AdminAuth.check` is the whole admin check: it takes what the caller presented (the
`authorization` value: gRPC metadata or the HTTP header), compares in constant time,
audits the outcome, and tells `on_refused` of every refusal. gRPC calls it through
`require_admin`, the admin HTTP port directly; `check_read` is the admin HTTP port's check of
its reads, the client scope's. `ClientTokenInterceptor` checks the
client and read scopes: installed only when a client token is configured, so a sidecar
without one pays nothing per call. No token is ever logged or echoed back.
"""

from __future__ import annotations

import hmac
from typing import Awaitable, Callable, Iterator

import grpc
import structlog
from google.protobuf.message import Message

from ..service.errors import InvalidInput, PermissionDenied, Unauthenticated
from .parsing import Unparsable

audit = structlog.get_logger("riskbudget.audit")

READ_CALLS = ("GetBudget", "GetUtilization", "StreamRecommendations", "ListAlerts", "GetStatus")
"""The RiskBudgetService calls the read token may make as they are (a call added to the
contract later is refused to it until it is listed here)."""
DRY_RUN_CALL = "CheckTrade"
"""The one more call the read token may make, and only with dry_run (which reserves nothing)."""
READ_TOKEN = "read token"
"""What `AdminAuth.client_refusal` says of the read token; the audit's `why` when it is refused."""

HTTP_READ_NEEDS_TOKEN = "this sidecar's reads need 'Authorization: Bearer <read, client or admin token>'"
"""The refusal of an admin HTTP port read without a token, once a client token is configured."""

SEVERAL_TOKENS = "several tokens"
"""The refusal of a call carrying more than one `authorization` value."""


def one_authorization(values: list[str]) -> str | None:
    """The call's one `authorization` value (None without one). Several are refused
    (Unauthenticated), by every check alike: the admin check read the last and the client
    check the first, so each scope judged another token."""
    if len(values) > 1:
        raise Unauthenticated("send one 'authorization' value, not several")
    return values[0] if values else None


def _presented(authorization: str | None) -> bytes | None:
    """The token of `Bearer <token>`, or None for no value or another scheme."""
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.encode("utf-8", "replace")


class AdminAuth:
    def __init__(self, token: str | None, *, client_token: str | None = None, read_token: str | None = None,
                 on_refused: Callable[[str, str, str], None] | None = None) -> None:
        """`on_refused(action, peer, why)` is told of every admin refusal (the sidecar raises an alert)."""
        self._set(token, client_token, read_token)
        self._on_refused = on_refused or (lambda action, peer, why: None)

    def rotate(self, token: str | None, client_token: str | None, read_token: str | None) -> bool:
        """Use these tokens from now on (a reload that found new ones in the token files); whether
        any changed. Whether a client token is needed cannot change: the interceptor that checks it
        is set at start."""
        if (client_token is None) != (self._client_token is None):
            raise ValueError("a client token can be added or removed only by a restart")
        before = (self._token, self._client_token, self._read_token)
        self._set(token, client_token, read_token)
        return before != (self._token, self._client_token, self._read_token)

    def _set(self, token: str | None, client_token: str | None, read_token: str | None) -> None:
        if _same(token, client_token):
            raise ValueError("the client token must differ from the admin token")
        if read_token and not client_token:
            raise ValueError("a read token needs a client token: without one RiskBudgetService calls need no token")
        if _same(read_token, token) or _same(read_token, client_token):
            raise ValueError("the read token must differ from the admin token and the client token")
        self._token = token.encode() if token else None
        self._client_token = client_token.encode() if client_token else None
        self._read_token = read_token.encode() if read_token else None

    @property
    def read_token_configured(self) -> bool:
        return self._read_token is not None

    @property
    def client_token_required(self) -> bool:
        """True when RiskBudgetService calls need the client (or the admin) token."""
        return self._client_token is not None

    def _refuse(self, action: str, peer: str, why: str) -> None:
        audit.warning("admin_refused", action=action, peer=peer, why=why)
        self._on_refused(action, peer, why)

    def check(self, authorization: str | None, *, action: str, peer: str) -> None:
        """Raise unless `authorization` is `Bearer <admin token>`.

        Unauthenticated without a value; PermissionDenied with a wrong token, with the
        client or the read token, or when the sidecar has no admin token configured.
        """
        if authorization is None:
            self._refuse(action, peer, "no token")
            raise Unauthenticated("admin calls need 'authorization: Bearer <token>'")
        if self._token is None:
            self._refuse(action, peer, "admin disabled")
            raise PermissionDenied("admin calls are disabled: the sidecar has no admin token configured")
        presented = _presented(authorization)
        if presented is not None and hmac.compare_digest(presented, self._token):
            audit.info("admin_allowed", action=action, peer=peer)
            return
        if (presented is not None and self._client_token is not None
                and hmac.compare_digest(presented, self._client_token)):
            self._refuse(action, peer, "client token")
            raise PermissionDenied("the client token cannot make admin calls: they need the admin token")
        if self._is_read_token(presented):
            self._refuse(action, peer, READ_TOKEN)
            raise PermissionDenied("the read token cannot make admin calls: they need the admin token")
        self._refuse(action, peer, "wrong token")
        raise PermissionDenied("the admin token is not valid")

    def require_admin(self, context: grpc.aio.ServicerContext, action: str, request: Message) -> None:
        """The check for a gRPC call: its `authorization` metadata, then its request's text."""
        values = [value for key, value in context.invocation_metadata() or () if key == "authorization"]
        self.check_all(values, action=action, peer=context.peer())
        self.refuse_tokens_in(request)

    def refuse_tokens_in(self, request: Message | Unparsable) -> None:
        """Refuse an admin request with a token in its text (a name, a reason), naming the field:
        that text is logged, raised in alerts and shown in the status. Found by a tester: a token
        pasted into the dashboard's name field, beside the token's, went into the log and
        /api/status, which the read token reads."""
        if type(request) is Unparsable:  # refused as its call refuses it
            return
        tokens = self._configured()
        for field, text in _texts(request):
            if any(token in text for token in tokens):
                raise InvalidInput([(field, "holds one of the sidecar's tokens: it would be logged and shown in "
                                            "the status; give a name or a reason, and the token in "
                                            "'authorization' only")])

    def check_all(self, values: list[str], *, action: str, peer: str) -> None:
        """`check` of the call's `authorization` values: refused (and audited) if there are several."""
        try:
            authorization = one_authorization(values)
        except Unauthenticated:
            self._refuse(action, peer, SEVERAL_TOKENS)
            raise
        self.check(authorization, action=action, peer=peer)

    def require_client_still(self, context: grpc.aio.ServicerContext) -> None:
        """For each later message of a client stream: the token it was opened with still passes
        the client scope. Found by a tester: a price stream opened with a token a reload then
        rotated out went on moving prices."""
        if self._client_token is None:
            return
        values = [value for key, value in context.invocation_metadata() or () if key == "authorization"]
        if (SEVERAL_TOKENS if len(values) > 1 else self.client_refusal(one_authorization(values))) is not None:
            raise PermissionDenied("the token this stream was opened with is no longer valid (rotated): "
                                   "open it again with a valid one")

    def client_refusal(self, authorization: str | None) -> str | None:
        """Why a client-scope call is refused (None: allowed). The client token or the
        admin token pass; both are compared, in constant time, whichever matches.
        `READ_TOKEN` for the read token: the caller decides per call (the read calls pass)."""
        if self._client_token is None:
            return None
        presented = _presented(authorization)
        if presented is None:
            return "no token" if authorization is None else "not a bearer token"
        client = hmac.compare_digest(presented, self._client_token)
        admin = self._token is not None and hmac.compare_digest(presented, self._token)
        if client or admin:
            return None
        return READ_TOKEN if self._is_read_token(presented) else "wrong token"

    def check_read(self, values: list[str], *, action: str, peer: str) -> None:
        """The check of the admin HTTP port's reads (its status and metrics), which show what
        gRPC's reads show: free without a client token configured, as those are; with one,
        the read, client or admin token. Refusals are audited, like gRPC's client refusals."""
        if self._client_token is None:  # whatever is sent, as gRPC's reads (found by a reviewer)
            return
        why = SEVERAL_TOKENS if len(values) > 1 else self.client_refusal(one_authorization(values))
        if why is None or why == READ_TOKEN:
            return
        audit.warning("client_refused", action=action, peer=peer, why=why)
        if why == "wrong token":
            raise PermissionDenied("the token is not valid")
        raise Unauthenticated(HTTP_READ_NEEDS_TOKEN if why != SEVERAL_TOKENS
                              else "send one 'Authorization' value, not several")

    def redact(self, text: str) -> str:
        """`text` with each of the sidecar's tokens in it replaced by "<token>": for what is logged of
        a refused request, which may quote anything the caller sent (found by a reviewer: an
        override id, a field name or an enum value that was a token went into the log)."""
        for token in self._configured():
            text = text.replace(token, "<token>")
        return text

    def _configured(self) -> list[str]:
        return [token.decode() for token in (self._token, self._client_token, self._read_token) if token]

    def _is_read_token(self, presented: bytes | None) -> bool:
        return (presented is not None and self._read_token is not None
                and hmac.compare_digest(presented, self._read_token))


def _texts(message: Message, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Each string set in `message` and the messages in it, with its field's path."""
    for field, value in message.ListFields():
        name = prefix + field.name
        values = value if field.is_repeated else [value]
        if field.type == field.TYPE_STRING:
            yield from ((name, text) for text in values)
        elif field.type == field.TYPE_MESSAGE:
            for inner in values:
                yield from _texts(inner, name + ".")


def _same(token: str | None, other: str | None) -> bool:
    return bool(token and other and hmac.compare_digest(token.encode(), other.encode()))


_MESSAGES = {
    "no token": (grpc.StatusCode.UNAUTHENTICATED, "this call needs 'authorization: Bearer <{needs}>'"),
    "not a bearer token": (grpc.StatusCode.UNAUTHENTICATED, "this call needs 'authorization: Bearer <{needs}>'"),
    "wrong token": (grpc.StatusCode.PERMISSION_DENIED, "the client token is not valid"),
    SEVERAL_TOKENS: (grpc.StatusCode.UNAUTHENTICATED, "send one 'authorization' value, not several"),
    READ_TOKEN: (grpc.StatusCode.PERMISSION_DENIED, "the read token cannot call {action}: it needs the client token"),
}
DRY_RUN_ONLY = "the read token can call CheckTrade only with dry_run: a check that reserves needs the client token"


class ClientTokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuse the calls of `service` that do not carry the client (or admin) token, and
    those the read token may not make.

    A refused call gets a handler that only audits and aborts: the request is never
    parsed and the servicer never runs, so a refused CheckTrade cannot be approved.
    Only the read token's CheckTrade is parsed first, to see dry_run.
    """

    def __init__(self, auth: AdminAuth, service: str) -> None:
        self._auth = auth
        self._prefix = f"/{service}/"
        self._read_calls = frozenset(self._prefix + name for name in READ_CALLS)
        self._dry_run_call = self._prefix + DRY_RUN_CALL

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        if not method.startswith(self._prefix):
            return await continuation(handler_call_details)
        values = [value for key, value in handler_call_details.invocation_metadata or () if key == "authorization"]
        why = SEVERAL_TOKENS if len(values) > 1 else self._auth.client_refusal(one_authorization(values))
        if why is None:
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        if why == READ_TOKEN:
            if method in self._read_calls:
                return handler
            if method == self._dry_run_call:
                return _dry_run_only(handler)
        # A read the read token may make says so (found by a tester: it named the client token only).
        reader = self._auth.read_token_configured and method in self._read_calls
        return _refusing_handler(handler, method, why, needs="client or read token" if reader else "client token")


def _refusing_handler(handler: grpc.RpcMethodHandler | None, method: str, why: str,
                      needs: str) -> grpc.RpcMethodHandler | None:
    if handler is None:  # an unknown method: gRPC answers UNIMPLEMENTED
        return None
    action = method.rsplit("/", 1)[-1]
    code, message = _MESSAGES[why]
    message = message.format(action=action, needs=needs)

    async def refuse(request, context: grpc.aio.ServicerContext):
        audit.warning("client_refused", action=action, peer=context.peer(), why=why)
        await context.abort(code, message)

    # No deserializer: the refused request stays bytes, never parsed.
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(refuse, None, handler.response_serializer)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(refuse, None, handler.response_serializer)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(refuse, None, handler.response_serializer)
    return grpc.stream_stream_rpc_method_handler(refuse, None, handler.response_serializer)


def _dry_run_only(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """CheckTrade for the read token: parsed, and refused before the servicer runs unless it
    is a dry run, so the read token can neither reserve nor leave a remembered decision."""
    check_trade = handler.unary_unary

    async def dry_run_only(request, context: grpc.aio.ServicerContext):
        # A body that did not parse goes on to be refused as CheckTrade refuses it, naming it.
        if type(request) is not Unparsable and not request.dry_run:
            audit.warning("client_refused", action=DRY_RUN_CALL, peer=context.peer(), why="read token without dry_run")
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, DRY_RUN_ONLY)
        return await check_trade(request, context)

    return grpc.unary_unary_rpc_method_handler(dry_run_only, handler.request_deserializer,
                                               handler.response_serializer)
