"""Shard and table sizing from data: a tape's peak per-second load against Kinesis' per-shard limits
(with and without KPL aggregation) and the DynamoDB write rate its alerts need.

Each event is encoded as the replay puts it (``replay.wire``: the same JSON, the same partition key
``exchange:symbol``), placed on the shard Kinesis would choose (MD5 of the key in evenly split hash
ranges, as ``CreateStream`` splits them) and counted in the second of its ``ts_event``: the load of a
replay at ``speed`` 1 (rates scale with the speed). With aggregation the events of one key in one flush
window (KPL's ``RecordMaxBufferedTime``, 100 ms by default) travel in ``pipeline.kpl`` records, exactly
as ``pipeline.kpl.aggregate_arrays`` packs them. Alerts come from the reference implementation
(``coattail.reference``) of the tier's small-tier detectors; each is sized as the DynamoDB sink writes
it (``pipeline.sinks.dynamodb.to_item``) and costs one write unit per KB in the table and in each index.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from core.tape import Tape
from infra.faultproxy.limits import hash_key
from pipeline import kpl
from pipeline.config import Config
from pipeline.sinks.dynamodb import to_item
from pipeline.tables import alerts_dynamo_table
from replay import wire
from replay.merge import merge_tapes

KIB: Final = 1024
MIB: Final = 1024 * 1024
SHARD_IN_BYTES: Final = MIB
SHARD_IN_RECORDS: Final = 1_000
SHARD_OUT_BYTES: Final = 2 * MIB
SHARD_OUT_READS: Final = 5
GET_RECORDS_MAX: Final = 10_000
"""Records one ``GetRecords`` call returns at most."""
PARTITION_WCU: Final = 1_000
"""Write units a second one DynamoDB partition (of the table or of an index) takes."""
KPL_FLUSH_MS: Final = 100
_US_PER_S: Final = 1_000_000
_HASH_SPACE: Final = 2**128


def shard_of(partition_key: str, shards: int) -> int:
    """The shard of a stream of ``shards`` evenly split shards that Kinesis puts ``partition_key`` on."""
    return hash_key(partition_key) * shards // _HASH_SPACE


def item_bytes(item: dict[str, Any]) -> int:
    """A DynamoDB item's size by DynamoDB's rules: names and values in UTF-8, a number in about one byte
    per two significant digits plus one, a list three bytes plus one per element."""

    def value_bytes(value: dict[str, Any]) -> int:
        ((kind, raw),) = value.items()
        if kind == "S":
            return len(raw.encode())
        if kind == "N":
            digits = len(Decimal(raw).normalize().as_tuple().digits)
            return min(21, math.ceil(digits / 2) + 1)
        return 3 + sum(value_bytes(v) + 1 for v in raw)

    return sum(len(name.encode()) + value_bytes(value) for name, value in item.items())


@dataclass(frozen=True)
class Peak:
    """The busiest second of one measure on the busiest shard, and where it was."""

    value: float
    second: int | None
    """Event-time second (epoch s) of the peak; None when there is no data."""
    shard: int | None = None


@dataclass(frozen=True)
class StreamLoad:
    """Per-shard peaks of one way of putting the events (plain or aggregated)."""

    records: Peak
    bytes: Peak
    reads: float
    """``GetRecords`` calls a second each shard needs: every consumer polls each shard once a trigger,
    and more often when one call (10,000 records) cannot drain the shard's peak."""


