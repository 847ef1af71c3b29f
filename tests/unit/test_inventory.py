"""Reading an S3 Inventory report: fileSchema parsing, CSV rows, and the walk's messages from keys."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from hypothesis import given
from hypothesis import strategies as st
from vpcflow_partitioner import inventory
from vpcflow_partitioner.envelopes import Message, ObjectRef
from vpcflow_partitioner.errors import TransientError
from vpcflow_partitioner.inventory import (
    InventoryCounts,
    InventoryError,
    _key_decoder,
    data_file_objects,
    inventory_messages,
    read_manifest,
    schema_columns,
)
from vpcflow_partitioner.scheme import ConfigurationError, Scheme
from vpcflow_partitioner.sources import DateRange

BUCKET = "b"
ACCOUNT = "123456789012"
PLAIN = f"AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/"
HIVE = f"AWSLogs/aws-account-id={ACCOUNT}/aws-service=vpcflowlogs/aws-region=us-east-1/"

# The user guide's three example manifests ("Locating your inventory list").
CSV_SCHEMA = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag"
ORC_SCHEMA = "struct<bucket:string,key:string,version_id:string,is_latest:boolean,is_delete_marker:boolean,size:bigint>"
PARQUET_SCHEMA = (
    "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); "
    "optional binary version_id (UTF8); optional boolean is_latest; optional boolean is_delete_marker; "
    "optional int64 size; optional int64 last_modified_date (TIMESTAMP_MILLIS); }"
)


def scheme(location: str, keys: list[str]) -> Scheme:
    return Scheme.from_table(
        {
            "Name": "t",
            "DatabaseName": "d",
            "PartitionKeys": [{"Name": k, "Type": "string"} for k in keys],
            "StorageDescriptor": {"Location": location},
        }
    )


class FakeS3:
    """GetObject over a dict of bodies."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        return {"Body": io.BytesIO(self.objects[Key])}


def csv_file(rows: list[list[str]]) -> bytes:
    text = "".join(",".join(f'"{v}"' for v in row) + "\n" for row in rows)
    return gzip.compress(text.encode())


@pytest.mark.parametrize(
    ("schema", "form", "first"),
    [
        (CSV_SCHEMA, "CSV", ("Bucket", "Key", "VersionId", "IsLatest", "IsDeleteMarker")),
        (ORC_SCHEMA, "ORC", ("bucket", "key", "version_id", "is_latest", "is_delete_marker")),
        (PARQUET_SCHEMA, "Parquet", ("bucket", "key", "version_id", "is_latest", "is_delete_marker")),
    ],
)
def test_file_schema_columns_in_each_format(schema: str, form: str, first: tuple[str, ...]) -> None:
    assert schema_columns(schema, form)[:5] == first


def test_csv_keys_are_form_decoded_and_old_versions_and_delete_markers_skipped() -> None:
    rows = [
        [BUCKET, f"{PLAIN}2024/03/10/a+b%2Bc.log.gz", "v1", "true", "false", "1", "x", "e"],
        [BUCKET, "AWSLogs%2Faws-account-id%3D1%2Fx.log.gz", "v2", "true", "false", "1", "x", "e"],
        [BUCKET, "old.log.gz", "v0", "false", "false", "1", "x", "e"],  # noncurrent
        [BUCKET, "gone.log.gz", "v3", "true", "true", "", "", ""],  # delete marker
    ]
    body = csv_file(rows)
    counts = InventoryCounts()
    got = list(
        data_file_objects(
            FakeS3({"f.csv.gz": body}),
            "dest",
            "f.csv.gz",
            "CSV",
            CSV_SCHEMA,
            md5=hashlib.md5(body).hexdigest(),
            counts=counts,
        )
    )
    assert got == [(BUCKET, f"{PLAIN}2024/03/10/a b+c.log.gz"), (BUCKET, "AWSLogs/aws-account-id=1/x.log.gz")]
    assert counts == InventoryCounts(data_files=1, bytes=len(body), rows=4, versions_skipped=2)


def test_a_data_file_whose_md5_differs_is_refused_before_any_row() -> None:
    body = csv_file([[BUCKET, "k.log.gz"]])
    with pytest.raises(
        InventoryError, match=r"s3://dest/f.csv.gz: MD5 [0-9a-f]{32} differs from the manifest's 0{32}"
    ):
        next(
            data_file_objects(
                FakeS3({"f.csv.gz": body}), "dest", "f.csv.gz", "CSV", "Bucket, Key", md5="0" * 32
            )
        )


