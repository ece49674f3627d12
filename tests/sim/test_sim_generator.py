"""The synthetic market: determinism, ordering, ids, labels and that labels match the alerts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import ConfigError
from core.tape import Manifest, Tape
from core.timefmt import parse_duration, parse_time
from pipeline.config import Config
from pipeline.detectors.data_quality import DataQualitySettings
from pipeline.detectors.whale import WhaleSettings
from sim.generator import GenerateSpec, generate
from sim.scenario import Scenario, load_scenario, presets
from tests.sim.sim_detect import match

START = parse_time("2026-01-01T00:00Z", "--start")


def _gen(
    config: Config,
    out: Path,
    scenario: str | Scenario = "quiet-day",
    *,
    duration: str = "40m",
    scale: float = 0.05,
    seed: int = 7,
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
    exchanges: tuple[str, ...] = ("binance", "coinbase"),
) -> Manifest:
    sc = load_scenario(scenario) if isinstance(scenario, str) else scenario
    spec = GenerateSpec(sc, symbols, exchanges, START, parse_duration(duration), seed, scale)
    return generate(spec, config, out)


def _file_bytes(path: Path, m: Manifest) -> list[bytes]:
    return [(path / name).read_bytes() for names in m.files.values() for name in names]


def _label_shape(m: Manifest) -> list[tuple[object, ...]]:
    return [
        (lb.kind, lb.detector, lb.expect, lb.reason, lb.count, lb.exchange, lb.symbol, lb.start_us, lb.end_us)
        for lb in m.labels
    ]


def test_presets_ship() -> None:
    assert {"quiet-day", "whale-day", "flash-crash", "dirty-feed", "market-day"} <= set(presets())


def test_durations_and_starts() -> None:
    assert parse_duration("1d") == 86_400_000_000
    assert parse_duration("1h30m") == 5_400_000_000
    assert parse_duration("90s") == 90_000_000
    assert parse_time("2026-01-01T00:00Z", "--start") == 1_767_225_600_000_000
    for bad in ("", "1x", "h", "0m"):
        with pytest.raises(ConfigError):
            parse_duration(bad)


def test_same_seed_same_bytes_other_seed_other_bytes(config: Config, tmp_path: Path) -> None:
    a = _gen(config, tmp_path / "a", "dirty-feed")
    b = _gen(config, tmp_path / "b", "dirty-feed")
    c = _gen(config, tmp_path / "c", "dirty-feed", seed=8)
    assert _file_bytes(tmp_path / "a", a) == _file_bytes(tmp_path / "b", b)
    assert a.checksum == b.checksum != c.checksum
    assert a.labels == b.labels


def test_scale_changes_volume_not_labels(config: Config, tmp_path: Path) -> None:
    small = _gen(config, tmp_path / "s", "whale-day", scale=0.02)
    big = _gen(config, tmp_path / "b", "whale-day", scale=0.2)
    assert big.rows["trade"] > 5 * small.rows["trade"]
    assert _label_shape(small) == _label_shape(big)


@pytest.mark.parametrize("scenario", ["quiet-day", "whale-day", "flash-crash", "dirty-feed", "market-day"])
@pytest.mark.parametrize("scale", [0.02, 0.3])
def test_labels_and_alerts_agree(config: Config, tmp_path: Path, scenario: str, scale: float) -> None:
    """Every alert label fires and nothing else does (a naive reading of docs/DETECTORS.md)."""
    _gen(
        config,
        tmp_path / "t",
        scenario,
        scale=scale,
        duration="45m",
        symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"),
    )
    missed, spurious = match(Tape.open(tmp_path / "t"), config)
    assert missed == []
    assert spurious == []


def test_whale_trades_exceed_and_natural_trades_stay_below(config: Config, tmp_path: Path) -> None:
    m = _gen(config, tmp_path / "t", "whale-day", scale=0.3, duration="1h")
    trades = Tape.open(tmp_path / "t").read("trade").to_pylist()
    whales = {lb.event_ids[0] for lb in m.labels if lb.kind == "whale"}
    for t in trades:
        eid = f"trade:{t['exchange']}:{t['symbol']}:{t['trade_id']}"
        threshold = config.settings_of(WhaleSettings).thresholds_usd[t["symbol"]]
        notional = t["price"] * t["qty"]
        if eid in whales:
            assert notional >= threshold
        else:
            assert notional < 0.2 * threshold


def test_dirty_feed_rows(config: Config, tmp_path: Path) -> None:
    m = _gen(config, tmp_path / "t", "dirty-feed", duration="1h", symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"))
    tape = Tape.open(tmp_path / "t")
    trades = tape.read("trade")
    quotes = tape.read("quote")
    by = {lb.kind + (lb.reason or ""): lb for lb in m.labels}
    dup = by["duplicateDUPLICATE_ID"]
    _, _, sym, tid = dup.event_ids[0].split(":")
    same = trades.filter(pc.and_(pc.equal(trades["symbol"], sym), pc.equal(trades["trade_id"], int(tid))))
    assert dup.count is not None
    assert same.num_rows == dup.count + 1
    assert len({tuple(r.values()) for r in same.drop_columns(["seq"]).to_pylist()}) == 1
    gap = by["feed_gapSTALE_FEED"]
    assert gap.count == 2
    assert (
        pc.sum(
            pc.and_(pc.equal(trades["symbol"], gap.symbol), pc.equal(trades["exchange"], gap.exchange)).cast(
                "int64"
            )
        ).as_py()
        > 0
    )
    for kind, table in (("trade", trades), ("quote", quotes)):
        mine = table.filter(
            pc.and_(pc.equal(table["symbol"], gap.symbol), pc.equal(table["exchange"], gap.exchange))
        )
        ts = np.asarray(mine["ts_event"])
        stale_us = config.settings_of(DataQualitySettings).stale_feed_seconds * 1_000_000
        assert np.diff(ts).max() >= stale_us
        assert (np.diff(ts) >= stale_us).sum() == 1
        assert kind in {e.split(":")[0] for e in gap.event_ids}
    bad = [lb for lb in m.labels if lb.kind == "malformed"]
    assert {lb.reason for lb in bad} == {"NON_POSITIVE_PRICE", "NON_POSITIVE_SIZE", "BAD_SIDE"}
    assert pc.sum(pc.equal(trades["price"], 0.0).cast("int64")).as_py() == 2
    assert pc.sum(pc.less(trades["qty"], 0.0).cast("int64")).as_py() == 2
    sides = Counter(trades["side"].to_pylist())
    assert set(sides) == {"buy", "sell", "unknown"}
    assert sides["unknown"] == 1
    assert m.faults is not None
    late = m.faults["late"]
    assert [f["delay_ms"] for f in late] == [45_000] * 2 + [2_000] * 3
    ooo = next(lb for lb in m.labels if lb.kind == "out_of_order")
    assert (ooo.expect, ooo.reason) == ("none", None)


def test_no_natural_silence(config: Config, tmp_path: Path) -> None:
    """Only injected feed gaps may trip STALE_FEED, even at a tiny scale."""
    _gen(config, tmp_path / "t", duration="2h", scale=0.005)
    tape = Tape.open(tmp_path / "t")
    limit = config.settings_of(DataQualitySettings).stale_feed_seconds * 1_000_000
    for kind in ("trade", "quote"):
        df = tape.read(kind, columns=["exchange", "symbol", "ts_event"]).to_pandas()
        for _, g in df.groupby(["exchange", "symbol"]):
            assert np.diff(g["ts_event"].to_numpy()).max() < limit


def test_too_short_a_duration_is_refused(config: Config, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--duration"):
        _gen(config, tmp_path / "t", "whale-day", duration="20m")


def test_daily_volumes_near_real_ones(config: Config, tmp_path: Path) -> None:
    """Two hours at scale 1.0 extrapolate to the issue's daily trade counts (within the intraday cycle)."""
    m = _gen(config, tmp_path / "t", duration="2h", scale=1.0, symbols=("BTCUSDT",))
    trades = Tape.open(tmp_path / "t").read("trade", columns=["exchange"])
    counts = Counter(trades["exchange"].to_pylist())
    # 00:00-02:00 UTC sits near the cycle's trough (about 0.6 of the daily mean)
    assert 0.4 * 3e6 / 12 < counts["binance"] < 1.0 * 3e6 / 12
    assert 0.4 * 0.6e6 / 12 < counts["coinbase"] < 1.0 * 0.6e6 / 12
    assert m.rows["quote"] > 0.3 * m.rows["trade"]


