"""Dashboard benchmark: from an alert written to DynamoDB to its row visible in the browser (p50, p99)
over a paced demo run, the dashboard's first load time, and the bundle's size.

Starts its own moto server on 127.0.0.1 (state in a temporary directory), serves the dashboard beside
the run as ``coattail run --live`` does, and watches the Live alerts view in headless Chromium
(``dashboard/e2e/dashboard.e2e.mjs``, playwright-core) from before the first alert: the page notes the
wall-clock time each alert's row is added, which is compared with the alert's ``ts_written`` (the
DynamoDB sink's stamp, read back through the API). Then the finished check loads the page afresh (first
load: navigation until every row is listed) with the browser's navigation timings. Needs `make install`
(the built dashboard and its npm packages) and /usr/bin/chromium.

    .venv/bin/python benchmarks/bench_dashboard.py                      # the demo hour at 60x
    .venv/bin/python benchmarks/bench_dashboard.py --duration 30m --scale 0.1 --out bench-dashboard.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import tempfile
import threading
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from coattail.dashboard import browser
from coattail.dashboard.live import LiveRun
from coattail.dashboard.server import DIST, Backend, make_dashboard_server, url
from coattail.run.orchestrate import RunRequest, execute, remove_own
from coattail.run.progress import RichSteps, Steps
from infra import emulator
from replay.clock import parse_speed


def bundle_size(dist: Path = DIST) -> dict[str, int]:
    """Bytes of the built JavaScript and CSS, raw and gzip-compressed (what a browser downloads)."""
    files = [p for p in (dist / "assets").iterdir() if p.suffix in (".js", ".css")]
    raw = sum(p.stat().st_size for p in files)
    zipped = sum(len(gzip.compress(p.read_bytes(), 9)) for p in files)
    return {"files": len(files), "bytes": raw, "gzip_bytes": zipped}


def api_alerts(base: str) -> list[dict[str, Any]]:
    """Every alert through the dashboard's /api, following the cursor."""
    alerts: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = "limit=1000" + (f"&cursor={cursor}" if cursor else "")
        with urllib.request.urlopen(f"{base}api/alerts?{query}", timeout=30) as reply:
            page = json.loads(reply.read())
        alerts += page["alerts"]
        cursor = page["next_cursor"]
        if not cursor:
            return alerts


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print its figures as JSON."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", default="1h", help="demo tape: market time (default 1h, as the demo)")
    parser.add_argument("--scale", type=float, default=0.25, help="demo tape: volume scale (default 0.25)")
    parser.add_argument("--speed", default="60x", help="replay speed (default 60x, as the demo)")
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    why = browser.missing()
    if why is not None:
        raise SystemExit(f"bench_dashboard: {why}")
    from coattail.commands.run import _demo_tape

    tape = _demo_tape(
        args.runs / "tapes" / f"whale-day-{args.duration}-x{args.scale:g}-s7", args.duration, args.scale, 7
    )
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as state:
        moto_dir = Path(state) / "moto"  # the emulator's own directory, apart from the run's state
        moto_dir.mkdir()
        moto = emulator.start("moto", moto_dir)
        os.environ.update(COATTAIL_AWS_ENDPOINT=moto.endpoint, COATTAIL_STATE_DIR=str(Path(state) / "state"))
        live = LiveRun()
        server = make_dashboard_server(Backend(live=live))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = url(server)
        artefacts = args.runs / "bench-dashboard"
        try:
            watcher = browser.start(base, "live", artefacts / "live")
            request = RunRequest(tapes=(tape,), speed=parse_speed(args.speed), runs_root=args.runs,
                                 name="bench-dashboard", keep_resources=True)  # fmt: skip
            with RichSteps() as steps:
                result = execute(request, steps, observer=live)
            watched = browser.finish(watcher, artefacts / "live")
            alerts = api_alerts(base)
            expected = browser.expected_alerts(result.run.path)
            loaded = browser.finish(browser.start(base, "finished", artefacts / "finished", expected),
                                    artefacts / "finished")  # fmt: skip
        finally:
            server.shutdown()
            server.server_close()
            if live.config is not None:
                remove_own(live.config, Steps())
            emulator.server_process("moto", moto_dir).stop()
    seen = watched["seen_ms"]
    delays = np.array([seen[a["alert_id"]] - a["ts_written"] / 1e3 for a in alerts if a["alert_id"] in seen])
    figures: dict[str, Any] = {
        "run": result.run.run_id,
        "tape": str(tape),
        "speed": args.speed,
        "alerts": len(alerts),
        "alerts_seen_live": len(delays),
        "written_to_visible_ms": {
            "p50": round(float(np.percentile(delays, 50)), 1) if len(delays) else None,
            "p99": round(float(np.percentile(delays, 99)), 1) if len(delays) else None,
            "max": round(float(delays.max()), 1) if len(delays) else None,
        },
        "first_load_ms": loaded.get("first_load_ms"),
        "navigation_ms": loaded.get("navigation"),
        "bundle": bundle_size(),
        "browser_checks_ok": watched["ok"] and loaded["ok"],
        "failures": watched["failures"] + loaded["failures"],
        "load_average": os.getloadavg(),
        "artefacts": str(artefacts),
    }
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return figures


if __name__ == "__main__":
    main()
