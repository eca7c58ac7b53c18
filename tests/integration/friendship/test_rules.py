"""Rule changes on a database of their own: the operator command's dry run equals its applied
result, a recompute resumes where it stopped, runs once, and stays exact under live applies."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from friendship.adapters.repository import SqlAlchemyUnitOfWork
from friendship.adapters.tables import friendship_status, ledger, outbox, rule_jobs
from friendship.domain.friendship import ApplyCommand
from friendship.domain.levels import LevelThresholds
from friendship.domain.replay import replay_user
from friendship.domain.rules import RuleMode, RuleSet
from friendship.domain.scoring import AnalysisInput, Emotion, ScoreWeights
from friendship.entrypoints.migrate import run as migrate
from friendship.handlers import FriendshipHandlers
from servicekit.db import create_db_engine
from spring.friendship.v1 import events_pb2

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
V1 = RuleSet("v1", ScoreWeights(), LevelThresholds())
V2 = RuleSet(
    "v2",
    ScoreWeights(points_per_turn=0.8, points_per_question=2.5, points_per_memory=7.0,
                 emotion_points={Emotion.INTERESTING: 12.0, Emotion.HAPPY: 9.0,
                                 Emotion.SAD: -7.5, Emotion.ANGRY: -12.0,
                                 Emotion.BORING: -15.0}),
    LevelThresholds(acquaintance=80.0, friend=260.0),
)


@pytest.fixture
def db(fresh_database_url: str) -> Iterator[tuple[str, Engine]]:
    migrate(fresh_database_url)
    engine = create_db_engine(
        fresh_database_url, application_name="friendship-test", pool_size=8,
        pool_timeout_s=10, connect_timeout_s=2, statement_timeout_ms=10_000,
    )
    yield fresh_database_url, engine
    engine.dispose()


def handlers(engine: Engine) -> FriendshipHandlers:
    h = FriendshipHandlers(lambda: SqlAlchemyUnitOfWork(engine), default_rules=V1)
    h.ensure_rules()
    return h


def populate(h: FriendshipHandlers, users: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    ids = [f"user-{i:03d}" for i in range(users)]
    for n in range(users * 6):
        user = rng.choice(ids)
        h.apply_conversation(ApplyCommand(
            conversation_id=f"conv-{n:04d}",
            user_id=user,
            bot_id=rng.choice(["bot-a", "bot-b"]),
            agent_tag=rng.choice(["", "math", "art"]),
            analysis=AnalysisInput(rng.randint(0, 120), rng.randint(0, 12),
                                   rng.choice(list(Emotion)), rng.randint(0, 3), "llm"),
        ))
    return ids


def admin(url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=url, LOG_LEVEL="INFO")
    done = subprocess.run([str(BIN / "friendship-admin"), *args], env=env, capture_output=True,
                          text=True, timeout=120)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def write_rules(tmp_path: Path, rules: RuleSet) -> str:
    path = tmp_path / f"{rules.version}.json"
    path.write_text(json.dumps(rules.to_body()))
    return str(path)


def figures(output: dict[str, Any]) -> dict[str, Any]:
    return {k: output[k] for k in ("users", "level_changes", "transitions", "score_delta")}


def snapshot(engine: Engine) -> tuple[list[Any], list[Any]]:
    with engine.connect() as conn:
        statuses = conn.execute(sa.select(friendship_status).order_by("user_id")).all()
        rows = conn.execute(sa.select(ledger).order_by("conversation_id")).all()
    return [tuple(r) for r in statuses], [tuple(r) for r in rows]


def assert_exact(h: FriendshipHandlers, engine: Engine, rules: RuleSet) -> None:
    """Every user's stored state is the replay of their whole ledger with `rules`."""
    with SqlAlchemyUnitOfWork(engine) as uow:
        repo = uow.friendship
        for status in repo.statuses_after("", 10_000):
            entries = repo.user_ledger(status.user_id)
            replayed = replay_user(status.user_id, entries, rules)
            assert (status.score, status.level, status.conversations, status.rule_version) == (
                replayed.status.score, replayed.status.level, replayed.status.conversations,
                rules.version,
            ), status.user_id
            assert entries == list(replayed.ledger)
            topics = repo.list_topics(status.user_id)
            assert [(t.topic_id, t.score, t.turns, t.agents_used) for t in topics] == [
                (t.topic_id, t.score, t.turns, t.agents_used) for t in replayed.topics
            ]


