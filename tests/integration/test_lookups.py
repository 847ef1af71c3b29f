"""How a partition is looked up before it is created, on moto: the DynamoDB cache (claims,
read-first, unprocessed keys, errors) and, without a cache, Glue's BatchGetPartition.

Each test says what a user sees: records acked or failed, partitions in Glue, the AWS calls
made, the counts reported.
"""

from __future__ import annotations

from typing import Any

import helpers
import pytest
from helpers import (
    ACCOUNT,
    CLASSIC_LOCATION,
    DATABASE,
    TABLE,
    CallCounter,
    change_table,
    create_table,
    partitions,
)
from vpcflow_partitioner import aws
from vpcflow_partitioner.cache import item_id
from vpcflow_partitioner.config import Settings
from vpcflow_partitioner.envelopes import Message, ObjectRef
from vpcflow_partitioner.pipeline import Partitioner
from vpcflow_partitioner.scheme import ConfigurationError, PartitionSpec, Scheme

CACHE = "vpcflow-partitioner-cache"
BUCKET = "example-flow-logs"
NOW = 1_700_000_000.0
DAYS = [f"2022-08-{d:02d}" for d in range(21, 31)]


def glue() -> Any:
    return aws.client("glue", "", "us-east-1")


def dynamodb() -> Any:
    return aws.client("dynamodb", "", "us-east-1")


