"""The streaming pipeline as ``spark-submit`` runs it, on EMR Serverless or a Spark standalone cluster.

The package's ``main.py`` (``pipeline.emr_job``) calls ``main``. The job reads its resolved tier config
from ``--config`` (JSON, as ``coattail package`` writes it; a bare file name is looked up among the
files spark-submit shipped), starts ``PipelineRunner`` in the session spark-submit made, and runs
until stopped. A submission may set the keyed-state mode (``spark.coattail.keyedState``) over the
config's. How it reaches AWS comes only from its arguments: ``--runtime FILE`` (a local stack's
``RuntimeSettings``, never with real AWS) or ``--profile aws --allow-real-aws``.

With ``--report-dir DIR`` it reports to whoever submitted it: ``DIR/batches.jsonl`` (one line per
micro-batch), ``DIR/progress.json`` (totals, rewritten after every batch and at the end, with
``state`` ``running`` | ``stopped`` | ``failed`` and the error) and, at the end,
``DIR/query_progress.json`` (Spark's per-trigger figures). It stops cleanly (every spooled table
committed) once ``DIR/stop`` exists, or with ``--until-idle`` once every record of the source went
through the sinks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import CoattailError, ConfigError
from pipeline.config import Config, RuntimeSettings
from pipeline.engine import BatchResult
from pipeline.runner import PipelineRunner, batch_record
from pipeline.spark import KEYED_STATE_CONF, submitted_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

STOP_FILE = "stop"
PROGRESS_FILE = "progress.json"
BATCHES_FILE = "batches.jsonl"
QUERY_PROGRESS_FILE = "query_progress.json"
POLL_S = 0.2
TRIGGER_END_WAIT_S = 30.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The job's command line (``pipeline.emr_job.entry_point_arguments`` writes it)."""
    parser = argparse.ArgumentParser(prog="coattail-job", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the resolved tier config (JSON)")
    parser.add_argument("--checkpoint", required=True, type=Path, help="checkpoint directory")
    parser.add_argument("--source", default="kinesis", help="kinesis, or a tape directory")
    parser.add_argument("--runtime", type=Path, help="RuntimeSettings (JSON) of a local stack")
    parser.add_argument("--profile", choices=("lite", "mirror", "aws"), help="without --runtime")
    parser.add_argument("--allow-real-aws", action="store_true", help="with --profile aws")
    parser.add_argument("--until-idle", action="store_true", help="stop once the source is consumed")
    parser.add_argument("--report-dir", type=Path, help="where progress goes and the stop file is looked for")
    return parser.parse_args(argv)


def _config_path(name: str) -> Path:
    path = Path(name)
    if path.is_file():
        return path
    from pyspark import SparkFiles

    shipped = Path(SparkFiles.get(name))
    if shipped.is_file():
        return shipped
    raise ConfigError(f"the job's config {name} is neither a file nor among the files spark-submit shipped")


def _runtime(args: argparse.Namespace) -> RuntimeSettings:
    """Where AWS is: a local stack's settings, or a profile; real AWS only by the explicit flag."""
    if args.runtime is not None:
        runtime = RuntimeSettings.model_validate_json(args.runtime.read_text())
        if runtime.allow_real_aws:
            raise ConfigError(f"{args.runtime}: allow_real_aws is refused in a file; pass --allow-real-aws")
        return runtime
    return RuntimeSettings(profile=args.profile or "lite", allow_real_aws=args.allow_real_aws)


def load_job_config(args: argparse.Namespace, keyed_state: str | None) -> Config:
    """The config file's tier with the job's runtime and, when the submission set one, its keyed mode."""
    path = _config_path(args.config)
    try:
        config = Config.model_validate(json.loads(path.read_text()))
    except ValueError as e:
        raise ConfigError(f"{path} is not a resolved tier config: {e}") from e
    update: dict[str, Any] = {"runtime": _runtime(args)}
    if keyed_state:
        try:
            spark = {**config.spark.model_dump(), "keyed_state": keyed_state}
            update["spark"] = config.spark.model_validate(spark)
        except ValueError as e:
            raise ConfigError(
                f"{KEYED_STATE_CONF}={keyed_state}: the keyed-state mode is driver or state_store"
            ) from e
    return config.model_copy(update=update)


class Reporter:
    """Writes the job's progress files into ``--report-dir`` (nothing without one)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, data: Any) -> None:
        """Replace ``name`` atomically, so a reader never sees half a file."""
        if self.directory is None:
            return
        tmp = self.directory / f".{name}.tmp"
        tmp.write_text(json.dumps(data))
        tmp.replace(self.directory / name)

    def append_batch(self, result: BatchResult) -> None:
        """One line per committed micro-batch."""
        if self.directory is None:
            return
        with (self.directory / BATCHES_FILE).open("a") as f:
            f.write(json.dumps(batch_record(result)) + "\n")

    def stop_requested(self) -> bool:
        """Whether the submitter asked for a clean stop."""
        return self.directory is not None and (self.directory / STOP_FILE).exists()


def _interpreter(_: object) -> tuple[str, str]:
    import pipeline

    return sys.executable, pipeline.__file__ or ""


def where_it_runs(spark: SparkSession) -> dict[str, Any]:
    """The Python and the copy of ``pipeline`` that the driver and the executors run: a submitter's
    evidence that the package ran, not some checkout (one small Spark job, at start-up only)."""
    parallelism = spark.sparkContext.defaultParallelism
    executors = spark.sparkContext.parallelize(range(parallelism), parallelism).map(_interpreter).collect()
    driver = _interpreter(None)
    return {
        "driver": {"python": driver[0], "pipeline": driver[1]},
        "executors": [{"python": p, "pipeline": m} for p, m in sorted(set(executors))],
    }


def run(args: argparse.Namespace) -> None:
    """Run the job until it is stopped, idle (``--until-idle``) or fails."""
    reporter = Reporter(args.report_dir)
    spark = submitted_session("coattail-job")
    config = load_job_config(args, spark.conf.get(KEYED_STATE_CONF, None))
    where = where_it_runs(spark) if reporter.directory is not None else None

    def progress(state: str, error: str | None = None) -> None:
        totals = runner.progress
        reporter.write(PROGRESS_FILE, {
            "state": state, "error": error, "pid": os.getpid(), "tier": config.tier,
            "keyed_state": config.spark.keyed_state, "where": where, "records_in": totals.records_in,
            "valid": totals.valid, "quarantined": totals.quarantined, "alerts": totals.alerts,
            "batches": totals.batches,
        })  # fmt: skip

    def on_batch(result: BatchResult) -> None:
        reporter.append_batch(result)

    source: str | Path = "kinesis" if args.source == "kinesis" else Path(args.source)
    runner = PipelineRunner(config, checkpoint=args.checkpoint, source=source, spark=spark, on_batch=on_batch)
    try:
        runner.start()
        progress("running")
        reported = 0
        while not reporter.stop_requested() and not (args.until_idle and runner.poll_idle()):
            runner.check_alive()
            # the runner counts a batch once its callback returned: report the counts from here
            if runner.progress.batches != reported:
                reported = runner.progress.batches
                progress("running")
            time.sleep(POLL_S)
        query = runner.query
        if query is not None:
            # the submitter asks for a stop once a batch is committed, while its trigger still closes:
            # let it finish, so its figures are among Spark's
            deadline = time.monotonic() + TRIGGER_END_WAIT_S
            while query.status["isTriggerActive"] and time.monotonic() < deadline:
                time.sleep(POLL_S)
            reporter.write(QUERY_PROGRESS_FILE, [json.loads(p.json) for p in query.recentProgress])
        runner.stop()
    except CoattailError as e:
        try:
            runner.stop()
        finally:
            progress("failed", str(e))
        raise
    progress("stopped")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the packaged job: run it; a failure is one line on stderr and exit status 1."""
    args = parse_args(argv)
    try:
        run(args)
    except CoattailError as e:
        print(f"coattail job: error: {e}", file=sys.stderr)
        sys.exit(1)