@dataclass(frozen=True)
class SizeReport:
    """What ``coattail size`` prints."""

    tier: str
    shards: int
    speed: float
    consumers: int
    events: int
    seconds: int
    hottest_key: str
    plain: StreamLoad
    aggregated: StreamLoad
    min_shards_plain: int | None
    min_shards_aggregated: int | None
    alerts: int
    alert_detectors: tuple[str, ...]
    alerts_peak: Peak
    alert_item_bytes: int
    indexes: int

    @property
    def wcu_per_alert(self) -> int:
        """Write units one alert costs: one per KB (rounded up) in the table and in each index."""
        return math.ceil(max(self.alert_item_bytes, 1) / KIB) * (1 + self.indexes)

    @property
    def alert_wcu(self) -> float:
        """Write units a second the peak second of alerts needs."""
        return self.alerts_peak.value * self.wcu_per_alert

    @property
    def feed_partition_wcu(self) -> float:
        """What the index over all alerts (one partition) takes at the peak: every alert lands there."""
        return self.alerts_peak.value * math.ceil(max(self.alert_item_bytes, 1) / KIB)

    def fits(self, load: StreamLoad) -> bool:
        """Whether ``load`` stays within every per-shard limit."""
        out_bytes = load.bytes.value * self.consumers
        return (
            load.records.value <= SHARD_IN_RECORDS
            and load.bytes.value <= SHARD_IN_BYTES
            and out_bytes <= SHARD_OUT_BYTES
            and load.reads <= SHARD_OUT_READS
        )


