import { useEffect, useState } from "react";

import type { AlertApiClient } from "./api";
import type { Alert, AlertFilters } from "./types";

/** How often the feed asks for new alerts: a new alert shows within a second of being written. */
export const POLL_MS = 400;
/**
 * New alerts are asked for from this much exchange time before the newest one seen: a windowed detector
 * writes its alert when the window closes, so an alert can arrive after one with a later event time.
 */
export const LOOKBACK_US = 15 * 60 * 1_000_000;
/** Every this many polls the whole list is read again (catches anything older than the lookback). */
export const FULL_RELOAD_EVERY = 25;

/** Alerts newest first by event time (ties by id, so the order is stable). */
export function newestFirst(alerts: Iterable<Alert>): Alert[] {
  return [...alerts].sort((a, b) => b.ts_event - a.ts_event || (a.alert_id < b.alert_id ? -1 : 1));
}

/** `known` with `incoming` added (by alert id); the same array when nothing is new. */
export function merge(known: Alert[], incoming: Alert[]): Alert[] {
  const ids = new Set(known.map((a) => a.alert_id));
  const fresh = incoming.filter((a) => !ids.has(a.alert_id));
  return fresh.length === 0 ? known : newestFirst([...known, ...fresh]);
}

/** The state of a feed: the alerts so far, when each id was first seen (ms, performance clock), an error. */
export interface Feed {
  alerts: Alert[];
  loaded: boolean;
  error: string | null;
  firstSeen: Map<string, number>;
  /** When the first answer arrived (ms, performance clock): alerts seen later are new arrivals. */
  loadedAt: number;
}

const EMPTY: Feed = { alerts: [], loaded: false, error: null, firstSeen: new Map(), loadedAt: 0 };

/**
 * Every alert matching `filters`, kept current by polling `GET /alerts` with the API's cursor: first all
 * pages, then every `POLL_MS` the alerts from `LOOKBACK_US` before the newest seen.
 */
export function useAlertFeed(client: AlertApiClient, filters: AlertFilters): Feed {
  const key = JSON.stringify(filters);
  const [state, setState] = useState<{ key: string; feed: Feed }>({ key, feed: EMPTY });

  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let polls = 0;
    const query: AlertFilters = JSON.parse(key) as AlertFilters;
    const seen = new Map<string, number>();
    let alerts: Alert[] = [];
    let current = false; // whether the state shows the latest successful answer
    let loadedAt = 0;

    const tick = async (): Promise<void> => {
      try {
        const newest = alerts[0]?.ts_event;
        const full = newest === undefined || polls % FULL_RELOAD_EVERY === 0;
        const incoming = await client.all(query, full ? {} : { from: newest - LOOKBACK_US });
        if (stopped) return;
        const now = performance.now();
        if (loadedAt === 0) loadedAt = now;
        for (const a of incoming) if (!seen.has(a.alert_id)) seen.set(a.alert_id, now);
        const merged = merge(alerts, incoming);
        if (merged !== alerts || !current) {
          alerts = merged;
          current = true;
          setState({ key, feed: { alerts, loaded: true, error: null, firstSeen: seen, loadedAt } });
        }
      } catch (e) {
        current = false;
        const error = e instanceof Error ? e.message : String(e);
        if (!stopped) setState((s) => ({ key, feed: { ...(s.key === key ? s.feed : EMPTY), loaded: true, error } }));
      }
      polls += 1;
      if (!stopped) timer = setTimeout(() => void tick(), POLL_MS);
    };
    void tick();
    return () => {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
    };
  }, [client, key]);

  // until the first answer for new filters arrives, the old filters' alerts are not shown as theirs
  return state.key === key ? state.feed : EMPTY;
}

/** Calls `load` now and every `everyMs`, keeping its latest value (and error). */
export function usePolled<T>(load: () => Promise<T>, everyMs: number, deps: unknown[]): { value: T | undefined; error: string | null } {
  const [state, setState] = useState<{ value: T | undefined; error: string | null }>({ value: undefined, error: null });
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async (): Promise<void> => {
      try {
        const value = await load();
        if (!stopped) setState({ value, error: null });
      } catch (e) {
        if (!stopped) setState((s) => ({ ...s, error: e instanceof Error ? e.message : String(e) }));
      }
      if (!stopped && everyMs > 0) timer = setTimeout(() => void tick(), everyMs);
    };
    void tick();
    return () => {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  return state;
}

/** A clock for rendering ages: `clock()` now and every `everyMs` (state, so renders stay pure). */
export function useNow(everyMs: number, clock: () => number = () => performance.now()): number {
  const [now, setNow] = useState(clock);
  useEffect(() => {
    const timer = setInterval(() => setNow(clock()), everyMs);
    return () => clearInterval(timer);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [everyMs]);
  return now;
}
