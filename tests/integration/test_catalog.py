"""The Glue adapter on moto: AWS's per-call limits, per-partition answers, errors raised or returned.

moto takes more per call than Glue does (150 partitions in one BatchCreatePartition), so each
limit is asserted here on the calls themselves.
"""

from __future__ import annotations

from typing import Any

import helpers
import pytest
from helpers import CLASSIC_LOCATION, DATABASE, TABLE, create_table, partitions
from vpcflow_partitioner import aws
from vpcflow_partitioner.catalog import CREATED, EXISTS, UNMATCHED, Catalog, catalog_id_args
from vpcflow_partitioner.errors import TransientError
from vpcflow_partitioner.scheme import ConfigurationError, PartitionSpec, Scheme, TableRef


def glue() -> Any:
    return aws.client("glue", "", "us-east-1")


@pytest.fixture
def catalog(mocked: None) -> Catalog:
    create_table(glue())
    return Catalog(glue(), TableRef("", DATABASE, TABLE), sleep=lambda _: None)


def scheme() -> Scheme:
    return Scheme.from_table(glue().get_table(DatabaseName=DATABASE, Name=TABLE)["Table"])


def specs(count: int) -> list[PartitionSpec]:
    days = [f"20{y:02d}-01-01" for y in range(count)]
    return [PartitionSpec((d,), f"{CLASSIC_LOCATION}{d.replace('-', '/')}/") for d in days]


class Calls:
    """The requests our code sent for one operation: their parameters, one entry a call."""

    def __init__(self, operation: str) -> None:
        self.params: list[dict[str, Any]] = []
        glue().meta.events.register(f"before-parameter-build.glue.{operation}", self._record)

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        self.params.append(params)


def test_create_sends_at_most_100_partitions_a_call_and_answers_for_each(catalog: Catalog) -> None:
    calls = Calls("BatchCreatePartition")
    wanted = specs(250)
    outcomes = catalog.create(scheme(), wanted)
    assert [len(p["PartitionInputList"]) for p in calls.params] == [100, 100, 50]
    assert outcomes == dict.fromkeys(wanted, CREATED)
    assert (catalog.create_calls, catalog.create_entries) == (3, 250)
    assert len(partitions(glue())) == 250
    again = catalog.create(scheme(), wanted[:3])
    assert again == dict.fromkeys(wanted[:3], EXISTS)


def test_an_error_entry_fails_only_its_partition(catalog: Catalog) -> None:
    wanted = specs(3)

    def reject_second(parsed: dict[str, Any], **_: Any) -> None:
        parsed["Errors"] = [
            {
                "PartitionValues": list(wanted[1].values),
                "ErrorDetail": {"ErrorCode": "InternalServiceException", "ErrorMessage": "try again"},
            }
        ]

    glue().meta.events.register("after-call.glue.BatchCreatePartition", reject_second)
    outcomes = catalog.create(scheme(), wanted)
    assert outcomes == {wanted[0]: CREATED, wanted[1]: "InternalServiceException", wanted[2]: CREATED}


def test_an_error_for_values_nobody_sent_fails_closed(catalog: Catalog) -> None:
    wanted = specs(2)
    catalog.create(scheme(), wanted[:1])

    def foreign_error(parsed: dict[str, Any], **_: Any) -> None:
        parsed["Errors"] = [{"PartitionValues": ["1999-01-01"], "ErrorDetail": {"ErrorCode": "X"}}]

    glue().delete_partition(DatabaseName=DATABASE, TableName=TABLE, PartitionValues=list(wanted[0].values))
    glue().meta.events.register("after-call.glue.BatchCreatePartition", foreign_error)
    outcomes = catalog.create(scheme(), wanted)
    # Glue shows both after the call: both are there, whatever the stray error was about.
    assert outcomes == {wanted[0]: EXISTS, wanted[1]: EXISTS}


def test_an_unplaceable_error_with_the_partition_absent_is_a_failure(catalog: Catalog) -> None:
    wanted = specs(2)
    real = glue().batch_create_partition

    def create_only_the_first(**kwargs: Any) -> Any:
        real(**{**kwargs, "PartitionInputList": kwargs["PartitionInputList"][:1]})
        return {"Errors": [{"PartitionValues": [], "ErrorDetail": {"ErrorCode": "InternalServiceException"}}]}

    glue().batch_create_partition = create_only_the_first  # type: ignore[method-assign]
    outcomes = catalog.create(scheme(), wanted)
    assert outcomes == {wanted[0]: EXISTS, wanted[1]: UNMATCHED}


