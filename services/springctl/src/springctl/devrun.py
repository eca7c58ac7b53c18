"""`make run`: the three services, Envoy and the robot simulator page in the foreground.

Ctrl-C stops them all gracefully. A process that exits is started again, like a pod: the
analyzer at once when it recycled itself (exit 75), any other after a short growing backoff;
only an invalid configuration (exit 2) stops everything.

Envoy runs from `deploy/envoy/envoy.yaml`, the same file the Kubernetes ConfigMap is built
from, rendered into `.dev/envoy.yaml` by `render_envoy_config`: only the lines marked
`# local: ...` change (addresses, ports, descriptor path, allowed origins), plus the
dev-only GetLevel route the simulator page uses to show the level.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

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

# The analyzer's "recycled on purpose, start me again" (analyzer.entrypoints.recycling).
RECYCLE_EXIT_CODE = 75
# "invalid configuration": starting again cannot help; stop everything and say so.
CONFIG_ERROR_EXIT_CODE = 2
# Unexpected exits are restarted after a backoff that grows while the process keeps dying
# young (like Kubernetes' CrashLoopBackOff, shorter), and resets once it ran STABLE_AFTER_S.
RESTART_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0)
STABLE_AFTER_S = 30.0


def restart_delay(exit_code: int, ran_s: float, failures: int) -> tuple[float | None, int]:
    """(seconds before starting again or None = do not, consecutive failures so far)."""
    if exit_code == CONFIG_ERROR_EXIT_CODE:
        return None, failures
    if exit_code == RECYCLE_EXIT_CODE:
        return 0.0, 0
    failures = 0 if ran_s >= STABLE_AFTER_S else failures
    return RESTART_BACKOFF_S[min(failures, len(RESTART_BACKOFF_S) - 1)], failures + 1


class Supervised:
    """One child of `make run`, started again when it exits (recycled or crashed)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name = name
        self._argv = argv
        self._env = env
        self.child = _start(name, argv, env)
        self._started = time.monotonic()
        self._failures = 0
        self._restart_at: float | None = None
        self.restarts = 0

    def poll(self) -> bool:
        """Restart when due; False when the child exited in a way a restart cannot fix."""
        now = time.monotonic()
        if self._restart_at is not None:
            if now >= self._restart_at:
                self._restart_at = None
                self.child = _start(self.name, self._argv, self._env)
                self._started = now
                self.restarts += 1
            return True
        code = self.child.poll()
        if code is None:
            return True
        delay, self._failures = restart_delay(code, now - self._started, self._failures)
        if delay is None:
            sys.stdout.write(f"{self.name} exited with code {code} (configuration); stopping all\n")
            return False
        why = "recycled" if code == RECYCLE_EXIT_CODE else f"exited with code {code}"
        sys.stdout.write(f"{self.name} {why}; starting it again in {delay:g}s\n")
        sys.stdout.flush()
        self._restart_at = now + delay
        return True

    def running(self) -> subprocess.Popen[bytes] | None:
        return self.child if self._restart_at is None and self.child.poll() is None else None

# The repository (springctl is installed editable from services/springctl/src).
REPO = Path(__file__).resolve().parents[4]
ENVOY_CONFIG = REPO / "deploy" / "envoy" / "envoy.yaml"
ENVOY_DESCRIPTOR = REPO / "deploy" / "envoy" / "spring.pb"
WEB_DIST = REPO / "web" / "dist"

# The dev-only route: the simulator page shows the friendship level through the local Envoy.
# FriendshipService is never public (CONTRACT.md): the cluster's config has no such route,
# and the service still checks the `friendship:read` scope.
_DEV_ROUTE = """\
- match: { path: "/spring.friendship.v1.FriendshipService/GetLevel" }
  route: { cluster: friendship-dev-only, timeout: 5s }
  typed_per_filter_config: *unbuffered"""
