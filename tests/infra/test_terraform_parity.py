"""Terraform parity: for every tier, what ``infra/terraform`` would create (its HCL read with python-hcl2
and the tier's committed variables) equals what ``coattail up`` provisions and what the tier file says;
changing either side alone fails."""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from pipeline.config import TIERS, default_config_dir
from tests.infra.terraform_kit import PlanError, parity_problems, plan

TERRAFORM = Path(__file__).resolve().parents[2] / "infra" / "terraform"


@pytest.fixture
def copies(tmp_path: Path) -> tuple[Path, Path]:
    """Copies of the Terraform and the config directories, to mutate."""
    terraform, config = tmp_path / "terraform", tmp_path / "config"
    shutil.copytree(TERRAFORM, terraform)
    shutil.copytree(default_config_dir(), config)
    return terraform, config


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("tier", TIERS)
def test_terraform_creates_what_the_local_stack_provisions(tier: str) -> None:
    assert parity_problems(TERRAFORM, default_config_dir(), tier) == []


def test_a_tier_file_changed_without_the_terraform_fails(copies: tuple[Path, Path]) -> None:
    terraform, config = copies
    _edit(config / "tiers" / "medium.yaml", "shards: 4", "shards: 6")
    problems = parity_problems(terraform, config, "medium")
    assert any("stale at shard_count" in p for p in problems)
    assert any(p.startswith("kinesis streams") for p in problems)
    assert parity_problems(terraform, config, "small") == []


def test_emr_sizes_changed_in_the_tier_file_alone_fail(copies: tuple[Path, Path]) -> None:
    terraform, config = copies
    _edit(config / "tiers" / "small.yaml", "initial_capacity: {drivers: 1, executors: 2}",
          "initial_capacity: {drivers: 1, executors: 3}")  # fmt: skip
    problems = parity_problems(terraform, config, "small")
    assert any("emr initial capacity" in p for p in problems)


@pytest.mark.parametrize(
    ("module", "old", "new", "problem"),
    [
        ("kinesis", "shard_count      = var.shard_count", "shard_count      = 1", "kinesis streams"),
        ("dynamodb", 'projection_type = "ALL"', 'projection_type = "KEYS_ONLY"', "alerts indexes"),
        ("dynamodb", "enabled        = true", "enabled        = false", "alerts TTL"),
        ("emr_serverless", "release_label = var.release", 'release_label = "emr-7.9.0"', "emr release"),
        (
            "api",
            "COATTAIL_STREAM         = var.stream_name",
            'COATTAIL_STREAM         = "x"',
            "alert API stream",
        ),
        ("api", '"dynamodb:GetItem", ', '"dynamodb:GetItem", "dynamodb:Scan", ', "alert API may scan"),
    ],
)
def test_terraform_changed_without_the_tier_fails(
    copies: tuple[Path, Path], module: str, old: str, new: str, problem: str
) -> None:
    terraform, config = copies
    _edit(terraform / "modules" / module / "main.tf", old, new)
    problems = parity_problems(terraform, config, "small")
    assert any(p.startswith(problem) for p in problems), problems


def test_committed_variables_changed_alone_fail(copies: tuple[Path, Path]) -> None:
    terraform, config = copies
    path = terraform / "tiers" / "large.tfvars.json"
    values = json.loads(path.read_text())
    values["alerts_indexes"] = values["alerts_indexes"][:1]
    path.write_text(json.dumps(values))
    problems = parity_problems(terraform, config, "large")
    assert any("stale at alerts_indexes" in p for p in problems)
    assert any(p.startswith("alerts indexes") for p in problems)


def test_an_undeclared_variable_is_refused(copies: tuple[Path, Path]) -> None:
    terraform, _ = copies
    values = json.loads((terraform / "tiers" / "small.tfvars.json").read_text())
    with pytest.raises(PlanError, match="undeclared"):
        plan(terraform, {**values, "shards": 3})
    values.pop("shard_count")
    with pytest.raises(PlanError, match="shard_count"):
        plan(terraform, values)


@pytest.mark.integration
def test_the_table_coattail_up_creates_has_terraforms_layout(aws_endpoint: str, tmp_path: Path) -> None:
    """Provisioned on the emulator (names of its own), the alerts table's key, attributes, indexes and TTL
    are the ones Terraform declares for the tier."""
    from infra.provision import StackSpec, provision
    from pipeline.aws import client
    from pipeline.config import ConfigLoader, RuntimeSettings

    config = ConfigLoader().load("large", env={})
    spec = StackSpec.from_config(config)
    tag = uuid.uuid4().hex[:8]
    spec = replace(spec, streams=(), buckets=(), glue_database=f"ct_tf_{tag}",
                   alerts_table=replace(spec.alerts_table, name=f"ct-tf-{tag}"),
                   iceberg=replace(spec.iceberg, namespace=f"ct_tf_{tag}", tables=()))  # fmt: skip
    runtime = RuntimeSettings(aws_endpoint=aws_endpoint, state_dir=tmp_path)
    provision(spec, runtime)
    dynamodb = client("dynamodb", runtime)
    table = dynamodb.describe_table(TableName=spec.alerts_table.name)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=spec.alerts_table.name)["TimeToLiveDescription"]
    planned, _ = plan(TERRAFORM, json.loads((TERRAFORM / "tiers" / "large.tfvars.json").read_text()))
    (declared,) = [p.args for p in planned if p.type == "aws_dynamodb_table"]
    assert [k["AttributeName"] for k in table["KeySchema"]] == [declared["hash_key"]]
    assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} == {
        (a["name"], a["type"]) for a in declared["attribute"]
    }
    assert {
        (i["IndexName"], *(k["AttributeName"] for k in i["KeySchema"]), i["Projection"]["ProjectionType"])
        for i in table["GlobalSecondaryIndexes"]
    } == {
        (i["name"], i["hash_key"], i["range_key"], i["projection_type"])
        for i in declared["global_secondary_index"]
    }
    assert (ttl["AttributeName"], ttl["TimeToLiveStatus"] in ("ENABLED", "ENABLING")) == (
        declared["ttl"][0]["attribute_name"],
        declared["ttl"][0]["enabled"],
    )
