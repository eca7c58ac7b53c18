"""`make bench`: every row of issue 7 against its baseline, measured in the same run.

Starts the real stack (ingest, friendship, analyzer processes) on a database of its own,
Envoy in front of ingest, fake Groq/Mem0 servers and the baseline programs; runs each
measure and its baseline interleaved (A, B, A, B ...); prints the table and writes it to
docs/benchmarks.md. Sizes: BENCH_RUNS (3), BENCH_SECONDS (4), BENCH_RSS_CONVERSATIONS (1000).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import grpc
import httpx
import sqlalchemy as sa

from bench.load import SCOPES, conversation
from bench.stats import Figure, cpu_seconds, machine_busy, percentile, rss_bytes
from servicekit.auth import mint_token
from servicekit.db import sqlalchemy_url
from servicekit.messaging import Topology
from spring.ingest.v1 import ingest_pb2_grpc
from spring.ops.v1 import diagnostics_pb2, diagnostics_pb2_grpc
from springctl.devrun import EdgeConfig, envoy_command, render_envoy_config
from tests.support.broker import delete_namespace
from tests.support.env import AMQP_URL, free_port, new_namespace
from tests.support.fake_groq import FakeGroq, slow
from tests.support.fake_mem0 import FakeMem0
from tests.support.own_db import own_database
from tests.support.stack import ServiceProcess, Stack, build_stack

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
RSS_CONVERSATIONS = int(os.environ.get("BENCH_RSS_CONVERSATIONS", "1000"))
PREFETCH = 8
LLM_LATENCY_S = 0.2
MB = 1 << 20
TERMINAL = ("PROCESSED", "SKIPPED", "FAILED")


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


@dataclass
class Row:
    measure: str
    value: Figure
    baseline: Figure
    unit: str
    ratio: Figure
    target: str
    met: bool
    note: str = ""


@dataclass
class Env:
    stack: Stack
    database_url: str
    engine: sa.Engine
    secret: str
    envoy_port: int
    empty_port: int
    groq: FakeGroq
    workdir: Path
    extra_analyzers: list[ServiceProcess] = field(default_factory=list)
    sizing: dict[str, str] = field(default_factory=dict)


# --- helpers -------------------------------------------------------------------------------
def run_json(*args: str) -> dict[str, object]:
    for attempt in (1, 2):
        done = subprocess.run(
            [PY, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600,
            check=False,
        )
        if done.returncode == 0:
            break
        # Other sessions may swap the generated stubs (`make proto`) under our feet.
        if attempt == 2 or "ModuleNotFoundError" not in done.stderr:
            raise RuntimeError(f"{args[0]} failed: {done.stderr[-2000:]}")
        time.sleep(2)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def num(result: dict[str, object], key: str) -> float:
    value = result[key]
    assert isinstance(value, int | float), f"{key}={value!r}"
    return float(value)


def load(env: Env, mode: str, call: str, target: str, *extra: str) -> dict[str, object]:
    result = run_json(
        "bench.load", mode, "--call", call, "--target", target, "--secret", env.secret, *extra
    )
    if result.get("errors"):
        log(f"  {call} errors: {result['errors']}")
    return result


def bare_insert(env: Env, concurrency: int, duration: float, size: int) -> dict[str, object]:
    return run_json(
        "bench.bare_insert", "--url", env.database_url, "--concurrency", str(concurrency),
        "--duration", str(duration), "--size", str(size),
    )


def ratio(values: Figure, baselines: Figure) -> Figure:
    return Figure(tuple(v / b for v, b in zip(values.runs, baselines.runs, strict=True)))


def count_terminal(env: Env, prefix: str) -> int:
    with env.engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM ingest.conversations"
                    " WHERE conversation_id LIKE :p AND status IN :t"
                ).bindparams(sa.bindparam("t", expanding=True)),
                {"p": f"{prefix}-%", "t": list(TERMINAL)},
            ).scalar_one()
        )


def completion_times(env: Env, prefix: str) -> list[tuple[datetime, datetime]]:
    with env.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT accepted_at, updated_at FROM ingest.conversations"
                " WHERE conversation_id LIKE :p AND status = 'PROCESSED' ORDER BY updated_at"
            ),
            {"p": f"{prefix}-%"},
        ).all()
    return [(r[0], r[1]) for r in rows]


def wait_terminal(env: Env, prefix: str, expected: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    done = 0
    while time.monotonic() < deadline:
        done = count_terminal(env, prefix)
        if done >= expected:
            return done
        time.sleep(0.1)
    log(f"  {prefix}: only {done}/{expected} terminal after {timeout_s}s")
    return done


def drain_backlog(env: Env) -> None:
    """After an ingest-only measure: wait for the relay, then drop the queued backlog."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with env.engine.connect() as conn:
            left = conn.execute(
                sa.text("SELECT count(*) FROM ingest.outbox WHERE published_at IS NULL")
            ).scalar_one()
        if left == 0:
            break
        time.sleep(0.2)

    async def purge() -> None:
        connection = await aio_pika.connect(AMQP_URL, timeout=5)
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue(Topology(env.stack.namespace).work_queue)
            await queue.purge()

    asyncio.run(purge())
    time.sleep(2)  # the analyzer finishes what it had prefetched


