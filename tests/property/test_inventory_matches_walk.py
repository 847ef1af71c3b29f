"""An inventory of a bucket gives the messages the folder walk gives by listing it, message for message.

Any set of keys (plain and Hive, daily and hourly, under free prefixes, folder markers, stray
files, copies nested in another AWSLogs tree), any table Location (an ancestor folder of some
key), any partition keys and any date range: inventory_messages over the keys equals
FolderWalk.messages over a listing of the same keys.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from vpcflow_partitioner.inventory import inventory_messages, least_per_folder
from vpcflow_partitioner.scheme import Scheme
from vpcflow_partitioner.sources import DateRange, FolderWalk

BUCKET = "b"
ACCOUNTS = ("111111111111", "222222222222")
TABLES = {
    "multi": ["aws_account_id", "aws_region", "year", "month", "day"],
    "hive": ["aws-account-id", "aws-service", "aws-region", "year", "month", "day"],
    "date": ["date"],
    "month": ["year", "month"],
    "account": ["aws_account_id"],
}
PREFIXES = ("", "logs/", "logs/AWSLogs/", f"x/AWSLogs/{ACCOUNTS[0]}/copy/", "a b/")
DAYS = [date(2024, 2, 28), date(2024, 2, 29), date(2024, 3, 1), date(2025, 1, 1)]


class ListingS3:
    """ListObjectsV2 over a sorted set of keys, in one page (the walk's paging is tested elsewhere)."""

    def __init__(self, keys: set[str]) -> None:
        self.keys = sorted(keys)

    def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]:
        prefix, delimiter = kwargs["Prefix"], kwargs.get("Delimiter")
        contents: list[dict[str, str]] = []
        prefixes: list[str] = []
        for key in self.keys:
            if not key.startswith(prefix):
                continue
            cut = key.find("/", len(prefix)) if delimiter else -1
            if cut >= 0:
                common = key[: cut + 1]
                if not prefixes or prefixes[-1] != common:
                    prefixes.append(common)
            else:
                contents.append({"Key": key})
        return {
            "Contents": contents,
            "CommonPrefixes": [{"Prefix": p} for p in prefixes],
            "IsTruncated": False,
        }


@st.composite
def keys(draw: Any) -> str:
    prefix = draw(st.sampled_from(PREFIXES))
    account = draw(st.sampled_from(ACCOUNTS))
    day = draw(st.sampled_from(DAYS))
    hour = draw(st.sampled_from([None, 0, 23]))
    if draw(st.booleans()):
        folder = f"AWSLogs/aws-account-id={account}/aws-service=vpcflowlogs/aws-region=eu-west-1/"
        folder += f"year={day:%Y}/month={day:%m}/day={day:%d}/" + (
            "" if hour is None else f"hour={hour:02d}/"
        )
    else:
        folder = f"AWSLogs/{account}/vpcflowlogs/eu-west-1/{day:%Y/%m/%d}/" + (
            "" if hour is None else f"{hour:02d}/"
        )
    name = draw(st.sampled_from(["a.log.gz", "b.log.parquet", "notes.txt", ""]))  # "": a folder marker
    return f"{prefix}{folder}{name}"


# A text table reads .log.gz files, a Parquet table .log.parquet files, another format both.
INPUT_FORMATS = {
    "text": "org.apache.hadoop.mapred.TextInputFormat",
    "parquet": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "other": "com.example.CustomInputFormat",
}


def table(location: str, kind: str, hourly: bool, file_format: str = "other") -> Scheme:
    names = TABLES[kind] + (["hour"] if hourly else [])
    return Scheme.from_table(
        {
            "Name": "t",
            "DatabaseName": "d",
            "PartitionKeys": [{"Name": k, "Type": "string"} for k in names],
            "StorageDescriptor": {"Location": location, "InputFormat": INPUT_FORMATS[file_format]},
        }
    )


@given(
    stored=st.sets(keys(), min_size=1, max_size=12),
    pick=st.integers(0, 10_000),
    depth=st.integers(0, 12),
    kind=st.sampled_from(sorted(TABLES)),
    hourly=st.booleans(),
    file_format=st.sampled_from(sorted(INPUT_FORMATS)),
    since=st.sampled_from([None, *DAYS]),
    until=st.sampled_from([None, *DAYS]),
)
@settings(max_examples=400, deadline=None)
def test_inventory_messages_equal_the_walks(
    stored: set[str],
    pick: int,
    depth: int,
    kind: str,
    hourly: bool,
    file_format: str,
    since: date | None,
    until: date | None,
) -> None:
    ordered = sorted(stored)
    key = ordered[pick % len(ordered)]
    ancestors = ["", *(key[: i + 1] for i, c in enumerate(key) if c == "/")]
    scheme = table(f"s3://{BUCKET}/{ancestors[min(depth, len(ancestors) - 1)]}", kind, hourly, file_format)
    dates = DateRange(since, until)
    walked = sorted(FolderWalk(ListingS3(stored), scheme, dates, workers=1).messages(), key=lambda m: m.id)
    rows = [(BUCKET, k) for k in stored] + [("other", key)]
    inventoried = list(inventory_messages(rows, scheme, dates))
    assert inventoried == walked
    # A report read once for several tables: each folder's least key of each format is enough.
    assert list(inventory_messages(least_per_folder(rows), scheme, dates)) == walked
