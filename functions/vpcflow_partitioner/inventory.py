"""Recovery messages from an Amazon S3 Inventory report: a table's folders without listing the bucket.

An inventory report is a `manifest.json` and data files in the destination bucket ("Locating
your inventory list", S3 user guide):

    {"sourceBucket": "...", "destinationBucket": "arn:aws:s3:::...", "fileFormat": "CSV|ORC|Parquet",
     "fileSchema": "...", "files": [{"key": "...", "size": 123, "MD5checksum": "<hex>"}]}

with a `manifest.checksum` beside it holding the MD5 of `manifest.json`. The data files are
"a CSV file compressed with GZIP, an ORC file compressed with ZLIB, or a Parquet file
compressed with Snappy" ("Amazon S3 inventory list"). CSV files have no header: their columns
are the fileSchema's, in its order. Each row is one object (or one version of it).

The messages are the FolderWalk's, folder for folder: one per leaf folder (the table's deepest
partition level) naming its first flow-log object, and one per folder above the leaves that
holds flow-log objects itself. Reading the report replaces every ListObjectsV2 call of the walk
with a handful of GetObject calls, whatever the size of the bucket.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import json
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, NamedTuple
from urllib.parse import unquote_plus

from botocore.exceptions import BotoCoreError, ClientError

from .envelopes import Message, ObjectRef
from .errors import classify, error_code
from .keys import LEVELS, FlowLogObject, folder_state, is_flow_log_name, parse_key
from .scheme import ConfigurationError, Scheme
from .sources import DateRange, leaf_folder

FORMATS = ("CSV", "ORC", "Parquet")
# A data file is copied to a temporary file (kept in memory up to this size) so that its MD5 is
# checked before any row is believed; ORC and Parquet readers also need to seek.
_SPOOL_BYTES = 64 * 1024 * 1024
_CHUNK = 1024 * 1024
_DECODED_FOLDERS = 100_000


class InventoryError(ConfigurationError):
    """The inventory report is not what S3 Inventory documents, or not what its manifest says."""


class DataFile(NamedTuple):
    """One data file of a report, where S3 wrote it, and the MD5 its manifest gives."""

    bucket: str
    key: str
    md5: str


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a `manifest.json` says: whose objects, in which format and columns, in which files."""

    source_bucket: str
    format: str  # "CSV", "ORC" or "Parquet"
    file_schema: str  # as written: what a work item carries to the function that reads one file
    columns: tuple[str, ...]  # the column names of fileSchema, in its order
    files: tuple[DataFile, ...]
    created: float | None = None  # creationTimestamp, in seconds: newer objects are not listed


@dataclass
class InventoryCounts:
    """What reading a report cost and found, for the command's summary."""

    data_files: int = 0
    bytes: int = 0  # of data files, as downloaded (compressed)
    rows: int = 0
    versions_skipped: int = 0  # delete markers and noncurrent versions: no data to partition


