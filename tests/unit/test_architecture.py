"""Imports point inward: domain code and handlers know nothing of the infrastructure."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"grpc", "sqlalchemy", "aio_pika", "aiormq", "httpx", "groq", "psycopg2", "spring",
             "google", "alembic", "prometheus_client"}


def inner_modules() -> list[Path]:
    found: list[Path] = []
    for service in ("ingest", "analyzer", "friendship"):
        package = ROOT / "services" / service / "src" / service
        found += sorted((package / "domain").glob("*.py"))
        found += [p for p in [package / "handlers.py"] if p.exists()]
    return found


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_every_service_has_a_domain_package() -> None:
    services = {p.parts[-3] for p in inner_modules() if p.parent.name == "domain"}
    assert services == {"ingest", "analyzer", "friendship"}


@pytest.mark.parametrize("path", inner_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_domain_and_handlers_import_no_infrastructure(path: Path) -> None:
    assert imported_roots(path) & FORBIDDEN == set()
