"""Candidate against baseline: ratios of the speed figures with their spread, and quality on the same tape.

Ratios are candidate / baseline per repeat (the two runs of a repeat ran back to back on the same
machine), summarised as median, min and max over the repeats: absolute figures on a shared machine vary
from run to run, their ratio much less. Quality compares one pair of runs of the same tape: the alert
diff (``coattail diff``) against the candidate's release notes, the labels the baseline hit that the
candidate missed, precision and recall per module, and, where both runs made follow signals (MOD-011),
the P&L of trading them (``coattail backtest``'s defaults) against the same tape.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from coattail.backtest.engine import BacktestParams
from coattail.backtest.signals import SIGNALS_FILE, signals_of_run
from coattail.backtest.trade import trade
from coattail.bench.measure import Measurement
from coattail.bench.release_notes import ChangeKind, ReleaseNotes
from coattail.diff import diff_outputs
from coattail.run.outputs import RunOutputs
from coattail.run.progress import Steps
from coattail.run.rundir import RunDir

KINDS: tuple[ChangeKind, ...] = ("appeared", "vanished", "changed")
"""The differences ``coattail diff`` reports (``GroupDiff``'s lists of the same names)."""


def ratios(pairs: Sequence[tuple[Measurement, Measurement]]) -> dict[str, dict[str, float]]:
    """Per figure both sides measured: candidate / baseline, median, min and max over ``pairs``
    (baseline, candidate) and how many pairs had it."""
    per_figure: dict[str, list[float]] = {}
    for baseline, candidate in pairs:
        base, cand = baseline.figures(), candidate.figures()
        for name, value in cand.items():
            before = base.get(name)
            if value is not None and before:
                per_figure.setdefault(name, []).append(value / before)
    return {
        name: {"median": statistics.median(v), "min": min(v), "max": max(v), "n": float(len(v))}
        for name, v in per_figure.items()
    }


@dataclass(frozen=True)
class Quality:
    """How the candidate's results differ from the baseline's on the same tape."""

    diff_totals: dict[str, int]
    undeclared: list[dict[str, Any]]
    """Alert differences the release notes do not declare: detector, symbol, kind, alert."""
    lost_labels: list[dict[str, Any]]
    """Labels the baseline's run hit and the candidate's missed."""
    scores: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    """Module -> ``baseline``/``candidate`` -> precision, recall, alerts, labels."""
    pnl: dict[str, dict[str, Any]] = field(default_factory=dict)
    """``baseline``/``candidate`` -> the follow backtest's figures; empty unless both made signals."""

    def pnl_drop(self) -> float | None:
        """How much less the candidate's signals made than the baseline's, USD after fees (None: not
        both traded)."""
        if not self.pnl:
            return None
        return float(self.pnl["baseline"]["pnl_usd"]) - float(self.pnl["candidate"]["pnl_usd"])

    def recall_drops(self) -> dict[str, float]:
        """Per module whose recall fell: by how much."""
        drops = {}
        for module, sides in self.scores.items():
            before = (sides.get("baseline") or {}).get("recall")
            after = (sides.get("candidate") or {}).get("recall")
            if before is not None and after is not None and after < before:
                drops[module] = before - after
        return drops

    def misses(self, budgets: dict[str, Any]) -> list[str]:
        """The quality budgets missed, as sentences."""
        missed = []
        if len(self.lost_labels) > budgets["max_lost_labels"]:
            missed.append(
                f"{len(self.lost_labels)} labels the baseline hit are missed "
                f"(budget {budgets['max_lost_labels']})"
            )
        if len(self.undeclared) > budgets["max_undeclared_alert_changes"]:
            missed.append(
                f"{len(self.undeclared)} alert changes not declared in release-notes.yaml "
                f"(budget {budgets['max_undeclared_alert_changes']})"
            )
        for module, drop in self.recall_drops().items():
            if drop > budgets["max_recall_drop"]:
                missed.append(f"{module} recall fell by {drop:.3f} (budget {budgets['max_recall_drop']})")
        pnl_drop = self.pnl_drop()
        if pnl_drop is not None and pnl_drop > budgets["max_pnl_drop_usd"]:
            missed.append(
                f"following the signals made {pnl_drop:,.2f} USD less than the baseline's "
                f"(budget {budgets['max_pnl_drop_usd']:,.2f})"
            )
        return missed

    def to_dict(self) -> dict[str, Any]:
        """JSON data."""
        return {
            "diff": self.diff_totals,
            "undeclared": self.undeclared,
            "lost_labels": self.lost_labels,
            "scores": self.scores,
            "recall_drops": self.recall_drops(),
            "pnl": self.pnl,
            "pnl_drop_usd": self.pnl_drop(),
        }


def quality(baseline: Measurement, candidate: Measurement, notes: ReleaseNotes) -> Quality:
    """Compare the two runs' alerts, labels and scores."""
    diff = diff_outputs(
        _outputs(baseline.run_dir), _outputs(candidate.run_dir), name_a="baseline", name_b="candidate"
    )
    undeclared = [
        {"detector": g.detector, "symbol": g.symbol, "kind": kind, "alert": alert}
        for g in diff.groups
        for kind in KINDS
        for alert in getattr(g, kind)
        if not notes.declares(g.detector, g.symbol, kind)
    ]
    hit_before, hit_after = _hit_labels(baseline.run_dir), _hit_labels(candidate.run_dir)
    lost = [json.loads(key) for key in sorted(hit_before - hit_after)]
    modules = set(baseline.summary.get("scores", {})) | set(candidate.summary.get("scores", {}))
    scores = {
        m: {
            "baseline": baseline.summary.get("scores", {}).get(m),
            "candidate": candidate.summary.get("scores", {}).get(m),
        }
        for m in sorted(modules)
    }
    return Quality(diff.totals(), undeclared, lost, scores, _pnl(baseline.run_dir, candidate.run_dir))


def _pnl(baseline: Path, candidate: Path) -> dict[str, dict[str, Any]]:
    """Both runs' follow signals traded on their own tapes with ``coattail backtest``'s defaults (one
    seed, so the two are comparable); empty when a run has no signals table or neither made a signal
    (a tier without MOD-011)."""
    runs = {"baseline": RunDir(baseline), "candidate": RunDir(candidate)}
    files = [run.path / "pipeline" / SIGNALS_FILE for run in runs.values()]
    if not all(f.is_file() for f in files) or not any(
        pl.scan_parquet(f).select(pl.len()).collect().item() for f in files
    ):
        return {}
    out = {}
    for side, run in runs.items():
        signals, tapes = signals_of_run(run)
        out[side] = trade(signals, tapes, BacktestParams(), Steps())["follow"].summary
    return out


def _outputs(run_dir: Path) -> RunOutputs:
    return RunOutputs.load(run_dir / "pipeline")


def _hit_labels(run_dir: Path) -> set[str]:
    """The labels a run hit, each as canonical JSON without its event ids (they name the same events)."""
    path = run_dir / "validation.json"
    if not path.is_file():
        return set()
    results = json.loads(path.read_text()).get("labels", {}).get("results", [])
    return {
        json.dumps({k: v for k, v in r["label"].items() if k != "event_ids"}, sort_keys=True)
        for r in results
        if r.get("hit")
    }
