from __future__ import annotations

import datetime as dt

import pytest
from vpcflow_partitioner.formats import (
    DEFAULT_FORMAT,
    FIELDS,
    PARQUET,
    TEXT,
    FormatError,
    TableSpec,
    columns,
    fields_from_columns,
    format_string,
    local_day_query,
    parse_format,
    parse_header,
    view_sql,
    zone_slug,
)

CLASSIC = "s3://my-flow-logs/AWSLogs/123456789012/vpcflowlogs/us-east-1/"
TUTORIAL_COLUMNS = [
    ("version", "int"), ("account_id", "string"), ("interface_id", "string"), ("srcaddr", "string"),
    ("dstaddr", "string"), ("srcport", "int"), ("dstport", "int"), ("protocol", "bigint"),
    ("packets", "bigint"), ("bytes", "bigint"), ("start", "bigint"), ("end", "bigint"),
    ("action", "string"), ("log_status", "string"),
]  # fmt: skip
CUSTOM_29 = (
    "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} "
    "${packets} ${bytes} ${start} ${end} ${action} ${log-status} ${vpc-id} ${subnet-id} ${instance-id} "
    "${tcp-flags} ${type} ${pkt-srcaddr} ${pkt-dstaddr} ${region} ${az-id} ${sublocation-type} "
    "${sublocation-id} ${pkt-src-aws-service} ${pkt-dst-aws-service} ${flow-direction} ${traffic-path}"
)


def test_every_documented_field_round_trips() -> None:
    text = format_string(FIELDS)
    assert parse_format(text) == FIELDS
    for file_format in (TEXT, PARQUET):
        assert fields_from_columns(columns(FIELDS, file_format)) == FIELDS
    assert parse_header(" ".join(f.name for f in FIELDS)) == FIELDS
    assert all(f.column == f.name.replace("-", "_") for f in FIELDS)


def test_default_table_equals_the_tutorial_ddl_column_by_column() -> None:
    spec = TableSpec("flowlogs", "vpc_flow_logs", CLASSIC)
    table = spec.table_input()
    assert [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]] == TUTORIAL_COLUMNS
    assert table["PartitionKeys"] == [{"Name": "date", "Type": "date"}]
    assert table["Parameters"]["skip.header.line.count"] == "1"
    assert table["StorageDescriptor"]["SerdeInfo"]["Parameters"]["field.delim"] == " "
    assert format_string(parse_format(DEFAULT_FORMAT)) == DEFAULT_FORMAT


def test_custom_29_field_format() -> None:
    fields = parse_format(CUSTOM_29)
    assert len(fields) == 29
    cols = dict((c["Name"], c["Type"]) for c in columns(fields, TEXT))
    assert (
        cols["tcp_flags"] == "int"
        and cols["traffic_path"] == "int"
        and cols["pkt_dst_aws_service"] == "string"
    )


def test_parquet_types_follow_the_documented_physical_types() -> None:
    cols = dict((c["Name"], c["Type"]) for c in columns(FIELDS, PARQUET))
    assert cols["protocol"] == "int"  # INT_32 on the page; bigint would fail on the files
    assert cols["version"] == "int" and cols["srcport"] == "int" and cols["tcp_flags"] == "int"
    assert cols["packets"] == "bigint" and cols["start"] == "bigint" and cols["end"] == "bigint"
    spec = TableSpec("d", "t", "s3://my-flow-logs/AWSLogs/", file_format=PARQUET, layout="hive", hourly=True)
    sd = spec.storage_descriptor()
    assert sd["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    assert "skip.header.line.count" not in spec.parameters()
    assert [k["Name"] for k in spec.partition_keys()] == [
        "aws-account-id", "aws-service", "aws-region", "year", "month", "day", "hour"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("${version} ${account-id} ${vpcid}", "'vpcid'"),
        ("${version} ${account-id} ${version}", "'version'"),
        ("version account-id", "'version'"),
        ("${version} ${}", "''"),
    ],
)
def test_bad_format_strings_name_the_bad_field(text: str, named: str) -> None:
    with pytest.raises(FormatError, match=named):
        parse_format(text)


