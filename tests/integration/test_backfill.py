"""backfill --distributed on moto: plan -> backfill queue -> on_backfill -> partitions; a slice
that fails lands in the DLQ and is replayed.

moto's Lambda event-source mapping runs a function's code only in docker, so the test is the
event-source mapping: it receives the queue one message at a time (batch size 1), calls
handlers.on_backfill with the SQS event Lambda sends, deletes what the function did not
report as failed, and leaves the rest to come back (the queue's visibility timeout is 0 here,
so "later" is the next receive); moto moves a message to the DLQ past maxReceiveCount, as SQS.
"""

from __future__ import annotations

import json
import shlex
from datetime import UTC, date, datetime
from typing import Any

import pytest
from helpers import BUCKET, DATABASE, TABLE, create_table, emitted_metrics, failure, partitions
from vpcflow_partitioner import aws, handlers
from vpcflow_partitioner.backfill import WorkItem
from vpcflow_partitioner.ops import cli
from vpcflow_partitioner.ops.cli import main
from vpcflow_partitioner.ops.synthetic import object_key

ACCOUNTS = ("111111111111", "222222222222")
REGIONS = ("us-east-1", "eu-west-1")
DAYS = (date(2024, 1, 10), date(2024, 1, 31), date(2024, 2, 1), date(2024, 2, 29))
MULTI_KEYS = [
    ("aws_account_id", "string"),
    ("aws_region", "string"),
    ("year", "string"),
    ("month", "string"),
    ("day", "string"),
]
RANGE = ["--since", "2024-01-01", "--until", "2024-02-29"]
MAX_RECEIVES = 2


def glue() -> Any:
    return aws.client("glue", "", "us-east-1")


def sqs() -> Any:
    return aws.client("sqs", "", "us-east-1")


def s3() -> Any:
    return aws.client("s3", "", "us-east-1")


@pytest.fixture
def org(mocked: None, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """2 accounts x 2 regions x 2 months of flow logs, the table over AWSLogs/, the backfill
    queue and its DLQ; returns (queue URL, DLQ URL)."""
    monkeypatch.setenv("GLUE_DATABASE", DATABASE)
    monkeypatch.setenv("GLUE_TABLE", TABLE)
    s3().create_bucket(Bucket=BUCKET)
    for account in ACCOUNTS:
        for region in REGIONS:
            for day in DAYS:
                moment = datetime(day.year, day.month, day.day, 0, 5, tzinfo=UTC)
                s3().put_object(Bucket=BUCKET, Key=object_key(account, region, moment), Body=b"x")
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    dlq = sqs().create_queue(QueueName="backfill-dlq")["QueueUrl"]
    dlq_arn = sqs().get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs().create_queue(
        QueueName="backfill",
        Attributes={
            "VisibilityTimeout": "0",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES}),
        },
    )["QueueUrl"]
    return str(queue), str(dlq)


def every_partition() -> set[tuple[str, ...]]:
    return {
        (account, region, f"{day:%Y}", f"{day:%m}", f"{day:%d}")
        for account in ACCOUNTS
        for region in REGIONS
        for day in DAYS
    }


def sqs_event(message: dict[str, Any], queue_url: str) -> dict[str, Any]:
    """The event Lambda's SQS event-source mapping sends ("Using Lambda with Amazon SQS")."""
    arn = sqs().get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {
                    "ApproximateReceiveCount": message["Attributes"]["ApproximateReceiveCount"],
                    "SentTimestamp": message["Attributes"]["SentTimestamp"],
                    "SenderId": message["Attributes"]["SenderId"],
                    "ApproximateFirstReceiveTimestamp": message["Attributes"][
                        "ApproximateFirstReceiveTimestamp"
                    ],
                },
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "us-east-1",
            }
        ]
    }


class EventSourceMapping:
    """Lambda's SQS poller, batch size 1, with ReportBatchItemFailures."""

    def __init__(self, queue_url: str) -> None:
        self.queue_url = queue_url
        self.invocations: list[dict[str, Any]] = []

    def drain(self) -> None:
        while True:
            received = sqs().receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=1, MessageSystemAttributeNames=["All"]
            )
            messages = received.get("Messages") or []
            if not messages:
                return
            event = sqs_event(messages[0], self.queue_url)
            answer = handlers.on_backfill(event)
            self.invocations.append(answer)
            failed = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
            if messages[0]["MessageId"] not in failed:
                sqs().delete_message(QueueUrl=self.queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])


