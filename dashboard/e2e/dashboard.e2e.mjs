// End-to-end checks of the built dashboard in a real browser: playwright-core driving the system
// Chromium, headless, against `coattail dashboard` (or `coattail run --live`).
//
//   node e2e/dashboard.e2e.mjs SPEC.json
//
// SPEC: {"url", "mode": "live" | "finished", "out": dir for screenshots and result.json,
//        "chromium": path, "expected": {"ids": [...], "by_detector": {...}, "by_symbol": {...}} (finished)}
// live: watch the Live alerts view from before the first alert until the run is finished; record when each
//       alert's row first became visible (wall clock, ms) and whether one appeared while the run was going.
// finished: every alert of the run is listed (count and ids), filters, the detail, keyboard use, the
//       Symbol chart's markers, Modules and Run views, no console errors, first load time.
// Writes OUT/result.json ({"ok", "failures": [...], ...}); exits 1 when a check failed.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

import { chromium } from "playwright-core";

const spec = JSON.parse(readFileSync(process.argv[2], "utf8"));
mkdirSync(spec.out, { recursive: true });
const failures = [];
const result = { mode: spec.mode, failures };
const check = (ok, message) => {
  if (!ok) failures.push(message);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Records, in the page, when each alert row was first added to the DOM (wall clock, ms).
const OBSERVE = () => {
  window.__seen = {};
  const note = (node) => {
    if (!(node instanceof Element)) return;
    const rows = node.matches("tr[data-alert-id]") ? [node] : node.querySelectorAll("tr[data-alert-id]");
    const now = Date.now();
    for (const row of rows) {
      const id = row.getAttribute("data-alert-id");
      if (!(id in window.__seen)) window.__seen[id] = now;
    }
  };
  new MutationObserver((records) => records.forEach((r) => r.addedNodes.forEach(note))).observe(document, {
    childList: true,
    subtree: true,
  });
};

async function runState() {
  const reply = await fetch(new URL("harness/run", spec.url)).catch(() => null);
  return reply && reply.ok ? (await reply.json()).state : null;
}

async function live(page) {
  await page.goto(`${spec.url}#/alerts`);
  let firstDuring = null;
  const deadline = Date.now() + (spec.timeout_ms ?? 600_000);
  for (;;) {
    const state = await runState();
    const rows = await page.locator("tr[data-alert-id]").count();
    if (rows > 0 && firstDuring === null && state !== "finished" && state !== "failed") {
      firstDuring = { state, rows, at: Date.now() };
      await page.screenshot({ path: join(spec.out, "live-first-alert.png") });
    }
    if (state === "finished" || state === "failed" || Date.now() > deadline) {
      result.final_state = state;
      break;
    }
    await sleep(100);
  }
  await sleep(1500); // the last poll of the feed
  result.first_during_run = firstDuring;
  result.seen_ms = await page.evaluate(() => window.__seen);
  await page.screenshot({ path: join(spec.out, "live-end.png") });
  await page.goto(`${spec.url}#/run`);
  await page.getByTestId("run-status").waitFor();
  await page.screenshot({ path: join(spec.out, "run-view.png") });
  check(firstDuring !== null, "no alert row appeared while the run was still going");
  check(result.final_state === "finished", `the run ended ${result.final_state}`);
}

async function rowIds(page) {
  return page.locator("tbody tr[data-alert-id]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-alert-id")));
}

async function waitCount(page, n) {
  await page.locator(`[data-testid="alert-count"][data-count="${n}"]`).waitFor({ timeout: 10_000 });
}

