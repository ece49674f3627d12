"""One run: stack up, provision, pipeline, replay, wait until consumed, capture, reference, judge, report.

Each run gets its own Kinesis stream, DynamoDB alerts table and Iceberg namespace (names derived from
the run id, ``infra.run_resources``), so a run reads back exactly what it wrote, and alert ids that an
earlier run already put in DynamoDB do not suppress this run's writes; the run removes them when it
ends, the run directory keeps what was read from them. The pipeline runs in this process (its own Spark
session); the replay sends from a child process while Spark consumes (``replay.child_process``: in this
process it would compete with the driver for the interpreter lock).

Completion is measured, not slept for: the run polls the pipeline's processed-record count until it
reaches the number of records the replay sent, then flushes the router (the Iceberg commits run in the
background, off the trigger's critical path) before it reads the tables back.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from coattail.run import Via
from coattail.run.judge import Judgement, judge, reference_outputs, write_prices
from coattail.run.latency import LatencyRecorder
from coattail.run.memory import MemorySampler
from coattail.run.outputs import RunOutputs
from coattail.run.prestart import SessionStart
from coattail.run.progress import RunObserver, Steps
from coattail.run.rundir import DEFAULT_ROOT, RunDir, software_versions
from core.errors import CoattailError, PipelineError
from core.histogram import LogHistogram
from core.tape import Tape
from infra.run_resources import own_resources, remove, run_resource_names
from pipeline.aws import local_process_environment
from pipeline.config import Config, ConfigLoader, ProfileName, RuntimeSettings, TierName
from pipeline.detectors.alpha_scoring import ALPHA_SCORES, SIGNALS
from pipeline.detectors.basis import BASIS_METRICS
from pipeline.detectors.data_quality import DQ_METRICS
from pipeline.detectors.flow_imbalance import FLOW_METRICS_TABLE
from pipeline.detectors.spread import SPREAD_METRICS_TABLE
from pipeline.detectors.whale_impact import WHALE_IMPACT_TABLE
from pipeline.engine import BatchResult
from pipeline.tables import ALERTS, TableDef
from replay.faults import FaultSpec, load_fault_spec

if TYPE_CHECKING:
    from infra.stack import KinesisEngine, StackHandle
    from infra.submit import ClusterJob
    from replay.via_ws import ProducerReport

US = 1_000_000


@dataclass(frozen=True)
class RunRequest:
    """What to run."""

    tapes: tuple[Path, ...]
    tier: TierName = "small"
    profile: ProfileName = "lite"
    speed: float | None = None
    """Replay speed multiple; None replays as fast as Kinesis takes it."""
    faults: Path | None = None
    seed: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    """Dotted config overrides (``settings.MOD-001.default_threshold_usd=...``)."""
    runs_root: Path = DEFAULT_ROOT
    golden: Path | None = None
    name: str = "run"
    timeout_s: float = 1_800.0
    """How long the pipeline may take to consume what was sent."""
    via: Via = "kinesis"
    """``kinesis``: the replay puts on Kinesis itself; ``ws``: the replay serves its WebSocket server and
    the production producer puts what it receives (``replay.via_ws``)."""
    kinesis: KinesisEngine | None = None
    """The Kinesis engine to start (or to require of a running stack); None takes a running stack as it
    is and starts moto when none runs."""
    keep_resources: bool = False
    """Keep the run's own stream, alerts table and namespace on the stack (``coattail gc`` removes them)."""
    cluster: str | None = None
    """A Spark standalone master (``spark://...``): the job ``package`` is submitted there with
    spark-submit (``infra.submit``) instead of the pipeline running in this process."""
    package: Path | None = None
    """The job package (``coattail package``) to submit to ``cluster``."""


@dataclass(frozen=True)
class RunResult:
    """Where the run went and how it was judged."""

    run: RunDir
    judgement: Judgement

    @property
    def ok(self) -> bool:
        """Every check passed."""
        return self.judgement.ok


