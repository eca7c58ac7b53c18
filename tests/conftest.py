"""Session-wide test settings: the broker_restart marker and the figures summary.

Tests that restart the shared RabbitMQ app (`rabbitmqctl stop_app/start_app`) are marked
broker_restart: they run only when asked for by marker expression (`-m broker_restart`),
which `make test` does alone, after everything else.
"""

from __future__ import annotations

import pytest

from tests.support.figures import FIGURES

BROKER_RESTART = "broker_restart"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{BROKER_RESTART}: stops and starts the shared RabbitMQ app; run alone, on purpose "
        f"(-m {BROKER_RESTART})",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that restart the broker disturb every other test on this machine: they run
    only when asked for by marker expression."""
    if BROKER_RESTART in (config.getoption("markexpr", "") or ""):
        return
    skip = pytest.mark.skip(reason=f"restarts the shared broker; run with -m {BROKER_RESTART}")
    for item in items:
        if item.get_closest_marker(BROKER_RESTART) is not None:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Figures the fault tests measured (conversations, faults, lost, duplicated, ...)."""
    if not FIGURES:
        return
    terminalreporter.section("figures")
    for name, values in FIGURES:
        terminalreporter.write_line(
            f"{name}: " + ", ".join(f"{key}={value}" for key, value in values.items())
        )
