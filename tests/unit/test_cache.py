from __future__ import annotations

import json

from vpcflow_partitioner.cache import SeenSet, _status, item_id
from vpcflow_partitioner.scheme import PartitionSpec, Scheme


def test_seen_set_is_bounded_and_keeps_the_recently_used() -> None:
    seen = SeenSet(limit=3, ttl_seconds=60)
    for key in "abc":
        seen.add(key, f"s3://b/{key}/", now=0)
    assert seen.get("a", now=1) == "s3://b/a/"  # touch a: b is now the oldest
    seen.add("d", "s3://b/d/", now=1)
    assert len(seen) == 3 and seen.get("b", now=1) is None
    assert [seen.get(k, now=1) for k in "acd"] == ["s3://b/a/", "s3://b/c/", "s3://b/d/"]


def test_seen_set_trusts_an_entry_for_ttl_seconds_then_says_it_expired() -> None:
    seen = SeenSet(ttl_seconds=300)
    seen.add("a", "s3://b/a/", now=1000)
    assert seen.get("a", now=1299) == "s3://b/a/" and not seen.expired("a", now=1299)
    assert seen.get("a", now=1300) is None and seen.expired("a", now=1300)
    assert not seen.expired("never seen", now=0)
    never = SeenSet(ttl_seconds=0)  # TABLE_REFRESH_SECONDS=0: ask every time
    never.add("a", "s3://b/a/", now=1000)
    assert never.get("a", now=1000) is None and len(never) == 0


def test_an_entry_past_its_expiration_is_absent_even_if_ttl_has_not_deleted_it() -> None:
    item = {"id": {"S": "x"}, "status": {"S": "present"}, "expiration": {"N": "1000"}}
    assert _status(item, now=999.0) == "present"
    assert _status(item, now=1000.5) is None
    assert _status({"id": {"S": "x"}}, now=0) is None


def test_item_id_names_table_create_time_and_values_unambiguously() -> None:
    table = {
        "Name": "t", "DatabaseName": "d", "CreateTime": "2024-01-01T00:00:00+00:00",
        "PartitionKeys": [{"Name": "accid"}, {"Name": "region"}, {"Name": "day"}],
        "Parameters": {"projection.day.format": "yyyy/MM/dd"},
        "StorageDescriptor": {"Location": "s3://b/AWSLogs/"},
    }  # fmt: skip
    scheme = Scheme.from_table(table, catalog_id="123456789012")
    spec = PartitionSpec(("111122223333", "us-east-1", "2022/08/29"), "s3://b/x/")
    assert json.loads(item_id(scheme, spec)) == [
        "123456789012", "d", "t", "2024-01-01T00:00:00+00:00", "111122223333", "us-east-1", "2022/08/29"
    ]  # fmt: skip
    recreated = Scheme.from_table(
        table | {"CreateTime": "2024-02-01T00:00:00+00:00"}, catalog_id="123456789012"
    )
    assert item_id(recreated, spec) != item_id(scheme, spec)
