"""ingest-server: the gRPC server (IngestService + IngestInternalService) and the outbox relay."""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass

import pydantic
import sqlalchemy as sa

from ingest import bootstrap
from ingest.bootstrap import Deps
from ingest.config import Settings
from ingest.entrypoints.servicers import IngestInternalServicer, IngestServicer
from ingest.entrypoints.wire import add_servicer
from servicekit.auth import INTERNAL_SCOPE, TokenVerifier
from servicekit.db import create_db_engine
from servicekit.logging import configure_logging
from servicekit.metrics import start_metrics_server
from servicekit.server import GrpcServer, wait_for_termination_signal
from spring.ingest.v1 import ingest_internal_pb2, ingest_pb2

log = logging.getLogger(__name__)

_PUBLIC_SERVICE = ingest_pb2.DESCRIPTOR.services_by_name["IngestService"]
_INTERNAL_SERVICE = ingest_internal_pb2.DESCRIPTOR.services_by_name["IngestInternalService"]
_PUBLIC = _PUBLIC_SERVICE.full_name
_INTERNAL = _INTERNAL_SERVICE.full_name
SCOPES_BY_METHOD = {
    f"/{_PUBLIC}/EndConversation": "ingest:write",
    f"/{_PUBLIC}/GetConversationStatus": "ingest:read",
    f"/{_INTERNAL}/ClaimConversation": INTERNAL_SCOPE,
    f"/{_INTERNAL}/CompleteConversation": INTERNAL_SCOPE,
    f"/{_INTERNAL}/FailConversation": INTERNAL_SCOPE,
    f"/{_INTERNAL}/RequeueConversation": INTERNAL_SCOPE,
    f"/{_INTERNAL}/DeleteUserData": INTERNAL_SCOPE,
}


@dataclass
class RunningServer:
    port: int
    server: GrpcServer
    deps: Deps

    async def stop(self, grace_s: float | None = None) -> None:
        """gRPC first (in-flight calls finish), then the relay, then the pools."""
        grace = self.deps.settings.shutdown_grace_s if grace_s is None else grace_s
        try:
            await self.server.stop(grace)
        finally:
            await bootstrap.close(self.deps)


async def start_server(settings: Settings) -> RunningServer:
    """Serve on settings.grpc_host:grpc_port (0 = any free port) and start the relay."""
    deps = bootstrap.build(settings)
    try:
        server = GrpcServer(
            service_names=[_PUBLIC, _INTERNAL],
            scopes_by_method=SCOPES_BY_METHOD,
            verifier=TokenVerifier(
                secret=settings.auth_jwt_secret, public_key=settings.auth_jwt_public_key
            ),
            max_message_bytes=settings.max_message_bytes,
            malloc_trim_interval_s=settings.malloc_trim_interval_s,
        )
        # Undecodable request bytes answer INVALID_ARGUMENT, not UNKNOWN (see wire.py).
        add_servicer(server.server, _PUBLIC_SERVICE, IngestServicer(deps))
        add_servicer(server.server, _INTERNAL_SERVICE, IngestInternalServicer(deps))
        port = await server.start(f"{settings.grpc_host}:{settings.grpc_port}")
    except BaseException:
        await bootstrap.close(deps)
        raise
    if deps.relay is not None:
        deps.relay.start()
    return RunningServer(port=port, server=server, deps=deps)


def database_answers(settings: Settings) -> bool:
    engine = create_db_engine(
        settings.database_url,
        application_name="ingest-check",
        pool_size=1,
        pool_timeout_s=settings.db_pool_timeout_s,
        connect_timeout_s=settings.db_connect_timeout_s,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.SQLAlchemyError as exc:
        log.error(
            "database does not answer; is PostgreSQL running and DATABASE_URL right?",
            extra={"error": type(exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc).__name__},
        )
        return False
    finally:
        engine.dispose()


async def serve(settings: Settings) -> int:
    if not await asyncio.to_thread(database_answers, settings):
        return 1
    start_metrics_server(settings.metrics_port)
    running = await start_server(settings)
    log.info(
        "listening",
        extra={"port": running.port, "metrics_port": settings.metrics_port,
               "relay_enabled": settings.relay_enabled},
    )
    try:
        await wait_for_termination_signal()
    finally:
        await running.stop()
    log.info("stopped")
    return 0


def main() -> None:
    configure_logging("ingest")
    try:
        settings = Settings()
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        log.error("invalid configuration: %s", problems)
        sys.exit(2)
    configure_logging("ingest", settings.log_level)
    sys.exit(asyncio.run(serve(settings)))


if __name__ == "__main__":
    main()
