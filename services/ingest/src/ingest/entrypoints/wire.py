"""Registering servicers so that undecodable request bytes answer INVALID_ARGUMENT.

grpcio parses a request with the message's FromString before the servicer runs; bytes
that are not a valid protobuf of that type (bad wire format, invalid UTF-8 in a string
field) raise DecodeError there and the client gets UNKNOWN, a code CONTRACT.md does not
list. Here the parse failure becomes a marker the wrapped method turns into
INVALID_ARGUMENT with a field violation ("malformed field", CONTRACT.md's first row).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import symbol_database
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message

from servicekit.errors import abort_invalid_argument

Context = grpc.aio.ServicerContext[Any, Any]
Method = Callable[[Any, Context], Awaitable[Message]]


class _Undecodable:
    """Stands in for a request whose bytes did not parse."""


UNDECODABLE = _Undecodable()


def _lenient(message_class: type[Message]) -> Callable[[bytes], Message | _Undecodable]:
    def parse(data: bytes) -> Message | _Undecodable:
        try:
            return message_class.FromString(data)
        except DecodeError:
            return UNDECODABLE

    return parse


def _guarded(method: Method) -> Method:
    async def handle(request: Any, context: Context) -> Message:
        if request is UNDECODABLE:
            await abort_invalid_argument(
                context,
                [("request", "not a valid protobuf message of this type "
                             "(bad wire format or invalid UTF-8 in a string field)")],
            )
        return await method(request, context)

    return handle


def add_servicer(server: grpc.aio.Server, service: ServiceDescriptor, servicer: object) -> None:
    """Every unary method of `service`, served by the same-named method of `servicer`."""
    database = symbol_database.Default()
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        request_class = database.GetSymbol(method.input_type.full_name)
        response_class = database.GetSymbol(method.output_type.full_name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _guarded(getattr(servicer, method.name)),
            request_deserializer=_lenient(request_class),
            response_serializer=response_class.SerializeToString,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )
    # grpcio's own generated code registers them as well (faster lookup); not in its stubs.
    server.add_registered_method_handlers(service.full_name, handlers)  # type: ignore[attr-defined]