@pytest.mark.parametrize(
    ("schema", "form", "message"),
    [
        ("Bucket, Size", "CSV", "no Key column"),
        ("Key, Size", "CSV", "no Bucket column"),
        ("Bucket, Key", "JSON", "fileFormat 'JSON' is not one of CSV, ORC, Parquet"),
    ],
)
def test_a_schema_without_bucket_or_key_or_an_unknown_format_is_a_configuration_error(
    schema: str, form: str, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        next(data_file_objects(FakeS3({}), "dest", "f", form, schema))


def test_a_short_row_or_a_file_that_is_not_gzip_is_refused_in_one_line() -> None:
    s3 = FakeS3({"short": csv_file([[BUCKET]]), "plain": b"b,k\n"})
    with pytest.raises(InventoryError, match="row 1 has 1 columns"):
        list(data_file_objects(s3, "dest", "short", "CSV", "Bucket, Key"))
    with pytest.raises(InventoryError, match="not a gzip-compressed CSV"):
        list(data_file_objects(s3, "dest", "plain", "CSV", "Bucket, Key"))


def message(folder: str, key: str) -> Message:
    return Message(f"s3://{BUCKET}/{folder}", (ObjectRef(BUCKET, key),))


def test_one_message_per_leaf_naming_its_least_flow_log_key() -> None:
    keys = [
        f"{PLAIN}2024/03/10/05/z.log.gz",
        f"{PLAIN}2024/03/10/01/b.log.gz",
        f"{PLAIN}2024/03/10/a.txt",  # not a flow log: no message, no key
        f"{PLAIN}2024/03/11/",  # a folder marker
        f"{HIVE}year=2024/month=03/day=10/c.log.parquet",
        f"x/AWSLogs/{ACCOUNT}/copy/{PLAIN}2024/03/12/n.log.gz",  # nested in another tree
    ]
    table = scheme(f"s3://{BUCKET}/", ["aws-account-id", "aws-region", "year", "month", "day"])
    got = list(inventory_messages([(BUCKET, k) for k in keys] + [("other", keys[0])], table, DateRange()))
    assert got == [
        message(f"{PLAIN}2024/03/10/", keys[1]),
        message(f"{HIVE}year=2024/month=03/day=10/", keys[4]),
    ]


def test_daily_files_under_an_hourly_table_are_their_own_message() -> None:
    keys = [f"{PLAIN}2024/03/10/d.log.gz", f"{PLAIN}2024/03/10/07/h.log.gz"]
    table = scheme(f"s3://{BUCKET}/{PLAIN}", ["date", "hour"])
    assert list(inventory_messages([(BUCKET, k) for k in keys], table, DateRange())) == [
        message(f"{PLAIN}2024/03/10/", keys[0]),
        message(f"{PLAIN}2024/03/10/07/", keys[1]),
    ]


def test_dates_are_checked_at_the_leaf_and_not_above_it() -> None:
    keys = [f"{PLAIN}2024/03/{d:02d}/f.log.gz" for d in (9, 10, 11, 12)]
    objects = [(BUCKET, k) for k in keys]
    dates = DateRange(date(2024, 3, 10), date(2024, 3, 11))
    daily = scheme(f"s3://{BUCKET}/{PLAIN}", ["date"])
    assert [m.objects[0].key for m in inventory_messages(objects, daily, dates)] == keys[1:3]
    # A monthly table admits its month folder whole, as the walk does.
    monthly = scheme(f"s3://{BUCKET}/{PLAIN}", ["year", "month"])
    assert [m.id for m in inventory_messages(objects, monthly, dates)] == [f"s3://{BUCKET}/{PLAIN}2024/03/"]
    # A Location at a day folder is that day's leaf: in the range or not, as the walk's start.
    one_day = scheme(f"s3://{BUCKET}/{PLAIN}2024/03/09/", ["date"])
    assert list(inventory_messages(objects, one_day, dates)) == []
    assert [m.objects[0].key for m in inventory_messages(objects, one_day, DateRange())] == keys[:1]


@given(st.lists(st.text(alphabet="ab/=+ %é€2Ff", max_size=12), min_size=1, max_size=6), st.booleans())
def test_keys_decode_as_unquote_plus_does_folder_cache_and_all(keys: list[str], keep_slash: bool) -> None:
    decode = _key_decoder()
    for key in keys * 2:  # the second time from the folder cache
        encoded = quote_plus(key, safe="/" if keep_slash else "")
        assert decode(encoded) == unquote_plus(encoded) == key
    assert decode("a%252Fb/c%2fd%2Fe") == "a%2Fb/c/d/e"


@pytest.mark.parametrize(
    ("form", "schema", "module"),
    [("ORC", ORC_SCHEMA, "pyarrow.orc"), ("Parquet", PARQUET_SCHEMA, "pyarrow.parquet")],
)
def test_orc_or_parquet_without_pyarrow_is_one_line_that_says_what_to_do(
    form: str, schema: str, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what an install without pyarrow sees
    with pytest.raises(InventoryError) as err:
        next(data_file_objects(FakeS3({"f": b"data"}), "dest", "f", form, schema))
    assert str(err.value) == (
        f"s3://dest/f: reading a {form} inventory needs pyarrow (pip install pyarrow), "
        "which this installation lacks; or configure the inventory as CSV"
    )


def test_the_module_imports_no_pyarrow() -> None:
    # The function's zip has no pyarrow: importing the module there must not need it.
    source = Path(inventory.__file__).read_text()
    assert "import pyarrow" not in source.split("def _columnar_rows")[0]


class ManifestS3:
    """GetObject over a dict of bodies; a missing key answers NoSuchKey, and `errors` maps a key
    to the error its GetObject raises."""

    def __init__(self, objects: dict[str, bytes], errors: dict[str, Exception] | None = None) -> None:
        self.objects = objects
        self.errors = errors or {}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        if Key in self.errors:
            raise self.errors[Key]
        if Key not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "gone"}}, "GetObject")
        return {"Body": io.BytesIO(self.objects[Key])}


