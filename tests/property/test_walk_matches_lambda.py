"""For any key the Lambda would partition, a walk of a bucket holding it finds that partition.

The Lambda (parse_key + Scheme.plan) and the recovery walk (FolderWalk) share one grammar of
where flow logs are; this checks it on moto's S3 for free prefixes of any depth (empty
folders, "AWSLogs" inside the prefix, digits), both layouts, daily and hourly, and table
Locations anywhere from the bucket root down to the key's own folders.
"""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from vpcflow_partitioner.keys import parse_key
from vpcflow_partitioner.scheme import PartitionSpec, Scheme
from vpcflow_partitioner.sources import FolderWalk

segments = st.one_of(
    st.sampled_from(["AWSLogs", "logs", "vpc-aaa", "", "a b", "2024", "x=y", "vpcflowlogs", "us-east-1"]),
    st.text(
        st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_characters="/"), min_size=1, max_size=6
    ),
)
TABLES = {
    "multi": ["aws_account_id", "aws_region", "year", "month", "day"],
    "hive": ["aws-account-id", "aws-service", "aws-region", "year", "month", "day"],
    "date": ["date"],
    "aws-date": ["day"],  # AWS's own tables: day is the whole date, yyyy/MM/dd
}
_buckets = itertools.count()


def table(location: str, keys: list[str], hourly: bool) -> dict[str, Any]:
    names = keys + (["hour"] if hourly else [])
    return {
        "Name": "t",
        "DatabaseName": "d",
        "CreateTime": "2024-01-01T00:00:00+00:00",
        "PartitionKeys": [{"Name": k, "Type": "string"} for k in names],
        "Parameters": {"projection.day.format": "yyyy/MM/dd"},
        "StorageDescriptor": {"Location": location},
    }


@pytest.mark.usefixtures("aws_env")
def test_the_walk_finds_every_partition_the_lambda_would_create() -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")

        @given(
            prefix=st.lists(segments, max_size=5).map(lambda parts: "".join(p + "/" for p in parts)),
            hive=st.booleans(),
            hourly_folders=st.booleans(),
            hourly_table=st.booleans(),
            day=st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)),
            hour=st.integers(0, 23),
            kind=st.sampled_from(sorted(TABLES)),
            cut=st.integers(0, 12),
        )
        @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        def check(
            prefix: str,
            hive: bool,
            hourly_folders: bool,
            hourly_table: bool,
            day: date,
            hour: int,
            kind: str,
            cut: int,
        ) -> None:
            account, region = "123456789012", "eu-west-1"
            if hive:
                service = "service" if hour % 2 else "aws-service"  # the Transit Gateway spelling too
                folder = (
                    f"AWSLogs/aws-account-id={account}/{service}=vpcflowlogs/aws-region={region}/"
                    f"year={day:%Y}/month={day:%m}/day={day:%d}/"
                    + (f"hour={hour:02d}/" if hourly_folders else "")
                )
            else:
                folder = f"AWSLogs/{account}/vpcflowlogs/{region}/{day:%Y/%m/%d}/" + (
                    f"{hour:02d}/" if hourly_folders else ""
                )
            key = f"{prefix}{folder}{account}_vpcflowlogs_{region}_fl-1_{day:%Y%m%d}T{hour:02d}05Z_a.log.gz"
            obj = parse_key(key)
            assert obj is not None
            # The table's Location: any ancestor folder of the key, from the bucket root down.
            ancestors = [key[: i + 1] for i, c in enumerate(key) if c == "/"]
            location_prefix = ["", *ancestors][min(cut, len(ancestors))]
            bucket = f"walk-{next(_buckets)}"
            scheme = Scheme.from_table(table(f"s3://{bucket}/{location_prefix}", TABLES[kind], hourly_table))
            planned = scheme.plan(bucket, obj)
            assume(isinstance(planned, PartitionSpec))
            s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key=key, Body=b"x")
            s3.put_object(
                Bucket=bucket, Key=f"{prefix}AWSLogs/{account}/CloudTrail/{region}/x.json.gz", Body=b"x"
            )
            walk = FolderWalk(s3, scheme, workers=2)
            found = set()
            for message in walk.messages():
                for ref in message.objects:
                    walked = parse_key(ref.key)
                    assert walked is not None
                    found.add(scheme.plan(ref.bucket, walked))
            assert found == {planned}, (key, location_prefix, kind)

        check()