@contextmanager
def rss_sampler(pid: int, interval_s: float = 0.005) -> Iterator[list[int]]:
    """Samples a process's RSS in a thread while the block runs."""
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(rss_bytes(pid))
            stop.wait(interval_s)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


@contextmanager
def cpu_share(pid: int) -> Iterator[list[float]]:
    """CPU used by a process during the block, in % of one core (list filled on exit)."""
    share: list[float] = []
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    try:
        yield share
    finally:
        share.append(100 * (cpu_seconds(pid) - cpu0) / max(time.monotonic() - t0, 1e-6))


def pid_of(service: ServiceProcess) -> int:
    assert service.process is not None
    return service.process.pid


# --- the measures ---------------------------------------------------------------------------
def getlevel_rows(env: Env) -> list[Row]:
    friendship, empty = env.stack.friendship.target, f"127.0.0.1:{env.empty_port}"
    qps, base_qps, friendship_cpu = [], [], []
    for i in range(RUNS):
        log(f"GetLevel 64 in flight, run {i + 1}")
        args = ("--in-flight", "64", "--duration", str(SECONDS))
        with cpu_share(pid_of(env.stack.friendship)) as share:
            qps.append(num(load(env, "closed", "getlevel", friendship, *args), "rate"))
        friendship_cpu.append(share[0])
        base_qps.append(num(load(env, "closed", "getlevel", empty, *args), "rate"))
    value, baseline = Figure(tuple(qps)), Figure(tuple(base_qps))
    r = ratio(value, baseline)
    rows = [
        Row("`GetLevel` QPS, 64 in flight", value, baseline, "/s", r, "≥ 0.6", r.median >= 0.6,
            f"friendship process CPU {Figure(tuple(friendship_cpu)).show('%', 0)} of one core")
    ]
    rate = value.median / 2
    p99, base_p99 = [], []
    for i in range(RUNS):
        log(f"GetLevel open loop at {rate:.0f}/s, run {i + 1}")
        args = ("--rate", f"{rate:.1f}", "--duration", str(SECONDS))
        p99.append(num(load(env, "open", "getlevel", friendship, *args), "p99_ms"))
        base_p99.append(num(load(env, "open", "getlevel", empty, *args), "p99_ms"))
    value, baseline = Figure(tuple(p99)), Figure(tuple(base_p99))
    r = ratio(value, baseline)
    rows.append(
        Row(
            f"`GetLevel` p99 at half its maximum rate ({rate:.0f}/s), open loop", value,
            baseline, " ms", r, "≤ 1.5×", r.median <= 1.5,
        )
    )
    rows.append(getlevel_uncached_row(env))
    return rows


