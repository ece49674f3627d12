"""The run report: one self-contained HTML file (plotly's JavaScript inlined; no network needed).

Sections: price per symbol with alert markers, the alert table, the scorecard (MOD-011's sources by
score and their forward returns), the backtest (equity, drawdown, per-signal P&L, beside random
entries), throughput over time, every event's latency by stage (``coattail.run.latency``; at max
speed shown as queueing), DQ counts, validation against labels, the reference comparison and the
golden comparison.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from string import Template
from typing import Any, Final

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from coattail.run.latency import HEADLINE, STAGES
from coattail.run.outputs import RunOutputs
from core.histogram import RELATIVE_ERROR, LogHistogram
from core.timefmt import format_us

MAX_POINTS_PER_SYMBOL: Final = 4_000
MAX_TABLE_ROWS: Final = 500
SEVERITY_COLOR: Final = {"low": "#2da44e", "medium": "#d4a72c", "high": "#e16f24", "critical": "#cf222e"}
MARKER_SYMBOL: Final = {"MOD-008": "star"}
"""Alert markers are diamonds, except the large tier's price modules: MOD-008's impact a star at the
horizon, MOD-009's bursts a triangle pointing the way the price went."""


def marker_symbol(detector: str, value: float) -> str:
    """The price chart's marker for one alert (``MARKER_SYMBOL``; MOD-009 by the sign of its move)."""
    if detector == "MOD-009":
        return "triangle-up" if value > 0 else "triangle-down"
    return MARKER_SYMBOL.get(detector, "diamond")


@dataclass(frozen=True)
class ReportInputs:
    """Everything the report shows; the run orchestration fills it from the run directory."""

    title: str
    outputs: RunOutputs
    prices: pl.DataFrame
    """``exchange, symbol, ts_event, price`` (the builder thins it to ``MAX_POINTS_PER_SYMBOL``)."""
    throughput: pl.DataFrame
    """``t_us`` (wall time, µs), ``stage`` (e.g. ``sent``, ``processed``), ``events``."""
    summary: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] | None = None
    agreement: dict[str, Any] | None = None
    golden: dict[str, Any] | None = None
    latency: dict[str, LogHistogram] = field(default_factory=dict)
    """Every event's latency by stage (``coattail.run.latency.STAGES``); empty for a run measured before."""
    queueing: bool = False
    """The run replayed at max speed: latency from the schedule measures the queue behind the tape."""
    stages: dict[str, dict[str, float | None]] = field(default_factory=dict)
    """Latency percentiles (ms) of stages before the pipeline, by name (the producer's, via WebSocket)."""
    backtest: BacktestView | None = None
    """``coattail backtest``'s results, when the run has been backtested."""


@dataclass(frozen=True)
class BacktestView:
    """A backtest as the report shows it: per strategy (``follow``, ``random``) its figures, its equity
    curve (``ts, equity_usd, drawdown_usd``) and its closed trades (``decision_ts, pnl_usd, ...``)."""

    summary: dict[str, dict[str, Any]]
    equity: dict[str, pl.DataFrame]
    trades: dict[str, pl.DataFrame]


def build_report(inputs: ReportInputs) -> str:
    """The HTML text of the report."""
    alerts = pl.DataFrame(inputs.outputs.alerts)
    template = Template(resources.files("coattail.report").joinpath("template.html").read_text())
    return template.substitute(
        title=html.escape(inputs.title),
        subtitle=html.escape(f"generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M:%S UTC')}"),
        plotlyjs=get_plotlyjs(),
        cards=_cards(inputs),
        price_chart=figure_html(_price_figure(inputs.prices, alerts), "price"),
        alert_table=_alert_table(alerts),
        scorecard=_scorecard(inputs.outputs.alpha_scores),
        backtest=_backtest(inputs.backtest),
        throughput_chart=figure_html(_throughput_figure(inputs.throughput), "throughput"),
        latency_title=_latency_title(inputs.queueing),
        latency_table=_latency_table(inputs.latency),
        latency_chart=figure_html(_latency_figure(inputs.latency), "latency") if inputs.latency else "",
        stage_table=_stage_table(inputs.stages),
        dq_chart=figure_html(_dq_figure(inputs.outputs.dq), "dq"),
        dq_table=_dq_table(inputs.outputs.dq),
        validation=_validation(inputs.validation),
        reference=_reference(inputs.agreement),
        golden=_golden(inputs.golden),
        run_table=_kv_table({k: v for k, v in inputs.summary.items() if not isinstance(v, (dict, list))}),
    )


# --- charts ------------------------------------------------------------------------------------------


def figure_html(fig: go.Figure, name: str) -> str:
    fig.update_layout(margin={"l": 60, "r": 20, "t": 30, "b": 40}, template="plotly_white")
    if fig.layout.height is None:
        fig.update_layout(height=380)
    body: str = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{name}")
    return f'<div class="chart">{body}</div>'


