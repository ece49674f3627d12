"""The normalized tape format: a directory of Parquet files plus a JSON manifest.

Layout::

    TAPE/manifest.json
    TAPE/trade/part-00000.parquet ...   TRADE_SCHEMA + ``seq``
    TAPE/quote/part-00000.parquet ...   QUOTE_SCHEMA + ``seq``
    TAPE/transfer/part-00000.parquet ... TRANSFER_SCHEMA + ``seq`` (on-chain transfers, when any)

``seq`` is one int64 sequence over the whole tape (every kind), so that ``(ts_event, seq)`` orders every
event of the tape totally; each kind's parts, concatenated, are sorted by ``(ts_event, seq)``. Files are
written and read one row group at a time: nothing here needs a whole day in memory.

Transport effects (late or reordered arrival, drops, corrupt payloads) are not stored as rows: a tape can
carry a fault spec in its manifest that the replay applies, so the rows stay sorted and typed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, ValidationError

from core.errors import TapeError
from core.events import EVENT_KINDS, TAPE_KINDS, TAPE_SCHEMAS, TapeKind
from core.frozen import Frozen
from core.labels import Label

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ROW_GROUP_ROWS = 256_000
PART_ROWS = 4_000_000


def tape_schema(kind: TapeKind) -> pa.Schema:
    """The Parquet schema of one kind's files: the event schema plus ``seq``."""
    return TAPE_SCHEMAS[kind].append(pa.field("seq", pa.int64(), nullable=False))