_DEV_CLUSTER = """\
- name: friendship-dev-only
  type: STATIC
  connect_timeout: 1s
  typed_extension_protocol_options:
    envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
      "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
      explicit_http_config: {{ http2_protocol_options: {{}} }}
  load_assignment:
    cluster_name: friendship-dev-only
    endpoints:
      - lb_endpoints:
          - endpoint:
              address:
                socket_address: {{ address: {host}, port_value: {port} }}"""


@dataclass(frozen=True)
class EdgeConfig:
    """What differs between the cluster's Envoy and a local one."""

    edge_port: int
    admin_port: int
    ingest: tuple[str, int]
    allowed_origins: tuple[str, ...]
    friendship: tuple[str, int] | None = None  # the dev-only GetLevel route, when set
    host: str = "127.0.0.1"
    descriptor: Path = ENVOY_DESCRIPTOR


def _replace_line(
    lines: list[str], marker: str, new: list[str], keep: bool = False, indent_by: int = 0
) -> None:
    """Replace the one line ending with `marker` by `new` (after it when `keep`), same indent."""
    hits = [i for i, line in enumerate(lines) if line.rstrip().endswith(marker)]
    if len(hits) != 1:
        raise ValueError(f"{ENVOY_CONFIG}: expected one line ending with {marker!r}")
    i = hits[0]
    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())] + " " * indent_by
    lines[i : i + 1] = ([lines[i]] if keep else []) + [indent + text for text in new]


def _address(host: str, port: int) -> str:
    return f"socket_address: {{ address: {json.dumps(host)}, port_value: {port} }}"


def render_envoy_config(cfg: EdgeConfig, source: Path = ENVOY_CONFIG) -> str:
    """deploy/envoy/envoy.yaml with its `# local:` lines set for this machine."""
    lines = source.read_text().splitlines()
    _replace_line(lines, "# local: admin address", [_address(cfg.host, cfg.admin_port)])
    _replace_line(lines, "# local: edge address", [_address(cfg.host, cfg.edge_port)])
    _replace_line(lines, "# local: ingest address", [_address(*cfg.ingest)])
    _replace_line(
        lines,
        "# local: descriptor path",
        [f"proto_descriptor: {json.dumps(str(cfg.descriptor.resolve()))}"],
    )
    _replace_line(
        lines,
        "# local: allowed origins",
        [f"- exact: {json.dumps(origin)}" for origin in cfg.allowed_origins],
    )
    if cfg.friendship is not None:
        _replace_line(lines, "# dev-only routes", _DEV_ROUTE.splitlines(), keep=True)
        host, port = cfg.friendship
        cluster = _DEV_CLUSTER.format(host=json.dumps(host), port=port).splitlines()
        _replace_line(lines, "  clusters:", cluster, keep=True, indent_by=2)
    return "\n".join(lines) + "\n"


def envoy_command(config_path: Path, log_level: str = "warn") -> list[str]:
    exe = shutil.which("envoy") or os.path.join(os.path.dirname(sys.executable), "envoy")
    # No hot restart: several Envoys (make run, tests) share the machine without a base id each.
    return [
        exe, "--config-path", str(config_path), "--disable-hot-restart",
        "--log-level", log_level, "--drain-time-s", "2", "--drain-strategy", "immediate",
    ]