def _times(us: pl.Series) -> list[datetime]:
    return [datetime.fromtimestamp(v / 1e6, tz=UTC) for v in us.to_list()]


def _thin(frame: pl.DataFrame) -> pl.DataFrame:
    if frame.height <= MAX_POINTS_PER_SYMBOL:
        return frame
    step = -(-frame.height // MAX_POINTS_PER_SYMBOL)
    return frame.gather_every(step)


def _price_figure(prices: pl.DataFrame, alerts: pl.DataFrame) -> go.Figure:
    """One row per instrument (prices differ by orders of magnitude), alerts as markers on the line."""
    if prices.is_empty():
        return go.Figure()
    keys = prices.select("exchange", "symbol").unique().sort(["symbol", "exchange"]).rows()
    fig = make_subplots(
        rows=len(keys),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.02,
        subplot_titles=[f"{e}:{s}" for e, s in keys],
    )
    for row, (exchange, symbol) in enumerate(keys, start=1):
        rows = _thin(
            prices.filter((pl.col("exchange") == exchange) & (pl.col("symbol") == symbol)).sort("ts_event")
        )
        fig.add_trace(
            go.Scattergl(
                x=_times(rows["ts_event"]),
                y=rows["price"].to_list(),
                mode="lines",
                name=f"{exchange}:{symbol}",
                showlegend=False,
                line={"width": 1},
            ),
            row=row,
            col=1,
        )
        mine = (
            alerts.filter((pl.col("exchange") == exchange) & (pl.col("symbol") == symbol))
            if alerts.height
            else alerts
        )
        if mine.is_empty():
            continue
        # An alert sits on the price line at its event time (the last trade at or before it).
        ts = rows["ts_event"].to_numpy()
        px = rows["price"].to_numpy()
        at = np.clip(np.searchsorted(ts, mine["ts_event"].to_numpy(), side="right") - 1, 0, len(ts) - 1)
        labels = list(zip(mine["detector"], mine["kind"], mine["severity"], mine["value"], strict=True))
        fig.add_trace(
            go.Scatter(
                x=_times(mine["ts_event"]),
                y=px[at].tolist(),
                mode="markers",
                name=f"alerts {exchange}:{symbol}",
                showlegend=False,
                marker={
                    "size": 11,
                    "symbol": [marker_symbol(d, v) for d, _, _, v in labels],
                    "line": {"width": 1, "color": "#333"},
                    "color": [SEVERITY_COLOR.get(s, "#555") for s in mine["severity"]],
                },
                text=[f"{d} {k} {s} value={v:.4g}" for d, k, s, v in labels],
                hoverinfo="text+x",
            ),
            row=row,
            col=1,
        )
    fig.update_layout(height=max(380, 200 * len(keys)))
    fig.update_xaxes(title_text="event time (UTC)", row=len(keys), col=1)
    return fig


def _throughput_figure(throughput: pl.DataFrame) -> go.Figure:
    fig = go.Figure()
    if not throughput.is_empty():
        t0 = int(throughput["t_us"].min())  # type: ignore[arg-type]
        for (stage,), rows in throughput.sort("t_us").group_by(["stage"], maintain_order=True):
            fig.add_trace(
                go.Scatter(
                    x=((rows["t_us"] - t0) / 1e6).to_list(),
                    y=rows["events"].to_list(),
                    mode="lines+markers",
                    name=str(stage),
                )
            )
    fig.update_layout(xaxis_title="seconds since the replay started", yaxis_title="events per second")
    return fig


def _latency_figure(latency: dict[str, LogHistogram]) -> go.Figure:
    """The cumulative distribution of each stage's latency (log time axis)."""
    fig = go.Figure()
    for name, histogram in latency.items():
        edges, shares = histogram.cdf_ms()
        if edges:
            fig.add_trace(go.Scatter(x=edges, y=shares, mode="lines", line_shape="hv", name=name))
    fig.update_layout(xaxis_title="ms", xaxis_type="log", yaxis_title="share of events (alerts)")
    return fig


def _dq_figure(dq: pl.DataFrame) -> go.Figure:
    fig = go.Figure()
    if not dq.is_empty():
        totals = dq.group_by(["reason", "symbol"]).agg(pl.col("count").sum()).sort(["symbol", "reason"])
        for (symbol,), rows in totals.group_by(["symbol"], maintain_order=True):
            fig.add_trace(
                go.Bar(x=rows["reason"].to_list(), y=rows["count"].to_list(), name=str(symbol) or "(unknown)")
            )
    fig.update_layout(barmode="stack", xaxis_title="reason", yaxis_title="count")
    return fig


# --- tables ------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:,.6g}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{value:,}</td>'
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True, default=str)
    return f"<td>{html.escape('' if value is None else str(value))}</td>"


