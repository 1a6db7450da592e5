"""gRPC servicers: each method converts, calls the sidecar, converts back."""

from __future__ import annotations

from typing import AsyncIterator

from riskbudget.v1 import risk_budget_admin_pb2 as admin_pb
from riskbudget.v1 import risk_budget_admin_pb2_grpc as admin_grpc
from riskbudget.v1 import risk_budget_service_pb2 as service_pb
from riskbudget.v1 import risk_budget_service_pb2_grpc as service_grpc

from ..service.errors import ConfigRefused, InvalidInput, RecommendationTooLarge, RecommendationTooLargeToStream
from ..service.sidecar import RiskBudgetSidecar
from . import converters as convert
from .auth import AdminAuth
from .errors import mapped_errors, mapped_stream_errors
from .parsing import refuse_unparsable
from .stream_slots import OpenStreams

STREAM_MESSAGE_BYTES = 1024 * 1024
"""The most a stream message packs (a larger recommendation still goes alone): gRPC clients
take at most 4 MiB by default, whatever `sidecar.max_message_bytes` lets this server send."""
CLIENT_RECEIVE_BYTES = 4 * 1024 * 1024
"""What gRPC clients (ours, in Python and Node, among them) receive by default: a recommendation
larger than this fails at the client, which takes it for a passing failure and retries forever
(found by a reviewer), so it is refused here as it is past `sidecar.max_message_bytes`."""


def largest_message(sidecar: RiskBudgetSidecar) -> int:
    """The most bytes a reply may take and reach its client."""
    return min(sidecar.config.sidecar.max_message_bytes, CLIENT_RECEIVE_BYTES)