def test_a_throttled_create_answers_an_error_for_its_chunk_and_goes_on(catalog: Catalog) -> None:
    helpers.inject_error(glue(), "BatchCreatePartition", "ThrottlingException", times=1)
    wanted = specs(150)
    outcomes = catalog.create(scheme(), wanted)
    assert {outcomes[s] for s in wanted[:100]} == {
        "Glue BatchCreatePartition flowlogs.vpc_flow_logs: ThrottlingException: injected ThrottlingException"
    }
    assert {outcomes[s] for s in wanted[100:]} == {CREATED}
    assert len(partitions(glue())) == 50


def test_a_create_the_function_may_not_make_fails_loudly(catalog: Catalog) -> None:
    helpers.inject_error(glue(), "BatchCreatePartition", "AccessDeniedException")
    with pytest.raises(ConfigurationError, match="AccessDeniedException"):
        catalog.create(scheme(), specs(1))


def test_existing_asks_for_at_most_1000_partitions_a_call(catalog: Catalog) -> None:
    wanted = specs(3)
    catalog.create(scheme(), wanted[1:])
    calls = Calls("BatchGetPartition")
    assert catalog.existing(wanted) == {s.values: s.location for s in wanted[1:]}
    assert [len(p["PartitionsToGet"]) for p in calls.params] == [3]
    many = [PartitionSpec((f"2000-01-{i:04d}",), "s3://x/") for i in range(1500)]
    assert catalog.existing(many) == {}
    assert [len(p["PartitionsToGet"]) for p in calls.params[1:]] == [1000, 500]


def test_a_missing_table_is_a_configuration_error_and_throttling_is_transient(catalog: Catalog) -> None:
    missing = Catalog(glue(), TableRef("", DATABASE, "nope"))
    with pytest.raises(ConfigurationError, match="EntityNotFoundException"):
        missing.get_table()
    helpers.inject_error(glue(), "BatchGetPartition", "ThrottlingException")
    with pytest.raises(TransientError, match="ThrottlingException"):
        catalog.existing(specs(1))
    helpers.inject_error(glue(), "GetPartitions", "ThrottlingException")
    with pytest.raises(TransientError):
        catalog.some_partitions()
    with pytest.raises(TransientError):
        list(catalog.partitions())


def test_update_sends_at_most_100_a_call_and_returns_only_what_failed(catalog: Catalog) -> None:
    wanted = specs(150)
    catalog.create(scheme(), wanted)
    calls = Calls("BatchUpdatePartition")
    moved = [
        scheme().partition_input(PartitionSpec(s.values, s.location.replace("/AWSLogs/", "/moved/AWSLogs/")))
        for s in wanted
    ]
    assert catalog.update(moved) == {}
    assert [len(p["Entries"]) for p in calls.params] == [100, 50]
    assert all("/moved/" in location for location in partitions(glue()).values())

    def reject_first(parsed: dict[str, Any], **_: Any) -> None:
        parsed["Errors"] = [
            {
                "PartitionValueList": list(wanted[0].values),
                "ErrorDetail": {"ErrorCode": "EntityNotFoundException"},
            },
            {"PartitionValueList": list(wanted[1].values), "ErrorDetail": {}},
        ]

    glue().meta.events.register("after-call.glue.BatchUpdatePartition", reject_first)
    assert catalog.update(moved[:2]) == {
        wanted[0].values: "EntityNotFoundException",
        wanted[1].values: "UnknownError",
    }


def test_a_throttled_update_is_transient(catalog: Catalog) -> None:
    helpers.inject_error(glue(), "BatchUpdatePartition", "ThrottlingException")
    with pytest.raises(TransientError):
        catalog.update([scheme().partition_input(specs(1)[0])])


def test_delete_sends_at_most_25_a_call_and_returns_only_what_failed(catalog: Catalog) -> None:
    wanted = specs(30)
    catalog.create(scheme(), wanted)
    calls = Calls("BatchDeletePartition")
    assert catalog.delete([s.values for s in wanted[:27]]) == {}
    assert [len(p["PartitionsToDelete"]) for p in calls.params] == [25, 2]
    assert set(partitions(glue())) == {s.values for s in wanted[27:]}

    def reject(parsed: dict[str, Any], **_: Any) -> None:
        parsed["Errors"] = [
            {
                "PartitionValues": list(wanted[27].values),
                "ErrorDetail": {"ErrorCode": "InternalServiceException"},
            },
            {"PartitionValues": list(wanted[28].values)},
        ]

    glue().meta.events.register("after-call.glue.BatchDeletePartition", reject)
    failed = catalog.delete([s.values for s in wanted[27:]])
    assert failed == {wanted[27].values: "InternalServiceException", wanted[28].values: "UnknownError"}


