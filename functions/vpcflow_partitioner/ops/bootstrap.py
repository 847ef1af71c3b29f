"""`init`: make the Glue table match what AWS delivers, and the Athena view around it."""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..errors import TransientError, classify
from ..formats import Field, FormatError, TableSpec, fields_from_columns, parse_header
from ..scheme import ConfigurationError, TableRef, split_location
from .tables import (
    FILTERING,
    INDEX_NAME,
    MAX_INDEXES,
    TableWriter,
    database_exists,
    date_index_keys,
    ensure_database,
)

# A text file's header line is far shorter than this; gzip needs only the head to inflate it.
_HEAD_BYTES = 64 * 1024
_PARQUET_TAIL_BYTES = 64 * 1024


@dataclass
class InitPlan:
    """What `init` would do to the catalog: read only, nothing changed yet."""

    database_exists: bool
    table_exists: bool
    differences: list[str] = field(default_factory=list)
    partitions: int = 0  # existing partitions an update rewrites (counted only when it differs)
    index_keys: list[str] = field(default_factory=list)  # the partition index to create ([]: none)
    index: str = ""  # "" not asked, "present", "create"
    filtering: bool = False  # the table has partition_filtering.enabled = true (kept by updates)
    parameters: dict[str, str] = field(default_factory=dict)  # the existing table's, kept by updates

    @property
    def filtering_to_set(self) -> bool:
        """Whether the table property must be switched on (it goes with the index)."""
        return bool(self.index) and not self.filtering

    @property
    def action(self) -> str:
        """create, update, or none."""
        if not self.table_exists:
            return "create"
        return "update" if self.differences else "none"


def plan_init(glue: Any, spec: TableSpec, catalog_id: str = "", partition_index: bool = False) -> InitPlan:
    """Compare the catalog with the table `spec` describes (and, with `partition_index`, its
    date index); change nothing."""
    writer = TableWriter(glue, TableRef(catalog_id, spec.database, spec.name))
    wanted = spec.table_input() | {"DatabaseName": spec.database}
    index = "create" if partition_index else ""
    if not database_exists(glue, spec.database, catalog_id):
        keys = date_index_keys(wanted) if partition_index else []
        return InitPlan(database_exists=False, table_exists=False, index_keys=keys, index=index)
    existing = writer.find()
    if existing is None:
        keys = date_index_keys(wanted) if partition_index else []
        return InitPlan(database_exists=True, table_exists=False, index_keys=keys, index=index)
    plan = InitPlan(True, True, differences(existing, spec.table_input()))
    plan.parameters = dict(existing.get("Parameters") or {})
    plan.filtering = plan.parameters.get(FILTERING, "").lower() == "true"
    if plan.differences:
        plan.partitions = writer.count_partitions()
    if partition_index:
        # The table's own keys: the index is added to the table as it is, whatever flags say.
        plan.index_keys = date_index_keys(existing | {"DatabaseName": spec.database})
        plan.index = _index_state(spec, writer.partition_indexes(), plan.index_keys)
    return plan


def _index_state(spec: TableSpec, indexes: list[dict[str, Any]], keys: list[str]) -> str:
    """present (an ACTIVE or CREATING index on these keys) or create; refuses when Glue could
    not take another index, or when ours failed to build (it must be deleted first)."""
    name = f"{spec.database}.{spec.name}"
    usable = [i for i in indexes if i.get("IndexStatus") in ("ACTIVE", "CREATING")]
    if any([k if isinstance(k, str) else k["Name"] for k in i.get("Keys") or []] == keys for i in usable):
        return "present"
    ours = next((i for i in indexes if i.get("IndexName") == INDEX_NAME), None)
    if ours is not None:
        errors = (
            "; ".join(str(e.get("Code", "")) for e in ours.get("BackfillErrors") or []) or "no reason given"
        )
        raise ConfigurationError(
            f"{name}: index {INDEX_NAME} is {ours.get('IndexStatus')} ({errors}): aws glue "
            f"delete-partition-index --database-name {spec.database} --table-name {spec.name} "
            f"--index-name {INDEX_NAME}, then run again"
        )
    if len(usable) >= MAX_INDEXES:
        raise ConfigurationError(
            f"{name} has {len(usable)} partition indexes, Glue's maximum: delete one "
            f"(aws glue delete-partition-index) to add {INDEX_NAME}"
        )
    return "create"


