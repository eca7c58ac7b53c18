"""Use cases. Each owns its unit of work; repositories never commit.

Blocking (the repositories speak to PostgreSQL through psycopg2): the gRPC servicer runs these
through servicekit's BlockingRunner, which bounds both concurrency and time.

Lock order, everywhere: the user's status row, then that user's topic rows. Conversations of
one user, a recompute of that user and an erasure of that user run one after the other.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol, Self

from friendship.domain.events import LevelChangeCause, LevelChanged
from friendship.domain.friendship import (
    ApplyCommand,
    ApplyOutcome,
    FriendshipStatus,
    LedgerEntry,
    apply_conversation,
)
from friendship.domain.history import HistoryCursor, HistoryQuery, encode_page_token
from friendship.domain.levels import Level, next_level_start
from friendship.domain.replay import (
    RuleChangeReport,
    UserChange,
    relevel,
    replay_user,
    summarize,
)
from friendship.domain.rules import RuleJob, RuleMode, RuleSet, StoredRuleSet
from friendship.domain.topics import TopicState
from friendship.domain.validation import (
    InvalidRequest,
    validate_erasure_hashes,
    validate_user_id,
)


class FriendshipRepository(Protocol):
    def get_status(self, user_id: str) -> FriendshipStatus | None: ...

    def level_inputs(self, user_id: str) -> tuple[FriendshipStatus | None, str | None]:
        """The user's status (None: no row) and the active rule version, read together."""
        ...

    def list_topics(self, user_id: str) -> list[TopicState]:
        """The user's topics, sorted by topic_id."""
        ...

    def lock_status(self, user_id: str) -> FriendshipStatus:
        """Create the user's row if missing, then lock it until the end of the unit of work."""
        ...

    def lock_existing_status(self, user_id: str) -> FriendshipStatus | None:
        """Lock the user's row if it exists (never creates one)."""
        ...

    def lock_topic(self, user_id: str, topic_id: str) -> TopicState:
        """Create the topic row if missing, then lock it until the end of the unit of work."""
        ...

    def find_ledger(self, conversation_id: str) -> LedgerEntry | None: ...

    def apply_checks(self, conversation_id: str) -> tuple[LedgerEntry | None, bool, str | None]:
        """In one read: find_ledger, is_erased and active_rule_version."""
        ...

    def insert_ledger(self, entry: LedgerEntry) -> bool:
        """False (and nothing written) when the conversation_id is already in the ledger."""
        ...

    def save_applied(self, outcome: ApplyOutcome) -> bool:
        """insert_ledger(outcome.ledger), and only if it was inserted: save_status and
        save_topic (when there is one). False: nothing written (already in the ledger)."""
        ...

    def save_status(self, status: FriendshipStatus) -> None: ...

    def save_topic(self, topic: TopicState) -> None: ...

    # --- history and recompute ---
    def history_page(
        self, user_id: str, after: HistoryCursor | None, limit: int
    ) -> list[LedgerEntry]:
        """Newest first: (applied_at, conversation_id) descending, strictly before `after`."""
        ...

    def user_ledger(self, user_id: str) -> list[LedgerEntry]:
        """Every entry of the user (any order)."""
        ...

    def ledgers_of(self, user_ids: Sequence[str]) -> dict[str, list[LedgerEntry]]: ...

    def rewrite_ledger(self, entries: Sequence[LedgerEntry]) -> None:
        """Store the breakdown, before/after and rule_version of existing entries."""
        ...

    def upsert_topics(self, topics: Sequence[TopicState]) -> None: ...

    def statuses_after(self, user_id: str, limit: int) -> list[FriendshipStatus]:
        """Statuses with user_id > `user_id`, by user_id."""
        ...

    # --- rule sets ---
    def lock_rule_sets(self) -> None:
        """Serialize rule set changes (seed, activation) until the end of the unit of work."""
        ...

    def active_rule_version(self) -> str | None: ...

    def rule_set(self, version: str) -> StoredRuleSet | None: ...

    def list_rule_sets(self) -> list[StoredRuleSet]: ...

    def activate_rule_set(self, rules: RuleSet, mode: RuleMode) -> None:
        """Insert the rule set as the only active one."""
        ...

    def create_job(self, version: str, mode: RuleMode) -> None: ...

    def get_job(self, version: str) -> RuleJob | None: ...

    def unfinished_jobs(self) -> list[RuleJob]: ...

    def advance_job(self, version: str, user_id: str) -> None: ...

    def finish_job(self, version: str) -> None: ...

    def record_rule_result(self, version: str, change: UserChange) -> None: ...

    def rule_results(self, version: str) -> list[UserChange]: ...

    # --- events and erasure ---
    def add_event(self, event: LevelChanged) -> None: ...

    def delete_user(self, user_id: str) -> dict[str, int]:
        """Rows removed, by table."""
        ...

    def add_tombstones(self, conversation_hashes: Sequence[str]) -> None:
        """Erased conversations (sha256 hex of their ids); existing ones are kept."""
        ...

    def is_erased(self, conversation_id: str) -> bool: ...


