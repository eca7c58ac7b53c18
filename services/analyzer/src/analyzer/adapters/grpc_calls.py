"""Outgoing gRPC plumbing: channels, auth metadata, timeouts, errors -> short reasons."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from analyzer.domain.errors import DependencyFailed
from servicekit.auth import ServiceTokenSource
from servicekit.logging import TRACE_ID_HEADER, trace_id_var

R = TypeVar("R")

CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_permit_without_calls", 1),
)


def open_channel(target: str, max_message_bytes: int) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        target,
        options=[
            *CHANNEL_OPTIONS,
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ],
    )


class Caller:
    """Makes every call with the service token and a timeout; failures become DependencyFailed."""

    def __init__(self, service: str, tokens: ServiceTokenSource, timeout_s: float) -> None:
        self._service = service
        self._tokens = tokens
        self._timeout_s = timeout_s

    async def __call__(
        self, method: str, rpc: Callable[..., Awaitable[R]], request: Any
    ) -> R:
        metadata = self._tokens.metadata()
        trace_id = trace_id_var.get()
        if trace_id is not None:
            # The other service's log lines about this conversation carry the same trace id.
            metadata = (*metadata, (TRACE_ID_HEADER, trace_id))
        try:
            return await rpc(request, timeout=self._timeout_s, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            # The status code only: details of another service stay out of our records.
            raise DependencyFailed(f"{self._service}.{method} {exc.code().name}") from exc
