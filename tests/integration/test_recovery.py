"""replay, backfill, audit and on_schedule on moto: the same pipeline, asked of Glue."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    BUCKET,
    CLASSIC_LOCATION,
    DATABASE,
    TABLE,
    CallCounter,
    create_table,
    event_names,
    inject_error,
    partitions,
)
from vpcflow_partitioner import aws, handlers
from vpcflow_partitioner.ops.cli import main
from vpcflow_partitioner.ops.synthetic import object_key

ACCOUNTS = ("111111111111", "222222222222", "333333333333")
REGIONS = ("us-east-1", "eu-west-1")
FIRST = datetime(2024, 2, 10, tzinfo=UTC)
DAYS = 40
MULTI_KEYS = [
    ("aws_account_id", "string"),
    ("aws_region", "string"),
    ("year", "string"),
    ("month", "string"),
    ("day", "string"),
]
HIVE_KEYS = [(k, "string") for k in ("aws-account-id", "aws-service", "aws-region", "year", "month", "day")]
EVENTS = Path(__file__).resolve().parents[2] / "events"


def glue() -> Any:
    return aws.client("glue", "", "us-east-1")


def s3() -> Any:
    return aws.client("s3", "", "us-east-1")


def sqs() -> Any:
    return aws.client("sqs", "", "us-east-1")


@pytest.fixture
def env(mocked: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLUE_DATABASE", DATABASE)
    monkeypatch.setenv("GLUE_TABLE", TABLE)
    s3().create_bucket(Bucket=BUCKET)


def upload(
    hive: bool, hourly: bool, days: int = DAYS, accounts: tuple[str, ...] = ACCOUNTS
) -> set[tuple[str, ...]]:
    """Two deliveries per day (per hour folder, in hourly layouts); returns the expected multi-account values."""
    expected = set()
    for account in accounts:
        for region in REGIONS:
            for d in range(days):
                for hour in (0, 13):
                    moment = FIRST + timedelta(days=d, hours=hour, minutes=5)
                    s3().put_object(
                        Bucket=BUCKET,
                        Key=object_key(account, region, moment, hive=hive, hourly=hourly),
                        Body=b"x",
                    )
                    values = (account, region, f"{moment:%Y}", f"{moment:%m}", f"{moment:%d}")
                    expected.add(values + ((f"{moment:%H}",) if hourly else ()))
    return expected


@pytest.mark.parametrize("hive", [False, True], ids=["plain", "hive"])
@pytest.mark.parametrize("hourly", [False, True], ids=["daily", "hourly"])
def test_backfill_creates_exactly_the_expected_partitions(
    env: None, hive: bool, hourly: bool, capsys: Any
) -> None:
    expected = upload(hive, hourly)
    keys = (HIVE_KEYS if hive else MULTI_KEYS) + ([("hour", "string")] if hourly else [])
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", keys)
    # a folder marker and a stray file: folders that exist but hold no flow-log object
    s3().put_object(Bucket=BUCKET, Key="AWSLogs/111111111111/vpcflowlogs/us-east-1/2024/03/30/", Body=b"")
    s3().put_object(
        Bucket=BUCKET, Key="AWSLogs/111111111111/vpcflowlogs/us-east-1/2024/03/31/readme.txt", Body=b""
    )
    listing = CallCounter(s3())
    assert main(["backfill", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    got = set(partitions(glue()))
    if hive:
        got = {(v[0], v[2], *v[3:]) for v in got}
    assert got == expected
    assert summary["partitions_created"] == len(expected)
    # the walk lists folders, not objects: one call per folder level, one probe per leaf
    folders = len(expected)
    inner = (
        1 + 3 + 3 * 2 + 6 * 2 + 6 * 2 * 1 + (len(expected) // (2 if hourly else 1))
    )  # AWSLogs, accounts, services...
    assert listing.calls["ListObjectsV2"] <= folders + inner + 4
    assert summary["glue_create_calls"] == -(-len(expected) // 100)


def test_backfill_a_year_of_one_account_takes_a_few_hundred_list_calls(env: None) -> None:
    for d in range(365):
        for minute in (5, 10, 15):
            moment = FIRST + timedelta(days=d, minutes=minute)
            s3().put_object(Bucket=BUCKET, Key=object_key("111111111111", "us-east-1", moment), Body=b"x")
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/111111111111/vpcflowlogs/us-east-1/")
    listing = CallCounter(s3())
    assert main(["backfill"]) == 0
    assert len(partitions(glue())) == 365
    assert listing.calls["ListObjectsV2"] < 400  # 2 years + 13 months + 365 probes; never one per object


def test_backfill_date_range_and_dry_run(env: None, capsys: Any) -> None:
    upload(hive=False, hourly=False, accounts=ACCOUNTS[:1])
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    assert main(["backfill", "--since", "2024-02-28", "--until", "2024-03-02", "--dry-run", "--json"]) == 3
    summary = json.loads(capsys.readouterr().out)
    assert summary["partitions_would_create"] == 2 * 4  # two regions, four days (a leap year)
    assert partitions(glue()) == {}
    assert main(["backfill", "--since", "2024-02-28", "--until", "2024-03-02"]) == 0
    assert sorted({v[4] for v in partitions(glue())}) == ["01", "02", "28", "29"]


def test_audit_exit_codes_fix_and_prune(env: None, capsys: Any) -> None:
    upload(hive=False, hourly=False, days=5, accounts=ACCOUNTS[:1])
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    assert main(["audit"]) == 3  # nothing partitioned yet
    assert main(["audit", "--fix"]) == 0
    assert len(partitions(glue())) == 10
    assert main(["audit"]) == 0
    glue().delete_partition(
        DatabaseName=DATABASE,
        TableName=TABLE,
        PartitionValues=["111111111111", "us-east-1", "2024", "02", "11"],
    )
    orphan = ["111111111111", "us-east-1", "2023", "01", "01"]
    glue().create_partition(
        DatabaseName=DATABASE,
        TableName=TABLE,
        PartitionInput={
            "Values": orphan,
            "StorageDescriptor": {
                "Location": f"s3://{BUCKET}/AWSLogs/111111111111/vpcflowlogs/us-east-1/2023/01/01/"
            },
        },
    )
    capsys.readouterr()
    assert main(["audit", "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert [m["values"] for m in report["missing"]] == [["111111111111", "us-east-1", "2024", "02", "11"]]
    assert report["orphaned"] == [
        {
            "values": orphan,
            "location": f"s3://{BUCKET}/AWSLogs/111111111111/vpcflowlogs/us-east-1/2023/01/01/",
        }
    ]
    assert main(["audit", "--since", "2024-02-12"]) == 0  # the range leaves both out
    assert main(["audit", "--fix"]) == 3  # the orphan stays: --fix never deletes
    assert ("111111111111", "us-east-1", "2024", "02", "11") in partitions(glue())
    assert main(["audit", "--fix", "--prune", "--dry-run"]) == 3
    assert main(["audit", "--fix", "--prune"]) == 2  # deleting needs --yes off a terminal
    assert tuple(orphan) in partitions(glue())
    assert main(["audit", "--fix", "--prune", "--no-cache", "--yes"]) == 0
    assert tuple(orphan) not in partitions(glue())


def test_replay_every_event_file_in_one_run(env: None, capsys: Any) -> None:
    create_table(glue())
    files = [str(EVENTS / name) for name in event_names() if "hive" not in name]
    assert main(["replay", "--json", *files]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(partitions(glue())) == {("2022-08-29",), ("2022-08-30",)}
    assert summary["events"] == len(files) and summary["partitions_created"] == 2 and summary["failed"] == 0
    assert summary["ignored"] == 1  # the s3:TestEvent
    assert main(["replay", *files]) == 0  # again: nothing new


def test_replay_ndjson_with_a_bad_line(env: None, tmp_path: Path, capsys: Any) -> None:
    create_table(glue())
    lines = [
        json.dumps(json.loads((EVENTS / "sns_s3.json").read_text())),
        "{oops",
        json.dumps(json.loads((EVENTS / "sqs_eventbridge.json").read_text())),
    ]
    path = tmp_path / "saved.ndjson"
    path.write_text("\n".join(lines) + "\n")
    assert main(["replay", "--json", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["malformed"] == 1 and summary["partitions_created"] == 2


def test_replay_dry_run_writes_nothing(env: None) -> None:
    create_table(glue())
    assert main(["replay", "--dry-run", str(EVENTS / "s3_notification.json")]) == 3  # it would create
    assert partitions(glue()) == {}


def test_dlq_drain_leaves_exactly_the_failed_messages(env: None, capsys: Any) -> None:
    create_table(glue())
    url = sqs().create_queue(QueueName="partitioner-dlq")["QueueUrl"]
    bodies = {}
    for name in ("sqs_s3.json", "sqs_sns_s3.json", "sqs_eventbridge.json"):
        for record in json.loads((EVENTS / name).read_text())["Records"]:
            bodies[record["body"]] = record
    for body in bodies:
        sqs().send_message(QueueUrl=url, MessageBody=body)
    sqs().send_message(QueueUrl=url, MessageBody="not json at all")

    def fail_30th(params: dict[str, Any], **_: Any) -> None:
        params["PartitionInputList"] = [
            p for p in params["PartitionInputList"] if p["Values"] != ["2022-08-30"]
        ]

    glue().meta.events.register("before-parameter-build.glue.BatchCreatePartition", fail_30th)
    glue().meta.events.register(
        "after-call.glue.BatchCreatePartition",
        lambda parsed, **_: parsed.setdefault("Errors", []).append(
            {
                "PartitionValues": ["2022-08-30"],
                "ErrorDetail": {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"},
            }
        ),
    )
    assert main(["replay", "--queue-url", url, "--json"]) == 1
    summary = json.loads(capsys.readouterr().out)
    # Two failed on 2022-08-30 (retried later); "not json at all" is kept for an operator.
    assert summary["kept_in_queue"] == 3 and summary["deleted"] == len(bodies) - 2
    assert (summary["failed"], summary["unresolved"]) == (2, 1)
    assert len(summary["failures"]) == 2 and all("2022-08-30" in f for f in summary["failures"])
    attributes = sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "3"  # still in the queue, visible again
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"  # for the next drain or an operator
    assert set(partitions(glue())) == {("2022-08-29",)}


def test_errors_are_one_line_with_exit_codes(env: None, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["backfill"]) == 1
    assert "EntityNotFoundException" in capsys.readouterr().err
    create_table(glue(), "s3://no-such-bucket/AWSLogs/123456789012/vpcflowlogs/us-east-1/")
    assert main(["backfill"]) == 1
    err = capsys.readouterr().err
    assert "NoSuchBucket" in err and "Traceback" not in err
    assert main(["backfill", "--since", "yesterday"]) == 2
    assert "not a date" in capsys.readouterr().err
    monkeypatch.delenv("GLUE_TABLE")
    assert main(["audit"]) == 2


def test_on_schedule_sweeps_recent_days_only(env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    create_table(glue(), CLASSIC_LOCATION)
    now = datetime.now(UTC)
    for days_ago in (0, 1, 2, 5):
        moment = now - timedelta(days=days_ago)
        s3().put_object(Bucket=BUCKET, Key=object_key("123456789012", "us-east-1", moment), Body=b"x")
    counter = CallCounter(glue())
    handlers.on_schedule({"source": "aws.events", "detail-type": "Scheduled Event"})
    assert {v[0] for v in partitions(glue())} == {f"{now - timedelta(days=d):%Y-%m-%d}" for d in (0, 1)}
    assert counter.calls["BatchGetPartition"] == 1  # asks Glue, not the cache
    monkeypatch.setenv("RECONCILE_DAYS", "7")
    handlers.reset()  # a configuration change reaches new containers (the settings are read once)
    handlers.on_schedule({})
    assert len(partitions(glue())) == 4


def test_on_schedule_raises_on_transient_failure(env: None) -> None:
    create_table(glue(), CLASSIC_LOCATION)
    s3().put_object(Bucket=BUCKET, Key=object_key("123456789012", "us-east-1", datetime.now(UTC)), Body=b"x")
    inject_error(glue(), "BatchCreatePartition", "ThrottlingException", times=1)
    with pytest.raises(Exception, match="ThrottlingException"):
        handlers.on_schedule({})
    handlers.on_schedule({})
    assert len(partitions(glue())) == 1


def test_backfill_finds_awslogs_under_a_free_prefix_when_the_table_sits_above_it(env: None) -> None:
    moment = FIRST + timedelta(minutes=5)
    key = object_key("111111111111", "us-east-1", moment, prefix="logs/vpc/")
    s3().put_object(Bucket=BUCKET, Key=key, Body=b"x")
    s3().put_object(Bucket=BUCKET, Key="other/data.csv", Body=b"x")  # not flow logs: no partition
    create_table(glue(), f"s3://{BUCKET}/", MULTI_KEYS)
    assert main(["backfill"]) == 0
    assert partitions(glue()) == {
        (
            "111111111111",
            "us-east-1",
            "2024",
            "02",
            "10",
        ): f"s3://{BUCKET}/logs/vpc/AWSLogs/111111111111/vpcflowlogs/us-east-1/2024/02/10/"
    }


def test_replay_reads_gzip_and_bom_and_refuses_binary_in_one_line(
    env: None, tmp_path: Path, capsys: Any
) -> None:
    import gzip

    create_table(glue())
    body = (EVENTS / "sns_s3.json").read_bytes()
    (tmp_path / "saved.json.gz").write_bytes(gzip.compress(body))
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + body)
    (tmp_path / "binary.bin").write_bytes(bytes(range(256)))
    assert main(["replay", "--json", str(tmp_path / "saved.json.gz"), str(tmp_path / "bom.json")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["malformed"] == 0 and set(partitions(glue())) == {("2022-08-29",)}
    assert main(["replay", str(tmp_path / "binary.bin")]) == 2
    err = capsys.readouterr().err
    assert "not UTF-8" in err and "Traceback" not in err
