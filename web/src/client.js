// The gRPC-web client for the robot's door: IngestService through Envoy (and, on a local
// `make run` edge only, FriendshipService.GetLevel). Shared by the page and the node tests.
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { create } from "@bufbuild/protobuf";
import { IngestService } from "../gen/spring/ingest/v1/ingest_pb.js";
import {
  ConversationStatus,
  EndConversationRequestSchema,
} from "../gen/spring/ingest/v1/ingest_pb.js";
import { FriendshipLevel, FriendshipService } from "../gen/spring/friendship/v1/friendship_pb.js";
import { BadRequestSchema } from "../gen/google/rpc/error_details_pb.js";
import { ConnectError, Code } from "@connectrpc/connect";

export { Code, ConnectError, ConversationStatus, FriendshipLevel };

export const TERMINAL = new Set([
  ConversationStatus.PROCESSED,
  ConversationStatus.SKIPPED,
  ConversationStatus.FAILED,
]);

/** Clients for `edgeUrl` (Envoy), sending `authorization: Bearer <token>` when a token is set. */
export function edgeClients(edgeUrl, token) {
  const auth = (next) => async (req) => {
    if (token) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const transport = createGrpcWebTransport({ baseUrl: edgeUrl, interceptors: [auth] });
  return {
    ingest: createClient(IngestService, transport),
    friendship: createClient(FriendshipService, transport),
  };
}

/** "user: hello\nassistant: hi" (one turn a line; "role: text") -> Turn objects. */
export function parseConversation(text) {
  const turns = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line) continue;
    const at = line.indexOf(":");
    if (at > 0 && /^[A-Za-z]+$/.test(line.slice(0, at).trim())) {
      turns.push({ role: line.slice(0, at).trim().toLowerCase(), content: line.slice(at + 1).trim() });
    } else if (turns.length) {
      turns[turns.length - 1].content += `\n${line}`;
    } else {
      turns.push({ role: "user", content: line });
    }
  }
  return turns;
}

export function endConversationRequest({ conversationId, userId, botId, agentTag, turns }) {
  return create(EndConversationRequestSchema, {
    conversationId,
    userId,
    botId,
    agentTag: agentTag || "",
    conversationLog: turns,
  });
}

/** A plain object for any error: gRPC code name, message, BadRequest field violations. */
export function describeError(err) {
  const e = ConnectError.from(err);
  const violations = e.findDetails(BadRequestSchema).flatMap((d) =>
    d.fieldViolations.map((v) => ({ field: v.field, description: v.description })),
  );
  // gRPC's names (INVALID_ARGUMENT), as in CONTRACT.md, rather than connect's (InvalidArgument).
  const code = Code[e.code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
  return { code, message: e.rawMessage, violations };
}

export const statusName = (s) => ConversationStatus[s] ?? String(s);
export const levelName = (l) => FriendshipLevel[l] ?? String(l);
