"""Historical loader: tape directories -> the Iceberg bronze tables ``trades``, ``quotes`` and ``transfers``,
idempotently.

A tape (the layout ``core.tape`` writes: ``manifest.json`` plus ``trade/*.parquet`` and
``quote/*.parquet``, each sorted by ``(ts_event, seq)``) is read here with pyarrow directly, since
production code does not import the harness.

Idempotence: a load *replaces* the bronze rows an earlier load of the same tape wrote, and nothing
else. Per table, one Iceberg transaction deletes the rows with ``shard_id = "tape"``, the tape's
sequence-number prefix (its start time, see below) and one of its instruments, then appends the
tape's rows; the commit is atomic, so loading a tape twice leaves one copy and a crash leaves the
previous copy. Rows of other tapes of the same day (another start) and rows the streaming pipeline
wrote (a Kinesis ``shard_id``) are never touched. Two tapes of one instrument that start at the same
microsecond would write the same sequence numbers, so they count as versions of one tape.

Arrival order: bronze rows carry ``shard_id``/``sequence_number`` so batch jobs can reproduce arrival
order. A tape has no Kinesis positions, so its rows get ``shard_id = "tape"`` and a fixed-width
``sequence_number`` of the tape's start time (17 digits), the event's ``ts_event`` (17 digits) and
its ``seq`` (12 digits): numeric order is tape order ``(ts_event, seq)`` (``seq`` alone is not: an
imported tape numbers events in file order), and tapes of one instrument sort by their start.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.errors import SinkError, TapeError
from core.events import TapeKind
from pipeline.config import Config
from pipeline.onchain import transfer_key
from pipeline.parse import PARSED_SCHEMA
from pipeline.sinks.iceberg import IcebergSink
from pipeline.tables import BRONZE, event_date

TAPE_SHARD: Final = "tape"
LOADER_WRITER: Final = "coattail.loader"
_READ_ROWS: Final = 1_000_000


@dataclass(frozen=True)
class LoadResult:
    """What one tape load did."""

    tape: Path
    rows: dict[str, int]
    days: list[str]
    instruments: list[tuple[str, str]]


def read_manifest(tape: Path) -> dict[str, Any]:
    """The tape's ``manifest.json`` as a dict, checked for the fields the loader needs."""
    path = tape / "manifest.json"
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise TapeError(f"{tape} is not a tape: it has no manifest.json") from e
    except ValueError as e:
        raise TapeError(f"{path}: not valid JSON: {e}") from e
    missing = [k for k in ("files", "start_us", "source") if k not in manifest]
    if missing:
        raise TapeError(f"{path}: manifest lacks {missing}; regenerate or re-import the tape")
    for names in manifest["files"].values():
        for name in names:
            if not (tape / name).is_file():
                raise TapeError(f"{tape}: file {name} named in the manifest is missing")
    return manifest


def bronze_batches(
    tape: Path, kind: TapeKind, manifest: dict[str, Any], config: Config | None = None
) -> Iterator[pa.Table]:
    """One kind of a tape as bronze-table batches (transport columns filled for a tape); transfers keyed
    as the pipeline keys them (``pipeline.onchain.transfer_key``, with ``config``'s token table and
    registry), so the reprocessor finds them beside their reference instrument's trades."""
    table = BRONZE[kind]
    start = int(manifest["start_us"])
    for name in manifest["files"].get(kind, []):
        for batch in pq.ParquetFile(tape / name).iter_batches(batch_size=_READ_ROWS):
            n = batch.num_rows
            ts = pc.utf8_lpad(pc.cast(batch.column("ts_event"), pa.string()), width=17, padding="0")
            seq = pc.utf8_lpad(pc.cast(batch.column("seq"), pa.string()), width=12, padding="0")
            sequence = pc.binary_join_element_wise(pa.scalar(_sequence_prefix(start)), ts, seq, "")
            columns = dict(zip(batch.schema.names, batch.columns, strict=True))
            if kind == "transfer":
                columns.update(_transfer_keys(batch, config))
            columns.update(
                {
                    "ts_sent": pa.nulls(n, pa.int64()),
                    "ts_ingest": pa.nulls(n, pa.int64()),
                    "shard_id": pa.array([TAPE_SHARD] * n, pa.string()),
                    "sequence_number": sequence,
                    "sub_sequence": pa.array([0] * n, pa.int32()),
                }
            )
            yield table.conform(pa.table(columns))


