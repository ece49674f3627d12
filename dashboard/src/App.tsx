import { useEffect, useMemo, useState } from "react";

import { AlertApiClient, HarnessClient } from "./api";
import type { DashboardConfig } from "./config";
import { LiveAlerts } from "./views/LiveAlerts";
import { ModulesView } from "./views/ModulesView";
import { RunView } from "./views/RunView";
import { SymbolView } from "./views/SymbolView";

const VIEWS = [
  ["alerts", "Live alerts"],
  ["symbol", "Symbol"],
  ["modules", "Modules"],
  ["run", "Run"],
] as const;
type View = (typeof VIEWS)[number][0];

/** `#/symbol/BTCUSDT` → view `symbol`, argument `BTCUSDT`; anything else is the live alerts. */
export function parseHash(hash: string): { view: View; arg: string | null } {
  const [, name, arg] = hash.replace(/^#/, "").split("/");
  const view = VIEWS.find(([id]) => id === name)?.[0] ?? "alerts";
  return { view, arg: arg ? decodeURIComponent(arg) : null };
}

function useHash(): string {
  const [hash, setHash] = useState(window.location.hash);
  useEffect(() => {
    const update = () => setHash(window.location.hash);
    window.addEventListener("hashchange", update);
    return () => window.removeEventListener("hashchange", update);
  }, []);
  return hash;
}

/** The dashboard: one view at a time, chosen by the URL's hash (so a view can be linked and reloaded). */
export function App({ config }: { config: DashboardConfig }) {
  const client = useMemo(() => new AlertApiClient(config.apiBase), [config.apiBase]);
  const harness = useMemo(() => new HarnessClient(config.harnessBase), [config.harnessBase]);
  const { view, arg } = parseHash(useHash());
  useEffect(() => {
    document.title = `coattail · ${VIEWS.find(([id]) => id === view)?.[1] ?? ""}`;
  }, [view]);

  return (
    <>
      <header className="top">
        <h1>coattail</h1>
        <nav aria-label="views">
          {VIEWS.map(([id, label]) => (
            <a key={id} href={`#/${id}`} aria-current={id === view ? "page" : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <span className="muted api">API {config.apiBase}</span>
      </header>
      <main id="view" data-view={view}>
        {view === "alerts" && <LiveAlerts client={client} />}
        {view === "symbol" && (
          <SymbolView client={client} harness={harness} symbol={arg} onSymbol={(s) => (window.location.hash = `#/symbol/${encodeURIComponent(s)}`)} />
        )}
        {view === "modules" && <ModulesView client={client} harness={harness} />}
        {view === "run" && <RunView client={client} harness={harness} />}
      </main>
    </>
  );
}
