"""The engine state as a versioned JSON document: exact round trips, refusals by name, state files."""

from __future__ import annotations

import math
import pickle
import struct
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import PipelineError
from pipeline.detectors.base import DetectorOutput, Key, KeyedDetector
from pipeline.detectors.registry import ModuleRegistry
from pipeline.engine import STATE_DOCUMENT, Engine, EngineState
from pipeline.keyed import KeyedStep
from pipeline.parse import parse_batch
from pipeline.sequencer import KeyState
from pipeline.testkit import T0, payloads, raw_table, small_config, trade

CFG = small_config()

floats = st.floats()  # NaN, infinities, -0.0 and subnormals included
big_ints = st.integers(min_value=-(2**70), max_value=2**70)  # beyond 2**53 and int64
names = st.text(max_size=12)  # ':', '-', '/', quotes, any unicode: keys must not collide
json_data = st.recursive(
    st.none() | st.booleans() | big_ints | floats | names,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4),
    max_leaves=25,
)
key_states = st.builds(
    KeyState,
    max_ts=floats,
    max_trade_id=st.none() | big_ints,
    last_price=floats,
    last_ts_trade=floats,
    last_ts_quote=floats,
    seen_ids=st.lists(st.tuples(big_ints, big_ints), max_size=5),
)
keys = st.tuples(names, names)


