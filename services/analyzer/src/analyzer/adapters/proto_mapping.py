"""Proto <-> domain mapping, shared by the gRPC clients and the servicer."""

from __future__ import annotations

from analyzer.domain.model import (
    Analysis,
    AnalysisSource,
    Conversation,
    ConversationMetadata,
    Emotion,
    Turn,
)
from analyzer.domain.normalization import RawTurn, parse_role
from spring.ingest.v1 import ingest_internal_pb2, ingest_pb2


def emotion_to_domain(value: int) -> Emotion:
    try:
        return Emotion(value)
    except ValueError:
        return Emotion.UNSPECIFIED


def emotion_to_proto(emotion: Emotion) -> ingest_pb2.Emotion.ValueType:
    return ingest_pb2.Emotion.Value(f"EMOTION_{emotion.name}")


def metadata_to_domain(
    metadata: ingest_pb2.ConversationMetadata, present: bool = True
) -> ConversationMetadata:
    if not present:
        return ConversationMetadata()
    return ConversationMetadata(
        user_initiated_questions=(
            metadata.user_initiated_questions
            if metadata.HasField("user_initiated_questions")
            else None
        ),
        session_emotion=emotion_to_domain(metadata.session_emotion),
    )


def raw_turn_to_domain(turn: ingest_pb2.Turn) -> RawTurn:
    return RawTurn(role=turn.role, content=turn.content)


class UnknownRoleFromIngest(ValueError):
    pass


def normalized_turn_to_domain(turn: ingest_pb2.Turn) -> Turn:
    role = parse_role(turn.role)
    if role is None:
        raise UnknownRoleFromIngest("normalized turn with an unknown role")
    return Turn(role=role, content=turn.content)


def conversation_to_domain(message: ingest_internal_pb2.NormalizedConversation) -> Conversation:
    return Conversation(
        conversation_id=message.conversation_id,
        user_id=message.user_id,
        bot_id=message.bot_id,
        bot_type=message.bot_type,
        agent_tag=message.agent_tag,
        turns=tuple(normalized_turn_to_domain(t) for t in message.turns),
        metadata=metadata_to_domain(message.metadata, message.HasField("metadata")),
    )


def analysis_to_proto(analysis: Analysis) -> ingest_pb2.Analysis:
    return ingest_pb2.Analysis(
        total_turns=analysis.total_turns,
        user_initiated_questions=analysis.user_initiated_questions,
        session_emotion=emotion_to_proto(analysis.session_emotion),
        new_memories_count=analysis.new_memories_count,
        source=analysis.source.value,
    )


def analysis_to_domain(message: ingest_pb2.Analysis) -> Analysis:
    return Analysis(
        total_turns=message.total_turns,
        user_initiated_questions=message.user_initiated_questions,
        session_emotion=emotion_to_domain(message.session_emotion),
        new_memories_count=message.new_memories_count,
        source=AnalysisSource(message.source),
    )
