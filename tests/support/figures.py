"""Figures a test measured, printed in pytest's terminal summary (tests/conftest.py)."""

from __future__ import annotations

from typing import Any

FIGURES: list[tuple[str, dict[str, Any]]] = []


def report(name: str, **values: Any) -> None:
    FIGURES.append((name, values))
