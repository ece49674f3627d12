"""MOD-006 and MOD-007 over real captures (Tardis Binance futures, a Binance spot WebSocket day), the
engine in micro-batches against the independent reference: same alerts, same flow metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coattail.reference import from_tape, run_reference
from core.tape import Tape
from pipeline.config import ConfigLoader
from pipeline.testkit import Item
from replay.readers.importer import import_files
from tests.conftest import REAL_TAPES
from tests.pipeline.detectors.test_volume_anomaly import close, same_alerts
from tests.pipeline.detectors.windowed_kit import run

MODULES = ("MOD-006", "MOD-007")
CAPTURES = {
    "tardis": [REAL_TAPES / "tardis" / "tardis_trades.csv", REAL_TAPES / "tardis" / "tardis_quotes.csv"],
    "binance-ws": [REAL_TAPES / "binance-ws" / "spot_btcusdt_20240808.gz"],
}


def tape_items(tape: Tape) -> list[Item]:
    """The tape's events in tape order (its arrival order without faults), as wire items."""
    rows: list[tuple[Any, dict[str, Any]]] = [("trade", r) for r in tape.read("trade").to_pylist()]
    rows += [("quote", r) for r in tape.read("quote").to_pylist()]
    rows.sort(key=lambda kr: (kr[1]["ts_event"], kr[1]["seq"]))
    return [(k, {n: v for n, v in r.items() if n != "seq"}) for k, r in rows]


@pytest.mark.parametrize("capture", sorted(CAPTURES))
def test_real_capture_through_mod006_and_mod007_agrees_with_the_reference(
    tmp_path: Path, capture: str
) -> None:
    import_files(CAPTURES[capture], tmp_path / "tape")
    tape = Tape.open(tmp_path / "tape")
    # real minutes are balanced: 5-second windows and lower bounds make real flow fire both modules
    cfg = ConfigLoader().load(
        "medium",
        env={},
        overrides={
            "modules": list(MODULES),
            "settings.MOD-006.window_seconds": 5,
            "settings.MOD-006.min_notional_usd": 20_000.0,
            "settings.MOD-007.threshold_fraction": 0.05,
        },
    )
    items = tape_items(tape)
    got = run(cfg, MODULES, items, batch_rows=len(items) // 7 + 1)
    ref = run_reference(from_tape(tape), cfg)
    alerts = got["alerts"].to_pylist()
    assert {a["kind"] for a in alerts} == {"flow_imbalance", "sliced_whale"}
    assert same_alerts(ref.alert_rows(), alerts)
    flow = sorted(got["flow_metrics"].to_pylist(), key=lambda m: (m["symbol"], m["window_start"]))
    want = ref.flow_metrics.to_dicts()
    assert len(flow) == len(want) > 0
    for g, w in zip(flow, want, strict=True):
        assert close(g, {k: w[k] for k in g})

