import { act, cleanup, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { afterEach, describe, expect, it } from "vitest";

import { AlertApiClient, HarnessClient } from "../api";
import { parseHash } from "../App";
import { alert, fakeFetch, pipelineLatency, runStatus } from "../test/fixtures";
import { AlertDetail, flattenEvidence } from "./AlertDetail";
import { AlertsTable } from "./AlertsTable";
import { LiveAlerts } from "./LiveAlerts";
import { moduleStats } from "./ModulesView";
import { PipelineLatencyTable, RunView, sendToWrite } from "./RunView";
import { alertMarkers, upTo, valueAt } from "./SymbolView";

afterEach(cleanup);

describe("AlertDetail", () => {
  it("renders the evidence as fields, nested keys dotted, not as JSON", () => {
    render(<AlertDetail alert={alert()} onClose={() => undefined} />);
    const evidence = screen.getByTestId("evidence");
    expect(within(evidence).getByText("usd.notional")).toBeTruthy();
    expect(within(evidence).getByText("1,500,000.5")).toBeTruthy();
    expect(evidence.textContent).not.toContain("{");
  });

  it("closes on Escape", () => {
    let closed = false;
    render(<AlertDetail alert={alert()} onClose={() => (closed = true)} />);
    fireEvent.keyDown(screen.getByRole("dialog"), { key: "Escape" });
    expect(closed).toBe(true);
  });

  it("flattens arrays of objects by index", () => {
    expect(flattenEvidence({ fills: [{ qty: 1 }, { qty: 2 }], ids: [1, 2] })).toEqual([
      ["fills[0].qty", "1"],
      ["fills[1].qty", "2"],
      ["ids", "1, 2"],
    ]);
  });
});

describe("AlertsTable", () => {
  it("has one focusable row per alert; Enter opens it, arrows move focus", () => {
    const opened: string[] = [];
    const alerts = [alert({ alert_id: "a" }), alert({ alert_id: "b" })];
    render(<AlertsTable alerts={alerts} firstSeen={new Map()} initialLoad={0} selected={null} onOpen={(id) => opened.push(id)} now={0} />);
    const rows = screen.getByTestId("alerts-table").querySelectorAll("tbody tr");
    expect([...rows].map((r) => r.getAttribute("data-alert-id"))).toEqual(["a", "b"]);
    const first = rows[0] as HTMLElement;
    first.focus();
    fireEvent.keyDown(first, { key: "ArrowDown" });
    expect(document.activeElement).toBe(rows[1]);
    fireEvent.keyDown(rows[1] as HTMLElement, { key: "Enter" });
    expect(opened).toEqual(["b"]);
  });

  it("highlights a row that arrived after the first load", () => {
    const seen = new Map([["old", 10], ["new", 500]]);
    render(<AlertsTable alerts={[alert({ alert_id: "new" }), alert({ alert_id: "old" })]} firstSeen={seen} initialLoad={10} selected={null} onOpen={() => undefined} now={600} />);
    const rows = screen.getByTestId("alerts-table").querySelectorAll("tbody tr");
    expect([...rows].map((r) => r.className)).toEqual(["fresh", ""]);
  });
});

describe("LiveAlerts", () => {
  it("asks the API with the chosen filter and shows its answer", async () => {
    const all = [alert({ alert_id: "a", symbol: "BTCUSDT" }), alert({ alert_id: "b", symbol: "ETHUSDT", ts_event: 1 })];
    const { fetch, urls } = fakeFetch((u) => {
      const symbol = new URL(u).searchParams.get("symbol");
      const alerts = all.filter((a) => !symbol || a.symbol === symbol);
      return [200, { alerts, count: alerts.length, next_cursor: null }];
    });
    render(<LiveAlerts client={new AlertApiClient("http://api", fetch)} />);
    expect((await screen.findByText("2 alerts")).getAttribute("data-count")).toBe("2");
    await act(async () => {
      fireEvent.change(screen.getByRole("combobox", { name: /symbol/ }), { target: { value: "ETHUSDT" } });
    });
    await screen.findByText("1 alerts");
    const symbols = [...screen.getByRole<HTMLSelectElement>("combobox", { name: /symbol/ }).options].map((o) => o.value);
    expect(symbols).toEqual(["", "BTCUSDT", "ETHUSDT"]); // the other symbol stays selectable
    expect(urls.some((u) => new URL(u).searchParams.get("symbol") === "ETHUSDT")).toBe(true);
    fireEvent.click(screen.getByText("binance:ETHUSDT"));
    expect(screen.getByTestId("alert-detail").textContent).toContain("b");
  });
});

describe("RunView", () => {
  const rows = () => [...screen.getByTestId("pipeline-latency").querySelectorAll("tbody tr")].map((tr) => [...tr.children].map((c) => c.textContent));

  it("shows the pipeline's per-event latency from /harness/run beside the alerts' send -> write latency", async () => {
    const harness = fakeFetch(() => [200, runStatus()]);
    const api = fakeFetch(() => [200, { alerts: [alert({ ts_sent: 0, ts_written: 40_000 })], count: 1, next_cursor: null }]);
    render(<RunView client={new AlertApiClient("http://api", api.fetch)} harness={new HarnessClient("http://h", harness.fetch)} />);
    await screen.findByTestId("pipeline-latency");
    expect(rows()).toEqual([
      ["scheduled -> results available", "812 ms", "2,251 ms", "1,200"],
      ["scheduled -> rows committed", "3,100 ms", "7,900 ms", "1,150"],
    ]);
    expect(screen.queryByTestId("queueing")).toBeNull();
    expect(harness.urls).toContain("http://h/run");
    await waitFor(() => expect(screen.getByTestId("latency").textContent).toContain("40 ms"));
  });

  it("labels a max-speed run's figures as queueing", () => {
    render(<PipelineLatencyTable latency={pipelineLatency({ queueing: true, speed: null })} />);
    expect(screen.getByTestId("queueing").textContent).toContain("queue");
    expect(screen.getByTestId("pipeline-latency").getAttribute("data-queueing")).toBe("true");
    expect(screen.getByRole("columnheader", { name: "queueing" })).toBeTruthy();
  });

  it("says so before the first micro-batch, and shows – for a stage with nothing counted yet", () => {
    const { unmount } = render(<PipelineLatencyTable latency={null} />);
    expect(screen.getByTestId("pipeline-latency").textContent).toContain("No micro-batch yet");
    unmount();
    const empty = { label: "scheduled -> rows committed", p50: null, p99: null, count: 0 };
    render(<PipelineLatencyTable latency={pipelineLatency({ stages: { ...pipelineLatency().stages, freshness: empty } })} />);
    expect(rows()[1]).toEqual(["scheduled -> rows committed", "–", "–", "0"]);
  });
});

describe("figures", () => {
  it("valueAt takes the last value at or before t", () => {
    const s = { t: [10, 20, 30], v: [1, 2, 3] };
    expect([5, 10, 25, 99].map((t) => valueAt(s, t))).toEqual([1, 1, 2, 3]);
    expect(valueAt({ t: [], v: [] }, 1)).toBeNull();
  });

  it("cuts a series at the exchange time a live run reached", () => {
    const s = { t: [10, 20, 30], v: [1, 2, 3] };
    expect(upTo(s, 20)).toEqual({ t: [10, 20], v: [1, 2] });
    expect(upTo(s, null)).toBe(s);
    expect(upTo(s, 5)).toEqual({ t: [], v: [] });
  });

  it("puts a marker per alert on its exchange's price line, coloured by detector", () => {
    const market = {
      symbol: "BTCUSDT",
      exchanges: [
        { exchange: "coinbase", price: { t: [0], v: [7] }, notional_per_minute: { t: [], v: [] }, spread_bps: { t: [], v: [] } },
        { exchange: "binance", price: { t: [0, 100], v: [1, 2] }, notional_per_minute: { t: [], v: [] }, spread_bps: { t: [], v: [] } },
      ],
    };
    const markers = alertMarkers([alert({ alert_id: "x", ts_event: 150 }), alert({ alert_id: "y", detector: "MOD-002", exchange: "coinbase", ts_event: 5 })], market);
    expect(markers.map((m) => [m.id, m.v])).toEqual([["x", 2], ["y", 7]]);
    expect(markers[0]?.color).not.toBe(markers[1]?.color);
  });

  it("counts alerts per detector and hour of exchange time", () => {
    const h = 3_600_000_000;
    const stats = moduleStats([
      alert({ alert_id: "1", ts_event: 0, ts_written: 5 }),
      alert({ alert_id: "2", ts_event: h + 1, ts_written: 9 }),
      alert({ alert_id: "3", detector: "MOD-002", ts_event: 2 * h, ts_written: null }),
    ]);
    expect(stats).toEqual([
      { detector: "MOD-001", alerts: 2, perHour: [{ hour: 0, count: 1 }, { hour: 1, count: 1 }], lastWritten: 9 },
      { detector: "MOD-002", alerts: 1, perHour: [{ hour: 2, count: 1 }], lastWritten: null },
    ]);
  });

  it("measures send -> write latency over the alerts that carry both stamps", () => {
    const l = sendToWrite([alert({ ts_sent: 0, ts_written: 250_000 }), alert({ ts_sent: null })]);
    expect(l).toEqual({ p50: 250, p99: 250, n: 1 });
  });

  it("routes by hash", () => {
    expect(parseHash("#/symbol/BTC-USD")).toEqual({ view: "symbol", arg: "BTC-USD" });
    expect(parseHash("")).toEqual({ view: "alerts", arg: null });
    expect(parseHash("#/nope")).toEqual({ view: "alerts", arg: null });
  });
});
