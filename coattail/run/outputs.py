"""What a run produced, in one shape shared by the pipeline's capture and the reference implementation.

The shape is the pipeline's tables (``pipeline.tables``): alerts, ``dq_metrics``, ``spread_metrics`` and
``flow_metrics``, ``basis_metrics`` and ``whale_impact`` (the last three absent from a run directory
written before MOD-006, MOD-005 and MOD-008: read as empty).
Stored in a run directory as one Parquet file per table (``alerts.parquet``, ...) plus the record
counts in ``summary.json``; validation, diff and the report read only this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import CoattailError
from pipeline.detectors.alpha_scoring import ALPHA_SCORES, SIGNALS
from pipeline.detectors.basis import BASIS_METRICS
from pipeline.detectors.data_quality import DQ_METRICS
from pipeline.detectors.flow_imbalance import FLOW_METRICS_TABLE
from pipeline.detectors.spread import SPREAD_METRICS_TABLE
from pipeline.detectors.whale_impact import WHALE_IMPACT_TABLE
from pipeline.tables import ALERTS, TableDef


def polars_columns(table: TableDef) -> dict[str, Any]:
    """A table's columns as Polars types, in order."""
    return dict(pl.DataFrame(table.schema.empty_table()).schema)


DQ_COLUMNS: Final = polars_columns(DQ_METRICS)
"""``dq_metrics`` rows: stream rules per window; quarantine reasons with ``window_start`` null."""
SPREAD_COLUMNS: Final = polars_columns(SPREAD_METRICS_TABLE)
FLOW_COLUMNS: Final = polars_columns(FLOW_METRICS_TABLE)
BASIS_COLUMNS: Final = polars_columns(BASIS_METRICS)
IMPACT_COLUMNS: Final = polars_columns(WHALE_IMPACT_TABLE)
ALPHA_COLUMNS: Final = polars_columns(ALPHA_SCORES)
SIGNAL_COLUMNS: Final = polars_columns(SIGNALS)

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

_FILES: Final = {
    part: f"{table.name}.parquet"
    for part, table in (("alerts", ALERTS), ("dq", DQ_METRICS), ("spread", SPREAD_METRICS_TABLE))
}
_FLOW_FILE: Final = f"{FLOW_METRICS_TABLE.name}.parquet"
_BASIS_FILE: Final = f"{BASIS_METRICS.name}.parquet"
_IMPACT_FILE: Final = f"{WHALE_IMPACT_TABLE.name}.parquet"
_ALPHA_FILE: Final = f"{ALPHA_SCORES.name}.parquet"
_SIGNALS_FILE: Final = f"{SIGNALS.name}.parquet"
"""``_FLOW_FILE``, ``_BASIS_FILE``, ``_IMPACT_FILE``, ``_ALPHA_FILE`` and ``_SIGNALS_FILE`` are optional on
load: run directories written before MOD-006, MOD-005, MOD-008 and MOD-011 existed have none."""


@dataclass(frozen=True)
class RunOutputs:
    """Alerts, DQ counts and metric tables of one run (or of the reference over the same input)."""

    alerts: pa.Table
    dq: pl.DataFrame
    spread_metrics: pl.DataFrame
    records_in: int
    valid: int
    flow_metrics: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=FLOW_COLUMNS))
    basis_metrics: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=BASIS_COLUMNS))
    whale_impact: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=IMPACT_COLUMNS))
    alpha_scores: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=ALPHA_COLUMNS))
    signals: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=SIGNAL_COLUMNS))

    @property
    def quarantined(self) -> int:
        """Records that failed a record rule."""
        return self.records_in - self.valid

    def alert_rows(self) -> list[dict[str, Any]]:
        """The alerts as dicts."""
        rows: list[dict[str, Any]] = self.alerts.to_pylist()
        return rows

    def save(self, directory: Path) -> None:
        """Write one Parquet file per table into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        pq.write_table(self.alerts, directory / _FILES["alerts"])
        self.dq.write_parquet(directory / _FILES["dq"])
        self.spread_metrics.write_parquet(directory / _FILES["spread"])
        self.flow_metrics.write_parquet(directory / _FLOW_FILE)
        self.basis_metrics.write_parquet(directory / _BASIS_FILE)
        self.whale_impact.write_parquet(directory / _IMPACT_FILE)
        self.alpha_scores.write_parquet(directory / _ALPHA_FILE)
        self.signals.write_parquet(directory / _SIGNALS_FILE)

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
            alerts=ALERTS.conform(pq.read_table(directory / _FILES["alerts"])),
            dq=conform(pl.read_parquet(directory / _FILES["dq"]), DQ_COLUMNS),
            spread_metrics=conform(pl.read_parquet(directory / _FILES["spread"]), SPREAD_COLUMNS),
            records_in=records_in,
            valid=valid,
            flow_metrics=_optional(directory / _FLOW_FILE, FLOW_COLUMNS),
            basis_metrics=_optional(directory / _BASIS_FILE, BASIS_COLUMNS),
            whale_impact=_optional(directory / _IMPACT_FILE, IMPACT_COLUMNS),
            alpha_scores=_optional(directory / _ALPHA_FILE, ALPHA_COLUMNS),
            signals=_optional(directory / _SIGNALS_FILE, SIGNAL_COLUMNS),
        )


def _optional(path: Path, columns: dict[str, Any]) -> pl.DataFrame:
    """The table in ``path`` with ``columns``, or none of its rows when the file does not exist."""
    return conform(pl.read_parquet(path) if path.is_file() else pl.DataFrame(), columns)


def conform(frame: pl.DataFrame, columns: dict[str, Any]) -> pl.DataFrame:
    """``frame`` with exactly ``columns`` (missing ones null) in that order and those types."""
    present = [
        pl.col(c).cast(t) if c in frame.columns else pl.lit(None, dtype=t).alias(c)
        for c, t in columns.items()
    ]
    return frame.select(present) if frame.width else pl.DataFrame(schema=columns)

