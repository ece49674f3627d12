"""A run's own stream, alerts table and namespace on a shared stack (defect 6 of issue 23): ``coattail
status`` lists what runs left, ``coattail gc`` removes exactly those and never the tier's own."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coattail.cli import app
from infra.provision import StackSpec, provision
from infra.run_resources import leftovers, run_resource_names, stream_names
from pipeline.aws import client
from pipeline.config import ConfigLoader, RuntimeSettings
from pipeline.sinks.iceberg import load_catalog

pytestmark = pytest.mark.integration


def test_status_lists_leftovers_and_gc_removes_only_them(
    aws_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uid = uuid.uuid4().hex[:8]
    tier_names = {"kinesis.stream": f"s-{uid}", "dynamodb.alerts_table": f"t-{uid}",
                  "storage.namespace": f"n_{uid}"}
    sets = [arg for key, value in tier_names.items() for arg in ("--set", f"{key}={value}")]
    monkeypatch.setenv("COATTAIL_STATE_DIR", str(tmp_path / "state"))
    runner = CliRunner()
    up = runner.invoke(app, ["up", "--endpoint", aws_endpoint, *sets])
    assert up.exit_code == 0, up.output

    runtime = RuntimeSettings(aws_endpoint=aws_endpoint, state_dir=tmp_path / "state")
    tier = ConfigLoader().load("small", overrides=tier_names, env={})
    run = ConfigLoader().load("small", overrides=run_resource_names(tier, "20260101-000000-run"), env={})
    provision(StackSpec.from_config(run), runtime)
    spec = StackSpec.from_config(tier)
    found = {(r.kind, r.name) for r in leftovers(spec, runtime)}
    assert found == {("kinesis stream", run.kinesis.stream), ("dynamodb table", run.dynamodb.alerts_table),
                     ("iceberg namespace", run.storage.namespace)}

    status = runner.invoke(app, ["status"], terminal_width=250)
    assert status.exit_code == 0, status.output
    assert status.output.count("leftover") == 3

    gc = runner.invoke(app, ["gc"], terminal_width=250)
    assert gc.exit_code == 0, gc.output
    assert gc.output.count("removed") >= 3
    assert leftovers(spec, runtime) == []
    assert run.kinesis.stream not in stream_names(client("kinesis", runtime))
    assert run.dynamodb.alerts_table not in client("dynamodb", runtime).list_tables()["TableNames"]
    catalog = load_catalog(runtime, tier.storage.warehouse_bucket)
    assert (run.storage.namespace,) not in catalog.list_namespaces()
    # the tier's own resources stay
    assert tier.kinesis.stream in stream_names(client("kinesis", runtime))
    assert (tier.storage.namespace,) in catalog.list_namespaces()
    assert "nothing to remove" in runner.invoke(app, ["gc"]).output


def test_stream_names_lists_past_the_emulators_first_page(aws_endpoint: str, tmp_path: Path) -> None:
    # moto answers ListStreams with 10 names and HasMoreStreams, but no NextToken
    kinesis = client("kinesis", RuntimeSettings(aws_endpoint=aws_endpoint, state_dir=tmp_path))
    uid = uuid.uuid4().hex[:8]
    mine = [f"page-{uid}-{i:02d}" for i in range(12)]
    for name in mine:
        kinesis.create_stream(StreamName=name, ShardCount=1)
    try:
        names = stream_names(kinesis)
        assert set(mine) <= set(names) and len(names) == len(set(names)) > 10
    finally:
        for name in mine:
            kinesis.delete_stream(StreamName=name)