async function finished(page) {
  const expected = spec.expected;
  const started = Date.now();
  await page.goto(`${spec.url}#/alerts`);
  await waitCount(page, expected.ids.length);
  result.first_load_ms = Date.now() - started;
  result.navigation = await page.evaluate(() => {
    const [n] = performance.getEntriesByType("navigation");
    return n ? { dom_content_loaded_ms: n.domContentLoadedEventEnd, load_ms: n.loadEventEnd } : null;
  });
  check(result.first_load_ms < 2000, `first load (every row listed) took ${result.first_load_ms} ms`);
  const ids = await rowIds(page);
  result.listed = ids.length;
  check(ids.length === expected.ids.length, `${ids.length} rows listed, the run has ${expected.ids.length} alerts`);
  check(JSON.stringify([...ids].sort()) === JSON.stringify([...expected.ids].sort()), "the listed ids differ from the run's");
  await page.screenshot({ path: join(spec.out, "alerts.png") });

  // filters: each detector, then each symbol (the API's own filters)
  for (const [name, groups] of [["detector", expected.by_detector], ["symbol", expected.by_symbol]]) {
    for (const [value, want] of Object.entries(groups)) {
      await page.getByRole("combobox", { name }).selectOption(value);
      await waitCount(page, want.length);
      const got = await rowIds(page);
      check(JSON.stringify([...got].sort()) === JSON.stringify([...want].sort()), `filter ${name}=${value}: rows differ`);
    }
    await page.getByRole("combobox", { name }).selectOption("");
    await waitCount(page, expected.ids.length);
  }
  const [detector] = Object.keys(expected.by_detector);
  await page.getByRole("combobox", { name: "detector" }).selectOption(detector);
  await waitCount(page, expected.by_detector[detector].length);
  await page.screenshot({ path: join(spec.out, "alerts-filtered.png") });
  await page.getByRole("combobox", { name: "detector" }).selectOption("");
  await waitCount(page, expected.ids.length);

  // keyboard: focus the first row, move down, open with Enter, close with Escape
  const first = page.locator("tbody tr[data-alert-id]").first();
  await first.focus();
  await page.keyboard.press("ArrowDown");
  const focused = await page.evaluate(() => document.activeElement?.getAttribute("data-alert-id"));
  check(focused === ids[1] || ids.length < 2, "ArrowDown did not move to the next row");
  await page.keyboard.press("Enter");
  const detail = page.getByTestId("alert-detail");
  await detail.waitFor();
  const fields = await page.getByTestId("evidence").locator("dt").count();
  check(fields > 0, "the alert's evidence has no fields");
  check(!(await page.getByTestId("evidence").innerText()).includes("{"), "the evidence is shown as raw JSON");
  check((await detail.innerText()).includes(focused ?? ""), "the detail shows another alert");
  await page.screenshot({ path: join(spec.out, "alert-detail.png") });
  await page.keyboard.press("Escape");
  await detail.waitFor({ state: "detached" });

  // Symbol: the chart carries a marker per alert of the symbol
  for (const [symbol, want] of Object.entries(expected.by_symbol)) {
    await page.goto(`${spec.url}#/symbol/${encodeURIComponent(symbol)}`);
    const markers = page.locator("circle.marker[data-alert-id]");
    await page.waitForFunction((n) => document.querySelectorAll("circle.marker[data-alert-id]").length === n, want.length, { timeout: 10_000 }).catch(() => undefined);
    const got = await markers.evaluateAll((cs) => cs.map((c) => c.getAttribute("data-alert-id")));
    check(JSON.stringify(got.sort()) === JSON.stringify([...want].sort()), `symbol ${symbol}: markers ${got.length}, alerts ${want.length}`);
    check((await page.locator("svg[data-chart]").count()) === 3, `symbol ${symbol}: not every chart drawn`);
  }
  await page.screenshot({ path: join(spec.out, "symbol.png"), fullPage: true });

  await page.goto(`${spec.url}#/modules`);
  await page.getByTestId("modules-table").waitFor();
  for (const [d, want] of Object.entries(expected.by_detector)) {
    const row = page.locator(`tr[data-detector="${d}"]`);
    await row.waitFor();
    check((await row.innerText()).includes(String(want.length)), `modules: ${d} does not show ${want.length} alerts`);
  }
  await page.screenshot({ path: join(spec.out, "modules.png") });

  await page.goto(`${spec.url}#/run`);
  await page.getByTestId("latency").waitFor();
  await page.screenshot({ path: join(spec.out, "run.png") });

  // keyboard reaches the views: on a fresh load, Tab lands on the first view link
  await page.goto(`${spec.url}#/alerts`);
  await page.reload();
  await page.getByTestId("alerts-table").waitFor();
  await page.keyboard.press("Tab");
  const tabbed = await page.evaluate(() => document.activeElement?.textContent);
  check(tabbed === "Live alerts", `Tab first reaches ${tabbed}`);
}

const browser = await chromium.launch({
  executablePath: spec.chromium ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(e.message));
  await page.addInitScript(OBSERVE);
  if (spec.mode === "live") await live(page);
  else await finished(page);
  result.console_errors = errors;
  check(errors.length === 0, `console errors: ${errors.join(" | ")}`);
} catch (e) {
  failures.push(`${e instanceof Error ? e.stack : e}`);
} finally {
  await browser.close();
}
result.ok = failures.length === 0;
writeFileSync(join(spec.out, "result.json"), JSON.stringify(result, null, 2));
if (!result.ok) {
  console.error(failures.join("\n"));
  process.exit(1);
}