def measure(
    tape: Tape,
    config: Config,
    *,
    speed: float = 1.0,
    consumers: int = 1,
    flush_ms: int = KPL_FLUSH_MS,
    trigger_ms: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> SizeReport:
    """Size ``config``'s stream and table for ``tape`` replayed at ``speed``.

    ``trigger_ms``: how often the pipeline polls each shard; by default the tier's trigger interval,
    or 500 ms (the measured floor of a micro-batch) when that is 0.
    """
    plain_parts = []
    packer = _Packer(flush_ms * 1_000)
    for chunk in merge_tapes([tape]):
        keys = wire.partition_keys(chunk)
        if isinstance(keys, pa.ChunkedArray):  # a chunk's columns may come in pieces
            keys = keys.combine_chunks()
        ts = chunk.column("ts_event").to_numpy()
        data = wire.encode_array(chunk, int(ts.max()))  # a ts_sent stamp of realistic width
        sizes = pc.add(pc.binary_length(data), pc.binary_length(keys))
        plain_parts.append(
            pl.DataFrame({"second": ts // _US_PER_S, "key": keys.to_pylist(), "bytes": sizes.to_numpy()})
        )
        packer.add(ts, keys, data)
        if progress is not None:
            progress(chunk.num_rows)
    plain = (
        pl.concat(plain_parts)
        if plain_parts
        else pl.DataFrame(schema={"second": pl.Int64, "key": pl.String, "bytes": pl.Int64})
    )
    aggregated = pl.DataFrame(
        packer.finish(),
        schema={"second": pl.Int64, "key": pl.String, "bytes": pl.Int64},
        orient="row",
    )
    trigger = trigger_ms or config.spark.trigger_interval_ms or 500
    shards = config.kinesis.shards
    alerts = _alerts(tape, config)
    seconds = pl.Series("second", alerts.column("ts_event").to_numpy() // _US_PER_S, dtype=pl.Int64)
    busiest = seconds.value_counts().sort("count", "second", descending=[True, False]).head(1)
    layout = alerts_dynamo_table(config)
    # written at its event time: the stamps take the width they have in production
    sizes = [
        item_bytes(to_item(r, r["ts_event"], config.dynamodb.ttl_hours, layout)) for r in alerts.to_pylist()
    ]
    key_load = plain.group_by("key").agg(pl.len().alias("n")).sort("n", descending=True)
    return SizeReport(
        tier=config.tier,
        shards=shards,
        speed=speed,
        consumers=consumers,
        events=plain.height,
        seconds=plain["second"].n_unique() if plain.height else 0,
        hottest_key=str(key_load["key"][0]) if key_load.height else "",
        plain=_load(plain, shards, speed, consumers, trigger),
        aggregated=_load(aggregated, shards, speed, consumers, trigger),
        min_shards_plain=_min_shards(plain, speed),
        min_shards_aggregated=_min_shards(aggregated, speed),
        alerts=alerts.num_rows,
        alert_detectors=tuple(m for m in config.modules if m in _REFERENCE_MODULES),
        alerts_peak=Peak(float(busiest["count"][0]) * speed, int(busiest["second"][0]))
        if busiest.height
        else Peak(0.0, None),
        alert_item_bytes=max(sizes, default=0),
        indexes=len(layout.indexes),
    )


_REFERENCE_MODULES: Final = ("MOD-001", "MOD-002", "MOD-003", "MOD-005", "MOD-006", "MOD-007")
"""The detectors whose alerts the reference computes (MOD-004 writes metrics, not alerts)."""


class _Packer:
    """KPL records of each key's events in each flush window, across the tape's chunks (a window may
    start in one chunk and end in the next): ``(second, key, bytes)`` per Kinesis record."""

    def __init__(self, flush_us: int) -> None:
        self.flush_us = flush_us
        self.rows: list[tuple[int, str, int]] = []
        self._open: tuple[np.ndarray, pa.Array, pa.Array] | None = None

    def add(self, ts: np.ndarray, keys: pa.Array, data: pa.Array) -> None:
        """Pack every window the chunk closes; keep its last one open."""
        if self._open is not None:
            ts = np.concatenate((self._open[0], ts))
            keys = pa.concat_arrays([self._open[1], keys])
            data = pa.concat_arrays([self._open[2], data])
        cuts = np.flatnonzero(np.diff(ts // self.flush_us)) + 1
        last = int(cuts[-1]) if cuts.size else 0
        for a, b in itertools.pairwise([0, *cuts.tolist()]):
            self._pack(ts, keys.slice(a, b - a), data.slice(a, b - a), a)
        self._open = (ts[last:], keys.slice(last), data.slice(last))

    def finish(self) -> list[tuple[int, str, int]]:
        """Pack the last window and return every record."""
        if self._open is not None and len(self._open[0]):
            self._pack(*self._open, 0)
        self._open = None
        return self.rows

    def _pack(self, ts: np.ndarray, keys: pa.Array, data: pa.Array, first: int) -> None:
        second = int(ts[first]) // _US_PER_S
        for record in kpl.aggregate_arrays(keys, data):
            self.rows.append(
                (second, record.partition_key, len(record.data) + len(record.partition_key.encode()))
            )


def _alerts(tape: Tape, config: Config) -> pa.Table:
    from coattail.reference import from_tape, run_reference

    return run_reference(from_tape(tape), config).alerts


def _per_shard(frame: pl.DataFrame, shards: int) -> pl.DataFrame:
    """Records and bytes per (second, shard)."""
    keys = frame["key"].unique().to_list()
    mapping = pl.DataFrame(
        {"key": keys, "shard": [shard_of(k, shards) for k in keys]},
        schema={"key": pl.String, "shard": pl.Int64},
    )
    return (
        frame.join(mapping, on="key")
        .group_by("second", "shard")
        .agg(pl.len().alias("records"), pl.col("bytes").sum().alias("bytes"))
    )


def _peak(per: pl.DataFrame, column: str, speed: float) -> Peak:
    if per.height == 0:
        return Peak(0.0, None)
    top = per.sort(column, descending=True).row(0, named=True)
    return Peak(float(top[column]) * speed, int(top["second"]), int(top["shard"]))


def _load(frame: pl.DataFrame, shards: int, speed: float, consumers: int, trigger_ms: int) -> StreamLoad:
    per = _per_shard(frame, shards)
    records = _peak(per, "records", speed)
    polls = 1_000 / trigger_ms
    drain = math.ceil(records.value / GET_RECORDS_MAX) if records.value else 0
    return StreamLoad(records, _peak(per, "bytes", speed), consumers * max(polls, drain))


def _min_shards(frame: pl.DataFrame, speed: float, most: int = 64) -> int | None:
    """The fewest shards (up to ``most``) whose peaks stay within the per-shard limits for writes;
    None when even ``most`` do not (one key too hot for any shard)."""
    for shards in range(1, most + 1):
        per = _per_shard(frame, shards)
        if per.height == 0:
            return 1
        records, size = per.select(pl.col("records").max(), pl.col("bytes").max()).row(0)
        if records * speed <= SHARD_IN_RECORDS and size * speed <= SHARD_IN_BYTES:
            return shards
    return None
