"""The one hash the three services agree on for erasure tombstones.

Tombstones keep sha256 (hex) of a conversation id or a user id, never the id itself, so
that after erasure no row holds the user's id while a conversation still in flight can be
recognised (and refused) by every service.
"""

from __future__ import annotations

import hashlib
import re

HASH_PATTERN = re.compile(r"^[0-9a-f]{64}$")


def erasure_hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def is_erasure_hash(value: str) -> bool:
    return HASH_PATTERN.fullmatch(value) is not None