def same(a: Any, b: Any) -> bool:
    """Equal values of exactly the same types; floats equal bit for bit, any NaN equal to any NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, KeyState):
        return same(vars(a), vars(b))
    return bool(a == b)


@settings(max_examples=200)
@given(key_states)
def test_a_key_state_round_trips_exactly(state: KeyState) -> None:
    assert same(KeyState.from_json(state.to_json()), state)


@settings(max_examples=100)
@given(
    st.dictionaries(keys, key_states, max_size=4),
    st.dictionaries(st.sampled_from(["MOD-002", "MOD-003", "MOD-0:9"]),
                    st.dictionaries(keys, json_data, max_size=4), max_size=3),
)
def test_an_engine_state_round_trips_exactly(
    sequencer: dict[Key, KeyState], detectors: dict[str, Any]
) -> None:
    state = EngineState(sequencer=sequencer, detectors=detectors)
    back = EngineState.from_bytes(state.to_bytes())
    assert same(back.sequencer, state.sequencer)
    assert same(back.detectors, state.detectors)


def test_keys_that_a_joined_string_would_confuse_stay_apart() -> None:
    a, b = ("a:b", "c"), ("a", "b:c")
    state = EngineState(sequencer={a: KeyState(max_ts=1.0), b: KeyState(max_ts=2.0)})
    back = EngineState.from_bytes(state.to_bytes())
    assert back.sequencer[a].max_ts == 1.0 and back.sequencer[b].max_ts == 2.0


def test_the_document_names_its_kind_and_format_and_holds_no_code() -> None:
    blob = EngineState(sequencer={("binance", "BTCUSDT"): KeyState(max_trade_id=2**62 + 1)}).to_bytes()
    assert blob.startswith(b'{"kind":"coattail.engine-state","format":3,"written_by":"coattail ')
    assert b"4611686018427387905" in blob  # the exact id, not a rounded float


class _Boom:
    """Unpickling it would create a file: a checkpoint that can run code."""

    marker: ClassVar[Path]

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_a_pickled_state_is_refused_by_name_and_never_unpickled(tmp_path: Path) -> None:
    _Boom.marker = tmp_path / "ran"
    blob = pickle.dumps({"format": 2, "sequencer": {}, "detectors": {}, "x": _Boom()})
    with pytest.raises(PipelineError, match=r"engine state format 1 or 2 \(a pickle\) written by an "
                                            r"earlier revision; this revision reads 3\.\.3; start again"):
        EngineState.from_bytes(blob)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "4.pkl").write_bytes(blob)
    engine = Engine(CFG, ModuleRegistry().build(CFG), state_dir=state_dir)
    with pytest.raises(PipelineError, match=r"4\.pkl: engine state format 1 or 2 \(a pickle\)"):
        engine.process(parse_batch(raw_table(payloads([trade(1, 100.0, 1.0, T0)]))), 5)
    assert not _Boom.marker.exists()


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b'{"kind":"coattail.engine-state","format":4,"written_by":"coattail 9.0","sequencer":[],'
         b'"detectors":{}}', r"engine state format 4 written by coattail 9\.0; this revision reads 3\.\.3"),
        (b'{"kind":"coattail.engine-state","format":"3"}', r"engine state format '3' written by an unknown"),
        (b'{"kind":"coattail.tape-manifest","format":3}',
         r"a document of kind 'coattail.tape-manifest' where 'coattail.engine-state' \(engine state\)"),
        (b"[1, 2]", r"a document of kind 'list' where"),
        (b"\xff\xfe{", r"not a JSON engine state"),
        (b'{"kind":"coattail.engine-state","format":3,"sequencer":[["binance","X",{"max_ts":1}]],'
         b'"detectors":{}}', r"malformed engine state .*sequencer key state needs exactly the fields"),
        (b'{"kind":"coattail.engine-state","format":3,"sequencer":[],"detectors":{"MOD-002":[["b",1,{}]]}}',
         r"malformed engine state .*not an \[exchange, symbol, state\] entry"),
    ],
)
def test_a_state_this_revision_cannot_read_is_refused_by_name(blob: bytes, message: str) -> None:
    with pytest.raises(PipelineError, match=message) as info:
        EngineState.from_bytes(blob, "ck/state/7.json")
    assert str(info.value).startswith("ck/state/7.json: ")
    assert str(info.value).endswith(STATE_DOCUMENT.remedy)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"open": {60: [1.0]}}, r"\['open'\] has the key 60, a int \(keys must be str\)"),
        ({"top": [[1.0, 2, "id"], (3.0, 4, "id")]}, r"\['top'\]\[1\] is a builtins\.tuple"),
        ({"sum": np.float64(1.5)}, r"\['sum'\] is a numpy\.float64"),
        ({"n": np.int64(3)}, r"\['n'\] is a numpy\.int64"),
        ({"ids": {1, 2}}, r"\['ids'\] is a builtins\.set"),
    ],
)
def test_a_detector_state_that_is_not_json_data_is_refused_naming_the_module(value: Any, where: str) -> None:
    state = EngineState(detectors={"MOD-002": {("binance", "BTCUSDT"): {"ok": [1]}, ("binance", "X"): value}})
    with pytest.raises(PipelineError, match=rf"detector MOD-002 keeps a state for \('binance', 'X'\) that is "
                                            rf"not JSON data: {where}"):
        state.to_bytes()


class _TupleState(KeyedDetector[Any]):
    """Keeps its last price as a one-element tuple: it would come back a list after a restart."""

    module_id: ClassVar[str] = "MOD-900"
    name: ClassVar[str] = "tuple-state"
    inputs = ("trade",)

    def new_state(self) -> dict[str, Any]:
        return {}

    def process_key(
        self, key: Key, trades: pd.DataFrame, quotes: pd.DataFrame, state: Any
    ) -> tuple[DetectorOutput, Any]:
        state["last"] = (float(trades["price"].iloc[-1]),)
        return DetectorOutput(), state


def test_the_engine_refuses_to_save_a_detector_state_that_is_not_json_data(tmp_path: Path) -> None:
    engine = Engine(CFG, [_TupleState(CFG)], state_dir=tmp_path / "state")
    with pytest.raises(PipelineError, match=r"detector MOD-900 .*\['last'\] is a builtins\.tuple"):
        engine.process(parse_batch(raw_table(payloads([trade(1, 100.0, 1.0, T0)]))), 0)
    assert not (tmp_path / "state").exists()


def test_commits_write_json_state_files_and_keep_the_last_three(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    engine = Engine(CFG, ModuleRegistry().build(CFG), state_dir=state_dir)
    for batch_id in range(5):
        batch = payloads([trade(batch_id, 100.0, 1.0, T0 + batch_id)])
        engine.process(parse_batch(raw_table(batch)), batch_id)
        engine.commit(batch_id)
    assert sorted(p.name for p in state_dir.iterdir()) == ["2.json", "3.json", "4.json"]
    assert EngineState.from_bytes((state_dir / "4.json").read_bytes()).sequencer[
        ("binance", "BTCUSDT")
    ].seen_ids == [(0, 4)]
    assert Engine.holds_state(state_dir)


def test_a_pickled_state_in_sparks_state_store_is_refused_naming_the_key(tmp_path: Path) -> None:
    _Boom.marker = tmp_path / "ran"
    step = KeyedStep(CFG, ModuleRegistry().build(CFG))
    rows = parse_batch(raw_table(payloads([trade(1, 100.0, 1.0, T0)])))
    with pytest.raises(PipelineError, match=r"^Spark's state store, key \('binance', 'BTCUSDT'\): engine "
                                            r"state format 1 or 2 \(a pickle\)"):
        step.step(("binance", "BTCUSDT"), rows, pickle.dumps({"format": 2, "x": _Boom()}))
    assert not _Boom.marker.exists()


def test_appending_outputs_keeps_the_filled_frames_types_without_pandas_warnings() -> None:
    empty = DetectorOutput(metrics={"m": pd.DataFrame({"x": pd.Series([], dtype=object)})})
    filled = DetectorOutput(metrics={"m": pd.DataFrame({"x": [1.5, 2.5], "y": [float("nan")] * 2})})
    other = DetectorOutput(metrics={"m": pd.DataFrame({"x": [3.5], "y": pd.array([7], dtype="Int64")})})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas' FutureWarning on empty or all-NA entries in a concat
        out = DetectorOutput.concat([empty, filled, empty, other]).metrics["m"]
        none = DetectorOutput.concat([empty, empty]).metrics["m"]
    assert out["x"].tolist() == [1.5, 2.5, 3.5] and out["x"].dtype == "float64"
    assert out["y"].isna().tolist() == [True, True, False] and out["y"].iloc[2] == 7
    assert none.empty and list(none.columns) == ["x"]
