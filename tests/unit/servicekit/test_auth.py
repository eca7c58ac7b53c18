"""Token verification and scope rules, without a server."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import servicekit.auth
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


# --- the cache of verified tokens ----------------------------------------------------------------
def _token(**claims: object) -> str:
    return jwt.encode({"sub": "robot-1", "scope": "ingest:write", **claims}, SECRET,
                      algorithm="HS256")  # fmt: skip


def _error(verifier: TokenVerifier, header: str | None) -> str:
    with pytest.raises(AuthError) as caught:
        verifier.verify(header)
    return str(caught.value)


def _counting_decode(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = jwt.decode

    def decode(token: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(servicekit.auth.jwt, "decode", decode)
    return calls


def test_a_kept_token_is_decoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting_decode(monkeypatch)
    verifier = TokenVerifier(secret=SECRET)
    token = _token(exp=int(time.time()) + 3600)
    first = verifier.verify(f"Bearer {token}")
    assert verifier.verify(f"bearer  {token} ") == first  # the same token, however written
    assert verifier.verify(f"Bearer {token}").subject == "robot-1"
    assert calls == [token]


def test_a_cached_token_that_expired_fails_as_an_uncached_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier = TokenVerifier(secret=SECRET)
    now = time.time()
    token = _token(exp=int(now) + 60)
    verifier.verify(f"Bearer {token}")
    expired_already = f"Bearer {_token(exp=int(now) - 5)}"
    assert _error(TokenVerifier(secret=SECRET), expired_already) == "token expired"

    monkeypatch.setattr(servicekit.auth.time, "time", lambda: now + 59)
    assert verifier.verify(f"Bearer {token}").subject == "robot-1"
    monkeypatch.setattr(servicekit.auth.time, "time", lambda: float(int(now) + 60))  # exp <= now
    assert _error(verifier, f"Bearer {token}") == "token expired"
    # The expired token left the cache: the next call decodes it again (PyJWT's own clock,
    # not patched here, still finds it valid).
    calls = _counting_decode(monkeypatch)
    monkeypatch.setattr(servicekit.auth.time, "time", lambda: now)
    verifier.verify(f"Bearer {token}")
    assert calls == [token]


def test_a_cached_token_fails_before_its_nbf_or_iat_as_pyjwt_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = int(time.time())
    for claim in ("nbf", "iat"):
        verifier = TokenVerifier(secret=SECRET)
        token = _token(exp=now + 3600, **{claim: now - 10})
        verifier.verify(f"Bearer {token}")
        monkeypatch.setattr(servicekit.auth.time, "time", lambda: float(now - 11))  # clock back
        assert _error(verifier, f"Bearer {token}") == "invalid token"
        monkeypatch.undo()
        not_yet = _token(exp=now + 3600, **{claim: now + 600})
        assert _error(TokenVerifier(secret=SECRET), f"Bearer {not_yet}") == "invalid token"


def test_bad_tokens_are_never_cached_and_fail_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = TokenVerifier(secret=SECRET)
    good = _token(exp=int(time.time()) + 3600)
    verifier.verify(f"Bearer {good}")
    header, payload, signature = good.split(".")
    tampered = f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    other_secret = jwt.encode({"sub": "r", "exp": int(time.time()) + 60}, "x" * 32,
                              algorithm="HS256")  # fmt: skip
    bad_scope = _token(exp=int(time.time()) + 3600, scope=["ingest:write"])
    calls = _counting_decode(monkeypatch)
    for _ in range(2):
        assert _error(verifier, f"Bearer {tampered}") == "invalid token"
        assert _error(verifier, f"Bearer {other_secret}") == "invalid token"
        assert _error(verifier, f"Bearer {bad_scope}") == "invalid scope claim"
    assert calls == [tampered, other_secret, bad_scope] * 2
    assert verifier.verify(f"Bearer {good}").subject == "robot-1"
    assert len(calls) == 6  # the good one came from the cache


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = TokenVerifier(secret=SECRET, cache_size=3)
    tokens = [_token(exp=int(time.time()) + 3600, jti=str(n)) for n in range(5)]
    for token in tokens:
        verifier.verify(f"Bearer {token}")
    calls = _counting_decode(monkeypatch)
    for token in tokens[2:]:  # the three newest are kept
        verifier.verify(f"Bearer {token}")
    assert calls == []
    verifier.verify(f"Bearer {tokens[0]}")  # the oldest went
    assert calls == [tokens[0]]
