"""Work items and the plan of a distributed backfill: pure, no AWS."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from vpcflow_partitioner.backfill import (
    InventoryFile,
    PlanError,
    WorkItem,
    WorkItemError,
    check_slicable,
    months,
    move_messages,
    parse_body,
    plan,
    send,
)
from vpcflow_partitioner.errors import TransientError
from vpcflow_partitioner.sources import DateRange, RegionFolder

TABLE = "flowlogs.vpc_flow_logs"
EAST = RegionFolder("AWSLogs/123456789012/vpcflowlogs/us-east-1/", "123456789012", "us-east-1")
WEST = RegionFolder("AWSLogs/123456789012/vpcflowlogs/eu-west-1/", "123456789012", "eu-west-1")


def test_a_walk_item_goes_through_its_body_unchanged() -> None:
    item = WorkItem(TABLE, "bucket", EAST.folder, date(2024, 2, 1), date(2024, 2, 29))
    body = item.to_body()
    assert json.loads(body) == {
        "v": 1,
        "table": TABLE,
        "bucket": "bucket",
        "folder": EAST.folder,
        "since": "2024-02-01",
        "until": "2024-02-29",
    }
    assert parse_body(body) == item
    open_item = WorkItem("123456789012:flowlogs.t", "bucket", EAST.folder)
    assert parse_body(open_item.to_body()) == open_item and "since" not in open_item.to_body()


def test_an_inventory_item_goes_through_its_body_unchanged() -> None:
    inventory = InventoryFile("inv-bucket", "inv/data/abc.csv.gz", "CSV", "Bucket, Key, Size")
    item = WorkItem(TABLE, inventory=inventory, since=date(2024, 1, 1))
    assert json.loads(item.to_body())["inventory"] == {
        "bucket": "inv-bucket",
        "key": "inv/data/abc.csv.gz",
        "format": "CSV",
        "schema": "Bucket, Key, Size",
    }
    assert parse_body(item.to_body()) == item


GOOD: dict[str, Any] = {"v": 1, "table": TABLE, "bucket": "b", "folder": EAST.folder}


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("not json", "not JSON"),
        ("[1]", "not a JSON object"),
        (json.dumps(GOOD | {"v": 2}), "version 2: this build reads version 1"),
        (json.dumps(GOOD | {"v": True}), "version True"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "v"}), "version None"),
        (json.dumps(GOOD | {"table": "nodot"}), "is not \\[catalog:\\]database.table"),
        (json.dumps(GOOD | {"folder": "AWSLogs"}), "is not a key prefix ending in '/'"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "bucket"}), "'bucket' is missing"),
        (json.dumps(GOOD | {"since": "2024-2-1"}), "is not a date"),
        (json.dumps(GOOD | {"since": "2024-02-30"}), "is not a date"),
        (json.dumps(GOOD | {"since": "2024-03-01", "until": "2024-02-01"}), "is after until"),
        (json.dumps(GOOD | {"extra": 1}), "unknown field 'extra'"),
        (json.dumps({"v": 1, "table": TABLE, "inventory": "x"}), "inventory is not an object"),
        (
            json.dumps(
                {
                    "v": 1,
                    "table": TABLE,
                    "inventory": {"bucket": "b", "key": "k", "format": "JSON", "schema": ""},
                }
            ),
            "inventory format 'JSON'",
        ),
        (
            json.dumps({"v": 1, "table": TABLE, "inventory": {"bucket": "b", "key": "k", "format": "CSV"}}),
            "inventory.'schema' is missing",
        ),
    ],
)
def test_a_malformed_body_is_one_clear_line(body: str, why: str) -> None:
    with pytest.raises(WorkItemError, match=why) as refused:
        parse_body(body)
    assert "\n" not in str(refused.value)


def test_months_are_clipped_to_the_range_and_know_leap_years() -> None:
    assert months(date(2024, 1, 15), date(2024, 3, 10)) == [
        (date(2024, 1, 15), date(2024, 1, 31)),
        (date(2024, 2, 1), date(2024, 2, 29)),  # 2024 is a leap year
        (date(2024, 3, 1), date(2024, 3, 10)),
    ]
    assert months(date(2023, 2, 1), date(2023, 2, 28)) == [(date(2023, 2, 1), date(2023, 2, 28))]
    assert months(date(1900, 2, 1), date(1900, 3, 1))[0][1] == date(1900, 2, 28)  # not a leap year
    assert months(date(2000, 2, 1), date(2000, 3, 1))[0][1] == date(2000, 2, 29)  # a leap year
    assert months(date(2023, 12, 31), date(2024, 1, 1)) == [
        (date(2023, 12, 31), date(2023, 12, 31)),
        (date(2024, 1, 1), date(2024, 1, 1)),
    ]
    assert months(date(2024, 5, 5), date(2024, 5, 5)) == [(date(2024, 5, 5), date(2024, 5, 5))]


def test_a_closed_range_gives_one_item_per_region_and_month_without_listing_years() -> None:
    items = plan(TABLE, "b", [EAST, WEST], DateRange(date(2024, 1, 20), date(2024, 2, 10)))
    assert [(i.folder, i.since, i.until) for i in items] == [
        (EAST.folder, date(2024, 1, 20), date(2024, 1, 31)),
        (EAST.folder, date(2024, 2, 1), date(2024, 2, 10)),
        (WEST.folder, date(2024, 1, 20), date(2024, 1, 31)),
        (WEST.folder, date(2024, 2, 1), date(2024, 2, 10)),
    ]
    assert {(i.table, i.bucket) for i in items} == {(TABLE, "b")}


def test_an_open_range_is_closed_by_each_regions_own_years() -> None:
    years = {EAST.folder: [2022, 2024], WEST.folder: []}
    items = plan(TABLE, "b", [EAST, WEST], DateRange(), years)
    # 2022 and 2024 in full (a leap February), nothing of 2023 (no folder), nothing in the west.
    assert len(items) == 24 and {i.folder for i in items} == {EAST.folder}
    assert (items[0].since, items[-1].until) == (date(2022, 1, 1), date(2024, 12, 31))
    assert (items[13].since, items[13].until) == (date(2024, 2, 1), date(2024, 2, 29))
    since_only = plan(TABLE, "b", [EAST], DateRange(since=date(2024, 11, 15)), years)
    assert [(i.since, i.until) for i in since_only] == [
        (date(2024, 11, 15), date(2024, 11, 30)),
        (date(2024, 12, 1), date(2024, 12, 31)),
    ]
    until_only = plan(TABLE, "b", [EAST], DateRange(until=date(2022, 1, 31)), years)
    assert [(i.since, i.until) for i in until_only] == [(date(2022, 1, 1), date(2022, 1, 31))]
    assert plan(TABLE, "b", [EAST], DateRange(since=date(2025, 1, 1)), years) == []


def test_an_open_range_without_the_years_is_refused() -> None:
    with pytest.raises(PlanError, match="open date range"):
        plan(TABLE, "b", [EAST], DateRange(since=date(2024, 1, 1)))


def test_a_table_coarser_than_a_month_is_not_sliced() -> None:
    check_slicable("day", TABLE)
    check_slicable("month", TABLE)
    with pytest.raises(PlanError, match="partitions by region folders"):
        check_slicable("region", TABLE)


class FlakySqs:
    """SendMessageBatch that refuses entry "1" of each batch `times` times (throttled, not the sender's fault)."""

    def __init__(self, times: int, sender_fault: bool = False) -> None:
        self.times = times
        self.sender_fault = sender_fault
        self.calls: list[list[str]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.calls.append([e["Id"] for e in Entries])
        ok, failed = [], []
        for entry in Entries:
            if entry["Id"] == "1" and self.times > 0:
                self.times -= 1
                failed.append({"Id": "1", "Code": "InternalError", "SenderFault": self.sender_fault})
            else:
                ok.append({"Id": entry["Id"]})
        return {"Successful": ok, "Failed": failed}


def test_send_goes_ten_at_a_time_and_sends_again_only_what_failed() -> None:
    items = [WorkItem(TABLE, "b", EAST.folder, date(2024, 1, d), date(2024, 1, d)) for d in range(1, 24)]
    sqs = FlakySqs(times=2)
    assert send(sqs, "url", items, sleep=lambda _: None) == 23
    assert [len(c) for c in sqs.calls] == [10, 1, 1, 10, 3]
    assert sqs.calls[1] == sqs.calls[2] == ["1"]


def test_send_gives_up_in_one_line_when_sqs_keeps_refusing() -> None:
    items = [WorkItem(TABLE, "b", EAST.folder)] * 3
    with pytest.raises(TransientError, match=r"1 work items not sent .*InternalError.*; 2 sent"):
        send(FlakySqs(times=99), "url", items, sleep=lambda _: None)
    with pytest.raises(TransientError, match="not sent"):
        send(FlakySqs(times=1, sender_fault=True), "url", items, sleep=lambda _: None)


class TwoQueues:
    """A DLQ holding three messages and a target that refuses the body "b" once."""

    def __init__(self) -> None:
        self.dlq = {"a": "rh-a", "b": "rh-b", "c": "rh-c"}
        self.target: list[str] = []
        self.refuse = {"b"}
        self.order: list[str] = []

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        bodies = list(self.dlq)[: kwargs["MaxNumberOfMessages"]]
        return {"Messages": [{"MessageId": b, "ReceiptHandle": self.dlq[b], "Body": b} for b in bodies]}

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.order.append("send")
        ok = [e for e in Entries if e["MessageBody"] not in self.refuse]
        self.refuse.clear()
        self.target += [e["MessageBody"] for e in ok]
        failed = [
            {"Id": e["Id"], "Code": "InternalError", "SenderFault": False} for e in Entries if e not in ok
        ]
        return {"Successful": [{"Id": e["Id"]} for e in ok], "Failed": failed}

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.order.append("delete")
        for entry in Entries:
            self.dlq = {b: rh for b, rh in self.dlq.items() if rh != entry["ReceiptHandle"]}
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}


def test_moving_the_dlq_deletes_only_what_was_sent_and_only_after_sending() -> None:
    queues = TwoQueues()
    assert move_messages(queues, "dlq", "queue", wait_seconds=1) == 3
    assert sorted(queues.target) == ["a", "b", "c"] and queues.dlq == {}
    # "b" was refused by the first send: it stayed in the DLQ and went with the next receive.
    assert queues.order == ["send", "delete", "send", "delete"]
