import type { Alert, AlertFilters, AlertPage, DataQuality, Health, Market, RunStatus, Scorecard } from "./types";

/** An error answer of the API (`{"error": {"code", "message", "parameter"?}}`) or a failed request. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

type Fetch = typeof fetch;

function join(base: string, path: string): string {
  return base.replace(/\/+$/, "") + path;
}

async function getJson<T>(fetchImpl: Fetch, url: string): Promise<T> {
  let reply: Response;
  try {
    reply = await fetchImpl(url, { headers: { accept: "application/json" }, cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, "unreachable", `cannot reach ${url}: ${String(e)}`);
  }
  const body: unknown = await reply.json().catch(() => null);
  if (!reply.ok) {
    const error = (body as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(reply.status, error?.code ?? "http_error", error?.message ?? `${reply.status} from ${url}`);
  }
  return body as T;
}

/** Options of one `GET /alerts` page. */
export interface PageOptions {
  from?: number;
  to?: number;
  limit?: number;
  cursor?: string | null;
}

/** The alert API (docs/API.md): the same routes in production and behind `coattail dashboard`. */
export class AlertApiClient {
  readonly base: string;
  private readonly fetchImpl: Fetch;

  constructor(base: string, fetchImpl: Fetch = (...args) => fetch(...args)) {
    this.base = base;
    this.fetchImpl = fetchImpl;
  }

  /** One page of alerts, newest first by event time. */
  page(filters: AlertFilters, options: PageOptions = {}): Promise<AlertPage> {
    const query = new URLSearchParams();
    for (const [name, value] of Object.entries(filters)) if (value) query.set(name, value);
    if (options.from !== undefined) query.set("from", String(options.from));
    if (options.to !== undefined) query.set("to", String(options.to));
    query.set("limit", String(options.limit ?? 1000));
    if (options.cursor) query.set("cursor", options.cursor);
    return getJson<AlertPage>(this.fetchImpl, join(this.base, `/alerts?${query.toString()}`));
  }

  /** Every alert matching, following the cursor to the last page. */
  async all(filters: AlertFilters, options: Omit<PageOptions, "cursor"> = {}): Promise<Alert[]> {
    const alerts: Alert[] = [];
    let cursor: string | null = null;
    do {
      const page: AlertPage = await this.page(filters, { ...options, cursor });
      alerts.push(...page.alerts);
      cursor = page.next_cursor;
    } while (cursor);
    return alerts;
  }

  /** One alert by id. */
  alert(id: string): Promise<Alert> {
    return getJson<Alert>(this.fetchImpl, join(this.base, `/alerts/${encodeURIComponent(id)}`));
  }

  /** The API's health; a 503 answer carries the same body and is returned, not thrown. */
  async health(): Promise<Health> {
    try {
      return await getJson<Health>(this.fetchImpl, join(this.base, "/health"));
    } catch (e) {
      if (e instanceof ApiError && e.status === 503) return { status: "degraded" } as Health;
      throw e;
    }
  }
}

/**
 * The harness-only routes of `coattail dashboard` (docs/DASHBOARD.md): not part of production's API, so
 * every call resolves to null where they are absent (no harness base, or 404) or have nothing to show
 * (a JSON `null` answer: no live run, no run directory).
 */
export class HarnessClient {
  readonly base: string | null;
  private readonly fetchImpl: Fetch;

  constructor(base: string | null, fetchImpl: Fetch = (...args) => fetch(...args)) {
    this.base = base;
    this.fetchImpl = fetchImpl;
  }

  private async optional<T>(path: string): Promise<T | null> {
    if (this.base === null) return null;
    try {
      return await getJson<T>(this.fetchImpl, join(this.base, path));
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return null;
      throw e;
    }
  }

  /** The live run's progress; null when no run drives the dashboard. */
  run(): Promise<RunStatus | null> {
    return this.optional<RunStatus>("/run");
  }

  /** The symbols of the replayed tapes. */
  async symbols(): Promise<string[]> {
    return (await this.optional<{ symbols: string[] }>("/symbols"))?.symbols ?? [];
  }

  /** Price, volume per minute and spread of one symbol, per exchange. */
  market(symbol: string): Promise<Market | null> {
    return this.optional<Market>(`/market?symbol=${encodeURIComponent(symbol)}`);
  }

  /** Data-quality counts by reason. */
  dq(): Promise<DataQuality | null> {
    return this.optional<DataQuality>("/dq");
  }

  /** MOD-011's scorecard; null also when the run's tier has no MOD-011. */
  scorecard(): Promise<Scorecard | null> {
    return this.optional<Scorecard>("/scorecard");
  }
}
