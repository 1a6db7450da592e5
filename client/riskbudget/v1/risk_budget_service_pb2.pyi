import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from riskbudget.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetBudgetRequest(_message.Message):
    __slots__ = ("strategy",)
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    strategy: str
    def __init__(self, strategy: _Optional[str] = ...) -> None: ...

class GetBudgetResponse(_message.Message):
    __slots__ = ("budget",)
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    budget: _types_pb2.Budget
    def __init__(self, budget: _Optional[_Union[_types_pb2.Budget, _Mapping]] = ...) -> None: ...

class GetUtilizationRequest(_message.Message):
    __slots__ = ("strategy",)
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    strategy: str
    def __init__(self, strategy: _Optional[str] = ...) -> None: ...

class GetUtilizationResponse(_message.Message):
    __slots__ = ("budget", "total", "strategies", "symbols", "near_limit_fraction", "as_of")
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    STRATEGIES_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    NEAR_LIMIT_FRACTION_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    budget: _types_pb2.BudgetRef
    total: _types_pb2.Usage
    strategies: _containers.RepeatedCompositeFieldContainer[_types_pb2.StrategyUtilization]
    symbols: _containers.RepeatedCompositeFieldContainer[_types_pb2.SymbolUtilization]
    near_limit_fraction: float
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, budget: _Optional[_Union[_types_pb2.BudgetRef, _Mapping]] = ..., total: _Optional[_Union[_types_pb2.Usage, _Mapping]] = ..., strategies: _Optional[_Iterable[_Union[_types_pb2.StrategyUtilization, _Mapping]]] = ..., symbols: _Optional[_Iterable[_Union[_types_pb2.SymbolUtilization, _Mapping]]] = ..., near_limit_fraction: _Optional[float] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CheckTradeRequest(_message.Message):
    __slots__ = ("client_order_id", "strategy", "symbol", "side", "quantity", "limit_price", "dry_run")
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    client_order_id: str
    strategy: str
    symbol: str
    side: _types_pb2.Side
    quantity: float
    limit_price: float
    dry_run: bool
    def __init__(self, client_order_id: _Optional[str] = ..., strategy: _Optional[str] = ..., symbol: _Optional[str] = ..., side: _Optional[_Union[_types_pb2.Side, str]] = ..., quantity: _Optional[float] = ..., limit_price: _Optional[float] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class CheckTradeResponse(_message.Message):
    __slots__ = ("client_order_id", "decision", "requested_quantity", "approved_quantity", "reasons", "budget", "reserved", "reservation_expires_at", "reduces_exposure", "shadow_decision", "replayed", "reference_price", "override_ids")
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    APPROVED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REDUCES_EXPOSURE_FIELD_NUMBER: _ClassVar[int]
    SHADOW_DECISION_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_PRICE_FIELD_NUMBER: _ClassVar[int]
    OVERRIDE_IDS_FIELD_NUMBER: _ClassVar[int]
    client_order_id: str
    decision: _types_pb2.Decision
    requested_quantity: float
    approved_quantity: float
    reasons: _containers.RepeatedCompositeFieldContainer[_types_pb2.Reason]
    budget: _types_pb2.BudgetRef
    reserved: bool
    reservation_expires_at: _timestamp_pb2.Timestamp
    reduces_exposure: bool
    shadow_decision: _types_pb2.Decision
    replayed: bool
    reference_price: float
    override_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, client_order_id: _Optional[str] = ..., decision: _Optional[_Union[_types_pb2.Decision, str]] = ..., requested_quantity: _Optional[float] = ..., approved_quantity: _Optional[float] = ..., reasons: _Optional[_Iterable[_Union[_types_pb2.Reason, _Mapping]]] = ..., budget: _Optional[_Union[_types_pb2.BudgetRef, _Mapping]] = ..., reserved: _Optional[bool] = ..., reservation_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reduces_exposure: _Optional[bool] = ..., shadow_decision: _Optional[_Union[_types_pb2.Decision, str]] = ..., replayed: _Optional[bool] = ..., reference_price: _Optional[float] = ..., override_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class StreamRecommendationsRequest(_message.Message):
    __slots__ = ("after_sequence", "from_latest", "log_id")
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    FROM_LATEST_FIELD_NUMBER: _ClassVar[int]
    LOG_ID_FIELD_NUMBER: _ClassVar[int]
    after_sequence: int
    from_latest: bool
    log_id: str
    def __init__(self, after_sequence: _Optional[int] = ..., from_latest: _Optional[bool] = ..., log_id: _Optional[str] = ...) -> None: ...

class StreamRecommendationsResponse(_message.Message):
    __slots__ = ("recommendations", "log_id")
    RECOMMENDATIONS_FIELD_NUMBER: _ClassVar[int]
    LOG_ID_FIELD_NUMBER: _ClassVar[int]
    recommendations: _containers.RepeatedCompositeFieldContainer[_types_pb2.Recommendation]
    log_id: str
    def __init__(self, recommendations: _Optional[_Iterable[_Union[_types_pb2.Recommendation, _Mapping]]] = ..., log_id: _Optional[str] = ...) -> None: ...

class PublishMarketDataRequest(_message.Message):
    __slots__ = ("ticks",)
    TICKS_FIELD_NUMBER: _ClassVar[int]
    ticks: _containers.RepeatedCompositeFieldContainer[_types_pb2.PriceTick]
    def __init__(self, ticks: _Optional[_Iterable[_Union[_types_pb2.PriceTick, _Mapping]]] = ...) -> None: ...

class PublishMarketDataResponse(_message.Message):
    __slots__ = ("accepted", "budget")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    budget: _types_pb2.BudgetRef
    def __init__(self, accepted: _Optional[int] = ..., budget: _Optional[_Union[_types_pb2.BudgetRef, _Mapping]] = ...) -> None: ...

class StreamMarketDataRequest(_message.Message):
    __slots__ = ("ticks",)
    TICKS_FIELD_NUMBER: _ClassVar[int]
    ticks: _containers.RepeatedCompositeFieldContainer[_types_pb2.PriceTick]
    def __init__(self, ticks: _Optional[_Iterable[_Union[_types_pb2.PriceTick, _Mapping]]] = ...) -> None: ...

class StreamMarketDataResponse(_message.Message):
    __slots__ = ("accepted", "budget")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    budget: _types_pb2.BudgetRef
    def __init__(self, accepted: _Optional[int] = ..., budget: _Optional[_Union[_types_pb2.BudgetRef, _Mapping]] = ...) -> None: ...

class ReportFillRequest(_message.Message):
    __slots__ = ("client_order_id", "strategy", "symbol", "side", "quantity", "price", "time", "execution_id")
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    client_order_id: str
    strategy: str
    symbol: str
    side: _types_pb2.Side
    quantity: float
    price: float
    time: _timestamp_pb2.Timestamp
    execution_id: str
    def __init__(self, client_order_id: _Optional[str] = ..., strategy: _Optional[str] = ..., symbol: _Optional[str] = ..., side: _Optional[_Union[_types_pb2.Side, str]] = ..., quantity: _Optional[float] = ..., price: _Optional[float] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., execution_id: _Optional[str] = ...) -> None: ...

class ReportFillResponse(_message.Message):
    __slots__ = ("position", "reserved_quantity_remaining", "replayed")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    RESERVED_QUANTITY_REMAINING_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    position: _types_pb2.Position
    reserved_quantity_remaining: float
    replayed: bool
    def __init__(self, position: _Optional[_Union[_types_pb2.Position, _Mapping]] = ..., reserved_quantity_remaining: _Optional[float] = ..., replayed: _Optional[bool] = ...) -> None: ...

class SetPositionsRequest(_message.Message):
    __slots__ = ("strategy", "positions")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    strategy: str
    positions: _containers.RepeatedCompositeFieldContainer[_types_pb2.Position]
    def __init__(self, strategy: _Optional[str] = ..., positions: _Optional[_Iterable[_Union[_types_pb2.Position, _Mapping]]] = ...) -> None: ...

class SetPositionsResponse(_message.Message):
    __slots__ = ("positions",)
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    positions: int
    def __init__(self, positions: _Optional[int] = ...) -> None: ...

class ReleaseOrderRequest(_message.Message):
    __slots__ = ("client_order_id",)
    CLIENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    client_order_id: str
    def __init__(self, client_order_id: _Optional[str] = ...) -> None: ...

class ReleaseOrderResponse(_message.Message):
    __slots__ = ("released",)
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    released: bool
    def __init__(self, released: _Optional[bool] = ...) -> None: ...

class ListAlertsRequest(_message.Message):
    __slots__ = ("limit", "min_severity")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    MIN_SEVERITY_FIELD_NUMBER: _ClassVar[int]
    limit: int
    min_severity: _types_pb2.AlertSeverity
    def __init__(self, limit: _Optional[int] = ..., min_severity: _Optional[_Union[_types_pb2.AlertSeverity, str]] = ...) -> None: ...

class ListAlertsResponse(_message.Message):
    __slots__ = ("alerts",)
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[_types_pb2.Alert]
    def __init__(self, alerts: _Optional[_Iterable[_Union[_types_pb2.Alert, _Mapping]]] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RegimePeriod(_message.Message):
    __slots__ = ("regime", "since")
    REGIME_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    regime: _types_pb2.Regime
    since: _timestamp_pb2.Timestamp
    def __init__(self, regime: _Optional[_Union[_types_pb2.Regime, str]] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("budget", "regime_history", "regime_response_seconds", "last_recommendation_sequence", "oldest_recommendation_sequence", "subscribers", "decision_log_backlog", "decision_log_overflowed", "active_overrides", "recommendation_log_id")
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    REGIME_HISTORY_FIELD_NUMBER: _ClassVar[int]
    REGIME_RESPONSE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LAST_RECOMMENDATION_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    OLDEST_RECOMMENDATION_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIBERS_FIELD_NUMBER: _ClassVar[int]
    DECISION_LOG_BACKLOG_FIELD_NUMBER: _ClassVar[int]
    DECISION_LOG_OVERFLOWED_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    RECOMMENDATION_LOG_ID_FIELD_NUMBER: _ClassVar[int]
    budget: _types_pb2.BudgetRef
    regime_history: _containers.RepeatedCompositeFieldContainer[RegimePeriod]
    regime_response_seconds: _containers.RepeatedScalarFieldContainer[float]
    last_recommendation_sequence: int
    oldest_recommendation_sequence: int
    subscribers: int
    decision_log_backlog: int
    decision_log_overflowed: int
    active_overrides: int
    recommendation_log_id: str
    def __init__(self, budget: _Optional[_Union[_types_pb2.BudgetRef, _Mapping]] = ..., regime_history: _Optional[_Iterable[_Union[RegimePeriod, _Mapping]]] = ..., regime_response_seconds: _Optional[_Iterable[float]] = ..., last_recommendation_sequence: _Optional[int] = ..., oldest_recommendation_sequence: _Optional[int] = ..., subscribers: _Optional[int] = ..., decision_log_backlog: _Optional[int] = ..., decision_log_overflowed: _Optional[int] = ..., active_overrides: _Optional[int] = ..., recommendation_log_id: _Optional[str] = ...) -> None: ...
