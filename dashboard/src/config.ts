/** Where the dashboard finds the alert API and the harness routes. */
export interface DashboardConfig {
  /** Base URL of the alert API (the same routes as production's API Gateway). */
  apiBase: string;
  /** Base URL of the harness-only routes (run progress, market data); null where there are none. */
  harnessBase: string | null;
}

const BUILT: DashboardConfig = {
  apiBase: import.meta.env.VITE_API_BASE ?? "./api",
  harnessBase: import.meta.env.VITE_HARNESS_BASE ?? "./harness",
};

/**
 * The configuration: `config.json` next to index.html (written by whoever serves the build, e.g.
 * `coattail dashboard`) wins over the build's `VITE_API_BASE` / `VITE_HARNESS_BASE`.
 */
export async function loadConfig(fetchImpl: typeof fetch = fetch): Promise<DashboardConfig> {
  try {
    const reply = await fetchImpl("./config.json", { cache: "no-store" });
    if (!reply.ok) return BUILT;
    const body = (await reply.json()) as Partial<DashboardConfig>;
    return {
      apiBase: typeof body.apiBase === "string" ? body.apiBase : BUILT.apiBase,
      harnessBase: body.harnessBase === null || typeof body.harnessBase === "string" ? body.harnessBase : BUILT.harnessBase,
    };
  } catch {
    return BUILT;
  }
}
