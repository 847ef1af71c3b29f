"""Never lose or hide a partition: prune, walk, collisions, stale tables, fail-closed Glue/DynamoDB.

Each test reproduces a defect found in review (issue 9) with moto and the real entry points.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import helpers
import pytest
from helpers import (
    BUCKET,
    DATABASE,
    TABLE,
    TEXT_SD,
    CallCounter,
    change_table,
    create_table,
    emitted_metrics,
    failure,
    partitions,
)
from vpcflow_partitioner import aws, handlers
from vpcflow_partitioner.ops.cli import main
from vpcflow_partitioner.ops.synthetic import object_key

CACHE = "vpcflow-partitioner-cache"
ACCOUNT = "111111111111"
REGION = "us-east-1"
MULTI_KEYS = [
    ("aws_account_id", "string"),
    ("aws_region", "string"),
    ("year", "string"),
    ("month", "string"),
    ("day", "string"),
]
DAY = datetime(2024, 2, 10, 0, 5, tzinfo=UTC)


def glue() -> Any:
    return aws.client("glue", "", "us-east-1")


def s3() -> Any:
    return aws.client("s3", "", "us-east-1")


def dynamodb() -> Any:
    return aws.client("dynamodb", "", "us-east-1")


def create_cache() -> None:
    helpers.create_cache(dynamodb(), CACHE)


@pytest.fixture
def env(mocked: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLUE_DATABASE", DATABASE)
    monkeypatch.setenv("GLUE_TABLE", TABLE)
    s3().create_bucket(Bucket=BUCKET)


@pytest.fixture
def cached(env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_TABLE", CACHE)
    create_cache()


def named(items: list[Any]) -> list[str]:
    """Partitions of an audit report (value lists, or objects with values) as "a/b/c" names."""
    return ["/".join(i["values"] if isinstance(i, dict) else i) for i in items]


def reason(report: dict[str, Any], values: tuple[str, ...]) -> str:
    """Why an audit could not repair the partition of `values`."""
    return next(f["reason"] for f in report["failed"] if tuple(f["values"]) == values)


def cli_json(out: str) -> Any:
    """The command's JSON report, after any metrics lines a Lambda run in the same process printed."""
    lines = out.splitlines()
    return json.loads("\n".join(lines[max(i for i, line in enumerate(lines) if line == "{") :]))


def put(key: str) -> str:
    s3().put_object(Bucket=BUCKET, Key=key, Body=b"x")
    return key