def start_uncached_friendship(env: Env) -> ServiceProcess:
    """A second friendship server on the same database with FRIENDSHIP_LEVEL_CACHE_SIZE=0:
    every GetLevel reads PostgreSQL (the miss path)."""
    base = env.stack.friendship
    grpc_port, metrics_port = free_port(), free_port()
    server = ServiceProcess(
        "friendship-uncached", base.command, grpc_port, metrics_port,
        dict(base.env, GRPC_PORT=str(grpc_port), METRICS_PORT=str(metrics_port),
             FRIENDSHIP_LEVEL_CACHE_SIZE="0", FRIENDSHIP_RELAY_ENABLED="false"),
        env.workdir / "friendship-uncached.log",
    )
    server.start()
    server.wait_serving()
    return server


def getlevel_uncached_row(env: Env) -> Row:
    """Diagnostic: GetLevel with its cache off, against the empty servicer, interleaved."""
    empty = f"127.0.0.1:{env.empty_port}"
    server = start_uncached_friendship(env)
    qps, base_qps = [], []
    try:
        for i in range(RUNS):
            log(f"GetLevel, cache off, 64 in flight, run {i + 1}")
            args = ("--in-flight", "64", "--duration", str(SECONDS))
            qps.append(num(load(env, "closed", "getlevel", server.target, *args), "rate"))
            base_qps.append(num(load(env, "closed", "getlevel", empty, *args), "rate"))
    finally:
        server.stop()
    value, baseline = Figure(tuple(qps)), Figure(tuple(base_qps))
    r = ratio(value, baseline)
    return Row(
        "`GetLevel` QPS, 64 in flight, **cache off** (diagnostic: every call reads PostgreSQL)",
        value, baseline, "/s", r, "≥ 0.6", r.median >= 0.6,
    )


def floors(env: Env) -> tuple[float, float, float]:
    """p50 ms of: one small insert+commit, one empty unary RPC, one publish -> delivery."""
    commit = num(bare_insert(env, 1, 1.5, 100), "p50_ms")
    rpc = num(
        load(env, "closed", "getlevel", f"127.0.0.1:{env.empty_port}", "--duration", "1.5"),
        "p50_ms",
    )
    hop = num(
        run_json("bench.publish_floor", "--amqp-url", AMQP_URL, "--namespace", new_namespace()),
        "p50_ms",
    )
    return commit, rpc, hop


# The path accept -> PROCESSED with complete metadata makes 6 commits (accept, relay mark,
# claim, analysis saved, friendship apply, complete), 3 internal RPCs (claim, apply,
# complete) and one publish -> delivery.
PATH_COMMITS, PATH_RPCS = 6, 3


def pipeline_latency_row(env: Env) -> Row:
    values, bases, notes = [], [], []
    for i in range(RUNS):
        log(f"accept -> PROCESSED latency, run {i + 1}")
        prefix = f"lat{i}-{secrets.token_hex(3)}"
        with grpc.insecure_channel(env.stack.ingest.target) as channel:
            stub = ingest_pb2_grpc.IngestServiceStub(channel)
            auth = (("authorization", f"Bearer {mint_token(env.secret, 'bench', SCOPES)}"),)
            for n in range(1, 16):
                request = conversation(2000, metadata=True, prefix=prefix, user="bench-user-1")
                stub.EndConversation(request, metadata=auth, timeout=10)
                wait_terminal(env, prefix, n, 10)
        ms = [(done - accepted).total_seconds() * 1000 for accepted, done in
              completion_times(env, prefix)]
        values.append(percentile(ms, 50))
        commit, rpc, hop = floors(env)
        bases.append(PATH_COMMITS * commit + PATH_RPCS * rpc + hop)
        notes.append(f"commit {commit:.1f}, RPC {rpc:.1f}, hop {hop:.1f} ms")
    value, baseline = Figure(tuple(values)), Figure(tuple(bases))
    r = ratio(value, baseline)
    return Row(
        "accept → PROCESSED p50, complete metadata (no LLM call)", value, baseline, " ms", r,
        "≤ 3×", r.median <= 3,
        f"floor = {PATH_COMMITS} commits + {PATH_RPCS} RPCs + 1 hop; last run: {notes[-1]}",
    )


