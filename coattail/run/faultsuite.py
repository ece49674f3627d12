"""The emulator-fault suite: one tape run straight against the emulator, then again through the fault
proxy (``infra.faultproxy``) under each fault spec. Every faulted run must end with the baseline's
bronze rows, quarantine, alerts (Iceberg, and each once in DynamoDB) and counts: nothing lost, nothing
written twice. ``coattail faults`` runs it; ``tests/e2e/test_fault_suite.py`` runs the CI suite.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import polars as pl

from coattail.diff import diff_outputs
from coattail.run.orchestrate import RunRequest, RunResult, execute
from coattail.run.outputs import RunOutputs
from coattail.run.progress import Steps
from core.events import SCHEMAS
from infra.faultproxy.server import FaultProxy
from infra.faultproxy.spec import KinesisLimits, ProxySpec
from infra.run_resources import own_resources, remove
from pipeline.config import Config
from pipeline.tables import QUARANTINE, QUOTES, TRADES

_MIXED: Final = {"throttle": 0.05, "server_error": 0.05, "reset": 0.05, "slow": 0.03, "lost_response": 0.05}
SUITES: Final[dict[str, tuple[tuple[str, ProxySpec], ...]]] = {
    "ci": (("mixed-seed-1", ProxySpec(seed=1, slow_ms=100, **_MIXED)),),
    "full": (
        *((f"mixed-seed-{s}", ProxySpec(seed=s, slow_ms=200, **_MIXED)) for s in (1, 2, 3)),
        ("heavy-seed-4", ProxySpec(seed=4, throttle=0.15, server_error=0.1, reset=0.1, slow=0.05,
                                   lost_response=0.1, slow_ms=300)),
        ("aws-quotas", ProxySpec(seed=5, kinesis_limits=KinesisLimits())),
        ("aws-quotas-and-faults", ProxySpec(seed=6, kinesis_limits=KinesisLimits(), **_MIXED)),
    ),
}
"""Named fault specs per suite; rates are per request (see ``ProxySpec``)."""
_COMPARED: Final = {
    TRADES.name: SCHEMAS["trade"].names,
    QUOTES.name: SCHEMAS["quote"].names,
    QUARANTINE.name: ["reason", "raw", "kind", "exchange", "symbol", "ts_event"],
}


@dataclass(frozen=True)
class Tally:
    """One table of a faulted run against the baseline: rows lost and rows written twice (or more)."""

    table: str
    baseline: int
    rows: int
    lost: int
    duplicated: int


@dataclass(frozen=True)
class FaultRun:
    """A faulted run: its spec, what the proxy did, and the comparison with the baseline."""

    name: str
    spec: ProxySpec
    run_id: str
    proxy: dict[str, Any]
    tallies: list[Tally]
    alerts_changed: int
    counts: dict[str, int]
    baseline_counts: dict[str, int]

    @property
    def lost(self) -> int:
        """Rows and alerts the baseline has and this run lacks."""
        return sum(t.lost for t in self.tallies)

    @property
    def duplicated(self) -> int:
        """Rows and alerts this run holds more often than the baseline."""
        return sum(t.duplicated for t in self.tallies)

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing doubled, no alert changed, the same counts (DynamoDB included)."""
        keys = ("records_in", "valid", "quarantined", "dynamodb_alerts")
        same = all(self.counts.get(k) == self.baseline_counts.get(k) for k in keys)
        return self.lost == 0 and self.duplicated == 0 and self.alerts_changed == 0 and same


@dataclass
class SuiteReport:
    """The baseline run and every faulted run."""

    baseline_run_id: str
    runs: list[FaultRun] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every faulted run matched the baseline."""
        return all(r.ok for r in self.runs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: per run the faults injected by kind, quota refusals and rows lost and doubled."""
        return {
            "baseline": self.baseline_run_id,
            "ok": self.ok,
            "runs": [
                {
                    "name": r.name,
                    "run_id": r.run_id,
                    "spec": r.spec.model_dump(mode="json"),
                    "proxy": r.proxy,
                    "tables": [vars(t) for t in r.tallies],
                    "alerts_changed": r.alerts_changed,
                    "counts": r.counts,
                    "baseline_counts": r.baseline_counts,
                    "lost": r.lost,
                    "duplicated": r.duplicated,
                    "ok": r.ok,
                }
                for r in self.runs
            ],
        }


