/** Exchange time (µs since the epoch, UTC) as `YYYY-MM-DD HH:MM:SS.mmm`. */
export function formatTime(us: number | null | undefined): string {
  if (us === null || us === undefined) return "–";
  return new Date(Math.floor(us / 1000)).toISOString().replace("T", " ").replace("Z", "");
}

/** Exchange time as `HH:MM` (UTC), for axis ticks; with seconds when `seconds`. */
export function formatClock(us: number, seconds = false): string {
  const iso = new Date(Math.floor(us / 1000)).toISOString();
  return iso.slice(11, seconds ? 19 : 16);
}

/** A number for a table: thousands separated, at most `digits` decimals. */
export function formatNumber(value: unknown, digits = 2): string {
  if (typeof value !== "number") return value === null || value === undefined ? "–" : String(value);
  return value.toLocaleString("en-US", { maximumFractionDigits: digits });
}

/** The `q` quantile (0..1) of `values` by nearest rank; null when empty. */
export function quantile(values: number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] ?? null;
}

/** Seconds as `12 s`, `3 min 4 s`, `2 h 5 min`. */
export function formatAge(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#393b79"];

/** A stable colour per detector id (`MOD-001` → the first colour). */
export function detectorColor(detector: string): string {
  const n = Number.parseInt(detector.replace(/\D/g, ""), 10);
  return PALETTE[(Number.isFinite(n) ? n - 1 : detector.length) % PALETTE.length] ?? "#000";
}
