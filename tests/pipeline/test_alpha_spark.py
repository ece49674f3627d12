"""MOD-011 in Spark: streaming in both ``spark.keyed_state`` modes (small micro-batches, state across
them) and the reprocessor give the batch engine's ``alpha_scores``, ``signals`` and follow signals on a
tape of planted whales whose price drifts their way, and (streaming) on one of MOD-010 exchange inflows,
of BTC or of USDT (a stablecoin counted for BTC's market)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pipeline.config import Config, RuntimeSettings
from pipeline.jobs.loader import load_tape
from pipeline.jobs.reprocessor import reprocess
from pipeline.sinks.iceberg import IcebergSink
from pipeline.testkit import run_engine
from tests.pipeline.detectors.alpha_kit import SEC, T0, config, planted
from tests.pipeline.keyed_kit import rows
from tests.pipeline.test_basis_spark import stream, write_tape

pytestmark = pytest.mark.spark
TABLES = ("alerts", "alpha_scores", "signals")
MODULES = ["MOD-001", "MOD-006", "MOD-007", "MOD-009", "MOD-010", "MOD-011"]


def cfg(keyed_state: str, tmp: Path, **overrides: Any) -> Config:
    base = config(**{"spark.keyed_state": keyed_state, **overrides})
    return base.model_copy(update={"runtime": RuntimeSettings(state_dir=tmp / "state")})


def items(inflows: str = "") -> list[Any]:
    return planted(3, edge_bps=20.0, whales=16, inflows=bool(inflows), stable=inflows == "USDT")


def comparable(tables: dict[str, pa.Table]) -> dict[str, Any]:
    return {"alerts": rows(tables["alerts"], drop=("ts_written",)), "scores": rows(tables["alpha_scores"]),
            "signals": rows(tables["signals"])}


def expected(tmp: Path, inflows: str = "", overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    results = run_engine(cfg("driver", tmp, **(overrides or {})), items(inflows))
    want = comparable({n: pa.concat_tables([r.tables[n] for r in results]) for n in TABLES})
    assert want["signals"] and want["scores"]
    return want


@pytest.mark.parametrize("inflows", ["", "BTC", "USDT"])
@pytest.mark.parametrize("keyed_state", ["driver", "state_store"])
def test_streaming_in_both_keyed_modes_gives_the_batch_result(
    spark: Any, tmp_path: Path, keyed_state: str, inflows: str
) -> None:
    want = expected(tmp_path, inflows)
    if inflows:  # MOD-010's wallets are scored and followed
        assert {json.loads(r)["detector"] for r in want["signals"]} == {"MOD-010"}
    got = stream(spark, cfg(keyed_state, tmp_path), items(inflows), tmp_path, TABLES, 200)
    assert comparable(got) == want


def test_the_reprocessor_gives_the_batch_result(spark: Any, tmp_path: Path) -> None:
    """With a false-positive bound, so its significance test is covered in Spark too."""
    bound = {"settings.MOD-011.false_positive_rate": 0.05}
    c = cfg("driver", tmp_path, **bound)
    sink = IcebergSink(c)
    load_tape(write_tape(tmp_path / "tape", items()), sink)
    result = reprocess(spark, c, modules=MODULES, start_us=T0, end_us=T0 + 3600 * SEC, name="alpha",
                       sink=sink)
    assert comparable(result.tables) == expected(tmp_path, overrides=bound)
