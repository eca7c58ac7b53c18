// The simulator page in headless Debian Chromium (playwright-core, no downloaded browser).
// usage: node test/browser.mjs <page url> <token> <screenshot dir>
// The page lives on another origin than Envoy: every call below goes through CORS.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [pageUrl, token, shotDir] = process.argv.slice(2);
const userDataDir = mkdtempSync(join(tmpdir(), "spring-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
  viewport: { width: 1000, height: 900 },
});
const out = { consoleErrors: [], edgeRequests: [] };
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (m) => m.type() === "error" && out.consoleErrors.push(m.text()));
  const edgeRequests = [];
  page.on("request", (r) => r.url().includes("/spring.") && edgeRequests.push(r));
  await page.goto(pageUrl);
  await page.waitForSelector("body[data-ready=true]");
  const text = async (id) => (await page.getByTestId(id).textContent()).trim();
  const terminal = /^(PROCESSED|SKIPPED|FAILED)$/;

  // 1. A conversation from a person, with a valid token: accepted, processed, level shown.
  await page.getByTestId("token").fill(token);
  out.userId = await page.getByTestId("user-id").inputValue();
  await page.getByTestId("send").click();
  await page.waitForFunction(
    (re) => new RegExp(re).test(document.getElementById("status").textContent.trim()),
    terminal.source, { timeout: 90_000 },
  );
  await page.waitForFunction(() => !document.getElementById("send-form").querySelector("button").disabled);
  out.conversationId = await text("conversation-id");
  out.status = await text("status");
  out.scoreChange = await text("score-change");
  out.level = await text("level");
  out.levelScore = await text("level-score");
  await page.screenshot({ path: join(shotDir, "simulator-processed.png"), fullPage: true });

  // 2. No token: the service says UNAUTHENTICATED, readable across origins (exposed headers).
  await page.getByTestId("token").fill("");
  await page.getByTestId("send").click();
  await page.getByTestId("error").waitFor({ state: "visible" });
  out.noTokenError = await text("error");

  // 3. An empty conversation: INVALID_ARGUMENT with field violations (grpc-status-details-bin).
  await page.getByTestId("token").fill(token);
  await page.getByTestId("conversation").fill("");
  await page.getByTestId("send").click();
  await page.waitForFunction(() => /INVALID_ARGUMENT/.test(document.getElementById("error").textContent));
  out.invalidError = await text("error");
  await page.screenshot({ path: join(shotDir, "simulator-invalid.png"), fullPage: true });
  for (const r of edgeRequests) {
    // allHeaders(): what Chromium really sent, Origin included.
    out.edgeRequests.push({ url: r.url(), origin: (await r.allHeaders()).origin ?? null });
  }
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify(out)}\n`);
