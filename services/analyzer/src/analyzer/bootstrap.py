"""Build the analyzer's dependencies from settings, and close them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
from sqlalchemy.engine import Engine

from analyzer.adapters.friendship_client import GrpcFriendshipClient
from analyzer.adapters.groq_llm import GroqLlm
from analyzer.adapters.grpc_calls import open_channel
from analyzer.adapters.ingest_client import GrpcIngestClient
from analyzer.adapters.mem0_api import Mem0Memories
from analyzer.adapters.provider_metrics import record_fallback
from analyzer.adapters.repository import SqlAlchemyAnalyzerRepository
from analyzer.analysis import ConversationAnalyzer
from analyzer.config import Settings
from analyzer.domain.breaker import CircuitBreaker
from analyzer.domain.failure import RetryPolicy
from analyzer.domain.prompts import PromptBudget
from analyzer.handlers import MessagePolicy, Pipeline
from servicekit.auth import ServiceTokenSource
from servicekit.db import (
    BlockingRunner,
    check_pool_fits,
    engine_from_settings,
    runner_from_settings,
)


class StartupError(Exception):
    """Bad configuration or an unreachable dependency at start; the message is one clear line."""


@dataclass
class Deps:
    engine: Engine
    run: BlockingRunner
    repository: SqlAlchemyAnalyzerRepository
    ingest_channel: grpc.aio.Channel
    friendship_channel: grpc.aio.Channel
    pipeline: Pipeline
    policy: MessagePolicy
    analyzer: ConversationAnalyzer
    llm: GroqLlm | None = None
    memory_api: Mem0Memories | None = None

    async def close(self) -> None:
        await asyncio.gather(
            self.ingest_channel.close(None),
            self.friendship_channel.close(None),
            *([self.llm.close()] if self.llm else []),
            *([self.memory_api.close()] if self.memory_api else []),
            return_exceptions=True,
        )
        self.run.shutdown()
        self.engine.dispose()


def build(settings: Settings) -> Deps:
    try:
        # Every message in flight may hold one connection at a time.
        check_pool_fits(settings.db_pool_size, settings.analyzer_prefetch, "ANALYZER_PREFETCH")
        policy = MessagePolicy(
            retry=RetryPolicy(
                max_attempts=settings.analyzer_max_attempts,
                delays_s=tuple(settings.analyzer_retry_delays_s),
            ),
            deadline_s=settings.analyzer_message_deadline_s,
            lease_s=settings.claim_lease_s,
        )
        budget = PromptBudget(
            max_chars=settings.analyzer_prompt_max_chars,
            max_turns=settings.analyzer_prompt_max_turns,
            max_turn_chars=settings.analyzer_prompt_max_turn_chars,
        )
        tokens = ServiceTokenSource(
            fixed=settings.auth_service_token, secret=settings.auth_jwt_secret, subject="analyzer"
        )
    except ValueError as exc:
        raise StartupError(str(exc)) from exc

    engine = engine_from_settings(settings, "analyzer")
    run = runner_from_settings(settings, "analyzer-db")
    repository = SqlAlchemyAnalyzerRepository(engine, run)
    llm, memory_api = build_providers(settings)
    analyzer = ConversationAnalyzer(
        repository, llm=llm, memory_api=memory_api, budget=budget, on_fallback=record_fallback
    )
    ingest_channel = open_channel(settings.ingest_grpc_target, settings.max_message_bytes)
    friendship_channel = open_channel(settings.friendship_grpc_target, settings.max_message_bytes)
    pipeline = Pipeline(
        ingest=GrpcIngestClient(ingest_channel, tokens, settings.analyzer_rpc_timeout_s),
        friendship=GrpcFriendshipClient(
            friendship_channel, tokens, settings.analyzer_rpc_timeout_s
        ),
        analysis=analyzer,
        analyses=repository,
    )
    return Deps(
        engine, run, repository, ingest_channel, friendship_channel, pipeline, policy,
        analyzer, llm, memory_api,
    )  # fmt: skip


def build_providers(settings: Settings) -> tuple[GroqLlm | None, Mem0Memories | None]:
    """Groq when GROQ_API_KEY is set, Mem0 when MEM0_API_KEY is set; each its own breaker."""

    def breaker() -> CircuitBreaker:
        return CircuitBreaker(
            settings.analyzer_breaker_failures, settings.analyzer_breaker_cooldown_s
        )

    llm = (
        GroqLlm(
            api_key=settings.groq_api_key,
            base_url=settings.groq_base_url,
            model=settings.groq_model,
            timeout_s=settings.analyzer_llm_timeout_s,
            max_attempts=settings.analyzer_llm_max_attempts,
            max_completion_tokens=settings.analyzer_llm_max_completion_tokens,
            breaker=breaker(),
        )
        if settings.groq_api_key
        else None
    )
    memory_api = (
        Mem0Memories(
            api_key=settings.mem0_api_key,
            base_url=settings.mem0_base_url,
            timeout_s=settings.analyzer_memory_timeout_s,
            poll_initial_s=settings.analyzer_memory_poll_initial_s,
            poll_max_s=settings.analyzer_memory_poll_max_s,
            breaker=breaker(),
        )
        if settings.mem0_api_key
        else None
    )
    return llm, memory_api
