"""What a run produced, in one shape shared by the pipeline's capture and the reference implementation.

Stored in a run directory as Parquet (``alerts.parquet``, ``dq_metrics.parquet``,
``spread_metrics.parquet``) plus the record counts in ``summary.json``; validation, diff and the report
read only this.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import CoattailError
from pipeline.alerts import ALERT_SCHEMA

DQ_COLUMNS: Final[dict[str, Any]] = {
    "exchange": pl.Utf8,
    "symbol": pl.Utf8,
    "window_start": pl.Int64,
    "reason": pl.Utf8,
    "count": pl.Int64,
}
"""``dq_metrics`` rows: stream rules per window; quarantine reasons with ``window_start`` null."""

SPREAD_COLUMNS: Final[dict[str, Any]] = {
    "exchange": pl.Utf8,
    "symbol": pl.Utf8,
    "window_start": pl.Int64,
    "window_end": pl.Int64,
    "min_bps": pl.Float64,
    "mean_bps": pl.Float64,
    "max_bps": pl.Float64,
    "last_bps": pl.Float64,
    "count": pl.Int64,
}

RECORD_REASONS: Final = (
    "PARSE_ERROR",
    "SCHEMA_VERSION",
    "UNKNOWN_TYPE",
    "MISSING_FIELD",
    "BAD_TYPE",
    "NON_POSITIVE_PRICE",
    "NON_POSITIVE_SIZE",
    "BAD_SIDE",
)
"""Quarantine reason codes (docs/DETECTORS.md, MOD-004 record rules); the rest are stream rules."""

_FILES: Final = {"alerts": "alerts.parquet", "dq": "dq_metrics.parquet", "spread": "spread_metrics.parquet"}


@dataclass(frozen=True)
class RunOutputs:
    """Alerts, DQ counts and spread metrics of one run (or of the reference over the same input)."""

    alerts: pa.Table
    dq: pl.DataFrame
    spread_metrics: pl.DataFrame
    records_in: int
    valid: int

    @property
    def quarantined(self) -> int:
        """Records that failed a record rule."""
        return self.records_in - self.valid

    def alert_rows(self) -> list[dict[str, Any]]:
        """The alerts as dicts."""
        rows: list[dict[str, Any]] = self.alerts.to_pylist()
        return rows

    def save(self, directory: Path) -> None:
        """Write the three Parquet files into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        pq.write_table(self.alerts, directory / _FILES["alerts"])
        self.dq.write_parquet(directory / _FILES["dq"])
        self.spread_metrics.write_parquet(directory / _FILES["spread"])

    @classmethod
    def load(cls, directory: Path, *, records_in: int = 0, valid: int = 0) -> RunOutputs:
        """Read what ``save`` wrote; a missing file names the directory and what to do."""
        missing = [name for name in _FILES.values() if not (directory / name).is_file()]
        if missing:
            raise CoattailError(
                f"{directory} lacks {', '.join(missing)}: it is not a finished run directory "
                "(run `coattail run TAPE` to make one)"
            )
        return cls(
            alerts=conform_alerts(pq.read_table(directory / _FILES["alerts"])),
            dq=conform(pl.read_parquet(directory / _FILES["dq"]), DQ_COLUMNS),
            spread_metrics=conform(pl.read_parquet(directory / _FILES["spread"]), SPREAD_COLUMNS),
            records_in=records_in,
            valid=valid,
        )


def conform(frame: pl.DataFrame, columns: dict[str, Any]) -> pl.DataFrame:
    """``frame`` with exactly ``columns`` (missing ones null) in that order and those types."""
    present = [
        pl.col(c).cast(t) if c in frame.columns else pl.lit(None, dtype=t).alias(c)
        for c, t in columns.items()
    ]
    return frame.select(present) if frame.width else pl.DataFrame(schema=columns)


def conform_alerts(table: pa.Table) -> pa.Table:
    """An alerts table in ``ALERT_SCHEMA`` (columns selected and cast; absent stamps become null)."""
    columns = []
    for field in ALERT_SCHEMA:
        if field.name in table.schema.names:
            columns.append(table.column(field.name).cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=ALERT_SCHEMA)
