"""The asset and global stage: released items in a fixed order whatever the micro-batches, state that
survives a restart, participants that hold a group back, and a stage that costs nothing when unused."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ConfigError, PipelineError
from core.events import QUOTE_SCHEMA, TRADE_SCHEMA, EventKind
from core.frozen import Frozen
from pipeline.alerts import alert_id
from pipeline.config import Config, ConfigLoader
from pipeline.cross import CLOCKS, FEED
from pipeline.detectors.base import (
    META_COLUMNS,
    QUOTE_FLAGS,
    TRADE_FLAGS,
    BaseDetector,
    CrossDetector,
    DetectorInput,
    DetectorOutput,
    alerts_frame,
)
from pipeline.detectors.registry import ModuleRegistry
from pipeline.detectors.whale import WhaleSettings
from pipeline.engine import Engine
from pipeline.testkit import alerts_of, quote, run_engine, trade
from tests.pipeline.keyed_kit import run_state_store

T0 = 1_767_225_600_000_000
SEC = 1_000_000
PROBE = "MOD-990"
TradeItem = tuple[EventKind, dict[str, Any]]


class AssetWhaleTally(CrossDetector[WhaleSettings]):
    """Test module: per asset, numbers the whales in release order (so any change of order shows)."""

    module_id: ClassVar[str] = PROBE
    name: ClassVar[str] = "asset-whale-tally"
    consumes: ClassVar[tuple[str, ...]] = ("MOD-001",)
    settings_model: ClassVar[type[Frozen]] = WhaleSettings
    received: ClassVar[list[pd.DataFrame]] = []
    """Every frame ``process_group`` was handed, in order (tests reset it)."""

    def new_state(self) -> dict[str, Any]:
        return {"count": 0}

    def process_group(self, group: str, items: pd.DataFrame, state: Any) -> tuple[DetectorOutput, Any]:
        AssetWhaleTally.received.append(items.copy())
        rows = []
        for item in items.itertuples():
            state["count"] += 1
            rows.append({
                "alert_id": alert_id(PROBE, "", group, state["count"]), "detector": PROBE, "kind": "tally",
                "exchange": "", "symbol": group, "ts_event": int(item.decision_ts), "window_start": None,
                "window_end": None, "severity": "low", "value": float(state["count"]), "threshold": 0.0,
                "evidence": {"whale": item.alert_id, "clock": int(item.clock)}, "event_ids": [],
                "ts_sent": None, "ts_ingest": None, "ts_written": None,
            })
        return DetectorOutput(alerts=alerts_frame(rows)), state


def registry() -> ModuleRegistry:
    reg = ModuleRegistry()
    reg.register(AssetWhaleTally)
    return reg


def config(instruments: list[str]) -> Config:
    return ConfigLoader(registry=registry()).load(
        "small", env={}, overrides={"modules": ["MOD-001", PROBE], "instruments": instruments}
    )


BTC = ["binance:BTCUSDT", "coinbase:BTC-USD"]


@st.composite
def two_venues(draw: st.DrawFn) -> list[TradeItem]:
    """Trades of BTC on two venues, whales among them, interleaved in any arrival order."""
    items: list[TradeItem] = []
    for exchange, symbol in (("binance", "BTCUSDT"), ("coinbase", "BTC-USD")):
        ts = T0
        for i in range(draw(st.integers(1, 12))):
            ts += draw(st.integers(0, 3)) * SEC
            qty = draw(st.sampled_from([1.0, 30.0]))  # 30 BTC at 50k: a whale
            items.append(trade(i + 1, 50_000.0, qty, ts, exchange=exchange, symbol=symbol))
    order = draw(st.permutations(range(len(items))))
    # keep each venue's own order (a key's arrival order), interleave the venues freely
    per_key: dict[str, list[TradeItem]] = {}
    for item in items:
        per_key.setdefault(item[1]["exchange"], []).append(item)
    picks = [items[i][1]["exchange"] for i in order]
    return [per_key[ex].pop(0) for ex in picks]


def tallies(results: list[Any]) -> list[tuple[str, float, str]]:
    alerts = alerts_of(results)
    mine = alerts[alerts["detector"] == PROBE] if len(alerts) else alerts
    return sorted((r.symbol, r.value, r.evidence) for r in mine.itertuples())


def reference(items: list[TradeItem]) -> list[tuple[str, float, str]]:
    """Release rule applied directly: a whale is numbered once both venues' clocks are past its clock,
    in (clock, ts, exchange, symbol, alert id) order."""
    clocks: dict[str, int] = {}
    whales = []
    for _kind, row in items:
        ex = row["exchange"]
        clocks[ex] = max(clocks.get(ex, 0), row["ts_event"])
        if row["price"] * row["qty"] >= 1_000_000:
            whales.append((clocks[ex], row["ts_event"], ex, row["symbol"],
                           alert_id("MOD-001", ex, row["symbol"], row["trade_id"])))
    floor = min(clocks.get("binance", 0), clocks.get("coinbase", 0))
    out = []
    for n, (clock, _ts, _ex, _sym, aid) in enumerate(sorted(w for w in whales if w[0] < floor), start=1):
        out.append(("BTC", float(n), f'{{"clock":{clock},"whale":"{aid}"}}'))
    return sorted(out)


def received(run: Callable[[], object]) -> pd.DataFrame:
    """Everything the probe module was handed during ``run``, as one frame."""
    AssetWhaleTally.received.clear()
    run()
    frames = AssetWhaleTally.received
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


@settings(max_examples=40)
@given(items=two_venues(), cuts=st.lists(st.integers(1, 24), max_size=4))
def test_any_split_releases_the_same_items_in_the_same_order(items: list[TradeItem], cuts: list[int]) -> None:
    cfg = config(BTC)
    whole: list[Any] = []
    seen = received(lambda: whole.extend(run_engine(cfg, items, registry=registry())))
    split: list[Any] = []
    with tempfile.TemporaryDirectory() as tmp:
        # driver mode restarted before every batch: pending items go through the JSON state
        seen_split = received(
            lambda: split.extend(run_engine(cfg, items, cuts, registry=registry(), state_dir=Path(tmp) / "s"))
        )
        keyed: list[Any] = []
        seen_keyed = received(
            lambda: keyed.extend(run_state_store(cfg, items, cuts, Path(tmp) / "k", registry()))
        )
    assert tallies(split) == tallies(keyed) == tallies(whole) == reference(items)
    # the module is handed identical frames (values and dtypes) whatever the split or the mode
    for other in (seen_split, seen_keyed):
        pd.testing.assert_frame_equal(other, seen)


def test_state_survives_a_restart_between_batches(tmp_path: Path) -> None:
    cfg = config(BTC)
    items = [trade(i, 50_000.0, 30.0, T0 + i * SEC, exchange=ex, symbol=sym)
             for i in range(1, 6) for ex, sym in (("binance", "BTCUSDT"), ("coinbase", "BTC-USD"))]
    cuts = [1, 4, 7]
    restarted = tallies(run_engine(cfg, items, cuts, registry=registry(), state_dir=tmp_path / "state"))
    assert restarted == tallies(run_engine(cfg, items, registry=registry()))
    assert [t[1] for t in restarted] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]


def test_asset_modules_need_the_participants_and_plugin_settings_need_their_registry() -> None:
    with pytest.raises(ConfigError, match=r"MOD-990 wait for every participating instrument"):
        Engine(config([]), registry().build(config([])))
    dumped = config(BTC).model_dump(mode="json")
    assert Config.model_validate(dumped, context={"registry": registry()}) == config(BTC)
    with pytest.raises(ValueError, match="settings of MOD-990, a module this registry does not know"):
        Config.model_validate(dumped)


def test_a_participant_that_never_trades_holds_its_asset_back() -> None:
    items = [trade(i, 50_000.0, 30.0, T0 + i * SEC) for i in range(1, 5)]
    assert tallies(run_engine(config(BTC), items, registry=registry())) == []
    alone = tallies(run_engine(config(["binance:BTCUSDT"]), items, registry=registry()))
    assert [t[1] for t in alone] == [1.0, 2.0, 3.0]  # the last whale waits for a clock past it


def test_unknown_participant_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"'kraken:XBTUSD' is not an exchange:symbol listed"):
        config(["kraken:XBTUSD"])


def test_without_asset_modules_no_internal_table_reaches_the_sinks() -> None:
    cfg = ConfigLoader().load("small", env={})
    (result,) = run_engine(cfg, [trade(1, 50_000.0, 30.0, T0)])
    assert FEED not in result.tables and CLOCKS not in result.tables
    assert result.alerts.num_rows == 1


class WhaleEcho(BaseDetector[WhaleSettings]):
    """Test module in the instrument stage: one alert per MOD-001 alert it receives as upstream."""

    module_id: ClassVar[str] = "MOD-991"
    name: ClassVar[str] = "whale-echo"
    inputs: ClassVar[tuple[EventKind, ...]] = ("trade",)
    consumes: ClassVar[tuple[str, ...]] = ("MOD-001",)
    settings_model: ClassVar[type[Frozen]] = WhaleSettings

    def detect(self, frames: DetectorInput) -> DetectorOutput:
        whales = frames.upstream["MOD-001"]
        blank = dict.fromkeys(("window_start", "window_end", "ts_sent", "ts_ingest", "ts_written", "arrival"))
        rows = [{**w, **blank, "alert_id": f"echo:{w['alert_id']}", "detector": self.module_id}
                for w in whales.to_dict("records")]
        return DetectorOutput(alerts=alerts_frame(rows))


def test_an_instrument_module_reads_the_alerts_it_consumes_from_the_same_batch() -> None:
    reg = ModuleRegistry()
    reg.register(WhaleEcho)
    cfg = ConfigLoader(registry=reg).load("small", env={}, overrides={"modules": ["MOD-991", "MOD-001"]})
    items = [trade(i, 50_000.0, 30.0 if i % 2 else 1.0, T0 + i * SEC) for i in range(1, 8)]
    for cuts in ([], [2, 5]):
        alerts = alerts_of(run_engine(cfg, items, cuts, registry=reg))
        whales = set(alerts.loc[alerts["detector"] == "MOD-001", "alert_id"])
        echoes = set(alerts.loc[alerts["detector"] == "MOD-991", "alert_id"])
        assert len(whales) == 4 and echoes == {f"echo:{w}" for w in whales}


class EchoTally(AssetWhaleTally):
    module_id: ClassVar[str] = "MOD-992"
    name: ClassVar[str] = "echo-tally"
    consumes: ClassVar[tuple[str, ...]] = ("MOD-991",)


class TallyOfTallies(AssetWhaleTally):
    module_id: ClassVar[str] = "MOD-993"
    name: ClassVar[str] = "tally-of-tallies"
    consumes: ClassVar[tuple[str, ...]] = (PROBE,)


def test_consumed_alerts_must_name_their_event_and_cross_modules_cannot_chain() -> None:
    reg = registry()
    for cls in (WhaleEcho, EchoTally, TallyOfTallies):
        reg.register(cls)
    cfg = ConfigLoader(registry=reg).load(
        "small", env={}, overrides={"modules": ["MOD-001", "MOD-991", "MOD-992"], "instruments": BTC}
    )
    with pytest.raises(PipelineError, match=r"alerts of MOD-991 carry no 'arrival'"):
        run_engine(cfg, [trade(1, 50_000.0, 30.0, T0)], registry=reg)
    chained = cfg.model_copy(update={"modules": ("MOD-001", PROBE, "MOD-993")})
    with pytest.raises(ConfigError, match=r"MOD-993 consumes MOD-990: both are asset/asset-scoped"):
        reg.build(chained)


def test_detectors_receive_the_documented_columns() -> None:
    seen: dict[str, list[str]] = {}

    class Spy(BaseDetector[WhaleSettings]):
        module_id: ClassVar[str] = "MOD-994"
        name: ClassVar[str] = "spy"
        inputs: ClassVar[tuple[EventKind, ...]] = ("trade", "quote")

        def detect(self, frames: DetectorInput) -> DetectorOutput:
            seen["trade"], seen["quote"] = list(frames.trades.columns), list(frames.quotes.columns)
            return DetectorOutput()

    reg = ModuleRegistry()
    reg.register(Spy)
    cfg = ConfigLoader(registry=reg).load("small", env={}, overrides={"modules": ["MOD-994"]})
    run_engine(cfg, [trade(1, 100.0, 1.0, T0), quote(1, 99.0, 101.0, T0 + 1)], registry=reg)
    assert set(seen["trade"]) == {*TRADE_SCHEMA.names, *META_COLUMNS, *TRADE_FLAGS}
    assert set(seen["quote"]) == {*QUOTE_SCHEMA.names, *META_COLUMNS, *QUOTE_FLAGS}
