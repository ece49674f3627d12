import { useEffect, useRef } from "react";

import { formatNumber, formatTime } from "../format";
import type { Alert } from "../types";

/** `{a: {b: 1}, c: [1, 2]}` as rows `a.b = 1`, `c = 1, 2`: evidence rendered as fields, not JSON. */
export function flattenEvidence(value: unknown, prefix = ""): [string, string][] {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const rows: [string, string][] = [];
    for (const [key, inner] of Object.entries(value as Record<string, unknown>)) {
      rows.push(...flattenEvidence(inner, prefix ? `${prefix}.${key}` : key));
    }
    return rows;
  }
  if (Array.isArray(value)) {
    const scalars = value.every((v) => v === null || typeof v !== "object");
    if (scalars) return [[prefix, value.map((v) => formatNumber(v, 8)).join(", ")]];
    return value.flatMap((v, i) => flattenEvidence(v, `${prefix}[${i}]`));
  }
  return [[prefix, formatNumber(value, 8)]];
}

const TIMES = ["ts_event", "window_start", "window_end", "ts_sent", "ts_ingest", "ts_written"] as const;

/** One alert with every field and its evidence, as a dialog (Escape or the button closes it). */
export function AlertDetail({ alert, onClose }: { alert: Alert; onClose: () => void }) {
  const close = useRef<HTMLButtonElement>(null);
  useEffect(() => close.current?.focus(), [alert.alert_id]);
  const latency = alert.ts_written !== null && alert.ts_sent !== null ? (alert.ts_written - alert.ts_sent) / 1000 : null;
  return (
    <section
      className="detail"
      role="dialog"
      aria-modal="false"
      aria-labelledby="detail-title"
      data-testid="alert-detail"
      onKeyDown={(e) => {
        if (e.key === "Escape") onClose();
      }}
    >
      <header>
        <h2 id="detail-title">
          {alert.detector} {alert.kind} · {alert.exchange}:{alert.symbol}
        </h2>
        <button ref={close} type="button" onClick={onClose}>
          Close <kbd>Esc</kbd>
        </button>
      </header>
      <dl>
        <dt>alert id</dt>
        <dd data-field="alert_id">{alert.alert_id}</dd>
        <dt>severity</dt>
        <dd>{alert.severity}</dd>
        <dt>value / threshold</dt>
        <dd>
          {formatNumber(alert.value)} / {formatNumber(alert.threshold)}
        </dd>
        {TIMES.map((name) =>
          alert[name] === null ? null : (
            <div key={name} className="pair">
              <dt>{name}</dt>
              <dd>{formatTime(alert[name])}</dd>
            </div>
          ),
        )}
        {latency !== null && (
          <>
            <dt>sent → written</dt>
            <dd>{formatNumber(latency, 0)} ms</dd>
          </>
        )}
        <dt>events</dt>
        <dd>{alert.event_ids.length === 0 ? "–" : alert.event_ids.join(", ")}</dd>
      </dl>
      <h3>Evidence</h3>
      <dl className="evidence" data-testid="evidence">
        {flattenEvidence(alert.evidence).map(([name, text]) => (
          <div key={name} className="pair">
            <dt>{name}</dt>
            <dd>{text}</dd>
          </div>
        ))}
      </dl>
    </section>
  );
}
