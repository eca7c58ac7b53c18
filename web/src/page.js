// The robot simulator page: send a conversation, watch its status and the friendship level.
import {
  TERMINAL,
  describeError,
  edgeClients,
  endConversationRequest,
  levelName,
  parseConversation,
  statusName,
} from "./client.js";

const $ = (id) => document.getElementById(id);
const randomId = (prefix) => `${prefix}-${Math.random().toString(16).slice(2, 12)}`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function showError(err) {
  const e = describeError(err);
  const lines = [`${e.code}: ${e.message}`, ...e.violations.map((v) => `  ${v.field}: ${v.description}`)];
  $("error").textContent = lines.join("\n");
  $("error").hidden = false;
}

async function showLevel(friendship, userId) {
  try {
    const r = await friendship.getLevel({ userId });
    $("level").textContent = levelName(r.level).replace(/^PHASE\d_/, "");
    $("level-score").textContent = `score ${r.score.toFixed(1)}` +
      (r.nextLevelScore ? ` (next level at ${r.nextLevelScore})` : "");
  } catch (err) {
    // The cluster's Envoy routes no friendship method; only `make run`'s local edge does.
    const e = describeError(err);
    $("level").textContent = e.code === "UNIMPLEMENTED" ? "not routed at this edge" : e.code;
  }
}

async function send(event) {
  event.preventDefault();
  const button = $("send-form").querySelector("button");
  button.disabled = true;
  $("error").hidden = true;
  $("score").textContent = "";
  const { ingest, friendship } = edgeClients($("edge-url").value.trim(), $("token").value.trim());
  const userId = $("user-id").value.trim();
  try {
    await showLevel(friendship, userId);
    const request = endConversationRequest({
      conversationId: randomId("sim"),
      userId,
      botId: $("bot-id").value.trim(),
      agentTag: $("agent-tag").value.trim(),
      turns: parseConversation($("conversation").value),
    });
    const accepted = await ingest.endConversation(request);
    $("conversation-id").textContent = accepted.conversationId;
    $("status").textContent = statusName(accepted.status);
    const deadline = Date.now() + 120_000;
    for (;;) {
      const s = await ingest.getConversationStatus({ conversationId: accepted.conversationId });
      $("status").textContent = statusName(s.status);
      if (TERMINAL.has(s.status)) {
        if (s.analysis) $("score").textContent = `score change ${s.scoreChange >= 0 ? "+" : ""}${s.scoreChange}`;
        if (s.lastError) $("score").textContent += ` (${s.lastError})`;
        break;
      }
      if (Date.now() > deadline) break;
      await sleep(400);
    }
    await showLevel(friendship, userId);
  } catch (err) {
    showError(err);
  } finally {
    button.disabled = false;
  }
}

async function init() {
  let config = {};
  try {
    config = await (await fetch("config.json", { cache: "no-store" })).json();
  } catch {
    // Served without devrun: the person fills in the fields.
  }
  $("edge-url").value = config.edgeUrl || "http://127.0.0.1:8080";
  $("token").value = config.token || "";
  $("user-id").value = randomId("person");
  $("send-form").addEventListener("submit", send);
  document.body.dataset.ready = "true";
}

init();
