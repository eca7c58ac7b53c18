"""Prometheus metrics of the third-party calls. Labels: provider, outcome, part; no ids."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

GROQ = "groq"
MEM0 = "mem0"

OUTCOMES = ("ok", "timeout", "rate_limited", "server_error", "invalid", "unavailable")

PROVIDER_REQUEST_SECONDS = Histogram(
    "provider_request_seconds",
    "Duration of one HTTP request to a third party (each retry is a request).",
    ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 240),
)
PROVIDER_REQUESTS = Counter(
    "provider_requests",
    "HTTP requests to a third party by outcome "
    "(ok, timeout, rate_limited, server_error, invalid, unavailable).",
    ["provider", "outcome"],
)
PROVIDER_BREAKER_OPEN = Gauge(
    "provider_breaker_open",
    "1 while the provider's circuit breaker is open or probing, else 0.",
    ["provider"],
)
ANALYSIS_FALLBACKS = Counter(
    "analysis_fallbacks",
    "Parts (questions, emotion, memories) that fell back to the local analysis although "
    "a provider is configured.",
    ["part"],
)


def record_request(provider: str, outcome: str, seconds: float) -> None:
    PROVIDER_REQUEST_SECONDS.labels(provider).observe(seconds)
    PROVIDER_REQUESTS.labels(provider, outcome).inc()


def record_fallback(part: str) -> None:
    ANALYSIS_FALLBACKS.labels(part).inc()


def init_provider(provider: str) -> None:
    """Export every series of a configured provider from the start (0 until used)."""
    PROVIDER_BREAKER_OPEN.labels(provider).set(0)
    for outcome in OUTCOMES:
        PROVIDER_REQUESTS.labels(provider, outcome)
    PROVIDER_REQUEST_SECONDS.labels(provider)
