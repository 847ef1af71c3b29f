"""What reaches the function: the S3 notification filters and the EventBridge pattern, shared
by the stack (ops.deploy) and doctor's fixes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto.events.models import EventPattern
from vpcflow_partitioner.ops import deploy
from vpcflow_partitioner.ops.routing import encode_filter, event_pattern, notification_filters, unencoded

ACCOUNT = "123456789012"
DAY = "2024/05/01"
PLAIN = f"AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/{DAY}/{ACCOUNT}_vpcflowlogs_us-east-1_fl-1_20240501T0005Z_a.log.gz"
PLAIN_HOURLY = (
    f"AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/{DAY}/07/"
    f"{ACCOUNT}_vpcflowlogs_us-east-1_fl-1_20240501T0705Z_a.log.parquet"
)
HIVE = (
    f"AWSLogs/aws-account-id={ACCOUNT}/aws-service=vpcflowlogs/aws-region=us-east-1/"
    "year=2024/month=05/day=01/x.log.gz"
)
OTHERS = [
    f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/{DAY}/{ACCOUNT}_CloudTrail_us-east-1_20240501T0000Z_x.json.gz",
    f"AWSLogs/{ACCOUNT}/elasticloadbalancing/us-east-1/{DAY}/{ACCOUNT}_elasticloadbalancing_us-east-1_app.lb.log.gz",
    f"AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/{DAY}/",
]


def matches(pattern: dict[str, Any], key: str, bucket: str = "flow-logs") -> bool:
    """moto's EventBridge matcher, whose `wildcard` follows AWS's documented semantics."""
    event: Any = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": bucket}, "object": {"key": key}},
    }
    return bool(EventPattern(None, pattern).matches_event(event))


@pytest.mark.parametrize(
    ("prefix", "keys"),
    [
        ("AWSLogs/", [PLAIN, PLAIN_HOURLY, HIVE]),
        ("", [PLAIN, PLAIN_HOURLY, HIVE]),  # a table at the bucket root
        ("vpc logs/", ["vpc logs/" + PLAIN, "vpc logs/" + HIVE]),  # a free prefix
        # classic and deep Hive tables: the Location is already inside the vpcflowlogs folder
        (f"AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/", [PLAIN, PLAIN_HOURLY]),
        (f"AWSLogs/aws-account-id={ACCOUNT}/aws-service=vpcflowlogs/", [HIVE]),
    ],
)
def test_the_pattern_takes_every_flow_log_file_under_the_location_and_nothing_else(
    prefix: str, keys: list[str]
) -> None:
    pattern = event_pattern("flow-logs", prefix)
    assert all(matches(pattern, key) for key in keys)
    # Other services' logs, at the bucket's AWSLogs/ or under the same free prefix (a Location
    # inside a vpcflowlogs folder holds flow logs only).
    others = OTHERS + ([prefix + key for key in OTHERS] if "vpcflowlogs" not in prefix else [])
    assert not any(matches(pattern, key) for key in others)
    assert not matches(pattern, keys[0], bucket="another-bucket")
    if prefix:
        assert not matches(pattern, "elsewhere/" + PLAIN)


def test_a_literal_star_in_the_prefix_is_not_a_wildcard() -> None:
    pattern = event_pattern("flow-logs", "a*b/")
    assert matches(pattern, "a*b/" + PLAIN)
    assert not matches(pattern, "aXXb/" + PLAIN)


def test_filter_values_are_written_as_s3_compares_them() -> None:
    # `=` is %3D and a space is + (S3 user guide, object key name filtering); what S3 lists as
    # safe stays as it is, and doctor's check accepts what the stack writes.
    assert encode_filter("flow logs/AWSLogs/aws-account-id=1/") == "flow+logs/AWSLogs/aws-account-id%3D1/"
    assert encode_filter("a~b(c)!'*_.-/") == "a%7Eb(c)!'*_.-/"
    for value in ("flow logs/aws-account-id=1/", "a~b/", "ünï/"):
        assert unencoded(encode_filter(value)) == []
    assert unencoded("aws-account-id=1/") == ["="]
    assert unencoded("50%/AWSLogs/") == ["%"] and unencoded("50%25/a%3Db/") == []  # an escape, or not
    assert encode_filter("50%/") == "50%25/"


def test_one_rule_per_suffix_and_no_empty_prefix() -> None:
    assert notification_filters("AWSLogs/aws-account-id=1/") == [
        {"prefix": "AWSLogs/aws-account-id%3D1/", "suffix": ".log.gz"},
        {"prefix": "AWSLogs/aws-account-id%3D1/", "suffix": ".log.parquet"},
    ]
    assert notification_filters("") == [{"suffix": ".log.gz"}, {"suffix": ".log.parquet"}]


def test_the_stack_takes_its_routing_from_here(capsys: pytest.CaptureFixture[str]) -> None:
    location = f"s3://flow-logs/AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/"
    args = ["--bucket", "flow-logs", "--database", "d", "--table", "t", "--location", location]
    assert deploy.main([*args, "--layout", "classic", "--create-table", "false"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["resources"] == {}
    assert out["routing"]["eventPattern"] == event_pattern("flow-logs", location[len("s3://flow-logs/") :])
    assert out["routing"]["notifications"] == notification_filters(
        f"AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/"
    )
    assert deploy.main([*args, "--layout", "classic"]) == 0
    assert set(json.loads(capsys.readouterr().out)["resources"]) == {"FlowLogsDatabase", "FlowLogsTable"}
