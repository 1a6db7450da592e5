import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from riskbudget.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TriggerRebalanceRequest(_message.Message):
    __slots__ = ("reason", "requested_by")
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    reason: str
    requested_by: str
    def __init__(self, reason: _Optional[str] = ..., requested_by: _Optional[str] = ...) -> None: ...

class TriggerRebalanceResponse(_message.Message):
    __slots__ = ("recommendation",)
    RECOMMENDATION_FIELD_NUMBER: _ClassVar[int]
    recommendation: _types_pb2.Recommendation
    def __init__(self, recommendation: _Optional[_Union[_types_pb2.Recommendation, _Mapping]] = ...) -> None: ...

class SetOverrideRequest(_message.Message):
    __slots__ = ("override",)
    OVERRIDE_FIELD_NUMBER: _ClassVar[int]
    override: _types_pb2.Override
    def __init__(self, override: _Optional[_Union[_types_pb2.Override, _Mapping]] = ...) -> None: ...

class SetOverrideResponse(_message.Message):
    __slots__ = ("override",)
    OVERRIDE_FIELD_NUMBER: _ClassVar[int]
    override: _types_pb2.Override
    def __init__(self, override: _Optional[_Union[_types_pb2.Override, _Mapping]] = ...) -> None: ...

class ClearOverrideRequest(_message.Message):
    __slots__ = ("id", "cleared_by", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    CLEARED_BY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    cleared_by: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., cleared_by: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ClearOverrideResponse(_message.Message):
    __slots__ = ("cleared",)
    CLEARED_FIELD_NUMBER: _ClassVar[int]
    cleared: bool
    def __init__(self, cleared: _Optional[bool] = ...) -> None: ...

class ListOverridesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListOverridesResponse(_message.Message):
    __slots__ = ("overrides",)
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    overrides: _containers.RepeatedCompositeFieldContainer[_types_pb2.Override]
    def __init__(self, overrides: _Optional[_Iterable[_Union[_types_pb2.Override, _Mapping]]] = ...) -> None: ...

class SetTradingStateRequest(_message.Message):
    __slots__ = ("state", "strategy", "reason", "set_by")
    STATE_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SET_BY_FIELD_NUMBER: _ClassVar[int]
    state: _types_pb2.TradingState
    strategy: str
    reason: str
    set_by: str
    def __init__(self, state: _Optional[_Union[_types_pb2.TradingState, str]] = ..., strategy: _Optional[str] = ..., reason: _Optional[str] = ..., set_by: _Optional[str] = ...) -> None: ...

class SetTradingStateResponse(_message.Message):
    __slots__ = ("state", "strategy", "set_at")
    STATE_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    SET_AT_FIELD_NUMBER: _ClassVar[int]
    state: _types_pb2.TradingState
    strategy: str
    set_at: _timestamp_pb2.Timestamp
    def __init__(self, state: _Optional[_Union[_types_pb2.TradingState, str]] = ..., strategy: _Optional[str] = ..., set_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReloadConfigRequest(_message.Message):
    __slots__ = ("requested_by",)
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    requested_by: str
    def __init__(self, requested_by: _Optional[str] = ...) -> None: ...

class ReloadConfigResponse(_message.Message):
    __slots__ = ("reloaded", "errors", "budget")
    RELOADED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    reloaded: bool
    errors: _containers.RepeatedScalarFieldContainer[str]
    budget: _types_pb2.BudgetRef
    def __init__(self, reloaded: _Optional[bool] = ..., errors: _Optional[_Iterable[str]] = ..., budget: _Optional[_Union[_types_pb2.BudgetRef, _Mapping]] = ...) -> None: ...
