"""springctl: talk to a running spring stack with real gRPC clients and real tokens."""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from grpc_status import rpc_status

from servicekit.auth import mint_token
from spring.friendship.v1 import friendship_pb2, friendship_pb2_grpc
from spring.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from springctl import diagnose
from springctl.devsecret import resolve_secret

INGEST_TARGET = os.environ.get("INGEST_GRPC_TARGET", "127.0.0.1:50051")
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
AMQP_NAMESPACE = os.environ.get("AMQP_NAMESPACE", "spring")
FRIENDSHIP_TARGET = os.environ.get("FRIENDSHIP_GRPC_TARGET", "127.0.0.1:50053")
ANALYZER_TARGET = os.environ.get("ANALYZER_GRPC_TARGET", "127.0.0.1:50052")
ALL_PUBLIC_SCOPES = ["ingest:write", "ingest:read", "friendship:read"]

DEMO_LOG = [
    ("user", "Hi robot! My name is Lan and I like dinosaurs."),
    ("assistant", "Hello Lan! Dinosaurs are amazing. Which one is your favourite?"),
    ("user", "The T-rex! Why did dinosaurs disappear?"),
    ("assistant", "Most scientists think a giant asteroid changed the climate."),
    ("user", "Wow, that is so cool and interesting! Can we talk about volcanoes next time?"),
    ("assistant", "Of course! See you tomorrow."),
]


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _token(args: argparse.Namespace) -> str:
    if args.token:
        return str(args.token)
    env_token = os.environ.get("SPRING_TOKEN")
    if env_token:
        return env_token
    return mint_token(resolve_secret(), "springctl", ALL_PUBLIC_SCOPES, ttl_s=600)


def _call(method: Any, request: Message, args: argparse.Namespace) -> int:
    try:
        response = method(
            request, metadata=(("authorization", f"Bearer {_token(args)}"),), timeout=10
        )
    except grpc.RpcError as err:
        call: Any = err
        _out(f"error: {call.code().name}: {call.details()}")
        status = rpc_status.from_call(call)
        for detail in status.details if status else []:
            from google.rpc import error_details_pb2

            bad = error_details_pb2.BadRequest()
            if detail.Unpack(bad):
                for violation in bad.field_violations:
                    _out(f"  {violation.field}: {violation.description}")
        return 1
    _out(json_format.MessageToJson(response, preserving_proto_field_name=True))
    return 0


def _demo_request(user_id: str, agent_tag: str) -> ingest_pb2.EndConversationRequest:
    return ingest_pb2.EndConversationRequest(
        conversation_id=f"demo-{uuid.uuid4().hex[:12]}",
        user_id=user_id,
        bot_id="bot-explorer",
        agent_tag=agent_tag,
        conversation_log=[ingest_pb2.Turn(role=r, content=c) for r, c in DEMO_LOG],
    )


def cmd_send(args: argparse.Namespace) -> int:
    if args.file:
        text = Path(args.file).read_text()
        request = json_format.Parse(text, ingest_pb2.EndConversationRequest())
    else:
        request = _demo_request(args.user, args.topic)
    with grpc.insecure_channel(args.ingest) as channel:
        return _call(ingest_pb2_grpc.IngestServiceStub(channel).EndConversation, request, args)


def cmd_status(args: argparse.Namespace) -> int:
    request = ingest_pb2.GetConversationStatusRequest(conversation_id=args.conversation_id)
    with grpc.insecure_channel(args.ingest) as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        return _call(stub.GetConversationStatus, request, args)


def cmd_level(args: argparse.Namespace) -> int:
    with grpc.insecure_channel(args.friendship) as channel:
        stub = friendship_pb2_grpc.FriendshipServiceStub(channel)
        return _call(stub.GetLevel, friendship_pb2.GetLevelRequest(user_id=args.user_id), args)


def cmd_topics(args: argparse.Namespace) -> int:
    request = friendship_pb2.GetTopicMetricsRequest(user_id=args.user_id)
    with grpc.insecure_channel(args.friendship) as channel:
        stub = friendship_pb2_grpc.FriendshipServiceStub(channel)
        return _call(stub.GetTopicMetrics, request, args)


def cmd_token(args: argparse.Namespace) -> int:
    scopes = args.scope or ALL_PUBLIC_SCOPES
    _out(mint_token(resolve_secret(), args.sub, scopes, ttl_s=args.ttl))
    return 0


def _operator_target(args: argparse.Namespace) -> Any:
    from springctl.deadletters import Target

    token = args.token or os.environ.get("SPRING_TOKEN") or mint_token(
        resolve_secret(), "springctl-operator", ["ingest:read", "internal"], ttl_s=600
    )
    return Target(
        amqp_url=args.amqp_url, namespace=args.namespace, ingest=args.ingest, token=token
    )


