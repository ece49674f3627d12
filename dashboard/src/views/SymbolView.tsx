import { useMemo, useState } from "react";

import type { AlertApiClient, HarnessClient } from "../api";
import { TimeChart, type ChartMarker, type ChartSeries } from "../charts/TimeChart";
import { useAlertFeed, usePolled } from "../feed";
import { detectorColor } from "../format";
import type { Alert, Market, Series } from "../types";
import { AlertDetail } from "./AlertDetail";

const EXCHANGE_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"];

/** The value of `series` at or before `t` (the first one before the series starts). */
export function valueAt(series: Series, t: number): number | null {
  if (series.t.length === 0) return null;
  let lo = 0;
  let hi = series.t.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((series.t[mid] ?? 0) <= t) lo = mid;
    else hi = mid - 1;
  }
  return series.v[lo] ?? null;
}

/** Alert markers on the price line of the alert's exchange, coloured by detector. */
export function alertMarkers(alerts: Alert[], market: Market): ChartMarker[] {
  const markers: ChartMarker[] = [];
  for (const a of alerts) {
    const prices = market.exchanges.find((e) => e.exchange === a.exchange)?.price ?? market.exchanges[0]?.price;
    const v = prices ? valueAt(prices, a.ts_event) : null;
    if (v === null) continue;
    markers.push({ id: a.alert_id, t: a.ts_event, v, color: detectorColor(a.detector), label: `${a.detector} ${a.kind} ${a.exchange}` });
  }
  return markers;
}

function span(market: Market): [number, number] | undefined {
  const ts = market.exchanges.flatMap((e) => [e.price.t[0], e.price.t[e.price.t.length - 1]]).filter((t): t is number => t !== undefined);
  return ts.length ? [Math.min(...ts), Math.max(...ts)] : undefined;
}

/** `series` up to exchange time `until` (all of it when null). */
export function upTo(series: Series, until: number | null): Series {
  if (until === null) return series;
  const n = series.t.findIndex((t) => t > until);
  return n < 0 ? series : { t: series.t.slice(0, n), v: series.v.slice(0, n) };
}

/** One symbol: price with alert markers by detector, volume per minute, spread, over exchange time. */
export function SymbolView({ client, harness, symbol, onSymbol }: { client: AlertApiClient; harness: HarnessClient; symbol: string | null; onSymbol: (s: string) => void }) {
  const symbols = usePolled(() => harness.symbols(), 0, [harness]);
  const choice = symbol ?? symbols.value?.[0] ?? null;
  const market = usePolled(() => (choice ? harness.market(choice) : Promise.resolve(null)), 0, [harness, choice]);
  const feed = useAlertFeed(client, choice ? { symbol: choice } : {});
  // while a live run replays, the charts unfold up to the exchange time it reached
  const run = usePolled(() => harness.run(), 1000, [harness]);
  const r = run.value;
  const until = r && r.state !== "finished" && r.state !== "failed" ? (r.position_us ?? r.start_us ?? 0) : null;
  const [selected, setSelected] = useState<string | null>(null);
  const m = market.value ?? null;
  const markers = useMemo(() => (m ? alertMarkers(feed.alerts, m) : []), [feed.alerts, m]);
  const detectors = [...new Set(feed.alerts.map((a) => a.detector))].sort();
  const series = (pick: (e: Market["exchanges"][number]) => Series): ChartSeries[] =>
    (m?.exchanges ?? []).map((e, i) => ({ name: e.exchange, color: EXCHANGE_COLORS[i % EXCHANGE_COLORS.length] ?? "#000", data: upTo(pick(e), until) }));
  const domain = m ? span(m) : undefined;
  const open = feed.alerts.find((a) => a.alert_id === selected) ?? null;

  return (
    <div className={open ? "with-detail" : undefined}>
      <div className="main">
        <form className="filters" onSubmit={(e) => e.preventDefault()}>
          <label>
            symbol{" "}
            <select name="symbol" value={choice ?? ""} onChange={(e) => onSymbol(e.target.value)}>
              {(symbols.value ?? (choice ? [choice] : [])).map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          </label>
          <span className="legend" aria-label="markers by detector">
            {detectors.map((d) => (
              <span key={d}>
                <i style={{ background: detectorColor(d) }} /> {d}
              </span>
            ))}
          </span>
          <output data-testid="marker-count">{markers.length} alert markers</output>
        </form>
        {market.error && <p role="alert" className="error">{market.error}</p>}
        {market.value === null && <p className="muted">This API serves no market data (a harness route of `coattail dashboard`).</p>}
        {m && (
          <>
            <TimeChart title={`${m.symbol} price`} unit="quote currency" series={series((e) => e.price)} markers={markers} domain={domain} height={260} onMarker={setSelected} />
            <TimeChart title="volume per minute" unit="notional, quote currency" kind="bar" series={series((e) => e.notional_per_minute)} domain={domain} height={160} />
            <TimeChart title="spread" unit="bps, mean per minute" series={series((e) => e.spread_bps)} domain={domain} height={160} />
          </>
        )}
      </div>
      {open && <AlertDetail alert={open} onClose={() => setSelected(null)} />}
    </div>
  );
}
