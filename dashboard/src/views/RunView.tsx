import type { AlertApiClient, HarnessClient } from "../api";
import { useAlertFeed, usePolled } from "../feed";
import { formatNumber, formatTime, quantile } from "../format";
import type { Alert } from "../types";

/** Latency from the replay's send to the alert's DynamoDB write (ms): p50 and p99 over `alerts`. */
export function sendToWrite(alerts: Alert[]): { p50: number | null; p99: number | null; n: number } {
  const ms = alerts.flatMap((a) => (a.ts_written !== null && a.ts_sent !== null ? [(a.ts_written - a.ts_sent) / 1000] : []));
  return { p50: quantile(ms, 0.5), p99: quantile(ms, 0.99), n: ms.length };
}

/** Run: the replay's progress and the pipeline's latency while `coattail run --live` runs. */
export function RunView({ client, harness }: { client: AlertApiClient; harness: HarnessClient }) {
  const run = usePolled(() => harness.run(), 500, [harness]);
  const feed = useAlertFeed(client, {});
  const latency = sendToWrite(feed.alerts);
  const r = run.value;
  const share = r && r.start_us !== null && r.end_us !== null && r.position_us !== null ? (r.position_us - r.start_us) / Math.max(1, r.end_us - r.start_us) : null;

  return (
    <div className="main">
      {r === null && <p className="muted">No run drives this dashboard (start one with `coattail run TAPE --live`).</p>}
      {run.error && <p role="alert" className="error">{run.error}</p>}
      {r && (
        <dl className="run" data-testid="run-status" data-state={r.state}>
          <dt>run</dt>
          <dd>{r.run_id}</dd>
          <dt>state</dt>
          <dd>{r.state}{r.message ? ` — ${r.message}` : ""}</dd>
          <dt>exchange time reached</dt>
          <dd data-testid="position">{formatTime(r.position_us)}</dd>
          <dt>replayed</dt>
          <dd>
            <progress max={1} value={share ?? 0} aria-label="share of the tape replayed" /> {share === null ? "–" : `${Math.round(share * 100)} %`}
          </dd>
          <dt>events sent</dt>
          <dd>
            {formatNumber(r.sent, 0)} of {formatNumber(r.total, 0)}
          </dd>
          <dt>events/s (replay, last 2 s)</dt>
          <dd data-testid="rate">{formatNumber(r.events_per_s, 0)}</dd>
          <dt>records processed</dt>
          <dd>
            {formatNumber(r.records_in, 0)} in {formatNumber(r.batches, 0)} micro-batches
          </dd>
        </dl>
      )}
      <h2>Latency, replay send → alert written</h2>
      <dl className="run" data-testid="latency">
        <dt>p50</dt>
        <dd>{latency.p50 === null ? "–" : `${formatNumber(latency.p50, 0)} ms`}</dd>
        <dt>p99</dt>
        <dd>{latency.p99 === null ? "–" : `${formatNumber(latency.p99, 0)} ms`}</dd>
        <dt>over</dt>
        <dd>{latency.n} alerts</dd>
      </dl>
    </div>
  );
}
