import { useMemo, useState } from "react";

import type { AlertApiClient } from "../api";
import { useAlertFeed, useNow } from "../feed";
import type { AlertFilters } from "../types";
import { AlertDetail } from "./AlertDetail";
import { AlertsTable } from "./AlertsTable";

const SEVERITIES = ["low", "medium", "high"];
const FILTERS = ["symbol", "detector", "severity"] as const;

/** Live alerts: newest first, filtered by the API's own filters, new ones within a second. */
export function LiveAlerts({ client }: { client: AlertApiClient }) {
  const [filters, setFilters] = useState<AlertFilters>({});
  const [selected, setSelected] = useState<string | null>(null);
  const feed = useAlertFeed(client, filters);
  const now = useNow(1000);
  // options: the values among the alerts shown (faceted), plus the one chosen
  const options = useMemo(() => {
    const out: Record<string, string[]> = {};
    for (const name of FILTERS) {
      const values = new Set(feed.alerts.map((a) => a[name]));
      if (name === "severity") SEVERITIES.forEach((v) => values.add(v));
      const chosen = filters[name];
      if (chosen) values.add(chosen);
      out[name] = [...values].sort();
    }
    return out;
  }, [feed.alerts, filters]);
  const open = feed.alerts.find((a) => a.alert_id === selected) ?? null;

  return (
    <div className={open ? "with-detail" : undefined}>
      <div className="main">
        <form className="filters" aria-label="filters" onSubmit={(e) => e.preventDefault()}>
          {FILTERS.map((name) => (
            <label key={name}>
              {name}{" "}
              <select
                name={name}
                value={filters[name] ?? ""}
                onChange={(e) => setFilters({ ...filters, [name]: e.target.value || undefined })}
              >
                <option value="">all</option>
                {(options[name] ?? []).map((v) => (
                  <option key={v} value={v}>
                    {v}
                  </option>
                ))}
              </select>
            </label>
          ))}
          <output data-testid="alert-count" data-count={feed.alerts.length} aria-live="polite">
            {feed.loaded ? `${feed.alerts.length} alerts` : "loading…"}
          </output>
        </form>
        {feed.error && (
          <p role="alert" className="error">
            {feed.error}
          </p>
        )}
        <AlertsTable alerts={feed.alerts} firstSeen={feed.firstSeen} initialLoad={feed.loadedAt} selected={selected} onOpen={setSelected} now={now} />
      </div>
      {open && (
        <AlertDetail
          alert={open}
          onClose={() => {
            setSelected(null);
            document.querySelector<HTMLElement>(`tr[data-alert-id="${open.alert_id}"]`)?.focus();
          }}
        />
      )}
    </div>
  );
}
