"""The scale simulation's stand-ins answer as S3 and Glue do, so the simulation walks what the
real walk would (scripts/scale/standins.py, used by `make bench-scale`)."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from vpcflow_partitioner.scheme import Scheme
from vpcflow_partitioner.sources import DateRange, FolderWalk

from scripts.scale.standins import (
    GlueCatalog,
    GlueLimits,
    Organisation,
    S3View,
    VirtualClock,
    org_table,
)


def _org(hive: bool = False, prefix: str = "") -> Organisation:
    # Month and year boundaries inside the range; 3 files a folder; 2 accounts, 2 regions.
    return Organisation.of(2, 2, date(2023, 12, 30), 4, files=3, hive=hive, prefix=prefix)


def _moto_bucket(org: Organisation) -> Any:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=org.bucket)
    for key in org.all_keys():
        s3.put_object(Bucket=org.bucket, Key=key, Body=b"")
    return s3


@pytest.mark.parametrize(("hive", "prefix"), [(False, ""), (True, ""), (False, "central/logs/")])
def test_the_walk_over_the_standin_finds_what_it_finds_over_a_moto_bucket(
    aws_env: None, hive: bool, prefix: str
) -> None:
    org = _org(hive, prefix)
    scheme = Scheme.from_table(org_table(f"s3://{org.bucket}/{prefix}"))
    with mock_aws():
        s3 = _moto_bucket(org)
        real = FolderWalk(s3, scheme, DateRange(), workers=1)
        real_folders = sorted(m.id for m in real.messages())
    simulated = FolderWalk(S3View(org, VirtualClock(4)), scheme, DateRange(), workers=1)
    folders = sorted(m.id for m in simulated.messages())
    assert folders == real_folders
    assert len(folders) == org.leaf_folders == 16
    assert simulated.list_calls == real.list_calls


def test_a_month_slice_walks_the_same_over_the_standin_as_over_moto(aws_env: None) -> None:
    # What the distributed scenario runs a work item as: a walk from one region folder.
    org = _org()
    table = Scheme.from_table(org_table(f"s3://{org.bucket}/"))
    start = dataclasses.replace(table, prefix=f"AWSLogs/{org.accounts[1]}/vpcflowlogs/{org.regions[0]}/")
    december = DateRange(date(2023, 12, 1), date(2023, 12, 31))
    with mock_aws():
        real = FolderWalk(_moto_bucket(org), start, december, workers=1)
        real_folders = sorted(m.id for m in real.messages())
    simulated = FolderWalk(S3View(org, VirtualClock(16)), start, december, workers=1)
    assert sorted(m.id for m in simulated.messages()) == real_folders
    assert [f.rsplit("/", 2)[1] for f in real_folders] == ["30", "31"]
    assert simulated.list_calls == real.list_calls


def test_listing_pages_match_moto_page_for_page(aws_env: None) -> None:
    org = _org()
    with mock_aws():
        s3 = _moto_bucket(org)
        for kwargs in (
            {"Prefix": ""},
            {"Prefix": "", "Delimiter": "/"},
            {"Prefix": "AWSLogs/", "Delimiter": "/", "MaxKeys": 1},
            {"Prefix": "AWSLogs/100000000000/vpcflowlogs/us-east-1/2023/12/", "MaxKeys": 2},
            {"Prefix": "AWSLogs/1000", "Delimiter": "/"},
            {"Prefix": "AWSLogs/100000000000/vpcflowlogs/us-east-1/202", "Delimiter": "/", "MaxKeys": 1},
            {"Prefix": "AWSLogs/999999999999/"},
        ):
            real_pages, simulated_pages = _pages(s3, org.bucket, kwargs), _pages(org, org.bucket, kwargs)
            assert simulated_pages == real_pages, kwargs


def _pages(client: Any, bucket: str, kwargs: dict[str, Any]) -> list[tuple[Any, ...]]:
    pages, token = [], None
    while True:
        response = client.list_objects_v2(
            Bucket=bucket, **kwargs, **({"ContinuationToken": token} if token else {})
        )
        pages.append(
            (
                [c["Key"] for c in response.get("Contents", [])],
                [p["Prefix"] for p in response.get("CommonPrefixes", [])],
                response["KeyCount"],
                response["IsTruncated"],
            )
        )
        token = response.get("NextContinuationToken")
        if not response["IsTruncated"]:
            return pages


def test_glue_standin_refuses_more_than_100_partitions_a_call_and_charges_the_write_rate() -> None:
    catalog = GlueCatalog(org_table("s3://b/AWSLogs/"), GlueLimits(latency=0.1, write_rate=2.0))
    clock = VirtualClock()
    glue = catalog.view(clock)
    inputs = [{"Values": [str(i)], "StorageDescriptor": {"Location": f"s3://b/{i}/"}} for i in range(101)]
    with pytest.raises(ClientError, match="ValidationException"):
        glue.batch_create_partition(
            DatabaseName="flowlogs", TableName="vpc_flow_logs", PartitionInputList=inputs
        )
    assert catalog.created == 0
    for start in (0, 50, 100):
        glue.batch_create_partition(
            DatabaseName="flowlogs", TableName="vpc_flow_logs", PartitionInputList=inputs[start : start + 50]
        )
    assert catalog.created == 101
    # Three writes at 2 a second: slots at 0, 0.5 and 1.0 s, each taking 0.1 s.
    assert clock.now == pytest.approx(1.1)
    again = glue.batch_create_partition(
        DatabaseName="flowlogs", TableName="vpc_flow_logs", PartitionInputList=inputs[:1]
    )
    assert again["Errors"][0]["ErrorDetail"]["ErrorCode"] == "AlreadyExistsException"
    with pytest.raises(ClientError, match="ValidationException"):
        glue.batch_get_partition(
            DatabaseName="flowlogs", TableName="vpc_flow_logs", PartitionsToGet=[{"Values": ["1"]}] * 1001
        )
