"""Terraform variables for the AWS tiers (``infra/terraform``), derived from the same spec as the local stack.

``python -m infra.tfvars --write`` (re)writes ``infra/terraform/tiers/<tier>.tfvars.json`` for every tier
(the parity test fails while one is stale); ``python -m infra.tfvars --tier large`` prints one. Then
``terraform -chdir=infra/terraform apply -var-file=tiers/large.tfvars.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Final

from core.errors import StackError
from infra.provision import StackSpec
from pipeline.api.app import ROUTES, handler
from pipeline.config import TIERS, ConfigLoader, EmrMaximumCapacity, EmrSpark, EmrWorker
from pipeline.emr import EMR_RELEASES

TERRAFORM_DIR: Final = Path(__file__).resolve().parent / "terraform"


def tier_file(tier: str, terraform_dir: Path = TERRAFORM_DIR) -> Path:
    """Where a tier's variables are kept."""
    return terraform_dir / "tiers" / f"{tier}.tfvars.json"


def _sizes(size: EmrWorker | EmrMaximumCapacity) -> dict[str, str]:
    """A worker's (or the ceiling's) size in EMR Serverless' notation."""
    return {"cpu": f"{size.vcpu} vCPU", "memory": f"{size.memory_gb} GB", "disk": f"{size.disk_gb} GB"}


def tfvars(spec: StackSpec, tier: str, region: str, emr: EmrSpark) -> dict[str, Any]:
    """The variables of ``infra/terraform/variables.tf`` for one tier's spec and EMR Serverless sizing."""
    if len(spec.streams) != 1:
        raise StackError(f"the Terraform module has one stream, the spec has {len(spec.streams)}")
    stream, table = spec.streams[0], spec.alerts_table
    warehouse, checkpoints = spec.buckets if len(spec.buckets) == 2 else (spec.buckets[0], spec.buckets[0])
    return {
        "tier": tier,
        "region": region,
        "stream_name": stream.name,
        "shard_count": stream.shards,
        "alerts_table": table.name,
        "alerts_key": table.key,
        "alerts_attributes": {name: table.attribute_type(name) for name in table.key_attributes},
        "alerts_indexes": [
            {"name": i.name, "hash_key": i.partition, "range_key": i.sort} for i in table.indexes
        ],
        "ttl_attribute": table.ttl_attribute,
        "buckets": list(spec.buckets),
        "warehouse_bucket": warehouse,
        "checkpoint_bucket": checkpoints,
        "glue_database": spec.glue_database,
        "emr_release": emr.release,
        "emr_initial_capacity": {
            "Driver": {"worker_count": emr.initial_capacity.drivers, **_sizes(emr.driver)},
            "Executor": {"worker_count": emr.initial_capacity.executors, **_sizes(emr.executor)},
        },
        "emr_maximum_capacity": _sizes(emr.maximum_capacity),
        "api_handler": f"{handler.__module__}.{handler.__name__}",
        "api_runtime": f"python{EMR_RELEASES[emr.release].python}",
        "api_routes": [f"GET {route}" for route in ROUTES],
    }


def tier_tfvars(tier: str, config_dir: Path | None = None) -> dict[str, Any]:
    """The variables of ``tier`` as its config files say (without the environment's overrides)."""
    config = ConfigLoader(config_dir).load(tier, env={})
    return tfvars(StackSpec.from_config(config), config.tier, config.runtime.region, config.spark.emr)


def main(argv: list[str] | None = None) -> None:
    """Print one tier's Terraform variables as JSON, or write every tier's file (``--write``)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tier", choices=TIERS, default="small")
    parser.add_argument("--write", action="store_true", help="write tiers/<tier>.tfvars.json for every tier")
    args = parser.parse_args(argv)
    if not args.write:
        print(json.dumps(tier_tfvars(args.tier), indent=2))
        return
    for tier in TIERS:
        path = tier_file(tier)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(tier_tfvars(tier), indent=2) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
