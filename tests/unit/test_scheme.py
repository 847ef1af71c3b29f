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


OTHER_REGION = PLAIN_DAILY.replace("us-east-1", "eu-west-1")


@pytest.mark.parametrize(
    ("fmt", "value"),
    [
        ("yy/MM/dd", "22/08/29"),
        ("yyyyMMdd", "20220829"),
        ("yyyy/MM/dd/", "2022/08/29/"),  # a trailing literal is kept
        ("'day='yyyy-MM-dd", "day=2022-08-29"),
        ("dd.MM.yyyy", "29.08.2022"),
    ],
)
def test_a_whole_date_is_written_in_the_tables_projection_format(fmt: str, value: str) -> None:
    t = table("s3://b/AWSLogs/123456789012/vpcflowlogs/us-east-1/", ["dt"], {"projection.dt.format": fmt})
    spec = plan(t, PLAIN_DAILY)
    assert spec == PartitionSpec((value,), "s3://b/AWSLogs/123456789012/vpcflowlogs/us-east-1/2022/08/29/")
    assert Scheme.from_table(t).date_of((value,)) == dt.date(2022, 8, 29)


@pytest.mark.parametrize("fmt", ["yyyy-M-d", "yyyy-MM-dd HH:mm", "EEE yyyy"])
def test_a_projection_format_with_tokens_it_cannot_write_is_a_configuration_error(fmt: str) -> None:
    with pytest.raises(ConfigurationError, match="only yyyy, yy, MM, dd and HH"):
        Scheme.from_table(table("s3://b/AWSLogs/", ["dt"], {"projection.dt.format": fmt}))


def test_date_of_reads_a_partitions_date_whatever_its_keys() -> None:
    multi = Scheme.from_table(
        table("s3://b/AWSLogs/", ["aws_account_id", "aws_region", "year", "month", "day"])
    )
    assert multi.date_of(("123456789012", "us-east-1", "2022", "08", "29")) == dt.date(2022, 8, 29)
    assert multi.date_of(("123456789012", "us-east-1", "2022", "02", "30")) is None  # no such day
    assert multi.date_of(("123456789012", "us-east-1")) is None
    hourly = Scheme.from_table(
        table(
            "s3://b/AWSLogs/123456789012/vpcflowlogs/us-east-1/",
            ["dt"],
            {"projection.dt.format": "yyyy-MM-dd-HH"},
        )
    )
    assert hourly.date_of(("2022-08-29-09",)) == dt.date(2022, 8, 29)
    assert hourly.date_of(("2022-08-29",)) is None  # not in the table's format
    region_only = Scheme.from_table(table("s3://b/AWSLogs/123456789012/vpcflowlogs/", ["region"]))
    assert region_only.date_of(("us-east-1",)) is None


def test_a_table_without_a_region_key_over_several_regions_is_unpartitionable() -> None:
    t = table("s3://b/AWSLogs/123456789012/vpcflowlogs/", ["date"])
    for key in (PLAIN_DAILY, OTHER_REGION):
        skip = plan(t, key)
        assert isinstance(skip, Skip) and skip.outcome == "unpartitionable" and skip.by_table
        assert "above the region folder" in skip.reason
    with_region = table("s3://b/AWSLogs/123456789012/vpcflowlogs/", ["region", "date"])
    assert {plan(with_region, k).values for k in (PLAIN_DAILY, OTHER_REGION)} == {  # type: ignore[union-attr]
        ("us-east-1", "2022-08-29"),
        ("eu-west-1", "2022-08-29"),
    }


@pytest.mark.parametrize(
    "location", ["", "b/AWSLogs/", "https://b.s3.amazonaws.com/AWSLogs/", "s3:/b/AWSLogs/", "s3://"]
)
def test_a_location_that_is_not_an_s3_url_is_a_configuration_error(location: str) -> None:
    with pytest.raises(ConfigurationError, match="is not an s3:// URL"):
        Scheme.from_table(table(location, ["date"]))


@pytest.mark.parametrize(
    ("location", "bucket", "prefix"),
    [
        ("s3://b", "b", ""),
        ("s3://b/", "b", ""),
        ("s3://b/AWSLogs", "b", "AWSLogs/"),
        ("s3a://b/AWSLogs/", "b", "AWSLogs/"),
        ("s3n://b/x/y/", "b", "x/y/"),
    ],
)
def test_a_location_is_a_bucket_and_a_folder(location: str, bucket: str, prefix: str) -> None:
    scheme = Scheme.from_table(table(location, ["aws_account_id", "aws_region", "date"]))
    assert (scheme.bucket, scheme.prefix, scheme.location) == (bucket, prefix, f"s3://{bucket}/{prefix}")


def test_a_table_without_partition_keys_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="has no partition keys"):
        Scheme.from_table(table("s3://b/AWSLogs/", []))


