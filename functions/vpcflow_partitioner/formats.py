"""Pure: flow-log format strings <-> Glue columns, table definitions, Athena DDL.

One definition serves `init` (Glue CreateTable), `--print-ddl` (Athena DDL) and the
CloudFormation `AWS::Glue::Table` that serverless.yml deploys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .keys import REGION_PATTERN


class FormatError(ValueError):
    """A format string, header line or table option that cannot be honoured."""


@dataclass(frozen=True, slots=True)
class Field:
    """One documented flow-log field ("Flow log records", VPC user guide)."""

    name: str  # as AWS spells it: `log-status`
    version: int  # the flow-log version that introduced it
    text_type: str  # Athena type for text files (AWS's Athena DDL for flow logs)
    parquet_type: str  # Athena type matching the documented Parquet physical type

    @property
    def column(self) -> str:
        return self.name.replace("-", "_")


def _f(name: str, version: int, text: str = "string", parquet: str = "string") -> Field:
    return Field(name, version, text, parquet)


# Text: the types of AWS's "Querying Amazon VPC flow logs" DDL (protocol bigint, ...).
# Parquet: the page's "Parquet data type" for each field: INT_32 -> int, INT_64 -> bigint,
# STRING -> string. Reading an INT_32 column as bigint fails in Athena, hence two columns.
FIELDS: tuple[Field, ...] = (
    _f("version", 2, "int", "int"),
    _f("account-id", 2),
    _f("interface-id", 2),
    _f("srcaddr", 2),
    _f("dstaddr", 2),
    _f("srcport", 2, "int", "int"),
    _f("dstport", 2, "int", "int"),
    _f("protocol", 2, "bigint", "int"),
    _f("packets", 2, "bigint", "bigint"),
    _f("bytes", 2, "bigint", "bigint"),
    _f("start", 2, "bigint", "bigint"),
    _f("end", 2, "bigint", "bigint"),
    _f("action", 2),
    _f("log-status", 2),
    _f("vpc-id", 3),
    _f("subnet-id", 3),
    _f("instance-id", 3),
    _f("tcp-flags", 3, "int", "int"),
    _f("type", 3),
    _f("pkt-srcaddr", 3),
    _f("pkt-dstaddr", 3),
    _f("region", 4),
    _f("az-id", 4),
    _f("sublocation-type", 4),
    _f("sublocation-id", 4),
    _f("pkt-src-aws-service", 5),
    _f("pkt-dst-aws-service", 5),
    _f("flow-direction", 5),
    _f("traffic-path", 5, "int", "int"),
    _f("ecs-cluster-arn", 7),
    _f("ecs-cluster-name", 7),
    _f("ecs-container-instance-arn", 7),
    _f("ecs-container-instance-id", 7),
    _f("ecs-container-id", 7),
    _f("ecs-second-container-id", 7),
    _f("ecs-service-name", 7),
    _f("ecs-task-definition-arn", 7),
    _f("ecs-task-arn", 7),
    _f("ecs-task-id", 7),
    _f("reject-reason", 8),
    _f("resource-id", 9),
    _f("encryption-status", 10, "int", "int"),
)
_BY_NAME = {f.name: f for f in FIELDS} | {f.column: f for f in FIELDS}
DEFAULT_FIELDS = tuple(f for f in FIELDS if f.version == 2)
DEFAULT_FORMAT = " ".join(f"${{{f.name}}}" for f in DEFAULT_FIELDS)

TEXT = "text"
PARQUET = "parquet"
CLASSIC = "classic"
MULTI_ACCOUNT = "multi-account"
HIVE = "hive"
# Athena reserved words that flow-log columns and partition keys use.
_RESERVED = {
    "end",
    "date",
    "start",
    "type",
    "action",
    "region",
    "version",
    "bytes",
    "day",
    "month",
    "year",
    "hour",
}


def field_named(name: str) -> Field:
    """The documented field called `name` (hyphens or underscores)."""
    found = _BY_NAME.get(name.strip().lower())
    if found is None:
        raise FormatError(f"unknown flow-log field {name!r} (see 'Flow log records' in the VPC user guide)")
    return found


def parse_format(text: str) -> tuple[Field, ...]:
    """`${version} ${account-id} ...` -> fields; names the first bad or repeated field."""
    if not text or not text.strip():
        raise FormatError("the format string is empty")
    tokens = text.split()
    fields = []
    for token in tokens:
        match = re.fullmatch(r"\$\{([^}]*)\}", token)
        if match is None:
            raise FormatError(f"{token!r} is not a ${{field}} reference")
        fields.append(field_named(match.group(1)))
    return _unique(fields)


def parse_header(line: str) -> tuple[Field, ...]:
    """A delivered text file's header line (`version account-id ...`) -> fields."""
    return _unique([field_named(name) for name in line.split()])


