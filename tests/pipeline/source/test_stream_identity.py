"""A Kinesis checkpoint is bound to its stream's identity: a stream deleted and created again under the
same name (what an emulator restart does) is refused instead of being read from the old sequence
numbers (issue 23: a restart silently resumed and lost half the day)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.errors import PipelineError
from pipeline.source.kinesis_reader import KinesisStreamReader
from pipeline.source.stream_identity import IDENTITY_FILE
from tests.pipeline.source.test_kinesis_source import create_stream, events, put, stream_config

pytestmark = [pytest.mark.integration]


def _reader(endpoint: str, stream: str, ckpt: Path) -> KinesisStreamReader:
    return KinesisStreamReader({"stream": stream, "endpoint": endpoint, "checkpoint": str(ckpt),
                                "max_records": "1000"})


def _log_offset(ckpt: Path, offset: dict[str, Any]) -> None:
    """What Spark writes to the offset log after a trigger (the source's offset is the last line)."""
    (ckpt / "offsets").mkdir(parents=True, exist_ok=True)
    (ckpt / "offsets" / "0").write_text("v1\n{}\n" + json.dumps(offset) + "\n")


def test_a_recreated_stream_is_refused_and_the_same_one_resumes(aws_endpoint: str, tmp_path: Path) -> None:
    cfg = stream_config(aws_endpoint, tmp_path)
    stream, ckpt = cfg.kinesis.stream, tmp_path / "ck" / "query"
    kinesis = create_stream(cfg, shards=1)
    put(kinesis, cfg, events(0, 60), aggregated=False)
    first = _reader(aws_endpoint, stream, ckpt)
    first.initialOffset()
    offset = first.latestOffset()
    _log_offset(ckpt, offset)
    assert json.loads((ckpt / IDENTITY_FILE).read_text())["stream"] == stream

    # the same stream: the restart resumes where the offset log ends (nothing new to read)
    same = _reader(aws_endpoint, stream, ckpt)
    assert same.latestOffset() == offset

    kinesis.delete_stream(StreamName=stream)
    kinesis.get_waiter("stream_not_exists").wait(StreamName=stream)
    create_stream(cfg, shards=1)
    put(kinesis, cfg, events(0, 90), aggregated=False)
    for ask in ("latestOffset", "partitions"):
        restarted = _reader(aws_endpoint, stream, ckpt)
        with pytest.raises(PipelineError, match=r"deleted and created again.*fresh --checkpoint"):
            if ask == "latestOffset":
                restarted.latestOffset()
            else:  # a restart re-runs the last logged batch before it asks for new offsets
                restarted.partitions({"shards": {}}, offset)


def test_a_checkpoint_from_before_identities_is_bound_to_the_stream_it_finds(
    aws_endpoint: str, tmp_path: Path
) -> None:
    cfg = stream_config(aws_endpoint, tmp_path)
    ckpt = tmp_path / "ck" / "query"
    kinesis = create_stream(cfg, shards=1)
    put(kinesis, cfg, events(0, 30), aggregated=False)
    shard = kinesis.list_shards(StreamName=cfg.kinesis.stream)["Shards"][0]["ShardId"]
    _log_offset(ckpt, {"shards": {shard: {"seq": None, "done": False}}})
    reader = _reader(aws_endpoint, cfg.kinesis.stream, ckpt)
    assert reader.latestOffset()["shards"][shard]["seq"] is not None
    assert (ckpt / IDENTITY_FILE).is_file()