def apply_init(glue: Any, spec: TableSpec, plan: InitPlan, catalog_id: str = "") -> int:
    """Carry out a plan: create the database and the table, or update the table and rewrite
    every partition's StorageDescriptor (Athena reads each partition's own schema). Returns
    how many partitions were rewritten."""
    keys_differ = [d for d in plan.differences if d.startswith("partition keys")]
    if keys_differ:
        raise FormatError(
            f"{spec.database}.{spec.name}: {keys_differ[0]}; partition keys cannot change in place, "
            "create a table under another name"
        )
    writer = TableWriter(glue, TableRef(catalog_id, spec.database, spec.name))
    table_input = spec.table_input()
    # An update keeps the table's other properties (a team tag, partition filtering); the
    # definition's own win. The index asks for filtering.
    table_input["Parameters"] = plan.parameters | table_input["Parameters"]
    if plan.filtering or plan.index:
        table_input["Parameters"][FILTERING] = "true"
    if not plan.database_exists:
        ensure_database(glue, spec.database, catalog_id)
    if not plan.table_exists:
        writer.create(table_input, plan.index_keys if plan.index == "create" else None)
        return 0
    if not plan.differences:
        return 0
    writer.update(table_input)
    return writer.update_partitions(spec.storage_descriptor())


def apply_index(glue: Any, spec: TableSpec, plan: InitPlan, catalog_id: str = "") -> bool:
    """On an existing table: create the date index and switch partition filtering on, as the
    plan says (additive: no partition is rewritten). True when anything changed."""
    if not plan.table_exists or not plan.index:
        return False
    writer = TableWriter(glue, TableRef(catalog_id, spec.database, spec.name))
    if plan.index == "create":
        writer.create_partition_index(plan.index_keys)
    existing = writer.find() or {}
    parameters = existing.get("Parameters") or {}
    if parameters.get(FILTERING, "").lower() != "true":
        writer.update(_as_input(existing) | {"Parameters": parameters | {FILTERING: "true"}})
    return plan.index == "create" or plan.filtering_to_set


# What UpdateTable takes back of a GetTable answer (the rest is read-only).
_TABLE_INPUT_FIELDS = (
    "Name", "Description", "Owner", "Retention", "StorageDescriptor", "PartitionKeys",
    "ViewOriginalText", "ViewExpandedText", "TableType", "Parameters",
)  # fmt: skip


def _as_input(table: dict[str, Any]) -> dict[str, Any]:
    return {k: table[k] for k in _TABLE_INPUT_FIELDS if k in table}


