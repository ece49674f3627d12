"""Judging a run from its directory: labels, reference agreement, golden file, summary and report.

Everything here reads the run directory only (plus the golden file named), so ``coattail validate RUN``
can re-judge an old run and ``coattail run`` ends by calling the same code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from coattail.reference import run_reference
from coattail.reference.arrival import ArrivalTarget
from coattail.report import ReportInputs, build_report
from coattail.run.latency import STAGES, latency_summary
from coattail.run.outputs import RunOutputs
from coattail.run.progress import Task
from coattail.run.rundir import RunDir
from coattail.validate import compare_golden, compare_with_reference, validate_labels
from core.histogram import LogHistogram
from core.labels import Label
from core.tape import Tape
from pipeline.config import Config
from pipeline.detectors.data_quality import DataQualitySettings
from replay.engine import Progress as ReplayProgress
from replay.engine import Replay
from replay.faults import FaultSpec

PRICE_POINTS_PER_SYMBOL = 4_000


@dataclass(frozen=True)
class Judgement:
    """The verdicts of one run."""

    labels_ok: bool
    reference_ok: bool
    golden_ok: bool | None
    validation: dict[str, Any]
    summary: dict[str, Any]

    @property
    def ok(self) -> bool:
        """Every check passed (a run without golden file is not failed by it)."""
        return self.labels_ok and self.reference_ok and self.golden_ok is not False


def reference_outputs(
    tapes: Sequence[Path],
    config: Config,
    faults: FaultSpec | None,
    seed: int | None,
    task: Task | None = None,
) -> tuple[RunOutputs, list[Label]]:
    """The reference's outputs for a replay of ``tapes`` with ``faults``, and the replay's fault labels.

    The replay is re-run into memory with the same spec and seed: which events a fault hits, and the
    resulting per-key arrival order, do not depend on speed or target, so this is what the pipeline
    received. ``task``: where to show progress (events replayed, then the detectors' phase).
    """
    target = ArrivalTarget()

    def on_progress(p: ReplayProgress) -> None:
        if task is not None:
            task.update(completed=p.sent, note="replaying into memory")

    summary = Replay(
        list(tapes),
        target,
        faults=faults,
        seed=seed,
        watermark_us=config.spark.watermark_seconds * 1_000_000,
        on_progress=on_progress,
    ).run()
    if task is not None:
        task.update(note=f"detectors over {summary.sent:,} events")
    return run_reference(target.frame(), config), summary.labels


PRICES_FILE = "prices.parquet"


def thinned_prices(tapes: Sequence[Path], points: int = PRICE_POINTS_PER_SYMBOL) -> pl.DataFrame:
    """Trade prices per exchange and symbol, at most ``points`` each, for the report's price chart."""
    parts = []
    for path in tapes:
        table = Tape.open(path).read("trade", columns=["exchange", "symbol", "ts_event", "price"])
        parts.append(pl.DataFrame(table))
    if not parts:
        return pl.DataFrame(
            schema={"exchange": pl.Utf8, "symbol": pl.Utf8, "ts_event": pl.Int64, "price": pl.Float64}
        )
    prices = pl.concat(parts).sort("ts_event")
    return (
        prices.with_columns(
            pl.int_range(pl.len()).over(["exchange", "symbol"]).alias("i"),
            pl.len().over(["exchange", "symbol"]).alias("n"),
        )
        .filter(pl.col("i") % ((pl.col("n") // points) + 1) == 0)
        .drop("i", "n")
    )


def write_prices(tapes: Sequence[Path], run_dir: Path) -> None:
    """Write the run's ``PRICES_FILE`` (``thinned_prices``) whole or not at all: the live dashboard may
    look for it meanwhile (``run_prices``)."""
    partial = run_dir / f".{PRICES_FILE}.partial"
    thinned_prices(tapes).write_parquet(partial)
    partial.replace(run_dir / PRICES_FILE)


def run_prices(run_dir: Path, tapes: Sequence[Path]) -> pl.DataFrame:
    """A run's price series: its ``PRICES_FILE``, or the same series thinned from its ``tapes`` when the
    run has not written it (yet: it does so while its pipeline starts)."""
    path = run_dir / PRICES_FILE
    return pl.read_parquet(path) if path.is_file() else thinned_prices(tapes)


def judge(run: RunDir, config: Config, *, golden: Path | None = None) -> Judgement:
    """Validate the run in ``run`` and write ``validation.json``, ``summary.json`` and ``report.html``."""
    request = run.read_json("run.json")
    counts = request.get("counts", {})
    pipeline = pipeline_outputs(run)
    reference = RunOutputs.load(
        run.path / "reference",
        records_in=counts.get("reference_records_in", 0),
        valid=counts.get("reference_valid", 0),
    )
    labels = [Label.model_validate(x) for x in run.read_json("labels.json")]
    dq_window = config.settings_of(DataQualitySettings).window_seconds
    labelled = validate_labels(labels, pipeline, dq_window_seconds=dq_window)
    agreement = compare_with_reference(pipeline, reference)
    golden_result = compare_golden(golden, pipeline.alert_rows()) if golden is not None else None
    validation = {
        "labels": labelled.to_dict(),
        "reference": agreement.to_dict(),
        "golden": golden_result.to_dict() if golden_result is not None else None,
    }
    run.write_json("validation.json", validation)
    measured = run.read_json("metrics/latency.json") if run.has("metrics/latency.json") else None
    latency = latency_summary(measured)
    histograms = (
        {n: LogHistogram.from_dict(measured["stages"][n]) for n in STAGES if n in measured["stages"]}
        if measured is not None
        else {}
    )
    throughput = _read_parquet(run.path / "metrics" / "throughput.parquet")
    stages = (
        {"producer: exchange send -> Kinesis put": run.read_json("metrics/producer.json")["send_to_put_ms"]}
        if run.has("metrics/producer.json")
        else {}
    )
    summary = {
        "run_id": run.run_id,
        "tapes": request.get("tapes", []),
        "tier": config.tier,
        "profile": config.runtime.profile,
        "speed": request.get("speed"),
        "events": counts.get("sent", 0),
        "records_in": pipeline.records_in,
        "valid": pipeline.valid,
        "quarantined": pipeline.quarantined,
        "alerts": pipeline.alerts.num_rows,
        "alerts_by_detector": dict(sorted(Counter(a["detector"] for a in pipeline.alert_rows()).items())),
        "throughput_eps": request.get("timings", {}).get("throughput_eps"),
        "latency_ms": latency,
        "stage_latency_ms": stages,
        "via": request.get("via", "kinesis"),
        "timings_s": request.get("timings", {}),
        "memory": request.get("memory"),
        "labels": {
            "count": len(labelled.results),
            "recorded": len(labels),
            "ok": labelled.ok,
            "misses": len(labelled.misses),
        },
        "scores": {
            s.detector: {"precision": s.precision, "recall": s.recall, "alerts": s.alerts, "labels": s.labels}
            for s in labelled.scores
        },
        "reference": {
            "ok": agreement.ok,
            "differences": agreement.difference_count,
            "reference_alerts": agreement.reference_alerts,
        },
        "golden": None if golden_result is None else {"ok": golden_result.ok, "path": str(golden)},
    }
    judgement = Judgement(
        labelled.ok, agreement.ok, None if golden_result is None else golden_result.ok, validation, summary
    )
    summary["ok"] = judgement.ok
    run.write_json("summary.json", summary)
    html = build_report(
        ReportInputs(
            title=f"coattail run {run.run_id}",
            outputs=pipeline,
            prices=_read_parquet(run.path / PRICES_FILE),
            throughput=throughput,
            summary={k: v for k, v in summary.items() if not isinstance(v, (dict, list))}
            | {"tapes": ", ".join(request.get("tapes", []))},
            validation=validation["labels"] if labels else None,
            agreement=validation["reference"],
            golden=validation["golden"],
            latency=histograms,
            queueing=latency["queueing"],
            stages=stages,
        )
    )
    (run.path / "report.html").write_text(html)
    return judgement


def _read_parquet(path: Path) -> pl.DataFrame:
    return pl.read_parquet(path) if path.is_file() else pl.DataFrame()


def pipeline_outputs(run: RunDir) -> RunOutputs:
    """The pipeline's tables and alerts that ``run`` captured, with its record counts."""
    counts = run.read_json("run.json").get("counts", {})
    return RunOutputs.load(
        run.path / "pipeline", records_in=counts.get("records_in", 0), valid=counts.get("valid", 0)
    )
