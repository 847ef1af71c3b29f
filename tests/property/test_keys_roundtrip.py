"""values -> key in each layout -> encoded as S3 encodes it -> unwrapped and parsed -> same values."""

from __future__ import annotations

import json
from datetime import date
from urllib.parse import quote, quote_plus

from hypothesis import given, settings
from hypothesis import strategies as st
from vpcflow_partitioner.envelopes import unwrap
from vpcflow_partitioner.keys import parse_key

accounts = st.from_regex(r"\A\d{12}\Z")
regions = st.sampled_from(
    [
        "us-east-1",
        "eu-west-3",
        "ap-southeast-5",
        "us-gov-west-1",
        "cn-northwest-1",
        "eu-isoe-west-1",
        "us-isob-east-1",
        "il-central-1",
    ]
)
dates = st.dates(min_value=date(1970, 1, 1), max_value=date(2999, 12, 31))
hours = st.one_of(st.none(), st.integers(0, 23))
# Free prefix before AWSLogs/: any printable text, folders included, as users name them.
segment = st.text(
    st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_characters="/\x7f"), min_size=1, max_size=12
)
prefixes = st.lists(segment, max_size=3).map(lambda parts: "".join(p + "/" for p in parts))
names = st.from_regex(r"\A[0-9a-f]{8}\Z")


def build_key(
    prefix: str,
    hive: bool,
    account: str,
    region: str,
    day: date,
    hour: int | None,
    digest: str,
    parquet: bool,
) -> str:
    if hive:
        folder = (
            f"AWSLogs/aws-account-id={account}/aws-service=vpcflowlogs/aws-region={region}/"
            f"year={day:%Y}/month={day:%m}/day={day:%d}/" + (f"hour={hour:02d}/" if hour is not None else "")
        )
    else:
        folder = f"AWSLogs/{account}/vpcflowlogs/{region}/{day:%Y/%m/%d}/" + (
            f"{hour:02d}/" if hour is not None else ""
        )
    suffix = "parquet" if parquet else "gz"
    return f"{prefix}{folder}{account}_vpcflowlogs_{region}_fl-0123456789abcdef0_{day:%Y%m%d}T{(hour or 0):02d}05Z_{digest}.log.{suffix}"


def notification(raw_key: str) -> dict:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "b"}, "object": {"key": raw_key}},
            }
        ]
    }


@settings(max_examples=300, deadline=None)
@given(prefixes, st.booleans(), accounts, regions, dates, hours, names, st.booleans())
def test_every_layout_survives_each_sources_encoding(
    prefix: str,
    hive: bool,
    account: str,
    region: str,
    day: date,
    hour: int | None,
    digest: str,
    parquet: bool,
) -> None:
    key = build_key(prefix, hive, account, region, day, hour, digest, parquet)
    sqs = {
        "Records": [
            {
                "eventSource": "aws:sqs",
                "messageId": "m",
                "body": json.dumps(notification(quote_plus(key, safe="/"))),
            }
        ]
    }
    bridge = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": "b"}, "object": {"key": key}},
    }
    batch = {"invocationSchemaVersion": "2.0", "invocationId": "i", "job": {"id": "j"},
             "tasks": [{"taskId": "t", "s3Bucket": "b", "s3Key": quote(key, safe="/")}]}  # fmt: skip
    for event in (notification(quote_plus(key, safe="/")), sqs, bridge, batch):
        (ref,) = [r for m in unwrap(event).messages for r in m.objects]
        assert ref.key == key
        obj = parse_key(ref.key)
        assert obj is not None
        assert (obj.prefix, obj.hive, obj.account, obj.region, obj.date) == (
            prefix,
            hive,
            account,
            region,
            day,
        )
        assert obj.hour == (None if hour is None else f"{hour:02d}")
        day_folder = f"year={day:%Y}/month={day:%m}/day={day:%d}/" if hive else f"{day:%Y/%m/%d}/"
        assert key.startswith(obj.folder("day")) and obj.folder("day").endswith("/" + day_folder)


@settings(max_examples=200, deadline=None)
@given(accounts, regions, st.integers(1, 9999), st.integers(1, 12), st.integers(1, 31))
def test_only_real_calendar_dates_parse(account: str, region: str, year: int, month: int, day: int) -> None:
    key = f"AWSLogs/{account}/vpcflowlogs/{region}/{year:04d}/{month:02d}/{day:02d}/{account}_vpcflowlogs_{region}_fl-1_x.log.gz"
    try:
        real = date(year, month, day)
    except ValueError:
        real = None
    obj = parse_key(key)
    assert (obj.date if obj else None) == real


@given(st.text(st.sampled_from("ab./-_ zlogpqrtuez"), max_size=16))
def test_the_file_name_check_is_the_key_grammars_file_name(name: str) -> None:
    import re

    from vpcflow_partitioner.keys import _FILE, is_flow_log_name

    assert is_flow_log_name(name) == (re.fullmatch(_FILE, name) is not None)
