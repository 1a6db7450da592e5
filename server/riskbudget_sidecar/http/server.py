"""The admin HTTP port: Prometheus metrics, liveness and readiness, JSON status, controls, dashboard.

It serves on the sidecar's event loop, beside the gRPC server, and reads the
same state: readiness is what grpc.health.v1 says (the gRPC server's own record
of what it set), the status document comes from the same converters as the gRPC
replies. The controls take the JSON form of the admin RPCs' request messages,
check the admin token with the same `AdminAuth`, validate with the same
converters and call the same sidecar methods; domain errors become HTTP statuses
through one table (errors.py), as rpc/errors.py does for gRPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from google.protobuf import json_format
from google.protobuf.message import Message
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from riskbudget.v1 import risk_budget_admin_pb2 as admin_pb

from ..engine.addresses import parse_listen_address
from ..engine.config import HttpSettings
from ..rpc import converters as convert
from ..rpc.auth import AdminAuth
from ..service.errors import InvalidInput, NotReady, RiskBudgetError
from ..service.sidecar import RiskBudgetSidecar
from .errors import error_response, parse_error_input
from .status import as_json, status

log = structlog.get_logger("riskbudget.http")

STATIC = Path(__file__).resolve().parent / "static"
AUTH = web.AppKey("auth", AdminAuth)
MAX_BODY_BYTES = 64 * 1024
ERROR_LOG_LIMIT = 10
ERROR_LOG_WINDOW = 60.0
"""At most ERROR_LOG_LIMIT lines about malformed requests per ERROR_LOG_WINDOW seconds; past it
they are counted, and the count is logged once the window ends (`http_errors_suppressed`):
anyone who can reach the port can send them, and they must not flood the log. A handler's
failure is always logged."""
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"),
}


class HealthView(Protocol):
    """What the gRPC server's health says (rpc.server.RunningServer keeps it)."""

    serving: bool
    shutting_down: bool


