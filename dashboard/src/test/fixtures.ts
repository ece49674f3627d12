import type { Alert, PipelineLatency, RunStatus } from "../types";

/** An alert with every field; `over` replaces some. */
export function alert(over: Partial<Alert> = {}): Alert {
  return {
    alert_id: "a1",
    detector: "MOD-001",
    kind: "whale_trade",
    exchange: "binance",
    symbol: "BTCUSDT",
    severity: "high",
    ts_event: 1_767_225_600_000_000,
    window_start: null,
    window_end: null,
    value: 1_500_000.5,
    threshold: 1_000_000,
    evidence: { trade_id: 42, price: 50_000, side: "buy", usd: { notional: 1_500_000.5 } },
    event_ids: ["binance:BTCUSDT:42"],
    ts_sent: 1_767_300_000_000_000,
    ts_ingest: 1_767_300_000_100_000,
    ts_written: 1_767_300_000_250_000,
    expires_at: 1_767_386_400,
    ...over,
  };
}

/** A `fetch` answering from `routes` (URL → [status, body]) and recording every URL asked for. */
export function fakeFetch(answer: (url: string) => [number, unknown]): { fetch: typeof fetch; urls: string[] } {
  const urls: string[] = [];
  const fetchImpl = (async (input: RequestInfo | URL) => {
    const url = String(input);
    urls.push(url);
    const [status, body] = answer(url);
    return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
  }) as typeof fetch;
  return { fetch: fetchImpl, urls };
}

/** Per-event latency as the harness reports it: a paced run (1x) unless `over` says otherwise. */
export function pipelineLatency(over: Partial<PipelineLatency> = {}): PipelineLatency {
  return {
    queueing: false,
    speed: 1,
    stages: {
      results: { label: "scheduled -> results available", p50: 812.4, p99: 2_250.7, count: 1_200 },
      freshness: { label: "scheduled -> rows committed", p50: 3_100, p99: 7_900.2, count: 1_150 },
    },
    ...over,
  };
}

/** A live run's status from `GET /harness/run`; `over` replaces some fields. */
export function runStatus(over: Partial<RunStatus> = {}): RunStatus {
  return {
    run_id: "run-1",
    state: "consuming",
    sent: 1_200,
    total: 2_000,
    events_per_s: 400,
    position_us: 1_767_225_630_000_000,
    start_us: 1_767_225_600_000_000,
    end_us: 1_767_225_660_000_000,
    records_in: 1_200,
    batches: 7,
    message: null,
    latency: pipelineLatency(),
    ...over,
  };
}
