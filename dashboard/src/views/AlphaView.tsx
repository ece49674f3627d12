import { detectorColor, formatNumber, formatTime } from "../format";
import type { Alert, Scorecard } from "../types";

/** At most this many signals are listed (newest first); the count says how many there are. */
export const SIGNALS_SHOWN = 200;

/** A follow signal as the Signals list shows it (from a MOD-011 `follow_signal` alert). */
export interface FollowSignal {
  alertId: string;
  tsEvent: number;
  source: string;
  sourceDetector: string;
  direction: "up" | "down";
  severity: string;
  count: number | null;
  meanBps: number | null;
  hitRate: number | null;
  tStat: number | null;
}

function numberOrNull(value: unknown): number | null {
  return typeof value === "number" ? value : null;
}

/** The `follow_signal` alerts of `alerts`, newest first by exchange time (ties by id). */
export function followSignals(alerts: Alert[]): FollowSignal[] {
  return alerts
    .filter((a) => a.kind === "follow_signal")
    .sort((a, b) => b.ts_event - a.ts_event || (a.alert_id < b.alert_id ? -1 : 1))
    .map((a) => {
      const detector = typeof a.evidence.detector === "string" ? a.evidence.detector : "?";
      return {
        alertId: a.alert_id,
        tsEvent: a.ts_event,
        source: `${detector} ${a.exchange}:${a.symbol}`,
        sourceDetector: detector,
        direction: (a.value ?? 0) > 0 ? "up" : "down",
        severity: a.severity,
        count: numberOrNull(a.evidence.count),
        meanBps: numberOrNull(a.evidence.mean_bps),
        hitRate: numberOrNull(a.evidence.hit_rate),
        tStat: numberOrNull(a.evidence.t_stat),
      };
    });
}

/** A table's header row; a column named `#name` holds numbers (right-aligned). */
function Head({ columns }: { columns: string[] }) {
  return (
    <thead>
      <tr>
        {columns.map((c) =>
          c.startsWith("#") ? (
            <th key={c} scope="col" className="num">
              {c.slice(1)}
            </th>
          ) : (
            <th key={c} scope="col">
              {c}
            </th>
          ),
        )}
      </tr>
    </thead>
  );
}

/** MOD-011's scorecard: each source's newest score at the signal horizon, best t-statistic first. */
export function AlphaScorecard({ scorecard }: { scorecard: Scorecard }) {
  const { horizon_s: horizon, bounds } = scorecard;
  return (
    <>
      <p className="muted">
        Newest score per source at the signal horizon ({horizon} s): forward return in the alert's direction.
        A source is followed while count ≥ {bounds.min_samples}, mean ≥ {bounds.min_edge_bps} bps and hit rate ≥{" "}
        {bounds.min_hit_rate}.
      </p>
      <table className="scorecard" data-testid="scorecard-table">
        <Head columns={["source", "asset", "#count", "#mean bps", "#hit rate", "#t-stat", "newest score (exchange time)", "followed"]} />
        <tbody>
          {scorecard.sources.map((s) => (
            <tr key={`${s.detector} ${s.exchange} ${s.symbol}`} data-source={`${s.detector} ${s.exchange}:${s.symbol}`}>
              <th scope="row">
                <i className="swatch" style={{ background: detectorColor(s.detector) }} /> {s.detector} {s.exchange}:
                {s.symbol}
              </th>
              <td>{s.asset}</td>
              <td className="num">{s.count}</td>
              <td className="num">{formatNumber(s.mean_bps, 2)}</td>
              <td className="num">{formatNumber(s.hit_rate, 3)}</td>
              <td className="num">{formatNumber(s.t_stat, 2)}</td>
              <td>{formatTime(s.ts_event)}</td>
              <td>{s.follows ? "yes" : "no"}</td>
            </tr>
          ))}
          {scorecard.sources.length === 0 && (
            <tr>
              <td colSpan={8}>no score yet (no directional alert has matured at {horizon} s)</td>
            </tr>
          )}
        </tbody>
      </table>
    </>
  );
}

/** The follow signals, newest first: exchange time, source, direction and the score it was given on. */
export function SignalsList({ signals }: { signals: FollowSignal[] }) {
  const shown = signals.slice(0, SIGNALS_SHOWN);
  return (
    <>
      {signals.length > shown.length && (
        <p className="muted">
          the newest {shown.length} of {signals.length} signals
        </p>
      )}
      <table className="signals" data-testid="signals-table">
        <Head columns={["time (exchange, UTC)", "source", "direction", "#count", "#mean bps", "#hit rate", "#t-stat", "severity"]} />
        <tbody>
          {shown.map((s) => (
            <tr key={s.alertId} data-alert-id={s.alertId}>
              <td>{formatTime(s.tsEvent)}</td>
              <td>
                <i className="swatch" style={{ background: detectorColor(s.sourceDetector) }} /> {s.source}
              </td>
              <td>{s.direction === "up" ? "▲ up (buy)" : "▼ down (sell)"}</td>
              <td className="num">{formatNumber(s.count, 0)}</td>
              <td className="num">{formatNumber(s.meanBps, 2)}</td>
              <td className="num">{formatNumber(s.hitRate, 3)}</td>
              <td className="num">{formatNumber(s.tStat, 2)}</td>
              <td>{s.severity}</td>
            </tr>
          ))}
          {signals.length === 0 && (
            <tr>
              <td colSpan={8}>no follow signal yet</td>
            </tr>
          )}
        </tbody>
      </table>
    </>
  );
}
