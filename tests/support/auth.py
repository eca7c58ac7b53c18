"""Real tokens for tests, signed with the secret every test process shares."""

from __future__ import annotations

from servicekit.auth import mint_token

TEST_JWT_SECRET = "test-secret-for-spring-tests-only-0123456789"

ROBOT_SCOPES = ["ingest:write", "ingest:read"]
READER_SCOPES = ["friendship:read"]
INTERNAL_SCOPES = ["internal"]


def bearer(
    scopes: list[str], secret: str = TEST_JWT_SECRET, ttl_s: int = 3600
) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {mint_token(secret, 'test', scopes, ttl_s=ttl_s)}"),)