def resolve_config(request: RunRequest, run_id: str, instruments: Sequence[tuple[str, str]] = ()) -> Config:
    """The tier config with the request's overrides, its profile, this run's resource names and, unless
    the request names them, the tapes' ``instruments`` that the registry lists as the participants of
    the asset and global stage (``pipeline.cross``)."""
    base = ConfigLoader().load(request.tier, overrides=request.overrides)
    names: dict[str, Any] = dict(run_resource_names(base, run_id))
    listed = base.instruments.listed_names(instruments)
    if listed and "instruments" not in request.overrides:
        names["instruments"] = listed
    config = ConfigLoader().load(request.tier, overrides={**request.overrides, **names})
    return config.model_copy(
        update={"runtime": config.runtime.model_copy(update={"profile": request.profile})}
    )


def execute(
    request: RunRequest, steps: Steps | None = None, *, spark: Any = None, observer: RunObserver | None = None
) -> RunResult:
    """Run ``request`` end to end and return the judged run (its directory holds everything).

    ``spark``: a session to run the pipeline in (tests share one); by default the pipeline builds its own.
    ``observer``: told the run's resources and progress as they change (the live dashboard).
    Against local emulators the run and every process it starts see no real AWS credential.
    """
    observer = observer or RunObserver()
    try:
        if request.profile == "aws":
            result = _execute(request, steps, spark, observer)
        else:
            with local_process_environment():
                result = _execute(request, steps, spark, observer)
    except BaseException as e:
        observer.stage("failed", str(e) or type(e).__name__)
        raise
    observer.stage("finished", "all checks passed" if result.ok else "some checks failed")
    return result


def _execute(request: RunRequest, steps: Steps | None, spark: Any, observer: RunObserver) -> RunResult:
    with MemorySampler(os.getpid()) as memory:
        return _execute_sampled(request, steps, spark, observer, memory)


def _execute_sampled(
    request: RunRequest, steps: Steps | None, spark: Any, observer: RunObserver, memory: MemorySampler
) -> RunResult:
    started = time.monotonic()
    steps = steps or Steps()
    tapes = [Tape.open(p) for p in request.tapes]
    faults = load_fault_spec(request.faults) if request.faults is not None else None
    run = RunDir.create(request.runs_root, request.name)
    instruments = sorted({pair for tape in tapes for pair in tape.instruments()})
    config = resolve_config(request, run.run_id, instruments)
    # the session needs nothing of the stack: it starts meanwhile (a cluster's job starts its own)
    prestart = (
        SessionStart(config, on_attached=lambda jvm_pid: memory.watch(jvm_pid, "spark_jvm"))
        if spark is None and request.cluster is None
        else None
    )
    # the report's price series reads every trade of the tapes (seconds of a day's): not before the stack
    prices = _prices_meanwhile(request.tapes, run)
    try:
        record, handle = _prepare(request, steps, run, tapes, config, instruments)
    except BaseException:
        if prestart is not None:
            prestart.discard()
        raise
    config = config.model_copy(update={"runtime": handle.runtime})
    _watch_emulators(memory, handle.runtime)
    observer.provisioned(run.run_id, run.path, config)
    timings = record["timings"]
    try:
        summary_labels, counts = _stream(
            run, config, request, tapes, faults, steps, timings, spark or prestart, observer, started
        )
        record["counts"] = counts
        prices.result()  # long done: raises what writing it raised
        if prestart is not None:
            record["warm_driver"] = _warm_driver_record(prestart)
            # nothing after the capture needs Spark: its JVM and Python workers (1.8 GB on a market day)
            # go before the reference holds the whole tape in this process
            prestart.discard()
        with steps.step("reference implementation (Polars)", total=_event_count(tapes)) as task:
            t = time.monotonic()
            reference, _ = reference_outputs(request.tapes, config, faults, request.seed, task)
            reference.save(run.path / "reference")
            counts["reference_records_in"], counts["reference_valid"] = reference.records_in, reference.valid
            timings["reference_s"] = round(time.monotonic() - t, 3)
        labels = [lb.model_dump(mode="json") for t in tapes for lb in t.manifest.labels] + summary_labels
        run.write_json("labels.json", labels)
        # the peak memory of the run's processes up to here: the judging below reads files back
        memory.stop()
        memory.write(run.path / "metrics" / "memory.parquet")
        record["memory"] = memory.summary()
        run.write_json("run.json", record)
        with steps.step("validate and report"):
            judgement = judge(run, config, golden=request.golden)
    except BaseException as e:
        if not request.keep_resources:
            try:
                remove_own(config, steps)
            except CoattailError as cleanup:  # the run's own error is the one to report
                e.add_note(f"removing the run's resources failed too: {cleanup}; `coattail gc` retries")
        raise
    else:
        if not request.keep_resources:
            remove_own(config, steps)
    finally:
        if handle.lease is not None:
            with steps.step("stack: release") as task:
                task.update(note=handle.release())
    return RunResult(run, judgement)


