"""Work items and the plan of a distributed backfill: pure, no AWS."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from typing import Any

import pytest
from botocore.exceptions import ClientError
from vpcflow_partitioner import backfill
from vpcflow_partitioner.backfill import (
    InventoryFile,
    PlanError,
    QueueProgress,
    WorkItem,
    WorkItemError,
    check_slicable,
    dead_letter_queue,
    months,
    move_messages,
    parse_body,
    plan,
    progress,
    run_item,
    run_records,
    send,
)
from vpcflow_partitioner.errors import TransientError
from vpcflow_partitioner.pipeline import MessageResult, Report
from vpcflow_partitioner.scheme import ConfigurationError, Scheme
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


def test_a_one_day_item_and_an_inventory_item_with_an_md5_or_no_schema_go_through_unchanged() -> None:
    one_day = WorkItem(TABLE, "b", EAST.folder, date(2024, 2, 29), date(2024, 2, 29))
    assert parse_body(one_day.to_body()) == one_day
    checked = WorkItem(TABLE, inventory=InventoryFile("inv", "data/f.csv.gz", "CSV", "", "0f" * 16))
    assert json.loads(checked.to_body())["inventory"]["md5"] == "0f" * 16
    assert parse_body(checked.to_body()) == checked


def test_an_item_names_its_table_place_and_dates_open_or_not() -> None:
    assert str(WorkItem(TABLE, "b", EAST.folder, until=date(2024, 2, 29))) == (
        f"{TABLE} s3://b/{EAST.folder} .....2024-02-29"
    )
    inventory = InventoryFile("inv", "data/f.csv.gz", "CSV", "Bucket, Key")
    assert str(WorkItem(TABLE, since=date(2024, 2, 1), inventory=inventory)) == (
        f"{TABLE} inventory s3://inv/data/f.csv.gz 2024-02-01....."
    )


def test_a_body_is_quoted_whole_up_to_80_characters_and_cut_beyond() -> None:
    with pytest.raises(WorkItemError) as whole:
        parse_body("x" * 78)  # its repr, quotes included, is 80 characters
    assert str(whole.value) == f"not JSON: '{'x' * 78}'"
    with pytest.raises(WorkItemError) as cut:
        parse_body("x" * 79)
    assert str(cut.value) == f"not JSON: '{'x' * 76}..."


def test_year_slices_are_clipped_to_the_range_and_end_with_it() -> None:
    items = plan(TABLE, "b", [EAST], DateRange(date(2023, 3, 1), date(2024, 5, 31)), per="year")
    assert [(i.since, i.until) for i in items] == [
        (date(2023, 3, 1), date(2023, 12, 31)),
        (date(2024, 1, 1), date(2024, 5, 31)),
    ]


def test_a_region_folder_without_years_listed_gets_no_item() -> None:
    years = {EAST.folder: [2024]}  # WEST listed nothing
    closed = plan(TABLE, "b", [EAST, WEST], DateRange(date(2024, 1, 1), date(2024, 1, 31)), years)
    assert [(i.folder, i.since) for i in closed] == [(EAST.folder, date(2024, 1, 1))]
    opened = plan(TABLE, "b", [EAST, WEST], DateRange(since=date(2024, 12, 1)), years)
    assert [(i.folder, i.since) for i in opened] == [(EAST.folder, date(2024, 12, 1))]


def test_the_refusals_of_a_plan_say_what_to_do_instead() -> None:
    with pytest.raises(PlanError) as open_range:
        plan(TABLE, "b", [EAST], DateRange(since=date(2024, 1, 1)))
    assert str(open_range.value) == (
        "an open date range needs the region folders' years listed (or --since and --until)"
    )
    with pytest.raises(PlanError) as coarse:
        check_slicable("region", TABLE)
    assert str(coarse.value) == (
        f"table {TABLE} partitions by region folders, not by date: distributed slices are "
        "one region's month; run `backfill` without --distributed"
    )


class Failing(FlakySqs):
    """SendMessageBatch that refuses entry "1" with a message, or answers nothing at all."""

    def __init__(self, times: int, silent: bool = False) -> None:
        super().__init__(times)
        self.silent = silent

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        if self.silent:
            self.calls.append([e["Id"] for e in Entries])
            return {}
        response = super().send_message_batch(QueueUrl, Entries)
        for failure in response["Failed"]:
            failure["Message"] = "try later"
        return response


def test_send_waits_longer_after_each_refusal_and_says_why_it_gave_up() -> None:
    waits: list[float] = []
    items = [WorkItem(TABLE, "b", EAST.folder)] * 2
    assert send(Failing(times=2), "url", items, sleep=waits.append) == 2
    assert waits == [0.2, 0.4]
    with pytest.raises(TransientError) as refused:
        send(Failing(times=99), "url", items, sleep=lambda _: None)
    assert str(refused.value) == (
        "SQS SendMessageBatch url: 1 work items not sent (InternalError: try later); 1 sent before them"
    )
    with pytest.raises(TransientError, match=r"2 work items not sent \(no answer: \); 0 sent"):
        send(Failing(times=0, silent=True), "url", items, sleep=lambda _: None)


class BrokenSqs:
    def send_message_batch(self, **_: Any) -> dict[str, Any]:
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "SendMessageBatch")


def test_an_sqs_error_names_the_queue() -> None:
    with pytest.raises(TransientError) as failed:
        send(BrokenSqs(), "https://sqs/backfill", [WorkItem(TABLE, "b", EAST.folder)], sleep=lambda _: None)
    assert str(failed.value) == "SQS https://sqs/backfill: ThrottlingException: slow"


class Attributes:
    """GetQueueAttributes answering only the attributes asked for, as SQS does; GetQueueUrl."""

    def __init__(self, queues: dict[str, dict[str, str]]) -> None:
        self.queues = queues
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:
        held = self.queues[QueueUrl]
        return {"Attributes": {n: held[n] for n in AttributeNames if n in held}}

    def get_queue_url(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("GetQueueUrl", kwargs))
        return {"QueueUrl": f"https://sqs/{kwargs['QueueOwnerAWSAccountId']}/{kwargs['QueueName']}"}


def test_progress_counts_waiting_delayed_in_flight_and_dead_apart() -> None:
    sqs = Attributes(
        {
            "queue": {
                "ApproximateNumberOfMessages": "5",
                "ApproximateNumberOfMessagesNotVisible": "3",
                "ApproximateNumberOfMessagesDelayed": "2",
                "ApproximateNumberOfMessagesMoved": "7",  # not asked for: not counted
            },
            "dlq": {"ApproximateNumberOfMessages": "1", "ApproximateNumberOfMessagesNotVisible": "1"},
        }
    )
    assert progress(sqs, "queue", "dlq") == QueueProgress(waiting=7, in_flight=3, dead=2)
    assert progress(sqs, "queue") == QueueProgress(7, 3, None)


def test_the_dlq_is_found_by_name_in_its_own_account() -> None:
    policy = {"deadLetterTargetArn": "arn:aws:sqs:eu-west-1:210987654321:backfill-dlq", "maxReceiveCount": 3}
    sqs = Attributes({"queue": {"RedrivePolicy": json.dumps(policy)}, "plain": {}})
    assert dead_letter_queue(sqs, "queue") == "https://sqs/210987654321/backfill-dlq"
    assert sqs.calls == [
        ("GetQueueUrl", {"QueueName": "backfill-dlq", "QueueOwnerAWSAccountId": "210987654321"})
    ]
    assert dead_letter_queue(sqs, "plain") == ""


class Recording(TwoQueues):
    def __init__(self) -> None:
        super().__init__()
        self.receives: list[dict[str, Any]] = []

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        self.receives.append(kwargs)
        return super().receive_message(**kwargs)


def test_moving_the_dlq_long_polls_it() -> None:
    queues = Recording()
    move_messages(queues, "dlq", "queue", wait_seconds=4, visibility_timeout=30)
    # Short polling may answer nothing while messages wait: two empty answers would end the move early.
    assert {
        (r["WaitTimeSeconds"], r["VisibilityTimeout"], r["MaxNumberOfMessages"]) for r in queues.receives
    } == {(4, 30, 10)}


class ListingS3:
    """ListObjectsV2 (with Delimiter) over a set of keys, in one page."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = sorted(keys)

    def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]:
        prefix, delimiter = kwargs["Prefix"], kwargs.get("Delimiter")
        contents, prefixes = [], []
        for key in self.keys:
            if not key.startswith(prefix):
                continue
            rest = key[len(prefix) :]
            if delimiter and delimiter in rest:
                common = prefix + rest[: rest.index(delimiter) + 1]
                if common not in prefixes:
                    prefixes.append(common)
            else:
                contents.append({"Key": key})
        return {
            "Contents": contents[: kwargs.get("MaxKeys", 1000)],
            "CommonPrefixes": [{"Prefix": p} for p in prefixes],
            "IsTruncated": False,
        }