class ServerErrorLog:
    """What aiohttp's request handler logs (its `logger`, by default the stdlib logger
    "aiohttp.server", which without a handler writes multi-line tracebacks to stderr), as
    structlog JSON lines; the malformed requests at most `limit` per `window` seconds.

    A request aiohttp cannot parse (a line or header too long, a garbage request line, a bad
    URL, a malformed body) is `http_bad_request`: the peer, the status aiohttp answers (400)
    and the kind of error, never the error's message, which quotes the offending bytes (part
    of an Authorization header, say). Anything else (a handler that failed: 500) is
    `http_error` with its traceback in the line."""

    def __init__(self, *, limit: int = ERROR_LOG_LIMIT, window: float = ERROR_LOG_WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._window = window
        self._clock = clock
        self._window_start = -math.inf
        self._logged = 0
        self._suppressed = 0
        self._flush_handle: asyncio.TimerHandle | None = None

    # the logging.Logger methods aiohttp's RequestHandler and Server call
    def debug(self, msg: str, *args: Any, exc_info: Any = None, **_: Any) -> None:
        self._log(logging.DEBUG, msg, args, exc_info)

    def info(self, msg: str, *args: Any, exc_info: Any = None, **_: Any) -> None:
        self._log(logging.INFO, msg, args, exc_info)

    def warning(self, msg: str, *args: Any, exc_info: Any = None, **_: Any) -> None:
        self._log(logging.WARNING, msg, args, exc_info)

    def error(self, msg: str, *args: Any, exc_info: Any = None, **_: Any) -> None:
        self._log(logging.ERROR, msg, args, exc_info)

    def exception(self, msg: str, *args: Any, exc_info: Any = True, **_: Any) -> None:
        self._log(logging.ERROR, msg, args, exc_info)

    def flush(self) -> None:
        """Log how many lines the limit held back, if any."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._suppressed:
            log.warning("http_errors_suppressed", count=self._suppressed, window=self._window)
            self._suppressed = 0

    def _log(self, level: int, msg: str, args: tuple[Any, ...], exc_info: Any) -> None:
        if not log.is_enabled_for(level):
            return
        error = exc_info if isinstance(exc_info, BaseException) else None
        # handle_error's words; the peer is the one argument (request.remote)
        peer = {"peer": args[0]} if msg == "Error handling request from %s" and args else {}
        bad_request = isinstance(error, (HttpProcessingError, RequestPayloadError))
        if bad_request and not self._allowed():  # only what anyone can send is limited: a real
            return  # failure's traceback (below) must not be crowded out by a flood of garbage
        if isinstance(error, HttpProcessingError):  # answered with its code, 400
            log.log(min(level, logging.WARNING), "http_bad_request", **peer, status=error.code,
                    error=type(error).__name__)
            return
        if isinstance(error, RequestPayloadError):  # a body aiohttp could not decode, read by a handler
            cause = error.__cause__ or error.__context__
            log.log(min(level, logging.WARNING), "http_bad_request", **peer, error=type(error).__name__,
                    **({"cause": type(cause).__name__} if cause is not None else {}))
            return
        try:
            message = msg % args if args else msg
        except (TypeError, ValueError):
            message = msg
        log.log(level, "http_error", **peer, message=message, **({"exc_info": exc_info} if exc_info else {}))

    def _allowed(self) -> bool:
        now = self._clock()
        if now - self._window_start >= self._window:
            self.flush()
            self._window_start, self._logged = now, 0
        if self._logged < self._limit:
            self._logged += 1
            return True
        if not self._suppressed:
            with contextlib.suppress(RuntimeError):  # no running loop: the next line says it
                self._flush_handle = asyncio.get_running_loop().call_later(
                    max(self._window_start + self._window - now, 0.0), self.flush)
        self._suppressed += 1
        return False


@dataclass
class AdminHttpServer:
    runner: web.AppRunner
    url: str
    """Where it is reached: http://host:port with the real port."""
    errors: ServerErrorLog = field(default_factory=ServerErrorLog)

    async def stop(self) -> None:
        """Stop listening; requests in flight finish within the shutdown timeout."""
        await self.runner.cleanup()
        self.errors.flush()


async def start_http_server(sidecar: RiskBudgetSidecar, settings: HttpSettings, *, health: HealthView,
                            auth: AdminAuth, shutdown_timeout: float = 5.0) -> AdminHttpServer:
    """Listen on `settings.listen` (port 0 picks a free port) and log `http_serving` with the URL."""
    address = parse_listen_address(settings.listen)
    loopback = ipaddress.ip_address(address.host).is_loopback
    app = build_app(sidecar, health=health, auth=auth, check_host=loopback)
    errors = ServerErrorLog()
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=shutdown_timeout,
                           logger=errors)
    await runner.setup()
    try:
        await web.TCPSite(runner, address.host, address.port, reuse_port=False).start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(f"cannot listen on http {settings.listen}: {exc.strerror or exc}") from None
    host, port = runner.addresses[0][:2]
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    log.info("http_serving", url=url)
    return AdminHttpServer(runner, url, errors)


def build_app(sidecar: RiskBudgetSidecar, *, health: HealthView, auth: AdminAuth,
              check_host: bool = True) -> web.Application:
    middlewares = [_headers, _domain_errors] + ([_loopback_host] if check_host else [])
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=middlewares)
    app[AUTH] = auth
    routes = _Routes(sidecar, health, auth)
    app.add_routes([
        web.get("/", routes.index),
        web.get("/metrics", routes.metrics),
        web.get("/healthz", routes.healthz),
        web.get("/readyz", routes.readyz),
        web.get("/api/status", routes.status),
        web.post("/api/overrides", routes.set_override),
        web.delete("/api/overrides/{id}", routes.clear_override),
        web.post("/api/trading-state", routes.set_trading_state),
        web.post("/api/rebalance", routes.trigger_rebalance),
        web.static("/static", STATIC, follow_symlinks=False),
    ])
    return app


