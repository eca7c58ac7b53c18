"""Ingest settings (pydantic-settings). Built in main() only, never at import."""

from __future__ import annotations

from pydantic import Field

from servicekit.settings import DEFAULT_AMQP_URL, BaseServiceSettings


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