@contextlib.contextmanager
def _stack_at(url: str, state_dir: Path) -> Iterator[None]:
    """Runs started in the block find the stack at ``url`` (``COATTAIL_AWS_ENDPOINT``, level 1 of
    ``infra.resolve``: the proxy is just another endpoint to them) and keep their local state (the
    Iceberg catalog, ``stack.json``) in ``state_dir``, apart from the user's own stack."""
    saved = {k: os.environ.get(k) for k in ("COATTAIL_AWS_ENDPOINT", "COATTAIL_STATE_DIR")}
    os.environ["COATTAIL_AWS_ENDPOINT"] = url
    os.environ["COATTAIL_STATE_DIR"] = str(state_dir)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_fault_suite(
    request: RunRequest,
    specs: Sequence[tuple[str, ProxySpec]],
    upstream: str,
    state_dir: Path,
    *,
    steps: Steps | None = None,
    spark: Any = None,
) -> SuiteReport:
    """Run ``request`` against ``upstream`` (the emulator), then through a fault proxy per spec; local
    state goes to ``state_dir``."""
    steps = steps or Steps()
    with steps.step("fault suite: runs done", total=len(specs) + 1) as overall:
        with _stack_at(upstream, state_dir):
            baseline = execute(_kept(request, "baseline"), steps, spark=spark)
        report = SuiteReport(baseline_run_id=baseline.run.run_id)
        overall.update(completed=1)
        for name, spec in specs:
            with FaultProxy(upstream, spec) as proxy, _stack_at(proxy.endpoint, state_dir):
                faulted = execute(_kept(request, name), steps, spark=spark)
                summary = proxy.summary()
            run = compare(name, spec, summary, baseline, faulted, upstream)
            _discard(faulted, upstream)
            report.runs.append(run)
            overall.update(completed=len(report.runs) + 1)
            lost, doubled = run.lost, run.duplicated
            steps.log(f"{name}: {summary['requests']:,} requests, lost {lost}, duplicated {doubled}")
        _discard(baseline, upstream)
    return report


def _kept(request: RunRequest, name: str) -> RunRequest:
    """One run of the suite: it keeps its stream, table and namespace, whose rows ``compare`` reads."""
    return replace(request, name=f"{request.name}-{name}", keep_resources=True)


def _discard(result: RunResult, upstream: str) -> None:
    """Remove a compared run's stream, alerts table and namespace (what ``keep_resources`` kept)."""
    config = Config.model_validate(result.run.read_json("config.json"))
    runtime = config.runtime.model_copy(update={"aws_endpoint": upstream})
    remove(own_resources(config), runtime, config.storage.warehouse_bucket)


def compare(
    name: str, spec: ProxySpec, proxy: dict[str, Any], baseline: RunResult, faulted: RunResult, upstream: str
) -> FaultRun:
    """The faulted run's bronze, quarantine and alerts against the baseline's, as multisets of rows."""
    tallies = [
        _tally(table, _rows(baseline, table, columns, upstream), _rows(faulted, table, columns, upstream))
        for table, columns in _COMPARED.items()
    ]
    a = RunOutputs.load(baseline.run.path / "pipeline")
    b = RunOutputs.load(faulted.run.path / "pipeline")
    ids = ["alert_id"]
    tallies.append(_tally("alerts", pl.from_arrow(a.alerts.select(ids)), pl.from_arrow(b.alerts.select(ids))))
    changed = sum(len(g.changed) for g in diff_outputs(a, b).groups)
    counts = _counts(faulted)
    return FaultRun(name, spec, faulted.run.run_id, proxy, tallies, changed, counts, _counts(baseline))


def _counts(result: RunResult) -> dict[str, int]:
    counts: dict[str, int] = result.run.read_json("run.json")["counts"]
    return counts


def _rows(result: RunResult, table: str, columns: list[str], upstream: str) -> pl.DataFrame:
    """A run's rows of ``table`` (the columns every run shares), from its Iceberg namespace."""
    from pyiceberg.exceptions import NoSuchTableError

    from pipeline.sinks.iceberg import load_catalog

    config = Config.model_validate(result.run.read_json("config.json"))
    runtime = config.runtime.model_copy(update={"aws_endpoint": upstream})
    catalog = load_catalog(runtime, config.storage.warehouse_bucket)
    try:
        data = catalog.load_table(f"{config.storage.namespace}.{table}").scan().to_arrow()
    except NoSuchTableError:
        return pl.DataFrame(schema=dict.fromkeys(columns, pl.String))
    frame = pl.from_arrow(data.select(columns))
    assert isinstance(frame, pl.DataFrame)
    return frame


def _tally(table: str, baseline: Any, rows: Any) -> Tally:
    """Rows per distinct value in each run: the baseline's surplus is lost, the run's is duplicated."""
    assert isinstance(baseline, pl.DataFrame) and isinstance(rows, pl.DataFrame)
    keys = baseline.columns
    a = baseline.group_by(keys).len("a")
    b = rows.select(keys).cast(baseline.schema).group_by(keys).len("b")
    both = a.join(b, on=keys, how="full", coalesce=True, nulls_equal=True).with_columns(
        pl.col("a", "b").fill_null(0).cast(pl.Int64)  # counts are UInt32: a difference must not wrap
    )
    lost = int(both.select((pl.col("a") - pl.col("b")).clip(lower_bound=0).sum()).item())
    doubled = int(both.select((pl.col("b") - pl.col("a")).clip(lower_bound=0).sum()).item())
    return Tally(table, baseline.height, rows.height, lost, doubled)