def fields_from_columns(columns: list[dict[str, Any]]) -> tuple[Field, ...]:
    """Glue columns -> fields (the inverse of `columns`)."""
    return _unique([field_named(c["Name"]) for c in columns])


def format_string(fields: tuple[Field, ...]) -> str:
    """Fields -> the format string AWS takes in CreateFlowLogs `LogFormat`."""
    return " ".join(f"${{{f.name}}}" for f in fields)


def _unique(fields: list[Field]) -> tuple[Field, ...]:
    seen: set[str] = set()
    for f in fields:
        if f.name in seen:
            raise FormatError(f"field {f.name!r} appears twice")
        seen.add(f.name)
    if not fields:
        raise FormatError("no fields")
    return tuple(fields)


def columns(fields: tuple[Field, ...], file_format: str) -> list[dict[str, str]]:
    """Glue columns for the fields, typed for text or Parquet files."""
    return [
        {"Name": f.column, "Type": f.parquet_type if file_format == PARQUET else f.text_type} for f in fields
    ]


@dataclass(frozen=True)
class TableSpec:
    """Everything `init` decides about a flow-log table."""

    database: str
    name: str
    location: str  # s3://bucket/[prefix/]AWSLogs/[account/vpcflowlogs/region/]
    fields: tuple[Field, ...] = DEFAULT_FIELDS
    file_format: str = TEXT
    layout: str = CLASSIC
    hourly: bool = False
    extra_parameters: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.file_format not in (TEXT, PARQUET):
            raise FormatError(f"file format {self.file_format!r}: use text or parquet")
        if self.layout not in (CLASSIC, MULTI_ACCOUNT, HIVE):
            raise FormatError(f"layout {self.layout!r}: use classic, multi-account or hive")
        if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/(.*/)?", self.location):
            raise FormatError(
                f"location {self.location!r} is not s3://bucket/[prefix/] (a bucket name is 3-63 "
                "lowercase letters, digits, dots and hyphens; the location ends in '/')"
            )
        if self.layout == CLASSIC:
            if not re.search(rf"/AWSLogs/\d{{12}}/vpcflowlogs/{REGION_PATTERN}/$", self.location):
                raise FormatError(
                    "the classic table's location is one account and region: "
                    "s3://bucket/[prefix/]AWSLogs/{account}/vpcflowlogs/{region}/ "
                    "(use --multi-account or --hive for a location ending in AWSLogs/)"
                )
        elif not self.location.endswith("/AWSLogs/"):
            raise FormatError(
                f"a {self.layout} table's location ends in AWSLogs/: s3://bucket/[prefix/]AWSLogs/"
            )

    def partition_keys(self) -> list[dict[str, str]]:
        """Keys by layout; names and order are what scheme.py reads back."""
        if self.layout == CLASSIC:
            keys = [("date", "date")]
        elif self.layout == MULTI_ACCOUNT:
            keys = [(k, "string") for k in ("aws_account_id", "aws_region", "year", "month", "day")]
        else:  # AWS's own names for Hive-compatible prefixes, so MSCK REPAIR keeps working
            keys = [
                (k, "string") for k in ("aws-account-id", "aws-service", "aws-region", "year", "month", "day")
            ]
        if self.hourly:
            keys.append(("hour", "string"))
        return [{"Name": n, "Type": t} for n, t in keys]

    def parameters(self) -> dict[str, str]:
        base = {
            "EXTERNAL": "TRUE",
            "classification": self.file_format if self.file_format == PARQUET else "csv",
        }
        if self.file_format == TEXT:
            # The first line of every delivered text file is the field names.
            base |= {"skip.header.line.count": "1", "compressionType": "gzip"}
        return base | self.extra_parameters

    def storage_descriptor(self) -> dict[str, Any]:
        descriptor: dict[str, Any] = {
            "Columns": columns(self.fields, self.file_format),
            "Location": self.location,
        }
        if self.file_format == PARQUET:
            descriptor |= {
                "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                "SerdeInfo": {
                    "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                    "Parameters": {"serialization.format": "1"},
                },
            }
        else:
            descriptor |= {
                "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
                "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                "SerdeInfo": {
                    "SerializationLibrary": "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
                    "Parameters": {"field.delim": " ", "serialization.format": " "},
                },
                "Compressed": True,
            }
        return descriptor

    def table_input(self) -> dict[str, Any]:
        """Glue TableInput for CreateTable / UpdateTable."""
        return {
            "Name": self.name,
            "Description": f"VPC Flow Logs ({self.file_format}, {self.layout}{', hourly' if self.hourly else ''}); "
            "partitions kept by vpcflow-partitioner",
            "TableType": "EXTERNAL_TABLE",
            "Parameters": self.parameters(),
            "PartitionKeys": self.partition_keys(),
            "StorageDescriptor": self.storage_descriptor(),
        }

    def cloudformation(self, catalog_id: Any = None) -> dict[str, Any]:
        """The `AWS::Glue::Table` resource; Retain so that `sls remove` never drops partitions."""
        return {
            "Type": "AWS::Glue::Table",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "CatalogId": catalog_id if catalog_id is not None else {"Ref": "AWS::AccountId"},
                "DatabaseName": self.database,
                "TableInput": self.table_input(),
            },
        }

    def athena_ddl(self) -> str:
        """CREATE EXTERNAL TABLE equivalent to `table_input`, reserved words quoted."""
        columns_sql = ",\n".join(
            f"  {_ident(c['Name'])} {c['Type']}" for c in columns(self.fields, self.file_format)
        )
        keys_sql = ",\n".join(f"  {_ident(k['Name'])} {k['Type']}" for k in self.partition_keys())
        if self.file_format == PARQUET:
            storage = (
                "ROW FORMAT SERDE 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe'\n"
                "STORED AS INPUTFORMAT 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat'\n"
                "OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat'"
            )
        else:
            storage = "ROW FORMAT DELIMITED\nFIELDS TERMINATED BY ' '"
        properties = ",\n".join(
            f"  '{k}'='{v}'" for k, v in self.parameters().items() if k not in ("EXTERNAL", "classification")
        )
        return (
            f"CREATE EXTERNAL TABLE IF NOT EXISTS `{self.database}`.`{self.name}` (\n{columns_sql}\n)\n"
            f"PARTITIONED BY (\n{keys_sql}\n)\n{storage}\nLOCATION '{self.location}'\n"
            + (f"TBLPROPERTIES (\n{properties}\n)" if properties else "").rstrip()
            + ";"
        )

    def projection_ddl(self, since: date = date(2020, 1, 1)) -> str:
        """The Athena-only variant: partition projection instead of catalog partitions."""
        start = since.strftime("%Y/%m/%d")
        if self.layout == CLASSIC:
            keys = [("day", "string")] + ([("hour", "string")] if self.hourly else [])
            props = {
                "projection.day.type": "date",
                "projection.day.format": "yyyy/MM/dd",
                "projection.day.range": f"{start},NOW",
                "projection.day.interval": "1",
                "projection.day.interval.unit": "DAYS",
            }
            template = f"{self.location}${{day}}/" + ("${hour}/" if self.hourly else "")
        else:
            names = [k["Name"] for k in self.partition_keys()]
            keys = [(n, "string") for n in names]
            props = {}
            for name in names:
                if name in ("aws_account_id", "aws-account-id", "aws_region", "aws-region"):
                    props[f"projection.{name}.type"] = "injected"
                elif name == "aws-service":
                    props |= {f"projection.{name}.type": "enum", f"projection.{name}.values": "vpcflowlogs"}
                else:
                    low, high, digits = {
                        "year": (since.year, 2100, 4),
                        "month": (1, 12, 2),
                        "day": (1, 31, 2),
                        "hour": (0, 23, 2),
                    }[name]
                    props |= {
                        f"projection.{name}.type": "integer",
                        f"projection.{name}.range": f"{low},{high}",
                        f"projection.{name}.digits": str(digits),
                    }
            if self.layout == HIVE:
                folders = [f"{n}=${{{n}}}" for n in names]
            else:
                folders = ["${aws_account_id}", "vpcflowlogs", "${aws_region}"] + [
                    f"${{{n}}}" for n in names[2:]
                ]
            template = self.location + "/".join(folders) + "/"
        props = {"projection.enabled": "true", **props, "storage.location.template": template}
        variant = TableSpec(
            self.database,
            f"{self.name}_projected",
            self.location,
            self.fields,
            self.file_format,
            self.layout,
            self.hourly,
            props,
        )
        ddl = variant.athena_ddl()
        keys_sql = ",\n".join(f"  {_ident(n)} {t}" for n, t in keys)
        return re.sub(
            r"PARTITIONED BY \(\n.*?\n\)", f"PARTITIONED BY (\n{keys_sql}\n)", ddl, count=1, flags=re.S
        )