def test_a_throttled_delete_fails_its_chunk_and_the_next_chunk_still_goes(catalog: Catalog) -> None:
    wanted = specs(30)
    catalog.create(scheme(), wanted)
    helpers.inject_error(glue(), "BatchDeletePartition", "ThrottlingException", times=1)
    failed = catalog.delete([s.values for s in wanted])
    assert set(failed) == {s.values for s in wanted[:25]}
    assert all("ThrottlingException" in why for why in failed.values())
    assert set(partitions(glue())) == {s.values for s in wanted[:25]}


@pytest.mark.parametrize("segments", [1, 3, 50])
def test_partitions_reads_every_partition_once_with_its_folder_and_parameters(
    catalog: Catalog, segments: int
) -> None:
    wanted = specs(40)
    catalog.create(scheme(), wanted)
    glue().update_partition(
        DatabaseName=DATABASE,
        TableName=TABLE,
        PartitionValueList=list(wanted[0].values),
        PartitionInput={**scheme().partition_input(wanted[0]), "Parameters": {"b": "2", "a": "1"}},
    )
    calls = Calls("GetPartitions")
    found = list(catalog.partitions(segments=segments))
    # "TotalSegments: maximum value of 10": Glue refuses more (moto does not).
    assert {p.get("Segment", {}).get("TotalSegments", 1) for p in calls.params} == {min(segments, 10)}
    assert sorted(p.values for p in found) == sorted(s.values for s in wanted)
    by_values = {p.values: p for p in found}
    assert by_values[wanted[0].values].parameters == (("a", "1"), ("b", "2"))
    assert all(by_values[s.values].location == s.location for s in wanted)
    assert by_values[wanted[1].values].fingerprint == by_values[wanted[2].values].fingerprint != ()
    assert all(p.fingerprint == () for p in catalog.partitions(columns=False))


def test_partitions_are_filtered_by_an_expression(catalog: Catalog) -> None:
    wanted = specs(5)
    catalog.create(scheme(), wanted)
    calls = Calls("GetPartitions")
    found = list(catalog.partitions("date = '2001-01-01'", columns=False))
    assert [p.values for p in found] == [("2001-01-01",)]
    assert calls.params[0]["Expression"] == "date = '2001-01-01'" and calls.params[0]["ExcludeColumnSchema"]


def test_some_partitions_reads_one_short_page_without_columns(catalog: Catalog) -> None:
    wanted = specs(30)
    catalog.create(scheme(), wanted)
    calls = Calls("GetPartitions")
    some = catalog.some_partitions(count=5)
    # (moto answers every partition: Glue stops at MaxResults)
    assert all(location.startswith(CLASSIC_LOCATION) for _, location in some) and some
    assert calls.params == [
        {"DatabaseName": DATABASE, "TableName": TABLE, "MaxResults": 5, "ExcludeColumnSchema": True}
    ]


def test_the_catalog_id_is_sent_only_for_another_account() -> None:
    assert catalog_id_args("") == {}
    assert catalog_id_args("111122223333") == {"CatalogId": "111122223333"}


def test_errors_after_one_that_cannot_be_placed_are_still_read(catalog: Catalog) -> None:
    wanted = specs(2)
    real = glue().batch_create_partition

    def create_first_reject_second(**kwargs: Any) -> Any:
        real(**{**kwargs, "PartitionInputList": kwargs["PartitionInputList"][:1]})
        return {
            "Errors": [
                {"PartitionValues": ["1999-01-01"], "ErrorDetail": {"ErrorCode": "X"}},
                {
                    "PartitionValues": list(wanted[1].values),
                    "ErrorDetail": {"ErrorCode": "ResourceNumberLimitExceededException"},
                },
            ]
        }

    glue().batch_create_partition = create_first_reject_second  # type: ignore[method-assign]
    outcomes = catalog.create(scheme(), wanted)
    # The second keeps its own reason (an operator acts on it), not "an error nobody sent".
    assert outcomes[wanted[0]] == EXISTS
    assert outcomes[wanted[1]].startswith("ResourceNumberLimitExceededException: the table is at Glue's")