def table_html(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    if not rows:
        return "<p>none</p>"
    columns = columns or list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(_cell(r.get(c)) for c in columns) + "</tr>" for r in rows[:MAX_TABLE_ROWS]
    )
    more = f"<p>{len(rows) - MAX_TABLE_ROWS} more not shown</p>" if len(rows) > MAX_TABLE_ROWS else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def _stage_table(stages: dict[str, dict[str, float | None]]) -> str:
    if not stages:
        return ""
    rows = [{"stage": name, **pct} for name, pct in stages.items()]
    return "<h3>Stages before the pipeline (ms)</h3>" + table_html(rows)


def _latency_title(queueing: bool) -> str:
    if queueing:
        return ("Queueing at max speed (every event was due when the replay started: these figures measure "
                "the queue behind the tape, not latency; replay paced to measure latency)")
    return "Latency per event, from its scheduled send time"


def _latency_table(latency: dict[str, LogHistogram]) -> str:
    if not latency:
        return "<p>not measured (a run directory written before per-event latency)</p>"
    rows = [{"stage": name, "measures": STAGES[name], **h.summary_ms()} for name, h in latency.items()]
    note = f"percentiles within {100 * RELATIVE_ERROR:g}% (a log-bucketed histogram of every event)"
    return table_html(rows) + f"<p>{note}</p>"


def _kv_table(values: dict[str, Any]) -> str:
    return table_html([{"name": k, "value": v} for k, v in values.items()])


def _alert_table(alerts: pl.DataFrame) -> str:
    rows = [
        {
            "time": format_us(a["ts_event"]),
            "detector": a["detector"],
            "kind": a["kind"],
            "exchange": a["exchange"],
            "symbol": a["symbol"],
            "severity": a["severity"],
            "value": a["value"],
            "threshold": a["threshold"],
            "evidence": a["evidence"],
            "alert_id": a["alert_id"],
        }
        for a in alerts.sort("ts_event").iter_rows(named=True)
    ]
    return table_html(rows)


def _dq_table(dq: pl.DataFrame) -> str:
    if dq.is_empty():
        return "<p>no data-quality events</p>"
    totals = (
        dq.group_by(["exchange", "symbol", "reason"])
        .agg(pl.col("count").sum())
        .sort(["exchange", "symbol", "reason"])
    )
    return table_html(totals.to_dicts())


def _status(ok: bool) -> str:
    return '<span class="ok">PASS</span>' if ok else '<span class="fail">FAIL</span>'


def _validation(v: dict[str, Any] | None) -> str:
    if v is None:
        return "<p>not run (the tape has no labels)</p>"
    misses = [r for r in v["results"] if not r["hit"]]
    parts = [
        f"<p>{_status(v['ok'])} {v['labels'] - v['misses']} of {v['labels']} labels hit</p>",
        table_html(v["scores"]),
    ]
    if misses:
        parts.append(
            "<h3>Missed labels</h3>"
            + table_html(
                [{**m["label"], "detail": m["detail"]} for m in misses],
                ["kind", "detector", "exchange", "symbol", "start_us", "end_us", "detail"],
            )
        )
    parts.append(
        f"<details><summary>{len(v['unexpected_alerts'])} alerts no label asked for</summary>"
        f"{table_html(v['unexpected_alerts'])}</details>"
    )
    if v.get("tolerated_alerts"):
        parts.append(
            f"<p>{len(v['tolerated_alerts'])} alerts tolerated by a label (consistent with a scenario, "
            "not required by it; left out of precision)</p>"
        )
    if v.get("unexpected_dq"):
        parts.append(
            f"<details><summary>{len(v['unexpected_dq'])} DQ counts no label asked for</summary>"
            f"{table_html(v['unexpected_dq'])}</details>"
        )
    return "".join(parts)


def _reference(a: dict[str, Any] | None) -> str:
    if a is None:
        return "<p>not run</p>"
    parts = [
        f"<p>{_status(a['ok'])} pipeline {a['pipeline_alerts']} alerts, reference {a['reference_alerts']}; "
        f"{a['differences']} differences</p>",
        _kv_table({f"{side} records {k}": v for side, d in a["records"].items() for k, v in d.items()}),
    ]
    for key, title in (
        ("only_pipeline", "alerts only the pipeline raised"),
        ("only_reference", "alerts only the reference raised"),
        ("alert_differences", "alerts that differ"),
        ("spread_differences", "spread metrics that differ"),
        ("basis_differences", "basis metrics that differ"),
        ("flow_differences", "flow metrics that differ"),
        ("impact_differences", "whale-impact rows that differ"),
        ("alpha_differences", "alpha scores that differ"),
        ("signal_differences", "follow signals that differ"),
        ("dq_differences", "DQ counts that differ"),
    ):
        if a[key]:
            parts.append(f"<h3>{title} ({len(a[key])})</h3>{table_html(a[key])}")
    return "".join(parts)


