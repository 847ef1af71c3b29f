"""Glue Data Catalog adapter: read the table, find and create partitions."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from .config import SERVICE
from .errors import TransientError, classify
from .scheme import PartitionSpec, Scheme, TableRef, descriptor_fingerprint

logger = Logger(service=SERVICE, child=True)

# "BatchCreatePartition: PartitionInputList ... Maximum number of 100 items" (Glue API).
CREATE_CHUNK = 100
# "BatchGetPartition: PartitionsToGet ... Maximum number of 1000 items" (Glue API).
GET_CHUNK = 1000
_UNPROCESSED_TRIES = 5

# "BatchUpdatePartition: Entries ... Maximum number of 100 items" (Glue API).
UPDATE_CHUNK = 100
# "BatchDeletePartition: PartitionsToDelete ... Maximum number of 25 items" (Glue API).
DELETE_CHUNK = 25
# "Segment: TotalSegments ... Maximum value of 10": GetPartitions pages in parallel.
MAX_SEGMENTS = 10

CREATED = "created"
EXISTS = "exists"
UNMATCHED = "UnmatchedError: Glue reported an error for values this call did not send; retry"


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition as Glue has it (its descriptor kept as a fingerprint: a table's worth of
    full descriptors would not fit in memory)."""

    values: tuple[str, ...]
    location: str
    fingerprint: tuple[Any, ...] = ()
    parameters: tuple[tuple[str, str], ...] = ()  # the partition's own Parameters, kept on update


# What an operator does about a per-partition error a retry cannot fix.
_HINTS = {
    # Glue's quota of partitions per table (10,000,000 by default): no retry helps.
    "ResourceNumberLimitExceededException": (
        ": the table is at Glue's partitions-per-table quota: split it (docs/SCALE.md), prune old "
        "partitions (`audit --prune`) or raise the quota"
    ),
}