# -- middleware ----------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _domain_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Domain errors to their HTTP status, through the one table; logged with the route's pattern
    (`/api/overrides/{id}`), not the path, and no token in the error's text."""
    try:
        return await handler(request)
    except RiskBudgetError as error:
        response = error_response(error)
        route = request.match_info.route.resource
        log.info("http_refused", method=request.method, status=response.status,
                 path=route.canonical if route is not None else "(no route)",
                 error=request.app[AUTH].redact(str(error)))
        return response


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    response.headers.update(SECURITY_HEADERS)
    response.headers.setdefault("Cache-Control", "no-store" if not request.path.startswith("/static/")
                                else "no-cache")
    if isinstance(response, web.HTTPException):
        raise response
    return response


@web.middleware
async def _loopback_host(request: web.Request, handler: Handler) -> web.StreamResponse:
    """On a loopback listener, only a loopback Host: a page elsewhere cannot rebind a name to it."""
    try:
        host = request.url.host or ""
    except ValueError:
        host = ""
    if not _is_loopback(host):
        return web.json_response({"error": f"host {request.host!r} is not served here",
                                  "field_violations": []}, status=421)
    return await handler(request)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# -- routes --------------------------------------------------------------------------------

class _Routes:
    def __init__(self, sidecar: RiskBudgetSidecar, health: HealthView, auth: AdminAuth) -> None:
        self._sidecar = sidecar
        self._health = health
        self._auth = auth

    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def metrics(self, request: web.Request) -> web.Response:
        self._check_read(request, "metrics")
        with contextlib.suppress(NotReady):  # before the first budget: the metrics as they are
            self._sidecar.refresh_metrics()
        return web.Response(body=generate_latest(self._sidecar.metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(self, request: web.Request) -> web.Response:
        """Liveness: the process serves until its shutdown begins."""
        alive = not self._health.shutting_down
        return web.json_response({"status": "ok" if alive else "shutting_down"}, status=200 if alive else 503)

    async def readyz(self, request: web.Request) -> web.Response:
        """Readiness: exactly what grpc.health.v1 says."""
        serving = self._health.serving and not self._health.shutting_down
        return web.json_response({"status": "SERVING" if serving else "NOT_SERVING"},
                                 status=200 if serving else 503)

    async def status(self, request: web.Request) -> web.Response:
        self._check_read(request, "status")
        return web.json_response(status(self._sidecar), dumps=_dumps)

    def _check_read(self, request: web.Request, action: str) -> None:
        self._auth.check_read(request.headers.getall("Authorization", []), action=f"http {action}",
                              peer=f"http:{request.remote}")

    # -- controls: the admin RPCs' requests as JSON, the same checks and calls ---------------

    async def set_override(self, request: web.Request) -> web.Response:
        body = await self._admin_body(request, "SetOverride")
        expires_in = body.pop("expires_in", None)
        message = self._request(body, admin_pb.SetOverrideRequest)
        if expires_in is None:
            override = await self._sidecar.set_override(convert.override_request(message))
        else:
            self._apply_expires_in(message, expires_in)
            try:
                override = await self._sidecar.set_override(convert.override_request(message))
            except InvalidInput as refused:  # the expires_at it refuses is the one expires_in gave
                raise InvalidInput([
                    ("expires_in", f"is too short: {expires_in:g} s from now had passed when the "
                                   "override was set") if field == "override.expires_at" else (field, problem)
                    for field, problem in refused.violations]) from None
        return _reply(admin_pb.SetOverrideResponse(override=convert.override(override)))

    def _apply_expires_in(self, message: admin_pb.SetOverrideRequest, expires_in: Any) -> None:
        """HTTP's one convenience: `expires_in` seconds from the sidecar's now, as override.expires_at."""
        if (isinstance(expires_in, bool) or not isinstance(expires_in, (int, float))
                or not 0 < expires_in <= convert.MAX_EXPIRES_IN or not math.isfinite(expires_in)):
            raise InvalidInput([("expires_in", f"must be a number of seconds in (0, {convert.MAX_EXPIRES_IN:,.0f}]")])
        if message.override.HasField("expires_at"):
            raise InvalidInput([("expires_in", "give expires_in or override.expires_at, not both")])
        message.override.expires_at.CopyFrom(convert.timestamp(self._sidecar.now() + expires_in))

    async def clear_override(self, request: web.Request) -> web.Response:
        body = await self._admin_body(request, "ClearOverride")
        message = self._request({**body, "id": request.match_info["id"]}, admin_pb.ClearOverrideRequest)
        cleared = await self._sidecar.clear_override(
            convert.override_id(message), cleared_by=message.cleared_by, reason=message.reason)
        return _reply(admin_pb.ClearOverrideResponse(cleared=cleared))

    async def set_trading_state(self, request: web.Request) -> web.Response:
        message = self._request(await self._admin_body(request, "SetTradingState"), admin_pb.SetTradingStateRequest)
        state, strategy = convert.trading_state_request(message)
        await self._sidecar.set_trading_state(state, strategy, set_by=message.set_by, reason=message.reason)
        return _reply(admin_pb.SetTradingStateResponse(
            state=convert.TRADING_STATE_TO_PB[state], strategy=strategy or "",
            set_at=convert.timestamp(self._sidecar.now())))

    async def trigger_rebalance(self, request: web.Request) -> web.Response:
        message = self._request(await self._admin_body(request, "TriggerRebalance"), admin_pb.TriggerRebalanceRequest)
        recommendation = self._sidecar.trigger_rebalance(*convert.rebalance_request(message))
        return _reply(admin_pb.TriggerRebalanceResponse(recommendation=convert.recommendation(recommendation)))

    def _request(self, body: dict[str, Any], message_type: type[Message]) -> Any:
        """The body as the admin call's request, refused (as gRPC refuses it) if its text holds a token."""
        message = _parse(body, message_type, self._auth.redact)
        self._auth.refuse_tokens_in(message)
        return message

    async def _admin_body(self, request: web.Request, action: str) -> dict[str, Any]:
        """The token first (as gRPC does), then the body: a JSON object, or nothing."""
        self._auth.check_all(request.headers.getall("Authorization", []), action=action, peer=f"http:{request.remote}")
        if not request.can_read_body:
            return {}
        try:
            body = json.loads(await request.read() or b"{}")
        except RequestPayloadError as error:  # a body aiohttp could not decode (bad gzip, say)
            raise InvalidInput([("body", f"cannot be read: {type(error).__name__}")]) from None
        except (ValueError, UnicodeDecodeError) as error:
            raise InvalidInput([("body", f"is not valid JSON: {error}")]) from None
        except RecursionError:  # arrays or objects nested deeper than the parser's stack
            raise InvalidInput([("body", "is not valid JSON: nested too deeply")]) from None
        if not isinstance(body, dict):
            raise InvalidInput([("body", "must be a JSON object")])
        return body


def _parse(body: dict[str, Any], message_type: type[Message], redact: Callable[[str], str]) -> Any:
    """The body as `message_type`; a parser's refusal quotes what it refused (a field's name, an
    enum's value), redacted before it is clipped (found by a reviewer: a clipped token was no
    longer the token, and went into the log)."""
    try:
        return json_format.ParseDict(body, message_type())
    except json_format.ParseError as error:
        raise parse_error_input(json_format.ParseError(redact(str(error)))) from None
    except OverflowError:  # a number past a double's range (1e999): a 500 before, found by a tester
        raise InvalidInput([("body", "holds a number too large for its field")]) from None


def _reply(message: Message) -> web.Response:
    return web.json_response(as_json(message), dumps=_dumps)


def _dumps(value: Any) -> str:
    """JSON without NaN or Infinity (not JSON): such a number becomes null."""
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value
