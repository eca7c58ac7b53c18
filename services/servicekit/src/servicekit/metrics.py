"""Prometheus: the metrics HTTP server and RED metrics per RPC (no ids in labels)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc
from prometheus_client import Counter, Histogram, start_http_server

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"

RPC_HANDLED = Counter(
    "grpc_server_handled_total", "RPCs completed, by method and status code", ["method", "code"]
)
RPC_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "RPC latency by method",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15),
)


def start_metrics_server(port: int, host: str = "0.0.0.0") -> None:
    start_http_server(port, addr=host)


class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Counts and times unary RPCs; streaming ones (reflection, Watch) pass through."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.response_streaming:
            return handler
        method = handler_call_details.method
        inner: Any = handler.unary_unary

        async def timed(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            start = time.perf_counter()
            code = "OK"
            try:
                response = await inner(request, context)
                if context.code() not in (None, grpc.StatusCode.OK):
                    code = context.code().name
                return response
            except asyncio.CancelledError:
                # The caller went away or its deadline passed: not a server error.
                code = "CANCELLED"
                raise
            except BaseException:
                # An abort (auth rejections too) has set the code; anything else is UNKNOWN.
                code = context.code().name if context.code() else "UNKNOWN"
                raise
            finally:
                RPC_HANDLED.labels(method, code).inc()
                RPC_SECONDS.labels(method).observe(time.perf_counter() - start)

        return grpc.unary_unary_rpc_method_handler(
            timed,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
