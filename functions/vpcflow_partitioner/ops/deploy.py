"""CloudFormation for the Glue database and table, from the same definition as `init`.

serverless.yml (through deploy/resources.js) runs `python -m vpcflow_partitioner.ops.deploy`
with only the standard library: this module imports nothing but the pure `formats`.
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
    parser.add_argument("--database", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--location", required=True)
    parser.add_argument("--layout", choices=[CLASSIC, MULTI_ACCOUNT, HIVE], default=MULTI_ACCOUNT)
    parser.add_argument("--file-format", choices=[TEXT, PARQUET], default=TEXT)
    parser.add_argument("--hourly", default="false")
    parser.add_argument("--format", default=DEFAULT_FORMAT)
    parser.add_argument("--create-database", default="true")
    args = parser.parse_args(argv)
    try:
        spec = TableSpec(
            args.database,
            args.table,
            args.location if args.location.endswith("/") else args.location + "/",
            parse_format(args.format),
            args.file_format,
            args.layout,
            args.hourly.lower() == "true",
        )
    except FormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    json.dump(glue_resources(spec, args.create_database.lower() == "true"), sys.stdout, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
