import { formatClock, formatNumber } from "../format";
import type { Series } from "../types";

/** A line (or bar) series of a chart. */
export interface ChartSeries {
  name: string;
  color: string;
  data: Series;
}

/** A marker drawn on a chart at (t, v), e.g. an alert on the price line. */
export interface ChartMarker {
  id: string;
  t: number;
  v: number;
  color: string;
  label: string;
}

interface Props {
  title: string;
  unit: string;
  series: ChartSeries[];
  markers?: ChartMarker[];
  kind?: "line" | "bar";
  /** The exchange-time range of the x axis (µs); the data's span when absent. */
  domain?: [number, number];
  height?: number;
  onMarker?: (id: string) => void;
}

const WIDTH = 1000;
const PAD = { left: 70, right: 12, top: 10, bottom: 24 };
const TICKS = 6;

function extent(values: number[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!Number.isFinite(lo)) return [0, 1];
  if (lo === hi) return [lo - 1, hi + 1];
  return [lo, hi];
}

/**
 * An SVG chart over exchange time (the x axis shows UTC clock times of the replayed market, never the
 * wall clock). Markers are focusable: Enter or a click calls `onMarker` with the marker's id.
 */
export function TimeChart({ title, unit, series, markers = [], kind = "line", domain, height = 220, onMarker }: Props) {
  const allT = series.flatMap((s) => s.data.t);
  const [t0, t1] = domain ?? extent(allT);
  const values = series.flatMap((s) => s.data.v).concat(markers.map((m) => m.v));
  const [lo, hi] = kind === "bar" ? [0, extent(values)[1]] : extent(values);
  const x = (t: number) => PAD.left + ((t - t0) / (t1 - t0 || 1)) * (WIDTH - PAD.left - PAD.right);
  const y = (v: number) => PAD.top + (1 - (v - lo) / (hi - lo || 1)) * (height - PAD.top - PAD.bottom);
  const ticks = Array.from({ length: TICKS }, (_, i) => t0 + ((t1 - t0) * i) / (TICKS - 1));
  const barWidth = Math.max(1, (WIDTH - PAD.left - PAD.right) / Math.max(1, (series[0]?.data.t.length ?? 1) * series.length) - 1);
  const empty = allT.length === 0;

  return (
    <figure className="chart" aria-label={title}>
      <figcaption>
        {title} <span className="unit">({unit})</span>
        {series.length > 1 && (
          <span className="legend">
            {series.map((s) => (
              <span key={s.name}>
                <i style={{ background: s.color }} /> {s.name}
              </span>
            ))}
          </span>
        )}
      </figcaption>
      {empty ? (
        <p className="muted">no data</p>
      ) : (
        <svg viewBox={`0 0 ${WIDTH} ${height}`} role="img" aria-label={`${title} over exchange time`} data-chart={title}>
          <line x1={PAD.left} x2={WIDTH - PAD.right} y1={height - PAD.bottom} y2={height - PAD.bottom} className="axis" />
          {ticks.map((t, i) => (
            <text key={t} x={x(t)} y={height - 6} textAnchor={i === 0 ? "start" : i === TICKS - 1 ? "end" : "middle"} className="tick">
              {formatClock(t, t1 - t0 < 600_000_000)}
            </text>
          ))}
          {[lo, (lo + hi) / 2, hi].map((v) => (
            <text key={v} x={PAD.left - 6} y={y(v) + 4} textAnchor="end" className="tick">
              {formatNumber(v, hi - lo < 1 ? 4 : hi - lo < 10 ? 2 : 0)}
            </text>
          ))}
          {series.map((s, si) =>
            kind === "line" ? (
              <polyline
                key={s.name}
                fill="none"
                stroke={s.color}
                strokeWidth={1.2}
                points={s.data.t.map((t, i) => `${x(t).toFixed(1)},${y(s.data.v[i] ?? 0).toFixed(1)}`).join(" ")}
              />
            ) : (
              <g key={s.name} fill={s.color}>
                {s.data.t.map((t, i) => {
                  const v = s.data.v[i] ?? 0;
                  return <rect key={t} x={x(t) + si * barWidth} y={y(v)} width={barWidth} height={Math.max(0, y(lo) - y(v))} />;
                })}
              </g>
            ),
          )}
          {markers.map((m) => (
            <circle
              key={m.id}
              className="marker"
              data-alert-id={m.id}
              cx={x(m.t)}
              cy={y(m.v)}
              r={5}
              fill={m.color}
              stroke="#000"
              tabIndex={onMarker ? 0 : undefined}
              role={onMarker ? "button" : undefined}
              aria-label={m.label}
              onClick={() => onMarker?.(m.id)}
              onKeyDown={(e) => {
                if (e.key === "Enter") onMarker?.(m.id);
              }}
            >
              <title>{m.label}</title>
            </circle>
          ))}
        </svg>
      )}
    </figure>
  );
}
