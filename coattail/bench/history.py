"""The benchmark history: one JSON line per ``coattail bench`` invocation, and its HTML page.

Each entry keeps the git revisions measured, the machine's facts (CPU count, memory, load before and
after), the options, every run's figures, the ratios with their spread and the gate's verdict. The page
(``coattail bench history``) draws throughput and the candidate / baseline ratios over the entries, like
the run report (self-contained, plotly inlined, the report's style).
"""

from __future__ import annotations

import html
import json
import os
import platform
import re
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import psutil
from plotly.offline import get_plotlyjs

from coattail.report.builder import figure_html, table_html
from core.errors import CoattailError

RATIO_FIGURES = ("throughput_eps", "end_to_end_s", "latency results p99 ms", "latency alert p50 ms")
"""The ratios the page draws (when an entry has them)."""


def machine_facts() -> dict[str, Any]:
    """What the figures depend on besides the code."""
    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def append(path: Path, entry: dict[str, Any]) -> None:
    """Add ``entry`` as one line of ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(json.dumps(entry, sort_keys=True, default=str) + "\n")


def read(path: Path) -> list[dict[str, Any]]:
    """Every entry of ``path``; ``CoattailError`` naming the line that is not JSON."""
    if not path.is_file():
        raise CoattailError(f"no benchmark history at {path}: run `coattail bench` first")
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                entries.append(json.loads(line))
            except ValueError as e:
                raise CoattailError(f"{path}:{number} is not a JSON line ({e}); remove or fix it") from e
    return entries


def _label(entry: dict[str, Any]) -> str:
    candidate = entry["git"]["candidate"]
    return f"{entry['time'][:16]} {candidate['commit'][:8]}{'+' if candidate['dirty'] else ''}"


def _throughput_figure(entries: list[dict[str, Any]]) -> go.Figure:
    fig = go.Figure()
    for side in ("baseline", "candidate"):
        xs, ys = [], []
        for entry in entries:
            values = [
                m["figures"]["throughput_eps"]
                for m in entry["measurements"]
                if m["side"] == side and m["speed"] == "max" and m["figures"]["throughput_eps"]
            ]
            if values:
                xs.append(_label(entry))
                ys.append(sorted(values)[len(values) // 2])
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=f"{side} (median, max speed)"))
    fig.update_layout(yaxis_title="events per second end to end")
    return fig


def _ratio_figure(entries: list[dict[str, Any]]) -> go.Figure:
    fig = go.Figure()
    for name in RATIO_FIGURES:
        xs, ys, up, down = [], [], [], []
        for entry in entries:
            r = entry.get("ratios", {}).get(name)
            if r:
                xs.append(_label(entry))
                ys.append(r["median"])
                up.append(r["max"] - r["median"])
                down.append(r["median"] - r["min"])
        if xs:
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="markers",
                    name=name,
                    error_y={"type": "data", "array": up, "arrayminus": down},
                )
            )
    fig.add_hline(y=1.0, line_dash="dot")
    fig.update_layout(yaxis_title="candidate / baseline (median, min-max)")
    return fig


def page(entries: list[dict[str, Any]]) -> str:
    """The history as one self-contained HTML page."""
    report = resources.files("coattail.report").joinpath("template.html").read_text()
    style = re.search(r"<style>.*?</style>", report, re.S)
    rows = [
        {
            "time": e["time"],
            "candidate": e["git"]["candidate"]["commit"][:10]
            + (" (dirty)" if e["git"]["candidate"]["dirty"] else ""),
            "baseline": (e["git"].get("baseline") or {}).get("commit", "")[:10],
            "tier": e["options"]["tier"],
            "speeds": ", ".join(e["options"]["speeds"]),
            "repeat": e["options"]["repeat"],
            "load": e["machine"]["load_1_5_15"],
            "gate": "" if e.get("gate") is None else ("passed" if e["gate"]["passed"] else "FAILED"),
        }
        for e in entries
    ]
    generated = html.escape(datetime.now(UTC).isoformat(timespec="seconds"))
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>coattail bench history</title>"
        f"{style.group(0) if style else ''}<script>{get_plotlyjs()}</script></head><body>"
        f"<h1>coattail bench history</h1><p class='sub'>{generated}"
        f", {len(entries)} entries</p>"
        f"<h2>Throughput</h2>{figure_html(_throughput_figure(entries), 'throughput')}"
        f"<h2>Candidate / baseline</h2>{figure_html(_ratio_figure(entries), 'ratios')}"
        f"<h2>Entries</h2>{table_html(rows)}</body></html>"
    )