def test_locations_must_fit_the_layout() -> None:
    with pytest.raises(FormatError, match="multi-account"):
        TableSpec("d", "t", "s3://my-flow-logs/AWSLogs/")
    with pytest.raises(FormatError, match="AWSLogs/"):
        TableSpec("d", "t", CLASSIC, layout="multi-account")
    TableSpec("d", "t", "s3://my-flow-logs/some/prefix/AWSLogs/", layout="multi-account")


def test_ddl_backticks_reserved_words() -> None:
    ddl = TableSpec("flowlogs", "vpc_flow_logs", CLASSIC).athena_ddl()
    assert "`end` bigint" in ddl and "`date` date" in ddl and "`start` bigint" in ddl
    assert "LOCATION 's3://my-flow-logs/AWSLogs/123456789012/vpcflowlogs/us-east-1/'" in ddl
    hive = TableSpec("d", "t", "s3://my-flow-logs/AWSLogs/", layout="hive").athena_ddl()
    assert "`aws-account-id` string" in hive


def test_projection_variant_templates_every_layout() -> None:
    classic = TableSpec("d", "t", CLASSIC).projection_ddl()
    assert "'storage.location.template'='" + CLASSIC + "${day}/'" in classic
    hive = TableSpec("d", "t", "s3://my-flow-logs/AWSLogs/", layout="hive", hourly=True).projection_ddl()
    assert "aws-account-id=${aws-account-id}/aws-service=${aws-service}/" in hive and "hour=${hour}/'" in hive
    multi = TableSpec("d", "t", "s3://my-flow-logs/AWSLogs/", layout="multi-account").projection_ddl()
    assert "${aws_account_id}/vpcflowlogs/${aws_region}/${year}/${month}/${day}/'" in multi


def test_view_converts_with_the_zone_rules_not_a_fixed_offset() -> None:
    name, sql = view_sql(TableSpec("flowlogs", "vpc_flow_logs", CLASSIC), "America/New_York")
    assert name == "vpc_flow_logs_america_new_york"
    assert 'CAST(from_unixtime("start") AT TIME ZONE \'America/New_York\' AS timestamp) AS "start"' in sql
    assert "INTERVAL" not in sql and '"date"' in sql
    with pytest.raises(FormatError, match="Mars/Olympus"):
        view_sql(TableSpec("d", "t", CLASSIC), "Mars/Olympus")
    assert zone_slug("America/Argentina/Buenos_Aires") == "america_argentina_buenos_aires"


def test_a_local_day_prunes_to_the_utc_days_it_spans() -> None:
    spec = TableSpec("flowlogs", "vpc_flow_logs", CLASSIC)
    seoul = local_day_query(spec, "Asia/Seoul", dt.date(2022, 8, 29))
    assert "DATE '2022-08-28'" in seoul and "DATE '2022-08-29'" in seoul and "DATE '2022-08-30'" not in seoul
    utc = local_day_query(spec, "UTC", dt.date(2022, 8, 29))
    assert "DATE '2022-08-29'" in utc and "DATE '2022-08-30'" in utc  # late files of the day
    multi = TableSpec("d", "t", "s3://my-flow-logs/AWSLogs/", layout="multi-account")
    assert "\"day\" = '28'" in local_day_query(multi, "Asia/Seoul", dt.date(2022, 8, 29))


def test_cloudformation_resource_is_the_same_table_and_retained() -> None:
    spec = TableSpec("flowlogs", "vpc_flow_logs", CLASSIC)
    resource = spec.cloudformation()
    assert resource["Type"] == "AWS::Glue::Table"
    assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"
    assert resource["Properties"]["TableInput"] == spec.table_input()


def test_every_subpackage_is_installed_not_only_with_an_editable_install() -> None:
    """A wheel holds only the packages pyproject lists: the console script lives in ops/."""
    import tomllib
    from pathlib import Path

    from setuptools import find_packages

    root = Path(__file__).resolve().parents[2]
    listed = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert sorted(listed) == sorted(find_packages(str(root / "functions")))
