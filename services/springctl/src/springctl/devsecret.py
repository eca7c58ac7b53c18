"""The dev JWT secret `make run` uses when AUTH_JWT_SECRET is not set."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

DEV_SECRET_FILE = Path(".dev/jwt_secret")


def resolve_secret(create: bool = False) -> str:
    """AUTH_JWT_SECRET if set, else the dev secret file (made on first use when `create`)."""
    secret = os.environ.get("AUTH_JWT_SECRET")
    if secret:
        return secret
    if DEV_SECRET_FILE.exists():
        return DEV_SECRET_FILE.read_text().strip()
    if not create:
        raise SystemExit(
            "no AUTH_JWT_SECRET set and no dev secret yet: run `make run` first, "
            "or export AUTH_JWT_SECRET, or pass --token"
        )
    DEV_SECRET_FILE.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    DEV_SECRET_FILE.write_text(secret + "\n")
    DEV_SECRET_FILE.chmod(0o600)
    return secret
