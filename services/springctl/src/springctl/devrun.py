"""`make run`: the three services in the foreground; Ctrl-C stops them all gracefully."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO

from servicekit.auth import mint_token
from springctl.devsecret import resolve_secret


@dataclass(frozen=True)
class Process:
    name: str
    command: str
    grpc_port: int
    metrics_port: int


PROCESSES = (
    Process("friendship", "friendship-server", 50053, 9103),
    Process("ingest", "ingest-server", 50051, 9101),
    Process("analyzer", "analyzer-worker", 50052, 9102),
)
ROBOT_SCOPES = ["ingest:write", "ingest:read", "friendship:read"]


def _pump(name: str, stream: IO[bytes]) -> None:
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"{name:>10} | {line.decode(errors='replace')}")
        sys.stdout.flush()


def run() -> int:
    secret = resolve_secret(create=True)
    env = dict(os.environ, AUTH_JWT_SECRET=secret)
    children: list[tuple[Process, subprocess.Popen[bytes]]] = []
    for proc in PROCESSES:
        exe = shutil.which(proc.command) or os.path.join(
            os.path.dirname(sys.executable), proc.command
        )
        child = subprocess.Popen(
            [exe], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert child.stdout is not None
        threading.Thread(target=_pump, args=(proc.name, child.stdout), daemon=True).start()
        children.append((proc, child))

    token = mint_token(secret, "dev-robot", ROBOT_SCOPES, ttl_s=7 * 24 * 3600)
    host = os.environ.get("GRPC_HOST", "127.0.0.1")
    lines = ["", "spring is starting:"]
    lines += [
        f"  {p.name:<10} gRPC {host}:{p.grpc_port}   metrics http://127.0.0.1:{p.metrics_port}/metrics"
        for p in PROCESSES
    ]
    lines += [
        "",
        "robot token (ingest:write ingest:read friendship:read, 7 days):",
        f"  export SPRING_TOKEN={token}",
        "try:  .venv/bin/springctl send --demo   then   .venv/bin/springctl level <user_id>",
        "Ctrl-C stops everything.",
        "",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()

    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        for proc, child in children:
            if child.poll() is not None:
                sys.stdout.write(f"{proc.name} exited with code {child.returncode}; stopping all\n")
                exit_code = child.returncode or 1
                stopping = True
        time.sleep(0.2)

    for _proc, child in reversed(children):
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for _proc, child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return exit_code
