"""The baseline of ingest's accept: the same durable insert + outbox row in one commit,
SQLAlchemy Core over psycopg2 (the card's driver), N threads each with a pooled connection.
No gRPC, no validation, no normalization: what the database and driver allow.

    python -m bench.bare_insert --url postgresql://... --concurrency 32 --duration 5 --size 20000

Prints one JSON line: count, seconds, rate, p50_ms, p99_ms.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa

from bench.stats import percentile
from servicekit.db import sqlalchemy_url

# Copies of ingest's tables (same columns, indexes and JSONB), in a schema of their own.
SETUP = [
    "CREATE SCHEMA IF NOT EXISTS bench",
    "CREATE TABLE IF NOT EXISTS bench.conversations (LIKE ingest.conversations INCLUDING ALL)",
    "CREATE TABLE IF NOT EXISTS bench.outbox (LIKE ingest.outbox INCLUDING ALL)",
]
INSERT_CONVERSATION = sa.text(
    "INSERT INTO bench.conversations (conversation_id, user_id, bot_id, raw_log,"
    " normalized_log, content_hash, status, accepted_at, updated_at)"
    " VALUES (:id, :user, 'bench-bot', CAST(:raw AS jsonb), CAST(:normalized AS jsonb),"
    " :hash, 'PENDING', :now, :now) ON CONFLICT (conversation_id) DO NOTHING"
    " RETURNING conversation_id"
)
INSERT_OUTBOX = sa.text("INSERT INTO bench.outbox (conversation_id, created_at) VALUES (:id, :now)")


def turns(size_bytes: int) -> list[dict[str, object]]:
    text = ("We talked about dinosaurs, volcanoes and the stars tonight. " * 7)[:400]
    count = max(1, size_bytes // len(text))
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "content": text, "at": None}
        for i in range(count)
    ]


def run(url: str, concurrency: int, duration_s: float, size: int) -> dict[str, object]:
    engine = sa.create_engine(sqlalchemy_url(url), pool_size=concurrency, max_overflow=0)
    with engine.begin() as conn:
        for statement in SETUP:
            conn.execute(sa.text(statement))
    log = turns(size)
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + duration_s

    def worker() -> None:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            conversation_id = f"bare-{uuid.uuid4().hex}"
            now = datetime.now(UTC)
            with engine.begin() as conn:
                inserted = conn.execute(
                    INSERT_CONVERSATION,
                    {
                        "id": conversation_id, "user": "bench-user", "raw": json.dumps(log),
                        "normalized": json.dumps(log), "hash": "0" * 64, "now": now,
                    },
                ).first()
                if inserted is not None:
                    conn.execute(INSERT_OUTBOX, {"id": conversation_id, "now": now})
            with lock:
                latencies.append(time.perf_counter() - started)

    begin = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - begin
    engine.dispose()
    ms = [x * 1000 for x in latencies]
    return {
        "count": len(ms),
        "seconds": seconds,
        "rate": len(ms) / seconds,
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.bare_insert")
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--size", type=int, default=20_000)
    args = parser.parse_args()
    result = run(args.url, args.concurrency, args.duration, args.size)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
