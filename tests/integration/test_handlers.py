"""on_object_created on moto: every sample envelope, outcomes, Glue limits, the cache."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import helpers
import pytest
from helpers import (
    ACCOUNT,
    BUCKET,
    CLASSIC_LOCATION,
    DATABASE,
    TABLE,
    CallCounter,
    create_table,
    emitted_metrics,
    event_names,
    flow_key,
    inject_error,
    load_event,
    partitions,
    s3_body,
    sqs_event,
)
from vpcflow_partitioner import aws, handlers
from vpcflow_partitioner.config import Settings
from vpcflow_partitioner.errors import TransientError
from vpcflow_partitioner.pipeline import Partitioner

CACHE = "vpcflow-partitioner-cache"
DAY = f"{CLASSIC_LOCATION}2022/08/%s/"
EXPECTED = {
    "s3_notification.json": {"29", "30"},
    "sqs_s3.json": {"29", "30"},
    "sns_s3.json": {"29"},
    "sqs_sns_s3.json": {"29"},
    "sqs_sns_raw_s3.json": {"29"},
    "eventbridge_object_created.json": {"29"},
    "sqs_eventbridge.json": {"30"},
    "batch_operations_v1.json": {"29"},
    "batch_operations_v2.json": {"29", "30"},
    "sqs_s3_test_event.json": set(),
}


def glue() -> Any:
    return aws.client("glue", "", "us-east-1")


def dynamodb() -> Any:
    return aws.client("dynamodb", "", "us-east-1")


def create_cache() -> None:
    helpers.create_cache(dynamodb(), CACHE)


@pytest.fixture(params=["glue-lookup", "dynamodb-cache"])
def setup(request: pytest.FixtureRequest, mocked: None, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("GLUE_DATABASE", DATABASE)
    monkeypatch.setenv("GLUE_TABLE", TABLE)
    if request.param == "dynamodb-cache":
        monkeypatch.setenv("CACHE_TABLE", CACHE)
        create_cache()
    create_table(glue())
    return str(request.param)


@pytest.fixture
def classic(mocked: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLUE_DATABASE", DATABASE)
    monkeypatch.setenv("GLUE_TABLE", TABLE)
    monkeypatch.setenv("CACHE_TABLE", CACHE)
    create_cache()
    create_table(glue())


def test_every_sample_event_is_covered() -> None:
    assert set(event_names()) == {*EXPECTED, "s3_notification_hive_hourly.json"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_sample_event_puts_exactly_its_partitions(setup: str, name: str) -> None:
    response = handlers.on_object_created(load_event(name))
    expected = {("2022-08-" + d,): DAY % d for d in EXPECTED[name]}
    assert partitions(glue()) == expected
    if name.startswith("sqs_"):
        assert response == {"batchItemFailures": []}
    if name.startswith("batch_"):
        assert [r["resultCode"] for r in response["results"]] == ["Succeeded"] * len(response["results"])
        assert response["invocationId"] == load_event(name)["invocationId"]
        assert response["treatMissingKeysAs"] == "PermanentFailure"


def test_partitions_carry_the_tables_storage_descriptor(setup: str) -> None:
    handlers.on_object_created(load_event("s3_notification.json"))
    table_sd = glue().get_table(DatabaseName=DATABASE, Name=TABLE)["Table"]["StorageDescriptor"]
    partition = glue().get_partition(DatabaseName=DATABASE, TableName=TABLE, PartitionValues=["2022-08-29"])
    sd = partition["Partition"]["StorageDescriptor"]
    assert sd["Location"] == DAY % "29"
    assert sd["SerdeInfo"] == table_sd["SerdeInfo"]
    assert sd["Columns"] == table_sd["Columns"]
    assert sd["InputFormat"] == table_sd["InputFormat"]


def test_hive_hourly_event_on_aws_hive_table(mocked: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLUE_DATABASE", DATABASE)
    monkeypatch.setenv("GLUE_TABLE", "hive")
    keys = ["aws-account-id", "aws-service", "aws-region", "year", "month", "day", "hour"]
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", [(k, "string") for k in keys], table="hive")
    handlers.on_object_created(load_event("s3_notification_hive_hourly.json"))
    folder = f"s3://{BUCKET}/AWSLogs/aws-account-id={ACCOUNT}/aws-service=vpcflowlogs/aws-region=us-east-1/year=2022/month=08/day=29/"
    assert partitions(glue(), table="hive") == {
        (ACCOUNT, "vpcflowlogs", "us-east-1", "2022", "08", "29", "09"): folder + "hour=09/",
        (ACCOUNT, "vpcflowlogs", "us-east-1", "2022", "08", "29", "10"): folder + "hour=10/",
    }


def test_250_partitions_in_one_event_are_written_in_calls_of_at_most_100(setup: str) -> None:
    days = [time.strftime("%Y-%m-%d", time.gmtime(1577836800 + 86400 * i)) for i in range(250)]
    keys = [flow_key(d) for d in days]
    counter = CallCounter(glue())
    sizes: list[int] = []
    glue().meta.events.register(
        "before-parameter-build.glue.BatchCreatePartition",
        lambda params, **_: sizes.append(len(params["PartitionInputList"])),
    )
    handlers.on_object_created(json.loads(s3_body(*keys)))
    assert sizes == [100, 100, 50]  # AWS rejects more than 100; moto would not
    assert counter.entries["BatchCreatePartition"] == 250
    assert len(partitions(glue())) == 250


def test_already_existing_partitions_count_as_success(setup: str) -> None:
    handlers.on_object_created(load_event("sns_s3.json"))
    handlers.reset()  # a cold container that does not know
    if setup == "dynamodb-cache":
        dynamodb().delete_table(TableName=CACHE)
        create_cache()
    response = handlers.on_object_created(load_event("sqs_s3.json"))
    assert response == {"batchItemFailures": []}
    assert set(partitions(glue())) == {("2022-08-29",), ("2022-08-30",)}


def test_an_error_entry_fails_only_the_messages_behind_that_partition(setup: str) -> None:
    def fail_30th(params: dict[str, Any], **_: Any) -> None:
        wanted = [p["Values"] for p in params["PartitionInputList"]]
        if ["2022-08-30"] in wanted:
            params["PartitionInputList"] = [
                p for p in params["PartitionInputList"] if p["Values"] != ["2022-08-30"]
            ]

    glue().meta.events.register("before-parameter-build.glue.BatchCreatePartition", fail_30th)
    original = glue().meta.events

    def add_error(parsed: dict[str, Any], **_: Any) -> None:
        parsed.setdefault("Errors", []).append(
            {
                "PartitionValues": ["2022-08-30"],
                "ErrorDetail": {"ErrorCode": "InternalServiceException", "ErrorMessage": "x"},
            }
        )

    original.register("after-call.glue.BatchCreatePartition", lambda parsed, **kw: add_error(parsed))
    event = sqs_event(s3_body(flow_key("2022-08-29")), s3_body(flow_key("2022-08-30")), "not json")
    response = handlers.on_object_created(event)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert set(partitions(glue())) == {("2022-08-29",)}
    if setup == "dynamodb-cache":
        items = dynamodb().scan(TableName=CACHE)["Items"]
        assert [json.loads(i["id"]["S"])[-1] for i in items if i["status"]["S"] == "present"] == [
            "2022-08-29"
        ]
        assert not [i for i in items if "2022-08-30" in i["id"]["S"]]  # claim released, never marked


def test_transient_glue_failure_fails_the_records_and_never_marks_the_cache(classic: None) -> None:
    inject_error(glue(), "BatchCreatePartition", "ThrottlingException", times=1)
    response = handlers.on_object_created(load_event("sqs_s3.json"))
    assert len(response["batchItemFailures"]) == 2
    assert partitions(glue()) == {}
    assert dynamodb().scan(TableName=CACHE)["Items"] == []
    # SQS redelivers: the retry succeeds
    assert handlers.on_object_created(load_event("sqs_s3.json")) == {"batchItemFailures": []}
    assert len(partitions(glue())) == 2


@pytest.mark.parametrize("name", ["s3_notification.json", "sns_s3.json", "eventbridge_object_created.json"])
def test_direct_invocations_raise_on_transient_failure(classic: None, name: str) -> None:
    inject_error(glue(), "BatchCreatePartition", "InternalServiceException", times=1, status=500)
    with pytest.raises(TransientError):
        handlers.on_object_created(load_event(name))
    handlers.on_object_created(load_event(name))  # Lambda's retry
    assert partitions(glue())


def test_batch_operations_transient_failure_is_temporary(classic: None) -> None:
    inject_error(glue(), "BatchCreatePartition", "ThrottlingException", times=1)
    response = handlers.on_object_created(load_event("batch_operations_v2.json"))
    assert [r["resultCode"] for r in response["results"]] == ["TemporaryFailure"] * 2


def test_dynamodb_errors_fail_the_record(classic: None) -> None:
    inject_error(dynamodb(), "PutItem", "ProvisionedThroughputExceededException")
    response = handlers.on_object_created(load_event("sqs_s3.json"))
    assert len(response["batchItemFailures"]) == 2
    assert partitions(glue()) == {}


@pytest.mark.parametrize("missing", ["table", "database"])
def test_missing_table_fails_loudly_every_time(
    mocked: None, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.setenv("GLUE_DATABASE", DATABASE)
    monkeypatch.setenv("GLUE_TABLE", TABLE)
    if missing == "table":
        glue().create_database(DatabaseInput={"Name": DATABASE})
    for _ in range(2):
        with pytest.raises(Exception, match="EntityNotFoundException"):
            handlers.on_object_created(load_event("sqs_s3.json"))
    response = handlers.on_object_created(load_event("batch_operations_v1.json"))
    assert response["results"][0]["resultCode"] == "PermanentFailure"
    assert "EntityNotFoundException" in response["results"][0]["resultString"]


def test_unknown_partition_key_fails_loudly(mocked: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLUE_DATABASE", DATABASE)
    monkeypatch.setenv("GLUE_TABLE", TABLE)
    create_table(glue(), keys=[("dt", "string"), ("team", "string")])
    for _ in range(2):
        with pytest.raises(Exception, match="'team'"):
            handlers.on_object_created(load_event("sqs_s3.json"))


def test_ignored_unpartitionable_and_malformed_succeed_and_are_counted(
    classic: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOURCE_BUCKETS", f"{BUCKET},another")
    trail = "AWSLogs/123456789012/CloudTrail/us-east-1/2022/08/29/x.json.gz"
    # An ALB access log ends in .log.gz like a flow log: S3's suffix filter lets it through.
    alb = (
        "AWSLogs/123456789012/elasticloadbalancing/us-east-1/2022/08/29/"
        "123456789012_elasticloadbalancing_us-east-1_app.web.50dc6c495c0c9188_20220829T0000Z_10.0.0.1_2et2e1mx.log.gz"
    )
    event = sqs_event(
        s3_body(flow_key("2022-08-29")),  # created
        s3_body(trail),  # not a flow log
        s3_body(trail, bucket="foreign"),  # not a flow log either, whatever its bucket
        s3_body(alb, bucket="foreign"),  # nor is a load balancer's log
        s3_body(flow_key("2022-08-29", account="210987654321")),  # outside the table
        s3_body(flow_key("2022-08-29"), bucket="foreign"),  # not an allowed bucket
        "{not json",
        load_event("sqs_s3_test_event.json")["Records"][0]["body"],
    )
    capsys.readouterr()
    response = handlers.on_object_created(event)
    assert response == {"batchItemFailures": []}
    metrics = emitted_metrics(capsys.readouterr().out)
    # Only flow-log files from elsewhere feed the misconfiguration alarm: a shared log-archive
    # bucket's other objects are ignored without a sign of trouble.
    assert metrics == {
        "PartitionsCreated": 1,
        "ObjectsIgnored": 6,
        "ObjectsOutsideTable": 2,
        "RecordsMalformed": 1,
    }


def test_unpartitionable_objects_are_counted_not_retried(
    mocked: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GLUE_DATABASE", DATABASE)
    monkeypatch.setenv("GLUE_TABLE", TABLE)
    keys = [
        ("aws_account_id", "string"),
        ("aws_region", "string"),
        ("year", "string"),
        ("month", "string"),
        ("day", "string"),
        ("hour", "string"),
    ]
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", keys)
    capsys.readouterr()
    response = handlers.on_object_created(sqs_event(s3_body(flow_key("2022-08-29"))))
    assert response == {"batchItemFailures": []}
    assert emitted_metrics(capsys.readouterr().out) == {"ObjectsUnpartitionable": 1}
    assert partitions(glue()) == {}


def test_a_warm_container_makes_no_aws_call_for_known_partitions(setup: str) -> None:
    handlers.on_object_created(load_event("sqs_s3.json"))
    glue_calls, ddb_calls = CallCounter(glue()), CallCounter(dynamodb())
    for _ in range(50):
        assert handlers.on_object_created(load_event("sqs_s3.json")) == {"batchItemFailures": []}
        handlers.on_object_created(load_event("eventbridge_object_created.json"))
    assert glue_calls.total == 0 and ddb_calls.total == 0


def test_cache_saves_glue_calls_in_a_cold_container(classic: None) -> None:
    handlers.on_object_created(load_event("sqs_s3.json"))
    handlers.reset()
    glue_calls, ddb_calls = CallCounter(glue()), CallCounter(dynamodb())
    handlers.on_object_created(load_event("sqs_s3.json"))
    # GetTable, and one page of partitions read to check their values are spelled as their folders
    assert glue_calls.calls == {"GetTable": 1, "GetPartitions": 1}
    assert ddb_calls.calls == {"PutItem": 2}  # one conditional claim each, answered "present"


def test_expired_cache_entries_are_absent(classic: None) -> None:
    handlers.on_object_created(load_event("sns_s3.json"))
    glue().delete_partition(DatabaseName=DATABASE, TableName=TABLE, PartitionValues=["2022-08-29"])
    items = dynamodb().scan(TableName=CACHE)["Items"]
    assert len(items) == 1
    item = items[0] | {"expiration": {"N": str(int(time.time()) - 60)}}  # TTL has not deleted it yet
    dynamodb().put_item(TableName=CACHE, Item=item)
    handlers.reset()
    handlers.on_object_created(load_event("sns_s3.json"))
    assert set(partitions(glue())) == {("2022-08-29",)}


def test_a_recreated_table_never_trusts_old_cache_entries(classic: None) -> None:
    handlers.on_object_created(load_event("sns_s3.json"))
    glue().delete_table(DatabaseName=DATABASE, Name=TABLE)
    time.sleep(1.1)  # CreateTime has one-second resolution
    create_table(glue())
    handlers.reset()
    handlers.on_object_created(load_event("sns_s3.json"))
    assert set(partitions(glue())) == {("2022-08-29",)}


def test_concurrent_invocations_make_one_create_attempt(classic: None) -> None:
    """8 containers see one brand-new partition at once: one create, every record succeeds."""
    counter = CallCounter(glue())
    settings = Settings.from_env()
    lock = threading.Lock()  # DynamoDB conditional writes are atomic; moto's are not thread-safe
    ddb = dynamodb()
    real_put = ddb.put_item

    def atomic_put(**kwargs: Any) -> Any:
        with lock:
            return real_put(**kwargs)

    ddb.put_item = atomic_put  # type: ignore[method-assign]
    containers = [Partitioner(settings, glue(), ddb) for _ in range(8)]
    barrier = threading.Barrier(8)
    attempts: list[int] = []
    from vpcflow_partitioner.envelopes import unwrap

    messages = unwrap(load_event("sqs_sns_s3.json")).messages

    def invoke(partitioner: Partitioner) -> None:
        barrier.wait()
        for attempt in range(1, 6):  # SQS redelivery
            report = partitioner.run(messages, now=time.time())
            if not report.failed:
                attempts.append(attempt)
                return
            time.sleep(0.05)

    threads = [threading.Thread(target=invoke, args=(c,)) for c in containers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(attempts) == 8  # none lost
    assert counter.entries["BatchCreatePartition"] == 1
    assert set(partitions(glue())) == {("2022-08-29",)}


def _claim_item(expiration: float) -> dict[str, Any]:
    from vpcflow_partitioner.cache import item_id
    from vpcflow_partitioner.scheme import PartitionSpec, Scheme

    scheme = Scheme.from_table(glue().get_table(DatabaseName=DATABASE, Name=TABLE)["Table"])
    spec = PartitionSpec(("2022-08-29",), DAY % "29")
    return {
        "id": {"S": item_id(scheme, spec)},
        "status": {"S": "claimed"},
        "claim": {"S": "another-container"},
        "expiration": {"N": str(int(expiration))},
    }


def test_a_live_claim_by_another_invocation_fails_the_record_for_a_retry(classic: None) -> None:
    dynamodb().put_item(TableName=CACHE, Item=_claim_item(time.time() + 120))
    counter = CallCounter(glue())
    response = handlers.on_object_created(load_event("sqs_sns_s3.json"))
    assert len(response["batchItemFailures"]) == 1  # not lost: SQS delivers it again
    assert counter.entries["BatchCreatePartition"] == 0  # and no second create attempt
    item = _claim_item(0) | {"status": {"S": "present"}, "expiration": {"N": str(int(time.time()) + 3600)}}
    dynamodb().put_item(TableName=CACHE, Item=item)  # the other invocation finished
    assert handlers.on_object_created(load_event("sqs_sns_s3.json")) == {"batchItemFailures": []}


def test_a_claim_left_by_a_crashed_invocation_expires(classic: None) -> None:
    dynamodb().put_item(TableName=CACHE, Item=_claim_item(time.time() - 1))
    assert handlers.on_object_created(load_event("sqs_sns_s3.json")) == {"batchItemFailures": []}
    assert set(partitions(glue())) == {("2022-08-29",)}


@pytest.mark.parametrize("context", [None, object(), "not a context"])
def test_any_context_or_none_is_accepted(classic: None, context: Any) -> None:
    assert handlers.on_object_created(load_event("sqs_s3.json"), context) == {"batchItemFailures": []}


def test_a_real_shaped_context_is_used(classic: None) -> None:
    from types import SimpleNamespace

    context = SimpleNamespace(
        function_name="vpcflow-partitioner-prod-on-object-created",
        memory_limit_in_mb=256,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:vpcflow-partitioner-prod-on-object-created",
        aws_request_id="52fdfc07-2182-154f-163f-5f0f9a621d72",
        get_remaining_time_in_millis=lambda: 60_000,
    )
    handlers.on_object_created(load_event("sqs_s3.json"), context)
    keys = handlers.logger.get_current_keys()
    assert keys["function_request_id"] == "52fdfc07-2182-154f-163f-5f0f9a621d72"
    assert keys["function_memory_size"] == 256


def test_1000_events_over_3_partitions_cost_a_handful_of_calls(classic: None) -> None:
    template = load_event("sqs_s3.json")["Records"][0]
    events = []
    for start in range(0, 1000, 10):
        records = []
        for i in range(start, start + 10):
            key = flow_key(f"2022-08-{27 + i % 3}", name=f"{i:08x}")
            records.append(dict(template, messageId=f"m{i}", body=s3_body(key)))
        events.append({"Records": records})
    glue_calls, ddb_calls = CallCounter(glue()), CallCounter(dynamodb())
    for event in events:
        assert handlers.on_object_created(event) == {"batchItemFailures": []}
    assert glue_calls.entries["BatchCreatePartition"] == 3  # one create attempt per partition
    # all three met in the first batch; GetPartitions (one page, MaxResults=25) checks the spelling
    assert glue_calls.calls == {"GetTable": 1, "GetPartitions": 1, "BatchCreatePartition": 1}
    assert ddb_calls.calls == {"PutItem": 3, "BatchWriteItem": 1}  # claim each, mark together
    warm_glue, warm_ddb = CallCounter(glue()), CallCounter(dynamodb())
    for event in events:
        handlers.on_object_created(event)
    assert warm_glue.total == 0 and warm_ddb.total == 0
    assert len(partitions(glue())) == 3


@pytest.mark.parametrize(("tracing", "imported"), [("", False), ("false", False), ("true", True)])
def test_the_xray_sdk_is_imported_only_when_tracing_is_on(tracing: str, imported: bool) -> None:
    import os
    import subprocess
    import sys

    program = (
        "import sys; import vpcflow_partitioner.handlers as h\n"
        "inner = h._on_object_created.__wrapped__  # under the Logger's decorator\n"
        "print('aws_xray_sdk' in sys.modules, hasattr(inner, '__wrapped__'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRACING"} | {"TRACING": tracing}
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, check=True
    )
    xray, wrapped = done.stdout.split()
    assert xray == str(imported)
    # traced: the Tracer's wrapper sits between the Logger's and ours; untraced: ours directly
    assert wrapped == str(imported)


def test_settings_are_read_once_per_container(classic: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert handlers.on_object_created(load_event("sqs_s3.json")) == {"batchItemFailures": []}
    monkeypatch.setenv("GLUE_TABLE", "no_such_table")  # Lambda never changes a running container's env
    assert handlers.on_object_created(load_event("sqs_s3.json")) == {"batchItemFailures": []}
    handlers.reset()  # a new container reads the new configuration
    with pytest.raises(Exception, match="EntityNotFoundException"):
        handlers.on_object_created(load_event("sqs_s3.json"))


def test_an_invocation_of_cache_hits_alone_prints_no_metrics_document(
    classic: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    handlers.on_object_created(load_event("sqs_s3.json"))  # creates two partitions: a document
    assert emitted_metrics(capsys.readouterr().out) == {"PartitionsCreated": 2}
    for _ in range(5):
        handlers.on_object_created(load_event("sqs_s3.json"))
    assert '"_aws"' not in capsys.readouterr().out  # warm, cache hits only: nothing printed
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 61)  # CACHE_HITS_METRICS_SECONDS: 60
    handlers.on_object_created(load_event("sqs_s3.json"))
    assert emitted_metrics(capsys.readouterr().out) == {"CacheHits": 12}  # all of them, a minute on
    handlers.on_object_created(json.loads(s3_body(flow_key("2022-08-31"))))
    assert emitted_metrics(capsys.readouterr().out) == {"PartitionsCreated": 1}


def test_cache_hits_metrics_seconds_zero_publishes_every_invocation(
    classic: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CACHE_HITS_METRICS_SECONDS", "0")
    handlers.on_object_created(load_event("sqs_s3.json"))
    capsys.readouterr()
    handlers.on_object_created(load_event("sqs_s3.json"))
    assert emitted_metrics(capsys.readouterr().out) == {"CacheHits": 2}


def test_a_record_whose_key_is_not_a_string_is_malformed_and_its_neighbours_go_on(
    classic: None, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = json.loads(s3_body(flow_key("2022-08-29")))
    broken["Records"][0]["s3"]["object"]["key"] = ["not", "a", "string"]
    event = sqs_event(json.dumps(broken), s3_body(flow_key("2022-08-30")))
    capsys.readouterr()
    assert handlers.on_object_created(event) == {"batchItemFailures": []}
    assert emitted_metrics(capsys.readouterr().out) == {"RecordsMalformed": 1, "PartitionsCreated": 1}


def test_a_key_ending_in_a_newline_is_no_flow_log(classic: None, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert handlers.on_object_created(json.loads(s3_body(flow_key("2022-08-29") + "\n"))) == {
        "messages": 1,
        "ObjectsIgnored": 1,
    }
    assert partitions(glue()) == {}


def test_the_plan_memory_keeps_its_older_plans_when_full(classic: None) -> None:
    from vpcflow_partitioner import pipeline

    (partitioner,) = handlers._fleet(handlers._settings()).partitioners
    scheme = partitioner.scheme()
    folders = [flow_key(f"2022-08-{d:02d}", hour=f"{h:02d}") for d in range(1, 29) for h in range(24)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline, "_PLAN_MEMORY", 100)
        for key in folders[:150]:  # more folders than it keeps
            partitioner.plan_object(scheme, BUCKET, key)
        assert len(partitioner._plans) == 100
        assert (BUCKET, folders[0].rpartition("/")[0], False) in partitioner._plans  # the first ones stay


def test_a_table_at_its_partition_quota_says_how_to_get_out(classic: None) -> None:
    from vpcflow_partitioner.scheme import ConfigurationError

    def refuse(params: dict[str, Any], **_: Any) -> Any:
        # Glue answers 200 with the entry in Errors (per-partition), or fails the whole call.
        body = json.loads(params["body"])
        return helpers.HttpResponse(), {
            "Errors": [
                {
                    "PartitionValues": p["Values"],
                    "ErrorDetail": {
                        "ErrorCode": "ResourceNumberLimitExceededException",
                        "ErrorMessage": "quota",
                    },
                }
                for p in body["PartitionInputList"]
            ],
            "ResponseMetadata": {"HTTPStatusCode": 200},
        }

    client = glue()
    client.meta.events.register_first("before-call.glue.BatchCreatePartition", refuse)
    with pytest.raises(TransientError, match=r"partitions-per-table quota: split it \(docs/SCALE.md\)"):
        handlers.on_object_created(json.loads(s3_body(flow_key("2022-08-01"))))
    client.meta.events.unregister("before-call.glue.BatchCreatePartition", refuse)
    inject_error(client, "BatchCreatePartition", "ResourceNumberLimitExceededException")
    with pytest.raises(ConfigurationError, match="ResourceNumberLimitExceededException"):  # no retry helps
        handlers.on_object_created(json.loads(s3_body(flow_key("2022-08-02"))))
    assert partitions(client) == {}