class RiskBudgetServicer(service_grpc.RiskBudgetServiceServicer):
    def __init__(self, sidecar: RiskBudgetSidecar, auth: AdminAuth, recommendation_streams: OpenStreams) -> None:
        self._sidecar = sidecar
        self._auth = auth
        self._recommendations = convert.ConvertedRecommendations()
        self._recommendation_streams = recommendation_streams

    @mapped_errors
    async def GetBudget(self, request, context):
        strategy = convert.optional_strategy(request.strategy)
        if strategy is not None:
            self._sidecar.require_strategy(strategy)
        return service_pb.GetBudgetResponse(budget=self._budget(strategy))

    def _budget(self, strategy: str | None):
        snapshot = self._sidecar.require_snapshot()
        states = {name: self._sidecar.strategy_trading_state(name) for name in snapshot.strategies}
        return convert.budget(snapshot, book_state=self._sidecar.trading_state(),
                              strategy_states=states, strategy=strategy, checked_price=self._sidecar.checked_price)

    @mapped_errors
    async def GetUtilization(self, request, context):
        report = self._sidecar.utilization(convert.optional_strategy(request.strategy))
        return convert.utilization(report, self._sidecar.require_snapshot())

    @mapped_errors
    async def CheckTrade(self, request, context):
        return convert.trade_decision(await self._sidecar.check_trade(convert.check_trade_request(request)))

    @mapped_errors
    async def PublishMarketData(self, request, context):
        accepted, snapshot = await self._sidecar.publish_prices(
            convert.price_ticks(request.ticks, self._sidecar.universe, now=self._sidecar.now()))
        return service_pb.PublishMarketDataResponse(accepted=accepted, budget=convert.budget_ref(snapshot))

    @mapped_errors
    async def StreamMarketData(self, request_iterator: AsyncIterator, context):
        accepted, snapshot, batch_number = 0, self._sidecar.snapshot, 0
        async for batch in request_iterator:
            batch_number += 1
            refuse_unparsable(batch)
            self._auth.require_client_still(context)
            try:
                ticks = convert.price_ticks(batch.ticks, self._sidecar.universe, now=self._sidecar.now())
            except InvalidInput as refused:  # the batches before it stay applied: say so
                raise InvalidInput([(field, f"{problem} (in batch {batch_number} of the stream; the batches "
                                            f"before it stand, {accepted} ticks applied)")
                                    for field, problem in refused.violations]) from None
            count, snapshot = await self._sidecar.publish_prices(ticks)
            accepted += count
        return service_pb.StreamMarketDataResponse(accepted=accepted, budget=convert.budget_ref(snapshot))

    @mapped_errors
    async def ReportFill(self, request, context):
        position, remaining, replayed = await self._sidecar.report_fill(convert.fill(request))
        return service_pb.ReportFillResponse(position=convert.position(position),
                                             reserved_quantity_remaining=remaining, replayed=replayed)

    @mapped_errors
    async def SetPositions(self, request, context):
        positions, strategy = convert.positions(request)
        return service_pb.SetPositionsResponse(positions=await self._sidecar.set_positions(positions, strategy))

    @mapped_errors
    async def ReleaseOrder(self, request, context):
        released = await self._sidecar.release_order(convert.order_id(request.client_order_id))
        return service_pb.ReleaseOrderResponse(released=released)

    @mapped_stream_errors
    async def StreamRecommendations(self, request, context):
        limit = largest_message(self._sidecar)
        max_bytes = min(self._sidecar.config.sidecar.max_message_bytes // 2, STREAM_MESSAGE_BYTES)
        sidecar = self._sidecar
        async with self._recommendation_streams.slot(context):
            async for batch in sidecar.subscribe(request.after_sequence, from_latest=request.from_latest,
                                                 log_id=convert.log_id(request.log_id)):
                for message in convert.recommendation_messages(batch, max_bytes, self._recommendations):
                    message.log_id = sidecar.recommendation_log_id
                    if len(message.recommendations) == 1 and (size := message.ByteSize()) > limit:
                        raise RecommendationTooLargeToStream(message.recommendations[0].sequence, size, limit)
                    yield message

    @mapped_errors
    async def ListAlerts(self, request, context):
        limit, severity = convert.alerts_request(request)
        return service_pb.ListAlertsResponse(
            alerts=[convert.alert(a) for a in self._sidecar.alerts.recent(limit, severity)])

    @mapped_errors
    async def GetStatus(self, request, context):
        sidecar = self._sidecar
        oldest, newest = sidecar.store.recommendation_bounds()
        backlog, overflowed = sidecar.store.decision_log_stats()
        return service_pb.GetStatusResponse(
            budget=convert.budget_ref(sidecar.snapshot),
            regime_history=[convert.regime_period(r, since) for r, since in sidecar.regime_history],
            regime_response_seconds=list(sidecar.regime_response_seconds),
            last_recommendation_sequence=newest, oldest_recommendation_sequence=oldest,
            subscribers=sidecar.hub.subscriber_count, decision_log_backlog=backlog,
            decision_log_overflowed=overflowed, active_overrides=len(sidecar.overrides),
            recommendation_log_id=sidecar.recommendation_log_id)


class RiskBudgetAdminServicer(admin_grpc.RiskBudgetAdminServiceServicer):
    """Operator calls: each needs the admin token, and each is audited."""

    def __init__(self, sidecar: RiskBudgetSidecar, auth: AdminAuth) -> None:
        self._sidecar = sidecar
        self._auth = auth

    @mapped_errors
    async def SetTradingState(self, request, context):
        self._auth.require_admin(context, "SetTradingState", request)
        state, strategy = convert.trading_state_request(request)
        await self._sidecar.set_trading_state(state, strategy, set_by=request.set_by, reason=request.reason)
        return admin_pb.SetTradingStateResponse(
            state=convert.TRADING_STATE_TO_PB[state], strategy=strategy or "",
            set_at=convert.timestamp(self._sidecar.now()))

    @mapped_errors
    async def TriggerRebalance(self, request, context):
        self._auth.require_admin(context, "TriggerRebalance", request)
        recommendation = self._sidecar.trigger_rebalance(*convert.rebalance_request(request))
        reply = admin_pb.TriggerRebalanceResponse(recommendation=convert.recommendation(recommendation))
        if (size := reply.ByteSize()) > (limit := largest_message(self._sidecar)):
            raise RecommendationTooLarge(recommendation.sequence, size, limit)
        return reply

    @mapped_errors
    async def SetOverride(self, request, context):
        self._auth.require_admin(context, "SetOverride", request)
        override = await self._sidecar.set_override(convert.override_request(request))
        return admin_pb.SetOverrideResponse(override=convert.override(override))

    @mapped_errors
    async def ClearOverride(self, request, context):
        self._auth.require_admin(context, "ClearOverride", request)
        cleared = await self._sidecar.clear_override(
            convert.override_id(request), cleared_by=request.cleared_by, reason=request.reason)
        return admin_pb.ClearOverrideResponse(cleared=cleared)

    @mapped_errors
    async def ListOverrides(self, request, context):
        self._auth.require_admin(context, "ListOverrides", request)
        return admin_pb.ListOverridesResponse(overrides=[convert.override(o) for o in self._sidecar.overrides])

    @mapped_errors
    async def ReloadConfig(self, request, context):
        self._auth.require_admin(context, "ReloadConfig", request)
        requested_by = convert.reload_request(request)
        try:
            snapshot = await self._sidecar.reload_config(requested_by)
        except ConfigRefused as refused:
            return admin_pb.ReloadConfigResponse(reloaded=False, errors=refused.errors,
                                                 budget=convert.budget_ref(self._sidecar.snapshot))
        return admin_pb.ReloadConfigResponse(reloaded=True, budget=convert.budget_ref(snapshot))
