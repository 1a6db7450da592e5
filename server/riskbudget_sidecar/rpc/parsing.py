"""Register a servicer so that a request body that does not parse is refused as
INVALID_ARGUMENT naming its message type, instead of gRPC's own UNKNOWN.

gRPC parses a body before the servicer runs, and answers a parse error with UNKNOWN
("Unexpected DecodeError"): to a client, a sidecar fault. Here the parser hands such a
body on as `Unparsable`, and the servicer's error wrapper (rpc/errors.py) refuses it.
"""

from __future__ import annotations

from typing import Any, Callable

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass

from ..service.errors import InvalidInput

_HANDLER_FOR_SHAPE = {  # (client streaming, server streaming)
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


class Unparsable:
    """A request body that is not a valid `message_type`."""

    __slots__ = ("message_type", "error")

    def __init__(self, message_type: str, error: str) -> None:
        self.message_type = message_type
        self.error = error

    def refusal(self) -> InvalidInput:
        return InvalidInput([("(request body)", f"is not a valid {self.message_type}: {self.error}")])


def refuse_unparsable(request: Any) -> None:
    """Raise InvalidInput if `request` is a body that did not parse."""
    if type(request) is Unparsable:
        raise request.refusal()


def _parser(message_class: Any) -> Callable[[bytes], Any]:
    parse, name = message_class.FromString, message_class.DESCRIPTOR.full_name

    def parse_or_mark(body: bytes) -> Any:
        try:
            return parse(body)
        except DecodeError as error:
            return Unparsable(name, str(error))
    return parse_or_mark


def add_servicer(server: grpc.aio.Server, servicer: Any, service: ServiceDescriptor) -> None:
    """What the generated add_<Service>Servicer_to_server does, with the lenient parser."""
    handlers = {}
    for method in service.methods:
        request, response = GetMessageClass(method.input_type), GetMessageClass(method.output_type)
        make_handler = _HANDLER_FOR_SHAPE[method.client_streaming, method.server_streaming]
        handlers[method.name] = make_handler(getattr(servicer, method.name), request_deserializer=_parser(request),
                                             response_serializer=response.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)
