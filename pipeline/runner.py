"""``PipelineRunner``: the streaming query (source -> parse -> engine -> router -> sinks) and its batch twin.

Topology (see ``pipeline.engine`` for the per-batch work), by ``spark.keyed_state``::

    readStream.format(coattail-kinesis | coattail-tape)  one partition per shard, parsed on the
      .option("parse", "true")                            executors (PARSED_SCHEMA rows); a small
                                                          Kinesis batch is parsed by the source on
                                                          the driver and handed over whole
      [state_store: pipeline.keyed.keyed_plan]            groupBy key, applyInPandasWithState: the
                                                          engine per key on the executors
      .writeStream.foreachBatch(runner._on_batch          driver: one toArrow(), Engine, AlertRouter
                                | runner._on_keyed_batch) driver: one toArrow() of the per-key
                                                          results, one BatchResult, AlertRouter;
                                                          with Spark's writer only the driver's
                                                          tables come, the executors append the
                                                          rest (pipeline.keyed_writes)
      .option("checkpointLocation", checkpoint / "query")

The small tier runs in driver mode: one Spark action per trigger, no shuffle and no state-store commit
keep its latency floor low, and its state fits one driver. Medium and large run in state-store mode:
each key's detector state lives in Spark's state store (RocksDB) on the executors, next to the key's
rows, so state and per-key work scale out with the cluster; the shuffle and the state-store commit
cost latency per trigger. Both modes run the same ``Engine.run``, route through the same
``AlertRouter`` and give the same tables (tests/pipeline/test_runner_keyed.py).

In driver mode the engine's per-key state lives next to Spark's checkpoint (``checkpoint / "state"``);
in state-store mode it is inside the checkpoint (``checkpoint / "query" / "state"``); a checkpoint is
refused by the other mode. The router's table spool (``checkpoint / "spool"``: Iceberg commits run off
the trigger's critical path, see ``pipeline.router``) is there too, so one ``--checkpoint`` directory
holds everything a restart needs. A fresh checkpoint is refused where the bronze tables already hold
rows: it would read its source from the start and append them again. ``run_batch`` runs the engine
over a batch DataFrame in one call (the batch twin used to check streaming = batch). Parsing inside
the source's ``read`` rather than in a separate ``mapInArrow`` saves one Python worker round trip per
partition and trigger.

``progress`` counts what the driver processed (records in, valid, quarantined, alerts, last batch id)
and what the source reported (per-shard caught-up flags); ``wait_until_idle`` returns once every record
available in the source has been processed, without fixed sleeps beyond a short poll.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from core.errors import PipelineError
from pipeline.config import Config
from pipeline.detectors.registry import ModuleRegistry
from pipeline.engine import BatchResult, Engine
from pipeline.router import AlertRouter
from pipeline.sinks.base import AlertSink, FrameTableSink, TableSink, now_us
from pipeline.source.handover import HandoverFiles
from pipeline.source.offsets import checkpointed_offset
from pipeline.tables import ALERTS, BRONZE, TableDef, schemas_of, tables_for
from pipeline.timing import BatchTiming

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming.query import StreamingQuery

    from pipeline.keyed_writes import KeyedWrites



@dataclass
class Progress:
    """What the pipeline has done so far (a snapshot; ``PipelineRunner.progress`` returns a copy)."""

    records_in: int = 0
    valid: int = 0
    quarantined: int = 0
    alerts: int = 0
    batches: int = 0
    last_batch_id: int | None = None
    shards_caught_up: dict[str, bool] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    """Time spent per stage over all batches: ``collect`` (source read, parse and transfer to the
    driver; in state-store mode also the shuffle and the per-key engine on the executors), ``engine``
    (sequencer and detectors; in state-store mode assembling the per-key results), ``sinks`` (alerts,
    then tables and state), and ``write:<table>`` (part of ``sinks``: each executor-side append,
    ``pipeline.keyed_writes``)."""


class PipelineRunner:
    """Builds and runs the pipeline for one ``Config``.

    ``source``: ``"kinesis"`` (``config.kinesis.stream`` at ``config.runtime``'s endpoint) or a tape
    directory. ``table_sinks`` / ``alert_sinks``: defaults are Iceberg and DynamoDB for the profile.
    ``on_batch``: optional callback with every ``BatchResult`` (after the alert sinks wrote it; its
    ``timing`` set). ``on_commit``: optional callback with the ids of batches whose tables were committed
    to the table sinks and the wall time (µs) of that commit (called on the router's thread).
    ``event_stamps``: when the executors write the bronze tables (``keyed_writes``), still bring the
    events' time stamps to the driver as ``BatchResult.stamps`` (a latency measurement needs them).
    """

    def __init__(
        self,
        config: Config,
        *,
        checkpoint: Path,
        source: str | Path = "kinesis",
        spark: SparkSession | None = None,
        table_sinks: Sequence[TableSink] | None = None,
        alert_sinks: Sequence[AlertSink] | None = None,
        registry: ModuleRegistry | None = None,
        max_records_per_batch: int | None = None,
        on_batch: Callable[[BatchResult], None] | None = None,
        on_commit: Callable[[Sequence[int], int], None] | None = None,
        event_stamps: bool = False,
    ) -> None:
        self.config = config
        self.checkpoint = Path(checkpoint).resolve()
        self.source = source
        self._spark = spark
        self.max_records = max_records_per_batch or config.spark.max_records_per_batch
        self.detectors = (registry or ModuleRegistry()).build(config)
        self.keyed = config.spark.keyed_state == "state_store"
        # state-store mode keeps per-key state in Spark's state store: its driver engine keeps only the
        # asset and global stage's state (pipeline.cross), in a directory of its own
        self.engine = Engine(config, self.detectors,
                             state_dir=self.checkpoint / ("cross-state" if self.keyed else "state"))
        if table_sinks is None:
            from pipeline.sinks.choice import table_sink_for

            table_sinks = [table_sink_for(config, lambda: self.spark)]
        if alert_sinks is None:
            from pipeline.sinks.dynamodb import DynamoAlertSink

            alert_sinks = [DynamoAlertSink(config)]
        self.router = AlertRouter(
            alert_sinks, table_sinks, spool_dir=self.checkpoint / "spool",
            commit_interval_s=config.storage.commit_interval_ms / 1_000, on_commit=on_commit,
        )
        self.keyed_writes: KeyedWrites | None = None
        """State-store mode with table sinks that write DataFrames: the executors write the bronze and
        per-instrument tables (``pipeline.keyed_writes``) and the driver collects only its tables."""
        frame_sinks = [s for s in table_sinks if isinstance(s, FrameTableSink)]
        if self.keyed and frame_sinks and len(frame_sinks) == len(table_sinks):
            from pipeline.keyed_writes import KeyedWrites

            self.keyed_writes = KeyedWrites(frame_sinks, self.tables(), self._driver_tables(), event_stamps)
        self._handover = (
            HandoverFiles(self.checkpoint / "handover") if source == "kinesis" and not self.keyed else None
        )
        """Driver mode: a small batch's rows come from the Kinesis source's planner in a local file,
        not through a Spark job (``pipeline.source.handover``)."""
        self.on_batch = on_batch
        self.query: StreamingQuery | None = None
        self.status_path = self.checkpoint / "source-status.json"
        self._progress = Progress()
        self._lock = threading.Lock()
        self._batch_called = threading.Event()  # the query called the batch function (wait_first_trigger)
        self._writer: str | None = None
        self._quiet = 0
        self._idle_count = -1
        self._opened = False

    # --- session and DataFrames -------------------------------------------------------------------

    @property
    def spark(self) -> SparkSession:
        """The session (built from the config on first use)."""
        if self._spark is None:
            from pipeline.spark import build_session

            self._spark, _ = build_session(self.config, app_name="coattail-pipeline")
        from pipeline.source import register_sources

        register_sources(self._spark)
        return self._spark

    def tables(self) -> tuple[TableDef, ...]:
        """Every table this pipeline writes (``pipeline.tables``)."""
        return tables_for(self.detectors)

    def _driver_tables(self) -> set[str]:
        """The tables state-store mode needs on the driver: the alerts (DynamoDB first), the asset and
        global stage's internal tables and its modules' metric tables (they get rows on the driver)."""
        from pipeline.cross import INTERNAL_TABLES

        cross = {t.name for det in self.engine.cross.detectors for t in det.metric_tables}
        return {ALERTS.name, *INTERNAL_TABLES, *cross}

    def _open(self) -> None:
        if not self._opened:
            self.router.open(self.tables())
            self._opened = True

    def source_stream(self) -> DataFrame:
        """The streaming DataFrame of parsed records (``PARSED_SCHEMA``) from the configured source."""
        reader = (
            self.spark.readStream.option("parse", "true")
            .option("max_records", str(self.max_records))
            .option("driver_read_max_records", str(self.config.spark.driver_read_max_records))
            .option("checkpoint", str(self.checkpoint / "query"))
            .option("status_path", str(self.status_path))
        )
        if self.source == "kinesis":
            runtime = self.config.runtime
            if self._handover is not None:
                folder = str(self._handover.directory)
                reader = reader.option("handover_dir", folder).option("read_ahead", "true")
            return (
                reader.format("coattail-kinesis")
                .option("stream", self.config.kinesis.stream)
                .option("runtime", runtime.model_dump_json())
                .load()
            )
        return reader.format("coattail-tape").load(str(self.source))

    def stream(self) -> DataFrame:
        """What the foreachBatch receives: the parsed records (driver mode) or the per-key results of
        ``pipeline.keyed`` (state-store mode). Refuses a checkpoint the other mode wrote: its detector
        state would be silently missing."""
        spark_state = self.checkpoint / "query" / "state"
        if self.keyed and Engine.holds_state(self.checkpoint / "state"):
            raise PipelineError(
                f"{self.checkpoint} holds driver-mode engine state but spark.keyed_state is state_store: "
                "use a fresh --checkpoint directory (or keyed_state: driver)"
            )
        if not self.keyed and spark_state.exists():
            raise PipelineError(
                f"{self.checkpoint} holds state-store detector state but spark.keyed_state is driver: "
                "use a fresh --checkpoint directory (or keyed_state: state_store)"
            )
        if not self.keyed:
            return self.source_stream()
        from pipeline.keyed import keyed_plan

        return keyed_plan(self.source_stream(), self.config, self.detectors)

    def tape_batch(self, path: Path) -> DataFrame:
        """A whole tape as one batch DataFrame of parsed records (for ``run_batch``)."""
        return self.spark.read.format("coattail-tape").option("parse", "true").load(str(path))

    # --- streaming --------------------------------------------------------------------------------

    def start(self) -> StreamingQuery:
        """Start the streaming query (resuming from the checkpoint when it has one).

        When starting fails, whatever was opened (sinks, the table-sink thread, connection pools) is
        closed again before the error propagates.
        """
        if self.query is not None:
            raise PipelineError("the pipeline is already running")
        try:
            self._open()
            if not (self.checkpoint / "query" / "metadata").exists():
                self._refuse_written_bronze()
            self.status_path.unlink(missing_ok=True)  # a status from an earlier run says nothing now
            on_batch = self._on_keyed_batch if self.keyed else self._on_batch
            writer = self.stream().writeStream.foreachBatch(on_batch)
            writer = writer.option("checkpointLocation", str(self.checkpoint / "query"))
            if interval := self.config.spark.trigger_interval_ms:
                writer = writer.trigger(processingTime=f"{interval} milliseconds")
            self.query = writer.queryName(f"coattail-{self.config.tier}").start()
        except BaseException as e:
            try:
                self.stop()
            except Exception as cleanup:  # the start-up error is the one to report
                e.add_note(f"closing the sinks afterwards failed too: {cleanup}")
            raise
        return self.query

    def _refuse_written_bronze(self) -> None:
        """A fresh checkpoint reads its source from the start: into bronze tables that already hold
        rows it would append every event a second time (another writer's batch ids do not stop it)."""
        for sink in self.router.table_sinks:
            for table in (t.name for t in BRONZE.values()):
                writers = sink.writers(table)
                if writers:
                    raise PipelineError(
                        f"{sink.where(table)} already holds bronze rows (written by "
                        f"{', '.join(sorted(writers))}) "
                        f"and the checkpoint {self.checkpoint} is fresh: reading the source from its start "
                        "would append every event again. Resume with the checkpoint that wrote them, or "
                        "write to another namespace (--set storage.namespace=NAME)"
                    )

    def _writer_id(self) -> str:
        if self._writer is None:
            meta = self.checkpoint / "query" / "metadata"
            self._writer = "query:" + json.loads(meta.read_text())["id"]
        return self._writer

    def _on_batch(self, df: DataFrame, batch_id: int) -> None:
        self._batch_called.set()
        with self.router.trigger():
            started = now_us()
            table = self._handed_over(batch_id)
            if table is None:
                table = df.toArrow()
            self._process(table, batch_id, self._writer_id(), started, now_us(), table.nbytes)

    def _handed_over(self, batch_id: int) -> pa.Table | None:
        """The rows of a small batch the source parsed while planning it (``HandoverFiles``), without a
        Spark job; None when it handed none over (a big batch, a restart's re-run)."""
        if self._handover is None:
            return None
        end = checkpointed_offset(self.checkpoint / "query", batch_id)
        return None if end is None else self._handover.take(end)

    def _on_keyed_batch(self, df: DataFrame, batch_id: int) -> None:
        """foreachBatch of state-store mode: one action runs the keyed step on the executors and brings
        its per-key results here; they become one ``BatchResult`` for the same router and sinks.

        With ``keyed_writes`` the output is persisted, that action brings only the driver's tables, and
        after the alerts are routed one more action per non-empty table appends it from the executors."""
        with self.router.trigger():
            self._keyed_batch(df, batch_id)

    def _keyed_batch(self, df: DataFrame, batch_id: int) -> None:
        from pipeline.cross import INTERNAL_SCHEMAS
        from pipeline.keyed import assemble
        from pipeline.keyed_writes import STAMPS_SCHEMA

        started = now_us()
        self._batch_called.set()
        schemas = {**schemas_of(self.tables()), **INTERNAL_SCHEMAS}
        commit = self.engine.commit if self.engine.cross.active else None
        writes, writer = self.keyed_writes, self._writer_id()
        if writes is None:
            output = df.toArrow()
            collected = now_us()
            result = self.engine.process_assembled(assemble(output, batch_id, schemas))
            self._deliver(result, writer, commit, (started, collected, now_us()), output.nbytes)
            return
        df.persist()  # every action below reads the keyed step's output once computed
        try:
            output = writes.collect(df)
            collected = now_us()
            assembled = assemble(output, batch_id, schemas, elsewhere=writes.executor_tables)
            if writes.stamped and assembled.stamps is None:  # a batch without events (Spark runs some)
                assembled.stamps = STAMPS_SCHEMA.empty_table()
            result = self.engine.process_assembled(assembled)

            def write_tables(batch: int) -> Mapping[str, int]:
                spent = writes.write(df, output, batch, writer)
                if commit is not None:  # the cross state follows the tables it fed
                    commit(batch)
                return spent

            self._deliver(result, writer, write_tables, (started, collected, now_us()), output.nbytes)
        finally:
            df.unpersist()

    def _add_stage(self, stage: str, seconds: float) -> None:
        with self._lock:
            stages = self._progress.stage_seconds
            stages[stage] = stages.get(stage, 0.0) + seconds

    def process(self, parsed: pa.Table, batch_id: int, writer: str) -> BatchResult:
        """Engine + router + state commit for one parsed batch (the body of every driver-mode batch)."""
        started = now_us()
        return self._process(parsed, batch_id, writer, started, started)

    def _process(
        self, parsed: pa.Table, batch_id: int, writer: str, started_us: int, collected_us: int,
        collected_bytes: int = 0,
    ) -> BatchResult:
        result = self.engine.process(parsed, batch_id)
        return self._deliver(result, writer, self.engine.commit, (started_us, collected_us, now_us()),
                             collected_bytes)

    def _deliver(
        self,
        result: BatchResult,
        writer: str,
        after_sinks: Callable[[int], Mapping[str, int] | None] | None,
        stamps: tuple[int, int, int],
        collected_bytes: int = 0,
    ) -> BatchResult:
        """Router and sinks for one batch's result, then ``after_sinks(batch_id)`` (which may return the
        wall µs of Spark actions it ran, by name), callback, progress.

        ``stamps``: when the batch started, was collected and had its results (wall µs)."""
        started, collected, results = stamps
        self.router.route(result, writer)
        actions = (after_sinks(result.batch_id) if after_sinks is not None else None) or {}
        routed = now_us()
        result.timing = BatchTiming(result.batch_id, started, collected, results, routed,
                                    collected_bytes, dict(actions))
        for stage, seconds in (("collect", collected - started), ("engine", results - collected),
                               ("sinks", routed - results), *actions.items()):
            self._add_stage(stage, seconds / 1e6)
        if self.on_batch is not None:
            # before the counters: a failing callback fails the batch, and whoever waits for the count
            # finds the failed query instead of a finished run
            self.on_batch(result)
        with self._lock:
            p = self._progress
            p.records_in += result.records_in
            p.valid += result.valid
            p.quarantined += result.quarantined
            p.alerts += result.alerts.num_rows
            p.batches += 1
            p.last_batch_id = result.batch_id
        return result

    @property
    def progress(self) -> Progress:
        """A copy of the counters, with the source's latest per-shard status."""
        status = self.status_path
        shards: dict[str, bool] = {}
        if status.exists():
            try:
                shards = json.loads(status.read_text()).get("shards", {})
            except ValueError:
                shards = {}
        with self._lock:
            return replace(self._progress, shards_caught_up=shards,
                           stage_seconds=dict(self._progress.stage_seconds))

    def check_alive(self) -> StreamingQuery:
        """The running query; raise ``PipelineError`` when the query failed or stopped."""
        query = self.query
        if query is None:
            raise PipelineError("the pipeline is not running")
        error = query.exception()
        if error is not None:
            raise PipelineError(f"the streaming query failed: {_cause(error)}")
        if not query.isActive:
            raise PipelineError("the streaming query stopped")
        return query

    def wait_first_trigger(self, timeout: float = 300.0, poll: float = 0.05) -> None:
        """Block until the query's first trigger (Spark runs one at start, with or without records) has
        planned its batch and called the batch function, or is over: it pays for the first use of the
        source's planner, the batch function and the sinks' clients, so a caller that holds its records
        back until then has them read by a warm pipeline. Its batch's offsets are fixed by then: records
        sent from then on go to the next batch, which starts as this one ends (waiting for its end, its
        offsets' commit and its progress report took 0.15-0.7 s more of a run's cold start). The
        batch function's call ends the wait at once; every ``poll`` s between, the query is asked over
        py4j whether it still runs, which takes CPU from the trigger it waits for."""
        deadline = time.monotonic() + timeout
        while not self._batch_called.wait(poll) and self.check_alive().lastProgress is None:
            if time.monotonic() > deadline:
                raise PipelineError(f"the streaming query finished no trigger within {timeout:.0f} s")
        self.check_alive()

    def poll_idle(self, expected: int | None = None) -> bool:
        """One non-blocking check: True once the source had nothing new, no trigger ran and no table
        write was pending for three consecutive polls with an unchanged count (and at least
        ``expected`` records were processed).

        Raises ``PipelineError`` when the query died, ``SinkError`` when a background table commit failed.
        """
        status = self.check_alive().status
        self.router.check()
        progress = self.progress
        idle = not status["isDataAvailable"] and not status["isTriggerActive"]
        caught_up = bool(progress.shards_caught_up) and all(progress.shards_caught_up.values())
        enough = expected is None or progress.records_in >= expected
        flushed = self.router.pending() == 0
        if idle and caught_up and enough and flushed and progress.records_in == self._idle_count:
            self._quiet += 1
        else:
            self._quiet = 0
        self._idle_count = progress.records_in
        return self._quiet >= 3

    def wait_until_idle(
        self, timeout: float = 600.0, poll: float = 0.2, expected: int | None = None
    ) -> Progress:
        """Block until ``poll_idle`` holds: every record available in the source went through the sinks."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.poll_idle(expected):
                return self.progress
            time.sleep(poll)
        done = self.progress.records_in
        raise PipelineError(f"the pipeline did not go idle within {timeout:.0f} s ({done} records processed)")

    def stop(self) -> None:
        """Stop the query and close the sinks."""
        if self.query is not None:
            self.query.stop()
            self.query = None
        if self._opened:
            self.router.close()
            self._opened = False

    def run(self, until_idle: bool = False, timeout: float | None = None) -> Progress:
        """Start; then wait until idle (``until_idle``) or until the query ends; always stop."""
        query = self.start()
        try:
            if until_idle:
                return self.wait_until_idle(timeout=timeout or 24 * 3600.0)
            query.awaitTermination(None if timeout is None else int(timeout))
            self.check_alive()
            return self.progress
        finally:
            self.stop()

    # --- batch ------------------------------------------------------------------------------------

    def run_batch(self, parsed: DataFrame, writer: str = "batch") -> BatchResult:
        """The same engine over a whole batch DataFrame of parsed records, in one call (batch id 0)."""
        self._open()
        result = self.process(parsed.toArrow(), 0, writer)
        self.router.flush()
        return result


def batch_record(result: BatchResult) -> dict[str, int]:
    """One routed micro-batch's counts and stamps (``BatchTiming``; ``t_us`` = when it was routed): a run's
    ``metrics/batches``, and the packaged job's report of them (``pipeline.jobs.streaming``)."""
    if result.timing is None:
        raise PipelineError(f"batch {result.batch_id} has no timing: the runner stamps every routed batch")
    return {
        **result.timing.to_dict(),
        "t_us": result.timing.routed_us,
        "records_in": result.records_in,
        "valid": result.valid,
        "quarantined": result.quarantined,
        "alerts": result.alerts.num_rows,
    }


def _cause(error: Any) -> str:
    """The line of a query failure a user should read: our own error (the last one raised, after any
    botocore or Py4J text it wraps), else the first line that looks like one, else the Python error a
    traceback ends with."""
    text = str(error.desc if hasattr(error, "desc") else error)
    ours = [line.split("core.errors.", 1)[1] for line in text.splitlines() if "core.errors." in line]
    if ours:
        return ours[-1].strip()
    lines = text.splitlines()
    for line in lines:
        if "Error" in line and ("pipeline" in line or "Coattail" in line or "Sink" in line):
            return line.strip()
    for i, line in enumerate(lines):
        if line.endswith("Traceback (most recent call last):"):
            # a Python error inside the batch function: its own line ends the traceback's frames
            raised = next((t for t in lines[i + 1:] if t and not t[0].isspace()), None)
            if raised is not None:
                return raised.strip()
    return lines[0] if lines else repr(error)