def _print_rows(rows: list[Any], as_json: bool, columns: list[str]) -> None:
    from springctl.deadletters import as_json_lines

    if as_json:
        for line in as_json_lines(rows):
            _out(line)
        return
    if not rows:
        _out("(none)")
        return
    table = [[str(getattr(r, c)) if getattr(r, c) is not None else "-" for c in columns]
             for r in rows]  # fmt: skip
    widths = [max(len(c), *(len(row[i]) for row in table)) for i, c in enumerate(columns)]
    _out("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in table:
        _out("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def cmd_dlq_list(args: argparse.Namespace) -> int:
    from springctl.deadletters import list_dead_letters, run

    letters = run(list_dead_letters(_operator_target(args), args.limit))
    _print_rows(letters, args.json,
                ["conversation_id", "status", "attempts", "age_s", "reason"])  # fmt: skip
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from springctl.deadletters import replay, run

    if not args.all and not args.ids:
        _out("error: name conversation ids, or --all")
        return 2
    outcomes = run(replay(_operator_target(args), None if args.all else args.ids, args.limit))
    _print_rows(outcomes, args.json, ["conversation_id", "action", "detail"])
    return 1 if any(o.action == "kept" and o.conversation_id for o in outcomes) else 0


def cmd_reprocess(args: argparse.Namespace) -> int:
    from springctl.deadletters import reprocess, run

    outcomes = run(reprocess(_operator_target(args), args.ids))
    _print_rows(outcomes, args.json, ["conversation_id", "action", "detail"])
    return 1 if any(o.action == "error" for o in outcomes) else 0


def cmd_erase_user(args: argparse.Namespace) -> int:
    from springctl.erasure import StepFailed, Targets, as_json, erase_user

    token = args.token or os.environ.get("SPRING_TOKEN") or mint_token(
        resolve_secret(), "springctl-operator", ["internal"], ttl_s=600
    )
    targets = Targets(
        ingest=args.ingest, analyzer=args.analyzer, friendship=args.friendship, token=token
    )
    try:
        report = erase_user(targets, args.user_id)
    except StepFailed as exc:
        _out(as_json({**exc.report, "failed": str(exc)}))
        _out("error: erasure stopped; it is safe to run the same command again")
        return 1
    _out(as_json(report))
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    """Delegates to friendship-admin (same venv / image), which needs only DATABASE_URL."""
    import shutil
    import subprocess

    beside = Path(sys.executable).with_name("friendship-admin")
    admin = str(beside) if beside.exists() else shutil.which("friendship-admin")
    if admin is None:
        _out("error: friendship-admin not found (install services/friendship)")
        return 2
    return subprocess.call([admin, "rules", *args.rest])


def cmd_dev_run(_args: argparse.Namespace) -> int:
    from springctl.devrun import run

    return run()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="springctl", description=__doc__)
    parser.add_argument("--token", help="bearer token (default: $SPRING_TOKEN, else minted)")
    parser.add_argument("--ingest", default=INGEST_TARGET, help="ingest gRPC target")
    parser.add_argument("--friendship", default=FRIENDSHIP_TARGET, help="friendship gRPC target")
    sub = parser.add_subparsers(dest="command", required=True)

    send = sub.add_parser("send", help="send a conversation (a demo one, or --file JSON)")
    send.add_argument("--file", help="EndConversationRequest as proto JSON")
    send.add_argument("--demo", action="store_true", help="send the built-in demo (default)")
    send.add_argument("--user", default="demo-user", help="user id for the demo")
    send.add_argument("--topic", default="science", help="agent_tag for the demo")
    send.set_defaults(func=cmd_send)

    status = sub.add_parser("status", help="GetConversationStatus")
    status.add_argument("conversation_id")
    status.set_defaults(func=cmd_status)

    level = sub.add_parser("level", help="FriendshipService.GetLevel")
    level.add_argument("user_id")
    level.set_defaults(func=cmd_level)

    topics = sub.add_parser("topics", help="FriendshipService.GetTopicMetrics")
    topics.add_argument("user_id")
    topics.set_defaults(func=cmd_topics)

    token = sub.add_parser("token", help="mint a token from AUTH_JWT_SECRET or the dev secret")
    token.add_argument("--scope", action="append", help="scope (repeatable)")
    token.add_argument("--sub", default="dev-robot")
    token.add_argument("--ttl", type=int, default=24 * 3600)
    token.set_defaults(func=cmd_token)

    def operator(name: str, help_text: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--amqp-url", default=AMQP_URL, help="broker (default $AMQP_URL)")
        cmd.add_argument("--namespace", default=AMQP_NAMESPACE,
                         help="queue namespace (default $AMQP_NAMESPACE or spring)")  # fmt: skip
        cmd.add_argument("--json", action="store_true", help="one JSON object per line")
        return cmd

    dlq = operator("dlq-list", "list dead letters with their reasons, attempts and ages")
    dlq.add_argument("--limit", type=int, help="look at no more than this many")
    dlq.set_defaults(func=cmd_dlq_list)

    replay = operator("replay", "replay dead letters: the conversation is reset and enqueued "
                                "again; idempotent")  # fmt: skip
    replay.add_argument("ids", nargs="*", help="conversation ids to replay")
    replay.add_argument("--all", action="store_true", help="replay every dead letter")
    replay.add_argument("--limit", type=int, help="look at no more than this many")
    replay.set_defaults(func=cmd_replay)

    reprocess = operator("reprocess", "enqueue conversations again by id (FAILED/SKIPPED are "
                                      "reset; PROCESSED ones are left as they are)")  # fmt: skip
    reprocess.add_argument("ids", nargs="+", help="conversation ids")
    reprocess.set_defaults(func=cmd_reprocess)

    erase = sub.add_parser(
        "erase-user",
        help="erase a user's data: ingest, then analyzer (and Mem0), then friendship; "
        "idempotent, safe to run twice",
    )
    erase.add_argument("user_id")
    erase.add_argument("--analyzer", default=ANALYZER_TARGET,
                       help="analyzer gRPC target (default $ANALYZER_GRPC_TARGET)")  # fmt: skip
    erase.set_defaults(func=cmd_erase_user)

    rules = sub.add_parser(
        "rules",
        help="score rule sets (friendship-admin rules show | dry-run FILE | apply FILE --mode)",
        add_help=False,
    )
    rules.add_argument("rest", nargs=argparse.REMAINDER)
    rules.set_defaults(func=cmd_rules)

    diagnose.register(sub)

    dev = sub.add_parser("dev-run", help="run the three services in the foreground (make run)")
    dev.set_defaults(func=cmd_dev_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
