"""Versioned score rules: the formula's weights, emotion points and level thresholds.

A rule set is immutable once stored; its JSON body (`to_body`/`parse_rule_set`) is what the
`rule_sets` table keeps and what an operator writes in a FILE.json.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from friendship.domain.levels import LevelThresholds
from friendship.domain.scoring import Emotion, ScoreWeights

EMOTION_BOUND = 15.0
_VERSION = re.compile(r"[A-Za-z0-9._:-]{1,64}")
VERSION_RULE = "1-64 characters of [A-Za-z0-9._:-]"
WEIGHT_KEYS = ("points_per_turn", "points_per_question", "points_per_memory")
EMOTION_KEYS = tuple(e.name.lower() for e in Emotion if e is not Emotion.UNSPECIFIED)


class InvalidRuleSet(ValueError):
    """The rule set body is not valid; the message says which field and why."""


@dataclass(frozen=True)
class RuleSet:
    version: str
    weights: ScoreWeights
    thresholds: LevelThresholds

    def to_body(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "weights": {
                "points_per_turn": self.weights.points_per_turn,
                "points_per_question": self.weights.points_per_question,
                "points_per_memory": self.weights.points_per_memory,
            },
            "emotion_points": {
                e.name.lower(): self.weights.points_for(e)
                for e in Emotion
                if e is not Emotion.UNSPECIFIED
            },
            "thresholds": {
                "acquaintance": self.thresholds.acquaintance,
                "friend": self.thresholds.friend,
            },
        }

    def same_rules(self, other: RuleSet) -> bool:
        """Same formula and thresholds (the version aside)."""
        mine, theirs = self.to_body(), other.to_body()
        mine.pop("version")
        theirs.pop("version")
        return mine == theirs


def _number(section: Mapping[str, Any], key: str, where: str) -> float:
    if key not in section:
        raise InvalidRuleSet(f"{where}.{key}: required")
    value = section[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRuleSet(f"{where}.{key}: must be a number")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidRuleSet(f"{where}.{key}: must be finite")
    return number


def _section(body: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = body.get(key)
    if not isinstance(value, Mapping):
        raise InvalidRuleSet(f"{key}: required object")
    return value


def parse_rule_set(body: Any) -> RuleSet:
    """A JSON body (already decoded) to a RuleSet, or InvalidRuleSet."""
    if not isinstance(body, Mapping):
        raise InvalidRuleSet("the rule set must be a JSON object")
    version = body.get("version")
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise InvalidRuleSet(f"version: must be {VERSION_RULE}")
    weights_in = _section(body, "weights")
    emotions_in = _section(body, "emotion_points")
    thresholds_in = _section(body, "thresholds")
    unknown = (
        set(body) - {"version", "weights", "emotion_points", "thresholds"}
        | {f"weights.{k}" for k in set(weights_in) - set(WEIGHT_KEYS)}
        | {f"emotion_points.{k}" for k in set(emotions_in) - set(EMOTION_KEYS)}
        | {f"thresholds.{k}" for k in set(thresholds_in) - {"acquaintance", "friend"}}
    )
    if unknown:
        raise InvalidRuleSet(f"unknown field(s): {', '.join(sorted(unknown))}")
    weights = {key: _number(weights_in, key, "weights") for key in WEIGHT_KEYS}
    for key, value in weights.items():
        if value < 0:
            raise InvalidRuleSet(f"weights.{key}: must be >= 0")
    emotion_points: dict[Emotion, float] = {Emotion.UNSPECIFIED: 0.0}
    for key in EMOTION_KEYS:
        value = _number(emotions_in, key, "emotion_points")
        if not -EMOTION_BOUND <= value <= EMOTION_BOUND:
            raise InvalidRuleSet(
                f"emotion_points.{key}: must be between {-EMOTION_BOUND} and {EMOTION_BOUND}"
            )
        emotion_points[Emotion[key.upper()]] = value
    acquaintance = _number(thresholds_in, "acquaintance", "thresholds")
    friend = _number(thresholds_in, "friend", "thresholds")
    if not 0 < acquaintance < friend:
        raise InvalidRuleSet("thresholds: must satisfy 0 < acquaintance < friend")
    return RuleSet(
        version=version,
        weights=ScoreWeights(emotion_points=emotion_points, **weights),
        thresholds=LevelThresholds(acquaintance=acquaintance, friend=friend),
    )


def parse_rule_set_json(text: str) -> RuleSet:
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRuleSet(f"not JSON: line {exc.lineno} column {exc.colno}") from exc
    return parse_rule_set(body)


def canonical_json(rules: RuleSet) -> str:
    return json.dumps(rules.to_body(), sort_keys=True, separators=(",", ":"))


class RuleMode(enum.Enum):
    FORWARD = "forward"  # new conversations only; levels follow the new thresholds
    RECOMPUTE = "recompute"  # every user's ledger replayed with the new rules


@dataclass(frozen=True)
class StoredRuleSet:
    rules: RuleSet
    mode: RuleMode
    active: bool
    created_at: datetime | None = None


@dataclass(frozen=True)
class RuleJob:
    version: str
    mode: RuleMode
    done: bool
    cursor: str  # last user_id handled ("" = none yet)
    users_done: int
    started_at: datetime | None = None
    finished_at: datetime | None = None