def notify(*keys: str, message_ids: list[str] | None = None) -> dict[str, Any]:
    """An SQS event, one message per key, each carrying the S3 notification S3 would send."""
    from urllib.parse import quote_plus

    records = []
    for i, key in enumerate(keys):
        body = {
            "Records": [
                {
                    "eventVersion": "2.1",
                    "eventSource": "aws:s3",
                    "awsRegion": "us-east-1",
                    "eventTime": "2024-02-10T00:06:00.000Z",
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "s3SchemaVersion": "1.0",
                        "bucket": {"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"},
                        "object": {"key": quote_plus(key, safe="/"), "size": 1},
                    },
                }
            ]
        }
        records.append(
            {
                "messageId": (message_ids or [f"m{j}" for j in range(len(keys))])[i],
                "receiptHandle": "r",
                "body": json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": records}


def key_at(
    day: datetime, prefix: str = "", account: str = ACCOUNT, hive: bool = False, minute: int = 5
) -> str:
    return object_key(account, REGION, day.replace(minute=minute), prefix=prefix, hive=hive)


def multi_values(day: datetime, account: str = ACCOUNT) -> tuple[str, ...]:
    return (account, REGION, f"{day:%Y}", f"{day:%m}", f"{day:%d}")


def an_emptied_day(by: str = "lambda") -> str:
    """A table over AWSLogs/ with two days partitioned (by the Lambda, or by backfill), the
    first of which then lost its only object: a prune candidate. Returns that object's key."""
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    gone, live = put(key_at(DAY)), put(key_at(DAY + timedelta(days=1)))
    if by == "lambda":
        assert handlers.on_object_created(notify(gone, live)) == {"batchItemFailures": []}
    else:
        assert main(["backfill"]) == 0
    s3().delete_object(Bucket=BUCKET, Key=gone)
    return gone


# ---------------------------------------------------------------- 1. prune races the Lambda


def test_prune_never_deletes_a_partition_the_lambda_creates_during_the_walk(env: None) -> None:
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    for d in range(3):
        put(key_at(DAY + timedelta(days=d)))
    assert main(["backfill"]) == 0
    today = DAY + timedelta(days=30)
    fired: list[int] = []

    def lambda_runs_mid_walk(params: dict[str, Any], **_: Any) -> None:
        # The walk's first probe (no delimiter): every folder is listed already. A new day
        # arrives and the Lambda partitions it.
        if not fired and "Delimiter" not in params:
            fired.append(1)
            handlers.on_object_created(notify(put(key_at(today))))

    s3().meta.events.register("before-parameter-build.s3.ListObjectsV2", lambda_runs_mid_walk)
    # Glue was read before the walk: the new partition is neither an orphan nor any drift.
    assert main(["audit", "--fix", "--prune", "--no-cache", "--yes"]) == 0
    assert fired
    assert multi_values(today) in partitions(glue())


def test_prune_deletes_the_cache_entry_so_a_new_object_brings_the_partition_back(cached: None) -> None:
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    key = put(key_at(DAY))
    assert handlers.on_object_created(notify(key)) == {"batchItemFailures": []}
    s3().delete_object(Bucket=BUCKET, Key=key)  # the folder empties (lifecycle rule, a mistake)
    put(key_at(DAY + timedelta(days=1)))  # another folder keeps the walk from being empty
    assert main(["audit", "--fix", "--prune", "--yes"]) == 0
    assert multi_values(DAY) not in partitions(glue())
    assert not [
        i
        for i in dynamodb().scan(TableName=CACHE)["Items"]
        if "2024" in i["id"]["S"] and json.loads(i["id"]["S"])[-1] == "10"
    ]
    handlers.reset()  # a cold container: only the DynamoDB cache could say "present"
    assert handlers.on_object_created(notify(put(key_at(DAY, minute=10)))) == {"batchItemFailures": []}
    assert multi_values(DAY) in partitions(glue())


def test_prune_lists_the_partitions_own_location_not_the_walks_idea_of_it(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    put(key_at(DAY))
    # A partition the walk cannot see as a folder of its own (stored elsewhere) but whose
    # Location holds flow logs: never "provably empty".
    elsewhere = f"s3://{BUCKET}/archive/AWSLogs/{ACCOUNT}/vpcflowlogs/{REGION}/2023/01/01/"
    put(
        f"archive/AWSLogs/{ACCOUNT}/vpcflowlogs/{REGION}/2023/01/01/{ACCOUNT}_vpcflowlogs_{REGION}_fl-1_20230101T0005Z_a.log.gz"
    )
    glue().create_partition(
        DatabaseName=DATABASE,
        TableName=TABLE,
        PartitionInput={
            "Values": [ACCOUNT, REGION, "2023", "01", "01"],
            "StorageDescriptor": {**TEXT_SD, "Location": elsewhere},
        },
    )
    capsys.readouterr()
    assert main(["audit", "--fix", "--prune", "--no-cache", "--yes", "--json"]) == 3  # reported, never pruned
    report = json.loads(capsys.readouterr().out)
    assert report["unreachable"] == [
        {
            "values": [ACCOUNT, REGION, "2023", "01", "01"],
            "location": elsewhere,
            "reason": "its Location holds flow logs the walk did not reach",
        }
    ]
    assert (ACCOUNT, REGION, "2023", "01", "01") in partitions(glue())


def test_prune_refuses_when_the_walk_finds_no_folder_but_the_table_has_partitions(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    key = put(key_at(DAY))
    assert main(["backfill"]) == 0
    s3().delete_object(Bucket=BUCKET, Key=key)
    capsys.readouterr()
    assert main(["audit", "--prune", "--no-cache", "--yes"]) == 1
    err = capsys.readouterr().err
    assert "refus" in err and "Traceback" not in err
    assert multi_values(DAY) in partitions(glue())


def test_prune_needs_yes_off_a_terminal_and_dry_run_lists_without_deleting(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    an_emptied_day(by="backfill")
    capsys.readouterr()
    assert main(["audit", "--prune"]) == 2  # no terminal to confirm on, no --yes
    assert "--yes" in capsys.readouterr().err
    assert main(["audit", "--prune", "--dry-run", "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert named(report["would_prune"]) == ["/".join(multi_values(DAY))]
    assert multi_values(DAY) in partitions(glue())
    assert main(["audit", "--prune", "--no-cache", "--yes"]) == 0
    assert multi_values(DAY) not in partitions(glue())


# ---------------------------------------------------------------- 2. the walk sees everything


@pytest.mark.parametrize(
    ("location", "prefix"),
    [
        (f"s3://{BUCKET}/", "org/prod/network/vpc/"),  # deeper than the old search limit
        (f"s3://{BUCKET}/", "a/b/c/d/e/f/g/"),
        (f"s3://{BUCKET}/AWSLogs/", "AWSLogs/"),  # a copied AWSLogs/AWSLogs/... tree
        (f"s3://{BUCKET}/", "/"),  # a "/" prefix gives a double slash
    ],
    ids=["depth-4", "depth-7", "awslogs-in-awslogs", "double-slash"],
)
def test_backfill_and_prune_see_every_folder_the_lambda_partitions(
    env: None, location: str, prefix: str
) -> None:
    create_table(glue(), location, MULTI_KEYS)
    keys = [put(key_at(DAY + timedelta(days=d), prefix=prefix)) for d in range(3)]
    handlers.on_object_created(notify(keys[0]))
    lambda_partitions = partitions(glue())
    assert len(lambda_partitions) == 1
    assert main(["backfill"]) == 0
    got = partitions(glue())
    assert len(got) == 3
    assert got.items() >= lambda_partitions.items()  # the walk agrees with the Lambda
    assert main(["audit", "--fix", "--prune", "--no-cache", "--yes"]) == 0
    assert partitions(glue()) == got


# ---------------------------------------------------------------- 3. collisions are never acked


def test_two_free_prefixes_that_map_to_one_partition_are_a_collision_not_acked(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue(), f"s3://{BUCKET}/", MULTI_KEYS)
    first = put(key_at(DAY, prefix="vpc-aaa/"))
    second = put(key_at(DAY, prefix="vpc-bbb/"))
    capsys.readouterr()
    assert handlers.on_object_created(notify(first)) == {"batchItemFailures": []}
    assert handlers.on_object_created(notify(second)) == {"batchItemFailures": []}  # warm container
    handlers.reset()
    assert handlers.on_object_created(notify(second)) == {"batchItemFailures": []}  # cold: Glue says exists
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics.get("ObjectsUnpartitionable") == 2
    assert metrics.get("PartitionsCreated") == 1
    assert partitions(glue()) == {
        multi_values(DAY): f"s3://{BUCKET}/vpc-aaa/{key_at(DAY).rsplit('/', 1)[0]}/"
    }


@pytest.mark.parametrize("cache", [False, True], ids=["glue-lookup", "dynamodb-cache"])
def test_plain_and_hive_folders_of_one_account_collide(
    env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], cache: bool
) -> None:
    if cache:
        monkeypatch.setenv("CACHE_TABLE", CACHE)
        create_cache()
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    plain = put(key_at(DAY))
    hive = put(key_at(DAY, hive=True))
    assert handlers.on_object_created(notify(plain)) == {"batchItemFailures": []}
    handlers.reset()  # another container: it must learn the folder from the cache or from Glue
    capsys.readouterr()
    assert handlers.on_object_created(notify(hive)) == {"batchItemFailures": []}
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["ObjectsUnpartitionable"] == 1 and "PartitionsCreated" not in metrics
    assert list(partitions(glue()).values()) == [f"s3://{BUCKET}/{plain.rsplit('/', 1)[0]}/"]


def test_a_colliding_pair_among_many_unknown_partitions_fails_nothing(
    cached: None, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue(), f"s3://{BUCKET}/", MULTI_KEYS)
    keys = [put(key_at(DAY + timedelta(days=d), prefix="vpc-aaa/")) for d in range(4)]
    keys.append(put(key_at(DAY, prefix="vpc-bbb/")))  # collides with the first
    capsys.readouterr()
    assert handlers.on_object_created(notify(*keys)) == {"batchItemFailures": []}
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics == {"PartitionsCreated": 4, "ObjectsUnpartitionable": 1}
    assert all("/vpc-aaa/" in location for location in partitions(glue()).values())


def test_audit_lists_collisions_and_folders_the_table_cannot_represent(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue(), f"s3://{BUCKET}/", MULTI_KEYS)
    put(key_at(DAY, prefix="vpc-aaa/"))
    put(key_at(DAY, prefix="vpc-bbb/"))
    assert main(["backfill"]) == 3  # one folder partitioned, the other a collision for an operator
    capsys.readouterr()
    assert main(["audit", "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert named(report["collisions"]) == ["/".join(multi_values(DAY))]
    assert len(report["collisions"][0]["folders"]) == 2


# ---------------------------------------------------------------- 4. table changes reach warm containers


def test_a_warm_container_creates_partitions_with_the_tables_current_columns(env: None) -> None:
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    assert handlers.on_object_created(notify(put(key_at(DAY)))) == {"batchItemFailures": []}
    table = glue().get_table(DatabaseName=DATABASE, Name=TABLE)["Table"]
    columns = [*table["StorageDescriptor"]["Columns"], {"Name": "flow_direction", "Type": "string"}]
    change_table(glue(), DATABASE, TABLE, {"Columns": columns})
    later = DAY + timedelta(days=1)
    assert handlers.on_object_created(notify(put(key_at(later)))) == {"batchItemFailures": []}
    partition = glue().get_partition(
        DatabaseName=DATABASE, TableName=TABLE, PartitionValues=list(multi_values(later))
    )
    assert partition["Partition"]["StorageDescriptor"]["Columns"] == columns


def test_a_warm_container_follows_a_location_move(env: None) -> None:
    create_table(glue(), f"s3://{BUCKET}/old/AWSLogs/", MULTI_KEYS)
    assert handlers.on_object_created(notify(put(key_at(DAY, prefix="old/")))) == {"batchItemFailures": []}
    change_table(glue(), DATABASE, TABLE, {"Location": f"s3://{BUCKET}/new/AWSLogs/"})
    later = DAY + timedelta(days=1)
    assert handlers.on_object_created(notify(put(key_at(later, prefix="new/")))) == {"batchItemFailures": []}
    assert partitions(glue())[multi_values(later)] == f"s3://{BUCKET}/new/{key_at(later).rsplit('/', 1)[0]}/"


def test_table_refresh_seconds_bounds_how_long_a_warm_container_trusts_the_table(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    key = put(key_at(DAY))
    handlers.on_object_created(notify(key))
    counter = CallCounter(glue())
    handlers.on_object_created(notify(key))
    assert counter.calls == {}  # warm, known, read moments ago: no call
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 301)
    handlers.on_object_created(notify(key))
    # Past TABLE_REFRESH_SECONDS (300): one look at the table, and one at the partition the
    # container knew (it may have been pruned meanwhile).
    assert counter.calls == {"GetTable": 1, "BatchGetPartition": 1}


# ---------------------------------------------------------------- 7. fail closed


def test_an_error_entry_for_values_nobody_asked_for_fails_the_partitions_glue_does_not_show(
    env: None,
) -> None:
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    lost = multi_values(DAY + timedelta(days=1))
    glue().meta.events.register(
        "before-parameter-build.glue.BatchCreatePartition",  # Glue drops one of the two ...
        lambda params, **_: params.update(
            PartitionInputList=[p for p in params["PartitionInputList"] if tuple(p["Values"]) != lost]
        ),
    )
    glue().meta.events.register(
        "after-call.glue.BatchCreatePartition",
        lambda parsed, **_: parsed.setdefault("Errors", []).append(
            {
                "PartitionValues": ["someone", "else"],
                "ErrorDetail": {"ErrorCode": "InternalServiceException", "ErrorMessage": "x"},
            }
        ),
    )
    # ... and reports an error for values nobody sent: only the absent one fails, the other
    # is confirmed with BatchGetPartition.
    response = handlers.on_object_created(notify(put(key_at(DAY)), put(key_at(DAY + timedelta(days=1)))))
    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert set(partitions(glue())) == {multi_values(DAY)}


def test_a_container_knows_its_own_claim_after_a_lost_response(cached: None) -> None:
    from botocore.exceptions import ReadTimeoutError

    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    ddb = dynamodb()
    real_put = ddb.put_item
    lost: list[int] = []

    def put_then_lose_the_answer(**kwargs: Any) -> Any:
        real_put(**kwargs)  # DynamoDB applied the claim ...
        if not lost:
            lost.append(1)
            raise ReadTimeoutError(endpoint_url="https://dynamodb")  # ... but the answer never came
        return {}

    ddb.put_item = put_then_lose_the_answer  # type: ignore[method-assign]
    counter = CallCounter(glue())
    key = put(key_at(DAY))
    with pytest.MonkeyPatch.context() as patch:
        # The release of an errored claim may be lost too: the claim stays, and it is ours.
        patch.setattr("vpcflow_partitioner.cache.PartitionCache.release", lambda self, ids: None)
        assert handlers.on_object_created(notify(key)) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    started = time.monotonic()
    assert handlers.on_object_created(notify(key)) == {"batchItemFailures": []}  # SQS redelivers
    assert time.monotonic() - started < 0.5  # no wait for "another invocation": the claim is ours
    assert counter.entries["BatchCreatePartition"] == 1


# ---------------------------------------------------------------- kills between claim, create and mark


def test_a_kill_between_create_and_mark_ends_present_on_the_retry(cached: None) -> None:
    """Glue created it, then the invocation died before marking: the claim expires, the retry
    meets AlreadyExists, reads the folder back and marks it."""
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    key = put(key_at(DAY))
    real_write = dynamodb().batch_write_item

    def die(**_: Any) -> Any:
        raise SystemExit("killed before the mark")

    dynamodb().batch_write_item = die  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        handlers.on_object_created(notify(key))
    dynamodb().batch_write_item = real_write  # type: ignore[method-assign]
    assert multi_values(DAY) in partitions(glue())
    handlers.reset()  # a new container; the dead one's claim lasts 180 s
    later = time.time() + 181
    counter = CallCounter(glue())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "time", lambda: later)
        assert handlers.on_object_created(notify(key)) == {"batchItemFailures": []}
    assert counter.entries["BatchCreatePartition"] == 1 and counter.calls["BatchGetPartition"] == 1
    items = dynamodb().scan(TableName=CACHE)["Items"]
    assert [(i["status"]["S"], i["location"]["S"]) for i in items] == [
        ("present", f"s3://{BUCKET}/{key.rsplit('/', 1)[0]}/")
    ]


def test_a_kill_between_claim_and_create_fails_the_record_until_the_claim_expires(cached: None) -> None:
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    key = put(key_at(DAY))
    real_create = glue().batch_create_partition

    def die(**_: Any) -> Any:
        raise SystemExit("killed before the create")

    glue().batch_create_partition = die  # type: ignore[method-assign]
    with pytest.MonkeyPatch.context() as patch, pytest.raises(SystemExit):
        # A killed process runs no clean-up: its claim is not released.
        patch.setattr("vpcflow_partitioner.cache.PartitionCache.release", lambda self, ids: None)
        handlers.on_object_created(notify(key))
    glue().batch_create_partition = real_create  # type: ignore[method-assign]
    handlers.reset()
    # Another container: the claim is live, so the record fails (SQS redelivers), nothing acked.
    assert handlers.on_object_created(notify(key)) == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert partitions(glue()) == {}
    later = time.time() + 181
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "time", lambda: later)
        assert handlers.on_object_created(notify(key)) == {"batchItemFailures": []}
    assert multi_values(DAY) in partitions(glue())


# ---------------------------------------------------------------- audit: every kind of drift


def _update_table(**changes: Any) -> list[dict[str, str]]:
    return list(change_table(glue(), DATABASE, TABLE, changes)["Columns"])


def test_audit_reports_and_fixes_storage_descriptor_drift(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    put(key_at(DAY))
    put(key_at(DAY + timedelta(days=1)))
    assert main(["backfill"]) == 0
    columns = _update_table(
        Columns=[*TEXT_SD["Columns"], {"Name": "flow_direction", "Type": "string"}]  # type: ignore[list-item]
    )
    first = glue().get_partition(
        DatabaseName=DATABASE, TableName=TABLE, PartitionValues=list(multi_values(DAY))
    )
    glue().update_partition(  # a partition's own Parameters survive the rewrite
        DatabaseName=DATABASE,
        TableName=TABLE,
        PartitionValueList=list(multi_values(DAY)),
        PartitionInput={
            "Values": list(multi_values(DAY)),
            "StorageDescriptor": first["Partition"]["StorageDescriptor"],
            "Parameters": {"numRows": "42"},
        },
    )
    capsys.readouterr()
    assert main(["audit", "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert [d["fields"] for d in report["descriptor_drift"]] == [["columns"], ["columns"]]
    assert main(["audit", "--fix", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["updated"]) == 2 and report["remaining"]["descriptor_drift"] == 0
    for values in (multi_values(DAY), multi_values(DAY + timedelta(days=1))):
        sd = glue().get_partition(DatabaseName=DATABASE, TableName=TABLE, PartitionValues=list(values))
        assert sd["Partition"]["StorageDescriptor"]["Columns"] == columns
        assert sd["Partition"]["StorageDescriptor"]["Location"].endswith(
            f"/{values[2]}/{values[3]}/{values[4]}/"
        )
    kept = glue().get_partition(
        DatabaseName=DATABASE, TableName=TABLE, PartitionValues=list(multi_values(DAY))
    )
    assert kept["Partition"]["Parameters"] == {"numRows": "42"}
    assert main(["audit"]) == 0


def _partition_at(values: tuple[str, ...], location: str) -> None:
    glue().create_partition(
        DatabaseName=DATABASE,
        TableName=TABLE,
        PartitionInput={"Values": list(values), "StorageDescriptor": {**TEXT_SD, "Location": location}},
    )


def test_audit_repoints_a_wrong_location_only_when_the_stored_folder_is_empty(
    cached: None, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    key = put(key_at(DAY))
    folder = f"s3://{BUCKET}/{key.rsplit('/', 1)[0]}/"
    _partition_at(multi_values(DAY), f"s3://{BUCKET}/typo/{key.rsplit('/', 1)[0]}/")  # holds nothing
    capsys.readouterr()
    assert main(["audit", "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["wrong_location"] == [
        {
            "values": list(multi_values(DAY)),
            "location": f"s3://{BUCKET}/typo/{key.rsplit('/', 1)[0]}/",
            "folder": folder,
        }
    ]
    assert main(["audit", "--fix"]) == 0
    assert partitions(glue())[multi_values(DAY)] == folder
    # The Lambda agrees with the repaired partition: the next object is no collision.
    capsys.readouterr()
    assert handlers.on_object_created(notify(put(key_at(DAY, minute=10)))) == {"batchItemFailures": []}
    assert "ObjectsUnpartitionable" not in emitted_metrics(capsys.readouterr().out)


def test_audit_calls_it_a_collision_when_the_stored_folder_still_holds_logs(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue(), f"s3://{BUCKET}/new/AWSLogs/", MULTI_KEYS)  # a Location cut-over
    put(key_at(DAY, prefix="new/"))
    put(key_at(DAY, prefix="old/"))  # the day's first logs, where the partition points
    stored = f"s3://{BUCKET}/old/{key_at(DAY).rsplit('/', 1)[0]}/"
    _partition_at(multi_values(DAY), stored)
    capsys.readouterr()
    assert main(["audit", "--fix", "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["wrong_location"] == [] and report["relocated"] == []
    assert named(report["collisions"]) == ["/".join(multi_values(DAY))]
    assert partitions(glue())[multi_values(DAY)] == stored  # untouched


def test_audit_lists_daily_folders_under_an_hourly_table(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", [*MULTI_KEYS, ("hour", "string")])
    put(key_at(DAY))
    capsys.readouterr()
    assert main(["audit", "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert len(report["unrepresentable"]) == 1 and "daily folder" in report["unrepresentable"][0]["reason"]


def test_audit_reads_glue_in_parallel_segments(env: None) -> None:
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    put(key_at(DAY))
    segments: list[dict[str, int]] = []
    glue().meta.events.register(
        "before-parameter-build.glue.GetPartitions",
        lambda params, **_: segments.append(params["Segment"]) if "Segment" in params else None,
    )
    assert main(["audit", "--fix"]) == 0
    # "TotalSegments: Maximum value of 10" (Glue API); moto ignores Segment, AWS does not.
    assert sorted(s["SegmentNumber"] for s in segments) == list(range(10))
    assert {s["TotalSegments"] for s in segments} == {10}


def test_prune_brings_back_a_partition_whose_folder_got_an_object_during_the_delete(
    cached: None, capsys: pytest.CaptureFixture[str]
) -> None:
    an_emptied_day()
    arrived: list[str] = []

    def object_arrives_and_the_warm_lambda_acks_it(**_: Any) -> None:
        if not arrived:
            arrived.append(put(key_at(DAY, minute=20)))
            assert handlers.on_object_created(notify(arrived[0])) == {"batchItemFailures": []}

    glue().meta.events.register(
        "before-call.glue.BatchDeletePartition", object_arrives_and_the_warm_lambda_acks_it
    )
    capsys.readouterr()
    assert main(["audit", "--prune", "--yes", "--json"]) == 0
    out = capsys.readouterr().out  # the Lambda's metrics lines come first
    report = cli_json(out)
    assert named(report["restored"]) == ["/".join(multi_values(DAY))] and report["pruned"] == []
    assert multi_values(DAY) in partitions(glue())


def test_table_refresh_seconds_zero_reads_the_table_every_invocation(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TABLE_REFRESH_SECONDS", "0")
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    key = put(key_at(DAY))
    handlers.on_object_created(notify(key))
    counter = CallCounter(glue())
    for _ in range(3):
        handlers.on_object_created(notify(key))
    assert counter.calls == {"GetTable": 3}  # the partitions it knows stay known (SEEN_SECONDS)


def test_a_key_nested_inside_another_account_folder_is_unpartitionable(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue(), f"s3://{BUCKET}/", MULTI_KEYS)
    nested = put(key_at(DAY, prefix=f"AWSLogs/{ACCOUNT}/backup/"))
    capsys.readouterr()
    assert handlers.on_object_created(notify(nested)) == {"batchItemFailures": []}
    assert emitted_metrics(capsys.readouterr().out) == {"ObjectsUnpartitionable": 1}
    assert main(["backfill"]) == 0 and partitions(glue()) == {}  # and the walk agrees


def test_a_cache_entry_from_before_folders_were_recorded_is_checked_against_glue(
    cached: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Entries written by the previous version carry no `location`: Glue says where, once."""
    from vpcflow_partitioner.cache import item_id
    from vpcflow_partitioner.scheme import PartitionSpec, Scheme

    create_table(glue(), f"s3://{BUCKET}/", MULTI_KEYS)
    first = put(key_at(DAY, prefix="vpc-aaa/"))
    assert handlers.on_object_created(notify(first)) == {"batchItemFailures": []}
    scheme = Scheme.from_table(glue().get_table(DatabaseName=DATABASE, Name=TABLE)["Table"])
    id_ = item_id(scheme, PartitionSpec(multi_values(DAY), ""))
    legacy = {"id": {"S": id_}, "status": {"S": "present"}, "expiration": {"N": str(int(time.time()) + 3600)}}
    dynamodb().put_item(TableName=CACHE, Item=legacy)
    handlers.reset()
    capsys.readouterr()
    assert handlers.on_object_created(notify(put(key_at(DAY, prefix="vpc-bbb/")))) == {
        "batchItemFailures": []
    }
    assert emitted_metrics(capsys.readouterr().out).get("ObjectsUnpartitionable") == 1
    item = dynamodb().get_item(TableName=CACHE, Key={"id": {"S": id_}})["Item"]
    assert item["location"]["S"] == f"s3://{BUCKET}/vpc-aaa/{key_at(DAY).rsplit('/', 1)[0]}/"


@pytest.mark.parametrize(("answer", "code"), [("y", 0), ("n", 3), ("", 3)])  # declined: the orphan remains
def test_prune_asks_on_a_terminal(
    env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], answer: str, code: int
) -> None:
    from rich.console import Console

    an_emptied_day(by="backfill")
    asked: list[str] = []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr(Console, "is_terminal", property(lambda self: True))

    def reply(self: Console, prompt: str = "", **_: Any) -> str:
        asked.append(prompt)
        return answer

    monkeypatch.setattr(Console, "input", reply)
    assert main(["audit", "--prune", "--no-cache"]) == code
    assert asked == ["delete them? [y/N] "]
    assert (multi_values(DAY) in partitions(glue())) is (code != 0)


# ---------------------------------------------------------------- found in review of the fix


def test_a_partition_prune_could_not_put_back_is_a_failure_not_restored(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from helpers import inject_error

    an_emptied_day(by="backfill")

    def object_arrives(**_: Any) -> None:
        put(key_at(DAY, minute=20))
        inject_error(glue(), "BatchCreatePartition", "ThrottlingException", times=1)

    glue().meta.events.register("before-call.glue.BatchDeletePartition", object_arrives)
    capsys.readouterr()
    assert main(["audit", "--prune", "--no-cache", "--yes", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["restored"] == [] and report["pruned"] == []
    assert "run backfill" in reason(report, multi_values(DAY))


def test_a_partition_in_a_bucket_that_cannot_be_listed_is_unreachable_drift(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    put(key_at(DAY))
    assert main(["backfill"]) == 0
    _partition_at((ACCOUNT, REGION, "2023", "01", "01"), "s3://no-such-bucket/AWSLogs/2023/01/01/")
    capsys.readouterr()
    assert main(["audit", "--prune", "--no-cache", "--yes", "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    (far,) = report["unreachable"]
    assert "NoSuchBucket" in far["reason"] and report["remaining"]["unreachable"] == 1
    assert (ACCOUNT, REGION, "2023", "01", "01") in partitions(glue())


def test_a_throttled_periodic_table_read_keeps_the_table_in_hand(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers import inject_error

    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    key = put(key_at(DAY))
    handlers.on_object_created(notify(key))
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 120)  # seen-set still trusted ...
    monkeypatch.setenv("TABLE_REFRESH_SECONDS", "60")  # ... the table is due again
    handlers.reset()
    handlers.on_object_created(notify(key))
    inject_error(glue(), "GetTable", "ThrottlingException", times=1)
    monkeypatch.setattr(time, "time", lambda: now + 190)
    assert handlers.on_object_created(notify(key)) == {"batchItemFailures": []}


def test_a_throttled_table_read_before_turning_objects_away_fails_only_those_records(env: None) -> None:
    from helpers import inject_error

    create_table(glue(), f"s3://{BUCKET}/AWSLogs/{ACCOUNT}/", MULTI_KEYS)
    mine = put(key_at(DAY))
    handlers.on_object_created(notify(mine))
    foreign = put(key_at(DAY, account="222222222222"))
    inject_error(glue(), "GetTable", "ThrottlingException", times=1)
    assert handlers.on_object_created(notify(mine, foreign)) == {
        "batchItemFailures": [{"itemIdentifier": "m1"}]
    }
    assert handlers.on_object_created(notify(mine, foreign)) == {"batchItemFailures": []}  # the retry


def test_objects_outside_the_location_cost_one_table_read_per_folder_not_per_invocation(env: None) -> None:
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/{ACCOUNT}/", MULTI_KEYS)
    mine = put(key_at(DAY))
    a = put(key_at(DAY, account="222222222222"))
    b = put(key_at(DAY, account="333333333333"))
    handlers.on_object_created(notify(mine))
    counter = CallCounter(glue())
    for i in range(10):
        handlers.on_object_created(notify(mine, a if i % 2 else b))
    assert counter.calls == {"GetTable": 2}  # once for each foreign folder


def test_a_sweep_that_cannot_finish_fails_loudly_instead_of_looking_healthy(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vpcflow_partitioner import sources

    monkeypatch.setattr(sources, "SWEEP_LIST_CALLS", 12)
    create_table(glue(), f"s3://{BUCKET}/", MULTI_KEYS)  # the bucket root: every folder may be a prefix
    today = datetime.now(UTC).replace(hour=0, minute=5)
    put(key_at(today, prefix="a/"))
    for i in range(30):
        put(f"athena-results/{i:03d}/result.csv")
    with pytest.raises(Exception, match="list-call budget"):
        handlers.on_schedule({})
    assert partitions(glue()) == {}  # the folder lies beyond what the budget reached
    monkeypatch.setattr(sources, "SWEEP_LIST_CALLS", 20_000)
    assert handlers.on_schedule({})["PartitionsCreated"] == 1
    assert multi_values(today) in partitions(glue())


def test_ctrl_c_after_the_delete_still_puts_back_a_partition_whose_folder_got_an_object(
    cached: None,
) -> None:
    an_emptied_day()
    arrived: list[str] = []

    def object_arrives(**_: Any) -> None:
        if not arrived:
            arrived.append(put(key_at(DAY, minute=20)))
            assert handlers.on_object_created(notify(arrived[0])) == {"batchItemFailures": []}  # warm: acked

    def interrupted(**_: Any) -> None:
        raise KeyboardInterrupt

    glue().meta.events.register("before-call.glue.BatchDeletePartition", object_arrives)
    glue().meta.events.register("after-call.glue.BatchDeletePartition", interrupted)
    assert main(["audit", "--prune", "--yes"]) == 1  # "interrupted"
    assert multi_values(DAY) in partitions(glue())


def test_prune_refuses_without_knowing_the_functions_cache(
    cached: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    an_emptied_day()  # the cache says present
    monkeypatch.delenv("CACHE_TABLE")  # the operator's shell
    capsys.readouterr()
    assert main(["audit", "--prune", "--yes"]) == 2
    assert "--cache-table" in capsys.readouterr().err
    assert multi_values(DAY) in partitions(glue())
    assert main(["audit", "--prune", "--yes", "--cache-table", CACHE]) == 0
    handlers.reset()  # a cold container: the cache must not say present any more
    assert handlers.on_object_created(notify(put(key_at(DAY, minute=30)))) == {"batchItemFailures": []}
    assert multi_values(DAY) in partitions(glue())


def test_an_object_in_the_old_folder_during_a_repoint_points_the_partition_back(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue(), f"s3://{BUCKET}/", MULTI_KEYS)
    put(key_at(DAY, prefix="vpc-bbb/"))
    old = f"s3://{BUCKET}/vpc-aaa/{key_at(DAY).rsplit('/', 1)[0]}/"  # empty when the audit looks
    _partition_at(multi_values(DAY), old)
    acked: list[dict[str, Any]] = []

    def lambda_acks_during_the_update(**_: Any) -> None:
        if not acked:
            acked.append(handlers.on_object_created(notify(put(key_at(DAY, prefix="vpc-aaa/", minute=35)))))

    glue().meta.events.register("before-call.glue.BatchUpdatePartition", lambda_acks_during_the_update)
    capsys.readouterr()
    assert main(["audit", "--fix", "--json"]) == 1
    out = capsys.readouterr().out
    report = cli_json(out)
    assert acked == [{"batchItemFailures": []}] and report["relocated"] == []
    assert "pointed back" in reason(report, multi_values(DAY))
    assert partitions(glue())[multi_values(DAY)] == old  # the acked object stays covered


def test_a_warm_container_sees_a_repointed_partition_at_once(
    cached: None, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue(), f"s3://{BUCKET}/", MULTI_KEYS)
    _partition_at(multi_values(DAY), f"s3://{BUCKET}/typo/{key_at(DAY).rsplit('/', 1)[0]}/")
    first = put(key_at(DAY, prefix="vpc-bbb/"))
    capsys.readouterr()
    handlers.on_object_created(notify(first))  # a collision with the typo folder: remembered
    assert emitted_metrics(capsys.readouterr().out)["ObjectsUnpartitionable"] == 1
    assert main(["audit", "--fix"]) == 0
    capsys.readouterr()
    assert handlers.on_object_created(notify(put(key_at(DAY, prefix="vpc-bbb/", minute=40)))) == {
        "batchItemFailures": []
    }
    assert "ObjectsUnpartitionable" not in emitted_metrics(capsys.readouterr().out)


def test_audit_lists_two_partitions_on_one_folder(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    key = put(key_at(DAY))
    assert main(["backfill"]) == 0
    _partition_at(
        (ACCOUNT, REGION, "2024", "2", "10"), f"s3://{BUCKET}/{key.rsplit('/', 1)[0]}/"
    )  # int spelling
    capsys.readouterr()
    assert main(["audit", "--fix", "--prune", "--no-cache", "--yes", "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["shared_location"] == [
        {
            "values": [ACCOUNT, REGION, "2024", "2", "10"],
            "location": f"s3://{BUCKET}/{key.rsplit('/', 1)[0]}/",
            "folder_of": list(multi_values(DAY)),
        }
    ]
    assert len(partitions(glue())) == 2  # neither pruned: the folder holds data


def test_audit_fix_creates_what_the_lambda_would_for_two_folders_without_a_partition(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue(), f"s3://{BUCKET}/", MULTI_KEYS)
    put(key_at(DAY, prefix="vpc-aaa/"))
    put(key_at(DAY, prefix="vpc-bbb/"))
    capsys.readouterr()
    assert main(["audit", "--fix", "--json"]) == 3  # the collision stays for an operator
    report = json.loads(capsys.readouterr().out)
    assert named(report["created"]) == ["/".join(multi_values(DAY))] and len(report["collisions"]) == 1
    assert "/vpc-aaa/" in partitions(glue())[multi_values(DAY)]


@pytest.mark.parametrize(
    ("keys", "location", "existing"),
    [
        (MULTI_KEYS, f"s3://{BUCKET}/AWSLogs/", [ACCOUNT, REGION, "2024", "2", "10"]),  # int month
        ([("dt", "string")], f"s3://{BUCKET}/AWSLogs/{ACCOUNT}/vpcflowlogs/{REGION}/", ["2024/02/10"]),
        ([("dt", "string")], f"s3://{BUCKET}/AWSLogs/{ACCOUNT}/vpcflowlogs/{REGION}/", ["20240210"]),
    ],
    ids=["unpadded-month", "dt-without-format", "dt-compact"],
)
def test_a_table_whose_partitions_are_spelled_otherwise_fails_loudly_instead_of_doubling_a_folder(
    env: None, keys: list[tuple[str, str]], location: str, existing: list[str]
) -> None:
    create_table(glue(), location, keys)
    key = put(key_at(DAY))
    _partition_at(tuple(existing), f"s3://{BUCKET}/{key.rsplit('/', 1)[0]}/")
    for _ in range(2):  # every time: the records reach the DLQ and an alarm
        with pytest.raises(Exception, match="second partition on the same folder"):
            handlers.on_object_created(notify(key))
    assert len(partitions(glue())) == 1


def test_audit_of_a_misspelt_table_lists_it_and_creates_no_second_partition(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    key = put(key_at(DAY))
    _partition_at((ACCOUNT, REGION, "2024", "2", "10"), f"s3://{BUCKET}/{key.rsplit('/', 1)[0]}/")
    capsys.readouterr()
    assert main(["audit", "--fix", "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["missing"] == [] and report["created"] == []
    assert named(report["shared_location"]) == [f"{ACCOUNT}/{REGION}/2024/2/10"]
    assert len(partitions(glue())) == 1
    assert main(["backfill"]) == 1  # backfill would double the folder: it refuses, like the Lambda
    assert len(partitions(glue())) == 1


# ---------------------------------------------------------------- second review: kills and errors in the clean-up


def folder_of(key: str) -> str:
    return f"s3://{BUCKET}/{key.rsplit('/', 1)[0]}/"


def test_a_cache_that_cannot_forget_after_the_delete_gets_its_partition_back(
    cached: None, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    live = put(key_at(DAY + timedelta(days=1)))
    gone = put(key_at(DAY))
    assert handlers.on_object_created(notify(live, gone)) == {"batchItemFailures": []}
    s3().delete_object(Bucket=BUCKET, Key=gone)
    state: dict[str, Any] = {"deleted": False}

    def another_container_marks_present(**_: Any) -> None:  # a late file, acked on Glue's word
        late = put(key_at(DAY, minute=20))
        handlers.reset()
        assert handlers.on_object_created(notify(late)) == {"batchItemFailures": []}
        state["deleted"] = True

    glue().meta.events.register("before-call.glue.BatchDeletePartition", another_container_marks_present)
    dynamodb().meta.events.register_first(
        "before-call.dynamodb.BatchWriteItem",
        lambda **_: failure("ProvisionedThroughputExceededException") if state["deleted"] else None,
    )
    assert main(["audit", "--prune", "--yes"]) == 1
    state["deleted"] = False
    assert multi_values(DAY) in partitions(glue())  # put back: the cache's "present" is true again
    assert "put back" in capsys.readouterr().out


def test_ctrl_c_while_settling_one_orphan_still_settles_the_others(env: None) -> None:
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    live, one, two = (put(key_at(DAY + timedelta(days=d))) for d in (5, 0, 1))
    assert handlers.on_object_created(notify(live, one, two)) == {"batchItemFailures": []}
    s3().delete_object(Bucket=BUCKET, Key=one)
    s3().delete_object(Bucket=BUCKET, Key=two)
    state: dict[str, Any] = {"deleted": False}
    first = folder_of(one).split("/", 3)[3]

    def a_file_lands_in_the_second(**_: Any) -> None:
        assert handlers.on_object_created(notify(put(key_at(DAY + timedelta(days=1), minute=30))))
        state["deleted"] = True

    def ctrl_c_while_listing_the_first(params: dict[str, Any], **_: Any) -> None:
        if state["deleted"] and params.get("Prefix") == first:
            state["deleted"] = False
            raise KeyboardInterrupt

    glue().meta.events.register("before-call.glue.BatchDeletePartition", a_file_lands_in_the_second)
    s3().meta.events.register("before-parameter-build.s3.ListObjectsV2", ctrl_c_while_listing_the_first)
    assert main(["audit", "--prune", "--no-cache", "--yes"]) == 1  # interrupted
    assert multi_values(DAY + timedelta(days=1)) in partitions(glue())


def test_an_orphan_that_cannot_be_listed_again_is_kept_and_a_failure(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    live, gone = put(key_at(DAY + timedelta(days=5))), put(key_at(DAY))
    assert handlers.on_object_created(notify(live, gone)) == {"batchItemFailures": []}
    s3().delete_object(Bucket=BUCKET, Key=gone)
    prefix = folder_of(gone).split("/", 3)[3]
    seen: list[int] = []

    def deny_the_second_listing(params: dict[str, Any], **_: Any) -> None:
        if params.get("Prefix") == prefix and "Delimiter" not in params:
            seen.append(1)

    s3().meta.events.register("before-parameter-build.s3.ListObjectsV2", deny_the_second_listing)
    s3().meta.events.register_first(
        "before-call.s3.ListObjectsV2", lambda **_: failure("AccessDenied") if len(seen) == 2 else None
    )
    capsys.readouterr()
    assert main(["audit", "--prune", "--no-cache", "--yes", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["restored"] == [] and report["pruned"] == []
    assert "not checked again" in reason(report, multi_values(DAY))
    assert multi_values(DAY) in partitions(glue())


@pytest.mark.parametrize("interrupt", [False, True], ids=["pointed-back", "ctrl-c"])
def test_the_cache_forgets_every_partition_fix_moved_or_pointed_back(
    cached: None, capsys: pytest.CaptureFixture[str], interrupt: bool
) -> None:
    create_table(glue(), f"s3://{BUCKET}/", MULTI_KEYS)
    a_first = put(key_at(DAY, prefix="vpc-aaa/"))
    assert handlers.on_object_created(notify(a_first)) == {"batchItemFailures": []}  # the cache: A
    s3().delete_object(Bucket=BUCKET, Key=a_first)
    put(key_at(DAY, prefix="vpc-bbb/", minute=7))  # B holds the day: the Location is "wrong"

    def during_the_repoint(**_: Any) -> None:
        if interrupt:
            raise KeyboardInterrupt
        # A B file reaches a Lambda (the cache learns B), and a late file lands in A.
        assert handlers.on_object_created(notify(put(key_at(DAY, prefix="vpc-bbb/", minute=12))))
        put(key_at(DAY, prefix="vpc-aaa/", minute=14))

    glue().meta.events.register("after-call.glue.BatchUpdatePartition", during_the_repoint)
    assert main(["audit", "--fix"]) == 1
    glue().meta.events.unregister("after-call.glue.BatchUpdatePartition", during_the_repoint)
    where = partitions(glue())[multi_values(DAY)]
    late = key_at(DAY, prefix="vpc-bbb/" if not interrupt else "vpc-aaa/", minute=40)
    handlers.reset()  # a cold container: it must ask Glue, not trust a folder the cache remembers
    capsys.readouterr()
    assert handlers.on_object_created(notify(put(late))) == {"batchItemFailures": []}
    unpartitionable = emitted_metrics(capsys.readouterr().out).get("ObjectsUnpartitionable")
    assert unpartitionable == (0 if same_place(where, late) else 1)


def same_place(location: str, key: str) -> bool:
    return location.rstrip("/") == folder_of(key).rstrip("/")


def test_a_partition_pointed_at_another_days_folder_is_no_misspelling(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", MULTI_KEYS)
    tenth = put(key_at(DAY))
    _partition_at(multi_values(DAY - timedelta(days=1)), folder_of(tenth))  # an off-by-one Location
    later = put(key_at(DAY + timedelta(days=2)))
    assert handlers.on_object_created(notify(later)) == {"batchItemFailures": []}  # not refused
    capsys.readouterr()
    assert main(["audit", "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert [(d["values"], d["folder_of"]) for d in report["shared_location"]] == [
        (list(multi_values(DAY - timedelta(days=1))), list(multi_values(DAY)))
    ]
    assert "/".join(multi_values(DAY)) not in named(report["missing"])  # --fix would put a second on it


def test_a_transit_gateway_hive_table_with_a_service_key(env: None) -> None:
    keys = [(k, "string") for k in ("aws-account-id", "service", "aws-region", "year", "month", "day")]
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", keys)
    key = put(
        f"AWSLogs/aws-account-id={ACCOUNT}/service=vpcflowlogs/aws-region={REGION}/year=2024/month=02/day=10/"
        f"{ACCOUNT}_vpcflowlogs_{REGION}_tgw-attach-1_20240210T0005Z_a.log.gz"
    )
    assert handlers.on_object_created(notify(key)) == {"batchItemFailures": []}
    assert partitions(glue()) == {(ACCOUNT, "vpcflowlogs", REGION, "2024", "02", "10"): folder_of(key)}
