"""Outgoing gRPC plumbing: channels, auth metadata, timeouts, errors -> short reasons."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from analyzer.domain.errors import DependencyFailed
from servicekit.auth import ServiceTokenSource

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
        try:
            return await rpc(request, timeout=self._timeout_s, metadata=self._tokens.metadata())
        except grpc.aio.AioRpcError as exc:
            # The status code only: details of another service stay out of our records.
            raise DependencyFailed(f"{self._service}.{method} {exc.code().name}") from exc