def _ident(name: str) -> str:
    """Backtick reserved words and names Athena would not take bare (hyphens)."""
    if name.lower() in _RESERVED or not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        return f"`{name}`"
    return name


def zone_slug(zone: str) -> str:
    """`America/Argentina/Buenos_Aires` -> `america_argentina_buenos_aires`."""
    return re.sub(r"[^a-z0-9]+", "_", zone.lower()).strip("_")


def check_zone(zone: str) -> ZoneInfo:
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise FormatError(f"unknown time zone {zone!r}: use an IANA name such as Asia/Seoul") from None


def view_sql(spec: TableSpec, zone: str) -> tuple[str, str]:
    """(view name, CREATE OR REPLACE VIEW) with start/end as local timestamps in `zone`.

    `AT TIME ZONE` follows the zone's rules, DST included, unlike `+ INTERVAL '9' HOUR`;
    the CAST to a plain timestamp is what views and CTAS accept.
    """
    check_zone(zone)
    name = f"{spec.name}_{zone_slug(zone)}"
    select = []
    for c in columns(spec.fields, spec.file_format):
        ident = f'"{c["Name"]}"'
        if c["Name"] in ("start", "end"):
            select.append(f"CAST(from_unixtime({ident}) AT TIME ZONE '{zone}' AS timestamp) AS {ident}")
        else:
            select.append(ident)
    select += [f'"{k["Name"]}"' for k in spec.partition_keys()]
    body = ",\n  ".join(select)
    sql = f'CREATE OR REPLACE VIEW "{spec.database}"."{name}" AS\nSELECT\n  {body}\nFROM "{spec.database}"."{spec.name}"'
    return name, sql


