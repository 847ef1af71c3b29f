"""Shared test helpers: sample events, tables, call counting."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable
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


CACHE = "vpcflow-partitioner-cache"


def create_cache(dynamodb: Any, name: str = CACHE) -> None:
    """The function's DynamoDB cache table: partition key `id` (S)."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


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
    with contextlib.suppress(glue.exceptions.AlreadyExistsException):
        glue.create_database(DatabaseInput={"Name": database})
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
        client.meta.events.register(f"before-parameter-build.{service}.*", self._count)

    def _count(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls[model.name] += 1
        if model.name == "BatchCreatePartition":
            self.entries["BatchCreatePartition"] += len(params["PartitionInputList"])

    @property
    def total(self) -> int:
        return sum(self.calls.values())


class HttpResponse:
    """What a before-call hook hands botocore in place of the HTTP response."""

    def __init__(self, status: int = 200) -> None:
        self.status_code = status
        self.headers: dict[str, str] = {}
        self.content = b""
        self.raw = None


def failure(code: str, status: int = 400) -> tuple[HttpResponse, dict[str, Any]]:
    """A before-call hook's answer: the AWS error `code`, as after botocore's retries."""
    return HttpResponse(status), {
        "Error": {"Code": code, "Message": f"injected {code}"},
        "ResponseMetadata": {},
    }


def inject_error(client: Any, operation: str, code: str, times: int = 10**9, status: int = 400) -> list[int]:
    """Make `operation` on `client` fail with `code` (as after botocore's retries) `times` times."""
    left = [times]
    service = client.meta.service_model.service_name

    def fail(**_: Any) -> Any:
        if left[0] <= 0:
            return None
        left[0] -= 1
        return failure(code, status)

    client.meta.events.register_first(f"before-call.{service}.{operation}", fail)
    return left


def answer(client: Any, operation: str, respond: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Answer `operation` (a JSON-protocol call) on `client` with `respond(request body)`, for
    what moto does not implement or keep."""
    service = client.meta.service_model.service_name

    def reply(params: dict[str, Any], **_: Any) -> Any:
        return HttpResponse(), respond(json.loads(params["body"])) | {
            "ResponseMetadata": {"HTTPStatusCode": 200}
        }

    client.meta.events.register_first(f"before-call.{service}.{operation}", reply)


def change_table(
    glue: Any, database: str, table: str, descriptor: dict[str, Any] | None = None, **parameters: str
) -> dict[str, Any]:
    """UpdateTable with the table as Glue has it: `descriptor` merged into its StorageDescriptor
    and `parameters` into its Parameters. Returns the StorageDescriptor it now has."""
    current = glue.get_table(DatabaseName=database, Name=table)["Table"]
    sd = {**current["StorageDescriptor"], **(descriptor or {})}
    glue.update_table(
        DatabaseName=database,
        TableInput={
            "Name": table,
            "TableType": current.get("TableType", "EXTERNAL_TABLE"),
            "Parameters": {**(current.get("Parameters") or {}), **parameters},
            "PartitionKeys": current["PartitionKeys"],
            "StorageDescriptor": sd,
        },
    )
    return sd


def emitted_metrics(text: str) -> dict[str, float]:
    """Sum the EMF metrics powertools printed to stdout."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if '"_aws"' not in line:
            continue
        doc = json.loads(line)
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                name = metric["Name"]
                value = doc[name]
                totals[name] = totals.get(name, 0) + (sum(value) if isinstance(value, list) else value)
    return totals


def sqs_event(*bodies: str) -> dict[str, Any]:
    template = load_event("sqs_s3.json")["Records"][0]
    return {"Records": [dict(template, messageId=f"m{i}", body=body) for i, body in enumerate(bodies)]}


def s3_body(*keys: str, bucket: str = BUCKET) -> str:
    record = load_event("s3_notification.json")["Records"][0]
    records = []
    for key in keys:
        r = json.loads(json.dumps(record))
        r["s3"]["object"]["key"] = key
        r["s3"]["bucket"]["name"] = bucket
        records.append(r)
    return json.dumps({"Records": records})


def flow_key(
    day: str, hour: str = "", account: str = ACCOUNT, region: str = "us-east-1", name: str = "a"
) -> str:
    folder = f"AWSLogs/{account}/vpcflowlogs/{region}/{day.replace('-', '/')}/" + (f"{hour}/" if hour else "")
    return f"{folder}{account}_vpcflowlogs_{region}_fl-0a1b2c3d4e5f60718_{day.replace('-', '')}T0005Z_{name}.log.gz"
