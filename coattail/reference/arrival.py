"""A replay target that keeps only the reference's input: the arrival frame, built as records arrive.

A run's reference replays the tape again with the run's faults and seed (``coattail.run.judge``). Keeping
every handed-over Arrow table until the end (``replay.targets.memory.MemoryTarget``) and converting the
whole day at once held the day three times over: the replay's rows (every column of every kind), the
frame, and the conversion's intermediates. Here each hand-over is converted on arrival
(``from_arrival``, every rule of which reads one row alone) and the replay's rows are let go; the parts
are stacked at the end a column at a time, so only one column exists twice at any moment.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from coattail.reference.inputs import ARRIVAL_SCHEMA, from_arrival
from replay.targets.base import Target
from replay.targets.memory import stamped


class ArrivalTarget(Target):
    """Every record handed over, as the reference's arrival frame (``coattail.reference.inputs``)."""

    name = "reference"

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[pl.DataFrame] = []
        self._rows = 0

    def _send(self, table: pa.Table, ts_sent: int) -> None:
        part = from_arrival(stamped(table, ts_sent), first=self._rows)
        # the other kinds' fields, and a reason or raw text on a clean feed, hold nothing: broadcast
        # nulls instead of a buffer each (on a market day that is most of what the replay's rows hold)
        empty = [pl.lit(None, dtype=t).alias(c) for c, t in part.schema.items() if _all_null(part[c])]
        self._parts.append(part.with_columns(empty))
        self._rows += table.num_rows

    def frame(self) -> pl.DataFrame:
        """The arrival frame of everything sent so far: what ``from_arrival`` gives for all of it at once.

        Takes the parts over: a second call sees only what was sent after the first.
        """
        parts, self._parts = self._parts, []
        return stack(parts)


def stack(parts: list[pl.DataFrame]) -> pl.DataFrame:
    """``parts`` (arrival frames, in order) as one frame with one chunk per column; empties ``parts``.

    A column at a time: each column's pieces are joined and then dropped from the parts, so the peak is
    the frame plus one column, not twice the frame. A column null in every part stays a broadcast null
    (no buffer of the day's length), which is what converting the whole at once gives too.
    """
    height = sum(p.height for p in parts)
    if height == 0:
        parts.clear()
        return pl.DataFrame(schema=ARRIVAL_SCHEMA)
    columns: list[pl.Series] = []
    nulls: list[pl.Expr] = []
    for name, dtype in ARRIVAL_SCHEMA.items():
        pieces = [p.get_column(name) for p in parts]
        if all(_all_null(s) for s in pieces):
            nulls.append(pl.lit(None, dtype=dtype).alias(name))
        else:
            columns.append(pl.concat(pieces, rechunk=True))
        del pieces
        # in place: the caller's list must not keep the dropped columns alive
        parts[:] = [p.drop(name) for p in parts]
    parts.clear()
    frame = pl.DataFrame(columns, height=height).with_columns(nulls).select(list(ARRIVAL_SCHEMA))
    # arrival numbers run 0, 1, ... over the parts: say so, as one range over the whole does, so that
    # sorting by arrival costs nothing downstream
    return frame.with_columns(pl.col("arrival").set_sorted())


def _all_null(series: pl.Series) -> bool:
    return series.null_count() == series.len()