MANIFEST_DOC = {
    "sourceBucket": BUCKET,
    "destinationBucket": "arn:aws:s3:::dest",
    "fileFormat": "CSV",
    "fileSchema": "Bucket, Key",
    "files": [{"key": "inv/data/f.csv.gz", "size": 1, "MD5checksum": "0" * 32}],
}


def test_a_checksum_that_is_not_ascii_is_a_checksum_that_differs() -> None:
    s3 = ManifestS3(
        {"inv/manifest.json": json.dumps(MANIFEST_DOC).encode(), "inv/manifest.checksum": b"\xff" * 32}
    )
    with pytest.raises(InventoryError, match=r"s3://dest/inv/manifest\.json: MD5 [0-9a-f]{32} differs"):
        read_manifest(s3, "s3://dest/inv/manifest.json")


def test_a_checksum_refused_without_an_error_code_is_no_checksum() -> None:
    # An error answered without a body gets its HTTP status as code from botocore: "403", AccessDenied.
    refused = ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "GetObject")
    s3 = ManifestS3(
        {"inv/manifest.json": json.dumps(MANIFEST_DOC).encode()}, {"inv/manifest.checksum": refused}
    )
    assert read_manifest(s3, "s3://dest/inv/manifest.json").files == (
        inventory.DataFile("dest", "inv/data/f.csv.gz", "0" * 32),
    )


def test_a_checksum_that_cannot_be_reached_is_a_transient_error_naming_it() -> None:
    down = EndpointConnectionError(endpoint_url="https://s3.amazonaws.com")
    s3 = ManifestS3({"inv/manifest.json": json.dumps(MANIFEST_DOC).encode()}, {"inv/manifest.checksum": down})
    with pytest.raises(
        TransientError, match=r"^S3 GetObject s3://dest/inv/manifest\.checksum: Could not connect"
    ):
        read_manifest(s3, "s3://dest/inv/manifest.json")


def test_a_manifest_that_does_not_exist_is_named_in_the_error() -> None:
    with pytest.raises(InventoryError, match=r"^s3://dest/inv/manifest\.json does not exist$"):
        read_manifest(ManifestS3({}), "s3://dest/inv/manifest.json")


def test_a_manifest_without_source_or_destination_bucket_reads_its_files_beside_it() -> None:
    doc = {k: v for k, v in MANIFEST_DOC.items() if k not in ("sourceBucket", "destinationBucket")}
    manifest = read_manifest(
        ManifestS3({"inv/manifest.json": json.dumps(doc).encode()}), "s3://copy/inv/manifest.json"
    )
    assert manifest.source_bucket == ""  # unknown: the command refuses it for any table's bucket
    assert [f.bucket for f in manifest.files] == ["copy"]


def test_orc_field_names_are_read_before_the_first_colon_even_in_nested_types() -> None:
    schema = "struct<bucket:string,key:string,tags:struct<name:string,value:string>,size:bigint>"
    assert schema_columns(schema, "ORC") == ("bucket", "key", "tags", "size")


def test_a_schema_without_bucket_and_key_names_both_and_the_file() -> None:
    with pytest.raises(
        InventoryError,
        match=r"^s3://dest/f: the inventory has no Bucket or Key column \(fileSchema: Size, ETag\)$",
    ):
        next(data_file_objects(FakeS3({}), "dest", "f", "CSV", "Size, ETag"))


def test_a_short_row_names_its_file() -> None:
    s3 = FakeS3({"short": csv_file([[BUCKET]])})
    with pytest.raises(InventoryError, match=r"^s3://dest/short: row 1 has 1 columns, the fileSchema 2$"):
        list(data_file_objects(s3, "dest", "short", "CSV", "Bucket, Key"))


def test_the_least_key_of_each_folder_and_format_gives_the_same_messages_as_every_key() -> None:
    day = f"{PLAIN}2024/03/10/"
    keys = [
        f"{day}a.log.gz",
        f"{day}c.log.gz",
        f"{day}b.log.gz",
        f"{day}z.log.parquet",
        f"{day}y.log.parquet",
    ]
    objects = [(BUCKET, k) for k in keys]
    assert sorted(inventory.least_per_folder(objects)) == [(BUCKET, keys[0]), (BUCKET, keys[4])]
    table = scheme(f"s3://{BUCKET}/{PLAIN}", ["date"])
    assert list(inventory_messages(inventory.least_per_folder(objects), table, DateRange())) == [
        message(day, keys[0])
    ]