def start_extra_analyzer(env: Env) -> ServiceProcess:
    base = env.stack.analyzer
    grpc_port, metrics_port = free_port(), free_port()
    extra = ServiceProcess(
        "analyzer-2", base.command, grpc_port, metrics_port,
        dict(base.env, GRPC_PORT=str(grpc_port), METRICS_PORT=str(metrics_port)),
        env.workdir / "analyzer-2.log",
    )
    extra.start()
    extra.wait_serving()
    return extra


def pipeline_run(env: Env, conversations: int) -> tuple[float, float]:
    """Conversations/s between 10 % and 90 % of completions, and machine CPU busy %."""
    prefix = f"pipe-{secrets.token_hex(3)}"
    busy0, total0 = machine_busy()
    load(env, "closed", "ingest", env.stack.ingest.target, "--count", str(conversations),
         "--in-flight", "16", "--size", "2000", "--prefix", prefix, "--warmup", "0",
         "--duration", "120")
    wait_terminal(env, prefix, conversations, 120)
    busy1, total1 = machine_busy()
    done = [d for _, d in completion_times(env, prefix)]
    lo, hi = done[len(done) // 10], done[len(done) * 9 // 10]
    rate = (len(done) * 9 // 10 - len(done) // 10) / max((hi - lo).total_seconds(), 1e-6)
    return rate, 100 * (busy1 - busy0) / max(total1 - total0, 1)


def pipeline_rows(env: Env) -> list[Row]:
    env.groq.reset()
    env.groq.when(slow(LLM_LATENCY_S))
    one, two, cpu_one, cpu_two = [], [], [], []
    conversations = int(PREFETCH / LLM_LATENCY_S * 2 * SECONDS)
    for i in range(RUNS):
        log(f"pipeline with a {LLM_LATENCY_S * 1000:.0f} ms LLM, one analyzer, run {i + 1}")
        rate, cpu = pipeline_run(env, conversations)
        one.append(rate)
        cpu_one.append(cpu)
        log(f"pipeline, two analyzers, run {i + 1}")
        extra = start_extra_analyzer(env)
        try:
            rate, cpu = pipeline_run(env, conversations)
            two.append(rate)
            cpu_two.append(cpu)
            if i == 0:
                env.sizing["analyzer (prefetch 8, 2 KB, 200 ms LLM)"] = (
                    f"{rss_bytes(pid_of(extra)) / MB:.0f} MiB"
                )
        finally:
            extra.stop()
    env.groq.reset()
    bound = Figure(tuple(PREFETCH / LLM_LATENCY_S for _ in one))
    value = Figure(tuple(one))
    r = ratio(value, bound)
    busy = Figure(tuple(cpu_one))
    rows = [
        Row(
            f"pipeline conversations/s, accept → PROCESSED, {LLM_LATENCY_S * 1000:.0f} ms fake"
            f" LLM, fake Mem0, ANALYZER_PREFETCH={PREFETCH}", value, bound, "/s", r, "≥ 0.8",
            r.median >= 0.8, f"machine CPU busy {busy.show('%', 0)}",
        )
    ]
    value2, base1 = Figure(tuple(two)), Figure(tuple(one))
    r2 = ratio(value2, base1)
    rows.append(
        Row(
            "two analyzer processes vs one, I/O-bound (same fake LLM)", value2, base1, "/s", r2,
            "≥ 1.8×", r2.median >= 1.8,
            f"machine CPU busy with two {Figure(tuple(cpu_two)).show('%', 0)}",
        )
    )
    return rows


def ingest_rows(env: Env) -> list[Row]:
    plain, envoy, bare, ingest_cpu = [], [], [], []
    peaks: list[int] = []
    idle = rss_bytes(pid_of(env.stack.ingest))
    for i in range(RUNS):
        log(f"ingest 20 KB, 32 in flight, run {i + 1}")
        args = ("--in-flight", "32", "--duration", str(SECONDS), "--size", "20000",
                "--metadata", "--prefix", f"thr{i}")
        with (
            rss_sampler(pid_of(env.stack.ingest), 0.02) as samples,
            cpu_share(pid_of(env.stack.ingest)) as share,
        ):
            plain.append(num(load(env, "closed", "ingest", env.stack.ingest.target, *args),
                             "rate"))
        peaks.append(max(samples))
        ingest_cpu.append(share[0])
        bare.append(num(bare_insert(env, 32, SECONDS, 20_000), "rate"))
        envoy.append(num(load(env, "closed", "ingest", f"127.0.0.1:{env.envoy_port}", *args),
                         "rate"))
    env.sizing["ingest idle"] = f"{idle / MB:.0f} MiB"
    env.sizing["ingest peak, 32 × 20 KB in flight"] = f"{max(peaks) / MB:.0f} MiB"
    base = Figure(tuple(bare))
    rows = []
    for name, values in (("plain gRPC", plain), ("through Envoy", envoy)):
        value = Figure(tuple(values))
        r = ratio(value, base)
        rows.append(
            Row(
                f"ingest accepts/s, {name}, 20 KB, 32 in flight, analyzer working", value, base,
                "/s", r, "≥ 0.6", r.median >= 0.6,
                "" if name != "plain gRPC" else
                f"ingest process CPU {Figure(tuple(ingest_cpu)).show('%', 0)} of one core",
            )
        )
    lat, bare_lat = [], []
    for i in range(RUNS):
        log(f"ingest accept latency, one at a time, run {i + 1}")
        lat.append(num(load(env, "closed", "ingest", env.stack.ingest.target, "--duration",
                            str(SECONDS / 2), "--size", "20000", "--metadata"), "p50_ms"))
        bare_lat.append(num(bare_insert(env, 1, SECONDS / 2, 20_000), "p50_ms"))
    value, base = Figure(tuple(lat)), Figure(tuple(bare_lat))
    r = ratio(value, base)
    rows.append(
        Row("ingest accept latency p50, one request at a time (20 KB)", value, base, " ms", r,
            "≤ 2×", r.median <= 2)
    )
    drain_backlog(env)
    rows.extend(ingest_alone_rows(env))
    return rows


def ingest_alone_rows(env: Env) -> list[Row]:
    """The two ingest rows again with the analyzer stopped: what ingest costs by itself,
    apart from the pipeline work each accepted conversation causes on the same 2 cores."""
    env.stack.analyzer.stop()
    try:
        rate, bare_rate, lat, bare_lat = [], [], [], []
        for i in range(RUNS):
            log(f"ingest alone (analyzer stopped), run {i + 1}")
            rate.append(num(load(env, "closed", "ingest", env.stack.ingest.target,
                                 "--in-flight", "32", "--duration", str(SECONDS / 2),
                                 "--size", "20000", "--metadata"), "rate"))
            bare_rate.append(num(bare_insert(env, 32, SECONDS / 2, 20_000), "rate"))
            lat.append(num(load(env, "closed", "ingest", env.stack.ingest.target,
                                "--duration", str(SECONDS / 2), "--size", "20000",
                                "--metadata"), "p50_ms"))
            bare_lat.append(num(bare_insert(env, 1, SECONDS / 2, 20_000), "p50_ms"))
        drain_backlog(env)
    finally:
        env.stack.analyzer.start()
        env.stack.analyzer.wait_serving()
    rows = []
    for measure, values, bases, unit, target in (
        ("ingest accepts/s, plain gRPC, 20 KB, 32 in flight, **analyzer stopped** (diagnostic)",
         rate, bare_rate, "/s", "≥ 0.6"),
        ("ingest accept latency p50, one at a time, **analyzer stopped** (diagnostic)",
         lat, bare_lat, " ms", "≤ 2×"),
    ):
        value, base = Figure(tuple(values)), Figure(tuple(bases))
        r = ratio(value, base)
        met = r.median >= 0.6 if target == "≥ 0.6" else r.median <= 2
        rows.append(Row(measure, value, base, unit, r, target, met))
    return rows


def ingest_memory_row(env: Env) -> Row:
    pid = pid_of(env.stack.ingest)
    growth, payload = [], []
    for size, label in ((256 * 1024, "256 KB"),):
        with rss_sampler(pid) as samples:
            load(env, "closed", "ingest", env.stack.ingest.target, "--in-flight", "32",
                 "--duration", str(SECONDS / 2), "--size", str(size), "--metadata",
                 "--warmup", "1")
        env.sizing[f"ingest peak, 32 × {label} in flight"] = f"{max(samples) / MB:.0f} MiB"
    for i in range(RUNS):
        log(f"ingest RSS, 32 × 1 MB in flight, run {i + 1}")
        idle = rss_bytes(pid)
        with rss_sampler(pid) as samples:
            load(env, "closed", "ingest", env.stack.ingest.target, "--in-flight", "32",
                 "--duration", str(SECONDS), "--size", str(MB), "--metadata", "--warmup", "1")
        growth.append((max(samples) - idle) / MB)
        payload.append(32.0)
        env.sizing[f"ingest peak, 32 × 1 MB in flight (run {i + 1})"] = (
            f"{max(samples) / MB:.0f} MiB (idle before {idle / MB:.0f} MiB)"
        )
    drain_backlog(env)
    value, base = Figure(tuple(growth)), Figure(tuple(payload))
    r = ratio(value, base)
    return Row(
        "ingest peak RSS growth over idle, 32 requests of 1 MB in flight", value, base, " MiB",
        r, "≤ 3×", r.median <= 3, "baseline = payload bytes in flight (32 MiB)",
    )


def analyzer_rss_row(env: Env) -> Row:
    pid = pid_of(env.stack.analyzer)
    prefix = f"rss-{secrets.token_hex(3)}"
    reference_at = max(1, RSS_CONVERSATIONS // 10)
    env.groq.reset()
    points: list[tuple[int, int]] = []
    log(f"analyzer RSS over {RSS_CONVERSATIONS} conversations of ~1 MB")
    sender = threading.Thread(
        target=load,
        args=(env, "closed", "ingest", env.stack.ingest.target, "--count",
              str(RSS_CONVERSATIONS), "--in-flight", "4", "--size", str(MB), "--prefix",
              prefix, "--warmup", "0", "--duration", "3000"),
    )
    cpu0 = cpu_seconds(pid)
    sender.start()
    deadline = time.monotonic() + 1200
    done = 0
    while done < RSS_CONVERSATIONS and time.monotonic() < deadline:
        time.sleep(1)
        done = count_terminal(env, prefix)
        points.append((done, rss_bytes(pid)))
        if len(env.groq.requests) > 1000:
            env.groq.reset()
    sender.join()
    time.sleep(3)
    points.append((count_terminal(env, prefix), rss_bytes(pid)))
    malloc = diagnose(env, env.stack.analyzer.target)
    reference = next(rss for n, rss in points if n >= reference_at)
    final = points[-1][1]
    peak = max(rss for _, rss in points)
    env.sizing["analyzer (prefetch 8, ~1 MB conversations)"] = (
        f"after {reference_at}: {reference / MB:.0f} MiB, peak {peak / MB:.0f} MiB,"
        f" end {final / MB:.0f} MiB"
    )
    curve = ", ".join(f"{n}: {rss / MB:.0f}" for n, rss in points[:: max(1, len(points) // 8)])
    drift = Figure((100 * (final - reference) / reference,))
    return Row(
        f"analyzer RSS over {points[-1][0]} conversations of ~1 MB (drift vs after the first"
        f" {reference_at})", Figure((final / MB,)), Figure((reference / MB,)), " MiB", drift,
        "drift ≤ 10 %", abs(drift.median) <= 10,
        f"RSS MiB by conversations done: {curve}; analyzer CPU {cpu_seconds(pid) - cpu0:.0f} s;"
        f" then `springctl diagnose --trim`: {malloc}",
    )


def diagnose(env: Env, target: str) -> str:
    """What DiagnosticsService says of a process: malloc's free memory, and a trim."""
    token = mint_token(env.secret, "bench", ["internal"])
    with grpc.insecure_channel(target) as channel:
        reply = diagnostics_pb2_grpc.DiagnosticsServiceStub(channel).GetDiagnostics(
            diagnostics_pb2.GetDiagnosticsRequest(trim=True),
            metadata=(("authorization", f"Bearer {token}"),), timeout=30,
        )
    report = json.loads(reply.report_json)
    trim, malloc = report["trim"], report["malloc"] or {}
    return (
        f"RSS {trim['rss_before_bytes'] / MB:.0f} → {trim['rss_after_bytes'] / MB:.0f} MiB,"
        f" malloc in use {malloc.get('in_use_bytes', 0) / MB:.0f} MiB, free in arenas"
        f" {malloc.get('free_in_arenas_bytes', 0) / MB:.1f} MiB"
    )


# --- set-up and report ---------------------------------------------------------------------
@contextmanager
def environment() -> Iterator[Env]:
    workdir = Path(tempfile.mkdtemp(prefix="spring-bench-"))
    secret = secrets.token_hex(24)
    namespace = new_namespace()
    groq, mem0 = FakeGroq(), FakeMem0(pending_polls=0)
    for fake in (groq, mem0):
        fake.start()
        no_nagle(fake)
    with own_database("bench") as url:
        stack = build_stack(
            database_url=url, amqp_url=AMQP_URL, namespace=namespace, jwt_secret=secret,
            log_dir=workdir,
            extra_env={
                "GROQ_API_KEY": groq.api_key, "GROQ_BASE_URL": groq.url,
                "MEM0_API_KEY": mem0.api_key, "MEM0_BASE_URL": mem0.url,
                "ANALYZER_MEMORY_POLL_INITIAL_S": "0.001",
                "ANALYZER_PREFETCH": str(PREFETCH),
            },
        )
        empty = subprocess.Popen(
            [PY, "-m", "bench.empty_server", "--secret", secret], cwd=ROOT,
            stdout=subprocess.PIPE, text=True,
        )
        envoy: subprocess.Popen[bytes] | None = None
        engine = sa.create_engine(sqlalchemy_url(url), pool_size=2)
        try:
            for service in stack.services:
                service.start()
            for service in stack.services:
                service.wait_serving()
            assert empty.stdout is not None
            empty_port = int(json.loads(empty.stdout.readline())["port"])
            cfg = EdgeConfig(
                edge_port=free_port(), admin_port=free_port(),
                ingest=("127.0.0.1", stack.ingest.grpc_port), allowed_origins=(),
            )
            config = workdir / "envoy.yaml"
            config.write_text(edge_config(cfg))
            with (workdir / "envoy.log").open("ab") as envoy_log:
                envoy = subprocess.Popen(envoy_command(config), stdout=envoy_log,
                                         stderr=subprocess.STDOUT)
            wait_http(f"http://127.0.0.1:{cfg.admin_port}/ready")
            yield Env(stack, url, engine, secret, cfg.edge_port, empty_port, groq, workdir)
        finally:
            for process in (empty, envoy):
                if process is not None:
                    process.terminate()
                    process.wait(timeout=15)
            for service in reversed(stack.services):
                if service.process is not None:
                    service.stop()
            engine.dispose()
            groq.close()
            mem0.close()
            asyncio.run(delete_namespace(AMQP_URL, namespace, [10, 60, 180, 600]))


PER_ADDRESS_BUCKET = "token_bucket: { max_tokens: 40, tokens_per_fill: 1, fill_interval: 0.05s }"


def edge_config(cfg: EdgeConfig) -> str:
    """deploy/envoy/envoy.yaml as `make run` renders it, with the per-client-address rate
    limit (20/s, burst 40) raised to the pod's ceiling: the load generator is one address.
    Everything else (filters, buffer, the 2000/s ceiling) stays."""
    text = render_envoy_config(cfg)
    if text.count(PER_ADDRESS_BUCKET) != 1:
        raise RuntimeError("deploy/envoy/envoy.yaml: the per-address bucket changed; update bench")
    return text.replace(
        PER_ADDRESS_BUCKET,
        "token_bucket: { max_tokens: 2000, tokens_per_fill: 100, fill_interval: 0.05s }",
    )


def no_nagle(fake: FakeGroq | FakeMem0) -> None:
    """TCP_NODELAY on the fakes' connections: http.server writes headers and body in two
    sends, and Nagle + delayed ACK then add ~40 ms to every call, which no real provider
    does (the first runs measured 48 ms per fake Mem0 call because of it)."""
    assert fake._server is not None
    handler: Any = fake._server.RequestHandlerClass
    handler.disable_nagle_algorithm = True


def wait_http(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready")


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown",
    )
    ram = next(
        int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    load1 = os.getloadavg()[0]
    return (f"{os.cpu_count()} CPUs (nproc), {cpu}, {ram} MiB RAM, Python"
            f" {platform.python_version()}, load average at start {load1:.2f}")


def render(rows: list[Row], env_sizing: dict[str, str], started: datetime, seconds: float,
           host: str) -> str:
    lines = [
        "| measure | figure | baseline (same run) | ratio | target | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row.measure} | {row.value.show(row.unit)} | {row.baseline.show(row.unit)} |"
            f" {row.ratio.show('', 2)} | {row.target} | {'yes' if row.met else '**no**'} |"
        )
    notes = [f"- {row.measure}: {row.note}" for row in rows if row.note]
    sizing = [f"| {k} | {v} |" for k, v in env_sizing.items()]
    return "\n".join(
        [
            f"Run of {started:%Y-%m-%d %H:%M} UTC, {seconds / 60:.1f} minutes; machine: {host}.",
            f"Each figure: median of {RUNS} runs [min–max]; ratio = figure ÷ baseline per run.",
            "",
            *lines,
            "",
            "Notes:",
            *notes,
            "",
            "| process | RSS |",
            "| --- | --- |",
            *sizing,
        ]
    )


RESULTS_BEGIN = "<!-- bench:results:begin -->"
RESULTS_END = "<!-- bench:results:end -->"


def write_docs(table: str) -> None:
    path = ROOT / "docs" / "benchmarks.md"
    empty = f"# Benchmarks\n\n{RESULTS_BEGIN}\n{RESULTS_END}\n"
    text = path.read_text() if path.exists() else empty
    head, rest = text.split(RESULTS_BEGIN, 1)
    _, tail = rest.split(RESULTS_END, 1)
    path.write_text(f"{head}{RESULTS_BEGIN}\n{table}\n{RESULTS_END}{tail}")


MEASURES: dict[str, Callable[[Env], list[Row]]] = {
    "getlevel": getlevel_rows,
    "latency": lambda env: [pipeline_latency_row(env)],
    "pipeline": pipeline_rows,
    "ingest": ingest_rows,
    "ingest-memory": lambda env: [ingest_memory_row(env)],
    "analyzer-rss": lambda env: [analyzer_rss_row(env)],
}


def main() -> None:
    chosen = sys.argv[1:] or list(MEASURES)
    started, begin = datetime.now(UTC), time.monotonic()
    host = machine()
    rows: list[Row] = []
    with environment() as env:
        for name in chosen:
            rows.extend(MEASURES[name](env))
        sizing = env.sizing
    table = render(rows, sizing, started, time.monotonic() - begin, host)
    sys.stdout.write(table + "\n")
    if chosen == list(MEASURES):
        write_docs(table)


if __name__ == "__main__":
    main()
