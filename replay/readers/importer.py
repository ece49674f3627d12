"""Recorded files to a tape: number the events in arrival order, sort by ``(ts_event, seq)``, write.

``seq`` follows the files' order (files in the order given, lines in file order), so events with equal
``ts_event`` keep their arrival order. Chunks are held in memory up to ``SPILL_ROWS`` rows; a bigger
input is spilled to sorted runs on disk and merged a batch at a time, so memory stays bounded.
"""

from __future__ import annotations

import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import ReaderError
from core.events import TAPE_KINDS, TapeKind
from core.tape import Manifest, TapeWriter
from pipeline.onchain import TokensConfig
from replay.readers.base import BadLines, Stats
from replay.readers.detect import detect_format, reader_for

SPILL_ROWS = 2_000_000
RUN_ROWS = 262_144
WRITE_ROWS = 1_000_000


@dataclass
class ImportResult:
    """The tape written and what the import saw."""

    manifest: Manifest
    stats: Stats
    formats: dict[str, str] = field(default_factory=dict)
    reject_path: Path | None = None


class _Spool:
    """One kind's rows: in memory while small, sorted runs on disk beyond ``SPILL_ROWS``."""

    def __init__(self, kind: TapeKind, tmp: Path) -> None:
        self.kind = kind
        self.tmp = tmp
        self.tables: list[pa.Table] = []
        self.rows = 0
        self.runs: list[Path] = []

    def add(self, table: pa.Table) -> None:
        self.tables.append(table)
        self.rows += table.num_rows
        if self.rows >= SPILL_ROWS:
            self._spill()

    def _spill(self) -> None:
        run = self.tmp / f"{self.kind}-{len(self.runs):05d}.parquet"
        pq.write_table(
            _sorted(pa.concat_tables(self.tables)), run, compression="none", row_group_size=RUN_ROWS
        )
        self.runs.append(run)
        self.tables, self.rows = [], 0

    def drain(self, writer: TapeWriter) -> None:
        if not self.runs:
            if self.tables:
                table = _sorted(pa.concat_tables(self.tables))
                for batch in table.to_batches(max_chunksize=WRITE_ROWS):
                    writer.write(self.kind, batch)
            return
        if self.tables:
            self._spill()
        for table in merge_runs([_batches(run) for run in self.runs]):
            writer.write(self.kind, table)


def _batches(path: Path) -> Iterator[pa.Table]:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=RUN_ROWS):
        yield pa.Table.from_batches([batch])


def merge_runs(runs: list[Iterator[pa.Table]]) -> Iterator[pa.Table]:
    """Merge runs each sorted by ``(ts_event, seq)`` into one sorted stream, a bounded batch at a time.

    Each step emits every buffered row not after the smallest of the buffers' last keys (no run can
    still hold an earlier one), then refills the buffers it emptied: memory is one batch per run.
    """
    heads: list[pa.Table | None] = [next(r, None) for r in runs]
    while True:
        live = [i for i, h in enumerate(heads) if h is not None and h.num_rows]
        if not live:
            return
        bound = min(_key(h, -1) for h in heads if h is not None and h.num_rows)
        parts = []
        for i in live:
            head = heads[i]
            assert head is not None
            cut = _count_upto(head, bound)
            if cut:
                parts.append(head.slice(0, cut))
            rest = head.slice(cut)
            heads[i] = rest if rest.num_rows else next(runs[i], None)
        out = pa.concat_tables(parts)
        yield out if len(parts) == 1 else out.sort_by([("ts_event", "ascending"), ("seq", "ascending")])


def _key(table: pa.Table, row: int) -> tuple[int, int]:
    ts, seq = table.column("ts_event"), table.column("seq")
    return int(ts[row].as_py()), int(seq[row].as_py())


def _count_upto(table: pa.Table, bound: tuple[int, int]) -> int:
    """How many leading rows of a sorted table have ``(ts_event, seq) <= bound``."""
    ts = table.column("ts_event").to_numpy()
    lo = int(np.searchsorted(ts, bound[0], side="left"))
    hi = int(np.searchsorted(ts, bound[0], side="right"))
    seq = table.column("seq").to_numpy()[lo:hi]
    return lo + int(np.searchsorted(seq, bound[1], side="right"))


def _sorted(table: pa.Table) -> pa.Table:
    # rows arrive in seq order, and exchange files are mostly in time order already: then skip the sort
    ts = table.column("ts_event").to_numpy()
    if bool((ts[1:] >= ts[:-1]).all()):
        return table
    return table.sort_by([("ts_event", "ascending"), ("seq", "ascending")])


def import_files(
    paths: list[Path],
    out: Path,
    *,
    fmt: str | None = None,
    skip_bad: bool = False,
    reject_path: Path | None = None,
    overwrite: bool = False,
    progress: Callable[[Path], None] | None = None,
    tokens: TokensConfig | None = None,
) -> ImportResult:
    """Read ``paths`` (format detected per file unless ``fmt``) into one tape at ``out``.

    Bad lines raise ``ReaderError`` unless ``skip_bad``; then they are counted and written to
    ``reject_path`` (default ``<out>.rejects.txt``). On-chain transfers are read with the token table
    ``tokens`` (default ``config/tokens.yaml``).
    """
    if not paths:
        raise ReaderError("-", None, "no input files given")
    formats = {str(p): fmt or detect_format(p) for p in paths}
    readers = {name: reader_for(name, tokens) for name in set(formats.values())}
    stats = Stats()
    if skip_bad and reject_path is None:
        reject_path = out.with_name(out.name + ".rejects.txt")
    seq = 0
    with tempfile.TemporaryDirectory(prefix="coattail-import-") as tmpdir:
        spools = {k: _Spool(k, Path(tmpdir)) for k in TAPE_KINDS}
        with ExitStack() as stack:
            reject = stack.enter_context(open(reject_path, "w")) if skip_bad and reject_path else None
            bad = BadLines(skip_bad, reject, stats)
            for path in paths:
                try:
                    for chunk in readers[formats[str(path)]].read(path, bad, stats):
                        n = chunk.table.num_rows
                        seq_col = pa.array(np.arange(seq, seq + n, dtype=np.int64))
                        spools[chunk.kind].add(chunk.table.append_column("seq", seq_col))
                        seq += n
                except (OSError, EOFError, zlib.error) as e:
                    # whatever a reader did not name itself (a corrupt compressed stream found late)
                    problem = f"cannot read the file (truncated or corrupt?): {e}"
                    raise ReaderError(str(path), None, problem) from e
                if progress is not None:
                    progress(path)
        if seq == 0:
            raise ReaderError(
                ", ".join(str(p) for p in paths), None,
                "no trade, quote or transfer in the input: nothing to import",
            )
        with TapeWriter(out, overwrite=overwrite) as writer:
            for spool in spools.values():
                spool.drain(writer)
            sources = sorted({readers[f].source for f in formats.values()})
            manifest = writer.close(
                source=sources[0] if len(sources) == 1 else "+".join(sources),
                origin=[str(p) for p in paths],
                extra={
                    "import": {
                        "lines": stats.lines,
                        "bad_lines": stats.bad,
                        "skipped": dict(sorted(stats.skipped.items())),
                        "notes": stats.notes,
                    }
                },
            )
    return ImportResult(manifest, stats, formats, reject_path if skip_bad else None)
