import { useState } from "react";

import type { AlertApiClient } from "../api";
import { useAlertFeed, useNow } from "../feed";
import type { Alert, AlertFilters } from "../types";
import { AlertDetail } from "./AlertDetail";
import { AlertsTable } from "./AlertsTable";

const SEVERITIES = ["low", "medium", "high"];
const FILTERS = ["symbol", "detector", "severity"] as const;

type Options = Record<(typeof FILTERS)[number], string[]>;

/** `options` with the filter values of `alerts` added (sorted); the same object when none is new. */
export function withValues(options: Options, alerts: Alert[]): Options {
  let grown = false;
  const next = { ...options };
  for (const name of FILTERS) {
    const values = new Set(options[name]);
    for (const a of alerts) values.add(a[name]);
    if (values.size !== options[name].length) {
      grown = true;
      next[name] = [...values].sort();
    }
  }
  return grown ? next : options;
}

/** Live alerts: newest first, filtered by the API's own filters, new ones within a second. */
export function LiveAlerts({ client }: { client: AlertApiClient }) {
  const [filters, setFilters] = useState<AlertFilters>({});
  const [selected, setSelected] = useState<string | null>(null);
  const feed = useAlertFeed(client, filters);
  const now = useNow(1000);
  // options: every value seen under any filter (a filtered answer holds only its own value); React's
  // "adjust state while rendering" pattern, as the set only grows
  const [known, setKnown] = useState<Options>(() => withValues({ symbol: [], detector: [], severity: SEVERITIES }, []));
  const options = withValues(known, feed.alerts);
  if (options !== known) setKnown(options);
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
                {options[name].map((v) => (
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
