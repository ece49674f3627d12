"""The local stack: start the emulator(s), provision the tier's resources, report, stop.

State lives under ``RuntimeSettings.state_dir`` (default ``.coattail/``): one pid file and log per
emulator process (``moto.pid``, ``moto.log``, ``kinesis-mock.pid`` ...) and ``stack.json``, which records
the endpoints and the provisioned spec so that later commands (replay, pipeline, run) find the stack
without being told the port (the policy: ``infra.resolve``); ``stack.lock`` lets one ``up`` or ``down``
at a time change them.

A stack that a run started for itself (``ensure_up``) is the runs' to stop: each run holds a lease on it
(``leases/``) and the last one to let go stops it, so a run that started it never stops it under
another run still using it. A stack ``coattail up`` started, or took over, stays up until ``coattail
down``.

An endpoint given explicitly (``--endpoint``, ``COATTAIL_AWS_ENDPOINT``, e.g. LocalStack from
docker-compose.yml) or the ``aws`` profile means an external stack: nothing is started, the same
provisioning is applied to it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import psutil

from core.errors import StackError, UnsafeEndpointError
from infra import emulator
from infra.emulator import EmulatorKind
from infra.processes import LOOPBACK, ProcessState, http_answers
from infra.provision import IcebergSpec, Resource, StackSpec, StreamSpec, inspect, provision
from infra.resolve import given_stack
from infra.run_resources import leftovers
from pipeline.aws import check_endpoint
from pipeline.config import Config, RuntimeSettings
from pipeline.tables import AlertIndex, DynamoTableDef

STATE_FILE = "stack.json"
LOCK_FILE = "stack.lock"
LEASES_DIR = "leases"
LOCK_TIMEOUT_S = 180.0
"""How long ``up``/``down`` wait for another one on the same state directory (a kinesis-mock start alone
may take a minute)."""
KinesisEngine = Literal["moto", "kinesis-mock"]
Step = Callable[[str], None]
_KINDS: tuple[EmulatorKind, ...] = ("moto", "kinesis-mock")


@dataclass(frozen=True)
class StackState:
    """What ``stack.json`` records about a stack that was brought up."""

    tier: str
    profile: str
    region: str
    endpoint: str | None
    service_endpoints: dict[str, str]
    processes: dict[str, int]  # emulator kind -> port, for the processes this stack started
    spec: StackSpec
    run_owned: bool = False
    """Started by a run for itself (``ensure_up``): the last run holding a lease stops it."""

    def runtime(self, base: RuntimeSettings) -> RuntimeSettings:
        """``base`` pointed at this stack's endpoints; ``base``'s own per-service endpoints (from the
        environment) win over the recorded ones, as ``infra.resolve`` says."""
        return base.model_copy(
            update={
                "aws_endpoint": self.endpoint,
                "service_endpoints": {**self.service_endpoints, **base.service_endpoints},
                "region": self.region,
            }
        )

    def to_json(self) -> str:
        """The ``stack.json`` text."""
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> StackState:
        """Parse ``stack.json`` (raises ``KeyError``/``TypeError``/``ValueError`` on a bad file)."""
        raw: dict[str, Any] = json.loads(text)
        spec = raw.pop("spec")
        return cls(
            **raw,
            spec=StackSpec(
                streams=tuple(StreamSpec(**s) for s in spec["streams"]),
                alerts_table=DynamoTableDef(
                    **{
                        **spec["alerts_table"],
                        "indexes": tuple(AlertIndex(**i) for i in spec["alerts_table"]["indexes"]),
                    }
                ),
                buckets=tuple(spec["buckets"]),
                glue_database=spec["glue_database"],
                iceberg=IcebergSpec(**{**spec["iceberg"], "tables": tuple(spec["iceberg"]["tables"])}),
            ),
        )


@dataclass(frozen=True)
class ProcessStatus:
    """One emulator process as ``coattail status`` shows it."""

    kind: str
    state: ProcessState
    pid: int | None
    endpoint: str | None
    log: Path | None


@dataclass(frozen=True)
class StackStatus:
    """The whole stack: its recorded state, its processes, its resources and a one-line verdict."""

    state: StackState | None
    processes: list[ProcessStatus]
    resources: list[Resource] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """Recorded, and every process it started is running."""
        return self.state is not None and all(p.state == "running" for p in self.processes)

    def summary(self) -> str:
        """A one-line verdict that says what to do next."""
        if self.state is None:
            stale = [p for p in self.processes if p.state != "stopped"]
            if stale:
                return "not up, but a stale pid file is left over: `coattail down` cleans it up"
            return "down: `coattail up` starts it"
        bad = [p for p in self.processes if p.state != "running"]
        if not bad:
            owner = "; a run started it and the last run using it stops it" if self.state.run_owned else ""
            return f"up: tier {self.state.tier}, profile {self.state.profile}{owner}"
        if all(p.state == "unchecked" for p in bad):
            where = self.state.endpoint or "real AWS"
            return (
                f"recorded against {where}, not contacted: a non-local endpoint is only checked with "
                "--profile aws --allow-real-aws"
            )
        names = ", ".join(
            f"{p.kind} (pid {p.pid}) is {p.state}" if p.pid else f"{p.kind} is {p.state}" for p in bad
        )
        return (
            f"broken: {names}; it was killed or crashed and its in-memory resources are gone (see its log): "
            "`coattail down`, then `coattail up`"
        )


@dataclass(frozen=True)
class StackHandle:
    """What ``up`` and ``ensure_up`` hand over: the runtime to use and whether this call started the
    stack; from ``ensure_up``, also the run's lease on it."""

    runtime: RuntimeSettings
    started: bool
    resources: list[Resource]
    notes: tuple[str, ...] = ()
    """What the user must know about the stack this replaced (``up`` prints them)."""
    lease: Path | None = None

    def release(self) -> str:
        """Give the run's lease back; stop the stack when a run started it and no other run holds a
        lease on it any more. Says what happened to the stack (nothing without a lease)."""
        if self.lease is None:
            return ""
        state_dir = self.runtime.state_dir
        with _locked(state_dir):
            self.lease.unlink(missing_ok=True)
            state = read_state(state_dir)
            if state is None or not state.run_owned:
                return "left up (`coattail up` keeps it; `coattail down` stops it)"
            others = _live_leases(state_dir)
            if others:
                return f"left up for {len(others)} other run(s) still using it"
            _down(state_dir)
            return "stopped (the runs that used it are done)"


