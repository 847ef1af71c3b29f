"""S3 Batch Operations tasks: the bucket of a schema 1.0 ARN in any form, end to end."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import BUCKET, CLASSIC_LOCATION, DATABASE, TABLE, create_table, load_event, partitions
from vpcflow_partitioner import aws, handlers
from vpcflow_partitioner.envelopes import ObjectRef, parse_bucket_arn, unwrap

ARNS = [
    f"arn:aws:s3:::{BUCKET}",
    f"arn:aws:s3:us-east-1:123456789012:{BUCKET}",  # region and account filled in
    f"arn:aws-cn:s3:cn-north-1:123456789012:{BUCKET}",
    f"arn:aws-us-gov:s3:::{BUCKET}",
]
NOT_BUCKET_ARNS = [
    BUCKET,  # a bare name is not an ARN
    "",
    "arn:aws:s3:::",
    f"arn:aws:s3:::{BUCKET}/AWSLogs/x.log.gz",  # an object ARN
    "arn:aws:s3:us-east-1:123456789012:accesspoint/flow-logs",
    "arn:aws:sqs:us-east-1:123456789012:queue",
    f"arn::s3:::{BUCKET}",
    f"urn:aws:s3:::{BUCKET}",
]


@pytest.mark.parametrize("arn", ARNS)
def test_the_bucket_is_the_resource_part_of_the_arn(arn: str) -> None:
    assert parse_bucket_arn(arn) == BUCKET


@pytest.mark.parametrize("arn", NOT_BUCKET_ARNS)
def test_anything_but_an_s3_bucket_arn_has_no_bucket(arn: str) -> None:
    assert parse_bucket_arn(arn) is None


def v1_event(arn: Any) -> dict[str, Any]:
    event = load_event("batch_operations_v1.json")
    event["tasks"][0]["s3BucketArn"] = arn
    return dict(event)


@pytest.mark.parametrize("arn", [*NOT_BUCKET_ARNS, None, 42])
def test_a_task_without_a_bucket_arn_is_malformed_and_the_others_still_count(arn: Any) -> None:
    event = v1_event(arn)
    event["tasks"].append(dict(event["tasks"][0], taskId="good", s3BucketArn=ARNS[1]))
    first, second = unwrap(event).messages
    assert first.id == event["tasks"][0]["taskId"] and first.malformed and first.objects == ()
    assert second.objects == (ObjectRef(BUCKET, event["tasks"][0]["s3Key"]),)


def test_schema_2_keeps_s3_bucket_and_a_task_without_an_id_is_malformed() -> None:
    event = load_event("batch_operations_v2.json")
    del event["tasks"][1]["taskId"]
    first, second = unwrap(event).messages
    assert first.objects[0].bucket == BUCKET
    assert second.id == "" and second.malformed


@pytest.fixture(params=["glue-lookup", "dynamodb-cache"])
def table(request: pytest.FixtureRequest, mocked: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The classic daily table on moto (the handler's two ways of knowing what exists)."""
    monkeypatch.setenv("GLUE_DATABASE", DATABASE)
    monkeypatch.setenv("GLUE_TABLE", TABLE)
    if request.param == "dynamodb-cache":
        monkeypatch.setenv("CACHE_TABLE", "vpcflow-partitioner-cache")
        aws.client("dynamodb", "", "us-east-1").create_table(
            TableName="vpcflow-partitioner-cache",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    create_table(aws.client("glue", "", "us-east-1"))


@pytest.mark.parametrize("arn", ARNS[:2], ids=["no-region", "region-and-account"])
def test_on_object_created_creates_the_partition_for_either_arn_form(table: None, arn: str) -> None:
    response = handlers.on_object_created(v1_event(arn))
    assert partitions(aws.client("glue", "", "us-east-1")) == {
        ("2022-08-29",): f"{CLASSIC_LOCATION}2022/08/29/"
    }
    assert [r["resultCode"] for r in response["results"]] == ["Succeeded"]
    assert "created" in response["results"][0]["resultString"]


def test_on_object_created_answers_a_task_with_a_foreign_arn_without_crashing(table: None) -> None:
    event = v1_event("arn:aws:sqs:us-east-1:123456789012:queue")
    response = handlers.on_object_created(event)
    assert [r["taskId"] for r in response["results"]] == [event["tasks"][0]["taskId"]]
    assert "malformed" in response["results"][0]["resultString"]
    assert partitions(aws.client("glue", "", "us-east-1")) == {}
