"""The packaged job submitted to a Spark standalone master with ``spark-submit``, and followed until done.

What runs is the package (``infra.package``): the driver runs ``main.py`` with the packed environment's
Python and the executors unpack ``env.tar.gz`` (``--archives ...#environment``) and run theirs, so
nothing of the project's virtual environment takes part; pyspark comes from Spark's installation, as on
EMR. The settings are EMR's (``pipeline.spark.session_conf``, ``catalog_conf``) with this machine's
parts: our Maven-installed jars in place of EMR's bundled ones, the tier's local shuffle partitions, a
driver bound where the workers reach it, checkpoints on the local file system.

The job reports through files (``pipeline.jobs.streaming``): ``ClusterJob`` reads its progress, asks it
to stop cleanly and turns a failure into a ``PipelineError`` naming the job's own error.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

from core.errors import PipelineError
from infra.cluster import spark_environment
from infra.package import Package
from infra.processes import terminate
from pipeline import emr_job
from pipeline.config import Config
from pipeline.jars import installed_jars
from pipeline.jobs import streaming
from pipeline.runner import Progress
from pipeline.spark import LOCAL_CHECKPOINT_MANAGER, catalog_conf, driver_host, session_conf
from pipeline.spark_home import installed_pyspark

SUBMIT_LOG = "spark-submit.log"
STOP_TIMEOUT_S = 180.0
START_TIMEOUT_S = 300.0


def cluster_conf(config: Config, master: str) -> dict[str, str]:
    """The job's Spark settings on a standalone cluster of this machine (see the module docstring)."""
    jars = installed_jars()
    if not jars:
        raise PipelineError(
            "Spark's jars are not installed (.cache/jars): run `make jars`; on a cluster they are passed "
            "to the job explicitly, as EMR brings its own"
        )
    host = driver_host(master)
    return (
        session_conf(config, shuffle_partitions=config.spark.local.shuffle_partitions)
        | catalog_conf(config)
        | {
            # the driver's working directory holds the unpacked archive too, so one relative path
            # names the packed interpreter for the driver and for every executor
            "spark.pyspark.python": emr_job.ENV_PYTHON,
            "spark.driver.host": host,
            "spark.driver.bindAddress": host,
            "spark.driver.memory": config.spark.local.driver_memory,
            "spark.jars": ",".join(str(j) for j in jars),
            "spark.sql.streaming.checkpointFileManagerClass": LOCAL_CHECKPOINT_MANAGER,
            "spark.ui.enabled": "false",
        }
    )


def driver_environment(package: Package, cache: Path) -> Path:
    """A directory holding the package's archive unpacked as ``environment`` (once per archive), where
    the driver runs: spark-submit in client mode starts the driver's Python on this machine."""
    home = cache / package.archive_sha256[:16]
    if not (home / emr_job.ENV_DIR / "bin" / "python").exists():
        staging = cache / f".{package.archive_sha256[:16]}.unpacking"
        target = staging / emr_job.ENV_DIR
        target.mkdir(parents=True, exist_ok=True)
        try:
            with tarfile.open(package.archive) as archive:
                archive.extractall(target, filter="tar")  # ours; the interpreter is an absolute symlink
        except (OSError, tarfile.TarError) as e:
            raise PipelineError(f"cannot unpack {package.archive}: {e}; build the package again") from e
        staging.replace(home)
    return home