def read_manifest(s3: Any, uri: str) -> Manifest:
    """Read and check `s3://bucket/.../manifest.json` (and its manifest.checksum, when there is one)."""
    match = re.match(r"^s3://([^/]+)/(.+)$", uri or "")
    if match is None:
        raise InventoryError(f"{uri!r} is not s3://bucket/path/manifest.json")
    bucket, key = match.groups()
    body = _get(s3, bucket, key)
    checksum = _checksum(s3, bucket, key)
    actual = hashlib.md5(body, usedforsecurity=False).hexdigest()
    if checksum is not None and actual != checksum:
        raise InventoryError(f"{uri}: MD5 {actual} differs from manifest.checksum {checksum}")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if not isinstance(doc, dict) or not all(k in doc for k in ("fileFormat", "fileSchema", "files")):
        raise InventoryError(f"{uri} is not an S3 Inventory manifest (no fileFormat, fileSchema and files)")
    form = _format(doc["fileFormat"], uri)
    schema = str(doc["fileSchema"])
    columns = schema_columns(schema, form)
    _need_columns(columns, uri)
    # destinationBucket is an ARN ("arn:aws:s3:::bucket"); data file keys are in that bucket.
    destination = str(doc.get("destinationBucket") or bucket).removeprefix("arn:aws:s3:::")
    files = []
    for entry in doc["files"] if isinstance(doc["files"], list) else [None]:
        if not isinstance(entry, dict) or not entry.get("key") or not entry.get("MD5checksum"):
            raise InventoryError(f"{uri}: a files entry without key and MD5checksum: {entry!r}")
        files.append(DataFile(destination, str(entry["key"]), str(entry["MD5checksum"]).lower()))
    # "creationTimestamp": when S3 began listing the bucket, in milliseconds since the epoch:
    # objects written after it are not in the report.
    created = str(doc.get("creationTimestamp", ""))
    return Manifest(
        str(doc.get("sourceBucket", "")),
        form,
        schema,
        columns,
        tuple(files),
        int(created) / 1000 if created.isdigit() else None,
    )


def schema_columns(file_schema: str, file_format: str) -> tuple[str, ...]:
    """The column names of a manifest's fileSchema, in order.

    CSV: "Bucket, Key, VersionId, ..."; ORC: "struct<bucket:string,key:string,...>";
    Parquet: "message s3.inventory { required binary bucket (UTF8); ... }" (the user guide's
    three example manifests).
    """
    text = file_schema.strip()
    if file_format == "ORC":
        inner = re.fullmatch(r"struct<(.*)>", text, re.DOTALL)
        fields = _split_top(inner.group(1) if inner else text)
        return tuple(f.split(":", 1)[0].strip() for f in fields if f.strip())
    if file_format == "Parquet":
        inner = re.search(r"\{(.*)\}", text, re.DOTALL)
        out = []
        for field in (inner.group(1) if inner else text).split(";"):
            words = re.sub(r"\(.*?\)", "", field).split()
            if len(words) >= 3:  # repetition, type, name
                out.append(words[2])
        return tuple(out)
    return tuple(c.strip() for c in text.split(",") if c.strip())


def inventory_objects(
    s3: Any, manifest: Manifest, counts: InventoryCounts | None = None
) -> Iterator[tuple[str, str]]:
    """(bucket, key) of every current object in every data file of the report."""
    for file in manifest.files:
        yield from data_file_objects(
            s3, file.bucket, file.key, manifest.format, manifest.columns, md5=file.md5, counts=counts
        )


def data_file_objects(
    s3: Any,
    bucket: str,
    key: str,
    format: str,
    schema: str | Sequence[str],
    *,
    md5: str | None = None,
    counts: InventoryCounts | None = None,
) -> Iterator[tuple[str, str]]:
    """(bucket, decoded key) of each row of one data file, delete markers and noncurrent versions left
    out; `schema` is the manifest's fileSchema (or its columns). With `md5`, the downloaded bytes
    must have it, or nothing is read."""
    form = _format(format, f"s3://{bucket}/{key}")
    columns = schema_columns(schema, form) if isinstance(schema, str) else tuple(schema)
    _need_columns(columns, f"s3://{bucket}/{key}")
    counts = counts if counts is not None else InventoryCounts()
    with _download(s3, bucket, key, md5, counts) as data:
        counts.data_files += 1
        if form == "CSV":
            yield from _csv_rows(data, columns, f"s3://{bucket}/{key}", counts)
        else:
            yield from _columnar_rows(data, form, f"s3://{bucket}/{key}", counts)