def differences(existing: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Human-readable differences between a Glue table and a TableInput."""
    out: list[str] = []
    have_sd, want_sd = existing.get("StorageDescriptor") or {}, wanted["StorageDescriptor"]
    have_cols = [(c["Name"], c["Type"]) for c in have_sd.get("Columns") or []]
    want_cols = [(c["Name"], c["Type"]) for c in want_sd["Columns"]]
    have_types, want_types = dict(have_cols), dict(want_cols)
    added = [f"{n} {t}" for n, t in want_cols if n not in have_types]
    removed = [f"{n} {t}" for n, t in have_cols if n not in want_types]
    if added:
        out.append("columns to add: " + ", ".join(added))
    if removed:
        out.append("columns to remove: " + ", ".join(removed))
    for name, wanted_type in want_cols:
        if name in have_types and have_types[name] != wanted_type:
            out.append(f"column {name}: table has {have_types[name]}, files need {wanted_type}")
    if not added and not removed and [n for n, _ in have_cols] != [n for n, _ in want_cols]:
        out.append("column order differs from the files")
    have_keys = [(k["Name"], k["Type"]) for k in existing.get("PartitionKeys") or []]
    want_keys = [(k["Name"], k["Type"]) for k in wanted["PartitionKeys"]]
    if have_keys != want_keys:
        out.append(f"partition keys: table has {_keys(have_keys)}, wanted {_keys(want_keys)}")
    for label, have, want in (
        ("location", have_sd.get("Location", "").rstrip("/"), want_sd["Location"].rstrip("/")),
        (
            "SerDe",
            (have_sd.get("SerdeInfo") or {}).get("SerializationLibrary"),
            want_sd["SerdeInfo"]["SerializationLibrary"],
        ),
        ("input format", have_sd.get("InputFormat"), want_sd["InputFormat"]),
    ):
        if have != want:
            out.append(f"{label}: table has {have}, wanted {want}")
    have_params = existing.get("Parameters") or {}
    for key in ("skip.header.line.count",):
        if have_params.get(key) != wanted["Parameters"].get(key):
            out.append(
                f"table property {key}: table has {have_params.get(key)}, wanted {wanted['Parameters'].get(key)}"
            )
    return out


def _keys(keys: list[tuple[str, str]]) -> str:
    return "(" + ", ".join(f"{n} {t}" for n, t in keys) + ")"


def fields_of_table(table: dict[str, Any]) -> tuple[Field, ...]:
    return fields_from_columns((table.get("StorageDescriptor") or {}).get("Columns") or [])


def read_object_fields(s3: Any, url: str) -> tuple[tuple[Field, ...], str]:
    """(fields, file format) of a delivered flow-log file, reading only its head or footer."""
    bucket, key = split_location(url)
    key = key.rstrip("/")
    if key.endswith(".parquet"):
        return _parquet_fields(s3, bucket, key), "parquet"
    head = _get(s3, bucket, key, f"bytes=0-{_HEAD_BYTES - 1}")
    try:
        text = zlib.decompressobj(wbits=47).decompress(head)  # 47: gzip or zlib header, auto
    except zlib.error as exc:
        raise FormatError(f"{url} is not a gzip flow-log file: {exc}") from None
    line = text.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    if not line:
        raise FormatError(f"{url} has no header line")
    return parse_header(line), "text"


def _parquet_fields(s3: Any, bucket: str, key: str) -> tuple[Field, ...]:
    # A Parquet file ends with: footer (Thrift compact FileMetaData), 4-byte length, "PAR1".
    tail = _get(s3, bucket, key, f"bytes=-{_PARQUET_TAIL_BYTES}")
    if len(tail) < 12 or tail[-4:] != b"PAR1":
        raise FormatError(f"s3://{bucket}/{key} is not a Parquet file")
    (length,) = struct.unpack("<I", tail[-8:-4])
    if length + 8 > len(tail):
        tail = _get(s3, bucket, key, f"bytes=-{length + 8}")
    try:
        metadata = _ThriftCompact(tail[-8 - length : -8]).read_struct()
        schema = metadata.get(2) or []
        names = [element.get(4, b"").decode() for element in schema[1:] if not element.get(5)]
    except (IndexError, TypeError, ValueError, AttributeError, struct.error) as exc:
        raise FormatError(f"s3://{bucket}/{key}: unreadable Parquet footer ({type(exc).__name__})") from None
    if not names:
        raise FormatError(f"s3://{bucket}/{key}: the Parquet footer names no columns")
    return fields_from_columns([{"Name": n} for n in names])


def _get(s3: Any, bucket: str, key: str, byte_range: str) -> bytes:
    try:
        return bytes(s3.get_object(Bucket=bucket, Key=key, Range=byte_range)["Body"].read())
    except (ClientError, BotoCoreError) as exc:
        raise classify(exc, f"S3 GetObject s3://{bucket}/{key}") from exc


class _ThriftCompact:
    """Just enough of the Thrift compact protocol to read a Parquet footer's schema."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def _byte(self) -> int:
        value = self._data[self._pos]
        self._pos += 1
        return value

    def _varint(self) -> int:
        shift = result = 0
        while True:
            byte = self._byte()
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def _zigzag(self) -> int:
        n = self._varint()
        return (n >> 1) ^ -(n & 1)

    def read_struct(self) -> dict[int, Any]:
        fields: dict[int, Any] = {}
        last = 0
        while True:
            header = self._byte()
            kind = header & 0x0F
            if kind == 0:
                return fields
            delta = header >> 4
            last = last + delta if delta else self._zigzag()
            fields[last] = self._value(kind)

    def _value(self, kind: int) -> Any:
        if kind in (1, 2):
            return kind == 1
        if kind == 3:
            return self._byte()
        if kind in (4, 5, 6):
            return self._zigzag()
        if kind == 7:
            self._pos += 8
            return None
        if kind == 8:
            size = self._varint()
            value = self._data[self._pos : self._pos + size]
            self._pos += size
            return value
        if kind in (9, 10):
            header = self._byte()
            size = header >> 4 if header >> 4 != 15 else self._varint()
            element = header & 0x0F
            return [self._element(element) for _ in range(size)]
        if kind == 11:
            size = self._varint()
            if size:
                types = self._byte()
                return {self._element(types >> 4): self._element(types & 0x0F) for _ in range(size)}
            return {}
        if kind == 12:
            return self.read_struct()
        raise FormatError(f"unreadable Parquet footer (Thrift type {kind})")

    def _element(self, kind: int) -> Any:
        if kind in (1, 2):  # booleans in collections are one byte each
            return self._byte() == 1
        return self._value(kind)


def create_view(
    athena: Any,
    sql: str,
    workgroup: str,
    output: str = "",
    sleep: Callable[[float], None] = time.sleep,
    timeout: float = 120.0,
) -> str:
    """Run one DDL statement through Athena and wait for it; returns the query id."""
    kwargs: dict[str, Any] = {"QueryString": sql, "WorkGroup": workgroup}
    if output:
        kwargs["ResultConfiguration"] = {"OutputLocation": output}
    try:
        query_id = str(athena.start_query_execution(**kwargs)["QueryExecutionId"])
        waited, delay = 0.0, 0.2
        while True:
            status = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]
            state = status["State"]
            if state == "SUCCEEDED":
                return query_id
            if state in ("FAILED", "CANCELLED"):
                raise FormatError(f"Athena {state.lower()}: {status.get('StateChangeReason', '')}")
            if waited >= timeout:
                raise TransientError(f"Athena query {query_id} still {state} after {timeout:.0f}s")
            sleep(delay)  # backoff while the DDL runs, not a fixed sleep(10)
            waited += delay
            delay = min(delay * 2, 5.0)
    except (ClientError, BotoCoreError) as exc:
        raise classify(exc, f"Athena StartQueryExecution in workgroup {workgroup}") from exc
