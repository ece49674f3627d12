"""Streaming CSV with typed columns and per-line errors (shared by the Binance and Tardis readers).

Columns are read as text by pyarrow's streaming reader (bounded blocks, works on zip members) and cast
with polars; a value that does not cast, a missing value or a row with the wrong number of columns is a
bad line named by its line number.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv

from core.errors import ReaderError
from replay.readers.base import BadLines

BLOCK_BYTES = 16 << 20

# plausible epoch times (2000-01-01 .. 2100-01-01) in each unit
MS_RANGE = (946_684_800_000, 4_102_444_800_000)
US_RANGE = (MS_RANGE[0] * 1000, MS_RANGE[1] * 1000)


def iter_typed(
    reopen: Callable[[], IO[bytes]],
    path: str,
    names: list[str],
    types: dict[str, Any],
    bad: BadLines,
    *,
    header: bool,
) -> Iterator[pl.DataFrame]:
    """Typed frames of the file's rows; ``names`` name the columns by position (a header row is skipped).

    Each frame has a ``_line`` column (1-based line number in the file). pyarrow's streaming reader
    converts the columns directly while every block is clean (in file order, a block at a time); from
    the first doubtful block on (a value that does not convert, a missing value, a wrong number of
    columns) the careful reader takes over and names each bad line.
    """
    done = 0
    if not bad.skip_bad:
        with reopen() as source:
            for frame in _fast(source, names, types, header):
                n = frame.height
                if n and frame.select(pl.any_horizontal([pl.col(c).is_null() for c in types]).any()).item():
                    break
                yield frame.with_columns(
                    (pl.int_range(0, n, dtype=pl.Int64) + (2 if header else 1) + done).alias("_line")
                )
                done += n
            else:
                return
    with reopen() as source:
        yield from _careful(source, reopen, path, names, types, bad, header=header, done=done)


_ARROW = {pl.Int64: pa.int64(), pl.Float64: pa.float64(), pl.Boolean: pa.bool_(), pl.String: pa.string()}


def _fast(source: IO[bytes], names: list[str], types: dict[str, Any], header: bool) -> Iterator[pl.DataFrame]:
    """Typed frames until the end or the first block pyarrow cannot convert (then it just stops)."""
    try:
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(
                column_names=names, skip_rows=1 if header else 0, block_size=BLOCK_BYTES
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={c: _ARROW[t] for c, t in types.items()}, include_columns=list(types)
            ),
        )
        for batch in reader:
            frame = pl.from_arrow(pa.Table.from_batches([batch]))
            assert isinstance(frame, pl.DataFrame)
            yield frame
    except (pa.ArrowInvalid, OSError, EOFError, zlib.error):
        yield pl.DataFrame({c: pl.Series([None], dtype=t) for c, t in types.items()})


def _careful(
    source: IO[bytes],
    reopen: Callable[[], IO[bytes]],
    path: str,
    names: list[str],
    types: dict[str, Any],
    bad: BadLines,
    *,
    header: bool,
    done: int,
) -> Iterator[pl.DataFrame]:
    """Every column read as text, then cast; each bad value or row is reported with its line."""
    skipped: list[int | None] = []
    refused: list[Any] = []
    pending: list[Any] = []

    def invalid(row: Any) -> str:
        if not bad.skip_bad:
            refused.append(row)
            return "error"
        pending.append(row)
        return "skip"

    def flush(search_from: int) -> None:
        # pyarrow's streaming reader does not number the rows it skips: find them in one pass
        found = _locate_many(reopen, [row.text or "" for row in pending], search_from)
        for row, line in zip(pending, found, strict=True):
            problem = f"expected {row.expected_columns} columns, found {row.actual_columns}"
            bad(path, row.number if row.number is not None else line, problem, row.text or "")
        skipped.extend(found)
        pending.clear()

    def translate(e: Exception, fallback_line: int | None) -> ReaderError:
        if refused:
            row = refused[0]
            line = row.number if row.number is not None else _locate(reopen, row.text, header)
            return ReaderError(
                path, line, f"expected {row.expected_columns} columns, found {row.actual_columns}"
            )
        if "Empty CSV file" in str(e):
            return ReaderError(path, None, "the file is empty")
        return ReaderError(path, fallback_line, f"cannot read the CSV (truncated or corrupt?): {e}")

    first_line = (2 if header else 1) + done
    try:
        # skip what was already read line by line: pyarrow's skip_rows must fit in its first block
        for _ in range(first_line - 1):
            if not source.readline():
                break
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(column_names=names, block_size=BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(invalid_row_handler=invalid),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names}),
        )
    except (pa.ArrowInvalid, OSError, EOFError, zlib.error) as e:
        if done and "Empty CSV file" in str(e):
            return
        raise translate(e, None) from e
    done = 0
    while True:
        try:
            before = len(skipped)
            batch = reader.read_next_batch()
        except StopIteration:
            if pending:
                flush(first_line + done + before)
            break
        except (pa.ArrowInvalid, OSError, EOFError, zlib.error) as e:
            raise translate(e, first_line + done) from e
        if pending:
            flush(first_line + done + before)
        n = batch.num_rows
        frame = pl.from_arrow(pa.Table.from_batches([batch]))
        assert isinstance(frame, pl.DataFrame)
        frame = frame.with_columns(
            (pl.int_range(0, n, dtype=pl.Int64) + first_line + done + before).alias("_line")
        )
        done += n
        typed = frame.with_columns([_cast(c, t) for c, t in types.items()])
        broken = typed.select(pl.any_horizontal([pl.col(c).is_null() for c in types])).to_series()
        if bool(broken.any()):
            for raw, ok in zip(
                frame.filter(broken).iter_rows(named=True),
                typed.filter(broken).iter_rows(named=True),
                strict=True,
            ):
                col = next(c for c in types if ok[c] is None)
                value = raw[col]
                line_text = ",".join(str(raw[n_]) for n_ in names)
                what = "missing" if value in (None, "") else f"{value!r} is not a valid {types[col]}"
                bad(path, int(raw["_line"]), f"column {col}: {what}", line_text)
            typed = typed.filter(~broken)
        yield typed.select([*types, "_line"])


def _locate_many(reopen: Callable[[], IO[bytes]], texts: list[str], start: int) -> list[int | None]:
    """The line numbers of ``texts`` (in file order), searching from line ``start``."""
    out: list[int | None] = [None] * len(texts)
    k = 0
    with reopen() as fh:
        for n, line in enumerate(fh, start=1):
            if k == len(texts):
                break
            if n >= start and line.rstrip(b"\r\n") == texts[k].encode().rstrip(b"\r\n"):
                out[k] = n
                k += 1
    return out


def _locate(reopen: Callable[[], IO[bytes]], text: str | None, header: bool) -> int | None:
    if text is None:
        return None
    want = text.encode().rstrip(b"\r\n")
    with reopen() as fh:
        for n, line in enumerate(fh, start=1):
            if line.rstrip(b"\r\n") == want and (n > 1 or not header):
                return n
    return None


def _cast(col: str, dtype: Any) -> pl.Expr:
    text = pl.col(col).str.strip_chars()
    if dtype == pl.Boolean:
        return (
            text.str.to_lowercase()
            .replace_strict({"true": True, "false": False}, default=None, return_dtype=pl.Boolean)
            .alias(col)
        )
    return text.cast(dtype, strict=False).alias(col)


def time_unit(path: str, first: int) -> tuple[int, tuple[int, int]]:
    """(multiplier to µs, plausible range) from a file's first time value: ms or µs."""
    if MS_RANGE[0] <= first < MS_RANGE[1]:
        return 1000, MS_RANGE
    if US_RANGE[0] <= first < US_RANGE[1]:
        return 1, US_RANGE
    raise ReaderError(path, None, f"first timestamp {first} is neither epoch ms nor µs between 2000 and 2100")


def check_times(
    frame: pl.DataFrame, col: str, rng: tuple[int, int], path: str, bad: BadLines
) -> pl.DataFrame:
    """Drop (as bad lines) rows whose time is outside the file's unit's plausible range."""
    out = (frame[col] < rng[0]) | (frame[col] >= rng[1])
    if not bool(out.any()):
        return frame
    for row in frame.filter(out).iter_rows(named=True):
        bad(
            path,
            int(row["_line"]),
            f"column {col}: timestamp {row[col]} out of range for this file's unit",
            "",
        )
    return frame.filter(~out)