@pytest.fixture
def env(mocked: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLUE_DATABASE", DATABASE)
    monkeypatch.setenv("GLUE_TABLE", TABLE)
    create_table(glue())


@pytest.fixture
def cached(env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_TABLE", CACHE)
    helpers.create_cache(dynamodb(), CACHE)


def key(day: str) -> str:
    folder = f"AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/{day.replace('-', '/')}/"
    return f"{folder}{ACCOUNT}_vpcflowlogs_us-east-1_fl-1_{day.replace('-', '')}T0005Z_a.log.gz"


def messages(*days: str) -> list[Message]:
    return [Message(f"m{i}", (ObjectRef(BUCKET, key(d)),)) for i, d in enumerate(days)]


def folder(day: str) -> str:
    return f"{CLASSIC_LOCATION}{day.replace('-', '/')}/"


def container(sleeps: list[float] | None = None, sleep: Any = None) -> Partitioner:
    """A cold container, its sleeps recorded instead of slept."""

    def record(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)
        if sleep is not None:
            sleep(seconds)

    return Partitioner(Settings.from_env(), glue(), dynamodb(), sleep=record)


def spec(day: str) -> PartitionSpec:
    return PartitionSpec((day,), folder(day))


def cache_id(day: str) -> str:
    return item_id(Scheme.from_table(glue().get_table(DatabaseName=DATABASE, Name=TABLE)["Table"]), spec(day))


def put_item(day: str, status: str, expiration: float, claim: str = "another-container") -> None:
    item = {
        "id": {"S": cache_id(day)},
        "status": {"S": status},
        "expiration": {"N": str(int(expiration))},
        "location": {"S": folder(day)},
    }
    if status == "claimed":
        item["claim"] = {"S": claim}
    dynamodb().put_item(TableName=CACHE, Item=item)


def items() -> dict[str, dict[str, Any]]:
    return {i["id"]["S"]: i for i in dynamodb().scan(TableName=CACHE)["Items"]}


# ---------------------------------------------------------------- the cache: read first, or claim each


@pytest.mark.parametrize("count", [1, 3, 4, 10])
def test_a_cold_container_asks_the_cache_once_for_many_known_partitions(cached: None, count: int) -> None:
    container().run(messages(*DAYS[:count]), NOW)
    ddb = CallCounter(dynamodb())
    glue_calls = CallCounter(glue())
    report = container().run(messages(*DAYS[:count]), NOW + 60)
    assert not report.failed
    assert report.metrics() == {"CacheHits": count}
    # A claim each (answered "present") for a few; one BatchGetItem for more than three.
    assert ddb.calls == ({"PutItem": count} if count <= 3 else {"BatchGetItem": 1})
    assert glue_calls.entries["BatchCreatePartition"] == 0


def test_read_first_then_claims_only_the_partitions_the_cache_does_not_have(cached: None) -> None:
    container().run(messages(*DAYS[:4]), NOW)
    ddb = CallCounter(dynamodb())
    report = container().run(messages(*DAYS[:6]), NOW + 60)
    assert not report.failed
    assert report.metrics() == {"CacheHits": 4, "PartitionsCreated": 2}
    assert ddb.calls == {"BatchGetItem": 1, "PutItem": 2, "BatchWriteItem": 1}
    assert set(partitions(glue())) == {(d,) for d in DAYS[:6]}


def _unprocess(times: int) -> list[int]:
    """The next `times` BatchGetItem answers carry every key in UnprocessedKeys instead."""
    left = [times]

    def move(parsed: dict[str, Any], **_: Any) -> None:
        if left[0] <= 0:
            return
        left[0] -= 1
        for table, found in (parsed.get("Responses") or {}).items():
            keys = [{"id": i["id"]} for i in found]
            parsed["Responses"][table] = []
            parsed.setdefault("UnprocessedKeys", {})[table] = {"Keys": keys, "ConsistentRead": True}

    dynamodb().meta.events.register("after-call.dynamodb.BatchGetItem", move)
    return left


def test_unprocessed_cache_keys_are_asked_again(cached: None) -> None:
    container().run(messages(*DAYS[:5]), NOW)
    _unprocess(times=2)
    ddb, glue_calls = CallCounter(dynamodb()), CallCounter(glue())
    sleeps: list[float] = []
    report = container(sleeps).run(messages(*DAYS[:5]), NOW + 60)
    assert not report.failed and report.metrics() == {"CacheHits": 5}
    assert ddb.calls == {"BatchGetItem": 3}
    assert glue_calls.entries["BatchCreatePartition"] == 0
    assert len(sleeps) == 2 and all(0 < s <= 3.0 for s in sleeps)  # backed off before each retry


def test_cache_keys_never_processed_fail_the_records_without_a_create(cached: None) -> None:
    container().run(messages(*DAYS[:5]), NOW)
    _unprocess(times=10**9)
    ddb, glue_calls = CallCounter(dynamodb()), CallCounter(glue())
    report = container([]).run(messages(*DAYS[:5]), NOW + 60)
    assert len(report.failed) == 5 and "unprocessed" in report.failed[0].detail
    assert ddb.calls["BatchGetItem"] == 5 and glue_calls.entries["BatchCreatePartition"] == 0
    assert report.metrics() == {"RecordsFailed": 5}


def _unprocessed_writes(times: int) -> list[int]:
    """The next `times` BatchWriteItem calls write nothing and hand every item back."""
    ddb = dynamodb()
    real = ddb.batch_write_item
    calls: list[int] = []

    def write(**kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) <= times:
            return {"UnprocessedItems": kwargs["RequestItems"]}
        return real(**kwargs)

    ddb.batch_write_item = write  # type: ignore[method-assign]
    return calls


def test_a_cache_that_leaves_writes_unprocessed_is_asked_again(cached: None) -> None:
    calls = _unprocessed_writes(times=1)
    report = container([]).run(messages(*DAYS[:2]), NOW)
    assert not report.failed and report.metrics() == {"PartitionsCreated": 2}
    assert len(calls) == 2
    assert sorted(i["status"]["S"] for i in items().values()) == ["present", "present"]


def test_a_cache_that_never_takes_the_mark_still_acks_what_glue_created(cached: None) -> None:
    calls = _unprocessed_writes(times=10**9)
    report = container([]).run(messages(DAYS[0]), NOW)
    assert not report.failed and set(partitions(glue())) == {(DAYS[0],)}
    assert len(calls) == 5  # tried, then left: Glue has it, a later lookup merely costs more


# ---------------------------------------------------------------- entries: how long they hold


def test_cache_entries_last_cache_ttl_days(cached: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_TTL_DAYS", "7")
    container().run(messages(DAYS[0]), NOW)
    [item] = items().values()
    assert item["status"]["S"] == "present" and item["location"]["S"] == folder(DAYS[0])
    assert int(item["expiration"]["N"]) == int(NOW) + 7 * 86400
    # Past its expiration (TTL deletes days late) the entry is absent: Glue is asked again.
    glue_calls = CallCounter(glue())
    container().run(messages(DAYS[0]), NOW + 7 * 86400 + 1)
    assert glue_calls.calls["BatchCreatePartition"] == 1
    assert container().run(messages(DAYS[0]), NOW + 7 * 86400 - 1).metrics() == {"CacheHits": 1}


def test_a_claim_held_by_a_crashed_invocation_blocks_for_minutes_not_longer(cached: None) -> None:
    put_item(DAYS[0], "claimed", NOW + 180)
    glue_calls = CallCounter(glue())
    sleeps: list[float] = []
    blocked = container(sleeps).run(messages(DAYS[0]), NOW + 170)
    assert len(blocked.failed) == 1 and "another invocation" in blocked.failed[0].detail
    assert sum(sleeps) < 2  # it looked again briefly, then failed the record back for a retry
    assert glue_calls.entries["BatchCreatePartition"] == 0
    assert not container().run(messages(DAYS[0]), NOW + 181).failed
    assert set(partitions(glue())) == {(DAYS[0],)}


def test_our_claim_lasts_long_enough_to_keep_others_out_while_we_create(cached: None) -> None:
    """A claim taken now keeps a second container out for the length of a create with retries."""
    first = container()
    assert first.cache is not None
    states = first.cache.claim({cache_id(DAYS[0]): folder(DAYS[0])}, NOW)
    assert [e.state for e in states.values()] == ["claimed"]
    second = container([])
    assert second.run(messages(DAYS[0]), NOW + 170).failed  # still ours
    assert not container().run(messages(DAYS[0]), NOW + 200).failed  # expired: taken over


# ---------------------------------------------------------------- another invocation is creating it


def test_a_busy_partition_that_becomes_present_during_the_waits_is_acked(cached: None) -> None:
    put_item(DAYS[0], "claimed", NOW + 120)
    glue_calls = CallCounter(glue())
    sleeps: list[float] = []

    def other_finishes(seconds: float) -> None:
        put_item(DAYS[0], "present", NOW + 3600)

    report = container(sleeps, other_finishes).run(messages(DAYS[0]), NOW)
    assert not report.failed and report.metrics() == {"CacheHits": 1}
    assert report.partitions("cached") == [spec(DAYS[0])]
    assert len(sleeps) == 1  # no more waiting once it is there
    assert glue_calls.entries["BatchCreatePartition"] == 0  # one create attempt, the other's


def test_a_busy_partition_is_waited_for_then_failed_back(cached: None) -> None:
    put_item(DAYS[0], "claimed", NOW + 120)
    sleeps: list[float] = []
    report = container(sleeps).run(messages(DAYS[0], DAYS[1]), NOW)
    assert [r.id for r in report.failed] == ["m0"]  # the other partition is not held up
    assert "being created by another invocation" in report.failed[0].detail
    assert len(sleeps) == 3 and sum(sleeps) < 2
    assert report.metrics() == {"PartitionsCreated": 1, "RecordsFailed": 1}


# ---------------------------------------------------------------- DynamoDB errors: retry or fail loudly


def test_a_throttled_claim_fails_the_record_at_once_and_creates_nothing(cached: None) -> None:
    helpers.inject_error(dynamodb(), "PutItem", "ProvisionedThroughputExceededException")
    glue_calls = CallCounter(glue())
    sleeps: list[float] = []
    report = container(sleeps).run(messages(DAYS[0]), NOW)
    assert len(report.failed) == 1 and "ProvisionedThroughputExceededException" in report.failed[0].detail
    assert sleeps == []  # not mistaken for another invocation's claim: no waiting
    assert glue_calls.entries["BatchCreatePartition"] == 0 and partitions(glue()) == {}


@pytest.mark.parametrize("operation", ["PutItem", "BatchGetItem"])
def test_a_cache_the_function_may_not_use_fails_loudly(cached: None, operation: str) -> None:
    helpers.inject_error(dynamodb(), operation, "AccessDeniedException")
    glue_calls = CallCounter(glue())
    with pytest.raises(ConfigurationError, match="AccessDeniedException"):
        container([]).run(messages(*DAYS[:5]), NOW)  # five: read first, so BatchGetItem too
    assert glue_calls.entries["BatchCreatePartition"] == 0


def test_a_throttled_cache_read_fails_the_records_for_a_retry(cached: None) -> None:
    helpers.inject_error(dynamodb(), "BatchGetItem", "ThrottlingException")
    report = container([]).run(messages(*DAYS[:5]), NOW)
    assert len(report.failed) == 5 and "ThrottlingException" in report.failed[0].detail
    assert partitions(glue()) == {}


def test_a_claim_whose_create_failed_is_released_for_the_retry(cached: None) -> None:
    helpers.inject_error(glue(), "BatchCreatePartition", "ThrottlingException", times=1)
    assert container([]).run(messages(DAYS[0]), NOW).failed
    assert items() == {}  # released, not left to expire
    sleeps: list[float] = []
    assert not container(sleeps).run(messages(DAYS[0]), NOW + 1).failed and sleeps == []


# ---------------------------------------------------------------- no cache: Glue's BatchGetPartition


def test_without_a_cache_existing_partitions_are_found_not_created_again(env: None) -> None:
    container().run(messages(*DAYS[:3]), NOW)
    glue_calls = CallCounter(glue())
    report = container().run(messages(*DAYS[:3]), NOW)
    assert not report.failed and report.metrics() == {"PartitionsAlreadyPresent": 3}
    assert glue_calls.calls["BatchGetPartition"] == 1 and glue_calls.calls["BatchCreatePartition"] == 0


def test_without_a_cache_unprocessed_glue_keys_are_asked_again(env: None) -> None:
    container().run(messages(*DAYS[:3]), NOW)
    left = [1]

    def move_one(parsed: dict[str, Any], **_: Any) -> None:
        if left[0] and parsed.get("Partitions"):
            left[0] -= 1
            first = parsed["Partitions"].pop(0)
            parsed["UnprocessedKeys"] = [{"Values": first["Values"]}]

    glue().meta.events.register("after-call.glue.BatchGetPartition", move_one)
    glue_calls = CallCounter(glue())
    sleeps: list[float] = []
    report = container(sleeps).run(messages(*DAYS[:3]), NOW)
    assert not report.failed and report.metrics() == {"PartitionsAlreadyPresent": 3}
    assert glue_calls.calls["BatchGetPartition"] == 2 and glue_calls.calls["BatchCreatePartition"] == 0
    assert len(sleeps) == 1 and 0 < sleeps[0] <= 3.0


def test_without_a_cache_glue_keys_never_processed_fail_the_records(env: None) -> None:
    container().run(messages(*DAYS[:2]), NOW)

    def move_all(parsed: dict[str, Any], **_: Any) -> None:
        parsed["UnprocessedKeys"] = [{"Values": p["Values"]} for p in parsed.get("Partitions") or []] or [
            {"Values": ["x"]}
        ]
        parsed["Partitions"] = []

    glue().meta.events.register("after-call.glue.BatchGetPartition", move_all)
    glue_calls = CallCounter(glue())
    report = container([]).run(messages(*DAYS[:2]), NOW)
    assert len(report.failed) == 2 and "unprocessed" in report.failed[0].detail
    assert glue_calls.calls["BatchGetPartition"] == 5 and glue_calls.calls["BatchCreatePartition"] == 0


def test_a_throttled_glue_lookup_fails_the_records_and_creates_nothing(env: None) -> None:
    helpers.inject_error(glue(), "BatchGetPartition", "ThrottlingException")
    glue_calls = CallCounter(glue())
    report = container().run(messages(*DAYS[:2]), NOW)
    assert len(report.failed) == 2 and report.metrics() == {"RecordsFailed": 2}
    assert glue_calls.calls["BatchCreatePartition"] == 0


def test_recovery_asks_glue_even_when_the_cache_says_present(cached: None) -> None:
    container().run(messages(DAYS[0]), NOW)
    glue().delete_partition(DatabaseName=DATABASE, TableName=TABLE, PartitionValues=[DAYS[0]])
    report = container().run(messages(DAYS[0]), NOW, use_cache=False)
    assert report.metrics() == {"PartitionsCreated": 1} and set(partitions(glue())) == {(DAYS[0],)}


def test_a_dry_run_says_what_it_would_create_and_writes_nothing(cached: None) -> None:
    container().run(messages(DAYS[0]), NOW)
    ddb = CallCounter(dynamodb())
    report = container().run(messages(*DAYS[:3]), NOW, dry_run=True)
    assert report.partitions("would create") == [spec(DAYS[1]), spec(DAYS[2])]
    assert report.partitions("exists") == [spec(DAYS[0])]
    assert set(partitions(glue())) == {(DAYS[0],)} and ddb.total == 0


def test_cache_reads_are_strongly_consistent(cached: None) -> None:
    """A `present` written a moment ago by another container must be seen: no stale read."""
    requests: list[dict[str, Any]] = []
    dynamodb().meta.events.register(
        "before-parameter-build.dynamodb.BatchGetItem", lambda params, **_: requests.append(params)
    )
    container().run(messages(*DAYS[:5]), NOW)
    container().run(messages(*DAYS[:5]), NOW + 1)
    assert requests and all(r["RequestItems"][CACHE]["ConsistentRead"] is True for r in requests)
    assert all(len(r["RequestItems"][CACHE]["Keys"]) <= 100 for r in requests)


def test_an_unreadable_cache_entry_is_treated_as_held_by_another_invocation(cached: None) -> None:
    """An item without an expiration (written by hand) never expires the claim condition: the
    record waits, then fails back for a retry rather than creating over it."""
    dynamodb().put_item(TableName=CACHE, Item={"id": {"S": cache_id(DAYS[0])}, "status": {"S": "present"}})
    sleeps: list[float] = []
    report = container(sleeps).run(messages(DAYS[0]), NOW)
    assert len(report.failed) == 1 and "being created by another invocation" in report.failed[0].detail
    assert len(sleeps) == 3 and partitions(glue()) == {}


def test_claims_are_released_when_the_table_cannot_be_read_before_the_create(cached: None) -> None:
    """A warm container reads the table again before creating (its columns may have changed);
    if that read fails, the record fails and our claim goes, so the retry need not wait."""
    warm = container([])
    warm.run(messages(DAYS[0]), NOW)
    helpers.inject_error(glue(), "GetTable", "ThrottlingException", times=1)
    report = warm.run(messages(DAYS[1]), NOW + 1)
    assert len(report.failed) == 1 and "ThrottlingException" in report.failed[0].detail
    assert [i["status"]["S"] for i in items().values()] == ["present"]  # DAYS[0]'s; no claim left
    sleeps: list[float] = []
    assert not container(sleeps).run(messages(DAYS[1]), NOW + 2).failed and sleeps == []


def test_the_cache_is_marked_in_batches_dynamodb_accepts(cached: None) -> None:
    """BatchWriteItem takes at most 25 requests (moto takes more): 30 new partitions, 2 writes."""
    requests: list[int] = []
    dynamodb().meta.events.register(
        "before-parameter-build.dynamodb.BatchWriteItem",
        lambda params, **_: requests.append(len(params["RequestItems"][CACHE])),
    )
    days = [f"2022-{m:02d}-{d:02d}" for m in (8, 9) for d in range(1, 16)]
    report = container([]).run(messages(*days), NOW)
    assert report.metrics() == {"PartitionsCreated": 30} and requests == [25, 5]
    assert len(items()) == 30


def test_a_table_updated_between_plan_and_create_is_planned_again_with_the_cache(cached: None) -> None:
    """The warm container's claims for the old plan are released, the new plan claims again, and
    the partition gets the columns the table has now."""
    warm = container([])
    warm.run(messages(DAYS[0]), NOW)
    table = glue().get_table(DatabaseName=DATABASE, Name=TABLE)["Table"]
    columns = [*table["StorageDescriptor"]["Columns"], {"Name": "flow_direction", "Type": "string"}]
    change_table(glue(), DATABASE, TABLE, {"Columns": columns})
    report = warm.run(messages(DAYS[1]), NOW + 1)
    assert not report.failed and report.metrics() == {"PartitionsCreated": 1}
    partition = glue().get_partition(DatabaseName=DATABASE, TableName=TABLE, PartitionValues=[DAYS[1]])
    assert partition["Partition"]["StorageDescriptor"]["Columns"] == columns
    assert sorted(i["status"]["S"] for i in items().values()) == ["present", "present"]