def test_dry_run_figures_are_the_applied_result(db: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = db
    h = handlers(engine)
    populate(h, users=25)
    file = write_rules(tmp_path, V2)

    dry = json.loads(admin(url, "rules", "dry-run", file, "--mode", "recompute").stdout)
    assert dry["dry_run"] is True and dry["users"] == 25
    assert dry["level_changes"] > 0  # the new thresholds move someone
    applied = json.loads(admin(url, "rules", "apply", file, "--mode", "recompute").stdout)
    assert applied["already_applied"] is False
    assert figures(applied) == figures(dry)
    assert_exact(h, engine, V2)

    # Each level the recompute changed wrote one event, in the same transaction.
    with engine.connect() as conn:
        payloads = conn.execute(sa.select(outbox.c.payload)).scalars().all()
    events = [events_pb2.LevelChanged.FromString(p) for p in payloads]
    recomputed = [e for e in events if e.cause == events_pb2.LEVEL_CHANGE_CAUSE_RULES_RECOMPUTED]
    assert len(recomputed) == applied["level_changes"]
    assert {e.rule_version for e in recomputed} == {"v2"}

    shown = json.loads(admin(url, "rules", "show").stdout)
    assert shown["active"] == "v2"
    assert [s["version"] for s in shown["rule_sets"]] == ["v1", "v2"]
    assert shown["rule_sets"][1]["job"]["done"] is True


def test_recompute_resumes_where_it_stopped_and_runs_once(
    db: tuple[str, Engine], tmp_path: Path
) -> None:
    url, engine = db
    h = handlers(engine)
    populate(h, users=20, seed=11)
    dry = h.dry_run(V2, RuleMode.RECOMPUTE)

    # Stopped after 7 users (as if the operator's process died there).
    h.apply_rules(V2, RuleMode.RECOMPUTE, batch=5, max_users=7)
    with engine.connect() as conn:
        job = conn.execute(sa.select(rule_jobs)).one()
        versions = conn.execute(sa.select(friendship_status.c.rule_version)).scalars().all()
    assert (job.users_done, job.finished_at) == (7, None)
    assert sorted(versions).count("v2") == 7
    # GetLevel keeps answering meanwhile, each user from one consistent rule set.
    assert h.get_level("user-019").conversations > 0

    file = write_rules(tmp_path, V2)
    resumed = json.loads(admin(url, "rules", "apply", file, "--mode", "recompute").stdout)
    assert resumed["already_applied"] is False
    assert figures(resumed) == dry.to_dict()
    assert_exact(h, engine, V2)
    with engine.connect() as conn:
        job = conn.execute(sa.select(rule_jobs)).one()
    assert job.users_done == 20 and job.finished_at is not None

    before = snapshot(engine)
    again = json.loads(admin(url, "rules", "apply", file, "--mode", "recompute").stdout)
    assert again["already_applied"] is True
    assert figures(again) == figures(resumed)
    assert snapshot(engine) == before  # nothing rewritten


def test_conflicting_changes_are_refused(db: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = db
    handlers(engine)
    file = write_rules(tmp_path, V2)
    admin(url, "rules", "apply", file, "--mode", "forward")
    other = tmp_path / "v2-other.json"
    other.write_text(json.dumps(RuleSet("v2", ScoreWeights(), LevelThresholds()).to_body()))
    refused = admin(url, "rules", "apply", str(other), "--mode", "forward", check=False)
    assert refused.returncode == 3 and "other rules" in refused.stderr
    mode = admin(url, "rules", "apply", file, "--mode", "recompute", check=False)
    assert mode.returncode == 3
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": "v9"}')
    assert admin(url, "rules", "dry-run", str(bad), check=False).returncode == 2


def test_recompute_stays_exact_while_conversations_keep_arriving(db: tuple[str, Engine]) -> None:
    _, engine = db
    h = handlers(engine)
    users = populate(h, users=12, seed=3)
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        rng = random.Random(worker)
        try:
            for n in range(40):
                h.apply_conversation(ApplyCommand(
                    f"live-{worker}-{n}", rng.choice(users), "bot-c", rng.choice(["", "math"]),
                    AnalysisInput(rng.randint(0, 80), rng.randint(0, 5),
                                  rng.choice(list(Emotion)), rng.randint(0, 2), "local"),
                ))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    h.apply_rules(V2, RuleMode.RECOMPUTE, batch=3)
    for t in threads:
        t.join()
    assert errors == []
    assert_exact(h, engine, V2)
