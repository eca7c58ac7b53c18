"""`friendship-admin`: operator commands for score rule sets.

  friendship-admin rules show
  friendship-admin rules dry-run FILE.json [--mode recompute|forward]
  friendship-admin rules apply FILE.json --mode forward|recompute

Results are JSON on stdout; progress and errors are JSON log lines on stderr.
Exit codes: 0 done, 1 database unreachable, 2 bad file or arguments, 3 the change conflicts
with the stored rule sets (the message says why).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy.exc
from pydantic import ValidationError

from friendship.adapters.repository import SqlAlchemyUnitOfWork
from friendship.config import AdminSettings
from friendship.domain.levels import LevelThresholds
from friendship.domain.rules import InvalidRuleSet, RuleMode, RuleSet, parse_rule_set_json
from friendship.domain.scoring import ScoreWeights
from friendship.handlers import FriendshipHandlers, RuleConflict
from servicekit.db import create_db_engine
from servicekit.logging import configure_logging

log = logging.getLogger("friendship.admin")

EXIT_DB = 1
EXIT_USAGE = 2
EXIT_CONFLICT = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="friendship-admin", description=__doc__.splitlines()[0])
    top = parser.add_subparsers(dest="group", required=True)
    rules = top.add_parser("rules", help="score rule sets").add_subparsers(
        dest="command", required=True
    )
    rules.add_parser("show", help="the stored rule sets, the active one and their jobs")
    dry = rules.add_parser("dry-run", help="what a rule set would do to every user")
    dry.add_argument("file", type=Path)
    dry.add_argument("--mode", choices=[m.value for m in RuleMode], default="recompute")
    apply = rules.add_parser("apply", help="store, activate and apply a rule set")
    apply.add_argument("file", type=Path)
    apply.add_argument("--mode", choices=[m.value for m in RuleMode], required=True)
    apply.add_argument("--batch", type=int, default=200, help="users read per query")
    return parser


def _emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def _handlers(settings: AdminSettings) -> tuple[FriendshipHandlers, Any]:
    engine = create_db_engine(
        settings.database_url,
        application_name="friendship-admin",
        pool_size=1,
        pool_timeout_s=10.0,
        connect_timeout_s=settings.db_connect_timeout_s,
        statement_timeout_ms=settings.db_statement_timeout_ms,
    )
    handlers = FriendshipHandlers(
        lambda: SqlAlchemyUnitOfWork(engine),
        # Only used while no rule set is stored (the server stores its own at start-up).
        default_rules=RuleSet("v1", ScoreWeights(), LevelThresholds()),
    )
    return handlers, engine


def _read_rules(path: Path) -> RuleSet:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidRuleSet(f"cannot read {path}: {exc.strerror}") from exc
    return parse_rule_set_json(text)


def run(argv: Sequence[str], settings: AdminSettings) -> int:
    args = _parser().parse_args(argv)
    handlers, engine = _handlers(settings)
    try:
        if args.command == "show":
            active, sets, jobs = handlers.list_rule_sets()
            by_version = {job.version: job for job in jobs}
            _emit({
                "active": active,
                "rule_sets": [
                    {
                        **stored.rules.to_body(),
                        "mode": stored.mode.value,
                        "active": stored.active,
                        "created_at": stored.created_at,
                        "job": (
                            {
                                "done": job.done,
                                "users_done": job.users_done,
                                "started_at": job.started_at,
                                "finished_at": job.finished_at,
                            }
                            if (job := by_version.get(stored.rules.version)) is not None
                            else None
                        ),
                    }
                    for stored in sets
                ],
            })
            return 0
        rules = _read_rules(args.file)
        mode = RuleMode(args.mode)
        if args.command == "dry-run":
            report = handlers.dry_run(rules, mode)
            _emit({"version": rules.version, "mode": mode.value, "dry_run": True,
                   **report.to_dict()})
            return 0
        outcome = handlers.apply_rules(
            rules,
            mode,
            batch=args.batch,
            progress=lambda done: log.info(
                "rule change progress", extra={"rule_version": rules.version, "users": done}
            ),
        )
        _emit({
            "version": outcome.version,
            "mode": outcome.mode.value,
            "already_applied": outcome.already_applied,
            **outcome.report.to_dict(),
        })
        return 0
    except InvalidRuleSet as exc:
        log.error("invalid rule set", extra={"problem": str(exc)})
        return EXIT_USAGE
    except RuleConflict as exc:
        log.error("rule change refused", extra={"problem": str(exc)})
        return EXIT_CONFLICT
    except sqlalchemy.exc.OperationalError as exc:
        log.error(
            "database unavailable",
            extra={"error": (str(exc.orig).splitlines() or [""])[0][:200]},
        )
        return EXIT_DB
    finally:
        engine.dispose()


def main() -> None:
    configure_logging("friendship-admin")
    try:
        settings = AdminSettings()
    except ValidationError as exc:
        log.error("invalid configuration", extra={"problems": str(exc.errors())[:500]})
        sys.exit(EXIT_USAGE)
    configure_logging("friendship-admin", settings.log_level)
    sys.exit(run(sys.argv[1:], settings))


if __name__ == "__main__":
    main()
