"""The producer's crash suite: SIGKILL ``coattail connect`` in the middle of a feed, restart it, and
prove that nothing reached the stream twice and that every loss is reported.

The replay's WebSocket server (``replay.targets.websocket``) serves the tapes at ``speed`` as an exchange
would: a live feed, so a client gets what is sent while it is connected. The producer (``coattail
connect --ws-url EXCHANGE=...``, in a process group of its own) puts what it receives on a stream of the
suite's own. It is SIGKILLed a seeded 0.3-2.5 s after it subscribed, ``kills`` times, and restarted each
time; the last start is stopped with SIGTERM once the tape has ended (that stop puts all it accepted).

A kill loses what the producer had accepted but not yet put, and a restart misses what the server sent
while no producer was connected: expected, and what an exchange feed does too. Such a loss must be
*reported*: the stream itself carries the trade ids, so MOD-004 counts the missing ones as
``TRADE_ID_GAP`` (the producer's in-memory last id does not survive a kill and is not needed for that).
The verdict reads the whole stream back (``replay.resume.stream_records``) and counts:

- duplicated: an event on the stream more often than on the tape (what was put before a kill is put
  again after);
- foreign: an event on the stream that is not on the tape;
- lost and reported: a tape event not on the stream inside a trade-id gap of its symbol on the stream
  (a trade whose id lies between two consecutive ids on the stream; a quote whose time lies between the
  times of those two trades);
- lost and unreported: any other missing event (a silent loss).

Duplicated, foreign and unreported must be 0, and MOD-004 (by the reference implementation, over the
stream's records) must count as ``TRADE_ID_GAP`` exactly the trade ids inside the gaps.
"""

from __future__ import annotations

import bisect
import itertools
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import polars as pl
import pyarrow as pa

from coattail.reference import from_wire, run_reference
from coattail.reliability.crash import COATTAIL, child_env, kill_group, run_config
from coattail.run.progress import Steps
from core.errors import CoattailError
from core.events import EventKind
from core.tape import Tape
from infra.provision import StackSpec, provision
from infra.run_resources import own_resources, remove
from pipeline.config import Config, RuntimeSettings, TierName
from replay.engine import Replay
from replay.merge import KIND_CODE
from replay.resume import EventKey, event_keys, stream_records
from replay.targets.websocket import WebSocketTarget
from replay.via_ws import subscriptions_of

KILL_AFTER_S: Final = (0.3, 2.5)
"""A kill lands this long (seeded, uniform) after the producer subscribed."""
START_TIMEOUT_S: Final = 60.0
SETTLE_S: Final = 2.0
"""After the tape's end, before SIGTERM: the producer reads the frames still in its socket."""
POLL_S: Final = 0.02
TRADE: Final = KIND_CODE["trade"]
BRONZE: Final[tuple[tuple[EventKind, str], ...]] = (("trade", "trade_id"), ("quote", "update_id"))
"""Each kind with its identity column (trades by id, quotes by update id)."""


@dataclass
class ProducerCrashReport:
    """What the suite did and found."""

    events: int
    """Events on the tape, all sent by the server."""
    kills_at_s: list[float] = field(default_factory=list)
    """When each kill landed, seconds after that start's subscription."""
    on_stream: int = 0
    duplicated: int = 0
    foreign: int = 0
    lost_reported: int = 0
    lost_unreported: int = 0
    gaps: int = 0
    """Trade-id gaps on the stream."""
    missing_trade_ids: int = 0
    """Trade ids inside those gaps."""
    mod004_trade_id_gap: int = 0
    """What MOD-004 counts as ``TRADE_ID_GAP`` over the stream's records (its reference implementation)."""
    starts: int = 0

    @property
    def ok(self) -> bool:
        """Nothing doubled, nothing foreign, every loss reported, and the counts add up."""
        return (
            self.duplicated == self.foreign == self.lost_unreported == 0
            and self.on_stream + self.lost_reported == self.events
            and self.mod004_trade_id_gap == self.missing_trade_ids
        )

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {**vars(self), "kills_at_s": [round(k, 2) for k in self.kills_at_s], "ok": self.ok}


