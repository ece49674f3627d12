"""Seeded fault injection between the merge and the target, and the labels that describe every fault.

The spec (a YAML file, or a tape manifest's ``faults`` dict; same schema, ``FaultSpec``)::

    seed: 7                                   # optional; --seed overrides it
    drops:      {rate: 0.001}                 # events never sent
    duplicates: {rate: 0.001}                 # trades sent twice in a row
    reorder:    {rate: 0.01, max_delay_ms: 500}    # sent up to N ms (exchange time) later
    late:       {rate: 0.0005, delay_ms: 15000}    # sent delay_ms later: beyond the watermark
    corrupt:    {rate: 0.0005}                # payload replaced by unparseable bytes
    throttle:   {every: 50000, records: 500}  # target throttles K records after every N events
    disconnect: {every: 200000, pause_ms: 200}  # target drops its connection after every N events
    kinds: [trade, quote]                     # kinds drops/reorder/late/corrupt may hit (duplicates: trades)

``late`` and ``reorder`` may instead name events (the synthetic generator's form)::

    late: [{event_id: "quote:coinbase:BTC-USD:14759330058", delay_ms: 45000}, ...]

A run's spec (``--faults``) and its tapes' specs are kept apart: for each fault the run's setting wins
over the tapes', named events add up, and labels are reported per origin (``run`` or ``tape``).

Which events a fault hits is a hash of ``(seed, fault, tape, seq)``: independent of chunking and
speed, so the same seed gives the same faults. The faults of one event are exclusive (first match of
drop, corrupt, late, reorder, duplicate).

Labels follow docs/DETECTORS.md exactly, computed from the order in which events actually leave the
replay: a duplicate is a ``DUPLICATE_ID`` count; a delayed event is a ``LATE_EVENT`` only when it
arrives behind its key's watermark; a trade that is dropped, corrupted or overtaken becomes a
``TRADE_ID_GAP`` count on the trade that reveals it; a corrupt payload is a ``PARSE_ERROR`` in
quarantine (exchange and symbol empty: the pipeline cannot read them). Every fault also gets a label
of its own kind (``expect: none`` when it has no direct detector effect).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import ConfigError
from core.events import EVENT_KINDS, EventKind, event_id, native_id_field
from core.labels import Label
from replay.merge import KIND_CODE, MERGED_SCHEMA
from replay.wire import event_keys

FaultName = Literal["drop", "corrupt", "late", "reorder", "duplicate"]
_ORDER: Final[tuple[FaultName, ...]] = ("drop", "corrupt", "late", "reorder", "duplicate")
_SALT: Final[dict[FaultName, int]] = {name: i + 1 for i, name in enumerate(_ORDER)}
_DELAY_SALT: Final = 101

ARRIVAL_SCHEMA: Final = MERGED_SCHEMA.append(pa.field("ts_sched", pa.int64(), nullable=False)).append(
    pa.field("corrupt", pa.bool_(), nullable=False)
)
"""What leaves the fault stage: merged rows in arrival order, with the exchange time at which each is
scheduled (``ts_event`` plus its injected delay) and whether its payload must be corrupted."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateFault(_Spec):
    """A fault that hits a fraction of the events."""

    rate: float = Field(ge=0, le=1)


class ReorderFault(RateFault):
    """Delay events by a uniform 1..max_delay_ms of exchange time, so later events overtake them."""

    max_delay_ms: int = Field(gt=0)


class LateFault(RateFault):
    """Delay events by exactly ``delay_ms``: choose it beyond the pipeline's watermark."""

    delay_ms: int = Field(gt=0)


class EventDelay(_Spec):
    """One named event delivered ``delay_ms`` late (how a synthetic tape asks for its late events)."""

    event_id: str
    """``core.events.event_id``: ``trade:binance:BTCUSDT:123`` or ``quote:...:update_id``."""
    delay_ms: int = Field(gt=0)

    def parts(self) -> tuple[EventKind, str, str, int]:
        """``(kind, exchange, symbol, native id)``; a malformed id is a ``ConfigError``."""
        kind, _, rest = self.event_id.partition(":")
        exchange, _, rest = rest.partition(":")
        symbol, _, native = rest.rpartition(":")
        if kind not in EVENT_KINDS or not exchange or not symbol or not native.lstrip("-").isdigit():
            raise ConfigError(
                f"fault event_id {self.event_id!r}: expected kind:exchange:symbol:id, e.g. "
                "trade:binance:BTCUSDT:123"
            )
        return kind, exchange, symbol, int(native)