def inventory_messages(
    objects: Iterable[tuple[str, str]], scheme: Scheme, dates: DateRange
) -> Iterator[Message]:
    """The FolderWalk's messages for this table, from (bucket, key) pairs instead of listings.

    A leaf folder's message names its least key among flow-log objects that lie in it by the
    same reading of its folders (what the walk's probe finds first, S3 listing in key order);
    an object lying in a folder above the leaves (a daily file under an hourly table) gets its
    folder's own message, as the walk's strays do, so that the pipeline says why it cannot be
    partitioned. Dates are checked on the folders the walk would have checked: the leaf's (a
    Location that is a leaf included), or the stray folder's below the Location.
    """
    start = folder_state(scheme.prefix)
    if start is None:
        return
    leaf_level = scheme.deepest_level
    suffix = scheme.file_suffix  # a leaf's message names a file of the table's format, as the probe's
    placed: dict[str, tuple[str, bool] | None] = {}  # a key's folder -> (message folder, is a leaf)
    first: dict[str, str] = {}  # message folder -> least key
    for bucket, key in objects:
        if bucket != scheme.bucket or not key.startswith(scheme.prefix):
            continue
        cut = key.rfind("/") + 1
        if not is_flow_log_name(key[cut:]):
            continue
        parent = key[:cut]
        if parent not in placed:
            placed[parent] = _place(parent, scheme.prefix, leaf_level, dates)
        place = placed[parent]
        if place is None:
            continue
        folder, leaf = place
        if leaf and not key.endswith(suffix):
            continue
        if folder not in first or key < first[folder]:
            first[folder] = key
    for folder in sorted(first):
        yield Message(f"s3://{scheme.bucket}/{folder}", (ObjectRef(scheme.bucket, first[folder]),))


