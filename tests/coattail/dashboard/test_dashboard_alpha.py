"""The dashboard's MOD-011 routes: ``/harness/scorecard`` over real HTTP, from a live run's Iceberg
``alpha_scores`` (written by the production engine and the Iceberg sink, lite catalog) and from a finished
run's captured copy; and the evidence of the ``follow_signal`` alerts that the Signals list reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from coattail.dashboard.live import LiveRun
from coattail.dashboard.server import Backend
from pipeline.config import Config, ConfigLoader, RuntimeSettings
from pipeline.detectors.alpha_scoring import ALPHA_SCORES, AlphaScoring, AlphaSettings
from pipeline.engine import BatchResult
from pipeline.sinks.iceberg import IcebergSink
from pipeline.testkit import run_engine
from tests.coattail.dashboard.test_dashboard_server import _json, _serve
from tests.pipeline.detectors.alpha_kit import config as alpha_config
from tests.pipeline.detectors.alpha_kit import planted


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Config, list[BatchResult]]:
    """MOD-011 over planted whales (an edge of 20 bps), on a lite Iceberg catalog of its own."""
    state = tmp_path_factory.mktemp("state")
    config = alpha_config(modules=[*AlphaScoring.consumes, AlphaScoring.module_id]).model_copy(
        update={"runtime": RuntimeSettings(profile="lite", state_dir=state)}
    )
    items = planted(3, edge_bps=20.0, whales=16)
    return config, run_engine(config, items, cuts=[len(items) // 2])  # two micro-batches


def _rows(results: list[BatchResult]) -> list[dict[str, Any]]:
    tables = [r.tables[ALPHA_SCORES.name] for r in results if ALPHA_SCORES.name in r.tables]
    return [row for t in tables for row in t.to_pylist()]


def _expected(rows: list[dict[str, Any]], settings: AlphaSettings) -> list[dict[str, Any]]:
    """Each source's newest row at the signal horizon, written out by hand, best t-statistic first."""
    newest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in rows:
        source = (row["detector"], row["exchange"], row["symbol"])
        held = newest.get(source)
        later = held is None or (row["ts_event"], row["alert_id"]) > (held["ts_event"], held["alert_id"])
        if row["horizon_s"] == settings.signal_horizon_s and later:
            newest[source] = row
    out = [
        {
            **{k: r[k] for k in ("asset", "detector", "exchange", "symbol", "count", "mean_bps", "hit_rate")},
            **{"t_stat": r["t_stat"], "ts_event": r["ts_event"]},
            "follows": r["count"] >= settings.min_samples
            and r["mean_bps"] >= settings.min_edge_bps
            and r["hit_rate"] >= settings.min_hit_rate,
        }
        for r in newest.values()
    ]
    return sorted(out, key=lambda r: (r["t_stat"] is None, -(r["t_stat"] or 0.0), r["detector"], r["symbol"]))


def test_the_scorecard_follows_the_live_runs_iceberg_table(
    scored: tuple[Config, list[BatchResult]], tmp_path: Path
) -> None:
    config, results = scored
    settings = config.settings_of(AlphaSettings)
    assert settings.signal_horizon_s != AlphaSettings().signal_horizon_s  # the run's, not the defaults
    live = LiveRun()
    sink = IcebergSink(config)
    sink.open([ALPHA_SCORES])
    half = len(results) // 2
    cards = []
    for base in _serve(Backend(live=live)):
        assert _json(base + "harness/scorecard") == (200, None)  # not provisioned yet
        live.provisioned("run-1", tmp_path, config)
        for done, batch in ((half, results[:half]), (len(results), results[half:])):
            for result in batch:
                sink.write(result.batch_id, "engine", {ALPHA_SCORES.name: result.tables[ALPHA_SCORES.name]}
                           if ALPHA_SCORES.name in result.tables else {})  # fmt: skip
            status, card = _json(base + "harness/scorecard")
            assert status == 200
            assert card["horizon_s"] == settings.signal_horizon_s
            bounds = {"min_samples": settings.min_samples, "min_edge_bps": settings.min_edge_bps}
            assert card["bounds"] == {**bounds, "min_hit_rate": settings.min_hit_rate}
            assert card["sources"] == _expected(_rows(results[:done]), settings)
            cards.append(card)
    assert cards[0]["sources"] and cards[0] != cards[1]  # the table grew while the dashboard served it
    whales = [s for s in card["sources"] if s["detector"] == "MOD-001"]
    assert whales and whales[0]["follows"]  # the planted edge is followed: the test data has one to show


def _finished_run(root: Path, config: Config, scores: pa.Table | None) -> Path:
    (root / "pipeline").mkdir(parents=True)
    (root / "config.json").write_text(json.dumps(config.model_dump(mode="json")))
    if scores is not None:
        pq.write_table(scores, root / "pipeline" / f"{ALPHA_SCORES.name}.parquet")
    return root


def test_a_finished_runs_scorecard_and_a_tier_without_mod_011(
    scored: tuple[Config, list[BatchResult]], tmp_path: Path
) -> None:
    config, results = scored
    scores = pa.Table.from_pylist(_rows(results), schema=ALPHA_SCORES.schema)
    finished = _finished_run(tmp_path / "large", config, scores)
    for base in _serve(Backend(config=config, run_path=finished)):
        status, card = _json(base + "harness/scorecard")
        assert status == 200
        assert card["sources"] == _expected(_rows(results), config.settings_of(AlphaSettings))
    small = ConfigLoader().load("small", env={})
    assert not small.enabled(AlphaScoring.module_id)
    for base in _serve(Backend(config=small, run_path=_finished_run(tmp_path / "small", small, None))):
        assert _json(base + "harness/scorecard") == (200, None)
    for base in _serve(Backend(config=small)):
        assert _json(base + "harness/scorecard") == (200, None)


def test_follow_signals_carry_what_the_signals_list_shows(scored: tuple[Config, list[BatchResult]]) -> None:
    """dashboard/src/views/AlphaView.tsx reads the source and the score from a signal's evidence."""
    _, results = scored
    follow = [a for r in results for a in r.alerts.to_pylist() if a["kind"] == "follow_signal"]
    assert follow
    for alert in follow:
        evidence = json.loads(alert["evidence"])
        assert {"detector", "count", "mean_bps", "hit_rate", "t_stat"} <= set(evidence)
        assert alert["detector"] == AlphaScoring.module_id and alert["value"] in (1.0, -1.0)
