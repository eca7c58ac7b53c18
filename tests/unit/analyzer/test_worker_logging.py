"""The worker's logging: httpx's INFO line per provider request (with its URL) stays out."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from analyzer.entrypoints.worker import QUIET_LOGGERS, configure_worker_logging


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    yield
    root.handlers[:], root.level = handlers, level
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def test_http_client_request_lines_are_not_logged_at_info(restored_logging: None) -> None:
    configure_worker_logging("INFO")
    assert logging.getLogger("analyzer.consumer").isEnabledFor(logging.INFO)
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)
    assert not logging.getLogger("httpcore").isEnabledFor(logging.INFO)