class ClusterJob:
    """One submission of the package to ``master``: start, follow, stop.

    ``work_dir`` gets the job's config and runtime files, its reports and spark-submit's log.
    """

    def __init__(
        self,
        package: Package,
        config: Config,
        master: str,
        *,
        work_dir: Path,
        checkpoint: Path,
        source: str | Path = "kinesis",
        until_idle: bool = False,
    ) -> None:
        self.package = package
        # the driver runs elsewhere than this process: every path it is given must be absolute
        runtime = config.runtime.model_copy(update={"state_dir": Path(config.runtime.state_dir).resolve()})
        self.config = config.model_copy(update={"runtime": runtime})
        self.master = master
        self.work_dir = work_dir.resolve()
        self.report_dir = self.work_dir / "report"
        self.checkpoint = checkpoint.resolve()
        self.source = source if source == "kinesis" else str(Path(source).resolve())
        self.until_idle = until_idle
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        """spark-submit's output (the driver's and Spark's messages)."""
        return self.work_dir / SUBMIT_LOG

    def command(self) -> list[str]:
        """The spark-submit command line."""
        config_file, runtime_file = self.work_dir / "config.json", self.work_dir / "runtime.json"
        options = emr_job.submit_arguments(
            cluster_conf(self.config, self.master), archive=str(self.package.archive), files=[]
        )
        arguments = [
            *emr_job.entry_point_arguments(checkpoint=str(self.checkpoint), config=str(config_file),
                                           runtime=["--runtime", str(runtime_file)]),
            "--source", str(self.source), "--report-dir", str(self.report_dir),
            *(["--until-idle"] if self.until_idle else []),
        ]  # fmt: skip
        return [str(installed_pyspark() / "bin" / "spark-submit"), "--master", self.master,
                "--deploy-mode", "client", "--name", f"coattail-{self.config.tier}", *options,
                str(self.package.entry_point), *arguments]  # fmt: skip

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Write the job's files, start spark-submit (detached from the terminal's Ctrl-C) and wait until
        the job's streaming query runs (its executors have unpacked the environment by then)."""
        if self.process is not None:
            raise PipelineError("the job was submitted already")
        self.report_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.report_dir.iterdir():
            stale.unlink()
        (self.work_dir / "config.json").write_text(self.config.model_dump_json(exclude={"runtime"}))
        (self.work_dir / "runtime.json").write_text(self.config.runtime.model_dump_json())
        cwd = driver_environment(self.package, Path(self.config.runtime.state_dir) / "cluster" / "drivers")
        command = self.command()
        with self.log_file.open("ab") as log:
            try:
                self.process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env=spark_environment(), cwd=cwd, start_new_session=True,
                )  # fmt: skip
            except OSError as e:
                raise PipelineError(f"cannot run spark-submit ({command[0]}): {e}") from e
        deadline = time.monotonic() + timeout_s
        while self._report().get("state") != "running":
            if self.ended():
                raise PipelineError(f"the job on {self.master} ended before it ran (log {self.log_file})")
            if time.monotonic() > deadline:
                self.stop()
                raise PipelineError(
                    f"the job on {self.master} was not running within {timeout_s:.0f} s and was stopped; "
                    f"log {self.log_file}"
                )
            time.sleep(0.2)

    def _report(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.report_dir / streaming.PROGRESS_FILE).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data

    @property
    def progress(self) -> Progress:
        """The job's totals as it last reported them."""
        report = self._report()
        def count(key: str) -> int:
            return int(report.get(key, 0))

        return Progress(records_in=count("records_in"), valid=count("valid"),
                        quarantined=count("quarantined"), alerts=count("alerts"),
                        batches=count("batches"))  # fmt: skip

    def check_alive(self) -> None:
        """Raise ``PipelineError`` when the job has ended (with its own error when it reported one)."""
        if self.ended():
            raise PipelineError(f"the job on {self.master} ended (log {self.log_file})")

    def ended(self) -> bool:
        """Whether the job has ended cleanly (stopped, or idle with ``until_idle``); ``PipelineError``
        when it failed."""
        if self.process is None:
            raise PipelineError("the job was not submitted")
        code = self.process.poll()
        if code is not None and code != 0:
            raise PipelineError(self._ended(code))
        return code is not None

    def _ended(self, code: int) -> str:
        report = self._report()
        if report.get("error"):
            return f"the job on {self.master} failed: {report['error']} (log {self.log_file})"
        tail = " | ".join(self.log_file.read_text(errors="replace").strip().splitlines()[-5:])
        return f"the job on {self.master} ended with exit status {code}; log {self.log_file}: {tail}"

    def wait(self, timeout_s: float | None = None) -> Progress:
        """Wait for the job to end by itself (``until_idle``); its final progress, or ``PipelineError``."""
        if self.process is None:
            raise PipelineError("the job was not submitted")
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired as e:
            raise PipelineError(f"the job on {self.master} did not end within {timeout_s:.0f} s") from e
        if code != 0:
            raise PipelineError(self._ended(code))
        return self.progress

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> Progress:
        """Ask the job to stop cleanly (it commits what is spooled), wait, and return its final progress;
        a job that does not end in ``timeout_s`` is terminated and reported."""
        if self.process is None:
            return self.progress
        (self.report_dir / streaming.STOP_FILE).touch()
        deadline = time.monotonic() + timeout_s
        while self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.process.poll() is None:
            terminate(self.process.pid)
            raise PipelineError(
                f"the job on {self.master} did not stop within {timeout_s:.0f} s and was killed"
            )
        code = self.process.returncode
        if code != 0:
            raise PipelineError(self._ended(code))
        return self.progress

    def batches(self) -> list[dict[str, Any]]:
        """One record per micro-batch the job committed."""
        path = self.report_dir / streaming.BATCHES_FILE
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def query_progress(self) -> list[Any]:
        """Spark's per-trigger figures, written by the job when it stopped."""
        path = self.report_dir / streaming.QUERY_PROGRESS_FILE
        data: list[Any] = json.loads(path.read_text()) if path.exists() else []
        return data
