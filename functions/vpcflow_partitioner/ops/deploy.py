"""What the stack takes from Python: the Glue database and table (the same definition as
`init`) and the routing (notification filters, EventBridge pattern: the same as `doctor`'s).

serverless.yml (through deploy/resources.js) runs `python -m vpcflow_partitioner.ops.deploy`
with only the standard library: this module imports nothing but the pure `formats` and `routing`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..formats import (
    CLASSIC,
    DEFAULT_FORMAT,
    HIVE,
    MULTI_ACCOUNT,
    PARQUET,
    TEXT,
    FormatError,
    TableSpec,
    parse_format,
)
from .routing import event_pattern, notification_filters


def glue_resources(spec: TableSpec, create_database: bool = True) -> dict[str, Any]:
    """`AWS::Glue::Database` (optional) and `AWS::Glue::Table`, both retained on stack removal."""
    resources: dict[str, Any] = {}
    table = spec.cloudformation(catalog_id={"Ref": "AWS::AccountId"})
    if create_database:
        resources["FlowLogsDatabase"] = {
            "Type": "AWS::Glue::Database",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {"CatalogId": {"Ref": "AWS::AccountId"}, "DatabaseInput": {"Name": spec.database}},
        }
        table["DependsOn"] = ["FlowLogsDatabase"]
    resources["FlowLogsTable"] = table
    return resources


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vpcflow_partitioner.ops.deploy")
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--location", required=True, help="s3://bucket/prefix/, the table's")
    parser.add_argument("--layout", choices=[CLASSIC, MULTI_ACCOUNT, HIVE], default=MULTI_ACCOUNT)
    parser.add_argument("--file-format", choices=[TEXT, PARQUET], default=TEXT)
    parser.add_argument("--hourly", default="false")
    parser.add_argument("--format", default=DEFAULT_FORMAT)
    parser.add_argument("--create-table", default="true")
    parser.add_argument("--create-database", default="true")
    args = parser.parse_args(argv)
    location = args.location if args.location.endswith("/") else args.location + "/"
    key_prefix = location.removeprefix(f"s3://{args.bucket}/")
    resources: dict[str, Any] = {}
    if args.create_table.lower() == "true":
        try:
            spec = TableSpec(
                args.database,
                args.table,
                location,
                parse_format(args.format),
                args.file_format,
                args.layout,
                args.hourly.lower() == "true",
            )
        except FormatError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        resources = glue_resources(spec, args.create_database.lower() == "true")
    routing = {
        "notifications": notification_filters(key_prefix),
        "eventPattern": event_pattern(args.bucket, key_prefix),
    }
    json.dump({"resources": resources, "routing": routing}, sys.stdout, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
