"""Analyzer settings (environment variables). Built in main(), never at import."""

from __future__ import annotations

from pydantic import Field, field_validator

from servicekit.settings import BaseServiceSettings, MessagingSettings


class Settings(BaseServiceSettings, MessagingSettings):
    grpc_port: int = 50052
    metrics_port: int = 9102

    # Service-to-service calls carry this token, or one minted from AUTH_JWT_SECRET.
    auth_service_token: str | None = None
    ingest_grpc_target: str = "127.0.0.1:50051"
    friendship_grpc_target: str = "127.0.0.1:50053"
    analyzer_rpc_timeout_s: float = Field(default=5.0, gt=0)

    # Messages handled at once (RabbitMQ prefetch); the DB pool must be at least this.
    analyzer_prefetch: int = Field(default=8, ge=1, le=200)
    analyzer_max_attempts: int = Field(default=5, ge=1)
    analyzer_retry_delays_s: list[int] = Field(default_factory=lambda: [10, 60, 180, 600])
    analyzer_message_deadline_s: float = Field(default=300.0, gt=0)
    # How long a claim holds before another worker may take it over: past the deadline.
    analyzer_claim_lease_s: int | None = Field(default=None, ge=1)
    # Self-recycling (entrypoints/recycling.py): drain and exit (code 75) after this many
    # messages, this age or this RSS, for the supervisor to start a fresh worker; 0 = off.
    analyzer_recycle_after_messages: int = Field(default=10_000, ge=0)
    analyzer_recycle_after_age_s: float = Field(default=86_400.0, ge=0)
    analyzer_recycle_after_rss_mb: float = Field(default=512.0, ge=0)

    @field_validator("analyzer_retry_delays_s")
    @classmethod
    def _delays_positive(cls, value: list[int]) -> list[int]:
        if not value or any(d < 1 for d in value):
            raise ValueError("ANALYZER_RETRY_DELAYS_S must be a non-empty list of seconds >= 1")
        return value

    @property
    def claim_lease_s(self) -> int:
        if self.analyzer_claim_lease_s is not None:
            return self.analyzer_claim_lease_s
        return int(self.analyzer_message_deadline_s) + 60
