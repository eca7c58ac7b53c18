"""An in-memory unit of work for FriendshipHandlers: a copy of the tables per transaction,
published on commit (rolled back otherwise)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType
from typing import Self

from friendship.domain.events import LevelChanged
from friendship.domain.friendship import ApplyOutcome, FriendshipStatus, LedgerEntry
from friendship.domain.history import HistoryCursor
from friendship.domain.replay import UserChange, ledger_order
from friendship.domain.rules import RuleJob, RuleMode, RuleSet, StoredRuleSet
from friendship.domain.topics import TopicState
from servicekit.erasure import erasure_hash


@dataclass
class Tables:
    status: dict[str, FriendshipStatus] = field(default_factory=dict)
    topics: dict[tuple[str, str], TopicState] = field(default_factory=dict)
    ledger: dict[str, LedgerEntry] = field(default_factory=dict)
    rule_sets: dict[str, StoredRuleSet] = field(default_factory=dict)
    jobs: dict[str, RuleJob] = field(default_factory=dict)
    results: dict[tuple[str, str], UserChange] = field(default_factory=dict)
    outbox: list[LevelChanged] = field(default_factory=list)
    erased: frozenset[str] = frozenset()  # erasure tombstones (sha256 of conversation ids)


class FakeRepository:
    def __init__(self, tables: Tables) -> None:
        self.t = tables

    def get_status(self, user_id: str) -> FriendshipStatus | None:
        return self.t.status.get(user_id)

    def level_inputs(self, user_id: str) -> tuple[FriendshipStatus | None, str | None]:
        return self.t.status.get(user_id), self.active_rule_version()

    def list_topics(self, user_id: str) -> list[TopicState]:
        return sorted((v for (u, _), v in self.t.topics.items() if u == user_id),
                      key=lambda topic: topic.topic_id)

    def lock_status(self, user_id: str) -> FriendshipStatus:
        return self.t.status.setdefault(user_id, FriendshipStatus(user_id))

    def lock_existing_status(self, user_id: str) -> FriendshipStatus | None:
        return self.t.status.get(user_id)

    def lock_topic(self, user_id: str, topic_id: str) -> TopicState:
        return self.t.topics.setdefault((user_id, topic_id), TopicState(user_id, topic_id))

    def find_ledger(self, conversation_id: str) -> LedgerEntry | None:
        return self.t.ledger.get(conversation_id)

    def apply_checks(self, conversation_id: str) -> tuple[LedgerEntry | None, bool, str | None]:
        return (
            self.find_ledger(conversation_id),
            self.is_erased(conversation_id),
            self.active_rule_version(),
        )

    def save_applied(self, outcome: ApplyOutcome) -> bool:
        if not self.insert_ledger(outcome.ledger):
            return False
        self.save_status(outcome.status)
        if outcome.topic is not None:
            self.save_topic(outcome.topic)
        return True

    def insert_ledger(self, entry: LedgerEntry) -> bool:
        if entry.conversation_id in self.t.ledger:
            return False
        self.t.ledger[entry.conversation_id] = entry
        return True

    def save_status(self, status: FriendshipStatus) -> None:
        self.t.status[status.user_id] = status

    def save_topic(self, topic: TopicState) -> None:
        self.t.topics[(topic.user_id, topic.topic_id)] = topic

    def history_page(
        self, user_id: str, after: HistoryCursor | None, limit: int
    ) -> list[LedgerEntry]:
        entries = sorted(self.user_ledger(user_id), key=ledger_order, reverse=True)
        if after is not None:
            key = (after.applied_at, after.conversation_id)
            entries = [e for e in entries if (e.applied_at, e.conversation_id) < key]
        return entries[:limit]

    def user_ledger(self, user_id: str) -> list[LedgerEntry]:
        return [e for e in self.t.ledger.values() if e.user_id == user_id]

    def ledgers_of(self, user_ids: Sequence[str]) -> dict[str, list[LedgerEntry]]:
        return {u: sorted(self.user_ledger(u), key=ledger_order) for u in user_ids}

    def rewrite_ledger(self, entries: Sequence[LedgerEntry]) -> None:
        for entry in entries:
            assert entry.conversation_id in self.t.ledger
            self.t.ledger[entry.conversation_id] = entry

    def upsert_topics(self, topics: Sequence[TopicState]) -> None:
        for topic in topics:
            self.save_topic(topic)

    def statuses_after(self, user_id: str, limit: int) -> list[FriendshipStatus]:
        return [self.t.status[u] for u in sorted(self.t.status) if u > user_id][:limit]

    def lock_rule_sets(self) -> None:
        return None

    def active_rule_version(self) -> str | None:
        return next((v for v, s in self.t.rule_sets.items() if s.active), None)

    def rule_set(self, version: str) -> StoredRuleSet | None:
        return self.t.rule_sets.get(version)

    def list_rule_sets(self) -> list[StoredRuleSet]:
        return list(self.t.rule_sets.values())

    def activate_rule_set(self, rules: RuleSet, mode: RuleMode) -> None:
        for version, stored in list(self.t.rule_sets.items()):
            self.t.rule_sets[version] = replace(stored, active=False)
        self.t.rule_sets[rules.version] = StoredRuleSet(rules, mode, True)

    def create_job(self, version: str, mode: RuleMode) -> None:
        self.t.jobs[version] = RuleJob(version, mode, False, "", 0)

    def get_job(self, version: str) -> RuleJob | None:
        return self.t.jobs.get(version)

    def unfinished_jobs(self) -> list[RuleJob]:
        return [job for job in self.t.jobs.values() if not job.done]

    def advance_job(self, version: str, user_id: str) -> None:
        job = self.t.jobs[version]
        self.t.jobs[version] = replace(
            job, cursor=max(job.cursor, user_id), users_done=job.users_done + 1
        )

    def finish_job(self, version: str) -> None:
        self.t.jobs[version] = replace(self.t.jobs[version], done=True,
                                       finished_at=datetime.now())

    def record_rule_result(self, version: str, change: UserChange) -> None:
        self.t.results.setdefault((version, change.user_id), change)

    def rule_results(self, version: str) -> list[UserChange]:
        return [c for (v, _), c in sorted(self.t.results.items()) if v == version]

    def add_event(self, event: LevelChanged) -> None:
        self.t.outbox.append(event)

    def add_tombstones(self, conversation_hashes: Sequence[str]) -> None:
        self.t.erased = self.t.erased | set(conversation_hashes)

    def is_erased(self, conversation_id: str) -> bool:
        return erasure_hash(conversation_id) in self.t.erased

    def delete_user(self, user_id: str) -> dict[str, int]:
        counts = {
            "ledger": len([k for k, e in self.t.ledger.items() if e.user_id == user_id]),
            "topic_metrics": len([k for k in self.t.topics if k[0] == user_id]),
            "outbox": len([e for e in self.t.outbox if e.user_id == user_id]),
            "rule_results": len([k for k in self.t.results if k[1] == user_id]),
            "friendship_status": int(user_id in self.t.status),
        }
        self.t.ledger = {k: e for k, e in self.t.ledger.items() if e.user_id != user_id}
        self.t.topics = {k: v for k, v in self.t.topics.items() if k[0] != user_id}
        self.t.outbox = [e for e in self.t.outbox if e.user_id != user_id]
        self.t.results = {k: v for k, v in self.t.results.items() if k[1] != user_id}
        self.t.status.pop(user_id, None)
        return counts


class FakeUnitOfWork:
    """Works on a copy of the committed tables; commit() publishes the copy."""

    def __init__(self, committed: Tables) -> None:
        self.committed = committed

    @property
    def friendship(self) -> FakeRepository:
        return self._repo

    def __enter__(self) -> Self:
        self._work = copy.copy(self.committed)
        for name in ("status", "topics", "ledger", "rule_sets", "jobs", "results"):
            setattr(self._work, name, dict(getattr(self.committed, name)))
        self._work.outbox = list(self.committed.outbox)
        self._repo = FakeRepository(self._work)
        return self

    def commit(self) -> None:
        for name in ("status", "topics", "ledger", "rule_sets", "jobs", "results", "outbox"):
            setattr(self.committed, name, getattr(self._work, name))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None