def least_per_folder(objects: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Of each folder's flow-log files, the least key of each file format: all `inventory_messages`
    needs of them (it picks a folder's least key of the table's format), for reading a report
    once for several tables."""
    least: dict[tuple[str, str, bool], str] = {}
    for bucket, key in objects:
        cut = key.rfind("/") + 1
        if not is_flow_log_name(key[cut:]):
            continue
        kind = (bucket, key[:cut], key.endswith(".log.parquet"))
        known = least.get(kind)
        if known is None or key < known:
            least[kind] = key
    return [(bucket, key) for (bucket, _, _), key in least.items()]


def _place(parent: str, prefix: str, leaf_level: str, dates: DateRange) -> tuple[str, bool] | None:
    """The message folder of flow-log files lying directly in `parent` and whether it is a leaf
    (not a stray's), or None when the walk would not reach them."""
    # Every key of one folder parses alike but for its file name, which the caller checked.
    obj = parse_key(f"{parent}probe.log.gz")
    if obj is None or obj.nested:
        return None
    leaf = leaf_folder(obj, leaf_level)
    if leaf is not None and leaf.startswith(prefix):
        folder, level = leaf, leaf_level
    elif parent == prefix or LEVELS.index(_file_level(obj)) < LEVELS.index(leaf_level):
        folder, level = parent, _file_level(obj)  # listed by the walk on its way down: its files are strays
    else:
        return None  # below a leaf that lies above the Location: the walk never lists it
    if folder != prefix or level == leaf_level:  # the walk checks a leaf's date, its start's too
        # The date of the folder's own levels: (year[, month[, day]]), as the walk reads it.
        depth = max(0, min(3, LEVELS.index(level) - LEVELS.index("year") + 1))
        parts = (int(obj.year), int(obj.month), int(obj.day))[:depth]
        if parts and not dates.admits(parts):
            return None
    return folder, level == leaf_level


def _file_level(obj: FlowLogObject) -> str:
    return "day" if obj.hour is None else "hour"


def _csv_rows(
    data: IO[bytes], columns: tuple[str, ...], where: str, counts: InventoryCounts
) -> Iterator[tuple[str, str]]:
    normal = [_normal(c) for c in columns]
    bucket_at, key_at = normal.index("bucket"), normal.index("key")  # _need_columns checked both
    latest_at = normal.index("islatest") if "islatest" in normal else None
    marker_at = normal.index("isdeletemarker") if "isdeletemarker" in normal else None
    width = max(i for i in (bucket_at, key_at, latest_at, marker_at) if i is not None) + 1
    decode = _key_decoder()
    try:
        text = io.TextIOWrapper(gzip.GzipFile(fileobj=data, mode="rb"), encoding="utf-8", newline="")
        for line, row in enumerate(csv.reader(text), start=1):
            counts.rows += 1
            if len(row) < width:
                raise InventoryError(
                    f"{where}: row {line} has {len(row)} columns, the fileSchema {len(columns)}"
                )
            if (marker_at is not None and row[marker_at].lower() == "true") or (
                latest_at is not None and row[latest_at].lower() == "false"
            ):
                counts.versions_skipped += 1
                continue
            # "When using the CSV file format, the key name is URL-encoded and must be decoded
            # before you can use it" (S3 user guide), a space as "+" (cloud-custodian#1997):
            # form decoding, as for S3 event notifications. ORC and Parquet keys are not encoded.
            yield row[bucket_at], decode(row[key_at])
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise InventoryError(f"{where}: not a gzip-compressed CSV inventory file: {exc}") from None


def _key_decoder() -> Callable[[str], str]:
    """unquote_plus, with each folder decoded once: a report lists the same folders over and over,
    and urllib's unquote in pure Python is most of the time spent reading a CSV report."""
    folders: dict[str, str] = {}

    def decode(encoded: str) -> str:
        # "/" arrives as "%2F" or as itself; no UTF-8 sequence holds a "/" byte, so a key
        # splits at its last one into a folder and a name that decode apart.
        cut = max(encoded.rfind("/"), encoded.rfind("%2F"), encoded.rfind("%2f"))
        if cut < 0:
            return unquote_plus(encoded)
        cut += 1 if encoded[cut] == "/" else 3
        head, name = encoded[:cut], encoded[cut:]
        folder = folders.get(head)
        if folder is None:
            if len(folders) >= _DECODED_FOLDERS:
                folders.clear()
            folder = folders[head] = unquote_plus(head)
        return folder + (unquote_plus(name) if "%" in name or "+" in name else name)

    return decode


def _columnar_rows(
    data: IO[bytes], form: str, where: str, counts: InventoryCounts
) -> Iterator[tuple[str, str]]:
    # pyarrow is not in the Lambda package: only a reader of ORC or Parquet reports needs it.
    try:
        if form == "ORC":
            import pyarrow.orc as orc
        else:
            import pyarrow.parquet as parquet
    except ImportError:
        raise InventoryError(
            f"{where}: reading a {form} inventory needs pyarrow (pip install pyarrow), "
            "which this installation lacks; or configure the inventory as CSV"
        ) from None
    try:
        if form == "ORC":
            orc_file = orc.ORCFile(data)
            names = list(orc_file.schema.names)
            wanted = _wanted(names, where)
            batches: Iterable[Any] = (
                orc_file.read_stripe(i, columns=wanted) for i in range(orc_file.nstripes)
            )
        else:
            parquet_file = parquet.ParquetFile(data)
            names = list(parquet_file.schema_arrow.names)
            wanted = _wanted(names, where)
            batches = parquet_file.iter_batches(batch_size=65_536, columns=wanted)
        for batch in batches:
            values = {_normal(name): batch.column(name).to_pylist() for name in wanted}
            buckets, keys = values["bucket"], values["key"]
            latest = values.get("islatest") or [None] * len(keys)
            markers = values.get("isdeletemarker") or [None] * len(keys)
            for bucket, key, is_latest, is_marker in zip(buckets, keys, latest, markers, strict=True):
                counts.rows += 1
                if is_marker is True or is_latest is False:
                    counts.versions_skipped += 1
                    continue
                if bucket is not None and key is not None:
                    yield bucket, key
    except InventoryError:
        raise
    except Exception as exc:  # pyarrow's ArrowInvalid, OSError ...: a file that is not what it says
        raise InventoryError(f"{where}: not a readable {form} inventory file: {exc}") from None


def _wanted(names: list[str], where: str) -> list[str]:
    """The file's own names of the columns read: bucket, key and the version flags."""
    wanted = [n for n in names if _normal(n) in ("bucket", "key", "islatest", "isdeletemarker")]
    _need_columns(tuple(names), where)
    return wanted


def _need_columns(columns: tuple[str, ...], where: str) -> None:
    normal = {_normal(c) for c in columns}
    missing = [name for name in ("Bucket", "Key") if name.lower() not in normal]
    if missing:
        raise InventoryError(
            f"{where}: the inventory has no {' or '.join(missing)} column (fileSchema: {', '.join(columns)})"
        )


def _normal(name: str) -> str:
    """CSV says IsDeleteMarker, ORC and Parquet is_delete_marker: one spelling for both."""
    return name.replace("_", "").strip().lower()


def _format(value: Any, where: str) -> str:
    for known in FORMATS:
        if str(value).lower() == known.lower():
            return known
    raise InventoryError(f"{where}: fileFormat {value!r} is not one of {', '.join(FORMATS)}")


def _split_top(text: str) -> list[str]:
    """Split on commas outside <...> (an ORC struct's fields)."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "<":
            depth += 1
        elif char == ">":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


@contextlib.contextmanager
def _download(
    s3: Any, bucket: str, key: str, md5: str | None, counts: InventoryCounts
) -> Iterator[IO[bytes]]:
    """The data file, copied to a temporary file; with `md5`, only if the copy has it."""
    where = f"s3://{bucket}/{key}"
    digest = hashlib.md5(usedforsecurity=False)  # a check of the copy, as S3 Inventory writes it
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as copy:
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"]
            while chunk := body.read(_CHUNK):
                digest.update(chunk)
                copy.write(chunk)
                counts.bytes += len(chunk)
        except (ClientError, BotoCoreError) as exc:
            raise _get_error(exc, where) from exc
        except OSError as exc:  # the local copy: a full /tmp (Lambda's is 512 MB unless raised)
            raise InventoryError(f"{where}: cannot keep a copy to read: {exc.strerror or exc}") from exc
        if md5 is not None and digest.hexdigest() != md5.lower():
            raise InventoryError(f"{where}: MD5 {digest.hexdigest()} differs from the manifest's {md5}")
        copy.seek(0)
        yield copy


def _get(s3: Any, bucket: str, key: str) -> bytes:
    try:
        return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except (ClientError, BotoCoreError) as exc:
        raise _get_error(exc, f"s3://{bucket}/{key}") from exc


def _get_error(exc: Exception, where: str) -> Exception:
    # A report's file that is gone (a lifecycle rule expires old reports) stays gone: not a
    # transient error to retry.
    if isinstance(exc, ClientError) and error_code(exc) in ("NoSuchKey", "404"):
        return InventoryError(f"{where} does not exist")
    return classify(exc, f"S3 GetObject {where}")


def _checksum(s3: Any, bucket: str, key: str) -> str | None:
    """The MD5 in the manifest.checksum beside the manifest, or None when there is none."""
    checksum_key = key[: key.rfind("/") + 1] + "manifest.checksum"
    try:
        text = s3.get_object(Bucket=bucket, Key=checksum_key)["Body"].read().decode("ascii", "replace")
    except ClientError as exc:
        # A manifest copied on its own has none. Without s3:ListBucket a missing key answers
        # AccessDenied, not NoSuchKey: the checksum is a check of the copy, not a permission.
        if error_code(exc) in ("NoSuchKey", "404", "AccessDenied", "403"):
            return None
        raise classify(exc, f"S3 GetObject s3://{bucket}/{checksum_key}") from exc
    except BotoCoreError as exc:
        raise classify(exc, f"S3 GetObject s3://{bucket}/{checksum_key}") from exc
    return text.strip().lower() or None