def cli_json(out: str) -> Any:
    """The command's JSON report, without the EMF lines the function printed meanwhile."""
    return json.loads("\n".join(line for line in out.splitlines() if not line.startswith('{"_aws"')))


def depth(url: str) -> int:
    attributes = sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def break_glue_for(account: str, region: str, month: str) -> list[bool]:
    """BatchCreatePartition fails (as a Glue 5xx after botocore's retries) for one slice's partitions
    while the returned flag is True."""
    broken = [True]

    def fail(params: dict[str, Any], **_: Any) -> Any:
        body = json.loads(params["body"])
        values = [p["Values"] for p in body["PartitionInputList"]]
        if broken[0] and any(v[:2] == [account, region] and v[3] == month for v in values):
            return failure("InternalServiceException", 500)
        return None

    glue().meta.events.register_first("before-call.glue.BatchCreatePartition", fail)
    return broken


def test_a_distributed_backfill_partitions_everything_and_a_failed_slice_is_replayed(
    org: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    queue, dlq = org
    poller = EventSourceMapping(queue)
    monkeypatch.setattr(cli, "_pause", lambda _: poller.drain())  # the fleet works while the CLI waits
    broken = break_glue_for(ACCOUNTS[1], "eu-west-1", "02")

    assert main(["backfill", "--distributed", "--queue-url", queue, *RANGE, "--wait", "--json"]) == 1
    report = cli_json(capsys.readouterr().out)
    # 2 accounts x 2 regions x 2 months; the DLQ found from the queue's redrive policy.
    assert (report["work_items"], report["sent"], report["region_folders"]) == (8, 8, 4)
    assert (report["dlq_url"], report["dead_letters"], report["waiting"], report["in_flight"]) == (
        dlq,
        1,
        0,
        0,
    )
    slice_of = f"AWSLogs/{ACCOUNTS[1]}/vpcflowlogs/eu-west-1/"
    assert set(partitions(glue())) == {
        p for p in every_partition() if not (p[0] == ACCOUNTS[1] and p[1] == "eu-west-1" and p[3] == "02")
    }
    # The failing slice was tried maxReceiveCount times, each answered as a batch item failure.
    failures = [a for a in poller.invocations if a["batchItemFailures"]]
    assert len(poller.invocations) == 8 + MAX_RECEIVES - 1 and len(failures) == MAX_RECEIVES
    dead = sqs().receive_message(QueueUrl=dlq, VisibilityTimeout=0)["Messages"][0]
    assert json.loads(dead["Body"]) == {
        "v": 1,
        "table": f"{DATABASE}.{TABLE}",
        "bucket": BUCKET,
        "folder": slice_of,
        "since": "2024-02-01",
        "until": "2024-02-29",
    }
    command = report["replay_command"]
    assert command == shlex.join(
        [
            "vpcflow-partitioner",
            "backfill",
            "--distributed",
            "--replay-dlq",
            "--queue-url",
            queue,
            "--dlq-url",
            dlq,
        ]
    )

    broken[0] = False  # Glue is back: the operator runs the command it was given
    assert main([*shlex.split(command)[1:], "--wait", "--json"]) == 0
    replayed = cli_json(capsys.readouterr().out)
    assert (replayed["replayed"], replayed["dead_letters"]) == (1, 0)
    assert set(partitions(glue())) == every_partition()
    assert depth(queue) == depth(dlq) == 0


def test_the_table_report_says_what_to_run_when_items_are_dead(
    org: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    queue, dlq = org
    poller = EventSourceMapping(queue)
    monkeypatch.setattr(cli, "_pause", lambda _: poller.drain())
    break_glue_for(ACCOUNTS[0], "us-east-1", "01")
    assert main(["backfill", "--distributed", "--queue-url", queue, "--dlq-url", dlq, *RANGE, "--wait"]) == 1
    out = capsys.readouterr().out
    assert "sent 8 work items (4 region folders" in out
    assert "1 work item in the DLQ" in out
    assert (
        f"vpcflow-partitioner backfill --distributed --replay-dlq --queue-url {queue} --dlq-url {dlq}" in out
    )


def test_on_backfill_fails_malformed_foreign_and_outside_items_and_only_them(
    org: tuple[str, str], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    good = WorkItem(
        f"{DATABASE}.{TABLE}", BUCKET, f"AWSLogs/{ACCOUNTS[0]}/vpcflowlogs/us-east-1/", DAYS[0], DAYS[1]
    )
    bodies = {
        "good": good.to_body(),
        "not-json": "hello",
        "version-2": json.dumps(json.loads(good.to_body()) | {"v": 2}),
        "other-table": WorkItem("flowlogs.other", BUCKET, good.folder).to_body(),
        "outside": WorkItem(good.table, BUCKET, "elsewhere/AWSLogs/").to_body(),
        "other-bucket": WorkItem(good.table, "another-bucket", good.folder).to_body(),
    }
    event = {
        "Records": [
            {"messageId": name, "receiptHandle": f"rh-{name}", "body": body, "eventSource": "aws:sqs"}
            for name, body in bodies.items()
        ]
    }
    answer = handlers.on_backfill(event)
    assert sorted(f["itemIdentifier"] for f in answer["batchItemFailures"]) == sorted(set(bodies) - {"good"})
    assert set(partitions(glue())) == {(ACCOUNTS[0], "us-east-1", "2024", "01", f"{d:%d}") for d in DAYS[:2]}
    assert emitted_metrics(capsys.readouterr().out) == {
        "PartitionsCreated": 2,
        "RecordsMalformed": 2,
        "RecordsFailed": 5,
    }
    errors = {r.message_id: r.error for r in caplog.records if hasattr(r, "error")}  # type: ignore[attr-defined]
    assert "this build reads version 1" in errors["version-2"]
    assert "this function partitions flowlogs.vpc_flow_logs" in errors["other-table"]
    assert "is not a folder under the table Location" in errors["outside"]
    assert "is not the bucket of the table Location" in errors["other-bucket"]


def test_the_dry_run_prints_the_plan_and_sends_nothing(
    org: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    queue, _ = org
    assert main(["backfill", "--distributed", "--queue-url", queue, "--dry-run", "--json"]) == 3
    plan = json.loads(capsys.readouterr().out)
    # An open range: each region's year folders (2024) close it; a list call per region for them.
    assert plan["work_items"] == 4 * 12 and plan["dry_run"] and depth(queue) == 0
    assert plan["items"][0] == {
        "v": 1,
        "table": f"{DATABASE}.{TABLE}",
        "bucket": BUCKET,
        "folder": f"AWSLogs/{ACCOUNTS[0]}/vpcflowlogs/eu-west-1/",
        "since": "2024-01-01",
        "until": "2024-01-31",
    }
    # AWSLogs/, two accounts, their service folders; then each region's years.
    assert plan["list_calls"] == 1 + 2 + 2 + 4
    assert main(["backfill", "--distributed", "--queue-url", queue, *RANGE, "--dry-run"]) == 3
    out = capsys.readouterr().out
    assert (
        "work items it would send" in out
        and "plan: would send 8 work items (4 region folders, 9 list calls)" in out
    )


TEMPLATE = {
    "Resources": {
        "Dlq": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "stack-backfill-dlq"}},
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "stack-backfill"}},
    },
    "Outputs": {
        "BackfillQueueUrl": {"Value": {"Ref": "Queue"}},
        "BackfillDlqUrl": {"Value": {"Ref": "Dlq"}},
        "GlueDatabase": {"Value": DATABASE},
        "GlueTable": {"Value": TABLE},
    },
}


