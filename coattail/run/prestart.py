"""The run's Spark session, started on a thread of its own while the stack comes up and provisions.

Starting a local session (a JVM, Spark's jars, the Python gateway) is the longest step before a run's
first micro-batch, and it needs nothing from the stack: its settings come from the tier's config alone
(``pipeline.spark.build_session``), the endpoint only reaches the source and the sinks later. So the run
starts it first, brings the stack up meanwhile, and takes the session when the pipeline starts. The
thread also registers the sources, then, once the session is handed over, starts Spark's Python worker
daemon with a one-row job while the query starts: the first batch read on the executors does not pay
for it, and the query's start does not wait for it (a driver-mode batch small enough to be handed over
by the source needs no executor Python at all).

A failure to start the session is raised where the session is taken (``SessionStart.session``), as the
same exception a session started in line would have raised; a run that fails before then stops the
session it no longer needs (``SessionStart.discard``). The warm-up job is an optimisation: should it
fail, the query's first task fails the same way and the run reports that.

When ``coattail up --warm-driver`` keeps a driver that fits the run, the session is a new one on that
driver instead (``coattail.run.warm_driver``), already warm; ``discard`` then leaves the driver running.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from coattail.run.warm_driver import Attached, attach
from pipeline.config import Config

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

APP_NAME = "coattail-pipeline"


class SessionStart:
    """``config``'s local session, being built on a daemon thread from the moment this is made.

    ``on_attached`` is called with the warm driver's JVM pid when the session is on one; ``note`` then
    says nothing, else why the run did not attach (empty when no warm driver is recorded)."""

    def __init__(self, config: Config, on_attached: Callable[[int], None] | None = None) -> None:
        self.config = config
        self.on_attached = on_attached
        self.attached: Attached | None = None
        self.note = ""
        self._session: SparkSession | None = None
        self._error: BaseException | None = None
        self._owned = True
        self._built = threading.Event()
        self._thread = threading.Thread(target=self._start, name="coattail-session-start", daemon=True)
        self._thread.start()

    def _start(self) -> None:
        from pyspark import SparkContext

        from pipeline.source import register_sources
        from pipeline.spark import build_session, warm_python_workers

        try:
            running = SparkContext._active_spark_context
            warm = attach(self.config) if running is None else ""
            if isinstance(warm, str):
                self.note = warm
                session, _ = build_session(self.config, app_name=APP_NAME)
                # a session this process already ran (a notebook's, a test session's) is what
                # getOrCreate gives back: it is its owner's to stop, not this run's
                self._owned = running is None or getattr(session, "sparkContext", None) is not running
                register_sources(session)
            else:
                # the keeper registered the sources: a new session of its driver has them already (and
                # may not register them again)
                self.attached, session, self._owned = warm, warm.session, False
                if self.on_attached is not None:
                    self.on_attached(warm.driver.jvm_pid)
            self._session = session
        except BaseException as e:  # raised again where the session is taken
            self._error = e
            return
        finally:
            self._built.set()
        if self.attached is not None:
            return  # the warm driver's keeper warmed it
        # an optimisation only: a failure here recurs in the query's first task, which reports it
        with contextlib.suppress(Exception):
            warm_python_workers(session)

    def session(self) -> SparkSession:
        """The started session (waits for it, not for the warm-up job); raises what starting it raised."""
        self._built.wait()
        if self._error is not None:
            raise self._error
        assert self._session is not None, "the thread sets the session or the error"
        return self._session

    def discard(self) -> None:
        """Stop the session this started and end its JVM, waiting for its start if need be: the run is
        done with Spark, or ended before it took the session. A session that was running before is left
        running, and so is a warm driver's (the next run may take it)."""
        self._thread.join()
        session, self._session = self._session, None  # stopped once: its JVM is gone after that
        if session is not None and self._owned:
            from pipeline.spark import stop_session

            stop_session(session)
        attached, self.attached = self.attached, None
        if attached is not None:
            attached.release()
