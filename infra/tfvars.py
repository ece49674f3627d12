"""Terraform variables for the AWS tiers (``infra/terraform``), derived from the same spec as the local stack.

``python -m infra.tfvars --tier large > large.tfvars.json`` then ``terraform apply -var-file=...``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from core.errors import StackError
from infra.provision import StackSpec
from pipeline.config import TIERS, ConfigLoader


def tfvars(spec: StackSpec, tier: str, region: str) -> dict[str, Any]:
    """The variables of ``infra/terraform/variables.tf`` for one tier's spec."""
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
        "ttl_attribute": table.ttl_attribute,
        "symbol_index": table.index_name,
        "index_partition": table.index_partition,
        "index_sort": table.index_sort,
        "warehouse_bucket": warehouse,
        "checkpoint_bucket": checkpoints,
        "glue_database": spec.glue_database,
    }


def main(argv: list[str] | None = None) -> None:
    """Print the tier's Terraform variables as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tier", choices=TIERS, default="small")
    args = parser.parse_args(argv)
    config = ConfigLoader().load(args.tier)
    print(json.dumps(tfvars(StackSpec.from_config(config), config.tier, config.runtime.region), indent=2))


if __name__ == "__main__":
    main()
