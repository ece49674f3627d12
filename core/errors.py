"""The project's exception hierarchy: one root, specific subclasses, messages that say what to change.

It lives in ``core`` (which imports nothing else of ours), so production code and the harness share it.
"""

from __future__ import annotations


class CoattailError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(CoattailError):
    """A config file, environment variable or argument is wrong; the message names it."""


class SchemaError(CoattailError):
    """An event does not match the event schema or wire format."""


class StackError(CoattailError):
    """The local AWS stack (emulator) could not be started, reached, provisioned or stopped."""


class UnsafeEndpointError(StackError):
    """An AWS endpoint is not local and the explicit opt-in for real AWS was not given."""


class TapeError(CoattailError):
    """A tape directory is missing, corrupt or inconsistent with its manifest."""


class ReaderError(TapeError):
    """A recorded input file cannot be read; carries the file, line and problem."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {problem}")


class ReplayError(CoattailError):
    """The replay engine or one of its targets failed."""


class TargetError(ReplayError):
    """A replay target rejected records beyond its retry budget."""


class ProducerError(CoattailError):
    """The producer (connectors into Kinesis) could not deliver what it accepted."""


class PipelineError(CoattailError):
    """The detector pipeline (source, detectors, sinks) failed."""


class SinkError(PipelineError):
    """A sink could not commit a batch."""


class ValidationFailed(CoattailError):
    """A run's alerts did not match its labels, golden file or reference implementation."""