def _scorecard(scores: pl.DataFrame) -> str:
    """Each source's latest score per horizon (best t-statistic first) and its forward returns."""
    if scores.is_empty():
        return "<p>no scores (MOD-011 is not enabled, or no directional alert matured)</p>"
    source = ["detector", "exchange", "symbol"]
    latest = (
        scores.sort("ts_event").group_by([*source, "horizon_s"]).last()
        .select(*source, "horizon_s", "count", "mean_bps", "std_bps", "hit_rate", "t_stat")
        .sort(["t_stat", *source, "horizon_s"], descending=[True, False, False, False, False],
              nulls_last=True)
    )
    fig = go.Figure()
    horizon = int(scores["horizon_s"].max())  # type: ignore[arg-type]
    for key, part in scores.filter(pl.col("horizon_s") == horizon).group_by(source, maintain_order=True):
        fig.add_trace(go.Box(y=part["forward_bps"].to_list(), name=":".join(map(str, key)), boxmean=True))
    fig.update_layout(yaxis_title=f"forward return at {horizon} s (bps, the alert's way)", showlegend=False)
    return table_html(latest.to_dicts()) + figure_html(fig, "scorecard")


def _backtest(view: BacktestView | None) -> str:
    """Figures beside the random baseline, equity and drawdown curves, and each follow trade's P&L."""
    if view is None:
        return "<p>not backtested: <code>coattail backtest RUN</code> trades the run's signals</p>"
    names = list(view.summary)
    rows = sorted({k for s in view.summary.values() for k, v in s.items() if not isinstance(v, (dict, list))})
    table = table_html([{"figure": r, **{n: view.summary[n].get(r) for n in names}} for r in rows])
    curves = make_subplots(rows=2, cols=1, shared_xaxes=True,
                           subplot_titles=("equity (USD)", "drawdown (USD)"))
    for name in names:
        eq = view.equity[name]
        at = _times(eq["ts"])
        curves.add_trace(go.Scatter(x=at, y=eq["equity_usd"].to_list(), name=name), row=1, col=1)
        curves.add_trace(go.Scatter(x=at, y=eq["drawdown_usd"].to_list(), name=f"{name} drawdown",
                                    fill="tozeroy"), row=2, col=1)
    curves.update_layout(height=520)
    trades = view.trades.get("follow", pl.DataFrame())
    per_signal = go.Figure()
    if not trades.is_empty():
        pnl = trades["pnl_usd"].to_list()
        per_signal.add_trace(go.Bar(x=_times(trades["decision_ts"]), y=pnl, name="follow trade P&L",
                                    marker_color=["#2da44e" if p > 0 else "#cf222e" for p in pnl]))
    per_signal.update_layout(yaxis_title="P&L per signal (USD, after fees)")
    return table + figure_html(curves, "equity") + figure_html(per_signal, "per-signal")


def _golden(g: dict[str, Any] | None) -> str:
    if g is None:
        return "<p>no golden file for this run</p>"
    where = html.escape(g["path"])
    parts = [f"<p>{_status(g['ok'])} {where}: golden {g['expected']} alerts, run {g['actual']}</p>"]
    for key in ("missing", "unexpected", "changed"):
        if g[key]:
            parts.append(f"<h3>{key} ({len(g[key])})</h3>{table_html(g[key])}")
    return "".join(parts)


def _cards(inputs: ReportInputs) -> str:
    s = inputs.summary
    latency: dict[str, Any] = (
        {"latency": "queueing (max speed)"}
        if inputs.queueing
        else {
            f"{name} {pct} latency ms": inputs.latency[name].summary_ms()[pct]
            for name, pct in HEADLINE
            if name in inputs.latency
        }
    )
    cards = {
        "events": s.get("events"),
        "alerts": inputs.outputs.alerts.num_rows,
        "throughput ev/s": s.get("throughput_eps"),
        **latency,
        # a tape without labels is not validated: that is neither a pass nor a failure
        "labels": "NOT RUN" if inputs.validation is None else ("PASS" if inputs.validation["ok"] else "FAIL"),
        "reference": "n/a"
        if inputs.agreement is None
        else ("AGREES" if inputs.agreement["ok"] else "DIFFERS"),
    }
    out = []
    for name, value in cards.items():
        text = "-" if value is None else (f"{value:,.0f}" if isinstance(value, (int, float)) else str(value))
        out.append(f'<div class="card"><b>{html.escape(text)}</b>{html.escape(name)}</div>')
    return "".join(out)