def _prepare(
    request: RunRequest,
    steps: Steps,
    run: RunDir,
    tapes: Sequence[Tape],
    config: Config,
    instruments: Sequence[tuple[str, str]],
) -> tuple[dict[str, Any], StackHandle]:
    """The run's record and files of what it replays, then the stack up and provisioned."""
    record: dict[str, Any] = {
        "run_id": run.run_id,
        "tapes": [str(t.path) for t in tapes],
        "tier": request.tier,
        "profile": request.profile,
        "speed": "max" if request.speed is None else request.speed,
        "faults": str(request.faults) if request.faults else None,
        "seed": request.seed,
        "via": request.via,
        "overrides": request.overrides,
        "timings": {},
        "counts": {},
        # instruments config/instruments.yaml does not list: their trades carry no USD notional
        "unlisted_instruments": [f"{e}:{s}" for e, s in config.instruments.unknown_instruments(instruments)],
    }
    run.write_json("run.json", record)
    run.write_json("config.json", config.model_dump(mode="json"))
    run.write_json("tapes.json", [t.manifest.model_dump(mode="json") for t in tapes])
    run.write_json("versions.json", software_versions())

    from infra.stack import ensure_up

    t0 = time.monotonic()
    with steps.step("stack: up and provisioned") as task:
        handle = ensure_up(config, kinesis=request.kinesis, step=lambda message: task.update(note=message))
    record["timings"]["stack_s"] = round(time.monotonic() - t0, 3)
    return record, handle


def _prices_meanwhile(tapes: Sequence[Path], run: RunDir) -> Future[None]:
    """``write_prices`` on a thread of its own: polars reads the tapes without holding the GIL, and the
    dashboard of a live run thins the tapes itself until the file is there."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="coattail-prices")
    try:
        return pool.submit(write_prices, tapes, run.path)
    finally:
        pool.shutdown(wait=False)


def _watch_emulators(memory: MemorySampler, runtime: RuntimeSettings) -> None:
    """Count the stack's emulator processes in the run's memory, whether or not this run started them."""
    from infra.stack import status

    for process in status(runtime, resources=False).processes:
        if process.pid is not None and process.state == "running":
            memory.watch(process.pid, "emulator")


def _warm_driver_record(prestart: SessionStart) -> dict[str, Any]:
    """Whether the run's session was on a warm driver (``coattail up --warm-driver``), and if not why."""
    if prestart.attached is not None:
        return {"attached": True, "jvm_pid": prestart.attached.driver.jvm_pid}
    return {"attached": False, "note": prestart.note or None}


def remove_own(config: Config, steps: Steps) -> None:
    """Remove the run's own stream, alerts table and namespace: the run directory holds what it read."""
    with steps.step("stack: removing the run's stream, alerts table and namespace"):
        remove(own_resources(config), config.runtime, config.storage.warehouse_bucket)


