"""Leak, or bloat and fragmentation? A report of a live process, served as
`spring.ops.v1.DiagnosticsService/GetDiagnostics` by every GrpcServer (internal scope).

- RSS and its peak (/proc/self/status);
- Python heap growth by allocation site: two tracemalloc snapshots `heap_sample_seconds`
  apart, top lines by size difference (tracing runs only during the sample);
- live objects by type (gc), garbage collector counts;
- glibc malloc (mallinfo2): bytes in use vs free inside the arenas. Much free memory held
  in the arenas with a flat Python heap is fragmentation, not a leak; `trim` gives it back
  (malloc_trim) and reports RSS before and after;
- work in progress: threads, asyncio tasks, and every Prometheus gauge of pools, in-flight
  work and backlogs (db_pool_in_use, *_in_flight, *_backlog ...).

Only counts, sizes, type names and source lines: never conversation text.
See docs/memory.md for how to read it.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import json
import logging
import os
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
from prometheus_client import REGISTRY

from spring.ops.v1 import diagnostics_pb2, diagnostics_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = diagnostics_pb2.DESCRIPTOR.services_by_name["DiagnosticsService"].full_name
MAX_SAMPLE_S = 60
DEFAULT_TOP = 15
_GAUGE_HINTS = ("pool", "in_flight", "in_use", "backlog", "queue_depth", "inflight")
_STARTED = time.monotonic()


# --- glibc ------------------------------------------------------------------------------------
class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost",
        )
    ]


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


_LIBC = _libc()


def malloc_info() -> dict[str, int] | None:
    """glibc's mallinfo2 (main arena + threads' arenas), or None off glibc."""
    if _LIBC is None or not hasattr(_LIBC, "mallinfo2"):
        return None
    _LIBC.mallinfo2.restype = _MallInfo2
    info = _LIBC.mallinfo2()
    return {
        "heap_bytes": info.arena,  # obtained with brk/sbrk and arena mmaps (not big mmaps)
        "mmapped_bytes": info.hblkhd,  # big blocks mmapped on their own
        "in_use_bytes": info.uordblks,
        "free_in_arenas_bytes": info.fordblks,  # held by malloc, not used: fragmentation
        "free_chunks": info.ordblks,
        "releasable_top_bytes": info.keepcost,
    }


def malloc_trim() -> bool:
    """Give free memory inside glibc's arenas back to the OS; True if some was released."""
    if _LIBC is None or not hasattr(_LIBC, "malloc_trim"):
        return False
    return bool(_LIBC.malloc_trim(0))


async def trim_periodically(interval_s: float) -> None:
    """malloc_trim every `interval_s` (in a thread: it walks the arenas under their locks).

    Large conversations leave free chunks inside the heap once they are gone; without a
    trim RSS keeps that high-water mark for the life of the process.
    """
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(malloc_trim)
        except Exception:  # never let housekeeping kill a server
            log.exception("malloc_trim failed")


# --- /proc --------------------------------------------------------------------------------------
def process_memory() -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) and VmSize of this process in bytes (Linux)."""
    wanted = {"VmRSS": "rss_bytes", "VmHWM": "peak_rss_bytes", "VmSize": "virtual_bytes"}
    found: dict[str, int] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key = line.split(":", 1)[0]
            if key in wanted:
                found[wanted[key]] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return found


# --- Python -------------------------------------------------------------------------------------
def live_objects(top: int) -> dict[str, Any]:
    counts = Counter(type(obj).__name__ for obj in gc.get_objects())
    return {
        "tracked": sum(counts.values()),
        "by_type": dict(counts.most_common(top)),
        "gc_counts": list(gc.get_count()),
        "gc_uncollectable": len(gc.garbage),
    }


async def heap_growth(sample_s: float, top: int) -> dict[str, Any]:
    """Top allocation sites by growth between two tracemalloc snapshots `sample_s` apart."""
    started_here = not tracemalloc.is_tracing()
    if started_here:
        tracemalloc.start(1)
    try:
        first = tracemalloc.take_snapshot()
        await asyncio.sleep(sample_s)
        second = tracemalloc.take_snapshot()
        traced, peak = tracemalloc.get_traced_memory()
    finally:
        if started_here:
            tracemalloc.stop()
    stats = second.compare_to(first, "lineno")
    return {
        "sample_seconds": sample_s,
        "traced_bytes": traced,
        "traced_peak_bytes": peak,
        "top_growth": [
            {
                "site": f"{stat.traceback[0].filename}:{stat.traceback[0].lineno}",
                "size_diff_bytes": stat.size_diff,
                "size_bytes": stat.size,
                "count_diff": stat.count_diff,
            }
            for stat in stats[:top]
        ],
    }


def work_gauges() -> dict[str, float]:
    """Current values of the gauges about pools, in-flight work and backlogs."""
    values: dict[str, float] = {}
    for metric in REGISTRY.collect():
        if metric.type != "gauge" or not any(h in metric.name for h in _GAUGE_HINTS):
            continue
        for sample in metric.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


def _tasks() -> int:
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:
        return 0


async def report(service: str, *, heap_sample_s: float, top: int, trim: bool) -> dict[str, Any]:
    result: dict[str, Any] = {
        "service": service,
        "pid": os.getpid(),
        "uptime_s": round(time.monotonic() - _STARTED, 1),
    }
    if trim:
        before = process_memory().get("rss_bytes", 0)
        released = await asyncio.to_thread(malloc_trim)
        after = process_memory().get("rss_bytes", 0)
        result["trim"] = {"released": released, "rss_before_bytes": before,
                          "rss_after_bytes": after}
    if heap_sample_s > 0:
        result["python_heap"] = await heap_growth(heap_sample_s, top)
    result["memory"] = process_memory()
    result["malloc"] = malloc_info()
    result["objects"] = live_objects(top)
    result["work"] = {
        "threads": threading.active_count(),
        "asyncio_tasks": _tasks(),
        "gauges": work_gauges(),
    }
    return result


class DiagnosticsServicer(diagnostics_pb2_grpc.DiagnosticsServiceServicer):
    def __init__(self, service: str) -> None:
        self._service = service
        self._lock = asyncio.Lock()  # one sample at a time: tracemalloc is process-wide

    async def GetDiagnostics(
        self,
        request: diagnostics_pb2.GetDiagnosticsRequest,
        context: grpc.aio.ServicerContext[
            diagnostics_pb2.GetDiagnosticsRequest, diagnostics_pb2.GetDiagnosticsResponse
        ],
    ) -> diagnostics_pb2.GetDiagnosticsResponse:
        if not 0 <= request.heap_sample_seconds <= MAX_SAMPLE_S or request.top < 0:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"heap_sample_seconds must lie in 0..{MAX_SAMPLE_S}, top >= 0",
            )
        async with self._lock:
            body = await report(
                self._service,
                heap_sample_s=request.heap_sample_seconds,
                top=request.top or DEFAULT_TOP,
                trim=request.trim,
            )
        log.info("diagnostics served", extra={"rss_bytes": body["memory"].get("rss_bytes")})
        return diagnostics_pb2.GetDiagnosticsResponse(
            service=self._service,
            rss_bytes=int(body["memory"].get("rss_bytes", 0)),
            report_json=json.dumps(body),
        )


def add_to_server(server: grpc.aio.Server, service: str) -> None:
    diagnostics_pb2_grpc.add_DiagnosticsServiceServicer_to_server(
        DiagnosticsServicer(service), server
    )
