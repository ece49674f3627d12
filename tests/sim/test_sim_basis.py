"""The ``basis_dislocation`` scenario kind: its labels name every configured MOD-005 pair it moves, the
pipeline hits each of them and raises no other MOD-005 alert, and agrees with the reference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coattail.reference import from_tape, run_reference
from core.tape import Tape
from core.timefmt import parse_duration, parse_time
from pipeline.config import Config, ConfigLoader
from pipeline.testkit import Item, run_engine
from sim.generator import GenerateSpec, generate
from sim.market import instruments
from sim.scenario import load_scenario

SCENARIO = Path(__file__).parent / "scenarios" / "basis-dislocation.yaml"
SYMBOLS = ("BTCUSDT", "ETHUSDT")
EXCHANGES = ("binance", "coinbase", "binance-futures")


def medium() -> Config:
    """The medium tier over the generated instruments, with the pairs they make."""
    names = [f"{i.exchange}:{i.symbol}" for i in instruments(list(SYMBOLS), list(EXCHANGES))]
    pairs = [["binance:BTCUSDT", "coinbase:BTC-USD"], ["binance:ETHUSDT", "coinbase:ETH-USD"],
             ["binance:BTCUSDT", "binance-futures:BTCUSDT"]]
    return ConfigLoader().load("medium", env={}, overrides={
        "instruments": names,
        "settings.MOD-005.pairs": pairs,
    })


def tape_items(tape: Tape) -> list[Item]:
    """The tape's events in tape order ``(ts_event, seq)``, as engine input."""
    rows: list[tuple[int, int, Any, dict[str, Any]]] = []
    for kind in ("trade", "quote"):
        for row in tape.read(kind).to_pylist():
            seq = row.pop("seq")
            rows.append((row["ts_event"], seq, kind, row))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [(kind, row) for _, _, kind, row in rows]


def test_dislocations_are_labelled_per_pair_and_detected(tmp_path: Path) -> None:
    cfg = medium()
    spec = GenerateSpec(load_scenario(str(SCENARIO)), SYMBOLS, EXCHANGES,
                        parse_time("2026-01-01T00:00Z", "--start"), parse_duration("40m"), 7, 0.02)
    manifest = generate(spec, cfg, tmp_path / "t")
    labels = [lb for lb in manifest.labels if lb.detector == "MOD-005"]
    # binance BTCUSDT is in two configured pairs, coinbase ETH-USD in one
    assert sorted((lb.exchange, lb.symbol) for lb in labels) == [
        ("binance|binance-futures", "BTC"), ("binance|coinbase", "BTC"), ("binance|coinbase", "ETH"),
    ]
    tape = Tape.open(tmp_path / "t")
    results = run_engine(cfg, tape_items(tape))
    alerts = [a for r in results for a in r.alerts.to_pylist() if a["detector"] == "MOD-005"]
    for lb in labels:
        hits = [a for a in alerts if (a["exchange"], a["symbol"]) == (lb.exchange, lb.symbol)
                and a["window_start"] < lb.end_us and a["window_end"] > lb.start_us]
        assert len(hits) == 1, lb
    assert len(alerts) == len(labels)  # nothing natural looks like a dislocation
    reference = run_reference(from_tape(tape), cfg)
    ours = sorted((a["alert_id"], a["severity"], round(a["value"], 6)) for a in alerts)
    theirs = sorted((a["alert_id"], a["severity"], round(a["value"], 6))
                    for a in reference.alerts.to_pylist() if a["detector"] == "MOD-005")
    assert ours == theirs
    basis = sum(r.tables["basis_metrics"].num_rows for r in results)
    assert basis == reference.basis_metrics.height > 0
