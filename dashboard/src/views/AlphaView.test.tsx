import { act, cleanup, render, screen, within } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import { AlertApiClient, HarnessClient } from "../api";
import { alert, fakeFetch } from "../test/fixtures";
import type { Alert, Scorecard } from "../types";
import { AlphaScorecard, followSignals, SIGNALS_SHOWN, SignalsList } from "./AlphaView";
import { ModulesView } from "./ModulesView";

afterEach(cleanup);

const T0 = 1_767_225_600_000_000;

function signal(id: string, tsEvent: number, direction: number, over: Partial<Alert> = {}): Alert {
  return alert({
    alert_id: `follow:${id}`,
    detector: "MOD-011",
    kind: "follow_signal",
    ts_event: tsEvent,
    value: direction,
    threshold: 5,
    severity: "medium",
    evidence: { asset: "BTC", detector: "MOD-001", source_alert_id: id, horizon_s: 300, price: 50_000, count: 12, mean_bps: 11.25, hit_rate: 0.75, t_stat: 3.456 },
    event_ids: [],
    ...over,
  });
}

const CARD: Scorecard = {
  horizon_s: 300,
  bounds: { min_samples: 10, min_edge_bps: 5, min_hit_rate: 0.55 },
  sources: [
    { asset: "BTC", detector: "MOD-001", exchange: "binance", symbol: "BTCUSDT", count: 12, mean_bps: 11.25, hit_rate: 0.75, t_stat: 3.456, ts_event: T0 + 1_000_000, follows: true },
    { asset: "ETH", detector: "MOD-007", exchange: "bybit", symbol: "ETHUSDT", count: 1, mean_bps: -2, hit_rate: 0, t_stat: null, ts_event: T0, follows: false },
  ],
};

describe("followSignals", () => {
  it("keeps only follow signals, newest first, with the score they were given on", () => {
    const alerts = [signal("a", T0, 1), alert({ alert_id: "w", ts_event: T0 + 5 }), signal("b", T0 + 10, -1)];
    const got = followSignals(alerts);
    expect(got.map((s) => s.alertId)).toEqual(["follow:b", "follow:a"]);
    expect(got[0]).toMatchObject({ direction: "down", source: "MOD-001 binance:BTCUSDT", sourceDetector: "MOD-001", count: 12, meanBps: 11.25, hitRate: 0.75, tStat: 3.456 });
    expect(got[1]?.direction).toBe("up");
  });

  it("shows a missing score figure as absent, not as zero", () => {
    const [s] = followSignals([signal("a", T0, 1, { evidence: { detector: "MOD-006", t_stat: null } })]);
    expect(s).toMatchObject({ tStat: null, count: null, source: "MOD-006 binance:BTCUSDT" });
  });
});

describe("AlphaScorecard", () => {
  it("lists each source with its figures, newest score time in exchange time and whether it is followed", () => {
    render(<AlphaScorecard scorecard={CARD} />);
    const rows = screen.getByTestId("scorecard-table").querySelectorAll("tbody tr");
    expect([...rows].map((r) => r.getAttribute("data-source"))).toEqual(["MOD-001 binance:BTCUSDT", "MOD-007 bybit:ETHUSDT"]);
    const cells = [...(rows[0]?.querySelectorAll("td") ?? [])].map((c) => c.textContent);
    expect(cells).toEqual(["BTC", "12", "11.25", "0.75", "3.46", "2026-01-01 00:00:01.000", "yes"]);
    expect(rows[1]?.textContent).toContain("–"); // no t-statistic below two samples
    expect(screen.getByText(/signal horizon \(300 s\)/)).toBeTruthy();
  });

  it("says when nothing has matured", () => {
    render(<AlphaScorecard scorecard={{ ...CARD, sources: [] }} />);
    expect(screen.getByTestId("scorecard-table").textContent).toContain("no score yet");
  });
});

describe("SignalsList", () => {
  it("shows time, source, direction and score per signal", () => {
    render(<SignalsList signals={followSignals([signal("a", T0, 1), signal("b", T0 + 2_000, -1)])} />);
    const rows = screen.getByTestId("signals-table").querySelectorAll("tbody tr");
    expect([...rows].map((r) => r.getAttribute("data-alert-id"))).toEqual(["follow:b", "follow:a"]);
    const cells = [...(rows[0]?.querySelectorAll("td") ?? [])].map((c) => c.textContent?.trim());
    expect(cells).toEqual(["2026-01-01 00:00:00.002", "MOD-001 binance:BTCUSDT", "▼ down (sell)", "12", "11.25", "0.75", "3.46", "medium"]);
  });

  it("lists the newest ones only and says how many there are", () => {
    const many = Array.from({ length: SIGNALS_SHOWN + 5 }, (_, i) => signal(`s${i}`, T0 + i, 1));
    render(<SignalsList signals={followSignals(many)} />);
    expect(screen.getByTestId("signals-table").querySelectorAll("tbody tr")).toHaveLength(SIGNALS_SHOWN);
    expect(screen.getByText(`the newest ${SIGNALS_SHOWN} of ${SIGNALS_SHOWN + 5} signals`)).toBeTruthy();
  });
});

async function renderModules(scorecard: Scorecard | null, alerts: Alert[]): Promise<void> {
  const api = fakeFetch(() => [200, { alerts, count: alerts.length, next_cursor: null }]);
  const harness = fakeFetch((url) => [200, url.endsWith("/scorecard") ? scorecard : null]);
  render(<ModulesView client={new AlertApiClient("http://api", api.fetch)} harness={new HarnessClient("http://h", harness.fetch)} />);
  await act(async () => {
    await new Promise((resolve) => setTimeout(resolve, 50));
  });
}

describe("ModulesView with MOD-011", () => {
  it("shows the scorecard from the harness and the signals from the alert API", async () => {
    await renderModules(CARD, [signal("a", T0, 1), alert({ alert_id: "w" })]);
    const alpha = screen.getByTestId("alpha");
    expect(within(alpha).getByTestId("scorecard-table").querySelectorAll("tbody tr")).toHaveLength(2);
    const signals = within(alpha).getByTestId("signals-table").querySelectorAll("tbody tr");
    expect([...signals].map((r) => r.getAttribute("data-alert-id"))).toEqual(["follow:a"]);
  });

  it("has no alpha section for a run without MOD-011", async () => {
    await renderModules(null, [alert({ alert_id: "w" })]);
    expect(screen.getByTestId("modules-table")).toBeTruthy();
    expect(screen.queryByTestId("alpha")).toBeNull();
  });

  it("lists signals against production's API alone (no scorecard route) and says the scorecard is not served", async () => {
    const api = fakeFetch(() => [200, { alerts: [signal("a", T0, -1)], count: 1, next_cursor: null }]);
    render(<ModulesView client={new AlertApiClient("http://api", api.fetch)} harness={new HarnessClient(null)} />);
    await act(async () => {
      await new Promise((resolve) => setTimeout(resolve, 50));
    });
    expect(screen.getByTestId("signals-table").querySelectorAll("tbody tr")).toHaveLength(1);
    expect(screen.getByText(/serves no scorecard/)).toBeTruthy();
  });
});
