"""The tape source numbers its rows in tape order."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from pipeline.engine import arrival_order
from pipeline.parse import parse_batch
from pipeline.source.tape import TapeRows
from tests.pipeline.keyed_kit import write_tape


def test_a_tape_numbers_its_rows_in_tape_order_even_when_seq_disagrees(tmp_path: Path) -> None:
    """The tape source's sequence numbers are tape positions, so sorting by them is tape order."""
    rows_ = TapeRows(write_tape(tmp_path / "t"))
    raw = pa.Table.from_batches([rows_.raw(0, 120), rows_.raw(120, len(rows_))])
    parsed = pa.Table.from_batches([parse_batch(b) for b in raw.to_batches()])
    assert arrival_order(parsed).to_pylist() == list(range(240))
    ts = parsed.column("ts_event").to_pylist()
    assert ts == sorted(ts)  # tape order (ts_event, seq), while seq alone is a permutation
