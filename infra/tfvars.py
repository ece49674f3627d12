"""Terraform variables for the AWS tiers (``infra/terraform``), derived from the same spec as the local stack.

``python -m infra.tfvars --tier large > large.tfvars.json`` then ``terraform apply -var-file=...``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from core.errors import StackError
from infra.provision import StackSpec
from pipeline.config import TIERS, ConfigLoader, EmrMaximumCapacity, EmrSpark, EmrWorker


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
        "alerts_key_type": table.attribute_type(table.key),
        "ttl_attribute": table.ttl_attribute,
        "symbol_index": table.index_name,
        "index_partition": table.index_partition,
        "index_partition_type": table.attribute_type(table.index_partition),
        "index_sort": table.index_sort,
        "index_sort_type": table.attribute_type(table.index_sort),
        "warehouse_bucket": warehouse,
        "checkpoint_bucket": checkpoints,
        "glue_database": spec.glue_database,
        "emr_release": emr.release,
        "emr_initial_capacity": {
            "Driver": {"worker_count": emr.initial_capacity.drivers, **_sizes(emr.driver)},
            "Executor": {"worker_count": emr.initial_capacity.executors, **_sizes(emr.executor)},
        },
        "emr_maximum_capacity": _sizes(emr.maximum_capacity),
    }


def main(argv: list[str] | None = None) -> None:
    """Print the tier's Terraform variables as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tier", choices=TIERS, default="small")
    args = parser.parse_args(argv)
    config = ConfigLoader().load(args.tier)
    values = tfvars(StackSpec.from_config(config), config.tier, config.runtime.region, config.spark.emr)
    print(json.dumps(values, indent=2))


if __name__ == "__main__":
    main()
