"""`springctl diagnose <target>`: the memory and work report of a live process
(spring.ops.v1.DiagnosticsService, internal scope). See docs/memory.md.

    springctl diagnose analyzer --sample 30        # heap growth over 30 s
    springctl diagnose 10.0.3.7:50051 --trim --json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import grpc

from servicekit.auth import mint_token
from spring.ops.v1 import diagnostics_pb2, diagnostics_pb2_grpc
from springctl.devsecret import resolve_secret

TARGETS = {
    "ingest": os.environ.get("INGEST_GRPC_TARGET", "127.0.0.1:50051"),
    "analyzer": os.environ.get("ANALYZER_GRPC_TARGET", "127.0.0.1:50052"),
    "friendship": os.environ.get("FRIENDSHIP_GRPC_TARGET", "127.0.0.1:50053"),
}
MB = 1 << 20


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _mib(value: Any) -> str:
    return "n/a" if value is None else f"{value / MB:.1f} MiB"


def summary(report: dict[str, Any]) -> list[str]:
    """A few lines an operator reads first; --json prints everything."""
    memory, malloc = report.get("memory", {}), report.get("malloc") or {}
    lines = [
        f"{report['service']} pid {report['pid']}, up {report['uptime_s']:.0f} s",
        f"RSS {_mib(memory.get('rss_bytes'))} (peak {_mib(memory.get('peak_rss_bytes'))})",
    ]
    if malloc:
        lines.append(
            f"malloc: in use {_mib(malloc['in_use_bytes'])}, free inside arenas"
            f" {_mib(malloc['free_in_arenas_bytes'])} ({malloc['free_chunks']} chunks),"
            f" big mmaps {_mib(malloc['mmapped_bytes'])}"
        )
    if "trim" in report:
        trim = report["trim"]
        lines.append(
            f"malloc_trim: RSS {_mib(trim['rss_before_bytes'])} -> {_mib(trim['rss_after_bytes'])}"
        )
    heap = report.get("python_heap")
    if heap:
        lines.append(
            f"Python heap over {heap['sample_seconds']} s (traced {_mib(heap['traced_bytes'])}):"
        )
        lines += [
            f"  {row['size_diff_bytes']:+12,d} B {row['count_diff']:+8d} objs  {row['site']}"
            for row in heap["top_growth"]
        ]
    objects = report.get("objects", {})
    lines.append(f"objects tracked by gc: {objects.get('tracked')}")
    lines += [f"  {count:10d}  {name}" for name, count in objects.get("by_type", {}).items()]
    work = report.get("work", {})
    lines.append(f"threads {work.get('threads')}, asyncio tasks {work.get('asyncio_tasks')}")
    lines += [f"  {name} = {value:g}" for name, value in work.get("gauges", {}).items()]
    return lines


def cmd_diagnose(args: argparse.Namespace) -> int:
    target = TARGETS.get(args.target, args.target)
    token = args.token or os.environ.get("SPRING_OPERATOR_TOKEN") or mint_token(
        resolve_secret(), "springctl-operator", ["internal"], ttl_s=600
    )
    request = diagnostics_pb2.GetDiagnosticsRequest(
        heap_sample_seconds=args.sample, top=args.top, trim=args.trim
    )
    with grpc.insecure_channel(target) as channel:
        stub = diagnostics_pb2_grpc.DiagnosticsServiceStub(channel)
        try:
            reply = stub.GetDiagnostics(
                request, metadata=(("authorization", f"Bearer {token}"),),
                timeout=args.sample + 30,
            )
        except grpc.RpcError as err:
            call: Any = err
            _out(f"error: {call.code().name}: {call.details()}")
            return 1
    report = json.loads(reply.report_json)
    if args.json:
        _out(json.dumps(report, indent=2))
    else:
        _out("\n".join(summary(report)))
    return 0


def register(sub: Any) -> None:
    """Adds `diagnose` to springctl's sub-commands."""
    cmd = sub.add_parser(
        "diagnose",
        help="memory and work of a live process: RSS, heap growth by line, objects, malloc",
    )
    cmd.add_argument("target", help="ingest | analyzer | friendship | HOST:PORT")
    cmd.add_argument("--sample", type=int, default=0,
                     help="seconds of tracemalloc between two snapshots (0 = none, max 60)")
    cmd.add_argument("--top", type=int, default=15, help="rows per table")
    cmd.add_argument("--trim", action="store_true", help="malloc_trim first, show RSS before/after")
    cmd.add_argument("--json", action="store_true", help="the whole report as JSON")
    cmd.set_defaults(func=cmd_diagnose)