def parsed_events(tape: Path, config: Config) -> pa.Table:
    """The tape's events as parsed rows (``pipeline.parse.PARSED_SCHEMA``) in tape order: what
    ``Engine.process`` takes when a run feeds a tape to the engine in-process (no Kinesis, no Spark);
    transfers keyed as the pipeline keys them (``config``: its token table and registry)."""
    manifest = read_manifest(tape)
    parts = []
    for kind in ("trade", "quote", "transfer"):
        batches = list(bronze_batches(tape, kind, manifest, config))
        if batches:
            t = pa.concat_tables(batches)
            parts.append(t.append_column("kind", pa.array([kind] * t.num_rows, pa.string())))
    if not parts:
        return PARSED_SCHEMA.empty_table()
    table = pa.concat_tables(parts, promote_options="permissive")
    for f in PARSED_SCHEMA:
        if f.name not in table.schema.names:
            table = table.append_column(f.name, pa.nulls(table.num_rows, f.type))
    table = table.select(PARSED_SCHEMA.names)
    return table.take(pc.sort_indices(table, sort_keys=[("sequence_number", "ascending")]))


def _transfer_keys(batch: pa.RecordBatch | pa.Table, config: Config | None) -> dict[str, pa.Array]:
    if config is None:
        raise TapeError("loading transfers needs the config (token table, instrument registry) to key them")
    pairs = zip(batch.column("chain").to_pylist(), batch.column("asset").to_pylist(), strict=True)
    keys = [transfer_key(chain, asset, config.tokens, config.instruments) for chain, asset in pairs]
    return {
        "exchange": pa.array([k[0] for k in keys], pa.string()),
        "symbol": pa.array([k[1] for k in keys], pa.string()),
    }


def load_tape(
    tape: Path,
    sink: IcebergSink,
    *,
    progress: Callable[[int], None] | None = None,
) -> LoadResult:
    """Load one tape into ``sink``'s bronze tables, replacing what an earlier load of it wrote."""
    manifest = read_manifest(tape)
    sink.open(BRONZE.values())
    instruments, days = _coverage(tape, manifest, sink.config)
    if not instruments:
        return LoadResult(tape, {}, [], [])
    replace = replace_filter(int(manifest["start_us"]), instruments)
    rows: dict[str, int] = {}
    props = {"coattail.writer": LOADER_WRITER, "coattail.tape": manifest.get("checksum", str(tape))}
    for kind, bronze in BRONZE.items():
        table = bronze.name
        handle = sink.catalog.load_table(f"{sink.namespace}.{table}")
        try:
            with handle.transaction() as txn, warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Delete operation did not match any records")
                txn.delete(replace, snapshot_properties=props)
                count = 0
                for batch in bronze_batches(tape, kind, manifest, sink.config):
                    txn.append(bronze.with_partition_columns(batch), snapshot_properties=props)
                    count += batch.num_rows
                    if progress is not None:
                        progress(batch.num_rows)
        except (TapeError, SinkError):
            raise
        except Exception as e:  # pyiceberg and its catalogs raise many unrelated types
            raise SinkError(f"loading {tape} into {sink.namespace}.{table} failed: {e}") from e
        rows[table] = count
    return LoadResult(tape, rows, days, instruments)


def replace_filter(start_us: int, instruments: list[tuple[str, str]]) -> str:
    """The Iceberg row filter of what a load replaces: the rows a load of this tape wrote.

    Those are the tape-shard rows whose sequence number starts with the tape's start time and whose
    instrument is one of the tape's. No day or time predicate: a re-recorded tape with the same start
    but a shorter span must still replace every row of its earlier version. Pruning stays cheap: the
    ``symbol`` predicate selects partitions and the prefix lies outside the sequence-number bounds of
    other tapes' and Kinesis rows' files.
    """

    def lit(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    pairs = " OR ".join(f"(exchange = {lit(e)} AND symbol = {lit(s)})" for e, s in instruments)
    prefix = lit(_sequence_prefix(start_us) + "%")
    return f"shard_id = {lit(TAPE_SHARD)} AND sequence_number LIKE {prefix} AND ({pairs})"


def _sequence_prefix(start_us: int) -> str:
    """The leading digits of every sequence number a tape starting at ``start_us`` writes."""
    return f"{start_us:017d}"


def _coverage(
    tape: Path, manifest: dict[str, Any], config: Config
) -> tuple[list[tuple[str, str]], list[str]]:
    """The tape's keys (instruments, and the keys of its transfers) and UTC days, read from its rows
    (not trusted from the manifest)."""
    instruments: set[tuple[str, str]] = set()
    days: set[str] = set()
    for kind in BRONZE:
        for name in manifest["files"].get(kind, []):
            named = ["chain", "asset"] if kind == "transfer" else ["exchange", "symbol"]
            data = pq.read_table(tape / name, columns=["ts_event", *named])
            if kind == "transfer":
                data = pa.table({**_transfer_keys(data, config), "ts_event": data.column("ts_event")})
            pairs = data.group_by(["exchange", "symbol"]).aggregate([])
            instruments.update(
                zip(pairs.column("exchange").to_pylist(), pairs.column("symbol").to_pylist(), strict=True)
            )
            days.update(d.isoformat() for d in pc.unique(event_date(data.column("ts_event"))).to_pylist())
    return sorted(instruments), sorted(days)
