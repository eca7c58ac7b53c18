"""A real broker restart (rabbitmqctl stop_app / start_app) under the real processes.

aio-pika's robust connection has open reports of consumers that never come back after a
broker restart (mosquito/aio-pika 231, 626, 632). Here: while the broker is away, ingest
keeps accepting (the outbox grows) and the analyzer says NOT_SERVING; once it is back the
same analyzer process (not a restarted one) is SERVING again and consumes everything.
"""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.chaos.harness import own_stack, rabbitmqctl
from tests.support.conversations import conversation
from tests.support.figures import report

pytestmark = [pytest.mark.e2e, pytest.mark.broker_restart]


def health(target: str) -> int:
    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2
            )
        except grpc.RpcError:
            return -1
        return int(reply.status)


def test_consumption_resumes_after_a_real_broker_restart(tmp_path: Path) -> None:
    with own_stack(tmp_path, prefix="brokerrestart") as own:
        analyzer = own.stack.analyzer.process
        assert analyzer is not None
        rabbitmqctl("stop_app")
        try:
            deadline = time.monotonic() + 15
            while health(own.stack.analyzer.target) != health_pb2.HealthCheckResponse.NOT_SERVING:
                assert time.monotonic() < deadline, "analyzer stayed SERVING without a broker"
                time.sleep(0.2)
            during = [conversation() for _ in range(5)]
            started = time.monotonic()
            for request in during:
                assert own.send(request, give_up_after_s=5)  # accepted while the broker is down
            accept_s = time.monotonic() - started
        finally:
            rabbitmqctl("start_app")
            rabbitmqctl("await_startup")
        back = time.monotonic()
        while health(own.stack.analyzer.target) != health_pb2.HealthCheckResponse.SERVING:
            assert time.monotonic() - back < 60, "analyzer did not come back"
            time.sleep(0.2)
        serving_s = time.monotonic() - back
        drained, drain_s = own.wait_drained({r.conversation_id for r in during}, timeout_s=60)
        assert drained
        assert analyzer.poll() is None and own.stack.analyzer.process is analyzer  # same process
        statuses = own.statuses()
        assert all(statuses[r.conversation_id] == "PROCESSED" for r in during)
        report("broker restart", accepted_while_down=len(during),
               accept_s=round(accept_s, 2), serving_again_s=round(serving_s, 1),
               drained_s=round(drain_s, 1))  # fmt: skip
