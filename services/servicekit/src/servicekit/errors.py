"""gRPC status helpers: field violations as google.rpc.BadRequest details."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status


async def abort_invalid_argument(
    context: grpc.aio.ServicerContext[Any, Any],
    violations: Iterable[tuple[str, str]],
    message: str = "invalid request",
) -> NoReturn:
    """Abort with INVALID_ARGUMENT and one BadRequest.FieldViolation per (field, description)."""
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
            for field, description in violations
        ]
    )
    detail = any_pb2.Any()
    detail.Pack(bad_request)
    status = rpc_status.to_status(
        status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message, details=[detail])
    )
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("unreachable")  # context.abort always raises
