"""Load generators (a process of their own): closed loop (N in flight) and open loop (fixed rate).

    python -m bench.load closed --call ingest --target HOST:PORT --in-flight 32 --duration 5
    python -m bench.load open --call getlevel --target HOST:PORT --rate 400 --duration 5

Prints one JSON line: count, errors, seconds, rate, p50_ms, p99_ms (and the first error code).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc

from bench.stats import percentile
from servicekit.auth import mint_token
from spring.friendship.v1 import friendship_pb2, friendship_pb2_grpc
from spring.ingest.v1 import ingest_pb2, ingest_pb2_grpc

Call = Callable[[], Awaitable[object]]
SCOPES = ["ingest:write", "ingest:read", "friendship:read"]


def conversation(size_bytes: int, *, metadata: bool, prefix: str, user: str) -> (
    ingest_pb2.EndConversationRequest
):
    """A conversation of about `size_bytes` of text in turns of ~400 characters."""
    sentence = "We talked about dinosaurs, volcanoes and the stars tonight. "
    turn_text = (sentence * 7)[:400]
    turns = max(1, size_bytes // len(turn_text))
    request = ingest_pb2.EndConversationRequest(
        conversation_id=f"{prefix}-{uuid.uuid4().hex}",
        user_id=user,
        bot_id="bench-bot",
        agent_tag="science",
        conversation_log=[
            ingest_pb2.Turn(role="user" if i % 2 == 0 else "assistant", content=turn_text)
            for i in range(turns)
        ],
    )
    if metadata:
        request.metadata.user_initiated_questions = 2
        request.metadata.session_emotion = ingest_pb2.EMOTION_HAPPY
    return request


@dataclass
class Results:
    latencies_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1

    def summary(self, seconds: float) -> dict[str, object]:
        ms = [x * 1000 for x in self.latencies_s]
        return {
            "count": len(ms),
            "errors": self.errors,
            "seconds": seconds,
            "rate": len(ms) / seconds if seconds > 0 else 0.0,
            "p50_ms": percentile(ms, 50) if ms else None,
            "p99_ms": percentile(ms, 99) if ms else None,
        }


def make_call(
    channel: grpc.aio.Channel, args: argparse.Namespace
) -> Call:
    token = mint_token(args.secret, "bench", SCOPES, ttl_s=3600)
    auth = (("authorization", f"Bearer {token}"),)
    kind, size, prefix, users = args.call, args.size, args.prefix, args.users
    counter = iter(range(1 << 62))
    if kind == "getlevel":
        level_stub = friendship_pb2_grpc.FriendshipServiceStub(channel)

        def level() -> Awaitable[object]:
            user = f"bench-user-{next(counter) % users}"
            return level_stub.GetLevel(
                friendship_pb2.GetLevelRequest(user_id=user), metadata=auth, timeout=10
            )

        return level
    ingest_stub = ingest_pb2_grpc.IngestServiceStub(channel)
    template = conversation(size, metadata=args.metadata, prefix=prefix, user="bench-user-0")

    def end() -> Awaitable[object]:
        request = ingest_pb2.EndConversationRequest()
        request.CopyFrom(template)
        n = next(counter)
        request.conversation_id = f"{prefix}-{uuid.uuid4().hex}"
        request.user_id = f"bench-user-{n % users}"
        return ingest_stub.EndConversation(request, metadata=auth, timeout=30)

    return end


async def _one(call: Call, results: Results, started: float) -> None:
    try:
        await call()
    except grpc.aio.AioRpcError as err:
        results.error(err.code().name)
        return
    results.latencies_s.append(time.perf_counter() - started)


async def closed_loop(
    call: Call, in_flight: int, duration_s: float, count: int = 0
) -> tuple[Results, float]:
    """`in_flight` callers, each calling again as soon as answered, for `duration_s` (or
    until `count` calls started, when set)."""
    results = Results()
    begin = time.perf_counter()
    stop_at = begin + duration_s
    remaining = [count]

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            if count:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            await _one(call, results, time.perf_counter())

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return results, time.perf_counter() - begin


async def open_loop(call: Call, rate: float, duration_s: float) -> tuple[Results, float]:
    """Requests start on a fixed schedule whatever the answers; latency counts from the
    scheduled start, so a stalled server is not hidden (no coordinated omission)."""
    results = Results()
    interval = 1 / rate
    begin = time.perf_counter()
    tasks: set[asyncio.Task[None]] = set()
    n = 0
    while (scheduled := begin + n * interval) < begin + duration_s:
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(_one(call, results, scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
    if tasks:
        await asyncio.gather(*tasks)
    return results, time.perf_counter() - begin



async def _main(args: argparse.Namespace) -> dict[str, object]:
    options = [
        ("grpc.max_send_message_length", 8 << 20),
        ("grpc.max_receive_message_length", 8 << 20),
    ]
    async with grpc.aio.insecure_channel(args.target, options=options) as channel:
        call = make_call(channel, args)
        for _ in range(args.warmup):
            await call()
        if args.mode == "closed":
            results, seconds = await closed_loop(call, args.in_flight, args.duration, args.count)
        else:
            results, seconds = await open_loop(call, args.rate, args.duration)
    return results.summary(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.load")
    parser.add_argument("mode", choices=["closed", "open"])
    parser.add_argument("--call", choices=["ingest", "getlevel"], required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--in-flight", type=int, default=1)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--count", type=int, default=0, help="closed loop: stop after N calls")
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--metadata", action="store_true")
    parser.add_argument("--prefix", default="bench")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    summary = asyncio.run(_main(args))
    sys.stdout.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
