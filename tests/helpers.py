"""Shared test helpers: sample events, tables, call counting."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parent.parent / "events"
BUCKET = "example-flow-logs"
ACCOUNT = "123456789012"
REGION = "us-east-1"
DATABASE = "flowlogs"
TABLE = "vpc_flow_logs"
CLASSIC_LOCATION = f"s3://{BUCKET}/AWSLogs/{ACCOUNT}/vpcflowlogs/{REGION}/"

TEXT_SD = {
    "Columns": [
        {"Name": "version", "Type": "int"},
        {"Name": "account_id", "Type": "string"},
        {"Name": "interface_id", "Type": "string"},
        {"Name": "srcaddr", "Type": "string"},
        {"Name": "dstaddr", "Type": "string"},
        {"Name": "srcport", "Type": "int"},
        {"Name": "dstport", "Type": "int"},
        {"Name": "protocol", "Type": "bigint"},
        {"Name": "packets", "Type": "bigint"},
        {"Name": "bytes", "Type": "bigint"},
        {"Name": "start", "Type": "bigint"},
        {"Name": "end", "Type": "bigint"},
        {"Name": "action", "Type": "string"},
        {"Name": "log_status", "Type": "string"},
    ],
    "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
    "SerdeInfo": {
        "SerializationLibrary": "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
        "Parameters": {"field.delim": " ", "serialization.format": " "},
    },
    "Compressed": True,
}


def load_event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def event_names() -> list[str]:
    return sorted(p.name for p in EVENTS.glob("*.json"))


def create_table(
    glue: Any,
    location: str = CLASSIC_LOCATION,
    keys: list[tuple[str, str]] | None = None,
    parameters: dict[str, str] | None = None,
    database: str = DATABASE,
    table: str = TABLE,
) -> None:
    try:
        glue.create_database(DatabaseInput={"Name": database})
    except glue.exceptions.AlreadyExistsException:
        pass
    glue.create_table(
        DatabaseName=database,
        TableInput={
            "Name": table,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"EXTERNAL": "TRUE", "skip.header.line.count": "1", **(parameters or {})},
            "PartitionKeys": [{"Name": n, "Type": t} for n, t in (keys or [("date", "date")])],
            "StorageDescriptor": {**TEXT_SD, "Location": location},
        },
    )


def partitions(glue: Any, database: str = DATABASE, table: str = TABLE) -> dict[tuple[str, ...], str]:
    out = {}
    for page in glue.get_paginator("get_partitions").paginate(DatabaseName=database, TableName=table):
        for p in page["Partitions"]:
            out[tuple(p["Values"])] = p["StorageDescriptor"]["Location"]
    return out


class CallCounter:
    """Counts API calls our code makes on a client (botocore retries are not separate calls)."""

    def __init__(self, client: Any) -> None:
        self.calls: Counter[str] = Counter()
        self.entries: Counter[str] = Counter()
        service = client.meta.service_model.service_name
        client.meta.events.register(f"before-call.{service}.*", self._count)

    def _count(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls[model.name] += 1
        if model.name == "BatchCreatePartition":
            self.entries["BatchCreatePartition"] += len(params["PartitionInputList"])

    @property
    def total(self) -> int:
        return sum(self.calls.values())