@settings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    scale=st.sampled_from([0.01, 0.05, 0.2]),
    scenario=st.sampled_from(["whale-day", "dirty-feed", "flash-crash"]),
    minutes=st.integers(35, 70),
)
def test_tape_invariants(
    config: Config,
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    scale: float,
    scenario: str,
    minutes: int,
) -> None:
    out = tmp_path_factory.mktemp("prop") / "t"
    m = _gen(
        config, out, scenario, duration=f"{minutes}m", scale=scale, seed=seed, symbols=("BTCUSDT", "SOLUSDT")
    )
    tape = Tape.open(out)
    tape.verify()
    seqs: list[int] = []
    existing: set[str] = set()
    for kind in m.kinds:
        t = tape.read(kind)
        ts, sq = np.asarray(t["ts_event"]), np.asarray(t["seq"])
        assert bool(((ts[1:] > ts[:-1]) | ((ts[1:] == ts[:-1]) & (sq[1:] > sq[:-1]))).all())
        assert ts.min() >= m.start_us and ts.max() <= START + minutes * 60_000_000
        seqs += sq.tolist()
        idcol = "trade_id" if kind == "trade" else "update_id"
        cols = zip(t["exchange"].to_pylist(), t["symbol"].to_pylist(), t[idcol].to_pylist(), strict=True)
        existing |= {f"{kind}:{e}:{s}:{i}" for e, s, i in cols}
    assert sorted(seqs) == list(range(len(seqs)))
    for lb in m.labels:
        assert lb.start_us <= lb.end_us
        assert set(lb.event_ids) <= existing, lb
        assert lb.event_ids or lb.kind == "feed_gap"
    # trade ids consecutive per instrument, except labelled gaps (and labelled repeats)
    gaps = Counter((lb.exchange, lb.symbol) for lb in m.labels if lb.kind == "trade_id_gap")
    missing = {(lb.exchange, lb.symbol): lb.count for lb in m.labels if lb.kind == "trade_id_gap"}
    trades = tape.read("trade").to_pandas()
    for (ex, sym), g in trades.groupby(["exchange", "symbol"]):
        ids = np.unique(g["trade_id"].to_numpy())
        holes = int(ids.max() - ids.min() + 1 - ids.size)
        assert holes == (missing.get((ex, sym), 0) if gaps[(ex, sym)] else 0)
        assert (np.diff(g["trade_id"].to_numpy()) >= 0).all()
    quotes = tape.read("quote").to_pandas()
    for _, g in quotes.groupby(["exchange", "symbol"]):
        ids = g["update_id"].to_numpy()
        assert (np.diff(ids) == 1).all()


@settings(max_examples=4, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31), scale=st.sampled_from([0.01, 0.03]), scenario=st.sampled_from(presets()))
def test_same_seed_same_bytes_and_scale_free_labels(
    config: Config, tmp_path_factory: pytest.TempPathFactory, seed: int, scale: float, scenario: str
) -> None:
    root = tmp_path_factory.mktemp("det")
    a = _gen(config, root / "a", scenario, duration="32m", scale=scale, seed=seed, symbols=("ETHUSDT",))
    b = _gen(config, root / "b", scenario, duration="32m", scale=scale, seed=seed, symbols=("ETHUSDT",))
    c = _gen(config, root / "c", scenario, duration="32m", scale=scale * 3, seed=seed, symbols=("ETHUSDT",))
    assert _file_bytes(root / "a", a) == _file_bytes(root / "b", b)
    assert a.labels == b.labels
    assert _label_shape(a) == _label_shape(c)
    assert sum(c.rows.values()) > sum(a.rows.values())
