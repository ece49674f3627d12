"""A finished run's alerts back into its DynamoDB table, so the alert API (and the dashboard) can serve a
run that removed its resources when it ended (the default): the table is created with the layout
``coattail up`` gives it and the alerts the run captured (``pipeline/alerts.parquet``) are written as the
DynamoDB sink shapes them, with the ``ts_written`` stamps they had."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import polars as pl

from core.errors import StackError
from infra.provision import table_definition, translated
from pipeline.aws import client, endpoint_for
from pipeline.config import Config
from pipeline.sinks.dynamodb import to_item
from pipeline.tables import alerts_dynamo_table

BATCH: Final = 25
"""BatchWriteItem's limit."""


def restore_alerts(config: Config, run_path: Path) -> int:
    """Create ``config``'s alerts table and write the run's captured alerts into it; returns how many."""
    layout = alerts_dynamo_table(config)
    dynamodb = client("dynamodb", config.runtime)
    captured = run_path / "pipeline" / "alerts.parquet"
    if not captured.is_file():
        raise StackError(f"run {run_path.name} captured no alerts ({captured} is missing): it did not finish")
    alerts = pl.read_parquet(captured).to_dicts()
    with translated("table", layout.name, endpoint_for("dynamodb", config.runtime)):
        dynamodb.create_table(**table_definition(layout))
        dynamodb.get_waiter("table_exists").wait(TableName=layout.name, WaiterConfig={"Delay": 1})
        for start in range(0, len(alerts), BATCH):
            requests = [
                {"PutRequest": {"Item": to_item(row, row["ts_written"], config.dynamodb.ttl_hours, layout)}}
                for row in alerts[start : start + BATCH]
            ]
            while requests:  # DynamoDB may hand back what it did not write yet
                answer = dynamodb.batch_write_item(RequestItems={layout.name: requests})
                requests = answer.get("UnprocessedItems", {}).get(layout.name, [])
    return len(alerts)
