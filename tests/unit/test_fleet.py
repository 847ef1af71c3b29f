"""Many tables over the same messages (Fleet), on a fake Glue: what each record's result and the
counts say when a table cannot be read, and what no table takes is counted once."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from vpcflow_partitioner.config import Settings, TableName
from vpcflow_partitioner.envelopes import Message, ObjectRef
from vpcflow_partitioner.pipeline import Fleet

BUCKET = "flow-logs"
ACCOUNT = "123456789012"
EAST = f"AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/"
WEST = f"AWSLogs/{ACCOUNT}/vpcflowlogs/eu-west-1/"
NOW = 1_700_000_000.0


def key(region_folder: str, day: str = "2024/01/02") -> str:
    region = region_folder.split("/")[3]
    return f"{region_folder}{day}/{ACCOUNT}_vpcflowlogs_{region}_fl-1_20240102T0000Z_x.log.gz"


class Glue:
    """GetTable, GetPartitions, BatchGetPartition and BatchCreatePartition over tables by name;
    a table in `broken` answers GetTable with that error code."""

    def __init__(
        self, locations: dict[str, str], broken: dict[str, str] | None = None, input_format: str = ""
    ) -> None:
        self.locations = locations
        self.broken = broken or {}
        self.input_format = input_format
        self.version = "1"
        self.created: list[tuple[str, tuple[str, ...]]] = []

    def get_table(self, Name: str, DatabaseName: str, **_: Any) -> dict[str, Any]:
        if Name in self.broken:
            raise ClientError({"Error": {"Code": self.broken[Name], "Message": "no"}}, "GetTable")
        return {
            "Table": {
                "Name": Name,
                "DatabaseName": DatabaseName,
                "VersionId": self.version,
                "PartitionKeys": [{"Name": "date", "Type": "string"}],
                "StorageDescriptor": {"Location": self.locations[Name], "InputFormat": self.input_format},
            }
        }

    def get_partitions(self, **_: Any) -> dict[str, Any]:
        return {"Partitions": []}

    def batch_get_partition(self, **_: Any) -> dict[str, Any]:
        return {"Partitions": []}

    def batch_create_partition(
        self, TableName: str, PartitionInputList: list[Any], **_: Any
    ) -> dict[str, Any]:
        self.created += [(TableName, tuple(p["Values"])) for p in PartitionInputList]
        return {"Errors": []}


def fleet(glue: Glue, source_buckets: frozenset[str] = frozenset()) -> Fleet:
    names = tuple(TableName("", "flowlogs", name) for name in glue.locations)
    settings = Settings("flowlogs", names[0].table, tables=names, source_buckets=source_buckets)
    return Fleet.build(settings, glue, sleep=lambda _: None)


TWO = {"east": f"s3://{BUCKET}/{EAST}", "west": f"s3://{BUCKET}/{WEST}"}


def test_an_object_only_an_unreadable_table_could_take_fails_its_record_and_is_not_ignored() -> None:
    glue = Glue(TWO, broken={"west": "InternalServiceException"})
    west_key = key(WEST)
    report = fleet(glue).run([Message("m1", (ObjectRef(BUCKET, west_key),))], NOW)
    (result,) = report.results
    assert (result.ok, result.permanent) == (False, False)
    assert result.notes == (
        f"flowlogs.west: {west_key}: table flowlogs.west not read: "
        "Glue GetTable flowlogs.west: InternalServiceException: no",
    )
    # The east table turned it away, the west one failed it: it is no table's to ignore.
    assert report.counts == {"RecordsFailed": 1}
    assert not report.ignored
    assert glue.created == []


def test_a_flow_log_of_a_foreign_bucket_is_outside_every_table_even_one_not_read() -> None:
    glue = Glue(TWO, broken={"west": "InternalServiceException"})
    report = fleet(glue, frozenset({BUCKET})).run([Message("m1", (ObjectRef("elsewhere", key(EAST)),))], NOW)
    (result,) = report.results
    assert (result.ok, result.notes) == (True, ("ignored: bucket not in SOURCE_BUCKETS",))
    assert report.counts == {"ObjectsIgnored": 1, "ObjectsOutsideTable": 1}
    assert report.ignored == {"bucket not in SOURCE_BUCKETS": 1}


TEXT = "org.apache.hadoop.mapred.TextInputFormat"


@pytest.mark.parametrize("parquet_first", [False, True])
def test_a_text_table_takes_the_text_file_of_a_folder_and_not_its_parquet_twin(parquet_first: bool) -> None:
    glue = Glue({"east": f"s3://{BUCKET}/{EAST}"}, input_format=TEXT)
    text = key(EAST)
    parquet = text.replace(".log.gz", ".log.parquet")
    objects = (ObjectRef(BUCKET, parquet), ObjectRef(BUCKET, text))
    report = fleet(glue).run([Message("m1", objects if parquet_first else objects[::-1])], NOW)
    (result,) = report.results
    why = "a parquet file: table flowlogs.east reads .log.gz files"
    assert (result.ok, result.notes, result.done) == (
        True,
        (f"ignored: {why}",),
        ((("2024-01-02",), "created"),),
    )
    assert report.ignored == {why: 1}
    assert glue.created == [("east", ("2024-01-02",))]


class Untouchable:
    """A DynamoDB client every call of which is recorded and refused (throttled)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        def call(**_: Any) -> Any:
            self.calls.append(name)
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "no"}}, name)

        return call


def test_a_run_without_the_cache_asks_glue_alone_also_when_the_table_changes_mid_run() -> None:
    # What backfill, replay and audit --fix ask for: the cache may hold what Glue has lost.
    glue, dynamodb = Glue({"east": f"s3://{BUCKET}/{EAST}"}), Untouchable()
    settings = Settings("flowlogs", "east", cache_table="partitions")
    partitions = Fleet.build(settings, glue, dynamodb, sleep=lambda _: None)
    first = partitions.run([Message("m1", (ObjectRef(BUCKET, key(EAST)),))], NOW, use_cache=False)
    # The container keeps the table it read; it is updated before the next run creates anything.
    glue.version = "2"
    second = partitions.run(
        [Message("m2", (ObjectRef(BUCKET, key(EAST, "2024/01/03")),))], NOW + 10, use_cache=False
    )
    assert [r.done for r in (*first.results, *second.results)] == [
        ((("2024-01-02",), "created"),),
        ((("2024-01-03",), "created"),),
    ]
    assert glue.created == [("east", ("2024-01-02",)), ("east", ("2024-01-03",))]
    # Glue's answers are written for the containers to come; the cache is never read nor claimed.
    assert dynamodb.calls == ["batch_write_item"] * 2