def test_the_table_version_changes_with_update_time_and_version_id() -> None:
    t = table("s3://b/AWSLogs/", ["aws_account_id", "aws_region", "date"])
    base = Scheme.from_table(t | {"UpdateTime": dt.datetime(2024, 1, 2, tzinfo=dt.UTC), "VersionId": "1"})
    assert base.create_time == "2024-01-01T00:00:00+00:00"
    assert base.version == "2024-01-02T00:00:00+00:00 v1"
    assert (
        Scheme.from_table(t | {"VersionId": "2"}).version != Scheme.from_table(t | {"VersionId": "3"}).version
    )
    assert Scheme.from_table(t, catalog_id="111122223333").table.catalog_id == "111122223333"
    assert Scheme.from_table(t | {"CatalogId": "444455556666"}).table.catalog_id == "444455556666"
    assert str(base.table) == "d.t"


def test_the_service_key_holds_vpcflowlogs_and_keys_read_their_own_folder() -> None:
    t = table(
        "s3://b/AWSLogs/", ["aws-account-id", "aws-service", "aws-region", "year", "month", "day", "hour"]
    )
    spec = plan(t, HIVE_HOURLY)
    assert isinstance(spec, PartitionSpec)
    assert spec.values == ("123456789012", "vpcflowlogs", "us-east-1", "2022", "08", "29", "09")
    assert spec.location == "s3://b/" + HIVE_HOURLY.rsplit("/", 1)[0] + "/"
    daily = table("s3://b/AWSLogs/", ["accid", "region", "year", "month", "day"])
    assert plan(daily, PLAIN_HOURLY).location.endswith("/2022/08/29/")  # type: ignore[union-attr]


def test_a_misspelt_partition_is_named_and_a_well_spelt_or_foreign_one_is_not() -> None:
    scheme = Scheme.from_table(
        table("s3://b/AWSLogs/", ["aws_account_id", "aws_region", "year", "month", "day"])
    )
    folder = "s3://b/AWSLogs/123456789012/vpcflowlogs/us-east-1/2022/08/09/"
    problem = scheme.misspelt(("123456789012", "us-east-1", "2022", "8", "9"), folder)
    assert problem is not None and "['123456789012', 'us-east-1', '2022', '08', '09']" in problem
    assert scheme.misspelt(("123456789012", "us-east-1", "2022", "08", "09"), folder) is None
    assert scheme.misspelt(("123456789012", "us-east-1", "2022", "08", "10"), folder) is None  # wrong place
    assert scheme.misspelt(("x",), "not a location") is None
    assert scheme.misspelt(("x",), "s3://b/elsewhere/") is None
    assert (
        scheme.misspelt(("123456789012", "us-east-1", "2022", "8", "9"), folder.replace("s3://b/", "s3://c/"))
        is None
    )


def test_descriptor_drift_names_the_fields_athena_reads_differently() -> None:
    from vpcflow_partitioner.scheme import descriptor_drift, descriptor_fingerprint

    base = descriptor_fingerprint(TEXT_SD)
    assert descriptor_drift(base, descriptor_fingerprint(dict(TEXT_SD))) == []
    renamed = {**TEXT_SD, "Columns": [*TEXT_SD["Columns"][:-1], {"Name": "status", "Type": "string"}]}
    assert descriptor_drift(base, descriptor_fingerprint(renamed)) == ["columns"]
    upper = {**TEXT_SD, "Columns": [{**c, "Name": c["Name"].upper()} for c in TEXT_SD["Columns"]]}
    assert descriptor_drift(base, descriptor_fingerprint(upper)) == []  # Hive names are case-blind
    retyped = {**TEXT_SD, "Columns": [*TEXT_SD["Columns"][:-1], {"Name": "log_status", "Type": "int"}]}
    assert descriptor_drift(base, descriptor_fingerprint(retyped)) == ["columns"]
    parquet = {
        **TEXT_SD,
        "InputFormat": "parquet.in",
        "OutputFormat": "parquet.out",
        "SerdeInfo": {**TEXT_SD["SerdeInfo"], "SerializationLibrary": "parquet"},
    }
    assert descriptor_drift(base, descriptor_fingerprint(parquet)) == ["serde", "InputFormat", "OutputFormat"]
    assert descriptor_drift(base, descriptor_fingerprint({})) == [
        "columns",
        "serde",
        "InputFormat",
        "OutputFormat",
    ]


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("s3://b/x/", "s3://b/x", True),
        ("s3a://b/x/", "s3://b/x/", True),
        ("s3n://b/x", " s3://b/x/ ", True),
        ("s3://b/x/", "s3://b/y/", False),
        ("s3://b/x/", "s3://c/x/", False),
    ],
)
def test_same_folder_sets_scheme_spelling_and_trailing_slash_aside(a: str, b: str, same: bool) -> None:
    from vpcflow_partitioner.scheme import same_folder

    assert same_folder(a, b) is same


def test_a_day_key_beside_a_year_key_is_the_day_of_the_month_not_the_date() -> None:
    """Only a table with neither year nor month reads `day` as the whole date; with a year
    and no month, the month folders vary with no key to tell them apart."""
    t = table("s3://b/AWSLogs/123456789012/vpcflowlogs/us-east-1/", ["year", "day"])
    skip = plan(t, PLAIN_DAILY)
    assert isinstance(skip, Skip) and skip.outcome == "unpartitionable" and "month" in skip.reason
    whole = table("s3://b/AWSLogs/123456789012/vpcflowlogs/us-east-1/", ["day"])
    assert plan(whole, PLAIN_DAILY).values == ("2022-08-29",)  # type: ignore[union-attr]
