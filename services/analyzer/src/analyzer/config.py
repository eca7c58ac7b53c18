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
    # How often the worker reads its work queue's depth (analyzer_queue_depth) by a passive
    # declare on a channel of its own.
    analyzer_queue_depth_interval_s: float = Field(default=5.0, gt=0)
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

    # --- Third parties (see analysis.py for the fallback rules) -------------------
    # LLM: Groq when GROQ_API_KEY is set; GROQ_BASE_URL is the host (the SDK appends
    # /openai/v1/chat/completions).
    groq_api_key: str | None = None
    groq_base_url: str | None = None
    groq_model: str = "openai/gpt-oss-20b"
    # Budget of one LLM part (questions, emotion), retries and their waits included.
    analyzer_llm_timeout_s: float = Field(default=15.0, gt=0)
    # Attempts per LLM part within that budget (429/5xx/connection errors are retried).
    analyzer_llm_max_attempts: int = Field(default=3, ge=1, le=10)
    analyzer_llm_max_completion_tokens: int = Field(default=1024, ge=16)
    # Memory API: Mem0 when MEM0_API_KEY is set.
    mem0_api_key: str | None = None
    mem0_base_url: str = "https://api.mem0.ai"
    # Budget of the whole memory call: add, then polling its event until it is done.
    analyzer_memory_timeout_s: float = Field(default=240.0, gt=0)
    analyzer_memory_poll_initial_s: float = Field(default=0.5, gt=0)
    analyzer_memory_poll_max_s: float = Field(default=10.0, gt=0)
    # What is sent of a conversation (LLM prompt and memory API alike).
    analyzer_prompt_max_chars: int = Field(default=12000, ge=200)
    analyzer_prompt_max_turns: int = Field(default=200, ge=1)
    analyzer_prompt_max_turn_chars: int = Field(default=1000, ge=20)
    # Circuit breaker per provider: open after N consecutive failed calls, probe after the
    # cool-down.
    analyzer_breaker_failures: int = Field(default=5, ge=1)
    analyzer_breaker_cooldown_s: float = Field(default=30.0, gt=0)

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
