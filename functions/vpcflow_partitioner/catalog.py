"""Glue Data Catalog adapter: read the table, find and create partitions."""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from .config import SERVICE
from .errors import TransientError, classify, error_code
from .scheme import PartitionSpec, Scheme, TableRef

logger = Logger(service=SERVICE, child=True)

# "BatchCreatePartition: PartitionInputList ... Maximum number of 100 items" (Glue API).
CREATE_CHUNK = 100
# "BatchGetPartition: PartitionsToGet ... Maximum number of 1000 items" (Glue API).
GET_CHUNK = 1000
_UNPROCESSED_TRIES = 5

CREATED = "created"
EXISTS = "exists"


class Catalog:
    """One table in one catalog, through one Glue client."""

    def __init__(self, glue: Any, table: TableRef, sleep: Callable[[float], None] = time.sleep) -> None:
        self._glue = glue
        self.table = table
        self._sleep = sleep
        self.create_calls = 0  # BatchCreatePartition requests our code sent
        self.create_entries = 0  # partition entries in them: "create attempts"

    def _ids(self) -> dict[str, str]:
        return {"DatabaseName": self.table.database, **_catalog_id(self.table.catalog_id)}

    def get_table(self) -> dict[str, Any]:
        """GetTable's `Table`; a missing table or database is a ConfigurationError."""
        try:
            return dict(self._glue.get_table(Name=self.table.name, **self._ids())["Table"])
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, f"Glue GetTable {self.table}") from exc

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
            for error in response.get("Errors") or []:
                spec = by_values.get(tuple(error.get("PartitionValues") or ()))
                if spec is None:
                    continue
                code = (error.get("ErrorDetail") or {}).get("ErrorCode", "UnknownError")
                outcomes[spec] = EXISTS if code == "AlreadyExistsException" else code
                if code != "AlreadyExistsException":
                    logger.warning(
                        "partition create failed",
                        table=str(self.table),
                        values=list(spec.values),
                        error=code,
                        detail=(error.get("ErrorDetail") or {}).get("ErrorMessage"),
                    )
        return outcomes

    def existing(self, specs: Sequence[PartitionSpec]) -> set[tuple[str, ...]]:
        """The values of those `specs` Glue already has (BatchGetPartition, 1,000 a call)."""
        found: set[tuple[str, ...]] = set()
        for start in range(0, len(specs), GET_CHUNK):
            pending = [{"Values": list(spec.values)} for spec in specs[start : start + GET_CHUNK]]
            for attempt in range(_UNPROCESSED_TRIES):
                try:
                    response = self._glue.batch_get_partition(
                        TableName=self.table.name, PartitionsToGet=pending, **self._ids()
                    )
                except (ClientError, BotoCoreError) as exc:
                    raise classify(exc, f"Glue BatchGetPartition {self.table}") from exc
                found.update(tuple(p["Values"]) for p in response.get("Partitions") or [])
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

    def partitions(self, expression: str = "") -> Iterator[tuple[tuple[str, ...], str]]:
        """Every partition's values and Location (GetPartitions, paged, optionally filtered)."""
        paginator = self._glue.get_paginator("get_partitions")
        kwargs: dict[str, Any] = {"TableName": self.table.name, **self._ids()}
        if expression:
            kwargs["Expression"] = expression
        try:
            for page in paginator.paginate(**kwargs):
                for partition in page.get("Partitions") or []:
                    location = (partition.get("StorageDescriptor") or {}).get("Location", "")
                    yield tuple(partition["Values"]), location
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, f"Glue GetPartitions {self.table}") from exc

    def delete(self, values: Iterable[tuple[str, ...]]) -> int:
        """Delete partitions by values (BatchDeletePartition, 25 a call); returns how many."""
        items = [{"Values": list(v)} for v in values]
        deleted = 0
        for start in range(0, len(items), 25):  # "PartitionsToDelete ... Maximum 25 items"
            chunk = items[start : start + 25]
            try:
                response = self._glue.batch_delete_partition(
                    TableName=self.table.name, PartitionsToDelete=chunk, **self._ids()
                )
            except (ClientError, BotoCoreError) as exc:
                raise classify(exc, f"Glue BatchDeletePartition {self.table}") from exc
            deleted += len(chunk) - len(response.get("Errors") or [])
        return deleted


def _catalog_id(catalog_id: str) -> dict[str, str]:
    """The CatalogId argument: left out for the caller's own catalog."""
    return {"CatalogId": catalog_id} if catalog_id else {}


def ensure_database(glue: Any, database: str, catalog_id: str = "") -> bool:
    """Create the database unless it exists; True when created."""
    try:
        glue.create_database(DatabaseInput={"Name": database}, **_catalog_id(catalog_id))
        return True
    except ClientError as exc:
        if error_code(exc) == "AlreadyExistsException":
            return False
        raise classify(exc, f"Glue CreateDatabase {database}") from exc
    except BotoCoreError as exc:
        raise classify(exc, f"Glue CreateDatabase {database}") from exc


class TableWriter:
    """Table-level writes for `init`: create, update, and re-describe existing partitions."""

    def __init__(self, glue: Any, table: TableRef) -> None:
        self._glue = glue
        self.table = table
        self._ids = _catalog_id(table.catalog_id)

    def find(self) -> dict[str, Any] | None:
        """The table, or None when it does not exist."""
        try:
            return dict(
                self._glue.get_table(DatabaseName=self.table.database, Name=self.table.name, **self._ids)[
                    "Table"
                ]
            )
        except ClientError as exc:
            if error_code(exc) == "EntityNotFoundException":
                return None
            raise classify(exc, f"Glue GetTable {self.table}") from exc
        except BotoCoreError as exc:
            raise classify(exc, f"Glue GetTable {self.table}") from exc

    def create(self, table_input: dict[str, Any]) -> None:
        self._call(
            "CreateTable", self._glue.create_table, DatabaseName=self.table.database, TableInput=table_input
        )

    def update(self, table_input: dict[str, Any]) -> None:
        self._call(
            "UpdateTable", self._glue.update_table, DatabaseName=self.table.database, TableInput=table_input
        )

    def update_partitions(self, descriptor: dict[str, Any]) -> int:
        """Give every existing partition `descriptor`, keeping its own Location (100 a call).

        Athena reads each partition's own schema, so a table update alone would leave old
        partitions reading the old columns.
        """
        catalog = Catalog(self._glue, self.table)
        entries = []
        for values, location in catalog.partitions():
            sd = copy.deepcopy(descriptor)
            sd["Location"] = location
            entries.append(
                {
                    "PartitionValueList": list(values),
                    "PartitionInput": {"Values": list(values), "StorageDescriptor": sd},
                }
            )
        updated = 0
        for start in range(0, len(entries), CREATE_CHUNK):  # "Entries ... Maximum 100 items"
            chunk = entries[start : start + CREATE_CHUNK]
            response = self._call(
                "BatchUpdatePartition",
                self._glue.batch_update_partition,
                DatabaseName=self.table.database,
                TableName=self.table.name,
                Entries=chunk,
            )
            errors = response.get("Errors") or []
            if errors:
                raise TransientError(
                    f"Glue BatchUpdatePartition {self.table}: {len(errors)} partitions not updated"
                )
            updated += len(chunk)
        return updated

    def _call(self, what: str, method: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
        try:
            return dict(method(**kwargs, **self._ids))
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, f"Glue {what} {self.table}") from exc
