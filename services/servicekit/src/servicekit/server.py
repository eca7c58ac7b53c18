"""An aio gRPC server with health, reflection, auth, RED metrics and graceful SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from servicekit import diagnostics
from servicekit.auth import AuthInterceptor, TokenVerifier
from servicekit.logging import trace_id_from_metadata, trace_id_var
from servicekit.metrics import Handler, MetricsInterceptor

log = logging.getLogger(__name__)


class TraceInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """A unary call's log lines carry the caller's trace id (x-trace-id, x-request-id,
    traceparent)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.response_streaming:
            return handler
        trace_id = trace_id_from_metadata(handler_call_details.invocation_metadata)
        if trace_id is None:
            return handler
        inner: Any = handler.unary_unary

        async def traced(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            token = trace_id_var.set(trace_id)
            try:
                return await inner(request, context)
            finally:
                trace_id_var.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            traced,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class GrpcServer:
    def __init__(
        self,
        *,
        service_names: Sequence[str],
        scopes_by_method: Mapping[str, str],
        verifier: TokenVerifier,
        max_message_bytes: int,
        malloc_trim_interval_s: float = 0.0,
    ) -> None:
        self._service_names = list(service_names)
        self._trim_interval_s = malloc_trim_interval_s
        self._trim_task: asyncio.Task[None] | None = None
        self.server = grpc.aio.server(
            interceptors=[
                MetricsInterceptor(),
                TraceInterceptor(),
                AuthInterceptor(verifier, scopes_by_method),
            ],
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.keepalive_time_ms", 30_000),
                ("grpc.http2.max_pings_without_data", 0),
                ("grpc.keepalive_permit_without_calls", 1),
            ],
        )
        self.health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        # spring.ops.v1.DiagnosticsService (internal scope): see servicekit/diagnostics.py.
        diagnostics.add_to_server(self.server, self._service_names[0].split(".")[1])
        reflection.enable_server_reflection(
            [
                *self._service_names, diagnostics.SERVICE_NAME, health.SERVICE_NAME,
                reflection.SERVICE_NAME,
            ],
            self.server,
        )
        self.port = 0

    async def start(self, address: str) -> int:
        self.port = self.server.add_insecure_port(address)
        if self.port == 0:
            raise RuntimeError(f"cannot listen on {address}")
        await self.server.start()
        await self.set_serving(True)
        if self._trim_interval_s > 0:
            self._trim_task = asyncio.create_task(
                diagnostics.trim_periodically(self._trim_interval_s)
            )
        return self.port

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self._service_names):
            await self.health.set(name, status)

    async def stop(self, grace_s: float) -> None:
        """Health goes NOT_SERVING, new calls are refused, in-flight calls get `grace_s`."""
        await self.health.enter_graceful_shutdown()
        if self._trim_task is not None:
            self._trim_task.cancel()
        await self.server.stop(grace_s)


async def wait_for_termination_signal() -> signal.Signals:
    """Resolve on the first SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    received: asyncio.Future[signal.Signals] = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _resolve_once, received, sig)
    sig = await received
    log.info("shutdown signal received", extra={"signal": sig.name})
    return sig


def _resolve_once(future: asyncio.Future[signal.Signals], sig: signal.Signals) -> None:
    if not future.done():
        future.set_result(sig)