def _stream(
    run: RunDir,
    config: Config,
    request: RunRequest,
    tapes: Sequence[Tape],
    faults: FaultSpec | None,
    steps: Steps,
    timings: dict[str, Any],
    spark: Any,
    observer: RunObserver,
    started: float,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Pipeline up, replay into Kinesis, wait until every record went through; capture the outputs.

    ``spark``: the session to run in, or the ``SessionStart`` that is starting it (None: the runner
    starts its own). ``started``: when the run started (``time.monotonic``)."""
    from infra.submit import ClusterJob
    from pipeline.producer.settings import load_producer_settings
    from pipeline.runner import PipelineRunner, batch_record
    from replay.child_process import ReplayChild, prepare_kinesis, prepare_producer
    from replay.engine import Progress as ReplayProgress

    batches: list[dict[str, Any]] = []
    lock = threading.Lock()
    latency = LatencyRecorder()

    processed = 0

    def on_batch(result: BatchResult) -> None:
        nonlocal processed
        if result.records_in and "first_batch_s" not in timings:
            # cold start: from the run's start to its first micro-batch with records processed
            timings["first_batch_s"] = round(time.monotonic() - started, 3)
        latency.on_batch(result)
        observer.latency(latency.live())
        with lock:
            processed += result.records_in
            observer.processed(processed, len(batches) + 1)
            batches.append(batch_record(result))

    total = _event_count(tapes)
    consumer: PipelineRunner | ClusterJob
    # the replay's child imports and connects while the pipeline starts; it sends once released below
    options: dict[str, Any] = {
        "speed": request.speed,
        "faults": faults,
        "seed": request.seed,
        "watermark_us": config.spark.watermark_seconds * US,
    }
    replay: ReplayChild[Any] = (
        prepare_producer(list(request.tapes), load_producer_settings(), config.runtime, config.kinesis.stream,
                         **options)
        if request.via == "ws"
        else prepare_kinesis(list(request.tapes), config.runtime, config.kinesis.stream, **options)
    )  # fmt: skip
    with steps.step("pipeline: starting Spark and the streaming query"):
        t = time.monotonic()
        try:
            if request.cluster is None:
                session = spark.session() if isinstance(spark, SessionStart) else spark
                if isinstance(spark, SessionStart) and spark.note:
                    steps.log(f"note: {spark.note}")
                consumer = runner = PipelineRunner(
                    config, checkpoint=run.path / "checkpoint", source="kinesis",
                    spark=session, on_batch=on_batch,
                    on_commit=latency.on_commit, event_stamps=True,
                )  # fmt: skip
            else:
                consumer = _cluster_job(request, config, run)
            try:
                consumer.start()
                if isinstance(consumer, PipelineRunner):
                    # the first trigger is the slow one: the replay sends once it has planned its batch
                    consumer.wait_first_trigger()
            except BaseException:
                consumer.stop()
                raise
        except BaseException:
            replay.cancel()
            raise
        timings["pipeline_start_s"] = round(time.monotonic() - t, 3)
    sent_samples: list[tuple[int, int]] = []
    try:
        with steps.step("replay into Kinesis", total=total) as task:
            observer.stage("replaying")

            def on_progress(p: ReplayProgress) -> None:
                if p.schedule is not None:
                    latency.set_schedule(p.schedule)
                sent_samples.append((time.time_ns() // 1_000, p.sent))
                observer.replayed(p.sent, total, p.position_us, p.start_us, p.end_us, p.rate)
                task.update(completed=p.sent, note=f"{p.rate:,.0f} ev/s")

            t_replay = time.monotonic()
            producer: ProducerReport | None = None
            if request.via == "ws":
                summary, producer = replay.run(on_progress)
            else:
                summary = replay.run(on_progress)
            timings["replay_s"] = round(time.monotonic() - t_replay, 3)
        # through the producer, what reaches Kinesis is what it put (a malformed frame is skipped there)
        if summary.schedule is not None:  # when no progress report carried it
            latency.set_schedule(summary.schedule)
        expected = summary.sent if producer is None else producer.stats.events_out
        observer.stage("consuming")
        with steps.step("pipeline: consuming", total=expected) as task:
            deadline = time.monotonic() + request.timeout_s
            while consumer.progress.records_in < expected:
                if time.monotonic() > deadline:
                    raise PipelineError(
                        f"the pipeline processed {consumer.progress.records_in:,} of {expected:,} records "
                        f"within {request.timeout_s:.0f} s"
                    )
                task.update(completed=consumer.progress.records_in)
                consumer.check_alive()
                time.sleep(0.2)
            # ``records_in`` counts batches whose alerts are written but whose tables may still sit in
            # the router's spool: wait for those commits (a failed one raises here) before capturing.
            # A cluster's job commits them as it stops.
            task.update(note="committing spooled tables")
            if isinstance(consumer, ClusterJob):
                progress = consumer.stop()
            else:
                runner.router.flush()
                observer.latency(latency.live())  # with the last batches' commits (freshness)
                progress = runner.progress
            task.update(completed=progress.records_in)
        elapsed = time.monotonic() - t_replay
        timings["end_to_end_s"] = round(elapsed, 3)
        timings["throughput_eps"] = round(summary.sent / elapsed, 1) if elapsed > 0 else None
        # Spark's own per-trigger figures (durations by phase, rows): where the time went.
        if isinstance(consumer, ClusterJob):
            batches.extend(consumer.batches())
            run.write_json("metrics/query_progress.json", consumer.query_progress())
        elif runner.query is not None:
            run.write_json(
                "metrics/query_progress.json", [json.loads(p.json) for p in runner.query.recentProgress]
            )
    finally:
        consumer.stop()
    with steps.step("capture: reading the Iceberg tables"):
        outputs = capture_outputs(
            config, records_in=progress.records_in, valid=progress.valid,
            spark=None if isinstance(consumer, ClusterJob) else runner.spark,
        )
        outputs.save(run.path / "pipeline")
        committed = latency.committed_us
        rows = [b | {"committed_us": committed.get(b["batch_id"])} for b in batches]
        _write_metrics(run, rows, sent_samples)
        run.write_json("metrics/latency.json", latency.to_dict())
    counts = {
        "sent": summary.sent,
        "records_in": progress.records_in,
        "valid": progress.valid,
        "quarantined": progress.quarantined,
        "batches": progress.batches,
        "dynamodb_alerts": count_dynamodb_alerts(config),
    }
    if producer is not None:
        stats = producer.stats
        counts |= {
            "producer_messages_in": stats.messages_in,
            "producer_events_out": stats.events_out,
            "producer_bad_messages": stats.bad_messages,
            "producer_reconnects": stats.reconnects,
            "producer_gaps": stats.gaps,
            "producer_missing_trades": stats.missing_trades,
        }
        run.write_json("metrics/producer.json", producer_stage(producer))
    # The replay's account of the faults it injected: from the run's spec, and those a tape asked for.
    labels = [lb.model_dump(mode="json") for lb in [*summary.labels, *summary.tape_fault_labels]]
    return labels, counts


def _cluster_job(request: RunRequest, config: Config, run: RunDir) -> ClusterJob:
    """The run's job on ``request.cluster``: the package submitted with the run's config."""
    from infra.package import Package
    from infra.submit import ClusterJob

    if request.package is None:
        raise PipelineError(
            "a run on a cluster submits the job package: build it with `coattail package --tier T --out DIR`"
        )
    return ClusterJob(
        Package.open(request.package), config, request.cluster or "", work_dir=run.path / "job",
        checkpoint=run.path / "checkpoint",
    )  # fmt: skip


def producer_stage(report: ProducerReport) -> dict[str, Any]:
    """The producer's latency stage (replay send -> Kinesis put, ms) and the gaps it reported."""
    return {
        "send_to_put_ms": LogHistogram.of(report.send_to_put_us).summary_ms(),
        "gaps": [
            {"exchange": ex, "symbol": sym, "last_id": last, "next_id": nxt, "after_reconnect": rc}
            for ex, sym, last, nxt, rc in report.gaps
        ],
    }


def _event_count(tapes: Sequence[Tape]) -> int:
    return sum(sum(t.manifest.rows.values()) for t in tapes)


def capture_outputs(config: Config, *, records_in: int, valid: int, spark: Any = None) -> RunOutputs:
    """The run's alerts, DQ metrics and metric tables, read back from its Iceberg namespace (or, with
    ``storage.format: delta``, its Delta tables, through ``spark``)."""
    from pipeline.sinks.iceberg import load_catalog

    if config.storage.format == "delta":
        from pipeline.sinks.delta import DeltaSink

        delta = DeltaSink(config, spark)

        def scan(table: TableDef) -> pa.Table:
            """The Delta table's rows in its definition's schema; none when the run never created it."""
            exists = Path(delta.path(table.name), "_delta_log").is_dir()
            return table.conform(delta.read(table.name)) if exists else table.schema.empty_table()
    else:
        catalog = load_catalog(config.runtime, config.storage.warehouse_bucket)

        def scan(table: TableDef) -> pa.Table:
            return read_table(catalog, config, table)

    return RunOutputs(
        alerts=scan(ALERTS),
        dq=pl.DataFrame(scan(DQ_METRICS)),
        spread_metrics=pl.DataFrame(scan(SPREAD_METRICS_TABLE)),
        records_in=records_in,
        valid=valid,
        basis_metrics=pl.DataFrame(scan(BASIS_METRICS)),
        flow_metrics=pl.DataFrame(scan(FLOW_METRICS_TABLE)),
        whale_impact=pl.DataFrame(scan(WHALE_IMPACT_TABLE)),
        alpha_scores=pl.DataFrame(scan(ALPHA_SCORES)),
        signals=pl.DataFrame(scan(SIGNALS)),
    )


def read_table(catalog: Any, config: Config, table: TableDef) -> pa.Table:
    """``table``'s rows in the run's namespace of ``catalog``, in its definition's schema; none when the
    run's modules never created it."""
    from pyiceberg.exceptions import NoSuchTableError

    ident = f"{config.storage.namespace}.{table.name}"
    try:
        data: pa.Table = catalog.load_table(ident).scan().to_arrow()
    except NoSuchTableError:
        return table.schema.empty_table()
    except Exception as e:  # pyiceberg's catalogs raise many unrelated types
        raise CoattailError(f"cannot read Iceberg table {ident}: {e}") from e
    return table.conform(data)


def count_dynamodb_alerts(config: Config) -> int:
    """Items in the run's DynamoDB alerts table (each alert must be there exactly once)."""
    from pipeline import aws

    client = aws.client("dynamodb", config.runtime)
    count = 0
    for page in client.get_paginator("scan").paginate(TableName=config.dynamodb.alerts_table, Select="COUNT"):
        count += int(page["Count"])
    return count


def _write_metrics(run: RunDir, batches: list[dict[str, Any]], sent: list[tuple[int, int]]) -> None:
    directory = run.path / "metrics"
    directory.mkdir(exist_ok=True)
    frame = (
        pl.DataFrame(batches) if batches else pl.DataFrame(schema={"t_us": pl.Int64, "records_in": pl.Int64})
    )
    frame.write_parquet(directory / "batches.parquet")
    rows = []
    if sent:
        cumulative = pl.DataFrame({"t_us": [t for t, _ in sent], "total": [n for _, n in sent]})
        rows.append(
            _per_second(cumulative.with_columns(pl.col("total").diff().fill_null(pl.col("total"))), "sent")
        )
    if batches:
        rows.append(_per_second(frame.select("t_us", pl.col("records_in").alias("total")), "processed"))
    throughput = (
        pl.concat(rows)
        if rows
        else pl.DataFrame(schema={"t_us": pl.Int64, "stage": pl.Utf8, "events": pl.Int64})
    )
    throughput.write_parquet(directory / "throughput.parquet")


def _per_second(frame: pl.DataFrame, stage: str) -> pl.DataFrame:
    """Event counts per wall-clock second (``total`` holds the events of each sample)."""
    return (
        frame.with_columns(((pl.col("t_us") // US) * US).alias("t_us"))
        .group_by("t_us")
        .agg(pl.col("total").sum().cast(pl.Int64).alias("events"))
        .with_columns(pl.lit(stage).alias("stage"))
        .select("t_us", "stage", "events")
        .sort("t_us")
    )
