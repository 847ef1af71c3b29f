from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from helpers import TEXT_SD
from vpcflow_partitioner.keys import parse_key
from vpcflow_partitioner.scheme import ConfigurationError, PartitionSpec, Scheme, Skip

FILE = "123456789012_vpcflowlogs_us-east-1_fl-0123456789abcdef0_20220829T0905Z_5f2a9c1e.log.gz"
PLAIN_DAILY = f"AWSLogs/123456789012/vpcflowlogs/us-east-1/2022/08/29/{FILE}"
PLAIN_HOURLY = f"AWSLogs/123456789012/vpcflowlogs/us-east-1/2022/08/29/09/{FILE}"
HIVE_HOURLY = (
    "AWSLogs/aws-account-id=123456789012/aws-service=vpcflowlogs/aws-region=us-east-1/"
    f"year=2022/month=08/day=29/hour=09/{FILE}"
)


def table(location: str, keys: list[str], parameters: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "Name": "t",
        "DatabaseName": "d",
        "CreateTime": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        "PartitionKeys": [{"Name": k, "Type": "date" if k == "date" else "string"} for k in keys],
        "Parameters": {"skip.header.line.count": "1", **(parameters or {})},
        "StorageDescriptor": {**TEXT_SD, "Location": location},
    }


def plan(t: dict[str, Any], key: str, bucket: str = "b") -> PartitionSpec | Skip:
    obj = parse_key(key)
    assert obj is not None
    return Scheme.from_table(t).plan(bucket, obj)


def test_classic_tutorial_table_gets_an_iso_date_and_the_day_folder() -> None:
    t = table("s3://b/AWSLogs/123456789012/vpcflowlogs/us-east-1", ["date"])
    assert plan(t, PLAIN_DAILY) == PartitionSpec(
        ("2022-08-29",), "s3://b/AWSLogs/123456789012/vpcflowlogs/us-east-1/2022/08/29/"
    )
    # a daily table over hourly folders gets the day folder; Athena reads subfolders
    assert plan(t, PLAIN_HOURLY) == plan(t, PLAIN_DAILY)


def test_multi_account_table_over_awslogs() -> None:
    t = table("s3://b/AWSLogs/", ["aws_account_id", "aws_region", "year", "month", "day"])
    spec = plan(t, PLAIN_DAILY)
    assert spec == PartitionSpec(
        ("123456789012", "us-east-1", "2022", "08", "29"),
        "s3://b/AWSLogs/123456789012/vpcflowlogs/us-east-1/2022/08/29/",
    )
    hourly = table("s3://b/AWSLogs/", ["aws_account_id", "aws_region", "year", "month", "day", "hour"])
    assert plan(hourly, PLAIN_HOURLY) == PartitionSpec(
        ("123456789012", "us-east-1", "2022", "08", "29", "09"),
        "s3://b/AWSLogs/123456789012/vpcflowlogs/us-east-1/2022/08/29/09/",
    )


def test_aws_documented_table_day_is_the_whole_date_in_the_projection_format() -> None:
    t = table("s3://b/AWSLogs/", ["accid", "region", "day"], {"projection.day.format": "yyyy/MM/dd"})
    assert plan(t, PLAIN_DAILY) == PartitionSpec(
        ("123456789012", "us-east-1", "2022/08/29"),
        "s3://b/AWSLogs/123456789012/vpcflowlogs/us-east-1/2022/08/29/",
    )


def test_aws_hive_table_with_hyphenated_keys() -> None:
    keys = ["aws-account-id", "aws-service", "aws-region", "year", "month", "day", "hour"]
    t = table("s3://b/AWSLogs/", keys)
    spec = plan(t, HIVE_HOURLY)
    assert isinstance(spec, PartitionSpec)
    assert spec.values == ("123456789012", "vpcflowlogs", "us-east-1", "2022", "08", "29", "09")
    assert spec.location == "s3://b/" + HIVE_HOURLY.rsplit("/", 1)[0] + "/"


def test_keys_match_case_insensitively_and_follow_table_order() -> None:
    t = table("s3://b/AWSLogs/", ["YEAR", "Month", "Day", "Region", "Account_ID"])
    spec = plan(t, PLAIN_DAILY)
    assert isinstance(spec, PartitionSpec)
    assert spec.values == ("2022", "08", "29", "us-east-1", "123456789012")


def test_dt_key_without_format_is_iso() -> None:
    t = table("s3://b/AWSLogs/123456789012/vpcflowlogs/us-east-1/", ["dt"])
    assert plan(t, PLAIN_DAILY).values == ("2022-08-29",)  # type: ignore[union-attr]


def test_unknown_partition_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="'team'"):
        Scheme.from_table(table("s3://b/AWSLogs/", ["team"]))


def test_hour_key_over_daily_folders_is_unpartitionable() -> None:
    t = table("s3://b/AWSLogs/", ["aws_account_id", "aws_region", "year", "month", "day", "hour"])
    skip = plan(t, PLAIN_DAILY)
    assert isinstance(skip, Skip) and skip.outcome == "unpartitionable"


def test_table_above_varying_folders_without_keys_for_them_is_unpartitionable() -> None:
    skip = plan(table("s3://b/AWSLogs/", ["date"]), PLAIN_DAILY)
    assert isinstance(skip, Skip) and skip.outcome == "unpartitionable" and "account" in skip.reason


@pytest.mark.parametrize(
    ("location", "bucket"),
    [
        ("s3://b/AWSLogs/210987654321/vpcflowlogs/us-east-1/", "b"),  # other account
        ("s3://b/AWSLogs/123456789012/vpcflowlogs/eu-west-1/", "b"),  # other region
        ("s3://b/AWSLogs/123456789012/vpcflowlogs/us-east-1/", "other-bucket"),
        ("s3://b/other-prefix/AWSLogs/", "b"),
    ],
)
def test_objects_outside_the_table_location_are_ignored(location: str, bucket: str) -> None:
    keys = ["date"] if location.endswith("us-east-1/") else ["aws_account_id", "aws_region", "dt"]
    skip = plan(table(location, keys), PLAIN_DAILY, bucket)
    assert isinstance(skip, Skip) and skip.outcome == "ignored"


def test_partition_input_copies_the_table_descriptor_with_only_location_changed() -> None:
    t = table("s3://b/AWSLogs/123456789012/vpcflowlogs/us-east-1/", ["date"])
    scheme = Scheme.from_table(t)
    spec = plan(t, PLAIN_DAILY)
    assert isinstance(spec, PartitionSpec)
    partition = scheme.partition_input(spec)
    expected = {**t["StorageDescriptor"], "Location": spec.location}
    assert partition == {"Values": ["2022-08-29"], "StorageDescriptor": expected}
    assert t["StorageDescriptor"]["Location"] != spec.location  # the table is untouched
    assert "skip.header.line.count" not in str(partition)  # table-level property stays there


def test_projection_format_with_literals_and_hour() -> None:
    t = table(
        "s3://b/AWSLogs/123456789012/vpcflowlogs/us-east-1/",
        ["dt"],
        {"projection.dt.format": "yyyy-MM-dd'T'HH"},
    )
    spec = plan(t, PLAIN_HOURLY)
    assert isinstance(spec, PartitionSpec)
    assert spec.values == ("2022-08-29T09",) and spec.location.endswith("/2022/08/29/09/")
    assert isinstance(plan(t, PLAIN_DAILY), Skip)
