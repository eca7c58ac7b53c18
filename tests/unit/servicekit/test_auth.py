"""Token verification and scope rules, without a server."""

from __future__ import annotations

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from servicekit.auth import (
    ANY_VALID_TOKEN,
    AuthError,
    ScopeError,
    TokenVerifier,
    authorize,
    mint_token,
    required_scope,
)

SECRET = "unit-test-secret-0123456789abcdef"
SCOPES = {"/spring.ingest.v1.IngestService/EndConversation": "ingest:write"}


def test_hs256_token_round_trip() -> None:
    principal = TokenVerifier(secret=SECRET).verify(
        f"Bearer {mint_token(SECRET, 'robot-7', ['ingest:write', 'ingest:read'])}"
    )
    assert principal.subject == "robot-7"
    assert principal.scopes == {"ingest:write", "ingest:read"}


def test_rs256_token_verified_with_the_public_key() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    token = jwt.encode({"sub": "team-x", "exp": 4102444800, "scope": "friendship:read"},
                       key, algorithm="RS256")
    principal = TokenVerifier(public_key=public_pem).verify(f"Bearer {token}")
    assert principal.scopes == {"friendship:read"}


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", "Token abc", "Bearer abc.def.ghi",
     f"Bearer {mint_token(SECRET, 'r', ['x'], ttl_s=-5)}",
     f"Bearer {mint_token('another-secret-entirely-0123456789', 'r', ['x'])}"],
    ids=["none", "empty", "no-token", "blank-token", "wrong-scheme", "garbage", "expired",
         "wrong-secret"],
)
def test_bad_tokens_are_auth_errors(header: str | None) -> None:
    with pytest.raises(AuthError):
        TokenVerifier(secret=SECRET).verify(header)


def test_token_without_exp_or_sub_is_rejected() -> None:
    token = jwt.encode({"sub": "r", "scope": "ingest:write"}, SECRET, algorithm="HS256")
    with pytest.raises(AuthError):
        TokenVerifier(secret=SECRET).verify(f"Bearer {token}")


def test_scope_rules() -> None:
    assert required_scope("/grpc.health.v1.Health/Check", SCOPES) is None
    assert required_scope("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                          SCOPES) == ANY_VALID_TOKEN
    assert required_scope("/spring.ingest.v1.IngestService/EndConversation", SCOPES) == (
        "ingest:write"
    )
    # A method nobody listed fails closed.
    assert required_scope("/spring.ingest.v1.IngestInternalService/Claim", SCOPES) == "internal"


def test_authorize_distinguishes_missing_scope_from_bad_token() -> None:
    verifier = TokenVerifier(secret=SECRET)
    method = "/spring.ingest.v1.IngestService/EndConversation"
    ok = authorize(verifier, method, f"Bearer {mint_token(SECRET, 'r', ['ingest:write'])}",
                   SCOPES)
    assert ok is not None and ok.subject == "r"
    with pytest.raises(ScopeError):
        authorize(verifier, method, f"Bearer {mint_token(SECRET, 'r', ['ingest:read'])}", SCOPES)
    with pytest.raises(AuthError):
        authorize(verifier, method, None, SCOPES)
    assert authorize(verifier, "/grpc.health.v1.Health/Check", None, SCOPES) is None
