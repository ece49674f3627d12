"""The crash suite: SIGKILL ``coattail pipeline run`` at seeded points of a replay, restart it from its
checkpoint, and prove that nothing was lost or doubled.

One stream is filled with the tape once. An uninterrupted ``coattail pipeline run --until-idle`` reads it
into its own alerts table and Iceberg namespace (the baseline); then the crashed pipeline reads the same
stream into another table and namespace, and is killed, with its whole process group (the Spark JVM and
its Python workers), at the points of a seeded plan, each restart resuming from the same checkpoint, until
a last run goes idle. The points are seen from outside, through the files the pipeline writes and the
emulator it writes to, never through a hook in the production code:

=================  ==========================================================================
phase              killed when
=================  ==========================================================================
spark-start        a seeded 0.5-4 s after the process started (Spark and the query starting)
first-trigger      the offset log holds a batch of this attempt that is not committed yet
between-triggers   a batch of this attempt was just committed in the commit log
table-commit       the router's spool holds a batch of this attempt (its Iceberg commit pending or
                   under way)
dynamodb-writes    the crashed run's DynamoDB table gained an alert during this attempt
=================  ==========================================================================

each after a seeded extra delay of 0-150 ms. A phase the attempt never reaches (the pipeline finished
first) is reported as not reached, not as a kill.

The verdict compares the crashed run with the tape and the baseline: every tape event exactly once in
the bronze tables (``trades`` by exchange, symbol and trade id; ``quotes`` by update id), alert ids
unique in Iceberg and equal, field by field, to the baseline's, and DynamoDB holding exactly the
baseline's alert ids.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from coattail.run.progress import Steps
from core.errors import CoattailError
from core.events import EventKind
from core.tape import Tape
from infra.provision import StackSpec, provision
from infra.run_resources import own_resources, remove, run_resource_names
from pipeline.aws import client
from pipeline.config import Config, ConfigLoader, RuntimeSettings, TierName
from pipeline.sinks.iceberg import IcebergSink

PHASES: Final = ("spark-start", "first-trigger", "between-triggers", "table-commit", "dynamodb-writes")
POLL_S: Final = 0.02
ATTEMPT_TIMEOUT_S: Final = 600.0
US: Final = 1_000_000
COATTAIL: Final = (sys.executable, "-c", "import sys; from coattail.cli import app; sys.exit(app())")
"""The command line of a ``coattail`` child process (this interpreter, this checkout)."""
_COMPARED_AWAY: Final = ("ts_written",)
"""Alert columns that legitimately differ between two runs of the same records."""


@dataclass(frozen=True)
class Kill:
    """One planned kill: its phase, whether the attempt reached it, and after how long."""

    phase: str
    reached: bool
    after_s: float


@dataclass
class Tally:
    """Lost and duplicated counts of one kind of output."""

    expected: int = 0
    found: int = 0
    lost: int = 0
    duplicated: int = 0
    changed: int = 0

    @property
    def ok(self) -> bool:
        """Nothing lost, doubled or changed, and the counts agree."""
        return self.lost == self.duplicated == self.changed == 0 and self.found == self.expected


@dataclass
class CrashReport:
    """What the suite did and found."""

    events: int
    kills: list[Kill] = field(default_factory=list)
    bronze: Tally = field(default_factory=Tally)
    iceberg_alerts: Tally = field(default_factory=Tally)
    dynamodb_alerts: Tally = field(default_factory=Tally)
    attempts: int = 0

    @property
    def survived(self) -> int:
        """Kills that happened (the phase was reached) and were survived."""
        return sum(k.reached for k in self.kills)

    @property
    def ok(self) -> bool:
        """Every tally is clean."""
        return self.bronze.ok and self.iceberg_alerts.ok and self.dynamodb_alerts.ok

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        tallies = {"bronze": self.bronze, "iceberg_alerts": self.iceberg_alerts,
                   "dynamodb_alerts": self.dynamodb_alerts}
        return {
            "events": self.events,
            "attempts": self.attempts,
            "kills_survived": self.survived,
            "kills": [{"phase": k.phase, "reached": k.reached, "after_s": round(k.after_s, 2)}
                      for k in self.kills],
            **{name: vars(t) for name, t in tallies.items()},
            "ok": self.ok,
        }


def plan(kills: int, seed: int) -> list[str]:
    """``kills`` phases in a seeded order that covers every phase before repeating one."""
    rng = random.Random(seed)
    phases: list[str] = []
    while len(phases) < kills:
        cycle = list(PHASES)
        rng.shuffle(cycle)
        phases += cycle
    return phases[:kills]


@dataclass(frozen=True)
class CrashSuite:
    """The suite over ``tapes`` on the stack ``config.runtime`` points at (``coattail up``)."""

    tapes: Sequence[Path]
    runtime: RuntimeSettings
    workdir: Path
    phases: Sequence[str]
    seed: int = 0
    tier: TierName = "small"
    overrides: dict[str, str] = field(default_factory=dict)
    """``--set`` overrides for both pipelines (as text, as the command line passes them on)."""
    max_records_per_batch: int = 500
    keep_resources: bool = False

    def run(self, steps: Steps | None = None) -> CrashReport:
        """Fill the stream, run the baseline, run the crashed pipeline through its kills, compare."""
        steps = steps or Steps()
        unknown = sorted(set(self.phases) - set(PHASES))
        if unknown:
            raise CoattailError(f"unknown crash phases {unknown}; known: {', '.join(PHASES)}")
        tapes = [Tape.open(p) for p in self.tapes]
        events = sum(sum(t.manifest.rows.values()) for t in tapes)
        tag = f"crash-{time.strftime('%Y%m%d-%H%M%S')}-s{self.seed}"
        baseline = self.resolved(f"{tag}-a")
        crashed = self.resolved(f"{tag}-b", stream=baseline.kinesis.stream)
        workdir = self.workdir / tag  # checkpoints of an earlier suite belong to its deleted stream
        workdir.mkdir(parents=True)
        report = CrashReport(events=events)
        try:
            with steps.step("provision the suite's stream, tables and namespaces"):
                for cfg in (baseline, crashed):
                    provision(StackSpec.from_config(cfg), cfg.runtime)
            with steps.step("replay the tape into the stream", total=events) as task:
                fill(self.tapes, baseline, lambda sent: task.update(completed=sent))
            with steps.step("baseline: an uninterrupted pipeline run"):
                wait_ok(self.launch(baseline, workdir / "baseline"), "baseline")
            rng = random.Random(self.seed)
            ckpt = workdir / "crashed"
            with steps.step("crashed pipeline: kills survived", total=len(self.phases)) as task:
                for i, phase in enumerate(self.phases):
                    kill = self._attempt(crashed, ckpt, phase, rng, i)
                    report.attempts += 1
                    report.kills.append(kill)
                    outcome = "killed" if kill.reached else "not reached"
                    task.update(completed=i + 1, note=f"{phase}: {outcome}")
                    if not kill.reached:
                        break  # the pipeline finished: nothing is left to kill
            with steps.step("crashed pipeline: the last restart, until idle"):
                wait_ok(self.launch(crashed, ckpt), "the last restart")
                report.attempts += 1
            with steps.step("compare with the tape and the baseline"):
                compare(report, tapes, baseline, crashed)
        finally:
            if not self.keep_resources:
                resources = [*own_resources(baseline), *own_resources(crashed)]
                shared = [r for r in resources if r.name != crashed.kinesis.stream or r is resources[0]]
                remove(shared, baseline.runtime, baseline.storage.warehouse_bucket)
        return report

    def resolved(self, run_id: str, stream: str | None = None) -> Config:
        """The tier with the overrides and the names of one pipeline's own resources (``stream``: read
        this one instead of its own)."""
        return run_config(self.tier, self.overrides, self.runtime, run_id, stream)

    def launch(self, config: Config, checkpoint: Path, code: Path | None = None) -> subprocess.Popen[bytes]:
        """``coattail pipeline run --until-idle`` on ``checkpoint`` in a process group of its own (so a
        kill takes Spark's JVM and its workers with it); its output goes to ``<checkpoint>.log``.
        ``code``: a checkout of another revision to run instead of this one (same interpreter)."""
        runtime = config.runtime
        env = child_env(runtime)
        if code is not None:
            env["PYTHONPATH"] = str(code)  # ahead of the editable install's finder
        sets = {
            **self.overrides,
            "kinesis.stream": config.kinesis.stream,
            "dynamodb.alerts_table": config.dynamodb.alerts_table,
            "storage.namespace": config.storage.namespace,
            "spark.max_records_per_batch": str(self.max_records_per_batch),
        }
        args = [*COATTAIL, "pipeline", "run", "--tier", self.tier, "--profile", runtime.profile,
                "--until-idle", "--checkpoint", str(checkpoint)]
        for key, value in sets.items():
            args += ["--set", f"{key}={value}"]
        with checkpoint.with_suffix(".log").open("ab") as out:
            return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=code,
                                    start_new_session=True)

    def _attempt(self, config: Config, ckpt: Path, phase: str, rng: random.Random, i: int) -> Kill:
        """Start the pipeline on ``ckpt`` and kill it once ``phase`` is seen; not reached when it ends
        first."""
        query = ckpt / "query"
        offsets0, commits0 = _ids(query / "offsets"), _ids(query / "commits")
        spooled0 = _ids(ckpt / "spool")  # left by the previous kill: committed first thing on start
        alerts0 = _dynamo_count(config)
        delay = rng.uniform(0.5, 4.0) if phase == "spark-start" else rng.uniform(0.0, 0.15)
        started = time.monotonic()
        process = self.launch(config, ckpt)

        def seen() -> bool:
            if phase == "spark-start":
                return True
            if phase == "first-trigger":
                return bool(_ids(query / "offsets") - offsets0 - _ids(query / "commits"))
            if phase == "between-triggers":
                return bool(_ids(query / "commits") - commits0)
            if phase == "table-commit":
                return bool(_ids(ckpt / "spool") - spooled0)
            return _dynamo_count(config) > alerts0

        while process.poll() is None:
            if time.monotonic() - started > ATTEMPT_TIMEOUT_S:
                kill_group(process)
                raise CoattailError(f"attempt {i + 1} ({phase}) neither reached its phase nor ended")
            if seen():
                time.sleep(delay)
                if process.poll() is not None:
                    break
                kill_group(process)
                return Kill(phase, True, time.monotonic() - started)
            time.sleep(POLL_S)
        if process.returncode != 0:
            raise CoattailError(f"attempt {i + 1} ({phase}) failed (exit code {process.returncode}); "
                                f"see {ckpt.with_suffix('.log')}")
        return Kill(phase, False, time.monotonic() - started)


def run_config(
    tier: TierName, overrides: dict[str, str], runtime: RuntimeSettings, run_id: str,
    stream: str | None = None,
) -> Config:
    """The tier with ``overrides`` and the names of the run ``run_id``'s own resources, on ``runtime``
    (``stream``: this one instead of its own)."""
    base = ConfigLoader().load(tier, overrides=dict(overrides))
    names = dict(run_resource_names(base, run_id))
    if stream is not None:
        names["kinesis.stream"] = stream
    config = ConfigLoader().load(tier, overrides={**overrides, **names})
    return config.model_copy(update={"runtime": runtime})


def child_env(runtime: RuntimeSettings) -> dict[str, str]:
    """This environment pointed at ``runtime``'s state directory and emulator, for a ``coattail`` child."""
    env = {**os.environ, "COATTAIL_STATE_DIR": str(runtime.state_dir)}
    if runtime.aws_endpoint:
        env["COATTAIL_AWS_ENDPOINT"] = runtime.aws_endpoint
    for service, url in runtime.service_endpoints.items():
        env[f"COATTAIL_{service.upper()}_ENDPOINT"] = url
    return env


def fill(tapes: Sequence[Path], config: Config, on_sent: Callable[[int], None]) -> None:
    """Replay ``tapes`` at full speed into ``config``'s stream."""
    from replay.child_process import prepare_kinesis

    prepare_kinesis(list(tapes), config.runtime, config.kinesis.stream, speed=None, faults=None, seed=None,
                    watermark_us=config.spark.watermark_seconds * US).run(lambda p: on_sent(p.sent))


def wait_ok(process: subprocess.Popen[bytes], what: str) -> None:
    """Wait for a launched pipeline; ``CoattailError`` when it fails or outlasts ``ATTEMPT_TIMEOUT_S``."""
    try:
        code = process.wait(timeout=ATTEMPT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        kill_group(process)
        raise CoattailError(f"{what} did not finish within {ATTEMPT_TIMEOUT_S:.0f} s") from None
    if code != 0:
        raise CoattailError(f"{what} failed (exit code {code}); see the log next to its checkpoint")


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group this suite started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _ids(directory: Path) -> set[int]:
    if not directory.is_dir():
        return set()
    return {int(p.name) for p in directory.iterdir() if p.name.isdigit()}


def _dynamo_items(config: Config, select_count: bool = False) -> list[dict[str, Any]]:
    dynamodb = client("dynamodb", config.runtime)
    args: dict[str, Any] = {"TableName": config.dynamodb.alerts_table}
    if select_count:
        args["Select"] = "COUNT"
    else:
        args["ProjectionExpression"] = "alert_id"
    items: list[dict[str, Any]] = []
    for page in dynamodb.get_paginator("scan").paginate(**args):
        items += page.get("Items", [{}] * int(page["Count"]))
    return items


def _dynamo_count(config: Config) -> int:
    return len(_dynamo_items(config, select_count=True))


def compare(report: CrashReport, tapes: Sequence[Tape], baseline: Config, crashed: Config) -> None:
    """Fill the report's tallies from the tape, the baseline's outputs and the crashed run's."""
    sink = IcebergSink(crashed)
    expected: Counter[tuple[Any, ...]] = Counter()
    found: Counter[tuple[Any, ...]] = Counter()
    bronze: tuple[tuple[EventKind, str, str], ...] = (
        ("trade", "trades", "trade_id"), ("quote", "quotes", "update_id"))
    for kind, table, native in bronze:
        for tape in tapes:
            expected += _keys(tape.read(kind, ["exchange", "symbol", native]), kind, native)
        found += _keys(sink.read(table), kind, native)
    report.bronze = _tally(expected, found)

    base_alerts = _alert_rows(IcebergSink(baseline).read("alerts"))
    crash_alerts = _alert_rows(sink.read("alerts"))
    tally = _tally(Counter(a for a, _ in base_alerts), Counter(a for a, _ in crash_alerts))
    base_by_id = dict(base_alerts)
    tally.changed = sum(1 for a, row in crash_alerts if a in base_by_id and base_by_id[a] != row)
    report.iceberg_alerts = tally

    base_ids = Counter(str(i["alert_id"]["S"]) for i in _dynamo_items(baseline))
    crash_ids = Counter(str(i["alert_id"]["S"]) for i in _dynamo_items(crashed))
    report.dynamodb_alerts = _tally(base_ids, crash_ids)


def _keys(table: pa.Table, kind: str, native: str) -> Counter[tuple[Any, ...]]:
    columns = [table.column(c).to_pylist() for c in ("exchange", "symbol", native)]
    return Counter((kind, *key) for key in zip(*columns, strict=True))


def _alert_rows(table: pa.Table) -> list[tuple[str, tuple[Any, ...]]]:
    """(alert_id, the alert's compared fields) per row."""
    names = [n for n in table.column_names if n not in _COMPARED_AWAY]
    rows = table.select(names).to_pylist()
    return [(str(r["alert_id"]), tuple(repr(r[n]) for n in names)) for r in rows]


def _tally(expected: Counter[Any], found: Counter[Any]) -> Tally:
    return Tally(
        expected=sum(expected.values()),
        found=sum(found.values()),
        lost=sum((expected - found).values()),
        duplicated=sum((found - expected).values()),
    )