@dataclass(frozen=True)
class ProducerCrashSuite:
    """The suite over ``tapes`` on the stack ``runtime`` points at (``coattail up``)."""

    tapes: Sequence[Path]
    runtime: RuntimeSettings
    workdir: Path
    kills: int = 3
    seed: int = 0
    speed: float = 20.0
    tier: TierName = "small"
    keep_resources: bool = False

    def run(self, steps: Steps | None = None) -> ProducerCrashReport:
        """Serve the tapes, kill and restart the producer ``kills`` times, then read the stream back."""
        steps = steps or Steps()
        subscriptions = subscriptions_of(self.tapes)
        tapes = [Tape.open(p) for p in self.tapes]
        report = ProducerCrashReport(events=sum(sum(t.manifest.rows.values()) for t in tapes))
        tag = f"producer-crash-{time.strftime('%Y%m%d-%H%M%S')}-s{self.seed}"
        config = run_config(self.tier, {}, self.runtime, tag)
        workdir = self.workdir / tag
        workdir.mkdir(parents=True)
        target = WebSocketTarget(wait_for_clients=1, client_timeout_s=START_TIMEOUT_S)
        target.start()
        replay = _Background(Replay(list(self.tapes), target, speed=self.speed))
        rng = random.Random(self.seed)
        process: subprocess.Popen[bytes] | None = None
        try:
            with steps.step("provision the suite's stream"):
                provision(StackSpec.from_config(config), config.runtime)
            with steps.step("serve the tape; kill and restart the producer", total=self.kills) as task:
                replay.start()
                for i in range(self.kills):
                    process = self._launch(config, target, subscriptions, workdir, i)
                    report.starts += 1
                    _await_subscribed(target, process, replay)
                    after = rng.uniform(*KILL_AFTER_S)
                    time.sleep(after)
                    if replay.done():
                        break  # the tape ended first: this start is the last one
                    kill_group(process)
                    process = None
                    report.kills_at_s.append(after)
                    task.update(completed=i + 1, note=f"kill {i + 1} at {after:.1f} s")
            with steps.step("the last start, until the tape ends"):
                if process is None:
                    process = self._launch(config, target, subscriptions, workdir, self.kills)
                    report.starts += 1
                replay.join()
                time.sleep(SETTLE_S)
                process.send_signal(signal.SIGTERM)
                if process.wait(timeout=START_TIMEOUT_S) != 0:
                    raise CoattailError(f"the last producer failed; see {workdir}")
                process = None
            with steps.step("read the stream back and compare with the tape"):
                records = list(stream_records(config.runtime, config.kinesis.stream))
                compare(report, tapes, event_keys(records))
                report.mod004_trade_id_gap = trade_id_gaps(records, config)
        finally:
            if process is not None:
                kill_group(process)
            target.close()
            if not self.keep_resources:
                remove(own_resources(config), config.runtime, config.storage.warehouse_bucket)
        return report

    def _launch(
        self, config: Config, target: WebSocketTarget, subscriptions: dict[str, list[str]], workdir: Path,
        i: int,
    ) -> subprocess.Popen[bytes]:
        """``coattail connect`` to ``target`` onto the suite's stream, in a process group of its own."""
        args = [*COATTAIL, "connect", "--exchanges", ",".join(subscriptions), "--tier", self.tier,
                "--symbols", ",".join(f"{ex}:{s}" for ex, syms in subscriptions.items() for s in syms),
                "--set", f"kinesis.stream={config.kinesis.stream}", "--seed", str(self.seed + i)]
        for exchange in subscriptions:
            args += ["--ws-url", f"{exchange}={target.endpoint(exchange)}"]
        with (workdir / f"producer-{i}.log").open("ab") as out:
            return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=child_env(config.runtime),
                                    start_new_session=True)


class _Background:
    """A replay on a thread of its own; its error is raised by ``join``."""

    def __init__(self, replay: Replay) -> None:
        self._replay = replay
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="producer-crash-replay", daemon=True)

    def _run(self) -> None:
        try:
            self._replay.run()
        except BaseException as e:
            self._error = e

    def start(self) -> None:
        self._thread.start()

    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