def test_the_stack_names_the_queues_and_the_table(
    org: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GLUE_DATABASE")
    monkeypatch.delenv("GLUE_TABLE")
    cloudformation = aws.client("cloudformation", "", "us-east-1")
    cloudformation.create_stack(StackName="partitioner", TemplateBody=json.dumps(TEMPLATE))
    queue = sqs().get_queue_url(QueueName="stack-backfill")["QueueUrl"]
    argv = ["backfill", "--distributed", "--stack", "partitioner", *RANGE, "--json"]
    assert main([*argv, "--dry-run"]) == 3
    assert json.loads(capsys.readouterr().out)["work_items"] == 8
    assert main([*argv, "--no-wait"]) == 0
    sent = json.loads(capsys.readouterr().out)
    assert (sent["queue_url"], sent["sent"], sent["waited"]) == (queue, 8, False)
    assert sent["dlq_url"] == sqs().get_queue_url(QueueName="stack-backfill-dlq")["QueueUrl"]
    assert depth(queue) == 8


def test_a_stack_without_the_backfill_queue_is_one_line(
    org: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    template = {"Resources": TEMPLATE["Resources"], "Outputs": {"GlueTable": {"Value": TABLE}}}
    aws.client("cloudformation", "", "us-east-1").create_stack(
        StackName="old", TemplateBody=json.dumps(template)
    )
    assert main(["backfill", "--distributed", "--stack", "old", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "stack old has no BackfillQueueUrl output" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["--queue-url", "u"], "--queue-url needs --distributed"),
        (["--no-wait"], "--wait and --no-wait need --distributed"),
        (["--distributed"], "needs the backfill queue"),
        (["--distributed", "--queue-url", "u", "--replay-dlq", "--dry-run"], "--replay-dlq moves"),
    ],
)
def test_distributed_usage_errors_are_one_line_and_exit_2(
    org: tuple[str, str], capsys: pytest.CaptureFixture[str], argv: list[str], why: str
) -> None:
    assert main(["backfill", *argv]) == 2
    err = capsys.readouterr().err
    assert why in err and len(err.strip().splitlines()) == 1


def test_a_table_over_one_region_folder_is_sliced_by_month_from_its_location(
    org: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    queue, _ = org
    folder = f"AWSLogs/{ACCOUNTS[0]}/vpcflowlogs/us-east-1/"
    create_table(glue(), f"s3://{BUCKET}/{folder}", table="classic")
    monkeypatch.setenv("GLUE_TABLE", "classic")
    handlers.reset()
    assert main(["backfill", "--distributed", "--queue-url", queue, *RANGE, "--no-wait", "--json"]) == 0
    sent = json.loads(capsys.readouterr().out)
    assert (sent["work_items"], sent["region_folders"], sent["list_calls"]) == (
        2,
        1,
        1,
    )  # its years: one listing
    EventSourceMapping(queue).drain()
    assert set(partitions(glue(), table="classic")) == {(f"{day}",) for day in DAYS}
    assert partitions(glue()) == {}  # the other table was not asked


# ---------------------------------------------------------------- an S3 Inventory report instead of a walk

INVENTORY = "inventory-reports"


def publish_inventory(form: str, files: int = 2) -> str:
    """An S3 Inventory report of the flow-log bucket, as S3 writes one ("Amazon S3 Inventory"):
    data files (CSV gzip with URL-encoded keys, or Parquet), manifest.json, manifest.checksum."""
    import gzip
    import hashlib
    import io
    from urllib.parse import quote_plus

    keys = sorted(o["Key"] for o in s3().list_objects_v2(Bucket=BUCKET)["Contents"])
    s3().create_bucket(Bucket=INVENTORY)
    entries = []
    for i in range(files):
        chunk = keys[i::files]
        if form == "CSV":
            lines = [f'"{BUCKET}","{quote_plus(k, safe="/")}","true","false"' for k in chunk]
            body = gzip.compress(("\n".join(lines) + "\n").encode())
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            out = io.BytesIO()
            pq.write_table(
                pa.table(
                    {
                        "bucket": [BUCKET] * len(chunk),
                        "key": chunk,
                        "is_latest": [True] * len(chunk),
                        "is_delete_marker": [False] * len(chunk),
                    }
                ),
                out,
            )
            body = out.getvalue()
        key = f"report/data/{i}.{'csv.gz' if form == 'CSV' else 'parquet'}"
        s3().put_object(Bucket=INVENTORY, Key=key, Body=body)
        entries.append({"key": key, "size": len(body), "MD5checksum": hashlib.md5(body).hexdigest()})
    schema = (
        "Bucket, Key, IsLatest, IsDeleteMarker"
        if form == "CSV"
        else "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); "
        "optional boolean is_latest; optional boolean is_delete_marker; }"
    )
    manifest = json.dumps(
        {
            "sourceBucket": BUCKET,
            "destinationBucket": f"arn:aws:s3:::{INVENTORY}",
            "version": "2016-11-30",
            "fileFormat": form,
            "fileSchema": schema,
            "files": entries,
        }
    ).encode()
    s3().put_object(Bucket=INVENTORY, Key="report/manifest.json", Body=manifest)
    s3().put_object(
        Bucket=INVENTORY, Key="report/manifest.checksum", Body=hashlib.md5(manifest).hexdigest().encode()
    )
    return f"s3://{INVENTORY}/report/manifest.json"


@pytest.mark.parametrize("form", ["CSV", "Parquet"])
def test_backfill_from_an_inventory_lists_nothing_and_creates_every_partition(
    org: tuple[str, str], form: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from helpers import CallCounter

    manifest = publish_inventory(form)
    calls = CallCounter(s3())
    assert main(["backfill", "--inventory", manifest, "--json"]) == 0
    report = cli_json(capsys.readouterr().out)
    assert set(partitions(glue())) == every_partition()
    assert calls.calls["ListObjectsV2"] == 0 and report["list_calls"] == 0
    assert (report["inventory_files"], report["inventory_rows"], report["partitions_created"]) == (2, 16, 16)


def test_an_inventory_of_another_bucket_is_refused_in_one_line(
    org: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = publish_inventory("CSV")
    body = json.loads(s3().get_object(Bucket=INVENTORY, Key="report/manifest.json")["Body"].read())
    body["sourceBucket"] = "someone-elses-bucket"
    s3().put_object(Bucket=INVENTORY, Key="report/manifest.json", Body=json.dumps(body).encode())
    s3().delete_object(Bucket=INVENTORY, Key="report/manifest.checksum")
    assert main(["backfill", "--inventory", manifest]) == 2
    err = capsys.readouterr().err
    assert "lists bucket someone-elses-bucket" in err and len(err.strip().splitlines()) == 1


def test_a_distributed_inventory_backfill_sends_one_item_per_data_file(
    org: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    queue, _ = org
    manifest = publish_inventory("CSV", files=3)
    poller = EventSourceMapping(queue)
    monkeypatch.setattr(cli, "_pause", lambda _: poller.drain())
    assert (
        main(["backfill", "--distributed", "--queue-url", queue, "--inventory", manifest, "--wait", "--json"])
        == 0
    )
    report = cli_json(capsys.readouterr().out)
    assert (report["work_items"], report["list_calls"], report["dead_letters"]) == (3, 0, 0)
    assert set(partitions(glue())) == every_partition()
    assert len(poller.invocations) == 3


def test_a_columnar_inventory_is_refused_for_the_function_that_has_no_pyarrow(
    org: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    queue, _ = org
    manifest = publish_inventory("Parquet")
    assert main(["backfill", "--distributed", "--queue-url", queue, "--inventory", manifest]) == 2
    assert "reads CSV reports only" in capsys.readouterr().err
    assert depth(queue) == 0


def test_a_closed_range_sends_no_item_for_years_without_folders(
    org: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    queue, _ = org
    argv = ["backfill", "--distributed", "--queue-url", queue, "--dry-run", "--json"]
    assert main([*argv, "--since", "0001-01-01", "--until", "9999-12-31"]) == 3
    plan = cli_json(capsys.readouterr().out)
    assert plan["work_items"] == 4 * 12  # 2024's months in each region folder, not 9,999 years'


def test_an_item_for_a_day_folder_keeps_to_its_dates(org: tuple[str, str]) -> None:
    folder = f"AWSLogs/{ACCOUNTS[0]}/vpcflowlogs/us-east-1/2024/01/10/"
    item = WorkItem(f"{DATABASE}.{TABLE}", BUCKET, folder, date(2023, 1, 1), date(2023, 1, 31))
    message: dict[str, Any] = {
        "MessageId": "m1",
        "ReceiptHandle": "r",
        "Body": item.to_body(),
        "MD5OfBody": "x",
    }
    message["Attributes"] = dict.fromkeys(
        ("ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"), "1"
    )
    queue, _ = org
    assert handlers.on_backfill(sqs_event(message, queue)) == {"batchItemFailures": []}
    assert partitions(glue()) == {}  # 2024-01-10 is not in January 2023


@pytest.mark.parametrize(
    "uri", ["", "s3:/inventory-reports/manifest.json", "inventory-reports/manifest.json"]
)
def test_an_inventory_that_is_no_s3_uri_is_a_usage_error_not_a_walk(
    org: tuple[str, str], uri: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backfill", "--inventory", uri]) == 2  # an empty "$URI" must not turn into a full walk
    err = capsys.readouterr().err
    assert "is not s3://bucket/path/manifest.json" in err and len(err.strip().splitlines()) == 1
    assert partitions(glue()) == {}


def test_the_report_says_when_it_was_made(org: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    manifest = publish_inventory("CSV")
    body = json.loads(s3().get_object(Bucket=INVENTORY, Key="report/manifest.json")["Body"].read())
    body["creationTimestamp"] = "1709251200000"  # 2024-03-01 00:00 UTC
    s3().put_object(Bucket=INVENTORY, Key="report/manifest.json", Body=json.dumps(body).encode())
    s3().delete_object(Bucket=INVENTORY, Key="report/manifest.checksum")
    assert main(["backfill", "--inventory", manifest, "--json"]) == 0
    captured = capsys.readouterr()
    assert cli_json(captured.out)["inventory_created"] == "2024-03-01T00:00:00+00:00"
    assert "objects written since are not in it; `backfill --since 2024-03-01` covers them" in captured.err


def test_year_slices_send_a_twelfth_of_the_items_and_cover_the_same_partitions(
    org: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    queue, _ = org
    argv = [
        "backfill",
        "--distributed",
        "--queue-url",
        queue,
        "--since",
        "2024-01-01",
        "--until",
        "2024-12-31",
    ]
    assert main([*argv, "--dry-run", "--json"]) == 3
    assert cli_json(capsys.readouterr().out)["work_items"] == 4 * 12
    assert main([*argv, "--slice", "year", "--no-wait", "--json"]) == 0
    assert cli_json(capsys.readouterr().out)["work_items"] == 4
    EventSourceMapping(queue).drain()
    assert set(partitions(glue())) == every_partition()
    assert main(["backfill", "--slice", "year"]) == 2  # a slice of what? only the fleet slices


def _stack(name: str, **outputs: str) -> None:
    template = json.loads(json.dumps(TEMPLATE))
    template["Outputs"] |= {key: {"Value": value} for key, value in outputs.items()}
    aws.client("cloudformation", "", "us-east-1").create_stack(
        StackName=name, TemplateBody=json.dumps(template)
    )


def test_a_database_flag_picks_among_a_stacks_tables(
    org: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GLUE_DATABASE")
    monkeypatch.delenv("GLUE_TABLE")
    glue().create_database(DatabaseInput={"Name": "other"})
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS, database="other", table="org")
    _stack("partitioner", GlueTables=f"{DATABASE}.{TABLE},other.org")
    argv = ["backfill", "--distributed", "--stack", "partitioner", *RANGE, "--dry-run", "--json"]
    assert main([*argv, "--database", "other"]) == 3
    plan = cli_json(capsys.readouterr().out)
    assert plan["tables"] == ["other.org"] and {i["table"] for i in plan["items"]} == {"other.org"}
    assert main([*argv, "--table", TABLE]) == 3
    assert cli_json(capsys.readouterr().out)["tables"] == [f"{DATABASE}.{TABLE}"]
    assert main(argv) == 3
    assert cli_json(capsys.readouterr().out)["tables"] == [f"{DATABASE}.{TABLE}", "other.org"]


def test_an_inventory_the_function_may_not_read_is_refused_before_sending(
    org: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = publish_inventory("CSV")  # its data files are in INVENTORY
    _stack("partitioner", InventoryBucket=BUCKET)  # the function may read the source bucket only
    argv = ["backfill", "--distributed", "--stack", "partitioner", "--inventory", manifest, "--no-wait"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"--param=inventoryBucket={INVENTORY}" in err and len(err.strip().splitlines()) == 1
    assert depth(sqs().get_queue_url(QueueName="stack-backfill")["QueueUrl"]) == 0
    assert main([*argv, "--slice", "year"]) == 2  # an inventory is cut by its files


def test_an_inventory_plan_shows_its_data_files(
    org: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    queue, _ = org
    manifest = publish_inventory("CSV", files=2)
    assert (
        main(["backfill", "--distributed", "--queue-url", queue, "--inventory", manifest, "--dry-run"]) == 3
    )
    out = capsys.readouterr().out
    assert "s3:///" not in out and "None" not in out
    assert "plan: would send 2 work items (inventory data files, 0 list calls)" in out
    argv = ["backfill", "--distributed", "--queue-url", queue, "--replay-dlq", "--slice", "year"]
    assert main(argv) == 2
