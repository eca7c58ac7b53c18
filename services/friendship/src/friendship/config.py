"""Friendship settings (environment variables). Built in main(), never at import."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from friendship.domain.levels import LevelThresholds
from friendship.domain.rules import RuleSet
from friendship.domain.scoring import Emotion, ScoreWeights
from servicekit.settings import DEFAULT_AMQP_URL, DEFAULT_DATABASE_URL, BaseServiceSettings

# The version of the rule set built from these settings: the one every ledger row written
# before rule sets existed carries.
INITIAL_RULE_VERSION = "v1"

_EMOTION_BOUND = 15.0


class Settings(BaseServiceSettings):
    grpc_port: int = 50053
    metrics_port: int = 9103

    # The fields of servicekit.settings.MessagingSettings (the relay publishes level events).
    amqp_url: str = DEFAULT_AMQP_URL
    amqp_namespace: str = "spring"
    amqp_timeout_s: float = Field(default=5.0, gt=0)

    friendship_relay_enabled: bool = True
    friendship_relay_batch_size: int = Field(default=100, ge=1, le=10_000)
    friendship_relay_poll_interval_s: float = Field(default=1.0, gt=0)

    # GetLevel cache (docs/friendship.md, "The GetLevel cache"). Entries (users) held; each
    # costs ~0.5 KB, so the default holds at most ~10 MB. 0 turns the cache (and its
    # listener connection) off: every GetLevel reads the database.
    friendship_level_cache_size: int = Field(default=20_000, ge=0, le=5_000_000)
    # Safety net: no entry is older than this, even if a notification were missed.
    friendship_level_cache_ttl_s: float = Field(default=60.0, gt=0)
    # The invalidation listener's liveness check: a `SELECT 1` this often (when idle) that
    # must answer within the same time, else the cache is dropped and bypassed until the
    # listener reconnects.
    friendship_level_cache_ping_interval_s: float = Field(default=0.5, gt=0)
    # Where the listener connects (LISTEN needs a session: not a transaction-pooling
    # PgBouncer). Default: DATABASE_URL.
    friendship_listen_database_url: str | None = None

    # Only the first rule set: once one is stored (friendship-admin rules apply), it wins.

    friendship_acquaintance_threshold: float = Field(default=100.0, gt=0)
    friendship_friend_threshold: float = Field(default=300.0, gt=0)

    score_points_per_turn: float = Field(default=0.5, ge=0)
    score_points_per_question: float = Field(default=3.0, ge=0)
    score_points_per_memory: float = Field(default=5.0, ge=0)

    emotion_points_interesting: float = Field(default=15.0, ge=-_EMOTION_BOUND, le=_EMOTION_BOUND)
    emotion_points_happy: float = Field(default=10.0, ge=-_EMOTION_BOUND, le=_EMOTION_BOUND)
    emotion_points_neutral: float = Field(default=0.0, ge=-_EMOTION_BOUND, le=_EMOTION_BOUND)
    emotion_points_sad: float = Field(default=-5.0, ge=-_EMOTION_BOUND, le=_EMOTION_BOUND)
    emotion_points_angry: float = Field(default=-10.0, ge=-_EMOTION_BOUND, le=_EMOTION_BOUND)
    emotion_points_boring: float = Field(default=-15.0, ge=-_EMOTION_BOUND, le=_EMOTION_BOUND)

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> Settings:
        if not 0 < self.friendship_acquaintance_threshold < self.friendship_friend_threshold:
            raise ValueError(
                "FRIENDSHIP_ACQUAINTANCE_THRESHOLD must be > 0 and below"
                " FRIENDSHIP_FRIEND_THRESHOLD"
            )
        return self

    def thresholds(self) -> LevelThresholds:
        return LevelThresholds(
            acquaintance=self.friendship_acquaintance_threshold,
            friend=self.friendship_friend_threshold,
        )

    def initial_rules(self) -> RuleSet:
        """The rule set stored at start-up when the database has none yet."""
        return RuleSet(
            version=INITIAL_RULE_VERSION, weights=self.weights(), thresholds=self.thresholds()
        )

    def weights(self) -> ScoreWeights:
        return ScoreWeights(
            points_per_turn=self.score_points_per_turn,
            points_per_question=self.score_points_per_question,
            points_per_memory=self.score_points_per_memory,
            emotion_points={
                Emotion.UNSPECIFIED: 0.0,
                Emotion.INTERESTING: self.emotion_points_interesting,
                Emotion.HAPPY: self.emotion_points_happy,
                Emotion.NEUTRAL: self.emotion_points_neutral,
                Emotion.SAD: self.emotion_points_sad,
                Emotion.ANGRY: self.emotion_points_angry,
                Emotion.BORING: self.emotion_points_boring,
            },
        )


class AdminSettings(BaseSettings):
    """`friendship-admin`: the database only (no auth, no broker); the relay of a running
    server publishes the events a rule change writes."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    database_url: str = DEFAULT_DATABASE_URL
    db_connect_timeout_s: int = Field(default=2, ge=1)
    # A recompute step replays one user's whole ledger in one statement batch.
    db_statement_timeout_ms: int = Field(default=30_000, ge=100)
    log_level: str = "INFO"
