"""Settings every service shares. Built in main(), never at import."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/spring"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


class BaseServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    grpc_host: str = "127.0.0.1"
    grpc_port: int
    metrics_port: int
    log_level: str = "INFO"

    database_url: str = DEFAULT_DATABASE_URL
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_pool_timeout_s: float = Field(default=10.0, gt=0)
    db_connect_timeout_s: int = Field(default=2, ge=1)
    db_statement_timeout_ms: int = Field(default=5000, ge=100)
    # A pooled connection idle longer than this is pinged before use (0 = before every use).
    db_ping_after_idle_s: float = Field(default=1.0, ge=0)
    # Deadline of one database unit of work as seen by an RPC; past it the
    # caller gets UNAVAILABLE instead of a hang (CONTRACT.md: within 2 s).
    db_call_timeout_s: float = Field(default=1.8, gt=0)

    auth_jwt_secret: str | None = None
    auth_jwt_public_key: str | None = None

    max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    shutdown_grace_s: float = Field(default=20.0, ge=0)
    # glibc malloc_trim every N seconds (0 = never): large requests and conversations leave
    # free memory inside malloc's arenas; trimming gives it back (docs/memory.md).
    malloc_trim_interval_s: float = Field(default=10.0, ge=0)

    @model_validator(mode="after")
    def _auth_configured(self) -> BaseServiceSettings:
        if not self.auth_jwt_secret and not self.auth_jwt_public_key:
            raise ValueError(
                "AUTH_JWT_SECRET (HS256) or AUTH_JWT_PUBLIC_KEY (RS256, PEM) must be set"
            )
        return self


class MessagingSettings(BaseSettings):
    """Broker settings for the services that touch RabbitMQ."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    amqp_url: str = DEFAULT_AMQP_URL
    amqp_namespace: str = "spring"
    amqp_timeout_s: float = Field(default=5.0, gt=0)