def _state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def read_state(state_dir: Path) -> StackState | None:
    """The recorded stack, or None when none was brought up; a corrupt file is an error naming it."""
    path = _state_path(state_dir)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return StackState.from_json(text)
    except (KeyError, TypeError, ValueError) as e:
        raise StackError(f"{path} is not a stack state file ({e}); `coattail down` removes it") from e


def status(base: RuntimeSettings, *, resources: bool = True) -> StackStatus:
    """Inspect the stack under ``base.state_dir``: its processes and, when healthy, every resource,
    the leftovers of runs included (``infra.run_resources``).

    Resources are inspected through the guard with ``base``'s profile and opt-in, so a stack recorded
    against real AWS is only looked at when ``--profile aws --allow-real-aws`` are given again.
    """
    state = read_state(base.state_dir)
    recorded = state.processes if state else {}
    procs: list[ProcessStatus] = []
    for kind in _KINDS:
        process = emulator.server_process(kind, base.state_dir)
        port = recorded.get(kind)
        if port is None and process.read_pid() is None:
            continue
        procs.append(
            ProcessStatus(
                kind=kind,
                state=process.state(port),
                pid=process.read_pid(),
                endpoint=f"http://{LOOPBACK}:{port}" if port else None,
                log=process.log_file,
            )
        )
    if state is not None and not state.processes:
        procs.append(_external_status(state, base))
    report = StackStatus(state=state, processes=procs)
    if resources and report.healthy and state is not None:
        live = state.runtime(base)
        found = inspect(state.spec, live) + leftovers(state.spec, live)
        return StackStatus(state=state, processes=procs, resources=found)
    return report


def _external_status(state: StackState, base: RuntimeSettings) -> ProcessStatus:
    """An external stack's endpoint, probed only where the guard lets ``base`` talk to it: a
    ``stack.json`` naming a non-local endpoint is not contacted without ``--profile aws
    --allow-real-aws`` (real AWS cannot be pinged anonymously, so only an endpoint is probed)."""
    try:
        check_endpoint(state.runtime(base))
    except UnsafeEndpointError:
        return ProcessStatus("external", "unchecked", None, state.endpoint, None)
    answers = state.endpoint is None or http_answers(state.endpoint)
    return ProcessStatus("external", "running" if answers else "unhealthy", None, state.endpoint, None)


def current_runtime(base: RuntimeSettings) -> RuntimeSettings | None:
    """``base`` pointed at the healthy stack under ``base.state_dir``, or None when there is none (level 3
    of ``infra.resolve``'s policy; commands go through ``infra.resolve.find_stack``)."""
    report = status(base, resources=False)
    if report.state is None or not report.healthy:
        return None
    return report.state.runtime(base)