class Manifest(Frozen):
    """What ``manifest.json`` holds."""

    format_version: int = FORMAT_VERSION
    source: str
    """``synthetic`` or the recorded format, e.g. ``binance-csv``, ``binance-ws``, ``tardis-csv``."""
    origin: list[str] = Field(default_factory=list)
    """Input files or the generator command, for provenance."""
    exchanges: list[str]
    symbols: list[str]
    kinds: list[TapeKind]
    start_us: int
    end_us: int
    rows: dict[str, int]
    files: dict[str, list[str]]
    checksum: str
    """sha256 over the Parquet files' bytes in ``files`` order (trade, quote, then transfer)."""
    scenario: str | None = None
    seed: int | None = None
    labels: list[Label] = Field(default_factory=list)
    faults: dict[str, Any] | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class TapeWriter:
    """Writes a tape one batch at a time; batches of each kind must arrive sorted by (ts_event, seq).

    Use as a context manager; ``close(**manifest_fields)`` writes the manifest. A tape whose writer did
    not close has no manifest and cannot be opened, so a crash never leaves a tape that looks whole.
    """

    def __init__(self, path: Path, *, overwrite: bool = False) -> None:
        self.path = Path(path)
        if (self.path / MANIFEST).exists() and not overwrite:
            raise TapeError(f"{self.path} already holds a tape; choose another --out or remove it")
        self.path.mkdir(parents=True, exist_ok=True)
        self._writers: dict[TapeKind, pq.ParquetWriter] = {}
        self._part_rows: dict[TapeKind, int] = {}
        self._files: dict[TapeKind, list[str]] = {k: [] for k in TAPE_KINDS}
        self._rows: dict[TapeKind, int] = {k: 0 for k in TAPE_KINDS}
        self._last: dict[TapeKind, tuple[int, int]] = {}
        self._span: list[int] = []
        self._exchanges: set[str] = set()
        self._symbols: set[str] = set()

    def write(self, kind: TapeKind, batch: pa.RecordBatch | pa.Table) -> None:
        """Append rows of one kind; the schema must be ``tape_schema(kind)`` (columns by name)."""
        if kind not in TAPE_SCHEMAS:
            raise TapeError(f"unknown event kind {kind!r}")
        if batch.num_rows == 0:
            return
        schema = tape_schema(kind)
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        try:
            table = table.select(schema.names).cast(schema)
        except (KeyError, pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise TapeError(f"{kind} batch does not match the tape schema: {e}") from e
        ts = table.column("ts_event").to_numpy()
        seq = table.column("seq").to_numpy()
        first = (int(ts[0]), int(seq[0]))
        if kind in self._last and first < self._last[kind]:
            raise TapeError(f"{kind} rows out of order: {first} after {self._last[kind]}")
        order_ok = (ts[1:] > ts[:-1]) | ((ts[1:] == ts[:-1]) & (seq[1:] > seq[:-1]))
        if not bool(order_ok.all()):
            raise TapeError(f"{kind} batch is not sorted by (ts_event, seq)")
        self._last[kind] = (int(ts[-1]), int(seq[-1]))
        self._span += [int(ts.min()), int(ts.max())]
        if kind in EVENT_KINDS:  # the manifest's exchanges and symbols name market instruments only
            self._exchanges.update(table.column("exchange").unique().to_pylist())
            self._symbols.update(table.column("symbol").unique().to_pylist())
        writer = self._writers.get(kind)
        if writer is None or self._part_rows[kind] >= PART_ROWS:
            if writer is not None:
                writer.close()
            name = f"{kind}/part-{len(self._files[kind]):05d}.parquet"
            (self.path / kind).mkdir(exist_ok=True)
            # dictionary encoding pays off only for the low-cardinality text columns; trying it on ids,
            # prices and times doubles the write time for nothing
            text = [f.name for f in schema if pa.types.is_string(f.type)]
            writer = pq.ParquetWriter(self.path / name, schema, compression="zstd", use_dictionary=text)
            self._writers[kind] = writer
            self._part_rows[kind] = 0
            self._files[kind].append(name)
        writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self._part_rows[kind] += table.num_rows
        self._rows[kind] += table.num_rows

    def close(self, *, source: str, **fields: Any) -> Manifest:
        """Close the files and write the manifest; ``fields`` are further ``Manifest`` fields."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        kinds = [k for k in TAPE_KINDS if self._rows[k]]
        files: dict[str, list[str]] = {k: self._files[k] for k in kinds}
        try:
            manifest = Manifest(
                source=source,
                exchanges=sorted(self._exchanges),
                symbols=sorted(self._symbols),
                kinds=kinds,
                start_us=min(self._span) if self._span else 0,
                end_us=max(self._span) if self._span else 0,
                rows={k: self._rows[k] for k in kinds},
                files=files,
                checksum=_checksum(self.path, files),
                **fields,
            )
        except ValidationError as e:
            raise TapeError(f"bad manifest for {self.path}: {e}") from e
        (self.path / MANIFEST).write_text(manifest.model_dump_json(indent=2))
        return manifest

    def __enter__(self) -> TapeWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            for writer in self._writers.values():
                writer.close()


class Tape:
    """A tape opened for reading."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest

    @classmethod
    def open(cls, path: Path | str) -> Tape:
        """Open a tape directory; a missing or malformed manifest is a ``TapeError``."""
        path = Path(path)
        mpath = path / MANIFEST
        if not mpath.is_file():
            raise TapeError(f"{path} is not a tape: it has no {MANIFEST} (import or generate one first)")
        try:
            manifest = Manifest.model_validate(json.loads(mpath.read_text()))
        except (ValueError, ValidationError) as e:
            raise TapeError(f"{mpath}: not a valid tape manifest: {e}") from e
        if manifest.format_version != FORMAT_VERSION:
            raise TapeError(
                f"{mpath}: tape format {manifest.format_version}, this build reads {FORMAT_VERSION}"
            )
        for names in manifest.files.values():
            for name in names:
                if not (path / name).is_file():
                    raise TapeError(f"{path}: file {name} named in the manifest is missing")
        return cls(path, manifest)

    def files(self, kind: TapeKind) -> list[Path]:
        """The Parquet files of one kind, in order (empty when the tape has none)."""
        return [self.path / name for name in self.manifest.files.get(kind, [])]

    def iter_batches(
        self, kind: TapeKind, *, batch_rows: int = 65_536, columns: list[str] | None = None
    ) -> Iterator[pa.RecordBatch]:
        """Stream one kind's rows in tape order, a bounded batch at a time."""
        for f in self.files(kind):
            yield from pq.ParquetFile(f).iter_batches(batch_size=batch_rows, columns=columns)

    def read(self, kind: TapeKind, columns: list[str] | None = None) -> pa.Table:
        """All rows of one kind as one table (for small tapes and tests)."""
        files = self.files(kind)
        if not files:
            empty = tape_schema(kind).empty_table()
            return empty if columns is None else empty.select(columns)
        return pa.concat_tables(pq.read_table(f, columns=columns) for f in files)

    def instruments(self) -> list[tuple[str, str]]:
        """The ``(exchange, symbol)`` pairs the tape holds events of, sorted."""
        pairs: set[tuple[str, str]] = set()
        for kind in EVENT_KINDS:
            for f in self.files(kind):
                table = pq.read_table(f, columns=["exchange", "symbol"]).group_by(["exchange", "symbol"])
                found = table.aggregate([]).to_pydict()
                pairs.update(zip(found["exchange"], found["symbol"], strict=True))
        return sorted(pairs)

    def verify(self) -> None:
        """Recompute the checksum; raise ``TapeError`` when the files changed since they were written."""
        actual = _checksum(self.path, self.manifest.files)
        if actual != self.manifest.checksum:
            raise TapeError(f"{self.path}: checksum mismatch, the tape's files changed after it was written")


def _checksum(root: Path, files: dict[str, list[str]]) -> str:
    digest = hashlib.sha256()
    for kind in TAPE_KINDS:
        for name in files.get(kind, []):
            with open(root / name, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
    return "sha256:" + digest.hexdigest()