class _PageHandler(SimpleHTTPRequestHandler):
    """web/dist as static files, plus /config.json: where the page finds Envoy and a token."""

    page_config: bytes = b"{}"

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/config.json":
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("cache-control", "no-store")
            self.send_header("content-length", str(len(self.page_config)))
            self.end_headers()
            self.wfile.write(self.page_config)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_page(
    host: str, port: int, edge_url: str, token: str, directory: Path = WEB_DIST
) -> ThreadingHTTPServer:
    """Serve the robot simulator page on host:port in a daemon thread; returns the server."""
    if not (directory / "index.html").exists():
        raise SystemExit(f"{directory}/index.html is missing: run `make web`")
    config = json.dumps({"edgeUrl": edge_url, "token": token}).encode()
    handler = type("PageHandler", (_PageHandler,), {"page_config": config})
    server = ThreadingHTTPServer((host, port), partial(handler, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _pump(name: str, stream: IO[bytes]) -> None:
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"{name:>10} | {line.decode(errors='replace')}")
        sys.stdout.flush()


def _start(name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    child = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    assert child.stdout is not None
    threading.Thread(target=_pump, args=(name, child.stdout), daemon=True).start()
    return child


def run() -> int:
    secret = resolve_secret(create=True)
    env = dict(os.environ, AUTH_JWT_SECRET=secret)
    host = os.environ.get("GRPC_HOST", "127.0.0.1")
    edge_port = int(os.environ.get("EDGE_PORT", "8080"))
    admin_port = int(os.environ.get("EDGE_ADMIN_PORT", "9901"))
    page_port = int(os.environ.get("SIMULATOR_PORT", "8081"))
    page_origins = (f"http://127.0.0.1:{page_port}", f"http://localhost:{page_port}")
    extra = os.environ.get("EDGE_ALLOWED_ORIGINS", "")
    origins = page_origins + tuple(o.strip() for o in extra.split(",") if o.strip())
    edge = EdgeConfig(
        edge_port=edge_port,
        admin_port=admin_port,
        ingest=("127.0.0.1", 50051),
        friendship=("127.0.0.1", 50053),
        allowed_origins=origins,
    )
    envoy_yaml = Path(".dev/envoy.yaml")
    envoy_yaml.parent.mkdir(parents=True, exist_ok=True)
    envoy_yaml.write_text(render_envoy_config(edge))

    children: list[Supervised] = []
    for proc in PROCESSES:
        exe = shutil.which(proc.command) or os.path.join(
            os.path.dirname(sys.executable), proc.command
        )
        children.append(Supervised(proc.name, [exe], env))
    children.append(Supervised("envoy", envoy_command(envoy_yaml), env))

    token = mint_token(secret, "dev-robot", ROBOT_SCOPES, ttl_s=7 * 24 * 3600)
    edge_url = f"http://127.0.0.1:{edge_port}"
    page = serve_page("127.0.0.1", page_port, edge_url, token)
    lines = ["", "spring is starting:"]
    lines += [
        f"  {p.name:<10} gRPC {host}:{p.grpc_port}   metrics http://127.0.0.1:{p.metrics_port}/metrics"
        for p in PROCESSES
    ]
    lines += [
        f"  {'envoy':<10} {edge_url} (gRPC-web, gRPC, JSON POST /v1/conversations/end)"
        f"   admin http://127.0.0.1:{admin_port}/ready",
        "",
        f"robot simulator page:  http://127.0.0.1:{page_port}/",
        "",
        "robot token (ingest:write ingest:read friendship:read, 7 days):",
        f"  export SPRING_TOKEN={token}",
        "try:  .venv/bin/springctl send --demo   then   .venv/bin/springctl level <user_id>",
        f"or the legacy JSON:  curl -H \"authorization: Bearer $SPRING_TOKEN\" "
        f"-d '{{\"conversation_id\":\"c-1\",\"user_id\":\"u-1\",\"bot_id\":\"b-1\","
        f"\"conversation_log\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}' "
        f"{edge_url}/v1/conversations/end",
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
        for supervised in children:
            if not supervised.poll():
                exit_code = CONFIG_ERROR_EXIT_CODE
                stopping = True
        time.sleep(0.2)

    page.shutdown()
    stop_all(children)
    return exit_code


def stop_all(children: list[Supervised], grace_s: float = 30) -> None:
    """SIGTERM in reverse start order, wait up to `grace_s`, then SIGKILL what is left."""
    running = [c for c in (s.running() for s in reversed(children)) if c is not None]
    for child in running:
        child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for child in running:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
