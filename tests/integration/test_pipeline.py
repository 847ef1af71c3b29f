"""The pipeline's report on moto: per message, acked or failed and why; per run, the counts.

What replay, backfill and the Lambda responses are built from: each message's verdict, the
notes an operator reads, and the metrics.
"""

from __future__ import annotations

import json
from typing import Any

import helpers
import pytest
from helpers import ACCOUNT, BUCKET, CLASSIC_LOCATION, DATABASE, TABLE, CallCounter, create_table, partitions
from vpcflow_partitioner import aws
from vpcflow_partitioner.config import Settings
from vpcflow_partitioner.envelopes import Message, ObjectRef, message_from_body
from vpcflow_partitioner.pipeline import MessageResult, Partitioner, Report, is_collision

NOW = 1_700_000_000.0
MULTI = [("aws_account_id", "string"), ("aws_region", "string"), ("year", "string"), ("month", "string"),
         ("day", "string")]  # fmt: skip


def glue() -> Any:
    return aws.client("glue", "", "us-east-1")


@pytest.fixture
def env(mocked: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLUE_DATABASE", DATABASE)
    monkeypatch.setenv("GLUE_TABLE", TABLE)


def key(day: str, prefix: str = "", account: str = ACCOUNT, name: str = "a", hour: str = "") -> str:
    folder = f"{prefix}AWSLogs/{account}/vpcflowlogs/us-east-1/{day.replace('-', '/')}/"
    folder += f"{hour}/" if hour else ""
    return f"{folder}{account}_vpcflowlogs_us-east-1_fl-1_{day.replace('-', '')}T0005Z_{name}.log.gz"


def message(id_: str, *keys: str, bucket: str = BUCKET) -> Message:
    return Message(id_, tuple(ObjectRef(bucket, k) for k in keys))


def run(*messages: Message, **kwargs: Any) -> Report:
    return Partitioner(Settings.from_env(), glue()).run(list(messages), NOW, **kwargs)


def test_each_message_says_what_was_done_ignored_or_malformed(env: None) -> None:
    create_table(glue())
    trail = "AWSLogs/123456789012/CloudTrail/us-east-1/2022/08/29/x.json.gz"
    report = run(
        message("two-files", key("2022-08-29"), key("2022-08-29", name="b"), key("2022-08-30")),
        message("not-a-flow-log", trail),
        message("named-like-one", "exports/2022/08/29/a.log.gz"),  # a flow-log name, not its folders
        message("other-account", key("2022-08-29", account="210987654321")),
        message_from_body("broken", "{not json"),
        message_from_body("test-event", json.dumps({"Event": "s3:TestEvent"})),
        message("nothing"),
    )
    assert not report.failed
    r = report.result
    assert r("two-files").done == ((("2022-08-29",), "created"), (("2022-08-30",), "created"))
    assert r("two-files").detail == "2022-08-29 created; 2022-08-30 created"
    assert (r("two-files").notes, r("two-files").unresolved) == ((), False)
    assert r("not-a-flow-log").notes == ("ignored: not a flow-log object",)
    assert r("named-like-one").notes == ("ignored: not a flow-log object",)
    assert r("other-account").notes == (f"ignored: outside the table location {CLASSIC_LOCATION}",)
    assert not r("not-a-flow-log").unresolved and not r("other-account").unresolved
    assert r("broken").notes == ("malformed: SQS body is not JSON",) and r("broken").unresolved
    assert r("test-event").notes == ("ignored: s3:TestEvent",) and not r("test-event").unresolved
    assert r("nothing").detail == "nothing to do" and r("nothing").ok
    assert report.metrics() == {
        "PartitionsCreated": 2,
        "ObjectsIgnored": 4,
        "ObjectsOutsideTable": 1,
        "RecordsMalformed": 1,
    }
    assert report.ignored == {
        "not a flow-log object": 2,
        f"outside the table location {CLASSIC_LOCATION}": 1,
        "notification s3:TestEvent": 1,
    }
    assert [s.values for s in report.partitions("created")] == [("2022-08-29",), ("2022-08-30",)]


def test_a_second_run_reports_what_was_there_already(env: None) -> None:
    create_table(glue())
    run(message("m", key("2022-08-29")))
    report = run(message("m", key("2022-08-29"), key("2022-08-29", name="b")))
    assert report.result("m").done == ((("2022-08-29",), "exists"),)
    assert report.metrics() == {"PartitionsAlreadyPresent": 1}


def test_only_the_messages_behind_a_failed_partition_fail(env: None) -> None:
    create_table(glue())

    def reject_30th(parsed: dict[str, Any], **_: Any) -> None:
        parsed["Errors"] = [
            {"PartitionValues": ["2022-08-30"], "ErrorDetail": {"ErrorCode": "InternalServiceException"}}
        ]

    glue().meta.events.register("after-call.glue.BatchCreatePartition", reject_30th)
    report = run(
        message("a", key("2022-08-29")),
        message("b", key("2022-08-30"), key("2022-08-30", name="b"), key("2022-08-29")),
        message("c", key("2022-08-30", name="c")),
    )
    assert [r.id for r in report.failed] == ["b", "c"]
    assert report.result("b").notes == ("2022-08-30: InternalServiceException",)  # once, for two files
    assert report.result("a").ok
    assert report.metrics() == {"PartitionsCreated": 1, "RecordsFailed": 2}


def test_a_collision_is_acked_as_unresolved_and_named(env: None) -> None:
    create_table(glue(), f"s3://{BUCKET}/", MULTI)
    run(message("first", key("2024-02-10", prefix="vpc-aaa/")))
    report = run(message("second", key("2024-02-10", prefix="vpc-bbb/")))
    first_folder = f"s3://{BUCKET}/vpc-aaa/" + key("2024-02-10").rsplit("/", 1)[0] + "/"
    result = report.result("second")
    assert result.ok and result.unresolved and result.done == ()
    assert result.notes == (
        f"unpartitionable: collision with {first_folder}: another folder maps to the same partition values",
    )
    [(spec, folder)] = report.collisions().items()
    assert folder == first_folder and "/vpc-bbb/" in spec.location
    # Glue has the partition (at the first folder): present, and this object's folder collides.
    assert report.metrics() == {"PartitionsAlreadyPresent": 1, "ObjectsUnpartitionable": 1}
    assert set(partitions(glue()).values()) == {first_folder}


def test_an_object_the_table_cannot_represent_is_acked_as_unresolved(env: None) -> None:
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", [*MULTI, ("hour", "string")])
    report = run(message("daily", key("2024-02-10")), message("hourly", key("2024-02-10", hour="05")))
    assert not report.failed
    assert report.result("daily").unresolved and report.result("daily").notes == (
        "unpartitionable: the table has an hour key but the object is in a daily folder",
    )
    assert not report.result("hourly").unresolved
    assert report.metrics() == {"PartitionsCreated": 1, "ObjectsUnpartitionable": 1}


def test_a_foreign_bucket_is_outside_the_table(env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_BUCKETS", f"{BUCKET},other")
    create_table(glue())
    report = run(
        message("m", key("2022-08-29"), bucket="stranger"), message("n", "x/readme.txt", bucket="stranger")
    )
    assert report.result("m").notes == ("ignored: bucket not in SOURCE_BUCKETS",)
    # Not a flow-log file: ignored whatever its bucket, and no sign of a misrouted deployment.
    assert report.result("n").notes == ("ignored: not a flow-log object",)
    assert report.metrics() == {"ObjectsIgnored": 2, "ObjectsOutsideTable": 1}
    assert partitions(glue()) == {}


def test_a_dry_run_reports_what_it_would_create_and_creates_nothing(env: None) -> None:
    create_table(glue())
    run(message("m", key("2022-08-29")))
    calls = CallCounter(glue())
    report = run(message("m", key("2022-08-29"), key("2022-08-30")), dry_run=True)
    assert report.result("m").done == ((("2022-08-29",), "exists"), (("2022-08-30",), "would create"))
    assert calls.calls["BatchCreatePartition"] == 0 and set(partitions(glue())) == {("2022-08-29",)}


def test_a_warm_container_answers_from_memory_and_counts_it(env: None) -> None:
    create_table(glue())
    partitioner = Partitioner(Settings.from_env(), glue())
    partitioner.run([message("m", key("2022-08-29"))], NOW)
    calls = CallCounter(glue())
    report = partitioner.run([message("m", key("2022-08-29"))], NOW + 1)
    assert report.result("m").done == ((("2022-08-29",), "known"),)
    assert report.metrics() == {"CacheHits": 1} and calls.total == 0
    # Trusted for a while only: an `audit --prune` may have deleted it since.
    later = partitioner.run([message("m", key("2022-08-29"))], NOW + 301)
    assert later.metrics() == {"PartitionsAlreadyPresent": 1} and calls.calls["BatchGetPartition"] == 1


def test_a_report_indexes_results_and_leaves_zero_counts_out() -> None:
    report = Report()
    report.results += [MessageResult("a", ok=True), MessageResult("b", ok=False, notes=("x: y",))]
    assert report.result("b").notes == ("x: y",) and [r.id for r in report.failed] == ["b"]
    report.results.append(MessageResult("c", ok=True))
    assert report.result("c").ok  # the index follows the results
    report.counts["PartitionsCreated"] = 0
    report.counts["RecordsFailed"] = 2
    assert report.metrics() == {"RecordsFailed": 2}
    assert is_collision("collision with s3://b/x/") and not is_collision("created")


def test_transient_glue_failures_fail_the_records_with_the_reason(env: None) -> None:
    create_table(glue())
    helpers.inject_error(glue(), "BatchCreatePartition", "ThrottlingException")
    report = run(message("m", key("2022-08-29")))
    assert report.result("m").notes == (
        "2022-08-29: Glue BatchCreatePartition flowlogs.vpc_flow_logs: ThrottlingException: injected ThrottlingException",
    )
    assert report.metrics() == {"RecordsFailed": 1}


def test_already_exists_but_gone_when_read_back_is_retried_not_acked(env: None) -> None:
    create_table(glue())
    real = glue().batch_create_partition
    glue().batch_create_partition = lambda **kw: {  # type: ignore[method-assign]
        "Errors": [
            {"PartitionValues": ["2022-08-29"], "ErrorDetail": {"ErrorCode": "AlreadyExistsException"}}
        ]
    }
    report = run(message("m", key("2022-08-29")))
    glue().batch_create_partition = real  # type: ignore[method-assign]
    assert report.result("m").notes == ("2022-08-29: AlreadyExists, but gone when read back; retry",)
    assert report.metrics() == {"RecordsFailed": 1}


def test_already_exists_whose_folder_cannot_be_read_back_is_retried(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CACHE_TABLE", helpers.CACHE)
    ddb = aws.client("dynamodb", "", "us-east-1")
    helpers.create_cache(ddb)
    create_table(glue())
    Partitioner(Settings.from_env(), glue(), ddb).run([message("m", key("2022-08-29"))], NOW)
    # Glue has it; the cache forgot (a TTL, a prune): a new container claims, and Glue says exists.
    ddb.delete_item(TableName=helpers.CACHE, Key={"id": ddb.scan(TableName=helpers.CACHE)["Items"][0]["id"]})
    helpers.inject_error(glue(), "BatchGetPartition", "ThrottlingException")
    report = Partitioner(Settings.from_env(), glue(), ddb).run([message("m", key("2022-08-29"))], NOW)
    assert report.failed and "ThrottlingException" in report.result("m").notes[0]
    assert ddb.scan(TableName=helpers.CACHE)["Items"] == []  # our claim released, nothing marked


def test_a_container_that_turned_away_objects_from_many_folders_keeps_working(env: None) -> None:
    """Each account-region folder turned away is checked against a fresh table once; that
    memory is bounded (10,000 folders), and a container past the bound carries on."""
    create_table(glue())
    partitioner = Partitioner(Settings.from_env(), glue())
    partitioner.run([message("m", key("2022-08-29"))], NOW)
    strangers = [message(f"s{i}", key("2022-08-29", account=f"{i:012d}")) for i in range(10_001)]
    calls = CallCounter(glue())
    report = partitioner.run(strangers, NOW + 1)
    assert not report.failed and report.metrics() == {"ObjectsIgnored": 10_001, "ObjectsOutsideTable": 10_001}
    assert calls.calls["GetTable"] == 1  # one fresh look for the whole invocation
    later = partitioner.run([message("t", key("2022-08-29", account="999999999999"))], NOW + 2)
    assert not later.failed and later.metrics() == {"ObjectsIgnored": 1, "ObjectsOutsideTable": 1}
    assert calls.calls["GetTable"] == 2


def test_a_partition_found_present_is_remembered_by_the_container_but_not_in_a_dry_run(env: None) -> None:
    create_table(glue())
    run(message("m", key("2022-08-29")))
    partitioner = Partitioner(Settings.from_env(), glue())
    dry = partitioner.run([message("m", key("2022-08-29"), key("2022-08-30"))], NOW, dry_run=True)
    assert dry.result("m").done == ((("2022-08-29",), "exists"), (("2022-08-30",), "would create"))
    calls = CallCounter(glue())
    first = partitioner.run([message("m", key("2022-08-29"))], NOW + 1)
    assert first.metrics() == {"PartitionsAlreadyPresent": 1}  # a dry run taught it nothing
    assert calls.calls["BatchGetPartition"] == 1
    again = partitioner.run([message("m", key("2022-08-29"))], NOW + 2)
    assert again.metrics() == {"CacheHits": 1} and calls.calls["BatchGetPartition"] == 1
