"""Rule set bodies: parsing, validation, the JSON an operator writes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from friendship.domain.levels import LevelThresholds
from friendship.domain.rules import InvalidRuleSet, RuleSet, parse_rule_set, parse_rule_set_json
from friendship.domain.scoring import Emotion, ScoreWeights


def body(**changes: Any) -> dict[str, Any]:
    data = RuleSet("v2", ScoreWeights(), LevelThresholds()).to_body()
    data.update(changes)
    return data


def test_default_body_round_trips() -> None:
    rules = parse_rule_set(body())
    assert rules == RuleSet("v2", ScoreWeights(), LevelThresholds())
    assert parse_rule_set_json(json.dumps(rules.to_body())) == rules
    assert rules.weights.points_for(Emotion.BORING) == -15


def test_same_rules_ignores_the_version() -> None:
    a = RuleSet("a", ScoreWeights(), LevelThresholds())
    assert a.same_rules(RuleSet("b", ScoreWeights(), LevelThresholds()))
    assert not a.same_rules(RuleSet("a", ScoreWeights(points_per_turn=1), LevelThresholds()))


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"version": "no spaces"}, "version"),
        ({"weights": {"points_per_turn": 1, "points_per_question": 3}}, "points_per_memory"),
        ({"weights": {"points_per_turn": -1, "points_per_question": 3, "points_per_memory": 5}},
         "points_per_turn"),
        ({"weights": {"points_per_turn": "1", "points_per_question": 3, "points_per_memory": 5}},
         "must be a number"),
        ({"thresholds": {"acquaintance": 300, "friend": 100}}, "thresholds"),
        ({"emotion_points": {**body()["emotion_points"], "happy": 40}}, "emotion_points.happy"),
        ({"extra": 1}, "unknown field"),
    ],
)
def test_invalid_bodies_say_which_field(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidRuleSet, match=problem):
        parse_rule_set(body(**changes))


def test_not_json() -> None:
    with pytest.raises(InvalidRuleSet, match="not JSON"):
        parse_rule_set_json("{")
