"""S3 Inventory reports on moto: CSV, ORC and Parquet read back to the keys, and to the walk's messages."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from datetime import date
from typing import Any
from urllib.parse import quote_plus

import pyarrow as pa
import pyarrow.orc as orc
import pyarrow.parquet as pq
import pytest
from helpers import CallCounter, inject_error
from vpcflow_partitioner import aws, inventory
from vpcflow_partitioner.errors import TransientError
from vpcflow_partitioner.inventory import (
    InventoryCounts,
    InventoryError,
    inventory_messages,
    inventory_objects,
    read_manifest,
)
from vpcflow_partitioner.scheme import Scheme
from vpcflow_partitioner.sources import DateRange, FolderWalk

SOURCE = "flow-logs"
DEST = "inventory-reports"
REPORT = f"inv/{SOURCE}/daily"
MANIFEST = f"{REPORT}/2024-03-15T01-00Z/manifest.json"
ACCOUNT = "123456789012"
PLAIN = f"AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/"
HIVE = f"AWSLogs/aws-account-id={ACCOUNT}/aws-service=vpcflowlogs/aws-region=eu-west-1/"
ORC_SCHEMA = "struct<bucket:string,key:string,version_id:string,is_latest:boolean,is_delete_marker:boolean,size:bigint>"
PARQUET_SCHEMA = (
    "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); "
    "optional binary version_id (UTF8); optional boolean is_latest; optional boolean is_delete_marker; "
    "optional int64 size; }"
)
CSV_SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size"

# (key, is_latest, is_delete_marker): what a versioned bucket's report holds.
ROWS = [
    (f"{PLAIN}2024/03/10/{ACCOUNT}_vpcflowlogs_us-east-1_fl-1_20240310T0000Z_a.log.gz", True, False),
    (f"{HIVE}year=2024/month=03/day=11/{ACCOUNT}_fl-2 copy+1.log.parquet", True, False),  # space and "+"
    (f"{PLAIN}2024/03/12/old.log.gz", False, False),  # a noncurrent version
    (f"{PLAIN}2024/03/13/deleted.log.gz", True, True),  # a delete marker
    (f"{PLAIN}2024/03/14/", True, False),  # a folder marker
]


def s3() -> Any:
    return aws.client("s3", "", "us-east-1")


@pytest.fixture
def buckets(mocked: None) -> Any:
    client = s3()
    client.create_bucket(Bucket=SOURCE)
    client.create_bucket(Bucket=DEST)
    return client


def csv_body(rows: list[tuple[str, bool, bool]], quote_slash: bool) -> bytes:
    # No header; every field quoted; keys URL-encoded ("/" as %2F or as it is: both decode alike).
    lines = []
    for i, (key, latest, marker) in enumerate(rows):
        encoded = quote_plus(key, safe="" if quote_slash else "/")
        fields = [SOURCE, encoded, f"v{i}", str(latest).lower(), str(marker).lower(), "" if marker else "10"]
        lines.append(",".join(f'"{f}"' for f in fields))
    return gzip.compress(("\n".join(lines) + "\n").encode())


def columnar_body(rows: list[tuple[str, bool, bool]], form: str) -> bytes:
    table = pa.table(
        {
            "bucket": [SOURCE] * len(rows),
            "key": [key for key, _, _ in rows],
            "version_id": [f"v{i}" for i in range(len(rows))],
            "is_latest": [latest for _, latest, _ in rows],
            "is_delete_marker": [marker for _, _, marker in rows],
            "size": pa.array([None if marker else 10 for _, _, marker in rows], pa.int64()),
        }
    )
    out = io.BytesIO()
    if form == "ORC":
        orc.write_table(table, out, compression="zlib")
    else:
        pq.write_table(table, out, compression="snappy")
    return out.getvalue()


def publish(
    client: Any, form: str, bodies: list[bytes], schema: str, checksum: bool = True, **override: Any
) -> str:
    """Write a report as S3 Inventory does: data files, manifest.json, manifest.checksum."""
    files = []
    for i, body in enumerate(bodies):
        key = (
            f"{REPORT}/data/file-{i}.{ {'csv': 'csv.gz', 'orc': 'orc', 'parquet': 'parquet'}[form.lower()] }"
        )
        client.put_object(Bucket=DEST, Key=key, Body=body)
        files.append({"key": key, "size": len(body), "MD5checksum": hashlib.md5(body).hexdigest()})
    manifest = {
        "sourceBucket": SOURCE,
        "destinationBucket": f"arn:aws:s3:::{DEST}",
        "version": "2016-11-30",
        "creationTimestamp": "1710464400000",
        "fileFormat": form,
        "fileSchema": schema,
        "files": files,
    } | override
    text = json.dumps(manifest).encode()
    client.put_object(Bucket=DEST, Key=MANIFEST, Body=text)
    if checksum:
        checksum_key = MANIFEST.replace("manifest.json", "manifest.checksum")
        client.put_object(Bucket=DEST, Key=checksum_key, Body=hashlib.md5(text).hexdigest().encode())
    return f"s3://{DEST}/{MANIFEST}"


LIVE = {(SOURCE, ROWS[0][0]), (SOURCE, ROWS[1][0]), (SOURCE, ROWS[4][0])}


@pytest.mark.parametrize("spool", [64 << 20, 100])
def test_a_csv_report_in_two_files_gives_every_current_key_decoded(
    buckets: Any, spool: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inventory, "_SPOOL_BYTES", spool)
    bodies = [csv_body(ROWS[:2], quote_slash=True), csv_body(ROWS[2:], quote_slash=False)]
    manifest = read_manifest(buckets, publish(buckets, "CSV", bodies, CSV_SCHEMA))
    assert (manifest.source_bucket, manifest.format, manifest.columns[:2]) == (
        SOURCE,
        "CSV",
        ("Bucket", "Key"),
    )
    assert [f.bucket for f in manifest.files] == [DEST, DEST]
    counts = InventoryCounts()
    assert set(inventory_objects(buckets, manifest, counts)) == LIVE
    assert counts == InventoryCounts(data_files=2, bytes=sum(map(len, bodies)), rows=5, versions_skipped=2)


@pytest.mark.parametrize("spool", [64 << 20, 100])  # in memory, and spilled to a temporary file
@pytest.mark.parametrize(("form", "schema"), [("ORC", ORC_SCHEMA), ("Parquet", PARQUET_SCHEMA)])
def test_orc_and_parquet_reports_give_the_keys_as_they_are(
    buckets: Any, form: str, schema: str, spool: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inventory, "_SPOOL_BYTES", spool)
    bodies = [columnar_body(ROWS, form)]
    # fileFormat is read whatever its case ("Parquet" in the user guide, "PARQUET" in the CDK).
    manifest = read_manifest(buckets, publish(buckets, form.upper(), bodies, schema))
    assert manifest.format == form
    counts = InventoryCounts()
    assert set(inventory_objects(buckets, manifest, counts)) == LIVE
    assert (counts.data_files, counts.rows, counts.versions_skipped) == (1, 5, 2)


@pytest.mark.parametrize(
    ("form", "schema"),
    [
        ("ORC", "struct<bucket:string,key:string,size:bigint>"),
        (
            "Parquet",
            "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); optional int64 size; }",
        ),
    ],
)
def test_a_columnar_report_of_current_versions_only_has_no_version_columns_to_read(
    buckets: Any, form: str, schema: str
) -> None:
    # A report without "all versions" has no IsLatest or IsDeleteMarker: every row is a current object.
    rows = [key for key, latest, marker in ROWS if latest and not marker]
    table = pa.table(
        {"bucket": [SOURCE] * len(rows), "key": rows, "size": pa.array([10] * len(rows), pa.int64())}
    )
    out = io.BytesIO()
    if form == "ORC":
        orc.write_table(table, out, compression="zlib")
    else:
        pq.write_table(table, out, compression="snappy")
    manifest = read_manifest(buckets, publish(buckets, form, [out.getvalue()], schema))
    counts = InventoryCounts()
    assert set(inventory_objects(buckets, manifest, counts)) == LIVE
    assert (counts.rows, counts.versions_skipped) == (3, 0)


def test_a_data_file_changed_since_the_manifest_is_refused(buckets: Any) -> None:
    uri = publish(buckets, "CSV", [csv_body(ROWS, True)], CSV_SCHEMA)
    buckets.put_object(Bucket=DEST, Key=f"{REPORT}/data/file-0.csv.gz", Body=csv_body(ROWS[:1], True))
    manifest = read_manifest(buckets, uri)
    with pytest.raises(
        InventoryError, match=r"file-0.csv.gz: MD5 [0-9a-f]{32} differs from the manifest's"
    ) as err:
        list(inventory_objects(buckets, manifest))
    assert "\n" not in str(err.value)


def test_a_data_file_gone_is_refused_and_throttling_is_transient(buckets: Any) -> None:
    uri = publish(buckets, "CSV", [csv_body(ROWS, True)], CSV_SCHEMA)
    manifest = read_manifest(buckets, uri)
    inject_error(buckets, "GetObject", "SlowDown", times=1, status=503)
    with pytest.raises(
        TransientError, match=r"S3 GetObject s3://inventory-reports/.*file-0\.csv\.gz: SlowDown"
    ):
        list(inventory_objects(buckets, manifest))
    buckets.delete_object(Bucket=DEST, Key=manifest.files[0].key)
    with pytest.raises(InventoryError, match=r"file-0\.csv\.gz does not exist"):
        list(inventory_objects(buckets, manifest))


def test_a_manifest_that_differs_from_its_checksum_is_refused(buckets: Any) -> None:
    uri = publish(buckets, "CSV", [csv_body(ROWS, True)], CSV_SCHEMA)
    buckets.put_object(Bucket=DEST, Key=MANIFEST.replace(".json", ".checksum"), Body=b"0" * 32)
    with pytest.raises(InventoryError, match=r"differs from manifest\.checksum 0{32}"):
        read_manifest(buckets, uri)
    # Without a checksum beside it (a manifest copied alone), the manifest is read.
    buckets.delete_object(Bucket=DEST, Key=MANIFEST.replace(".json", ".checksum"))
    assert read_manifest(buckets, uri).format == "CSV"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"fileSchema": "Bucket, Size, IsLatest"}, "has no Key column"),
        ({"fileSchema": "struct<key:string,size:bigint>", "fileFormat": "ORC"}, "has no Bucket column"),
        ({"fileFormat": "JSON"}, "fileFormat 'JSON' is not one of CSV, ORC, Parquet"),
        ({"files": [{"key": "x"}]}, "a files entry without key and MD5checksum"),
    ],
)
def test_a_manifest_it_cannot_read_is_refused_in_one_line(
    buckets: Any, override: dict[str, Any], message: str
) -> None:
    uri = publish(buckets, "CSV", [csv_body(ROWS, True)], CSV_SCHEMA, checksum=False, **override)
    with pytest.raises(InventoryError, match=message) as err:
        read_manifest(buckets, uri)
    assert "\n" not in str(err.value)


def test_what_is_not_a_manifest_is_refused(buckets: Any) -> None:
    buckets.put_object(Bucket=DEST, Key="inv/other.json", Body=b'{"Records": []}')
    with pytest.raises(InventoryError, match="is not an S3 Inventory manifest"):
        read_manifest(buckets, f"s3://{DEST}/inv/other.json")
    with pytest.raises(InventoryError, match="does not exist"):
        read_manifest(buckets, f"s3://{DEST}/inv/missing/manifest.json")
    with pytest.raises(InventoryError, match=r"is not s3://bucket/path/manifest\.json"):
        read_manifest(buckets, "/tmp/manifest.json")


# A bucket with every layout the walk knows, and what it must not take for flow logs.
LAYOUT = [
    f"{PLAIN}2024/03/09/{ACCOUNT}_a.log.gz",
    f"{PLAIN}2024/03/10/{ACCOUNT}_b.log.gz",
    f"{PLAIN}2024/03/10/{ACCOUNT}_c.log.gz",
    f"{PLAIN}2024/03/11/07/{ACCOUNT}_hourly.log.gz",
    f"{PLAIN}2024/03/11/08/{ACCOUNT}_hourly.log.parquet",
    f"{PLAIN}2024/03/12/",  # a folder marker alone
    f"{PLAIN}2024/03/13/notes.txt",  # a stray file that is not a flow log
    f"{HIVE}year=2024/month=03/day=10/{ACCOUNT}_hive.log.parquet",
    f"{HIVE}year=2024/month=03/day=11/hour=23/{ACCOUNT}_hive hourly.log.gz",
    f"copy/AWSLogs/{ACCOUNT}/backup/{PLAIN}2024/03/10/{ACCOUNT}_nested.log.gz",  # nested in another tree
    f"free/prefix/{PLAIN}2024/03/10/{ACCOUNT}_free.log.gz",
]


def scheme(location: str, keys: list[str]) -> Scheme:
    return Scheme.from_table(
        {
            "Name": "t",
            "DatabaseName": "d",
            "PartitionKeys": [{"Name": k, "Type": "string"} for k in keys],
            "StorageDescriptor": {"Location": location},
        }
    )


@pytest.mark.parametrize(
    ("location", "keys", "dates"),
    [
        ("", ["aws_account_id", "aws_region", "year", "month", "day"], DateRange()),
        ("", ["aws_account_id", "aws_region", "year", "month", "day", "hour"], DateRange()),
        (PLAIN, ["date"], DateRange(date(2024, 3, 10), date(2024, 3, 11))),
        (PLAIN, ["date", "hour"], DateRange(since=date(2024, 3, 11))),
        (f"{PLAIN}2024/03/11/", ["date", "hour"], DateRange()),
        (HIVE, ["year", "month"], DateRange(until=date(2024, 3, 1))),
        ("free/", ["aws_account_id", "aws_region", "date"], DateRange()),
    ],
)
def test_a_csv_report_of_a_bucket_gives_the_walks_messages_without_listing_it(
    buckets: Any, location: str, keys: list[str], dates: DateRange
) -> None:
    for key in LAYOUT:
        buckets.put_object(Bucket=SOURCE, Key=key, Body=b"x")
    table = scheme(f"s3://{SOURCE}/{location}", keys)
    walked = sorted(FolderWalk(buckets, table, dates, workers=2).messages(), key=lambda m: m.id)
    # The report S3 Inventory would write of this bucket, in no particular order.
    listed = [o["Key"] for o in buckets.list_objects_v2(Bucket=SOURCE)["Contents"]]
    uri = publish(buckets, "CSV", [csv_body([(k, True, False) for k in reversed(listed)], True)], CSV_SCHEMA)
    calls = CallCounter(buckets)
    messages = list(inventory_messages(inventory_objects(buckets, read_manifest(buckets, uri)), table, dates))
    assert messages == walked
    assert walked  # every case finds something
    assert calls.calls["ListObjectsV2"] == 0 and calls.calls["GetObject"] == 3  # manifest, checksum, data