class ThrottleFault(_Spec):
    """After every ``every`` events the target answers ``records`` records with throttling errors."""

    every: int = Field(gt=0)
    records: int = Field(gt=0)


class DisconnectFault(_Spec):
    """After every ``every`` events the target loses its connection and is back after ``pause_ms``."""

    every: int = Field(gt=0)
    pause_ms: int = Field(100, ge=0)


class FaultSpec(_Spec):
    """The fault-injection spec (YAML file or a tape manifest's ``faults``)."""

    seed: int | None = None
    drops: RateFault | None = None
    duplicates: RateFault | None = None
    reorder: ReorderFault | tuple[EventDelay, ...] | None = None
    """A rate of randomly delayed events, or a list of named events to delay."""
    late: LateFault | tuple[EventDelay, ...] | None = None
    """Like ``reorder``; meant for delays beyond the watermark."""
    corrupt: RateFault | None = None
    throttle: ThrottleFault | None = None
    disconnect: DisconnectFault | None = None
    kinds: tuple[EventKind, ...] = EVENT_KINDS


def parse_fault_spec(data: Mapping[str, Any] | None, origin: str) -> FaultSpec:
    """Validate a fault spec; errors name ``origin`` and the offending key."""
    try:
        return FaultSpec.model_validate(dict(data or {}))
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: "
            f"{'unknown key' if err['type'] == 'extra_forbidden' else err['msg']}"
            for err in e.errors()
        )
        raise ConfigError(f"{origin}: bad fault spec: {problems}") from e


def load_fault_spec(path: Path) -> FaultSpec:
    """Read a fault spec YAML file."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"fault file {path} does not exist") from e
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: a fault spec is a mapping (drops:, duplicates:, ...)")
    return parse_fault_spec(data, str(path))


def combine_specs(specs: list[FaultSpec]) -> FaultSpec:
    """Merge specs: later ones override earlier ones fault by fault; lists of named events add up."""
    merged: dict[str, Any] = {}
    for spec in specs:
        for key, value in spec.model_dump(exclude_unset=True).items():
            if value is None:
                continue
            if key in ("late", "reorder") and isinstance(value, list) and isinstance(merged.get(key), list):
                value = [*merged[key], *value]
            merged[key] = value
    return FaultSpec.model_validate(merged)


# --- deterministic choice ---------------------------------------------------------------------------

_M1: Final = np.uint64(0xBF58476D1CE4E5B9)
_M2: Final = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a well-spread 64-bit hash of each value."""
    with np.errstate(over="ignore"):
        x = x.astype(np.uint64)
        x ^= x >> np.uint64(30)
        x *= _M1
        x ^= x >> np.uint64(27)
        x *= _M2
        x ^= x >> np.uint64(31)
    return x


