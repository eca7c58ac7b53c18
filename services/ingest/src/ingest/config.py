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
