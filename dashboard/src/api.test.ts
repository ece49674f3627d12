import { describe, expect, it } from "vitest";

import { AlertApiClient, ApiError, HarnessClient } from "./api";
import { alert, fakeFetch, runStatus } from "./test/fixtures";

describe("AlertApiClient", () => {
  it("passes the filters and options as the API's query parameters", async () => {
    const { fetch, urls } = fakeFetch(() => [200, { alerts: [], count: 0, next_cursor: null }]);
    await new AlertApiClient("http://api/v1/", fetch).page({ symbol: "BTC-USD", detector: "", severity: "high" }, { from: 5, limit: 10, cursor: "c1" });
    const url = new URL(urls[0] ?? "");
    expect(url.pathname).toBe("/v1/alerts");
    expect(Object.fromEntries(url.searchParams)).toEqual({ symbol: "BTC-USD", severity: "high", from: "5", limit: "10", cursor: "c1" });
  });

  it("follows next_cursor to the last page", async () => {
    const pages: Record<string, unknown> = {
      "": { alerts: [alert({ alert_id: "a" }), alert({ alert_id: "b" })], count: 2, next_cursor: "p2" },
      p2: { alerts: [alert({ alert_id: "c" })], count: 1, next_cursor: "p3" },
      p3: { alerts: [], count: 0, next_cursor: null },
    };
    const { fetch, urls } = fakeFetch((u) => [200, pages[new URL(u).searchParams.get("cursor") ?? ""]]);
    const all = await new AlertApiClient("http://api", fetch).all({ detector: "MOD-001" });
    expect(all.map((a) => a.alert_id)).toEqual(["a", "b", "c"]);
    expect(urls).toHaveLength(3);
    expect(urls.every((u) => new URL(u).searchParams.get("detector") === "MOD-001")).toBe(true);
  });

  it("turns the API's error body into an ApiError with its code", async () => {
    const { fetch } = fakeFetch(() => [400, { error: { code: "bad_parameter", message: "limit: 1-1000", parameter: "limit" } }]);
    const error = await new AlertApiClient("http://api", fetch).page({}, { limit: 0 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 400, code: "bad_parameter", message: "limit: 1-1000" });
  });

  it("reports an unreachable API as an ApiError, not a TypeError", async () => {
    const failing = (async () => {
      throw new TypeError("Failed to fetch");
    }) as typeof fetch;
    await expect(new AlertApiClient("http://api", failing).alert("x")).rejects.toMatchObject({ code: "unreachable" });
  });

  it("escapes an alert id in the path", async () => {
    const { fetch, urls } = fakeFetch(() => [200, alert()]);
    await new AlertApiClient("http://api", fetch).alert("a/b c");
    expect(urls[0]).toBe("http://api/alerts/a%2Fb%20c");
  });
});

describe("HarnessClient", () => {
  it("answers null where production has no harness routes (404 or no base)", async () => {
    const { fetch } = fakeFetch(() => [404, { error: { code: "not_found", message: "no" } }]);
    expect(await new HarnessClient("http://h", fetch).run()).toBeNull();
    expect(await new HarnessClient(null, fetch).market("BTCUSDT")).toBeNull();
    expect(await new HarnessClient(null, fetch).symbols()).toEqual([]);
  });

  it("passes the live run's status on with its per-event latency", async () => {
    const status = runStatus();
    const { fetch, urls } = fakeFetch(() => [200, status]);
    const run = await new HarnessClient("http://h/", fetch).run();
    expect(urls).toEqual(["http://h/run"]);
    expect(run?.latency?.stages.results).toEqual(status.latency?.stages.results);
    expect(run?.latency?.queueing).toBe(false);
  });

  it("answers null when the harness has nothing to show (a JSON null)", async () => {
    const { fetch } = fakeFetch(() => [200, null]);
    expect(await new HarnessClient("http://h", fetch).run()).toBeNull();
    expect(await new HarnessClient("http://h", fetch).symbols()).toEqual([]);
  });

  it("asks for the scorecard and passes a tier without MOD-011 on as null", async () => {
    const card = { horizon_s: 300, bounds: { min_samples: 10, min_edge_bps: 5, min_hit_rate: 0.55 }, sources: [] };
    const { fetch, urls } = fakeFetch((url) => (url.endsWith("/scorecard") ? [200, card] : [200, null]));
    expect(await new HarnessClient("http://h/", fetch).scorecard()).toEqual(card);
    expect(urls).toEqual(["http://h/scorecard"]);
    const none = fakeFetch(() => [200, null]);
    expect(await new HarnessClient("http://h", none.fetch).scorecard()).toBeNull();
    expect(await new HarnessClient(null, none.fetch).scorecard()).toBeNull();
    expect(none.urls).toEqual(["http://h/scorecard"]);
  });

  it("raises other failures", async () => {
    const { fetch } = fakeFetch(() => [500, { error: { code: "harness_error", message: "broken" } }]);
    await expect(new HarnessClient("http://h", fetch).dq()).rejects.toMatchObject({ status: 500 });
  });
});
