"""Table-level writes for `init`: the database, the table, and every partition's columns.

Only the operator's machine writes tables; the function only reads them, so this is not in its zip.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..catalog import MAX_SEGMENTS, Catalog, catalog_id_args
from ..errors import TransientError, classify, error_code
from ..scheme import ConfigurationError, Scheme, TableRef

# "Indexes can be created for String (string, char, and varchar), Numeric (int, bigint, long,
# tinyint, and smallint), and Date (yyyy-MM-dd) column types" (Glue developer guide, "Creating
# partition indexes"). Athena then fetches only the matching partitions once the table has
# `partition_filtering.enabled` = true (Athena user guide, "Optimize queries with AWS Glue
# partition indexing and filtering").
_INDEXABLE = re.compile(r"^(string|char\(\d+\)|varchar\(\d+\)|int|bigint|long|tinyint|smallint|date)$", re.I)
INDEX_NAME = "vpcflow_partitioner_date"
FILTERING = "partition_filtering.enabled"
MAX_INDEXES = 3  # partition indexes per table (Glue quotas)
# Not a Glue limit (an index takes one key or more): a date has at most three keys.
MAX_DATE_KEYS = 3


def date_index_keys(table: dict[str, Any]) -> list[str]:
    """The keys of the index every flow-log query uses: the date (`date`, or `year`, `month`,
    `day`), in the table's order. A day's partitions across every account and region are one
    range of the index; a query naming an account too filters that range."""
    scheme = Scheme.from_table(table)
    types = {k["Name"]: k.get("Type", "string") for k in table.get("PartitionKeys") or []}
    keys = [k.name for k in scheme.keys if k.role in ("date", "year", "month", "day")][:MAX_DATE_KEYS]
    if not keys:
        raise ConfigurationError(f"table {scheme.table} has no date partition key to index")
    unindexable = [f"{k} {types[k]}" for k in keys if not _INDEXABLE.match(types[k])]
    if unindexable:
        raise ConfigurationError(
            f"table {scheme.table}: Glue cannot index {', '.join(unindexable)} "
            "(string, char, varchar, int, bigint, long, tinyint, smallint or date only)"
        )
    return keys


def database_exists(glue: Any, database: str, catalog_id: str = "") -> bool:
    """Whether the Glue database exists."""
    try:
        glue.get_database(Name=database, **catalog_id_args(catalog_id))
        return True
    except ClientError as exc:
        if error_code(exc) == "EntityNotFoundException":
            return False
        raise classify(exc, f"Glue GetDatabase {database}") from exc
    except BotoCoreError as exc:
        raise classify(exc, f"Glue GetDatabase {database}") from exc


def ensure_database(glue: Any, database: str, catalog_id: str = "") -> bool:
    """Create the database unless it exists; True when created."""
    try:
        glue.create_database(DatabaseInput={"Name": database}, **catalog_id_args(catalog_id))
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
        self._ids = catalog_id_args(table.catalog_id)

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

    def create(self, table_input: dict[str, Any], index_keys: list[str] | None = None) -> None:
        """CreateTable; with `index_keys`, its partition index in the same call."""
        indexes = {"PartitionIndexes": [{"Keys": index_keys, "IndexName": INDEX_NAME}]} if index_keys else {}
        self._call(
            "CreateTable",
            self._glue.create_table,
            DatabaseName=self.table.database,
            TableInput=table_input,
            **indexes,
        )

    def partition_indexes(self) -> list[dict[str, Any]]:
        """The table's partition indexes (name, keys, status)."""
        try:
            pages = self._glue.get_paginator("get_partition_indexes").paginate(
                DatabaseName=self.table.database, TableName=self.table.name, **self._ids
            )
            return [i for page in pages for i in page.get("PartitionIndexDescriptorList") or []]
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, f"Glue GetPartitionIndexes {self.table}") from exc

    def create_partition_index(self, keys: list[str]) -> None:
        """CreatePartitionIndex: Glue builds it from the existing partitions (CREATING, then ACTIVE)."""
        self._call(
            "CreatePartitionIndex",
            self._glue.create_partition_index,
            DatabaseName=self.table.database,
            TableName=self.table.name,
            PartitionIndex={"Keys": keys, "IndexName": INDEX_NAME},
        )

    def update(self, table_input: dict[str, Any]) -> None:
        self._call(
            "UpdateTable", self._glue.update_table, DatabaseName=self.table.database, TableInput=table_input
        )

    def count_partitions(self) -> int:
        """How many partitions the table has (GetPartitions without column schemas)."""
        return sum(
            1 for _ in Catalog(self._glue, self.table).partitions(segments=MAX_SEGMENTS, columns=False)
        )

    def update_partitions(self, descriptor: dict[str, Any]) -> int:
        """Give every existing partition `descriptor`, keeping its own Location (100 a call).

        Athena reads each partition's own schema, so a table update alone would leave old
        partitions reading the old columns.
        """
        catalog = Catalog(self._glue, self.table)
        inputs = []
        for partition in catalog.partitions(segments=MAX_SEGMENTS, columns=False):
            sd = copy.deepcopy(descriptor)
            sd["Location"] = partition.location
            inputs.append(
                {
                    "Values": list(partition.values),
                    "StorageDescriptor": sd,
                    "Parameters": dict(partition.parameters),
                }
            )
        failed = catalog.update(inputs)
        if failed:
            raise TransientError(
                f"Glue BatchUpdatePartition {self.table}: {len(failed)} partitions not updated"
            )
        return len(inputs)

    def _call(self, what: str, method: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
        try:
            return dict(method(**kwargs, **self._ids))
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, f"Glue {what} {self.table}") from exc
