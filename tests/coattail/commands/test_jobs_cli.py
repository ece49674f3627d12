"""``coattail load`` and ``coattail reprocess``: the command line of the batch jobs."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from coattail.cli import app
from core.errors import ConfigError
from core.tape import TapeWriter, tape_schema
from core.timefmt import parse_time

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00Z


@pytest.fixture(autouse=True)
def state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    import os

    for name in list(os.environ):
        if name.startswith("COATTAIL"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COATTAIL_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def tape(path: Path) -> Path:
    rows = [
        {
            "exchange": "coinbase",
            "symbol": "BTC-USD",
            "trade_id": i,
            "price": 100.0,
            "qty": 1.0,
            "side": "sell",
            "ts_event": T0 + i,
            "ts_recv": None,
            "seq": i,
        }
        for i in range(10)
    ]
    with TapeWriter(path) as w:
        w.write("trade", pa.Table.from_pylist(rows, schema=tape_schema("trade")))
        w.close(source="synthetic")
    return path


def test_load_twice_keeps_one_copy(tmp_path: Path, state_dir: Path) -> None:
    t = tape(tmp_path / "t")
    for _ in range(2):
        result = CliRunner().invoke(app, ["load", str(t)])
        assert result.exit_code == 0, result.output
        assert "2026-01-01" in result.output and "loaded 10 rows" in result.output
    from pipeline.config import ConfigLoader
    from pipeline.sinks.iceberg import IcebergSink

    config = ConfigLoader().load("small", env={"COATTAIL_STATE_DIR": str(state_dir)})
    assert IcebergSink(config).read("trades").num_rows == 10


def test_errors_are_one_line(tmp_path: Path) -> None:
    missing = CliRunner().invoke(app, ["load", str(tmp_path / "nope")])
    assert (
        missing.exit_code == 1 and "no manifest.json" in missing.output and "Traceback" not in missing.output
    )
    args = ["reprocess", "--from", "2026-01-01T00:00Z", "--to", "2026-01-02T00:00Z"]
    bad_name = CliRunner().invoke(app, [*args, "--output", "Live"])
    assert bad_name.exit_code == 1 and "output name 'Live'" in bad_name.output
    bad_module = CliRunner().invoke(app, [*args, "--output", "x", "--detectors", "MOD-042"])
    assert bad_module.exit_code == 1 and "unknown detector module 'MOD-042'" in bad_module.output
    backwards = CliRunner().invoke(
        app, ["reprocess", "--from", "2026-01-02", "--to", "2026-01-01", "--output", "x"]
    )
    assert backwards.exit_code == 1 and "empty time range" in backwards.output


def test_parse_time() -> None:
    assert parse_time("2026-01-01T00:00Z", "--from") == T0
    assert parse_time("2026-01-01", "--from") == T0  # no zone: UTC
    assert parse_time("2026-01-01T01:00+01:00", "--from") == T0
    assert parse_time(str(T0 + 5), "--to") == T0 + 5
    with pytest.raises(ConfigError, match="--to 'soon'"):
        parse_time("soon", "--to")
