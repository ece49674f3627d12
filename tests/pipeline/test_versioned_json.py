"""Versioned JSON documents: older formats are migrated step by step, the rest refused by name."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import PipelineError
from pipeline.versioned_json import DocumentFormat, is_json_data, non_json_at


def _v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "items": [{"name": n} for n in doc.pop("names")]}


def _v2_to_v3(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "items": [{**i, "size": 0} for i in doc["items"]]}


FORMAT = DocumentFormat(kind="test.things", title="thing list", current=3, remedy="make a new one",
                        migrations={1: _v1_to_v2, 2: _v2_to_v3})


def test_an_older_document_is_migrated_through_every_step() -> None:
    doc = FORMAT.decode(b'{"kind":"test.things","format":1,"written_by":"x","names":["a","b"]}', "f.json")
    assert doc["format"] == 3
    assert doc["items"] == [{"name": "a", "size": 0}, {"name": "b", "size": 0}]
    assert FORMAT.decode(FORMAT.encode({"items": []}), "f.json")["items"] == []


def test_a_format_without_a_migration_is_refused_with_the_readable_range() -> None:
    assert FORMAT.oldest == 1
    with pytest.raises(PipelineError, match=r"^f\.json: thing list format 0 written by coattail 0\.0; this "
                                            r"revision reads 1\.\.3; make a new one$"):
        FORMAT.decode(b'{"kind":"test.things","format":0,"written_by":"coattail 0.0"}', "f.json")
    without_v1 = DocumentFormat(kind="test.things", title="thing list", current=3, remedy="r",
                                migrations={2: _v2_to_v3})
    with pytest.raises(PipelineError, match=r"format 1 written by x; this revision reads 2\.\.3"):
        without_v1.decode(b'{"kind":"test.things","format":1,"written_by":"x","names":[]}', "f.json")


def test_json_data_is_exactly_what_comes_back_the_same() -> None:
    assert is_json_data({"a": [1, 2.5, float("nan"), None, True, "s", {"b": []}]})
    assert not is_json_data({"a": (1,)}) and not is_json_data({1: "a"}) and not is_json_data(b"x")
    assert non_json_at({"a": [0, {"b": b"x"}]}) == "['a'][1]['b'] is a builtins.bytes"
    assert non_json_at((1,)) == "the state is a builtins.tuple"
    assert non_json_at({"a": [1]}) is None
