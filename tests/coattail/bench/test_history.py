"""The benchmark history: JSON lines in, one self-contained HTML page out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from coattail.bench.history import append, machine_facts, page, read
from core.errors import CoattailError


def entry(commit: str, eps: float, ratio: float) -> dict[str, Any]:
    figures = {"throughput_eps": eps}
    return {
        "time": "2026-12-05T01:00:00+00:00",
        "git": {"candidate": {"commit": commit, "dirty": True}, "baseline": {"commit": "b" * 40}},
        "machine": machine_facts(),
        "options": {"tier": "small", "speeds": ["max"], "repeat": 2},
        "measurements": [{"side": s, "speed": "max", "figures": figures} for s in ("baseline", "candidate")],
        "ratios": {"throughput_eps": {"median": ratio, "min": ratio - 0.1, "max": ratio + 0.1, "n": 2.0}},
        "gate": {"passed": False, "missed": ["x"]},
    }


def test_entries_append_and_draw_as_one_page(tmp_path: Path) -> None:
    path = tmp_path / "h" / "history.jsonl"
    append(path, entry("a" * 40, 1_000.0, 1.2))
    append(path, entry("c" * 40, 2_000.0, 0.9))
    entries = read(path)
    assert [e["git"]["candidate"]["commit"][0] for e in entries] == ["a", "c"]
    assert entries[0]["machine"]["cpus"] and len(entries[0]["machine"]["load_1_5_15"]) == 3
    html = page(entries)
    assert 'id="chart-throughput"' in html and 'id="chart-ratios"' in html
    assert "<script src=" not in html and "FAILED" in html and "cccccccc" in html


def test_a_missing_or_broken_history_is_named(tmp_path: Path) -> None:
    with pytest.raises(CoattailError, match="run `coattail bench` first"):
        read(tmp_path / "none.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"time": 1}\nnot json\n')
    with pytest.raises(CoattailError, match=r"bad\.jsonl:2"):
        read(tmp_path / "bad.jsonl")
