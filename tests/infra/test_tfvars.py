"""The Terraform module for the AWS tiers takes exactly the variables derived from the local stack's spec."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from infra.provision import StackSpec
from infra.tfvars import main, tfvars
from pipeline.config import TIERS, ConfigLoader

TERRAFORM = Path(__file__).resolve().parents[2] / "infra" / "terraform"


def _declared_variables() -> set[str]:
    return set(re.findall(r'^variable "([a-z_]+)"', (TERRAFORM / "variables.tf").read_text(), flags=re.M))


def _used_variables() -> set[str]:
    text = "".join(p.read_text() for p in TERRAFORM.glob("*.tf"))
    return set(re.findall(r"\bvar\.([a-z_]+)", text))


@pytest.mark.parametrize("tier", TIERS)
def test_tfvars_cover_every_declared_variable(tier: str) -> None:
    config = ConfigLoader().load(tier, env={})
    values = tfvars(StackSpec.from_config(config), tier, "eu-west-1", config.spark.emr)
    assert set(values) == _declared_variables() - {"api_package"}  # the deploy's build, not the tier's
    assert values["shard_count"] == config.kinesis.shards
    assert values["ttl_attribute"] == "expires_at"
    assert values["emr_release"] == "emr-spark-8.0.0"
    executor, initial = config.spark.emr.executor, config.spark.emr.initial_capacity
    assert values["emr_initial_capacity"]["Executor"] == {
        "worker_count": initial.executors,
        "cpu": f"{executor.vcpu} vCPU",
        "memory": f"{executor.memory_gb} GB",
        "disk": f"{executor.disk_gb} GB",
    }
    assert values["emr_initial_capacity"]["Driver"]["worker_count"] == initial.drivers
    types = values["alerts_attributes"]
    assert (types["alert_id"], types["symbol"], types["ts_event"]) == ("S", "S", "N")
    assert {i["hash_key"] for i in values["alerts_indexes"]} == {"symbol", "detector", "feed"}


def test_every_used_variable_is_declared() -> None:
    assert _used_variables() == _declared_variables()


def test_command_prints_json(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COATTAIL__KINESIS__SHARDS", raising=False)
    main(["--tier", "medium"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["tier"] == "medium"
    assert printed["shard_count"] == 4