class TablePartitioner:
    """What run_item and run_records use of a Partitioner: its table's scheme, and a run that
    records how it was asked and answers with `failed` message ids failed."""

    def __init__(self, failed: tuple[str, ...] = ()) -> None:
        self.failed = failed
        self.runs: list[tuple[list[str], bool]] = []

    def scheme(self, now: float | None = None) -> Scheme:
        return Scheme.from_table(
            {
                "Name": "vpc_flow_logs",
                "DatabaseName": "flowlogs",
                "PartitionKeys": [{"Name": k, "Type": "string"} for k in ("account_id", "region", "date")],
                "StorageDescriptor": {"Location": "s3://b/AWSLogs/"},
            }
        )

    def run(self, messages: Any, now: float, *, use_cache: bool = True, dry_run: bool = False) -> Report:
        ids = [m.id for m in messages]
        self.runs.append((ids, use_cache))
        report = Report(counts=Counter({"PartitionsCreated": len(ids)}))
        report.results = [MessageResult(i, ok=i not in self.failed, notes=("x: failed",)) for i in ids]
        return report


DAY_KEYS = [
    f"{EAST.folder}2024/01/{d:02d}/123456789012_vpcflowlogs_us-east-1_fl-1_x.log.gz" for d in (1, 2, 3)
]