def local_day_query(spec: TableSpec, zone: str, day: date) -> str:
    """A query for one local day that prunes to exactly the UTC partitions it spans."""
    tz = check_zone(zone)
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    # A file lands in the folder of its delivery window, minutes after its records start:
    # a local day ending at UTC midnight also needs the next UTC day's first files.
    end = start + timedelta(days=1, minutes=15)
    utc = ZoneInfo("UTC")
    utc_days = sorted({start.astimezone(utc).date(), (end - timedelta(seconds=1)).astimezone(utc).date()})
    if (utc_days[-1] - utc_days[0]).days > 1:
        utc_days = [utc_days[0] + timedelta(days=i) for i in range((utc_days[-1] - utc_days[0]).days + 1)]
    view, _ = view_sql(spec, zone)
    keys = [k["Name"] for k in spec.partition_keys()]
    if "date" in keys:
        prune = " OR ".join(f"\"date\" = DATE '{d.isoformat()}'" for d in utc_days)
    else:
        prune = " OR ".join(
            f"(\"year\" = '{d:%Y}' AND \"month\" = '{d:%m}' AND \"day\" = '{d:%d}')" for d in utc_days
        )
    return (
        f'SELECT * FROM "{spec.database}"."{view}"\n'
        f"WHERE ({prune})\n"
        f"  AND \"start\" >= TIMESTAMP '{day.isoformat()} 00:00:00'\n"
        f"  AND \"start\" < TIMESTAMP '{(day + timedelta(days=1)).isoformat()} 00:00:00'"
    )