class UnitOfWork(Protocol):
    """One transaction; rolled back on exit unless commit() was called."""

    @property
    def friendship(self) -> FriendshipRepository: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None: ...


@dataclass(frozen=True, slots=True)
class LevelView:
    user_id: str
    level: Level
    score: float
    next_level_score: float
    conversations: int
    updated_at: datetime | None


@dataclass(frozen=True)
class ApplyResult:
    applied: bool  # False: this conversation had been applied before
    score_change: float  # the formula's total (before the 0 floor)
    score: float  # the user's score after this conversation
    level: Level  # the user's level after this conversation

    @classmethod
    def from_ledger(cls, entry: LedgerEntry, *, applied: bool) -> ApplyResult:
        return cls(
            applied=applied,
            score_change=entry.breakdown.total,
            score=entry.score_after,
            level=entry.level_after,
        )


@dataclass(frozen=True)
class HistoryPage:
    user_id: str
    entries: list[LedgerEntry]
    next_page_token: str  # empty on the last page


class ConversationErased(Exception):
    """ApplyConversation of a conversation erased by DeleteUserData (it was in flight)."""


class RuleConflict(Exception):
    """The rule change cannot be made as asked (message says why; no user data in it)."""


@dataclass(frozen=True)
class RulesApplied:
    version: str
    mode: RuleMode
    already_applied: bool  # True: this version had been applied before; nothing changed
    report: RuleChangeReport


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _new_event_id() -> str:
    return str(uuid.uuid4())