def _await_subscribed(target: WebSocketTarget, process: subprocess.Popen[bytes], replay: _Background) -> None:
    """Until the started producer subscribed to the server; a ``CoattailError`` when it died first."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while target.clients() < 1 and not replay.done():
        if process.poll() is not None or time.monotonic() > deadline:
            raise CoattailError(f"the producer did not subscribe within {START_TIMEOUT_S:.0f} s "
                                f"(exit code {process.poll()}); see its log")
        time.sleep(POLL_S)


def compare(report: ProducerCrashReport, tapes: Sequence[Tape], found: Counter[EventKey]) -> None:
    """Fill the report's counts from the tapes and what is on the stream (``found``)."""
    expected: Counter[EventKey] = Counter()
    times: dict[EventKey, int] = {}
    for tape in tapes:
        for kind, native in BRONZE:
            for r in tape.read(kind, ["exchange", "symbol", native, "ts_event"]).to_pylist():
                key = (KIND_CODE[kind], r["exchange"], r["symbol"], r[native])
                expected[key] += 1
                times[key] = r["ts_event"]
    report.on_stream = sum(found.values())
    report.foreign = sum(n for k, n in found.items() if k not in expected)
    report.duplicated = sum((found - expected).values()) - report.foreign
    gaps = _gaps(found, times)
    report.gaps = sum(len(g.ids) for g in gaps.values())
    report.missing_trade_ids = sum(b - a - 1 for g in gaps.values() for a, b in g.ids)
    for key, missing in (expected - found).items():
        code, exchange, symbol, native_id = key
        # a trade by its id, a quote (no id the pipeline could miss) by its time
        position = native_id if code == TRADE else times[key]
        bounds = gaps.get((exchange, symbol), _Gaps())
        if bounds.covers(position, by_id=code == TRADE):
            report.lost_reported += missing
        else:
            report.lost_unreported += missing


def trade_id_gaps(records: Sequence[pa.RecordBatch], config: Config) -> int:
    """The ``TRADE_ID_GAP`` count of MOD-004 over the stream's raw ``records``, by the reference
    implementation (``coattail.reference``): the report the pipeline would make of the losses."""
    payloads = [d for raw in records for d in raw.column("data").to_pylist()]
    mod004 = config.model_copy(update={"modules": ("MOD-004",)})
    dq = run_reference(from_wire(payloads), mod004).dq
    return int(dq.filter(pl.col("reason") == "TRADE_ID_GAP")["count"].sum())


@dataclass
class _Gaps:
    """One symbol's trade-id gaps on the stream, in id (and time) order."""

    ids: list[tuple[int, int]] = field(default_factory=list)
    """(last id, next id) per gap: the ids on the stream either side of it."""
    times: list[tuple[int, int]] = field(default_factory=list)
    """The tape times of those two trades."""

    def covers(self, position: int, *, by_id: bool) -> bool:
        """Whether a trade id (``by_id``) or an event time lies inside one of the gaps."""
        spans = self.ids if by_id else self.times
        i = bisect.bisect_right(spans, (position, float("inf"))) - 1
        if i < 0:
            return False
        low, high = spans[i]
        return low < position < high if by_id else low <= position <= high


def _gaps(found: Counter[EventKey], times: dict[EventKey, int]) -> dict[tuple[str, str], _Gaps]:
    """Per (exchange, symbol): the trade-id gaps between the trades on the stream."""
    ids: dict[tuple[str, str], list[int]] = {}
    for kind, exchange, symbol, native in found:
        if kind == TRADE:
            ids.setdefault((exchange, symbol), []).append(native)
    out: dict[tuple[str, str], _Gaps] = {}
    for (exchange, symbol), trade_ids in ids.items():
        trade_ids.sort()
        gaps = out.setdefault((exchange, symbol), _Gaps())
        for a, b in itertools.pairwise(trade_ids):
            if b > a + 1:
                gaps.ids.append((a, b))
                ta, tb = (times.get((TRADE, exchange, symbol, i), 0) for i in (a, b))
                gaps.times.append((ta, tb))
    return out
