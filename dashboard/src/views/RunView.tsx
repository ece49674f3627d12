import type { AlertApiClient, HarnessClient } from "../api";
import { useAlertFeed, usePolled } from "../feed";
import { formatNumber, formatTime, quantile } from "../format";
import type { Alert, LatencyStage, PipelineLatency } from "../types";

/** Latency from the replay's send to the alert's DynamoDB write (ms): p50 and p99 over `alerts`. */
export function sendToWrite(alerts: Alert[]): { p50: number | null; p99: number | null; n: number } {
  const ms = alerts.flatMap((a) => (a.ts_written !== null && a.ts_sent !== null ? [(a.ts_written - a.ts_sent) / 1000] : []));
  return { p50: quantile(ms, 0.5), p99: quantile(ms, 0.99), n: ms.length };
}

function ms(value: number | null): string {
  return value === null ? "–" : `${formatNumber(value, 0)} ms`;
}

function StageRow({ name, stage }: { name: string; stage: LatencyStage }) {
  return (
    <tr data-testid={`stage-${name}`}>
      <th scope="row">{stage.label}</th>
      <td>{ms(stage.p50)}</td>
      <td>{ms(stage.p99)}</td>
      <td>{formatNumber(stage.count, 0)}</td>
    </tr>
  );
}

/**
 * The pipeline's per-event latency as the run measures it (every event, from its scheduled send time);
 * at max speed every event is due at the start, so the figures are the queue's and are labelled so.
 */
export function PipelineLatencyTable({ latency }: { latency: PipelineLatency | null }) {
  if (latency === null) return <p className="muted" data-testid="pipeline-latency">No micro-batch yet.</p>;
  return (
    <>
      {latency.queueing && (
        <p className="muted" data-testid="queueing">
          Queueing: a max-speed replay makes every event due at the start, so these figures measure the queue behind the tape, not the pipeline&apos;s latency.
        </p>
      )}
      <table className="latency" data-testid="pipeline-latency" data-queueing={latency.queueing}>
        <thead>
          <tr>
            <th scope="col">{latency.queueing ? "queueing" : "stage"}</th>
            <th scope="col">p50</th>
            <th scope="col">p99</th>
            <th scope="col">events</th>
          </tr>
        </thead>
        <tbody>
          <StageRow name="results" stage={latency.stages.results} />
          <StageRow name="freshness" stage={latency.stages.freshness} />
        </tbody>
      </table>
    </>
  );
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
      {r && (
        <>
          <h2>Per-event latency, from the scheduled send time{r.latency?.queueing ? " (queueing)" : ""}</h2>
          <PipelineLatencyTable latency={r.latency} />
        </>
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
