"""The one table from domain errors to gRPC status codes, and the wrapper that applies it."""

from __future__ import annotations

import functools
from typing import Any, AsyncIterator, Awaitable, Callable

import grpc
import structlog
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from ..service.errors import (
    InvalidInput, NotReady, PermissionDenied, RecommendationTooLarge, RecommendationTooLargeToStream,
    ResumeOutOfRange, RiskBudgetError, ShuttingDown, StateUnavailable, StreamEnded, SubscriberOverflow, TokensRotated, Unauthenticated,
)

from .parsing import refuse_unparsable

log = structlog.get_logger("riskbudget.rpc")

STATUS_FOR_ERROR: dict[type[RiskBudgetError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    NotReady: grpc.StatusCode.UNAVAILABLE,
    StateUnavailable: grpc.StatusCode.UNAVAILABLE,
    ShuttingDown: grpc.StatusCode.UNAVAILABLE,
    TokensRotated: grpc.StatusCode.UNAVAILABLE,  # a client subscribes again, with its token
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    ResumeOutOfRange: grpc.StatusCode.OUT_OF_RANGE,
    SubscriberOverflow: grpc.StatusCode.RESOURCE_EXHAUSTED,
    RecommendationTooLarge: grpc.StatusCode.FAILED_PRECONDITION,  # no retry can send it
    RecommendationTooLargeToStream: grpc.StatusCode.FAILED_PRECONDITION,
}
RESUME_AFTER_KEY = "riskbudget-resume-after"
OLDEST_SEQUENCE_KEY = "riskbudget-oldest-sequence"


def status_for(error: RiskBudgetError) -> grpc.Status:
    """A rich status: the code from the table, and field violations for bad input."""
    code = next((status for kind, status in STATUS_FOR_ERROR.items() if isinstance(error, kind)),
                grpc.StatusCode.INTERNAL)
    details = []
    if isinstance(error, InvalidInput):
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=field, description=problem)
            for field, problem in error.violations]))
        details.append(detail)
    return rpc_status.to_status(status_pb2.Status(
        code=getattr(code_pb2, code.name), message=str(error), details=details))


def trailing_metadata_for(error: RiskBudgetError) -> tuple[tuple[str, str], ...]:
    """Where a stream may resume, machine-readable, beside the human message."""
    if isinstance(error, StreamEnded):
        return ((RESUME_AFTER_KEY, str(error.resume_after)),)
    if isinstance(error, ResumeOutOfRange):
        return ((OLDEST_SEQUENCE_KEY, str(error.oldest_available)),)
    return ()


def mapped_stream_errors(method: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
    """Turn domain errors raised by a server-streaming method into their status and metadata."""

    @functools.wraps(method)
    async def wrapper(self, request, context: grpc.aio.ServicerContext):
        try:
            refuse_unparsable(request)
            async for message in method(self, request, context):
                yield message
        except RiskBudgetError as error:
            log.info("stream_ended", method=method.__name__, error=str(error),
                     code=status_for(error).code.name)
            status = status_for(error)  # its details (field violations) beside the resume point
            await context.abort(status.code, status.details,
                                (*status.trailing_metadata, *trailing_metadata_for(error)))

    return wrapper


def mapped_errors(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Turn domain errors raised by a unary servicer method into their status."""

    @functools.wraps(method)
    async def wrapper(self, request, context: grpc.aio.ServicerContext):
        try:
            refuse_unparsable(request)
            return await method(self, request, context)
        except RiskBudgetError as error:
            log.info("rpc_refused", method=method.__name__, error=str(error),
                     code=status_for(error).code.name)
            await context.abort_with_status(status_for(error))

    return wrapper