class Catalog:
    """One table in one catalog, through one Glue client."""

    def __init__(self, glue: Any, table: TableRef, sleep: Callable[[float], None] = time.sleep) -> None:
        self._glue = glue
        self.table = table
        self._sleep = sleep
        self.create_calls = 0  # BatchCreatePartition requests our code sent
        self.create_entries = 0  # partition entries in them: "create attempts"

    def _ids(self) -> dict[str, str]:
        return {"DatabaseName": self.table.database, **catalog_id_args(self.table.catalog_id)}

    def get_table(self) -> dict[str, Any]:
        """GetTable's `Table`; a missing table or database is a ConfigurationError."""
        try:
            return dict(self._glue.get_table(Name=self.table.name, **self._ids())["Table"])
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, f"Glue GetTable {self.table}") from exc

    def some_partitions(self, count: int = 25) -> list[tuple[tuple[str, ...], str]]:
        """Values and Location of up to `count` partitions (one GetPartitions page, no columns)."""
        try:
            response = self._glue.get_partitions(
                TableName=self.table.name, MaxResults=count, ExcludeColumnSchema=True, **self._ids()
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, f"Glue GetPartitions {self.table}") from exc
        return [(tuple(p["Values"]), _location(p)) for p in response.get("Partitions") or []]

    def create(self, scheme: Scheme, specs: Sequence[PartitionSpec]) -> dict[PartitionSpec, str]:
        """Create partitions in calls of at most 100; answer per spec: created, exists or an error code."""
        outcomes: dict[PartitionSpec, str] = {}
        for start in range(0, len(specs), CREATE_CHUNK):
            chunk = specs[start : start + CREATE_CHUNK]
            by_values = {spec.values: spec for spec in chunk}
            self.create_calls += 1
            self.create_entries += len(chunk)
            try:
                response = self._glue.batch_create_partition(
                    TableName=self.table.name,
                    PartitionInputList=[scheme.partition_input(spec) for spec in chunk],
                    **self._ids(),
                )
            except (ClientError, BotoCoreError) as exc:
                error = classify(exc, f"Glue BatchCreatePartition {self.table}")
                if not isinstance(error, TransientError):
                    raise error from exc
                logger.warning("partition create failed", table=str(self.table), error=str(error))
                outcomes.update({spec: str(error) for spec in chunk})
                continue
            outcomes.update({spec: CREATED for spec in chunk})
            # Glue answers 200 with a per-partition Errors list; ignoring it loses partitions.
            unmatched = []
            for error in response.get("Errors") or []:
                spec = by_values.get(tuple(error.get("PartitionValues") or ()))
                if spec is None:
                    unmatched.append(error)
                    continue
                code = (error.get("ErrorDetail") or {}).get("ErrorCode", "UnknownError")
                outcomes[spec] = EXISTS if code == "AlreadyExistsException" else code + _HINTS.get(code, "")
                if code != "AlreadyExistsException":
                    logger.warning(
                        "partition create failed",
                        table=str(self.table),
                        values=list(spec.values),
                        error=code,
                        detail=(error.get("ErrorDetail") or {}).get("ErrorMessage"),
                    )
            if unmatched:
                # An error we cannot place could be any partition's: fail closed. Those Glue
                # shows are answered as already there (their folder is read back by the caller);
                # the rest fail for a retry, so no record is acked for a partition that is absent.
                logger.warning("unmatched create errors", table=str(self.table), errors=unmatched)
                unsure = [spec for spec in chunk if outcomes[spec] == CREATED]
                try:
                    there = self.existing(unsure)
                except TransientError:
                    there = {}
                outcomes.update({spec: EXISTS if spec.values in there else UNMATCHED for spec in unsure})
        return outcomes

    def existing(self, specs: Sequence[PartitionSpec]) -> dict[tuple[str, ...], str]:
        """Values -> Location of those `specs` Glue already has (BatchGetPartition, 1,000 a call)."""
        found: dict[tuple[str, ...], str] = {}
        for start in range(0, len(specs), GET_CHUNK):
            pending = [{"Values": list(spec.values)} for spec in specs[start : start + GET_CHUNK]]
            for attempt in range(_UNPROCESSED_TRIES):
                try:
                    response = self._glue.batch_get_partition(
                        TableName=self.table.name, PartitionsToGet=pending, **self._ids()
                    )
                except (ClientError, BotoCoreError) as exc:
                    raise classify(exc, f"Glue BatchGetPartition {self.table}") from exc
                for partition in response.get("Partitions") or []:
                    found[tuple(partition["Values"])] = _location(partition)
                # Glue may leave keys unprocessed under load; ask again for just those.
                pending = list(response.get("UnprocessedKeys") or [])
                if not pending:
                    break
                self._sleep(min(2.0, 0.1 * 2**attempt) * (0.5 + random.random()))
            else:
                raise TransientError(
                    f"Glue BatchGetPartition {self.table}: {len(pending)} keys still unprocessed"
                )
        return found

    def partitions(
        self, expression: str = "", segments: int = 1, columns: bool = True
    ) -> Iterator[Partition]:
        """Every partition (GetPartitions, paged, optionally filtered), read in `segments`
        parallel scans of disjoint parts of the table (at most 10); `columns=False` leaves the
        column schema out of the answers (ExcludeColumnSchema) when only Locations matter."""
        segments = max(1, min(segments, MAX_SEGMENTS))
        if segments == 1:
            yield from self._scan(expression, None, columns)
            return
        with ThreadPoolExecutor(segments, thread_name_prefix="segment") as pool:
            scans = pool.map(
                lambda n: list(
                    self._scan(expression, {"SegmentNumber": n, "TotalSegments": segments}, columns)
                ),
                range(segments),
            )
            seen: set[tuple[str, ...]] = set()
            for scan in scans:
                for partition in scan:
                    if partition.values not in seen:  # segments are disjoint; stand-ins may not be
                        seen.add(partition.values)
                        yield partition

    def _scan(self, expression: str, segment: dict[str, int] | None, columns: bool) -> Iterator[Partition]:
        paginator = self._glue.get_paginator("get_partitions")
        kwargs: dict[str, Any] = {"TableName": self.table.name, **self._ids()}
        if expression:
            kwargs["Expression"] = expression
        if segment:
            kwargs["Segment"] = segment
        if not columns:
            kwargs["ExcludeColumnSchema"] = True
        try:
            for page in paginator.paginate(**kwargs):
                for partition in page.get("Partitions") or []:
                    yield Partition(
                        tuple(partition["Values"]),
                        _location(partition),
                        descriptor_fingerprint(partition.get("StorageDescriptor") or {}) if columns else (),
                        tuple(sorted((partition.get("Parameters") or {}).items())),
                    )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, f"Glue GetPartitions {self.table}") from exc

    def update(self, inputs: Sequence[dict[str, Any]]) -> dict[tuple[str, ...], str]:
        """Replace partitions by PartitionInput (BatchUpdatePartition, 100 a call); values -> error
        code of those Glue did not update."""
        failed: dict[tuple[str, ...], str] = {}
        for start in range(0, len(inputs), UPDATE_CHUNK):
            chunk = inputs[start : start + UPDATE_CHUNK]
            entries = [{"PartitionValueList": list(i["Values"]), "PartitionInput": i} for i in chunk]
            try:
                response = self._glue.batch_update_partition(
                    TableName=self.table.name, Entries=entries, **self._ids()
                )
            except (ClientError, BotoCoreError) as exc:
                raise classify(exc, f"Glue BatchUpdatePartition {self.table}") from exc
            for error in response.get("Errors") or []:
                values = tuple(error.get("PartitionValueList") or ())
                failed[values] = (error.get("ErrorDetail") or {}).get("ErrorCode", "UnknownError")
        return failed

    def delete(self, values: Iterable[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
        """Delete partitions by values (BatchDeletePartition, 25 a call); values -> error code of
        those Glue did not delete."""
        items = [{"Values": list(v)} for v in values]
        failed: dict[tuple[str, ...], str] = {}
        for start in range(0, len(items), DELETE_CHUNK):
            chunk = items[start : start + DELETE_CHUNK]
            try:
                response = self._glue.batch_delete_partition(
                    TableName=self.table.name, PartitionsToDelete=chunk, **self._ids()
                )
            except (ClientError, BotoCoreError) as exc:
                # Answer per chunk: the caller must still clean up after the chunks that went.
                error = str(classify(exc, f"Glue BatchDeletePartition {self.table}"))
                failed.update({tuple(item["Values"]): error for item in chunk})
                continue
            for error in response.get("Errors") or []:
                failed[tuple(error.get("PartitionValues") or ())] = (error.get("ErrorDetail") or {}).get(
                    "ErrorCode", "UnknownError"
                )
        return failed


def _location(partition: dict[str, Any]) -> str:
    return str((partition.get("StorageDescriptor") or {}).get("Location", ""))


def catalog_id_args(catalog_id: str) -> dict[str, str]:
    """The CatalogId argument: left out for the caller's own catalog."""
    return {"CatalogId": catalog_id} if catalog_id else {}