def up(
    config: Config,
    *,
    endpoint: str | None = None,
    kinesis: KinesisEngine | None = "moto",
    port: int | None = None,
    step: Step | None = None,
) -> StackHandle:
    """Bring the stack up for ``config``'s tier and profile and provision it; reuse a healthy one.

    An endpoint given (``endpoint``, from ``--endpoint``, over ``config.runtime.aws_endpoint``) or the
    ``aws`` profile means an external stack (``infra.resolve.given_stack``): nothing is started and the
    guard decides whether it may be reached. Otherwise moto starts on 127.0.0.1 (and kinesis-mock beside
    it with ``kinesis="kinesis-mock"``). ``kinesis=None`` takes a running stack as it is, whichever
    Kinesis engine it has, and starts moto alone when none runs.

    One ``up`` or ``down`` at a time changes the stack under a state directory (``stack.lock``): a second
    one waits for the first and then finds its stack.
    """
    given, runtime = _resolved(config, endpoint)
    with _locked(runtime.state_dir):
        return _up(config, runtime, given=given, kinesis=kinesis, port=port, step=step)


def _resolved(config: Config, endpoint: str | None) -> tuple[bool, RuntimeSettings]:
    """Whether the stack is an external one (``infra.resolve.given_stack``), and the runtime to bring up;
    a given endpoint is checked before the lock creates the state directory, so nothing is left behind."""
    given = given_stack(config.runtime, endpoint)
    if given is None:
        return False, config.runtime
    check_endpoint(given.runtime)
    return True, given.runtime


def _up(
    config: Config,
    runtime: RuntimeSettings,
    *,
    given: bool,
    kinesis: KinesisEngine | None,
    port: int | None,
    step: Step | None,
    for_run: bool = False,
) -> StackHandle:
    say = step or (lambda _message: None)
    spec = StackSpec.from_config(config)
    existing = status(runtime, resources=False)
    if given:
        if kinesis == "kinesis-mock" or port is not None:
            raise StackError(
                "--kinesis and --port start local emulators; they cannot apply to an external stack"
            )
        if any(p.kind in _KINDS and p.state == "running" for p in existing.processes):
            raise StackError(
                f"a local stack is up under {runtime.state_dir}; `coattail down` before using another one"
            )
        say(f"provisioning {runtime.aws_endpoint or 'real AWS'}")
        resources = provision(spec, runtime)
        _write_state(runtime.state_dir, _record(config, runtime, {}, spec))
        return StackHandle(runtime=runtime, started=False, resources=resources)

    if existing.healthy and existing.state is not None:
        engines = set(existing.state.processes)
        # A recorded external stack (e.g. docker compose) is reused unless kinesis-mock was asked for.
        if kinesis is not None and engines != {"moto", kinesis} and (engines or kinesis != "moto"):
            described = ", ".join(sorted(engines)) or f"the external endpoint {existing.state.endpoint}"
            raise StackError(
                f"a stack ({described}) is already up under {runtime.state_dir}; `coattail down` first "
                "to switch emulators"
            )
        live = existing.state.runtime(runtime)
        say(f"reusing the stack at {live.aws_endpoint or 'real AWS'}; provisioning tier {config.tier}")
        resources = provision(spec, live)
        # `coattail up` takes over a stack a run started: it stays up until `coattail down`
        owned = existing.state.run_owned and for_run
        _write_state(runtime.state_dir, _record(config, live, existing.state.processes, spec, owned))
        return StackHandle(runtime=live, started=False, resources=resources)
    notes: tuple[str, ...] = ()
    if existing.state is not None and existing.state.processes:
        notes = (_replaced_note(existing, runtime),)
    if existing.processes or existing.state is not None:
        say("clearing a stopped or broken stack left behind")
        _down(runtime.state_dir)

    started: dict[str, int] = {}
    try:
        say("starting moto on 127.0.0.1")
        moto = emulator.start("moto", runtime.state_dir, port=port, region=runtime.region)
        started["moto"] = moto.port
        services: dict[str, str] = {}
        if kinesis == "kinesis-mock":
            say("starting kinesis-mock on 127.0.0.1")
            mock = emulator.start("kinesis-mock", runtime.state_dir, region=runtime.region)
            started["kinesis-mock"] = mock.port
            services["kinesis"] = mock.endpoint
        live = runtime.model_copy(
            update={
                "aws_endpoint": moto.endpoint,
                "service_endpoints": {**runtime.service_endpoints, **services},
            }
        )
        _write_state(runtime.state_dir, _record(config, live, started, spec, for_run))
        say(f"provisioning tier {config.tier}")
        resources = provision(spec, live)
    except BaseException:
        _down(runtime.state_dir)  # never leave half a stack running
        raise
    return StackHandle(runtime=live, started=True, resources=resources, notes=notes)


