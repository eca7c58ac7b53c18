"""Start the friendship server in-process on port 0 against a real PostgreSQL database."""

from __future__ import annotations

from typing import Any

from friendship.config import Settings
from friendship.entrypoints.migrate import run as migrate
from tests.support.auth import TEST_JWT_SECRET
from tests.support.env import TEST_DATABASE_URL, new_namespace


def server_settings(database_url: str = TEST_DATABASE_URL, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "auth_jwt_secret": TEST_JWT_SECRET,
        "auth_jwt_public_key": None,
        "grpc_host": "127.0.0.1",
        "grpc_port": 0,
        "shutdown_grace_s": 1.0,
        # The shared test database's outbox is drained by no in-process server: a relay here
        # would take events other test runs (e2e stacks) wait for. Relay tests use their own DB.
        "friendship_relay_enabled": False,
        "amqp_namespace": new_namespace(),
        **overrides,
    }
    return Settings(**values)


def migrate_test_database() -> None:
    migrate(TEST_DATABASE_URL)
