import type { AlertApiClient, HarnessClient } from "../api";
import { useAlertFeed, useNow, usePolled } from "../feed";
import { detectorColor, formatAge, formatNumber } from "../format";
import type { Alert } from "../types";
import { AlphaScorecard, followSignals, SignalsList } from "./AlphaView";

const HOUR_US = 3_600_000_000;

/** Per detector: alert count, alerts per hour of exchange time, and the newest alert's write time. */
export interface ModuleStats {
  detector: string;
  alerts: number;
  perHour: { hour: number; count: number }[];
  lastWritten: number | null;
}

/** The per-detector figures of `alerts`, hours bucketed from `start` (µs exchange time). */
export function moduleStats(alerts: Alert[]): ModuleStats[] {
  const start = Math.min(...alerts.map((a) => a.ts_event));
  const by = new Map<string, Alert[]>();
  for (const a of alerts) by.set(a.detector, [...(by.get(a.detector) ?? []), a]);
  return [...by.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([detector, list]) => {
      const hours = new Map<number, number>();
      for (const a of list) {
        const h = Math.floor((a.ts_event - start) / HOUR_US);
        hours.set(h, (hours.get(h) ?? 0) + 1);
      }
      const written = list.map((a) => a.ts_written).filter((t): t is number => t !== null);
      return {
        detector,
        alerts: list.length,
        perHour: [...hours.entries()].sort(([a], [b]) => a - b).map(([hour, count]) => ({ hour, count })),
        lastWritten: written.length ? Math.max(...written) : null,
      };
    });
}

/**
 * Modules: alerts per hour and the last alert's age per detector; data-quality counts by reason; and, for a
 * run with MOD-011, its alpha scorecard (harness route) and follow signals (the alert API's alerts).
 */
export function ModulesView({ client, harness }: { client: AlertApiClient; harness: HarnessClient }) {
  const feed = useAlertFeed(client, {});
  const dq = usePolled(() => harness.dq(), 2000, [harness]);
  const stats = moduleStats(feed.alerts);
  const nowUs = useNow(1000, () => Date.now() * 1000);
  const reasons = Object.entries(dq.value?.by_reason ?? {}).sort(([, a], [, b]) => b - a);
  const scorecard = usePolled(() => harness.scorecard(), 2000, [harness]);
  const signals = followSignals(feed.alerts);

  return (
    <div className="main">
      <h2>Detectors</h2>
      <table className="modules" data-testid="modules-table">
        <thead>
          <tr>
            <th scope="col">detector</th>
            <th scope="col" className="num">alerts</th>
            <th scope="col">alerts per hour of exchange time</th>
            <th scope="col" className="num">last alert written</th>
          </tr>
        </thead>
        <tbody>
          {stats.map((s) => (
            <tr key={s.detector} data-detector={s.detector}>
              <th scope="row">
                <i className="swatch" style={{ background: detectorColor(s.detector) }} /> {s.detector}
              </th>
              <td className="num">{s.alerts}</td>
              <td>{s.perHour.map((h) => `h${h.hour}: ${h.count}`).join(" · ")}</td>
              <td className="num">{s.lastWritten === null ? "–" : `${formatAge((nowUs - s.lastWritten) / 1e6)} ago`}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {feed.loaded && stats.length === 0 && <p className="muted">no alerts yet</p>}
      <h2>Data quality</h2>
      {dq.value === null ? (
        <p className="muted">This API serves no data-quality counts (a harness route of `coattail dashboard`).</p>
      ) : (
        <table className="dq" data-testid="dq-table">
          <thead>
            <tr>
              <th scope="col">reason</th>
              <th scope="col" className="num">count</th>
            </tr>
          </thead>
          <tbody>
            {reasons.map(([reason, n]) => (
              <tr key={reason}>
                <th scope="row">{reason}</th>
                <td className="num">{formatNumber(n, 0)}</td>
              </tr>
            ))}
            {reasons.length === 0 && (
              <tr>
                <td colSpan={2}>none</td>
              </tr>
            )}
          </tbody>
        </table>
      )}
      {(scorecard.value || signals.length > 0) && (
        <section aria-label="MOD-011 alpha scoring" data-testid="alpha">
          <h2>Alpha scorecard</h2>
          {scorecard.value ? (
            <AlphaScorecard scorecard={scorecard.value} />
          ) : (
            <p className="muted">This API serves no scorecard (a harness route of `coattail dashboard`).</p>
          )}
          <h2>Signals</h2>
          <SignalsList signals={signals} />
        </section>
      )}
    </div>
  );
}
