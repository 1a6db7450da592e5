import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Regime(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REGIME_UNSPECIFIED: _ClassVar[Regime]
    REGIME_BULL: _ClassVar[Regime]
    REGIME_BEAR: _ClassVar[Regime]
    REGIME_CRISIS: _ClassVar[Regime]

class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_UNSPECIFIED: _ClassVar[Decision]
    DECISION_APPROVED: _ClassVar[Decision]
    DECISION_RESIZED: _ClassVar[Decision]
    DECISION_REJECTED: _ClassVar[Decision]

class Side(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIDE_UNSPECIFIED: _ClassVar[Side]
    SIDE_BUY: _ClassVar[Side]
    SIDE_SELL: _ClassVar[Side]

class TradingState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRADING_STATE_UNSPECIFIED: _ClassVar[TradingState]
    TRADING_STATE_ACTIVE: _ClassVar[TradingState]
    TRADING_STATE_REDUCING: _ClassVar[TradingState]
    TRADING_STATE_HALTED: _ClassVar[TradingState]

class ReasonCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REASON_CODE_UNSPECIFIED: _ClassVar[ReasonCode]
    REASON_CODE_SYMBOL_POSITION_LIMIT: _ClassVar[ReasonCode]
    REASON_CODE_STRATEGY_EXPOSURE_LIMIT: _ClassVar[ReasonCode]
    REASON_CODE_TOTAL_LEVERAGE_LIMIT: _ClassVar[ReasonCode]
    REASON_CODE_MAX_ORDER_NOTIONAL: _ClassVar[ReasonCode]
    REASON_CODE_PRICE_COLLAR: _ClassVar[ReasonCode]
    REASON_CODE_RESTRICTED_SYMBOL: _ClassVar[ReasonCode]
    REASON_CODE_TRADING_HALTED: _ClassVar[ReasonCode]
    REASON_CODE_TRADING_REDUCING: _ClassVar[ReasonCode]
    REASON_CODE_STALE_MARKET_DATA: _ClassVar[ReasonCode]
    REASON_CODE_UNKNOWN_SYMBOL: _ClassVar[ReasonCode]
    REASON_CODE_UNKNOWN_STRATEGY: _ClassVar[ReasonCode]
    REASON_CODE_NO_BUDGET: _ClassVar[ReasonCode]
    REASON_CODE_ORDER_ID_REUSED: _ClassVar[ReasonCode]
    REASON_CODE_BELOW_MIN_QUANTITY: _ClassVar[ReasonCode]
    REASON_CODE_SIDECAR_UNAVAILABLE: _ClassVar[ReasonCode]
    REASON_CODE_SHADOW_MODE: _ClassVar[ReasonCode]
    REASON_CODE_STATE_UNAVAILABLE: _ClassVar[ReasonCode]
    REASON_CODE_INVALID_REQUEST: _ClassVar[ReasonCode]

class LimitSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIMIT_SOURCE_UNSPECIFIED: _ClassVar[LimitSource]
    LIMIT_SOURCE_DYNAMIC: _ClassVar[LimitSource]
    LIMIT_SOURCE_STATIC: _ClassVar[LimitSource]
    LIMIT_SOURCE_OVERRIDE: _ClassVar[LimitSource]

class RecommendationTrigger(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECOMMENDATION_TRIGGER_UNSPECIFIED: _ClassVar[RecommendationTrigger]
    RECOMMENDATION_TRIGGER_DRIFT: _ClassVar[RecommendationTrigger]
    RECOMMENDATION_TRIGGER_REGIME_CHANGE: _ClassVar[RecommendationTrigger]
    RECOMMENDATION_TRIGGER_CORRELATION_SPIKE: _ClassVar[RecommendationTrigger]
    RECOMMENDATION_TRIGGER_VOL_BREACH: _ClassVar[RecommendationTrigger]
    RECOMMENDATION_TRIGGER_MANUAL: _ClassVar[RecommendationTrigger]

class OverrideScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OVERRIDE_SCOPE_UNSPECIFIED: _ClassVar[OverrideScope]
    OVERRIDE_SCOPE_GLOBAL: _ClassVar[OverrideScope]
    OVERRIDE_SCOPE_STRATEGY: _ClassVar[OverrideScope]
    OVERRIDE_SCOPE_SYMBOL: _ClassVar[OverrideScope]

class OverrideKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OVERRIDE_KIND_UNSPECIFIED: _ClassVar[OverrideKind]
    OVERRIDE_KIND_FORCE_REGIME: _ClassVar[OverrideKind]
    OVERRIDE_KIND_SCALE_LEVERAGE: _ClassVar[OverrideKind]
    OVERRIDE_KIND_CAP_LEVERAGE: _ClassVar[OverrideKind]
    OVERRIDE_KIND_CAP_STRATEGY_CAPITAL: _ClassVar[OverrideKind]
    OVERRIDE_KIND_CAP_SYMBOL_POSITION: _ClassVar[OverrideKind]
    OVERRIDE_KIND_RESTRICT_SYMBOL: _ClassVar[OverrideKind]

class AlertSeverity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_SEVERITY_UNSPECIFIED: _ClassVar[AlertSeverity]
    ALERT_SEVERITY_INFO: _ClassVar[AlertSeverity]
    ALERT_SEVERITY_WARNING: _ClassVar[AlertSeverity]
    ALERT_SEVERITY_CRITICAL: _ClassVar[AlertSeverity]

class AlertKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALERT_KIND_UNSPECIFIED: _ClassVar[AlertKind]
    ALERT_KIND_REGIME_CHANGE: _ClassVar[AlertKind]
    ALERT_KIND_LIMIT_NEAR: _ClassVar[AlertKind]
    ALERT_KIND_LIMIT_BREACHED: _ClassVar[AlertKind]
    ALERT_KIND_VOL_BREACH: _ClassVar[AlertKind]
    ALERT_KIND_CORRELATION_SPIKE: _ClassVar[AlertKind]
    ALERT_KIND_STALE_MARKET_DATA: _ClassVar[AlertKind]
    ALERT_KIND_OVERRIDE_SET: _ClassVar[AlertKind]
    ALERT_KIND_OVERRIDE_ENDED: _ClassVar[AlertKind]
    ALERT_KIND_CONFIG_RELOAD_REFUSED: _ClassVar[AlertKind]
    ALERT_KIND_DECISION_LOG_BACKLOG: _ClassVar[AlertKind]
    ALERT_KIND_TRADING_STATE_CHANGED: _ClassVar[AlertKind]
    ALERT_KIND_ADMIN_REFUSED: _ClassVar[AlertKind]
    ALERT_KIND_STORE_ERROR: _ClassVar[AlertKind]
    ALERT_KIND_DISK_SPACE_LOW: _ClassVar[AlertKind]
    ALERT_KIND_CONFIG_RELOADED: _ClassVar[AlertKind]
    ALERT_KIND_UNRESERVED_FILL: _ClassVar[AlertKind]
    ALERT_KIND_LOG_LINES_DROPPED: _ClassVar[AlertKind]
REGIME_UNSPECIFIED: Regime
REGIME_BULL: Regime
REGIME_BEAR: Regime
REGIME_CRISIS: Regime
DECISION_UNSPECIFIED: Decision
DECISION_APPROVED: Decision
DECISION_RESIZED: Decision
DECISION_REJECTED: Decision
SIDE_UNSPECIFIED: Side
SIDE_BUY: Side
SIDE_SELL: Side
TRADING_STATE_UNSPECIFIED: TradingState
TRADING_STATE_ACTIVE: TradingState
TRADING_STATE_REDUCING: TradingState
TRADING_STATE_HALTED: TradingState
REASON_CODE_UNSPECIFIED: ReasonCode
REASON_CODE_SYMBOL_POSITION_LIMIT: ReasonCode
REASON_CODE_STRATEGY_EXPOSURE_LIMIT: ReasonCode
REASON_CODE_TOTAL_LEVERAGE_LIMIT: ReasonCode
REASON_CODE_MAX_ORDER_NOTIONAL: ReasonCode
REASON_CODE_PRICE_COLLAR: ReasonCode
REASON_CODE_RESTRICTED_SYMBOL: ReasonCode
REASON_CODE_TRADING_HALTED: ReasonCode
REASON_CODE_TRADING_REDUCING: ReasonCode
REASON_CODE_STALE_MARKET_DATA: ReasonCode
REASON_CODE_UNKNOWN_SYMBOL: ReasonCode
REASON_CODE_UNKNOWN_STRATEGY: ReasonCode
REASON_CODE_NO_BUDGET: ReasonCode
REASON_CODE_ORDER_ID_REUSED: ReasonCode
REASON_CODE_BELOW_MIN_QUANTITY: ReasonCode
REASON_CODE_SIDECAR_UNAVAILABLE: ReasonCode
REASON_CODE_SHADOW_MODE: ReasonCode
REASON_CODE_STATE_UNAVAILABLE: ReasonCode
REASON_CODE_INVALID_REQUEST: ReasonCode
LIMIT_SOURCE_UNSPECIFIED: LimitSource
LIMIT_SOURCE_DYNAMIC: LimitSource
LIMIT_SOURCE_STATIC: LimitSource
LIMIT_SOURCE_OVERRIDE: LimitSource
RECOMMENDATION_TRIGGER_UNSPECIFIED: RecommendationTrigger
RECOMMENDATION_TRIGGER_DRIFT: RecommendationTrigger
RECOMMENDATION_TRIGGER_REGIME_CHANGE: RecommendationTrigger
RECOMMENDATION_TRIGGER_CORRELATION_SPIKE: RecommendationTrigger
RECOMMENDATION_TRIGGER_VOL_BREACH: RecommendationTrigger
RECOMMENDATION_TRIGGER_MANUAL: RecommendationTrigger
OVERRIDE_SCOPE_UNSPECIFIED: OverrideScope
OVERRIDE_SCOPE_GLOBAL: OverrideScope
OVERRIDE_SCOPE_STRATEGY: OverrideScope
OVERRIDE_SCOPE_SYMBOL: OverrideScope
OVERRIDE_KIND_UNSPECIFIED: OverrideKind
OVERRIDE_KIND_FORCE_REGIME: OverrideKind
OVERRIDE_KIND_SCALE_LEVERAGE: OverrideKind
OVERRIDE_KIND_CAP_LEVERAGE: OverrideKind
OVERRIDE_KIND_CAP_STRATEGY_CAPITAL: OverrideKind
OVERRIDE_KIND_CAP_SYMBOL_POSITION: OverrideKind
OVERRIDE_KIND_RESTRICT_SYMBOL: OverrideKind
ALERT_SEVERITY_UNSPECIFIED: AlertSeverity
ALERT_SEVERITY_INFO: AlertSeverity
ALERT_SEVERITY_WARNING: AlertSeverity
ALERT_SEVERITY_CRITICAL: AlertSeverity
ALERT_KIND_UNSPECIFIED: AlertKind
ALERT_KIND_REGIME_CHANGE: AlertKind
ALERT_KIND_LIMIT_NEAR: AlertKind
ALERT_KIND_LIMIT_BREACHED: AlertKind
ALERT_KIND_VOL_BREACH: AlertKind
ALERT_KIND_CORRELATION_SPIKE: AlertKind
ALERT_KIND_STALE_MARKET_DATA: AlertKind
ALERT_KIND_OVERRIDE_SET: AlertKind
ALERT_KIND_OVERRIDE_ENDED: AlertKind
ALERT_KIND_CONFIG_RELOAD_REFUSED: AlertKind
ALERT_KIND_DECISION_LOG_BACKLOG: AlertKind
ALERT_KIND_TRADING_STATE_CHANGED: AlertKind
ALERT_KIND_ADMIN_REFUSED: AlertKind
ALERT_KIND_STORE_ERROR: AlertKind
ALERT_KIND_DISK_SPACE_LOW: AlertKind
ALERT_KIND_CONFIG_RELOADED: AlertKind
ALERT_KIND_UNRESERVED_FILL: AlertKind
ALERT_KIND_LOG_LINES_DROPPED: AlertKind

class BudgetRef(_message.Message):
    __slots__ = ("version", "regime", "computed_at")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REGIME_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_AT_FIELD_NUMBER: _ClassVar[int]
    version: int
    regime: Regime
    computed_at: _timestamp_pb2.Timestamp
    def __init__(self, version: _Optional[int] = ..., regime: _Optional[_Union[Regime, str]] = ..., computed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Reason(_message.Message):
    __slots__ = ("code", "message", "limit", "value")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    code: ReasonCode
    message: str
    limit: float
    value: float
    def __init__(self, code: _Optional[_Union[ReasonCode, str]] = ..., message: _Optional[str] = ..., limit: _Optional[float] = ..., value: _Optional[float] = ...) -> None: ...

class SymbolBudget(_message.Message):
    __slots__ = ("symbol", "target_weight", "risk_contribution", "max_position_notional", "max_position_quantity", "last_price", "volatility", "limit_source", "restricted", "checked_price")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TARGET_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    RISK_CONTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    MAX_POSITION_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    MAX_POSITION_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    LAST_PRICE_FIELD_NUMBER: _ClassVar[int]
    VOLATILITY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_SOURCE_FIELD_NUMBER: _ClassVar[int]
    RESTRICTED_FIELD_NUMBER: _ClassVar[int]
    CHECKED_PRICE_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    target_weight: float
    risk_contribution: float
    max_position_notional: float
    max_position_quantity: float
    last_price: float
    volatility: float
    limit_source: LimitSource
    restricted: bool
    checked_price: float
    def __init__(self, symbol: _Optional[str] = ..., target_weight: _Optional[float] = ..., risk_contribution: _Optional[float] = ..., max_position_notional: _Optional[float] = ..., max_position_quantity: _Optional[float] = ..., last_price: _Optional[float] = ..., volatility: _Optional[float] = ..., limit_source: _Optional[_Union[LimitSource, str]] = ..., restricted: _Optional[bool] = ..., checked_price: _Optional[float] = ...) -> None: ...

class StrategyBudget(_message.Message):
    __slots__ = ("strategy", "risk_share", "allocated_capital", "leverage_limit", "max_gross_exposure", "forecast_volatility", "symbols", "limit_source", "trading_state")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    RISK_SHARE_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_CAPITAL_FIELD_NUMBER: _ClassVar[int]
    LEVERAGE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MAX_GROSS_EXPOSURE_FIELD_NUMBER: _ClassVar[int]
    FORECAST_VOLATILITY_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_SOURCE_FIELD_NUMBER: _ClassVar[int]
    TRADING_STATE_FIELD_NUMBER: _ClassVar[int]
    strategy: str
    risk_share: float
    allocated_capital: float
    leverage_limit: float
    max_gross_exposure: float
    forecast_volatility: float
    symbols: _containers.RepeatedCompositeFieldContainer[StrategySymbolWeight]
    limit_source: LimitSource
    trading_state: TradingState
    def __init__(self, strategy: _Optional[str] = ..., risk_share: _Optional[float] = ..., allocated_capital: _Optional[float] = ..., leverage_limit: _Optional[float] = ..., max_gross_exposure: _Optional[float] = ..., forecast_volatility: _Optional[float] = ..., symbols: _Optional[_Iterable[_Union[StrategySymbolWeight, _Mapping]]] = ..., limit_source: _Optional[_Union[LimitSource, str]] = ..., trading_state: _Optional[_Union[TradingState, str]] = ...) -> None: ...

class StrategySymbolWeight(_message.Message):
    __slots__ = ("symbol", "weight", "risk_contribution")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    RISK_CONTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    weight: float
    risk_contribution: float
    def __init__(self, symbol: _Optional[str] = ..., weight: _Optional[float] = ..., risk_contribution: _Optional[float] = ...) -> None: ...

class Budget(_message.Message):
    __slots__ = ("ref", "net_asset_value", "equity_allocation", "vol_target", "regime_leverage_limit", "total_leverage_limit", "forecast_volatility", "average_correlation", "strategies", "symbols", "limit_source", "regime_since", "trading_state", "shadow_mode", "overrides")
    REF_FIELD_NUMBER: _ClassVar[int]
    NET_ASSET_VALUE_FIELD_NUMBER: _ClassVar[int]
    EQUITY_ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    VOL_TARGET_FIELD_NUMBER: _ClassVar[int]
    REGIME_LEVERAGE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_LEVERAGE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    FORECAST_VOLATILITY_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_CORRELATION_FIELD_NUMBER: _ClassVar[int]
    STRATEGIES_FIELD_NUMBER: _ClassVar[int]
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_SOURCE_FIELD_NUMBER: _ClassVar[int]
    REGIME_SINCE_FIELD_NUMBER: _ClassVar[int]
    TRADING_STATE_FIELD_NUMBER: _ClassVar[int]
    SHADOW_MODE_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    ref: BudgetRef
    net_asset_value: float
    equity_allocation: float
    vol_target: float
    regime_leverage_limit: float
    total_leverage_limit: float
    forecast_volatility: float
    average_correlation: float
    strategies: _containers.RepeatedCompositeFieldContainer[StrategyBudget]
    symbols: _containers.RepeatedCompositeFieldContainer[SymbolBudget]
    limit_source: LimitSource
    regime_since: _timestamp_pb2.Timestamp
    trading_state: TradingState
    shadow_mode: bool
    overrides: _containers.RepeatedCompositeFieldContainer[Override]
    def __init__(self, ref: _Optional[_Union[BudgetRef, _Mapping]] = ..., net_asset_value: _Optional[float] = ..., equity_allocation: _Optional[float] = ..., vol_target: _Optional[float] = ..., regime_leverage_limit: _Optional[float] = ..., total_leverage_limit: _Optional[float] = ..., forecast_volatility: _Optional[float] = ..., average_correlation: _Optional[float] = ..., strategies: _Optional[_Iterable[_Union[StrategyBudget, _Mapping]]] = ..., symbols: _Optional[_Iterable[_Union[SymbolBudget, _Mapping]]] = ..., limit_source: _Optional[_Union[LimitSource, str]] = ..., regime_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trading_state: _Optional[_Union[TradingState, str]] = ..., shadow_mode: _Optional[bool] = ..., overrides: _Optional[_Iterable[_Union[Override, _Mapping]]] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("gross_exposure", "gross_exposure_limit", "capital_used", "allocated_capital", "leverage", "leverage_limit", "ex_ante_volatility", "volatility_limit", "utilization", "near_limit", "breached")
    GROSS_EXPOSURE_FIELD_NUMBER: _ClassVar[int]
    GROSS_EXPOSURE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    CAPITAL_USED_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_CAPITAL_FIELD_NUMBER: _ClassVar[int]
    LEVERAGE_FIELD_NUMBER: _ClassVar[int]
    LEVERAGE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    EX_ANTE_VOLATILITY_FIELD_NUMBER: _ClassVar[int]
    VOLATILITY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    NEAR_LIMIT_FIELD_NUMBER: _ClassVar[int]
    BREACHED_FIELD_NUMBER: _ClassVar[int]
    gross_exposure: float
    gross_exposure_limit: float
    capital_used: float
    allocated_capital: float
    leverage: float
    leverage_limit: float
    ex_ante_volatility: float
    volatility_limit: float
    utilization: float
    near_limit: bool
    breached: bool
    def __init__(self, gross_exposure: _Optional[float] = ..., gross_exposure_limit: _Optional[float] = ..., capital_used: _Optional[float] = ..., allocated_capital: _Optional[float] = ..., leverage: _Optional[float] = ..., leverage_limit: _Optional[float] = ..., ex_ante_volatility: _Optional[float] = ..., volatility_limit: _Optional[float] = ..., utilization: _Optional[float] = ..., near_limit: _Optional[bool] = ..., breached: _Optional[bool] = ...) -> None: ...

class StrategyUtilization(_message.Message):
    __slots__ = ("strategy", "usage")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    strategy: str
    usage: Usage
    def __init__(self, strategy: _Optional[str] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ...) -> None: ...

class SymbolUtilization(_message.Message):
    __slots__ = ("symbol", "net_quantity", "position_notional", "max_position_notional", "utilization", "near_limit", "breached")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    NET_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    POSITION_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    MAX_POSITION_NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    UTILIZATION_FIELD_NUMBER: _ClassVar[int]
    NEAR_LIMIT_FIELD_NUMBER: _ClassVar[int]
    BREACHED_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    net_quantity: float
    position_notional: float
    max_position_notional: float
    utilization: float
    near_limit: bool
    breached: bool
    def __init__(self, symbol: _Optional[str] = ..., net_quantity: _Optional[float] = ..., position_notional: _Optional[float] = ..., max_position_notional: _Optional[float] = ..., utilization: _Optional[float] = ..., near_limit: _Optional[bool] = ..., breached: _Optional[bool] = ...) -> None: ...

class Position(_message.Message):
    __slots__ = ("strategy", "symbol", "quantity")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    strategy: str
    symbol: str
    quantity: float
    def __init__(self, strategy: _Optional[str] = ..., symbol: _Optional[str] = ..., quantity: _Optional[float] = ...) -> None: ...

class PriceTick(_message.Message):
    __slots__ = ("symbol", "price", "time")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    price: float
    time: _timestamp_pb2.Timestamp
    def __init__(self, symbol: _Optional[str] = ..., price: _Optional[float] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SymbolAllocation(_message.Message):
    __slots__ = ("strategy", "symbol", "weight", "notional")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    strategy: str
    symbol: str
    weight: float
    notional: float
    def __init__(self, strategy: _Optional[str] = ..., symbol: _Optional[str] = ..., weight: _Optional[float] = ..., notional: _Optional[float] = ...) -> None: ...

class Recommendation(_message.Message):
    __slots__ = ("sequence", "triggers", "reason", "budget", "target_allocation", "current_allocation", "requires_rebalancing", "created_at")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TRIGGERS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    TARGET_ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    CURRENT_ALLOCATION_FIELD_NUMBER: _ClassVar[int]
    REQUIRES_REBALANCING_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    triggers: _containers.RepeatedScalarFieldContainer[RecommendationTrigger]
    reason: str
    budget: BudgetRef
    target_allocation: _containers.RepeatedCompositeFieldContainer[SymbolAllocation]
    current_allocation: _containers.RepeatedCompositeFieldContainer[SymbolAllocation]
    requires_rebalancing: bool
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, sequence: _Optional[int] = ..., triggers: _Optional[_Iterable[_Union[RecommendationTrigger, str]]] = ..., reason: _Optional[str] = ..., budget: _Optional[_Union[BudgetRef, _Mapping]] = ..., target_allocation: _Optional[_Iterable[_Union[SymbolAllocation, _Mapping]]] = ..., current_allocation: _Optional[_Iterable[_Union[SymbolAllocation, _Mapping]]] = ..., requires_rebalancing: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Override(_message.Message):
    __slots__ = ("id", "scope", "target", "kind", "value", "regime", "set_by", "reason", "created_at", "expires_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REGIME_FIELD_NUMBER: _ClassVar[int]
    SET_BY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    scope: OverrideScope
    target: str
    kind: OverrideKind
    value: float
    regime: Regime
    set_by: str
    reason: str
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., scope: _Optional[_Union[OverrideScope, str]] = ..., target: _Optional[str] = ..., kind: _Optional[_Union[OverrideKind, str]] = ..., value: _Optional[float] = ..., regime: _Optional[_Union[Regime, str]] = ..., set_by: _Optional[str] = ..., reason: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("id", "kind", "severity", "message", "subject", "raised_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    RAISED_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    kind: AlertKind
    severity: AlertSeverity
    message: str
    subject: str
    raised_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., kind: _Optional[_Union[AlertKind, str]] = ..., severity: _Optional[_Union[AlertSeverity, str]] = ..., message: _Optional[str] = ..., subject: _Optional[str] = ..., raised_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
