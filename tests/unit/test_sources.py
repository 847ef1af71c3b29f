"""The folder walk over an S3 that pages: every folder past the first page is found.

S3 answers ListObjectsV2 in pages of at most 1,000 keys and CommonPrefixes together; a
walk that reads only the first page silently misses folders. moto pages as S3 does, but
only past 1,000 entries, so this S3 pages after `page` entries to run the same code path
with a handful of keys.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from vpcflow_partitioner.envelopes import Message
from vpcflow_partitioner.keys import parse_key
from vpcflow_partitioner.scheme import ConfigurationError, Scheme
from vpcflow_partitioner.sources import DateRange, FolderWalk, sweep_messages

ACCOUNT = "123456789012"
BUCKET = "b"


class PagingS3:
    """ListObjectsV2 over a set of keys, `page` entries (keys and CommonPrefixes) a page."""

    def __init__(self, keys: list[str], page: int) -> None:
        self.keys = sorted(keys)
        self.page = page
        self.calls: list[dict[str, Any]] = []

    def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        # A walk that asks for the same page again and again would never end: fail instead.
        assert self.calls.count(kwargs) == 1, f"the same page asked for twice: {kwargs}"
        prefix, delimiter = kwargs["Prefix"], kwargs.get("Delimiter")
        entries: list[tuple[str, str]] = []  # (kind, name), in key order, each prefix once
        for key in self.keys:
            if not key.startswith(prefix):
                continue
            rest = key[len(prefix) :]
            if delimiter and delimiter in rest:
                common = prefix + rest[: rest.index(delimiter) + 1]
                if ("prefix", common) not in entries:
                    entries.append(("prefix", common))
            else:
                entries.append(("key", key))
        start = int(kwargs.get("ContinuationToken", "0"))
        size = min(self.page, kwargs.get("MaxKeys", 1000))
        chunk = entries[start : start + size]
        response: dict[str, Any] = {
            "Contents": [{"Key": name} for kind, name in chunk if kind == "key"],
            "CommonPrefixes": [{"Prefix": name} for kind, name in chunk if kind == "prefix"],
            "IsTruncated": start + size < len(entries),
        }
        if response["IsTruncated"]:
            response["NextContinuationToken"] = str(start + size)
        return response


def scheme(location: str, keys: list[str]) -> Scheme:
    return Scheme.from_table(
        {
            "Name": "t",
            "DatabaseName": "d",
            "PartitionKeys": [{"Name": k, "Type": "string"} for k in keys],
            "Parameters": {"projection.day.format": "yyyy/MM/dd"},
            "StorageDescriptor": {"Location": location},
        }
    )


def flow_key(day: str, region: str = "us-east-1", hour: str = "", name: str = "a", prefix: str = "") -> str:
    folder = f"{prefix}AWSLogs/{ACCOUNT}/vpcflowlogs/{region}/{day.replace('-', '/')}/"
    folder += f"{hour}/" if hour else ""
    return f"{folder}{ACCOUNT}_vpcflowlogs_{region}_fl-1_{day.replace('-', '')}T0005Z_{name}.log.gz"


def found(messages: list[Message]) -> set[str]:
    return {ref.key for m in messages for ref in m.objects}


DAYS = [f"2024-0{m}-{d:02d}" for m in (1, 2) for d in (1, 2, 28)]
MULTI = ["aws_account_id", "aws_region", "day"]


@pytest.mark.parametrize("page", [1, 2, 3, 1000])
def test_the_walk_finds_every_folder_whatever_the_page_size(page: int) -> None:
    keys = [flow_key(d, region) for d in DAYS for region in ("eu-west-1", "us-east-1")]
    s3 = PagingS3(keys, page)
    walk = FolderWalk(s3, scheme(f"s3://{BUCKET}/AWSLogs/", MULTI), workers=2)
    assert found(list(walk.messages())) == set(keys)
    assert walk.list_calls == len(s3.calls)


def test_a_leaf_whose_first_page_holds_no_flow_log_is_probed_past_it() -> None:
    day = flow_key("2024-01-01")
    folder = day.rpartition("/")[0] + "/"
    strays = [f"{folder}{n:03d}.txt" for n in range(5)]  # a marker, then stray files sorting first
    s3 = PagingS3([folder, *strays, day], page=2)
    walk = FolderWalk(s3, scheme(f"s3://{BUCKET}/AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/", ["date"]))
    assert found(list(walk.messages())) == {day}
    assert walk.objects_probed == 7  # the marker, five strays, the flow log


def test_a_leaf_without_any_flow_log_gives_no_message_and_the_listing_ends() -> None:
    folder = flow_key("2024-01-01").rpartition("/")[0] + "/"
    s3 = PagingS3([folder, f"{folder}notes.txt", f"{folder}x.log.gz.tmp"], page=1)
    walk = FolderWalk(s3, scheme(f"s3://{BUCKET}/AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/", ["date"]))
    assert list(walk.messages()) == []


class EndlessS3(PagingS3):
    """An S3 that says IsTruncated but gives no token: the walk must not loop on page one."""

    def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]:
        response = super().list_objects_v2(**kwargs)
        response.pop("NextContinuationToken", None)
        response["IsTruncated"] = True
        return response


def test_a_truncated_answer_without_a_token_ends_the_listing() -> None:
    marker_only = flow_key("2024-01-05").rpartition("/")[0] + "/notes.txt"  # a leaf to probe in vain
    keys = [flow_key(d) for d in DAYS]
    s3 = EndlessS3([*keys, marker_only], page=1000)
    walk = FolderWalk(s3, scheme(f"s3://{BUCKET}/AWSLogs/", MULTI), workers=1)
    assert found(list(walk.messages())) == set(keys)


@pytest.mark.parametrize(
    ("since", "until", "expected"),
    [
        (None, None, DAYS),
        (date(2024, 1, 2), None, DAYS[1:]),
        (None, date(2024, 2, 1), DAYS[:4]),
        (date(2024, 1, 28), date(2024, 2, 1), ["2024-01-28", "2024-02-01"]),
        (date(2024, 1, 3), date(2024, 1, 27), []),
        (date(2023, 12, 31), date(2024, 12, 31), DAYS),
    ],
)
def test_the_date_range_is_inclusive_at_both_ends(
    since: date | None, until: date | None, expected: list[str]
) -> None:
    s3 = PagingS3([flow_key(d) for d in DAYS], page=3)
    walk = FolderWalk(s3, scheme(f"s3://{BUCKET}/AWSLogs/", MULTI), DateRange(since, until), workers=2)
    assert found(list(walk.messages())) == {flow_key(d) for d in expected}


def test_date_range_admits_a_folder_that_can_hold_a_date_in_range() -> None:
    dates = DateRange(date(2024, 2, 10), date(2024, 3, 5))
    assert dates.admits((2024,)) and dates.admits((2024, 2)) and dates.admits((2024, 3))
    assert not dates.admits((2023,)) and not dates.admits((2025,)) and not dates.admits((2024, 4))
    assert dates.admits((2024, 2, 10)) and dates.admits((2024, 3, 5))
    assert not dates.admits((2024, 2, 9)) and not dates.admits((2024, 3, 6))


def test_the_walk_descends_a_free_prefix_of_any_depth_to_awslogs() -> None:
    deep = flow_key("2024-01-01", prefix="a/b/c/d/")
    shallow = flow_key("2024-01-02", prefix="x/")
    s3 = PagingS3([deep, shallow, "a/b/readme.txt", "other/file.log.gz"], page=1)
    walk = FolderWalk(s3, scheme(f"s3://{BUCKET}/", ["date", *MULTI[:2]]), workers=2)
    assert found(list(walk.messages())) == {deep, shallow}


def test_the_walk_counts_its_folders_and_stops_at_its_budget() -> None:
    keys = [flow_key(d, region) for d in DAYS for region in ("eu-west-1", "us-east-1")]
    full = FolderWalk(PagingS3(keys, 1000), scheme(f"s3://{BUCKET}/AWSLogs/", MULTI), workers=1)
    assert len(list(full.messages())) == len(keys) and not full.truncated
    # AWSLogs/, the account, its service folder, two regions, their years and months
    assert full.folders_walked == 1 + 1 + 1 + 2 + 2 + 4
    short = FolderWalk(
        PagingS3(keys, 1000), scheme(f"s3://{BUCKET}/AWSLogs/", MULTI), workers=1, max_list_calls=3
    )
    assert len(list(short.messages())) == 0 and short.truncated
    assert short.list_calls <= 3


def test_a_daily_file_under_an_hourly_table_is_reported_not_lost() -> None:
    hourly = flow_key("2024-01-01", hour="05")
    daily = flow_key("2024-01-01", name="daily")
    s3 = PagingS3([hourly, daily], page=1)
    walk = FolderWalk(s3, scheme(f"s3://{BUCKET}/AWSLogs/", [*MULTI, "hour"]), workers=2)
    assert found(list(walk.messages())) == {hourly, daily}


def test_a_table_location_at_the_leaf_is_probed_alone() -> None:
    key = flow_key("2024-01-01")
    folder = f"AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/"
    s3 = PagingS3([key], page=1)
    walk = FolderWalk(s3, scheme(f"s3://{BUCKET}/{folder}", ["aws_region"]))
    assert [m.id for m in walk.messages()] == [f"s3://{BUCKET}/{folder}"]
    assert walk.folders_walked == 0 and walk.list_calls == 1


def test_the_sweep_covers_the_last_days_including_today() -> None:
    days = ["2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01", "2024-03-02"]  # and a future one
    s3 = PagingS3([flow_key(d) for d in days], page=2)
    now = datetime(2024, 3, 1, 23, 59, tzinfo=UTC).timestamp()
    messages, truncated = sweep_messages(s3, scheme(f"s3://{BUCKET}/AWSLogs/", MULTI), 2, now)
    assert found(messages) == {flow_key("2024-02-29"), flow_key("2024-03-01")} and not truncated
    parsed = [parse_key(k) for k in found(messages)]
    assert all(p is not None and not p.nested for p in parsed)


# ---------------------------------------------------------------- start and region folders


def test_region_folders_are_found_under_a_free_prefix_in_both_layouts() -> None:
    hive = "logs/AWSLogs/aws-account-id=210987654321/aws-service=vpcflowlogs/aws-region=eu-west-1/"
    keys = [
        flow_key("2024-01-01", "us-east-1", prefix="logs/"),
        flow_key("2024-02-01", "eu-west-1", prefix="logs/"),
        f"{hive}year=2024/month=01/day=01/x.log.gz",
        "logs/readme.txt",
    ]
    s3 = PagingS3(keys, page=1)
    walk = FolderWalk(s3, scheme(f"s3://{BUCKET}/", MULTI), workers=2)
    assert sorted(walk.region_folders()) == [
        (f"logs/AWSLogs/{ACCOUNT}/vpcflowlogs/eu-west-1/", ACCOUNT, "eu-west-1"),
        (f"logs/AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/", ACCOUNT, "us-east-1"),
        (hive, "210987654321", "eu-west-1"),
    ]
    # The bucket root, logs/, AWSLogs/, two accounts, their service folders: never a region's.
    assert walk.folders_walked == 1 + 1 + 1 + 2 + 2 and walk.list_calls == len(s3.calls)
    assert not any(call["Prefix"].endswith(("-1/", "2024/")) for call in s3.calls)


def test_a_location_at_or_below_a_region_folder_is_its_own_region_folder() -> None:
    folder = f"AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/"
    s3 = PagingS3([flow_key("2024-01-01")], page=1)
    walk = FolderWalk(s3, scheme(f"s3://{BUCKET}/{folder}", ["date"]))
    assert walk.region_folders() == [(folder, ACCOUNT, "us-east-1")] and walk.list_calls == 0
    # Below a region folder the Location itself: a slice's walk may not start above it.
    year = FolderWalk(s3, scheme(f"s3://{BUCKET}/{folder}2024/", ["date"]))
    assert year.region_folders() == [(f"{folder}2024/", ACCOUNT, "us-east-1")]


def test_years_are_read_from_one_listing_of_a_region_folder() -> None:
    keys = [flow_key(d) for d in ("2022-05-01", "2024-01-01", "2024-03-01")]
    s3 = PagingS3([*keys, f"AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/notes/x.txt"], page=1000)
    walk = FolderWalk(s3, scheme(f"s3://{BUCKET}/AWSLogs/", MULTI))
    assert walk.years(f"AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/") == [2022, 2024]
    assert walk.list_calls == 1
    assert walk.years(f"AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/2024/") == [2024]


def test_a_walk_from_a_start_folder_sees_only_that_folder_and_its_dates() -> None:
    keys = [flow_key(d, region) for d in DAYS for region in ("eu-west-1", "us-east-1")]
    s3 = PagingS3(keys, page=1000)
    start = f"AWSLogs/{ACCOUNT}/vpcflowlogs/eu-west-1/"
    dates = DateRange(date(2024, 2, 1), date(2024, 2, 29))
    walk = FolderWalk(s3, scheme(f"s3://{BUCKET}/AWSLogs/", MULTI), dates, start=start)
    assert found(list(walk.messages())) == {flow_key(d, "eu-west-1") for d in DAYS if d.startswith("2024-02")}
    assert walk.folders_walked == 3  # the region, its year, its month


@pytest.mark.parametrize(
    ("start", "why"),
    [
        ("other/AWSLogs/", "is not a folder under the table Location"),
        ("AWSLogs/123456789012/vpcflowlogs/us-east-1", "is not a folder under the table Location"),
        ("AWSLogs/123456789012/elasticloadbalancing/", "is not a folder flow logs are delivered under"),
        ("AWSLogs/123456789012/vpcflowlogs/us-east-1/2024/01/01/05/", "is below the day folders"),
    ],
)
def test_a_start_folder_the_walk_cannot_begin_at_is_refused_in_one_line(start: str, why: str) -> None:
    with pytest.raises(ConfigurationError, match=why) as refused:
        FolderWalk(PagingS3([], 1), scheme(f"s3://{BUCKET}/AWSLogs/", MULTI), start=start)
    assert "\n" not in str(refused.value)
