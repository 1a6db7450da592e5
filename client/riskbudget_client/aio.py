"""The asyncio client of the risk-budget sidecar."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from types import TracebackType
from typing import Any

import grpc
from google.protobuf.message import Message

from riskbudget.v1 import risk_budget_admin_pb2 as admin_pb2
from riskbudget.v1 import risk_budget_admin_pb2_grpc as admin_grpc
from riskbudget.v1 import risk_budget_service_pb2 as service_pb2
from riskbudget.v1 import risk_budget_service_pb2_grpc as service_grpc
from riskbudget.v1 import types_pb2
from riskbudget_client import _common
from riskbudget_client._common import PositionRow, RiskBudgetError, Tick


class AsyncRiskBudgetClient:
    """Calls the sidecar at `target` (`"127.0.0.1:50051"` or `"unix:/path"`).
    Build it inside the event loop that will use it.

    `check_trade` fails closed: it never raises for a failed call and never
    approves on one. Every other method raises `RiskBudgetError` when the call
    fails. `admin_token` is sent on admin calls only, `client_token` on every
    other call (needed when the sidecar has a client token configured).
    `credentials` (e.g. `grpc.ssl_channel_credentials(root_certificates=...)`)
    makes the channel TLS, for a sidecar listening off loopback; with it,
    `tls_server_name` is the name the sidecar's certificate must carry when
    the target's host is not on it (a tunnel, or an address it does not name).
    """

    def __init__(
        self,
        target: str,
        *,
        admin_token: str | None = None,
        client_token: str | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        tls_server_name: str | None = None,
        check_trade_timeout: float = _common.DEFAULT_CHECK_TRADE_TIMEOUT,
        timeout: float = _common.DEFAULT_TIMEOUT,
    ) -> None:
        self._check_trade_timeout = _common.positive_seconds(
            check_trade_timeout, "check_trade_timeout"
        )
        self._timeout = _common.positive_seconds(timeout, "timeout")
        self._admin_metadata = _common.admin_metadata(admin_token)
        self._client_metadata = _common.client_metadata(client_token)
        options = _common.channel_options(credentials, tls_server_name)
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        else:
            self._channel = grpc.aio.secure_channel(target, credentials, options=options)
        self._service = service_grpc.RiskBudgetServiceStub(self._channel)
        self._admin = admin_grpc.RiskBudgetAdminServiceStub(self._channel)

    async def __aenter__(self) -> AsyncRiskBudgetClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def get_budget(self, strategy: str = "") -> service_pb2.GetBudgetResponse:
        request = service_pb2.GetBudgetRequest(strategy=strategy)
        return await self._call(self._service, "GetBudget", request)

    async def get_utilization(self, strategy: str = "") -> service_pb2.GetUtilizationResponse:
        request = service_pb2.GetUtilizationRequest(strategy=strategy)
        return await self._call(self._service, "GetUtilization", request)

    async def check_trade(
        self,
        client_order_id: str,
        strategy: str,
        symbol: str,
        side: str | int,
        quantity: float,
        limit_price: float = 0.0,
        dry_run: bool = False,
    ) -> service_pb2.CheckTradeResponse:
        """The sidecar's decision, or the client's own rejection (reason
        SIDECAR_UNAVAILABLE) when the call fails, the reply is malformed or
        comes after the deadline; reason INVALID_REQUEST when the sidecar
        refused the order as malformed.

        After a timeout the sidecar may still have reserved the order; the
        reservation lapses at expiry or on `release_order`.
        """
        request = _common.check_trade_request(
            client_order_id, strategy, symbol, side, quantity, limit_price, dry_run
        )
        started = time.monotonic()
        try:
            reply = await self._service.CheckTrade(
                request, timeout=self._check_trade_timeout, metadata=self._client_metadata
            )
        except grpc.RpcError as error:
            return _common.failed_call_rejection(request, error)
        except grpc.aio.UsageError as error:  # the client was closed
            return _common.rejection(request, f"sidecar call failed: {error}")
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # this task is being cancelled: let it
                raise
            return _common.rejection(request, "sidecar call failed: the client was closed during the call")
        return _common.vetted_in_time(request, reply, started, self._check_trade_timeout)

    async def publish_market_data(
        self, ticks: Iterable[Tick]
    ) -> service_pb2.PublishMarketDataResponse:
        """Send `(symbol, price, time)` ticks; a time is a timezone-aware datetime
        or epoch seconds."""
        request = _common.publish_market_data_request(ticks)
        return await self._call(self._service, "PublishMarketData", request)

    async def report_fill(
        self,
        client_order_id: str,
        strategy: str,
        symbol: str,
        side: str | int,
        quantity: float,
        price: float,
        time: datetime | float,
        execution_id: str = "",
    ) -> service_pb2.ReportFillResponse:
        """Report a fill; `time` is a timezone-aware datetime or epoch seconds. With the
        venue's `execution_id`, a retry of the fill is applied once (`replayed` in the reply)."""
        request = _common.report_fill_request(
            client_order_id, strategy, symbol, side, quantity, price, time, execution_id
        )
        return await self._call(self._service, "ReportFill", request)

    async def set_positions(
        self, positions: Iterable[PositionRow], strategy: str = ""
    ) -> service_pb2.SetPositionsResponse:
        """Replace the positions of the book, or of `strategy`, with
        `(strategy, symbol, signed quantity)` rows."""
        request = _common.set_positions_request(positions, strategy)
        return await self._call(self._service, "SetPositions", request)

    async def release_order(self, client_order_id: str) -> service_pb2.ReleaseOrderResponse:
        request = service_pb2.ReleaseOrderRequest(client_order_id=client_order_id)
        return await self._call(self._service, "ReleaseOrder", request)

    def stream_recommendations(
        self, after_sequence: int = 0, from_latest: bool = False, log_id: str = ""
    ) -> AsyncIterator[types_pb2.Recommendation]:
        """Recommendations after `after_sequence`, then live ones, one at a time;
        with `from_latest`, only those created from now on. With `log_id`, a
        sequence of another log (a replaced state file) is refused as out of range.

        The stream has no deadline; stop iterating (or `aclose()` the iterator)
        to cancel it. A failure raises `RiskBudgetError`;
        `AsyncRecommendationFeed` reconnects and resumes instead.
        """
        request = _common.stream_recommendations_request(after_sequence, from_latest, log_id)
        return self._recommendations(request)

    async def _recommendations(
        self, request: service_pb2.StreamRecommendationsRequest
    ) -> AsyncIterator[types_pb2.Recommendation]:
        call = self._open_recommendation_stream(request)
        try:
            async for batch in call:
                for recommendation in batch.recommendations:
                    yield recommendation
        except grpc.RpcError as error:
            raise RiskBudgetError.from_rpc_error("StreamRecommendations", error) from error
        finally:
            call.cancel()

    def _open_recommendation_stream(
        self, request: service_pb2.StreamRecommendationsRequest
    ) -> Any:
        """The raw call (`await call.read()` gives a batch or `grpc.aio.EOF`):
        what `AsyncRecommendationFeed` reads."""
        return self._service.StreamRecommendations(request, metadata=self._client_metadata)

    async def list_alerts(
        self, limit: int = 0, min_severity: str | int | None = None
    ) -> service_pb2.ListAlertsResponse:
        """Recent alerts, newest first: at most `limit` (0: the sidecar's default,
        100), only those at least as severe as `min_severity` (`"info"`,
        `"warning"`, `"critical"` or an AlertSeverity value; None: all)."""
        request = _common.list_alerts_request(limit, min_severity)
        return await self._call(self._service, "ListAlerts", request)

    async def get_status(self) -> service_pb2.GetStatusResponse:
        """The sidecar's own state: regime history, response times, the
        recommendation log's bounds, subscribers, decision-log backlog."""
        return await self._call(self._service, "GetStatus", service_pb2.GetStatusRequest())

    async def set_trading_state(
        self, state: str | int, strategy: str = "", reason: str = "", set_by: str = ""
    ) -> admin_pb2.SetTradingStateResponse:
        """Set the trading state (`"active"`, `"reducing"`, `"halted"`) of the
        book, or of `strategy`."""
        request = _common.set_trading_state_request(state, strategy, reason, set_by)
        return await self._call(self._admin, "SetTradingState", request)

    async def set_override(
        self,
        scope: str | int,
        kind: str | int,
        target: str = "",
        value: float = 0.0,
        regime: str | int | None = None,
        set_by: str = "",
        reason: str = "",
        expires_at: datetime | float | None = None,
    ) -> admin_pb2.SetOverrideResponse:
        """Override the budget. Scope, kind and regime take enum values or names
        without their prefix (`"strategy"`, `"cap_leverage"`, `"crisis"`);
        `regime` is for the force_regime kind; no `expires_at`, no expiry."""
        request = _common.set_override_request(
            scope, kind, target, value, regime, set_by, reason, expires_at
        )
        return await self._call(self._admin, "SetOverride", request)

    async def clear_override(
        self, override_id: str, cleared_by: str = "", reason: str = ""
    ) -> admin_pb2.ClearOverrideResponse:
        request = admin_pb2.ClearOverrideRequest(
            id=override_id, cleared_by=cleared_by, reason=reason
        )
        return await self._call(self._admin, "ClearOverride", request)

    async def list_overrides(self) -> admin_pb2.ListOverridesResponse:
        return await self._call(self._admin, "ListOverrides", admin_pb2.ListOverridesRequest())

    async def trigger_rebalance(
        self, reason: str, requested_by: str
    ) -> admin_pb2.TriggerRebalanceResponse:
        request = admin_pb2.TriggerRebalanceRequest(reason=reason, requested_by=requested_by)
        return await self._call(self._admin, "TriggerRebalance", request)

    async def reload_config(self, requested_by: str = "") -> admin_pb2.ReloadConfigResponse:
        """Reload the sidecar's config file; `requested_by`, who asks, is required (as every
        admin change's actor: the sidecar refuses an empty one)."""
        return await self._call(self._admin, "ReloadConfig", admin_pb2.ReloadConfigRequest(requested_by=requested_by))

    async def _call(self, stub: object, method: str, request: Message) -> Any:
        # Admin calls carry the admin token, the others the client token.
        metadata = self._admin_metadata if stub is self._admin else self._client_metadata
        try:
            return await getattr(stub, method)(request, timeout=self._timeout, metadata=metadata)
        except grpc.RpcError as error:
            raise RiskBudgetError.from_rpc_error(method, error) from error
