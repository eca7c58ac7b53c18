"""The real processes (ingest, friendship, analyzer) started as subprocesses for e2e tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.env import free_port

BIN = Path(sys.executable).parent


@dataclass
class ServiceProcess:
    name: str
    command: str
    grpc_port: int
    metrics_port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(BIN / self.command)], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def wait_serving(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited early; see {self.log_path}")
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.2)
        raise TimeoutError(f"{self.name} not SERVING after {timeout_s}s; see {self.log_path}")

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 30) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Stack:
    ingest: ServiceProcess
    friendship: ServiceProcess
    analyzer: ServiceProcess
    namespace: str
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def services(self) -> tuple[ServiceProcess, ...]:
        return (self.friendship, self.ingest, self.analyzer)


def build_stack(
    *, database_url: str, amqp_url: str, namespace: str, jwt_secret: str, log_dir: Path,
    extra_env: dict[str, str] | None = None,
) -> Stack:
    ports = {name: (free_port(), free_port()) for name in ("ingest", "friendship", "analyzer")}
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("GROQ_", "MEM0_", "AUTH_"))
    }
    base.update(
        DATABASE_URL=database_url,
        AMQP_URL=amqp_url,
        AMQP_NAMESPACE=namespace,
        AUTH_JWT_SECRET=jwt_secret,
        INGEST_GRPC_TARGET=f"127.0.0.1:{ports['ingest'][0]}",
        FRIENDSHIP_GRPC_TARGET=f"127.0.0.1:{ports['friendship'][0]}",
        SHUTDOWN_GRACE_S="10",
        LOG_LEVEL="INFO",
    )
    base.update(extra_env or {})

    def service(name: str, command: str) -> ServiceProcess:
        grpc_port, metrics_port = ports[name]
        env = dict(base, GRPC_PORT=str(grpc_port), METRICS_PORT=str(metrics_port))
        return ServiceProcess(name, command, grpc_port, metrics_port, env, log_dir / f"{name}.log")

    return Stack(
        ingest=service("ingest", "ingest-server"),
        friendship=service("friendship", "friendship-server"),
        analyzer=service("analyzer", "analyzer-worker"),
        namespace=namespace,
        extra_env=extra_env or {},
    )


def migrate_all(database_url: str) -> None:
    env = dict(os.environ, DATABASE_URL=database_url)
    for command in ("ingest-migrate", "analyzer-migrate", "friendship-migrate"):
        subprocess.run([str(BIN / command)], env=env, check=True, timeout=120)


@contextmanager
def running_stack(
    *,
    database_url: str,
    log_dir: Path,
    retry_delays_s: list[int],
    extra_env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """The three processes started and SERVING, on a broker namespace of their own.

    On exit: SIGTERM to each, the namespace's queues removed, and every process must have
    exited cleanly (the tail of an unclean one's log is printed).
    """
    import asyncio

    from tests.support.auth import TEST_JWT_SECRET
    from tests.support.broker import delete_namespace
    from tests.support.env import AMQP_URL, new_namespace

    namespace = new_namespace()
    built = build_stack(
        database_url=database_url,
        amqp_url=AMQP_URL,
        namespace=namespace,
        jwt_secret=TEST_JWT_SECRET,
        log_dir=log_dir,
        extra_env={"ANALYZER_RETRY_DELAYS_S": str(retry_delays_s), **(extra_env or {})},
    )
    try:
        for service in built.services:
            service.start()
            service.wait_serving()
        yield built
    finally:
        codes = {s.name: s.stop() for s in built.services if s.process is not None}
        asyncio.run(delete_namespace(AMQP_URL, namespace, retry_delays_s))
        for service in built.services:
            if codes.get(service.name, 0) != 0:
                sys.stderr.write(service.log_text()[-4000:])
        assert all(code == 0 for code in codes.values()), f"unclean exits: {codes}"
