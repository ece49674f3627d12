"""The run's Spark session, started on a thread of its own while the stack comes up and provisions.

Starting a local session (a JVM, Spark's jars, the Python gateway) is the longest step before a run's
first micro-batch, and it needs nothing from the stack: its settings come from the tier's config alone
(``pipeline.spark.build_session``), the endpoint only reaches the source and the sinks later. So the run
starts it first, brings the stack up meanwhile, and takes the session when the pipeline starts. The
thread also registers the sources and starts Spark's Python worker daemon with a one-row job, so the
first batch read on the executors does not pay for it either.

A failure on the thread is raised where the session is taken (``SessionStart.session``), as the same
exception a session started in line would have raised; a run that fails before then stops the session
it no longer needs (``SessionStart.discard``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pyarrow as pa

from pipeline.config import Config

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

APP_NAME = "coattail-pipeline"


def _identity(batches: Iterable[pa.RecordBatch]) -> Iterable[pa.RecordBatch]:
    return batches


def warm_python_workers(spark: SparkSession) -> None:
    """Start Spark's Python worker daemon (and one worker, which Spark reuses) with a one-row job."""
    spark.range(1).mapInArrow(_identity, "id long").collect()


class SessionStart:
    """``config``'s local session, being built on a daemon thread from the moment this is made."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._session: SparkSession | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._start, name="coattail-session-start", daemon=True)
        self._thread.start()

    def _start(self) -> None:
        from pipeline.source import register_sources
        from pipeline.spark import build_session

        try:
            session, _ = build_session(self.config, app_name=APP_NAME)
            register_sources(session)
            warm_python_workers(session)
            self._session = session
        except BaseException as e:  # raised again where the session is taken
            self._error = e

    def session(self) -> SparkSession:
        """The started session (waits for it); raises what starting it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._session is not None, "the thread sets the session or the error"
        return self._session

    def discard(self) -> None:
        """Stop the session, waiting for its start if need be: the run is done with Spark, or ended
        before it took the session."""
        self._thread.join()
        if self._session is not None:
            self._session.stop()