def test_a_slice_asks_glue_never_the_cache() -> None:
    partitioner = TablePartitioner()
    item = WorkItem(TABLE, "b", EAST.folder, date(2024, 1, 2), date(2024, 1, 3))
    run_item(partitioner, ListingS3(DAY_KEYS), item, now=0.0)  # type: ignore[arg-type]
    assert partitioner.runs == [
        ([f"s3://b/{EAST.folder}2024/01/02/", f"s3://b/{EAST.folder}2024/01/03/"], False)
    ]


def test_a_slice_whose_walk_stops_at_the_list_call_budget_fails_loudly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(backfill, "SWEEP_LIST_CALLS", 2)
    item = WorkItem(TABLE, "b", EAST.folder)
    with pytest.raises(
        ConfigurationError, match=r"the walk of .* stopped at 2 list calls before seeing every"
    ):
        run_item(TablePartitioner(), ListingS3(DAY_KEYS), item, now=0.0)  # type: ignore[arg-type]


def test_a_record_whose_partitions_failed_fails_and_is_counted() -> None:
    partitioner = TablePartitioner(failed=(f"s3://b/{EAST.folder}2024/01/01/",))
    records = [
        {"messageId": "m1", "body": WorkItem(TABLE, "b", EAST.folder, until=date(2024, 1, 1)).to_body()},
        {"messageId": "m2", "body": WorkItem(TABLE, "b", EAST.folder, since=date(2024, 1, 2)).to_body()},
    ]
    outcome = run_records(records, lambda _: partitioner, ListingS3(DAY_KEYS), now=0.0)  # type: ignore[arg-type,return-value]
    assert outcome.failed == ["m1"]
    assert outcome.counts == {"PartitionsCreated": 3, "RecordsFailed": 1}