class FriendshipHandlers:
    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        *,
        default_rules: RuleSet,
        clock: Callable[[], datetime] = _utc_now,
        new_event_id: Callable[[], str] = _new_event_id,
        on_events: Callable[[], None] = lambda: None,
        read_uow_factory: Callable[[], UnitOfWork] | None = None,
        on_user_changed: Callable[[str], None] = lambda user_id: None,
        on_rules_changed: Callable[[], None] = lambda: None,
    ) -> None:
        """default_rules: used until a rule set is stored (see ensure_rules).
        read_uow_factory: for get_level's single read (never commits); uow_factory if None.
        on_user_changed / on_rules_changed: called after a commit changed a user's status /
        the rule sets (the GetLevel cache forgets it at once: read-your-writes)."""
        self._uow_factory = uow_factory
        self._read_uow_factory = read_uow_factory or uow_factory
        self._on_user_changed = on_user_changed
        self._on_rules_changed = on_rules_changed
        self._default_rules = default_rules
        self._clock = clock
        self._new_event_id = new_event_id
        self._on_events = on_events
        self._rules_cache: dict[str, StoredRuleSet] = {}

    # --- rule sets (stored ones are immutable, so cached by version) ---------------------------
    def _stored(self, repo: FriendshipRepository, version: str) -> StoredRuleSet | None:
        cached = self._rules_cache.get(version)
        if cached is not None:
            return cached
        stored = repo.rule_set(version)
        if stored is not None:
            self._rules_cache[version] = replace(stored, active=False)
        return stored

    def _active(self, repo: FriendshipRepository) -> StoredRuleSet:
        """Read inside the caller's transaction, so it is the active set as of now."""
        return self._active_from(repo, repo.active_rule_version())

    def _active_from(self, repo: FriendshipRepository, version: str | None) -> StoredRuleSet:
        """The active set, its version read by the caller (in its transaction)."""
        stored = self._stored(repo, version) if version is not None else None
        if stored is None:
            return StoredRuleSet(rules=self._default_rules, mode=RuleMode.FORWARD, active=True)
        return stored

    def ensure_rules(self) -> tuple[RuleSet, bool]:
        """At start-up: store default_rules (from the environment) as the first rule set if
        none exists. Returns the active rule set and whether it was created now."""
        with self._uow_factory() as uow:
            repo = uow.friendship
            repo.lock_rule_sets()
            version = repo.active_rule_version()
            if version is not None:
                stored = self._stored(repo, version)
                assert stored is not None
                return stored.rules, False
            repo.activate_rule_set(self._default_rules, RuleMode.FORWARD)
            uow.commit()
        self._on_rules_changed()
        return self._default_rules, True

    # --- reads ---------------------------------------------------------------------------------
    def get_level(self, user_id: str) -> LevelView:
        violations = validate_user_id(user_id)
        if violations:
            raise InvalidRequest(violations)
        with self._read_uow_factory() as uow:
            repo = uow.friendship
            status, active_version = repo.level_inputs(user_id)
            # next_level_score follows the rules the stored level was computed with, so a
            # user not yet reached by a running recompute reads a consistent old view.
            # (Stored rule sets are immutable and cached: usually no second statement.)
            stored = self._stored(repo, status.rule_version) if status is not None else None
            if stored is None and active_version is not None:
                stored = self._stored(repo, active_version)
            rules = stored.rules if stored is not None else self._default_rules
        status = status or FriendshipStatus(user_id=user_id)
        return LevelView(
            user_id=user_id,
            level=status.level,
            score=status.score,
            next_level_score=next_level_start(status.level, rules.thresholds),
            conversations=status.conversations,
            updated_at=status.updated_at,
        )

    def get_topic_metrics(self, user_id: str) -> list[TopicState]:
        violations = validate_user_id(user_id)
        if violations:
            raise InvalidRequest(violations)
        with self._uow_factory() as uow:
            return uow.friendship.list_topics(user_id)

    def get_score_history(self, query: HistoryQuery) -> HistoryPage:
        with self._uow_factory() as uow:
            rows = uow.friendship.history_page(query.user_id, query.after, query.page_size + 1)
        entries = rows[: query.page_size]
        token = ""
        if len(rows) > query.page_size:
            last = entries[-1]
            token = encode_page_token(
                query.user_id, HistoryCursor(last.applied_at, last.conversation_id)
            )
        return HistoryPage(user_id=query.user_id, entries=entries, next_page_token=token)

    # --- writes --------------------------------------------------------------------------------
    def apply_conversation(self, command: ApplyCommand) -> ApplyResult:
        """Exactly once per conversation_id; a repeat returns the stored result, changes nothing.

        Lock order is always the user's row, then the topic row: conversations of the same user
        run one after the other (no lost update, no deadlock), and the ledger row is written
        under the user lock, so its score_before/score_after are exact. The active rule set is
        read under that lock; a user still on an older rule set is brought to it first (the
        same per-user step a rule change's job runs), so a concurrent recompute stays exact.
        """
        events: list[LevelChanged] = []
        with self._uow_factory() as uow:
            repo = uow.friendship
            status = repo.lock_status(command.user_id)
            stored, erased, active_version = repo.apply_checks(command.conversation_id)
            if stored is not None:
                return ApplyResult.from_ledger(stored, applied=False)
            # Checked under the user's lock, which erasure takes too: either this apply
            # commits first and erasure removes it, or erasure does and this sees its tombstone.
            if erased:
                raise ConversationErased()
            active = self._active_from(repo, active_version)
            status = self._bring_to(repo, status, active, events)
            topic = None
            if command.agent_tag:
                topic = repo.lock_topic(command.user_id, command.agent_tag)
            now = self._clock()
            outcome = apply_conversation(
                status,
                topic,
                command,
                weights=active.rules.weights,
                thresholds=active.rules.thresholds,
                now=now,
                rule_version=active.rules.version,
            )
            if not repo.save_applied(outcome):
                # The same conversation_id raced in under another user_id and won.
                stored = repo.find_ledger(command.conversation_id)
                if stored is None:  # pragma: no cover - the unique key makes this impossible
                    raise RuntimeError("ledger conflict without a stored row")
                return ApplyResult.from_ledger(stored, applied=False)
            ledger = outcome.ledger
            if ledger.level_before is not ledger.level_after:
                events.append(
                    LevelChanged(
                        event_id=self._new_event_id(),
                        user_id=command.user_id,
                        old_level=ledger.level_before,
                        new_level=ledger.level_after,
                        score=ledger.score_after,
                        conversation_id=command.conversation_id,
                        rule_version=ledger.rule_version,
                        occurred_at=now,
                        cause=LevelChangeCause.CONVERSATION,
                    )
                )
            for event in events:
                repo.add_event(event)
            uow.commit()
        self._on_user_changed(command.user_id)
        if events:
            self._on_events()
        return ApplyResult.from_ledger(outcome.ledger, applied=True)

    def _bring_to(
        self,
        repo: FriendshipRepository,
        status: FriendshipStatus,
        target: StoredRuleSet,
        events: list[LevelChanged],
    ) -> FriendshipStatus:
        """Under the user's lock: move a user to the target rule set (no-op when already there).

        recompute: the whole ledger replayed, ledger rows, status and topics rewritten.
        forward: the score stays, the level follows the new thresholds.
        Either way one rule_results row records old/new score and level, and a level change
        writes a LevelChanged event (appended to `events`, stored by the caller).
        """
        rules = target.rules
        if status.rule_version == rules.version:
            return status
        if status.conversations == 0:
            moved = replace(status, rule_version=rules.version)
            repo.save_status(moved)
            return moved
        now = self._clock()
        if target.mode is RuleMode.RECOMPUTE:
            replayed = replay_user(status.user_id, repo.user_ledger(status.user_id), rules)
            repo.rewrite_ledger(replayed.ledger)
            old_topics = {t.topic_id: t for t in repo.list_topics(status.user_id)}
            changed_topics = [
                topic if _same_topic(old_topics.get(topic.topic_id), topic)
                else replace(topic, updated_at=now)
                for topic in replayed.topics
            ]
            repo.upsert_topics(changed_topics)
            moved = replayed.status
            cause = LevelChangeCause.RULES_RECOMPUTED
        else:
            moved = relevel(status, rules)
            cause = LevelChangeCause.RULES_FORWARD
        changed = moved.score != status.score or moved.level is not status.level
        moved = replace(moved, updated_at=now if changed else status.updated_at)
        repo.save_status(moved)
        repo.record_rule_result(
            rules.version,
            UserChange(status.user_id, status.score, moved.score, status.level, moved.level),
        )
        if moved.level is not status.level:
            events.append(
                LevelChanged(
                    event_id=self._new_event_id(),
                    user_id=status.user_id,
                    old_level=status.level,
                    new_level=moved.level,
                    score=moved.score,
                    conversation_id="",
                    rule_version=rules.version,
                    occurred_at=now,
                    cause=cause,
                )
            )
        return moved

    def delete_user_data(
        self, user_id: str, erased_conversation_hashes: Sequence[str] = ()
    ) -> dict[str, int]:
        """Erasure: every friendship row holding the user's id, under the user's lock.

        The tombstones (hashes of the user's conversation ids, from ingest's erasure) are
        written in the same transaction: an ApplyConversation of one of them still in flight
        is refused from then on. The user's row is created if missing only to hold the lock
        (an apply of the user's very first conversation waits for us) and goes with the rest.
        """
        violations = validate_user_id(user_id) + validate_erasure_hashes(
            erased_conversation_hashes
        )
        if violations:
            raise InvalidRequest(violations)
        with self._uow_factory() as uow:
            repo = uow.friendship
            created = repo.lock_existing_status(user_id) is None
            if created:
                repo.lock_status(user_id)
            repo.add_tombstones(erased_conversation_hashes)
            counts = repo.delete_user(user_id)
            if created:
                counts["friendship_status"] = max(0, counts["friendship_status"] - 1)
            uow.commit()
        self._on_user_changed(user_id)
        return counts

    # --- rule changes (operator) ---------------------------------------------------------------
    def list_rule_sets(self) -> tuple[str | None, list[StoredRuleSet], list[RuleJob]]:
        with self._uow_factory() as uow:
            repo = uow.friendship
            active = repo.active_rule_version()
            sets = repo.list_rule_sets()
            jobs = [job for s in sets if (job := repo.get_job(s.rules.version)) is not None]
        return active, sets, jobs

    def dry_run(self, rules: RuleSet, mode: RuleMode, batch: int = 200) -> RuleChangeReport:
        """What applying `rules` in `mode` would do to every user now (writes nothing)."""
        return summarize(self._dry_run_changes(rules, mode, batch))

    def _dry_run_changes(
        self, rules: RuleSet, mode: RuleMode, batch: int
    ) -> Iterator[UserChange]:
        cursor = ""
        while True:
            with self._uow_factory() as uow:
                repo = uow.friendship
                statuses = repo.statuses_after(cursor, batch)
                ledgers = (
                    repo.ledgers_of([s.user_id for s in statuses])
                    if mode is RuleMode.RECOMPUTE else {}
                )
            if not statuses:
                return
            for status in statuses:
                cursor = status.user_id
                if status.conversations == 0:
                    continue
                if mode is RuleMode.RECOMPUTE:
                    moved = replay_user(
                        status.user_id, ledgers.get(status.user_id, []), rules
                    ).status
                else:
                    moved = relevel(status, rules)
                yield UserChange(
                    status.user_id, status.score, moved.score, status.level, moved.level
                )

    def apply_rules(
        self,
        rules: RuleSet,
        mode: RuleMode,
        *,
        batch: int = 200,
        progress: Callable[[int], None] = lambda done: None,
        max_users: int | None = None,
    ) -> RulesApplied:
        """Activate `rules` and run its job to the end (resuming an unfinished one).

        Idempotent: the same version again is a no-op once its job is done, and resumes it
        otherwise; a version is immutable (same number, other rules = RuleConflict).
        max_users stops the job early (tests of resumability; operators never need it).
        """
        already = False
        with self._uow_factory() as uow:
            repo = uow.friendship
            repo.lock_rule_sets()
            existing = repo.rule_set(rules.version)
            if existing is not None:
                if not existing.rules.same_rules(rules):
                    raise RuleConflict(
                        f"rule set {rules.version} exists with other rules; use a new version"
                    )
                if existing.mode is not mode:
                    raise RuleConflict(
                        f"rule set {rules.version} was applied with --mode {existing.mode.value}"
                    )
                if not existing.active:
                    raise RuleConflict(f"rule set {rules.version} is no longer the active one")
                job = repo.get_job(rules.version)
                already = job is None or job.done
            else:
                unfinished = repo.unfinished_jobs()
                if unfinished:
                    raise RuleConflict(
                        f"the job of rule set {unfinished[0].version} is unfinished;"
                        " apply that version again to finish it first"
                    )
                repo.activate_rule_set(rules, mode)
                repo.create_job(rules.version, mode)
                uow.commit()
                self._on_rules_changed()
        if not already:
            self._run_job(rules.version, batch=batch, progress=progress, max_users=max_users)
        return RulesApplied(
            version=rules.version,
            mode=mode,
            already_applied=already,
            report=self.rule_report(rules.version),
        )

    def rule_report(self, version: str) -> RuleChangeReport:
        with self._uow_factory() as uow:
            return summarize(uow.friendship.rule_results(version))

    def _run_job(
        self,
        version: str,
        *,
        batch: int,
        progress: Callable[[int], None],
        max_users: int | None,
    ) -> None:
        handled = 0
        while True:
            with self._uow_factory() as uow:
                repo = uow.friendship
                job = repo.get_job(version)
                if job is None or job.done:
                    return
                user_ids = [s.user_id for s in repo.statuses_after(job.cursor, batch)]
                if not user_ids:
                    repo.finish_job(version)
                    uow.commit()
                    return
            for user_id in user_ids:
                if max_users is not None and handled >= max_users:
                    return
                self._job_step(version, user_id)
                handled += 1
            progress(job.users_done + len(user_ids))

    def _job_step(self, version: str, user_id: str) -> None:
        """One user, one transaction: the user moved to `version` and the cursor advanced."""
        events: list[LevelChanged] = []
        with self._uow_factory() as uow:
            repo = uow.friendship
            status = repo.lock_existing_status(user_id)
            active = self._active(repo)
            if active.rules.version != version:
                raise RuleConflict(f"rule set {version} is no longer the active one")
            if status is not None:
                self._bring_to(repo, status, active, events)
            for event in events:
                repo.add_event(event)
            repo.advance_job(version, user_id)
            uow.commit()
        if status is not None:
            self._on_user_changed(user_id)
        if events:
            self._on_events()


def _same_topic(old: TopicState | None, new: TopicState) -> bool:
    return old is not None and (old.score, old.turns, old.agents_used) == (
        new.score, new.turns, new.agents_used
    )
