// A robot over gRPC-web, in Node: the generated client through Envoy.
// usage: node test/grpc_web_client.mjs <edge url> <token>
// Prints one JSON object with what each call answered; tests/edge asserts on it.
import {
  TERMINAL,
  describeError,
  edgeClients,
  endConversationRequest,
  statusName,
  levelName,
} from "../src/client.js";

const [edgeUrl, token] = process.argv.slice(2);
const id = (prefix) => `${prefix}-${Math.random().toString(16).slice(2, 14)}`;
const { ingest, friendship } = edgeClients(edgeUrl, token);
const anonymous = edgeClients(edgeUrl, "").ingest;
const out = {};

async function attempt(name, call) {
  try {
    out[name] = { ok: true, ...(await call()) };
  } catch (err) {
    out[name] = { ok: false, ...describeError(err) };
  }
}

const request = endConversationRequest({
  conversationId: id("gw"),
  userId: id("gw-user"),
  botId: "bot-explorer",
  agentTag: "space",
  turns: [
    { role: "user", content: "Why is the sky blue?" },
    { role: "assistant", content: "Sunlight scatters off the air, and blue scatters the most." },
    { role: "user", content: "Can we look at the stars tonight?" },
    { role: "assistant", content: "Yes, after dinner." },
  ],
});

await attempt("accepted", async () => {
  const r = await ingest.endConversation(request);
  return { conversationId: r.conversationId, status: statusName(r.status), duplicate: r.duplicate };
});
await attempt("again", async () => {
  const r = await ingest.endConversation(request);
  return { status: statusName(r.status), duplicate: r.duplicate };
});
await attempt("final", async () => {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await ingest.getConversationStatus({ conversationId: request.conversationId });
    if (TERMINAL.has(r.status) || Date.now() > deadline) {
      return {
        status: statusName(r.status),
        scoreChange: r.scoreChange,
        totalTurns: r.analysis?.totalTurns ?? 0,
      };
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
});
await attempt("invalid", async () => {
  const bad = endConversationRequest({ conversationId: "not valid!", userId: "", botId: "b", turns: [] });
  return { unexpected: await ingest.endConversation(bad) };
});
await attempt("unauthenticated", async () => ({
  unexpected: await anonymous.getConversationStatus({ conversationId: request.conversationId }),
}));
await attempt("unknown", async () => ({
  unexpected: await ingest.getConversationStatus({ conversationId: id("missing") }),
}));
await attempt("friendship", async () => {
  const r = await friendship.getLevel({ userId: request.userId });
  return { level: levelName(r.level), score: r.score };
});

process.stdout.write(`${JSON.stringify(out)}\n`);