def _replaced_note(dead: StackStatus, runtime: RuntimeSettings) -> str:
    """What a new stack in place of a dead one means: the old one's data is gone, its checkpoints stale."""
    assert dead.state is not None
    gone = ", ".join(
        f"{p.kind} (pid {p.pid}, {p.endpoint})" if p.pid else f"{p.kind} ({p.endpoint})"
        for p in dead.processes if p.state != "running"
    )
    kept = (
        f"; the Iceberg tables of the lite catalog ({runtime.state_dir / 'iceberg'}) survived, and a fresh "
        "checkpoint is refused on their bronze rows: use another storage.namespace (--set "
        "storage.namespace=NAME) for the new data"
        if dead.state.profile == "lite" else ""
    )
    return (
        f"the stack recorded in {_state_path(runtime.state_dir)} had died ({gone or 'its emulator'}): "
        "its Kinesis streams, DynamoDB alerts and S3 objects lived in the emulator's memory and are gone, "
        "so every one reported created is new. Checkpoints written against the old streams no longer match "
        "them (the pipeline refuses them): replay again and run the pipeline with a fresh --checkpoint"
        + kept
    )


def ensure_up(
    config: Config, *, kinesis: KinesisEngine | None = None, step: Step | None = None
) -> StackHandle:
    """The stack a run needs: found by ``infra.resolve``'s policy (an endpoint given, else the healthy
    one under the state dir, used as it is unless ``kinesis`` names an engine it lacks), or, where the
    policy finds none, a new one with ``kinesis`` (moto by default; ``handle.started``).

    Either way the tier's resources are provisioned (idempotently) and a local stack is leased to the
    run. Call ``handle.release()`` when the run is over: a stack a run started stops with the last
    run's release, one ``coattail up`` started stays up.
    """
    given, runtime = _resolved(config, None)
    with _locked(runtime.state_dir):
        handle = _up(config, runtime, given=given, kinesis=kinesis, port=None, step=step, for_run=True)
        if given:
            return handle
        lease = runtime.state_dir / LEASES_DIR / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        lease.parent.mkdir(parents=True, exist_ok=True)
        lease.write_text(json.dumps({"pid": os.getpid(), "started": psutil.Process().create_time()}))
        return StackHandle(handle.runtime, handle.started, handle.resources, handle.notes, lease)


def _live_leases(state_dir: Path) -> list[Path]:
    """The leases of runs still alive (a run killed before its release leaves one behind: removed)."""
    live: list[Path] = []
    for lease in sorted((state_dir / LEASES_DIR).glob("*")):
        try:
            held = json.loads(lease.read_text())
            alive = psutil.Process(int(held["pid"])).create_time() == held["started"]
        except (OSError, ValueError, KeyError, TypeError, psutil.Error):
            alive = False  # gone, its pid reused since, or a torn file
        if alive:
            live.append(lease)
        else:
            lease.unlink(missing_ok=True)
    return live


def down(state_dir: Path) -> list[str]:
    """Stop every emulator recorded under ``state_dir`` and remove the state; report what was done.

    Waits for an ``up`` under way on ``state_dir`` to finish first (see ``up``).
    """
    if not state_dir.is_dir():
        return []
    with _locked(state_dir):
        return _down(state_dir)


def _down(state_dir: Path) -> list[str]:
    done: list[str] = []
    for kind in _KINDS:
        process = emulator.server_process(kind, state_dir)
        pid = process.read_pid()
        if pid is None:
            continue
        if process.stop():
            done.append(f"stopped {kind} (pid {pid})")
        else:
            done.append(f"removed a stale pid file for {kind} (pid {pid} was not running)")
    shutil.rmtree(state_dir / LEASES_DIR, ignore_errors=True)  # they lease the stack now gone
    state_file = _state_path(state_dir)
    if state_file.exists():
        state_file.unlink()
        if not done:
            done.append(f"forgot the external stack recorded in {state_file}")
    return done


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``state_dir`` (``flock``, released by the kernel even when the holder
    dies); wait up to ``LOCK_TIMEOUT_S`` for another holder."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / LOCK_FILE
    timeout_s = LOCK_TIMEOUT_S
    with path.open("a") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StackError(
                        f"another `coattail up` or `coattail down` has held {path} for over "
                        f"{timeout_s:.0f} s; wait for it to finish (or stop it) and try again"
                    ) from None
                # polled rather than a blocking flock, so that the wait ends with this message
                time.sleep(0.1)
        yield  # closing the file releases the lock


def _record(
    config: Config,
    runtime: RuntimeSettings,
    processes: dict[str, int],
    spec: StackSpec,
    run_owned: bool = False,
) -> StackState:
    return StackState(
        tier=config.tier,
        profile=runtime.profile,
        region=runtime.region,
        endpoint=runtime.aws_endpoint,
        service_endpoints=dict(runtime.service_endpoints),
        processes=processes,
        spec=spec,
        run_owned=run_owned,
    )


def _write_state(state_dir: Path, state: StackState) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = _state_path(state_dir).with_suffix(".tmp")
    tmp.write_text(state.to_json())
    tmp.replace(_state_path(state_dir))
