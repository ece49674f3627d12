/** The alert object of the alert API (docs/API.md, "The alert object"). Times are µs since the epoch, UTC. */
export interface Alert {
  alert_id: string;
  detector: string;
  kind: string;
  exchange: string;
  symbol: string;
  severity: string;
  ts_event: number;
  window_start: number | null;
  window_end: number | null;
  value: number | null;
  threshold: number | null;
  evidence: Record<string, unknown>;
  event_ids: string[];
  ts_sent: number | null;
  ts_ingest: number | null;
  ts_written: number | null;
  expires_at: number | null;
}

/** One page of `GET /alerts`. */
export interface AlertPage {
  alerts: Alert[];
  count: number;
  next_cursor: string | null;
}

/** The equality filters of `GET /alerts` the dashboard offers. */
export interface AlertFilters {
  symbol?: string;
  detector?: string;
  severity?: string;
}

/** `GET /health`. */
export interface Health {
  status: "ok" | "degraded";
  checked_at: number;
  stream: { name: string; status: string; open_shards?: number };
  table: { name: string; status: string; item_count?: number };
  last_alert: { alert_id: string; ts_event: number; ts_written: number | null; age_s: number | null } | null;
}

/** Harness route `GET /harness/run`: the progress of the run driving the dashboard (`coattail run --live`). */
export interface RunStatus {
  run_id: string;
  state: "starting" | "replaying" | "consuming" | "finished" | "failed";
  sent: number;
  total: number;
  events_per_s: number;
  position_us: number | null;
  start_us: number | null;
  end_us: number | null;
  records_in: number;
  batches: number;
  message: string | null;
  /** The pipeline's per-event latency so far; null until the first micro-batch. */
  latency: PipelineLatency | null;
}

/** One stage of the per-event latency (ms; null percentiles while nothing was counted). */
export interface LatencyStage {
  label: string;
  p50: number | null;
  p99: number | null;
  count: number;
}

/**
 * The run's per-event latency from each event's scheduled send time, by stage. `queueing`: a max-speed
 * replay, where every event is due at the start, so the figures measure the queue behind the tape.
 */
export interface PipelineLatency {
  queueing: boolean;
  speed: number | null;
  stages: { results: LatencyStage; freshness: LatencyStage };
}

/** A time series as two equal-length arrays (µs exchange time, value). */
export interface Series {
  t: number[];
  v: number[];
}

/** Harness route `GET /harness/market?symbol=`: one symbol's market data per exchange. */
export interface Market {
  symbol: string;
  exchanges: { exchange: string; price: Series; notional_per_minute: Series; spread_bps: Series }[];
}

/** Harness route `GET /harness/dq`: data-quality counts by reason (MOD-004's `dq_metrics`). */
export interface DataQuality {
  by_reason: Record<string, number>;
}

/** One source's newest MOD-011 score at the signal horizon (a row of `GET /harness/scorecard`). */
export interface SourceScore {
  asset: string;
  detector: string;
  exchange: string;
  symbol: string;
  count: number;
  mean_bps: number;
  hit_rate: number;
  t_stat: number | null;
  /** When the score matured (µs exchange time). */
  ts_event: number;
  /** Whether the score passes MOD-011's signal bounds (its next observation is followed). */
  follows: boolean;
}

/** Harness route `GET /harness/scorecard`: MOD-011's scorecard of the run (its `alpha_scores`). */
export interface Scorecard {
  horizon_s: number;
  bounds: { min_samples: number; min_edge_bps: number; min_hit_rate: number };
  sources: SourceScore[];
}
