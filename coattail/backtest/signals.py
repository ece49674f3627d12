"""Where a backtest's signals and market come from: a finished run, or tapes run through the engine here.

A run directory holds the pipeline's ``signals`` table (``pipeline/signals.parquet``) and names its tapes.
A tape is fed to the production engine in-process (``pipeline.engine.Engine``, the same kernel as
streaming and the reprocessor; no Kinesis, no Spark) with MOD-011 and the modules it consumes; tapes given
together are fed in their order, so a later day is traded with scores built on the days before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import polars as pl
import pyarrow as pa

from coattail.run.progress import Steps
from coattail.run.rundir import RunDir
from core.errors import CoattailError
from core.tape import Tape
from pipeline.config import Config, ConfigLoader
from pipeline.detectors.alpha_scoring import ALPHA_SCORES, SIGNALS, AlphaScoring, AlphaSettings
from pipeline.detectors.registry import ModuleRegistry
from pipeline.engine import Engine
from pipeline.jobs.loader import parsed_events

ENGINE_BATCH: Final = 500_000
"""Events per engine call: bounds memory, and the result does not depend on it."""
SIGNALS_FILE: Final = f"{SIGNALS.name}.parquet"


def signals_config(tapes: Sequence[Path], overrides: dict[str, Any]) -> Config:
    """The large tier with MOD-011 and what it consumes, the tapes' listed instruments as participants."""
    probe = ConfigLoader().load("large", env={})
    keys = sorted({k for path in tapes for k in Tape.open(path).instruments()})
    modules = ["MOD-001", "MOD-004", *AlphaScoring.consumes, AlphaScoring.module_id]
    return ConfigLoader().load("large", env={}, overrides={
        "modules": sorted(set(modules)), "instruments": probe.instruments.listed_names(keys), **overrides,
    })


def engine_tables(tapes: Sequence[Path], config: Config, steps: Steps) -> dict[str, pl.DataFrame]:
    """Run the engine over the tapes in order; MOD-011's tables (``signals``, ``alpha_scores``)."""
    engine = Engine(config, ModuleRegistry().build(config))
    found: dict[str, list[pa.Table]] = {t.name: [t.schema.empty_table()] for t in AlphaScoring.metric_tables}
    batch_id = 0
    for path in tapes:
        table = parsed_events(path, config)
        with steps.step(f"signals: {path.name}", total=table.num_rows) as task:
            for offset in range(0, table.num_rows, ENGINE_BATCH):
                result = engine.process(table.slice(offset, ENGINE_BATCH), batch_id)
                engine.commit(batch_id)
                batch_id += 1
                for name, parts in found.items():
                    if name in result.tables:
                        parts.append(result.tables[name])
                task.update(completed=min(offset + ENGINE_BATCH, table.num_rows))
    return {name: _frame(pa.concat_tables(parts)) for name, parts in found.items()}


def _frame(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)  # a Table always converts to a frame
    return frame


def scores_of_run(run: RunDir) -> tuple[pl.DataFrame, AlphaSettings]:
    """A run's ``alpha_scores`` table and the MOD-011 settings it ran with."""
    path = run.path / "pipeline" / f"{ALPHA_SCORES.name}.parquet"
    if not path.is_file():
        raise CoattailError(f"run {run.run_id} has no {path.name}: it ran without MOD-011, nothing to walk "
                            "forward with")
    settings = run.read_json("config.json").get("settings", {}).get(AlphaScoring.module_id, {})
    return pl.read_parquet(path), AlphaSettings.model_validate(settings)


def signals_of_run(run: RunDir) -> tuple[pl.DataFrame, list[Path]]:
    """A run's ``signals`` table and its tapes."""
    path = run.path / "pipeline" / SIGNALS_FILE
    if not path.is_file():
        raise CoattailError(f"run {run.run_id} has no {SIGNALS_FILE}: it ran without MOD-011 (run the large "
                            "tier, or give `coattail backtest` the tape)")
    tapes = [Path(p) for p in run.read_json("run.json").get("tapes", [])]
    return pl.read_parquet(path), tapes
