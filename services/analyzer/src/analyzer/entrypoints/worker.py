"""`analyzer-worker`: the gRPC server (health, AnalyzeConversation) and the consumer.

One process runs both; health is SERVING only while the consumer consumes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from dataclasses import dataclass

from pydantic import ValidationError

from analyzer.analysis import ConversationAnalyzer
from analyzer.bootstrap import Deps, StartupError, build
from analyzer.config import Settings
from analyzer.domain.errors import DependencyFailed
from analyzer.domain.ports import ErasureStore, MemoryApiEraser
from analyzer.entrypoints.consumer import Consumer
from analyzer.entrypoints.recycling import (
    RECYCLE_EXIT_CODE,
    RecycleLimits,
    wait_for_signal_or_recycle,
)
from analyzer.entrypoints.servicer import SCOPES_BY_METHOD, SERVICE_NAME, AnalyzerServicer
from servicekit.auth import TokenVerifier
from servicekit.logging import configure_logging
from servicekit.messaging import Topology
from servicekit.metrics import start_metrics_server
from servicekit.server import GrpcServer
from spring.analyzer.v1 import analyzer_pb2_grpc

log = logging.getLogger("analyzer.worker")
# httpx logs every request at INFO ("HTTP Request: POST <url> ..."): four JSON lines per
# conversation, ~3 % of the worker's CPU under load, and URLs (a Mem0 erasure carries the
# user id in its query) in the logs. Provider outcomes are logged and counted by the adapters.
QUIET_LOGGERS = ("httpx", "httpcore")


@dataclass
class RunningWorker:
    port: int
    server: GrpcServer
    consumer: Consumer
    deps: Deps
    shutdown_grace_s: float

    async def stop(self) -> None:
        """NOT_SERVING, no new messages, in-flight ones finish within the grace, then close."""
        await self.server.set_serving(False)
        await self.consumer.stop(self.shutdown_grace_s)
        await self.server.stop(min(self.shutdown_grace_s, 5.0))
        await self.deps.close()


def create_grpc_server(
    settings: Settings,
    analyzer: ConversationAnalyzer,
    erasure: ErasureStore | None = None,
    memory_api: MemoryApiEraser | None = None,
) -> GrpcServer:
    """Health, reflection, auth, metrics and AnalyzerService; not started."""
    server = GrpcServer(
        service_names=[SERVICE_NAME],
        scopes_by_method=SCOPES_BY_METHOD,
        verifier=TokenVerifier(
            secret=settings.auth_jwt_secret, public_key=settings.auth_jwt_public_key
        ),
        max_message_bytes=settings.max_message_bytes,
        malloc_trim_interval_s=settings.malloc_trim_interval_s,
    )
    analyzer_pb2_grpc.add_AnalyzerServiceServicer_to_server(
        AnalyzerServicer(analyzer, erasure, memory_api), server.server
    )
    return server


async def start_worker(settings: Settings) -> RunningWorker:
    """Start the gRPC server and the consumer; raises StartupError with one clear line."""
    deps = build(settings)
    try:
        await deps.repository.ping()
    except DependencyFailed as exc:
        await deps.close()
        raise StartupError("database unreachable (SELECT 1 failed)") from exc

    server = create_grpc_server(settings, deps.analyzer, deps.repository, deps.memory_api)
    try:
        port = await server.start(f"{settings.grpc_host}:{settings.grpc_port}")
    except RuntimeError as exc:
        await deps.close()
        raise StartupError(str(exc)) from exc
    # Not serving until the consumer is consuming.
    await server.set_serving(False)

    consumer = Consumer(
        amqp_url=settings.amqp_url,
        topology=Topology(settings.amqp_namespace),
        prefetch=settings.analyzer_prefetch,
        amqp_timeout_s=settings.amqp_timeout_s,
        retry_delays_s=settings.analyzer_retry_delays_s,
        pipeline=deps.pipeline,
        policy=deps.policy,
        on_health=server.set_serving,
        queue_depth_interval_s=settings.analyzer_queue_depth_interval_s,
    )
    try:
        await consumer.start()
    except Exception as exc:
        await server.stop(0)
        await deps.close()
        raise StartupError(f"broker unreachable: {type(exc).__name__}") from exc
    return RunningWorker(port, server, consumer, deps, settings.shutdown_grace_s)


def _config_error_line(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or 'settings'}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)
    )


async def _run(settings: Settings) -> int:
    try:
        worker = await start_worker(settings)
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        return 1
    start_metrics_server(settings.metrics_port)
    log.info(
        "listening",
        extra={"port": worker.port, "metrics_port": settings.metrics_port},
    )
    recycled = await wait_for_signal_or_recycle(
        RecycleLimits(
            messages=settings.analyzer_recycle_after_messages,
            age_s=settings.analyzer_recycle_after_age_s,
            rss_mb=settings.analyzer_recycle_after_rss_mb,
        )
    )
    await worker.stop()
    log.info("stopped", extra={"recycled": recycled})
    return RECYCLE_EXIT_CODE if recycled else 0


def configure_worker_logging(level: str) -> None:
    configure_logging("analyzer", level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def main() -> None:
    configure_worker_logging(os.environ.get("LOG_LEVEL", "INFO"))
    try:
        settings = Settings()
    except ValidationError as exc:
        log.error("invalid configuration: %s", _config_error_line(exc))
        sys.exit(2)
    configure_worker_logging(settings.log_level)
    sys.exit(asyncio.run(_run(settings)))


if __name__ == "__main__":
    main()
