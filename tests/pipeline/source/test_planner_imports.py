"""What Spark's data source planner processes import of ours: each is a fresh Python process per query
start (``schema()`` in one, pickling the reader in another), so the source's modules leave the parser,
the config models and AWS to where they are used."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("pipeline.parse", "pipeline.config", "pipeline.aws", "pipeline.onchain", "boto3", "pandas")


def _imported_after(module: str) -> set[str]:
    probe = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout))


@pytest.mark.parametrize("module", ["pipeline.source.kinesis", "pipeline.source.kinesis_reader"])
def test_the_planner_side_of_the_kinesis_source_imports_nothing_heavy(module: str) -> None:
    assert not set(HEAVY) & _imported_after(module)


def test_the_source_still_gives_its_schema_and_its_reader() -> None:
    from pipeline.parse import PARSED_DDL, RAW_DDL
    from pipeline.source.kinesis import KinesisDataSource
    from pipeline.source.kinesis_reader import KinesisStreamReader

    assert KinesisDataSource({"stream": "s", "parse": "true"}).schema() == PARSED_DDL
    assert KinesisDataSource({"stream": "s"}).schema() == RAW_DDL
    assert isinstance(KinesisDataSource({"stream": "s"}).streamReader(None), KinesisStreamReader)
