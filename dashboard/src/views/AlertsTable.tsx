import type { KeyboardEvent } from "react";

import { detectorColor, formatNumber, formatTime } from "../format";
import type { Alert } from "../types";

/** How long a newly arrived row stays highlighted. */
const NEW_MS = 5000;

interface Props {
  alerts: Alert[];
  firstSeen: Map<string, number>;
  initialLoad: number;
  selected: string | null;
  onOpen: (id: string) => void;
  /** The performance clock (ms) the highlight of new rows is measured against. */
  now: number;
}

function moveFocus(e: KeyboardEvent<HTMLTableRowElement>, id: string, onOpen: (id: string) => void): void {
  const row = e.currentTarget;
  const target =
    e.key === "ArrowDown" ? row.nextElementSibling : e.key === "ArrowUp" ? row.previousElementSibling : null;
  if (target instanceof HTMLElement) {
    e.preventDefault();
    target.focus();
  } else if (e.key === "Enter" || e.key === " ") {
    e.preventDefault();
    onOpen(id);
  }
}

/** Alerts newest first; each row is focusable (arrows move, Enter opens the alert). */
export function AlertsTable({ alerts, firstSeen, initialLoad, selected, onOpen, now }: Props) {
  return (
    <table className="alerts" data-testid="alerts-table">
      <thead>
        <tr>
          <th scope="col">event time (UTC)</th>
          <th scope="col">detector</th>
          <th scope="col">kind</th>
          <th scope="col">instrument</th>
          <th scope="col">severity</th>
          <th scope="col" className="num">value</th>
          <th scope="col" className="num">threshold</th>
        </tr>
      </thead>
      <tbody>
        {alerts.map((a) => {
          const seen = firstSeen.get(a.alert_id) ?? 0;
          const fresh = seen > initialLoad && now - seen < NEW_MS;
          return (
            <tr
              key={a.alert_id}
              data-alert-id={a.alert_id}
              tabIndex={0}
              aria-selected={selected === a.alert_id}
              className={fresh ? "fresh" : undefined}
              onClick={() => onOpen(a.alert_id)}
              onKeyDown={(e) => moveFocus(e, a.alert_id, onOpen)}
            >
              <td>{formatTime(a.ts_event)}</td>
              <td>
                <i className="swatch" style={{ background: detectorColor(a.detector) }} /> {a.detector}
              </td>
              <td>{a.kind}</td>
              <td>
                {a.exchange}:{a.symbol}
              </td>
              <td className={`sev-${a.severity}`}>{a.severity}</td>
              <td className="num">{formatNumber(a.value)}</td>
              <td className="num">{formatNumber(a.threshold)}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
