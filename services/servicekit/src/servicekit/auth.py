"""JWT bearer auth with scopes (CONTRACT.md: HS256 secret or RS256 public key)."""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc
import jwt

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"

HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIXES = (
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
ANY_VALID_TOKEN = ""  # scope marker: a valid token is enough (reflection)
INTERNAL_SCOPE = "internal"


class AuthError(Exception):
    """A token is missing or invalid (UNAUTHENTICATED)."""


class ScopeError(Exception):
    """The token is valid but lacks the scope (PERMISSION_DENIED)."""


@dataclass(frozen=True)
class Principal:
    subject: str
    scopes: frozenset[str]


@dataclass(frozen=True)
class _Verified:
    """A token that passed every check; only its time claims need checking again."""

    principal: Principal
    iat: int | None
    nbf: int | None
    exp: int


def _int_claim(claims: Mapping[str, Any], name: str) -> int | None:
    return int(claims[name]) if name in claims else None


DEFAULT_CACHE_SIZE = 4096


class TokenVerifier:
    """Verifies bearer tokens; a bounded cache of verified tokens, keyed by the token string,
    spares the signature check (PyJWT's decode) on each call of a client that keeps its token.

    A cache hit checks the time claims again with PyJWT's arithmetic and order (iat, nbf, exp;
    no leeway): an expired token fails as "token expired" exactly as it would uncached, and is
    dropped. Only tokens that passed every check are cached: a bad one is decoded, and
    refused, on every call. The key never changes for a verifier's life.
    """

    def __init__(
        self,
        *,
        secret: str | None = None,
        public_key: str | None = None,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        if secret:
            self._key: str = secret
            self._algorithms = ["HS256"]
        elif public_key:
            self._key = public_key
            self._algorithms = ["RS256"]
        else:
            raise ValueError("a JWT secret or public key is required")
        self._cache_size = cache_size
        self._cache: dict[str, _Verified] = {}
        self._lock = threading.Lock()

    def verify(self, authorization: str | None) -> Principal:
        if not authorization:
            raise AuthError("missing bearer token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("authorization must be 'Bearer <token>'")
        token = token.strip()
        verified = self._cache.get(token)
        if verified is None:
            verified = self._decode(token)
            self._remember(token, verified)
            return verified.principal
        now = time.time()  # PyJWT: datetime.now(tz=timezone.utc).timestamp()
        if (verified.iat is not None and verified.iat > now) or (
            verified.nbf is not None and verified.nbf > now
        ):
            raise AuthError("invalid token")  # PyJWT: ImmatureSignatureError
        if verified.exp <= now:
            with self._lock:
                self._cache.pop(token, None)
            raise AuthError("token expired")  # PyJWT: ExpiredSignatureError
        return verified.principal

    def _decode(self, token: str) -> _Verified:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired") from exc
        except jwt.PyJWTError as exc:
            raise AuthError("invalid token") from exc
        scope = claims.get("scope", "")
        if not isinstance(scope, str):
            raise AuthError("invalid scope claim")
        principal = Principal(subject=str(claims["sub"]), scopes=frozenset(scope.split()))
        # PyJWT converted these with int() already (it refuses the token otherwise).
        exp = _int_claim(claims, "exp")
        assert exp is not None
        return _Verified(principal, _int_claim(claims, "iat"), _int_claim(claims, "nbf"), exp)

    def _remember(self, token: str, verified: _Verified) -> None:
        if self._cache_size <= 0:
            return
        with self._lock:
            while len(self._cache) >= self._cache_size:
                del self._cache[next(iter(self._cache))]  # the oldest entry
            self._cache[token] = verified


def mint_token(secret: str, subject: str, scopes: list[str], ttl_s: int = 3600) -> str:
    """HS256 token; used by `make run` (dev token) and for service-to-service calls."""
    now = int(time.time())
    payload = {"sub": subject, "scope": " ".join(scopes), "iat": now, "exp": now + ttl_s}
    return jwt.encode(payload, secret, algorithm="HS256")


class ServiceTokenSource:
    """Bearer token for calls to other services: a fixed one, or minted and renewed."""

    def __init__(self, *, fixed: str | None, secret: str | None, subject: str) -> None:
        if not fixed and not secret:
            raise ValueError(
                "AUTH_SERVICE_TOKEN or AUTH_JWT_SECRET is needed to call other services"
            )
        self._fixed = fixed
        self._secret = secret
        self._subject = subject
        self._token = ""
        self._renew_at = 0.0

    def metadata(self) -> tuple[tuple[str, str], ...]:
        if self._fixed:
            return (("authorization", f"Bearer {self._fixed}"),)
        now = time.time()
        if now >= self._renew_at:
            assert self._secret is not None
            self._token = mint_token(self._secret, self._subject, [INTERNAL_SCOPE], ttl_s=3600)
            self._renew_at = now + 1800
        return (("authorization", f"Bearer {self._token}"),)


def required_scope(method: str, scopes_by_method: Mapping[str, str]) -> str | None:
    """None = no auth (health); ANY_VALID_TOKEN = any valid token; else the scope.

    Methods nobody listed need `internal`: a forgotten entry fails closed.
    """
    if method.startswith(HEALTH_PREFIX):
        return None
    if method.startswith(REFLECTION_PREFIXES):
        return ANY_VALID_TOKEN
    return scopes_by_method.get(method, INTERNAL_SCOPE)


def authorize(verifier: TokenVerifier, method: str, authorization: str | None,
              scopes_by_method: Mapping[str, str]) -> Principal | None:
    scope = required_scope(method, scopes_by_method)
    if scope is None:
        return None
    principal = verifier.verify(authorization)
    if scope != ANY_VALID_TOKEN and scope not in principal.scopes:
        raise ScopeError(f"token lacks scope '{scope}'")
    return principal


def _aborting_handler(
    handler: grpc.RpcMethodHandler[Any, Any], code: grpc.StatusCode, message: str
) -> grpc.RpcMethodHandler[Any, Any]:
    async def abort(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(code, message)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort)
    return grpc.unary_unary_rpc_method_handler(abort)


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(self, verifier: TokenVerifier, scopes_by_method: Mapping[str, str]) -> None:
        self._verifier = verifier
        self._scopes = dict(scopes_by_method)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = handler_call_details.method
        authorization = None
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                authorization = value if isinstance(value, str) else value.decode()
                break
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        try:
            authorize(self._verifier, method, authorization, self._scopes)
        except AuthError as exc:
            return _aborting_handler(handler, grpc.StatusCode.UNAUTHENTICATED, str(exc))
        except ScopeError as exc:
            return _aborting_handler(handler, grpc.StatusCode.PERMISSION_DENIED, str(exc))
        return handler