def uniform(seed: int, salt: int, tape: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """A uniform number in [0, 1) per event, fixed by (seed, salt, tape, seq)."""
    with np.errstate(over="ignore"):
        base = _mix(np.full(1, (seed * 1_000_003 + salt) & 0xFFFFFFFFFFFFFFFF, dtype=np.uint64))
        h = _mix(seq.astype(np.uint64) ^ (tape.astype(np.uint64) << np.uint64(44)) ^ base)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


# --- the injector -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Disturbance:
    """A target-side fault: throttling a number of records, or a disconnect with a pause."""

    kind: Literal["throttle", "disconnect"]
    at_event: int
    records: int = 0
    pause_ms: int = 0


Origin = Literal["run", "tape"]
_ORIGINS: Final[tuple[Origin, ...]] = ("run", "tape")
_ORIGIN_CODE: Final[dict[Origin, int]] = {"run": 1, "tape": 2}


@dataclass
class _KeyState:
    max_ts: int | None = None
    max_trade_id: int | None = None
    pending: dict[int, tuple[str, Origin]] = field(default_factory=dict)
    """Trade ids that were dropped, corrupted or delayed and have not arrived yet -> (fault, origin)."""


@dataclass(frozen=True)
class _Rate:
    fault: RateFault
    origin: Origin
    kinds: tuple[int, ...]


@dataclass(frozen=True)
class _Target:
    kind: int
    exchange: str
    symbol: str
    ids: dict[int, tuple[int, FaultName, Origin]]
    """native id -> (delay µs, "late" or "reorder", origin)"""


class FaultInjector:
    """Applies fault specs to the merged stream and records the labels of what it injected.

    ``spec`` comes from the run (``--faults``), ``tape_spec`` from the tapes' manifests; for each fault
    the run's setting wins, lists of named events add up. Labels are kept per origin, because a tape's
    own labels may already describe the faults it asked for (``labels["tape"]``).
    """

    def __init__(
        self, spec: FaultSpec, *, seed: int, watermark_us: int, tape_spec: FaultSpec | None = None
    ) -> None:
        self.seed = seed
        self.watermark_us = watermark_us
        self.labels: dict[Origin, list[Label]] = {"run": [], "tape": []}
        self.counts: dict[str, int] = {}
        self._keys: dict[str, _KeyState] = {}
        self._ord = 0
        specs: list[tuple[Origin, FaultSpec]] = [("run", spec)]
        if tape_spec is not None:
            specs.append(("tape", tape_spec))
        fields: dict[FaultName, str] = {
            "drop": "drops",
            "corrupt": "corrupt",
            "late": "late",
            "reorder": "reorder",
            "duplicate": "duplicates",
        }
        self._rates: dict[FaultName, _Rate] = {}
        targets: dict[tuple[int, str, str], dict[int, tuple[int, FaultName, Origin]]] = {}
        for origin, sp in specs:
            kinds = tuple(KIND_CODE[k] for k in sp.kinds)
            for name, attr in fields.items():
                value = getattr(sp, attr)
                if isinstance(value, RateFault) and name not in self._rates and value.rate > 0:
                    only_trades = (KIND_CODE["trade"],)
                    self._rates[name] = _Rate(value, origin, only_trades if name == "duplicate" else kinds)
                elif isinstance(value, tuple):
                    for delay in value:
                        kind, exchange, symbol, native = delay.parts()
                        bucket = targets.setdefault((KIND_CODE[kind], exchange, symbol), {})
                        bucket.setdefault(native, (delay.delay_ms * 1_000, name, origin))
        self._targets = [_Target(k, e, s, ids) for (k, e, s), ids in targets.items()]
        self._throttle = next(((o, sp.throttle) for o, sp in specs if sp.throttle is not None), None)
        self._disconnect = next(((o, sp.disconnect) for o, sp in specs if sp.disconnect is not None), None)

    def is_empty(self) -> bool:
        """True when nothing would be injected."""
        return not (self._rates or self._targets or self._throttle or self._disconnect)

    # the stream stage -----------------------------------------------------------------------------

    def apply(self, chunks: Iterator[pa.Table]) -> Iterator[pa.Table]:
        """Turn merged chunks (``MERGED_SCHEMA``) into arrival-ordered chunks (``ARRIVAL_SCHEMA``)."""
        carry: pa.Table | None = None
        for chunk in chunks:
            if chunk.num_rows == 0:
                continue
            table = self._inject(chunk)
            if carry is not None:
                table = pa.concat_tables([carry, table])
            table = table.take(pc.sort_indices(table, [("ts_sched", "ascending"), ("_ord", "ascending")]))
            horizon = int(chunk.column("ts_event")[-1].as_py())
            cut = int(np.searchsorted(table.column("ts_sched").to_numpy(), horizon, side="right"))
            ready, carry = table.slice(0, cut), table.slice(cut)
            if ready.num_rows:
                yield self._observe(ready)
        if carry is not None and carry.num_rows:
            yield self._observe(carry)

    def _inject(self, chunk: pa.Table) -> pa.Table:
        n = chunk.num_rows
        tape = chunk.column("tape").to_numpy()
        seq = chunk.column("seq").to_numpy()
        kind = chunk.column("kind").to_numpy()
        ts = chunk.column("ts_event").to_numpy()
        order = (self._ord + np.arange(n, dtype=np.int64)) * 2
        self._ord += n
        free = np.ones(n, dtype=bool)
        origin = np.zeros(n, dtype=np.int8)
        delay = np.zeros(n, dtype=np.int64)
        hit: dict[FaultName, np.ndarray] = {name: np.zeros(n, dtype=bool) for name in _ORDER}
        for target in self._targets:
            self._hit_targets(chunk, target, kind, hit, delay, origin, free)
        for name in _ORDER:
            rate = self._rates.get(name)
            if rate is None:
                continue
            eligible = free & np.isin(kind, rate.kinds)
            chosen = eligible & (uniform(self.seed, _SALT[name], tape, seq) < rate.fault.rate)
            hit[name] |= chosen
            origin[chosen] = _ORIGIN_CODE[rate.origin]
            free &= ~chosen
            if name == "late" and isinstance(rate.fault, LateFault):
                delay[chosen] = rate.fault.delay_ms * 1_000
            elif name == "reorder" and isinstance(rate.fault, ReorderFault) and chosen.any():
                u = uniform(self.seed, _DELAY_SALT, tape[chosen], seq[chosen])
                delay[chosen] = (1 + (u * rate.fault.max_delay_ms).astype(np.int64)) * 1_000
        table = chunk.append_column("ts_sched", pa.array(ts + delay))
        table = table.append_column("corrupt", pa.array(hit["corrupt"]))
        table = table.append_column("_ord", pa.array(order))
        table = table.append_column("_delayed", pa.array(hit["late"] | hit["reorder"]))
        table = table.append_column("_origin", pa.array(origin))
        self._label_injected(table, hit)
        keep = ~hit["drop"]
        dup_rows = np.flatnonzero(hit["duplicate"])
        if dup_rows.size:
            dups = table.take(pa.array(dup_rows))
            dups = dups.set_column(dups.schema.get_field_index("_ord"), "_ord", pa.array(order[dup_rows] + 1))
            table = pa.concat_tables([table.filter(pa.array(keep)), dups])
        else:
            table = table.filter(pa.array(keep))
        return table

    def _hit_targets(
        self,
        chunk: pa.Table,
        target: _Target,
        kind: np.ndarray,
        hit: dict[FaultName, np.ndarray],
        delay: np.ndarray,
        origin: np.ndarray,
        free: np.ndarray,
    ) -> None:
        id_field = native_id_field(EVENT_KINDS[target.kind])
        native = chunk.column(id_field).fill_null(-1).to_numpy()
        wanted = np.fromiter(target.ids, dtype=np.int64, count=len(target.ids))
        rows = np.flatnonzero((kind == target.kind) & np.isin(native, wanted))
        if rows.size == 0:
            return
        exchanges = chunk.column("exchange").take(pa.array(rows)).to_pylist()
        symbols = chunk.column("symbol").take(pa.array(rows)).to_pylist()
        for row, exchange, symbol in zip(rows.tolist(), exchanges, symbols, strict=True):
            if exchange != target.exchange or symbol != target.symbol or not free[row]:
                continue
            delay_us, name, where = target.ids[int(native[row])]
            hit[name][row] = True
            delay[row] = delay_us
            origin[row] = _ORIGIN_CODE[where]
            free[row] = False

    def _observe(self, ready: pa.Table) -> pa.Table:
        """Update per-key watermarks and trade-id maxima in arrival order; label late events and gaps."""
        keys = event_keys(ready)
        encoded = pc.dictionary_encode(keys).combine_chunks()
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        names = encoded.dictionary.to_pylist()
        ts = ready.column("ts_event").to_numpy()
        valid = ~ready.column("corrupt").to_numpy(zero_copy_only=False)
        is_trade = ready.column("kind").to_numpy() == KIND_CODE["trade"]
        tid = ready.column("trade_id").fill_null(0).to_numpy()
        delayed = ready.column("_delayed").to_numpy(zero_copy_only=False)
        order = np.argsort(codes, kind="stable")
        bounds = np.flatnonzero(np.diff(codes[order])) + 1
        for group in np.split(order, bounds):
            key = names[codes[group[0]]]
            state = self._keys.setdefault(key, _KeyState())
            self._observe_key(ready, key, state, group, ts, valid, is_trade, tid, delayed)
        return ready.drop_columns(["_ord", "_delayed", "_origin"])

    def _observe_key(
        self,
        ready: pa.Table,
        key: str,
        state: _KeyState,
        rows: np.ndarray,
        ts: np.ndarray,
        valid: np.ndarray,
        is_trade: np.ndarray,
        tid: np.ndarray,
        delayed: np.ndarray,
    ) -> None:
        floor = np.iinfo(np.int64).min
        ts_valid = np.where(valid[rows], ts[rows], floor)
        running = np.maximum.accumulate(ts_valid)
        before = np.concatenate(([floor if state.max_ts is None else state.max_ts], running[:-1]))
        if state.max_ts is not None:
            before = np.maximum(before, state.max_ts)
        late = delayed[rows] & valid[rows] & (before != floor) & (ts[rows] < before - self.watermark_us)
        if late.any():
            mask = np.zeros(ready.num_rows, dtype=bool)
            mask[rows[late]] = True
            for r, where in self._rows(ready, mask):
                self._add(
                    self._label(r, "late_event", "dq", "LATE_EVENT", "arrived behind its watermark"), where
                )
        if running.size and running[-1] != floor:
            top_ts = int(running[-1])
            state.max_ts = top_ts if state.max_ts is None else max(state.max_ts, top_ts)
        trade_rows = rows[is_trade[rows] & valid[rows]]
        if trade_rows.size == 0:
            return
        ids = tid[trade_rows]
        id_floor = np.iinfo(np.int64).min
        run_ids = np.maximum.accumulate(ids)
        prev = np.concatenate(
            ([id_floor if state.max_trade_id is None else state.max_trade_id], run_ids[:-1])
        )
        if state.max_trade_id is not None:
            prev = np.maximum(prev, state.max_trade_id)
        if state.pending:
            reveal = (prev != id_floor) & (ids > prev + 1)
            for i in np.flatnonzero(reveal):
                lo, hi = int(prev[i]), int(ids[i])
                missing = sorted(v for v in state.pending if lo < v < hi)
                for where in _ORIGINS:
                    mine = [v for v in missing if state.pending[v][1] == where]
                    if mine:
                        self._add(self._gap_label(key, int(ts[trade_rows[i]]), mine, state), where)
                for v in missing:
                    del state.pending[v]
            waiting = np.fromiter(state.pending, dtype=np.int64, count=len(state.pending))
            for v in waiting[np.isin(waiting, ids)].tolist():
                del state.pending[v]
        top = int(run_ids[-1])
        state.max_trade_id = top if state.max_trade_id is None else max(state.max_trade_id, top)

    # labels ---------------------------------------------------------------------------------------

    def _add(self, label: Label, origin: Origin) -> None:
        self.labels[origin].append(label)
        self.counts[label.kind] = self.counts.get(label.kind, 0) + (label.count or 1)

    def _rows(self, table: pa.Table, mask: np.ndarray) -> list[tuple[dict[str, Any], Origin]]:
        rows = np.flatnonzero(mask)
        if rows.size == 0:
            return []
        cols = ["kind", "exchange", "symbol", "trade_id", "update_id", "ts_event", "_origin"]
        picked = table.select(cols).take(pa.array(rows)).to_pylist()
        return [(r, _ORIGINS[r["_origin"] - 1]) for r in picked]

    def _gap_label(self, key: str, ts: int, missing: list[int], state: _KeyState) -> Label:
        exchange, symbol = key.split(":", 1)
        return Label(
            kind="trade_id_gap",
            detector="MOD-004",
            expect="dq",
            reason="TRADE_ID_GAP",
            count=len(missing),
            exchange=exchange,
            symbol=symbol,
            start_us=ts,
            end_us=ts,
            event_ids=tuple(event_id("trade", exchange, symbol, v) for v in missing),
            note="counted on the trade at start_us; ids "
            + ", ".join(f"{v} ({state.pending[v][0]})" for v in missing),
        )

    def _label(
        self,
        r: dict[str, Any],
        kind: str,
        expect: Literal["dq", "none"],
        reason: str | None,
        note: str,
        *,
        anonymous: bool = False,
    ) -> Label:
        ev_kind: EventKind = EVENT_KINDS[r["kind"]]
        native = r[native_id_field(ev_kind)]
        return Label(
            kind=kind,
            detector="MOD-004",
            expect=expect,
            reason=reason,
            count=1 if expect == "dq" else None,
            exchange="" if anonymous else r["exchange"],
            symbol="" if anonymous else r["symbol"],
            start_us=r["ts_event"],
            end_us=r["ts_event"],
            event_ids=(event_id(ev_kind, r["exchange"], r["symbol"], native),),
            note=note,
        )

    def _label_injected(self, table: pa.Table, hit: dict[FaultName, np.ndarray]) -> None:
        for r, where in self._rows(table, hit["drop"]):
            self._add(self._label(r, "drop", "none", None, "dropped by the replay"), where)
            self._remember_missing(r, "dropped", where)
        for r, where in self._rows(table, hit["corrupt"]):
            note = "payload replaced by unparseable bytes (quarantine)"
            self._add(self._label(r, "malformed", "dq", "PARSE_ERROR", note, anonymous=True), where)
            self._remember_missing(r, "corrupt", where)
        delays: tuple[tuple[FaultName, str, str], ...] = (
            ("late", "delay", "delayed beyond the watermark"),
            ("reorder", "reorder", "delayed (reorder)"),
        )
        for name, label_kind, note in delays:
            for r, where in self._rows(table, hit[name]):
                self._add(self._label(r, label_kind, "none", None, note), where)
                self._remember_missing(r, name, where)
        for r, where in self._rows(table, hit["duplicate"]):
            self._add(self._label(r, "duplicate", "dq", "DUPLICATE_ID", "sent twice"), where)

    def _remember_missing(self, r: dict[str, Any], why: str, origin: Origin) -> None:
        if EVENT_KINDS[r["kind"]] == "trade":
            key = f"{r['exchange']}:{r['symbol']}"
            self._keys.setdefault(key, _KeyState()).pending[int(r["trade_id"])] = (why, origin)

    # target-side faults ---------------------------------------------------------------------------

    def disturbances(self, total_hint: int) -> list[Disturbance]:
        """Throttling bursts and disconnects scheduled over the first ``total_hint`` events."""
        out: list[Disturbance] = []
        if self._throttle is not None:
            t = self._throttle[1]
            out += [
                Disturbance("throttle", at, records=t.records) for at in range(t.every, total_hint, t.every)
            ]
        if self._disconnect is not None:
            d = self._disconnect[1]
            out += [
                Disturbance("disconnect", at, pause_ms=d.pause_ms)
                for at in range(d.every, total_hint, d.every)
            ]
        return sorted(out, key=lambda d: (d.at_event, d.kind))

    def label_disturbance(self, d: Disturbance, ts_event: int) -> None:
        """Record a target-side fault that the target applied."""
        source = self._throttle if d.kind == "throttle" else self._disconnect
        origin: Origin = source[0] if source is not None else "run"
        what = f"{d.records} records throttled" if d.kind == "throttle" else f"paused {d.pause_ms} ms"
        label = Label(
            kind=d.kind,
            detector="MOD-004",
            expect="none",
            exchange="",
            symbol="",
            start_us=ts_event,
            end_us=ts_event,
            note=f"target {what} after event {d.at_event}",
        )
        self._add(label, origin)
