"""Finding the running stack: one policy for every command and for the run.

The endpoint all services share comes from the first of:

1. ``--endpoint URL`` on the command line;
2. the environment, ``COATTAIL_AWS_ENDPOINT`` (read into ``RuntimeSettings.aws_endpoint`` by the config
   loader), or the ``aws`` profile, which means real AWS (no endpoint; ``pipeline.aws``'s guard decides
   whether it may be reached);
3. the healthy stack that ``coattail up`` recorded in the state dir's ``stack.json``;
4. none of them: an error that says to run ``coattail up``. (``infra.stack.ensure_up``, for a whole run,
   starts a stack there instead.)

A per-service endpoint from the environment (``COATTAIL_KINESIS_ENDPOINT`` ...) overrides the one
``stack.json`` recorded for that service (kinesis-mock's), whichever level gave the shared endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.errors import StackError
from pipeline.config import Config, RuntimeSettings

Level = Literal["command line", "environment", "aws profile", "stack.json"]


@dataclass(frozen=True)
class FoundStack:
    """Where the services are (``runtime``) and which level of the policy said so."""

    runtime: RuntimeSettings
    level: Level


def given_stack(runtime: RuntimeSettings, endpoint: str | None = None) -> FoundStack | None:
    """Levels 1 and 2: ``runtime`` with the command line's ``endpoint`` over the environment's, or None
    when neither names an endpoint (an empty one is none) and the profile is not ``aws`` (then a
    recorded stack is looked for)."""
    if endpoint:
        return FoundStack(runtime.model_copy(update={"aws_endpoint": endpoint}), "command line")
    if runtime.aws_endpoint:
        return FoundStack(runtime, "environment")
    if runtime.profile == "aws":  # an empty COATTAIL_AWS_ENDPOINT is unset, not an endpoint
        return FoundStack(runtime.model_copy(update={"aws_endpoint": None}), "aws profile")
    return None


def find_stack(runtime: RuntimeSettings, *, endpoint: str | None = None) -> FoundStack:
    """The stack to use, by the policy's four levels (module docstring); ``StackError`` when none."""
    from infra.stack import STATE_FILE, current_runtime  # infra.stack applies levels 1-2 through here

    given = given_stack(runtime, endpoint)
    if given is not None:
        return given
    recorded = current_runtime(runtime)
    if recorded is not None:
        return FoundStack(recorded, "stack.json")
    raise StackError(
        f"no running stack: no --endpoint, no COATTAIL_AWS_ENDPOINT and no healthy stack recorded in "
        f"{runtime.state_dir / STATE_FILE}; start one with `coattail up` (`coattail status` shows what is "
        "there), or give the endpoint of a running emulator with --endpoint"
    )


def with_stack(config: Config, *, endpoint: str | None = None) -> Config:
    """``config`` pointed at the stack ``find_stack`` finds."""
    return config.model_copy(update={"runtime": find_stack(config.runtime, endpoint=endpoint).runtime})
