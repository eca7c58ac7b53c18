"""Ingest settings (pydantic-settings). Built in main() only, never at import."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from servicekit.settings import DEFAULT_AMQP_URL, DEFAULT_DATABASE_URL, BaseServiceSettings


class Settings(BaseServiceSettings):
    grpc_port: int = 50051
    metrics_port: int = 9101

    # The fields of servicekit.settings.MessagingSettings (the relay publishes to RabbitMQ).
    amqp_url: str = DEFAULT_AMQP_URL
    amqp_namespace: str = "spring"
    amqp_timeout_s: float = Field(default=5.0, gt=0)

    max_turns: int = Field(default=5000, ge=1)

    relay_enabled: bool = True
    relay_batch_size: int = Field(default=100, ge=1, le=10_000)
    relay_poll_interval_s: float = Field(default=1.0, gt=0)
    # The lease sweeper (runs in the relay's loop): how often, and after how long a PENDING
    # conversation whose message was published but never claimed is enqueued again (0 = never).
    relay_sweep_interval_s: float = Field(default=30.0, gt=0)
    relay_sweep_pending_after_s: float = Field(default=3600.0, ge=0)


class RetentionSettings(BaseSettings):
    """`ingest-retention`: the database only (no auth, no broker)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    database_url: str = DEFAULT_DATABASE_URL
    db_connect_timeout_s: int = Field(default=2, ge=1)
    db_statement_timeout_ms: int = Field(default=30_000, ge=100)
    log_level: str = "INFO"
    # Raw logs of conversations accepted longer ago than this are dropped (normalized kept).
    retention_raw_log_days: float = Field(default=30.0, gt=0)
    # Conversations per transaction.
    retention_batch_size: int = Field(default=500, ge=1, le=10_000)
