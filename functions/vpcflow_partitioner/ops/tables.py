"""Table-level writes for `init`: the database, the table, and every partition's columns.

Only the operator's machine writes tables; the function only reads them, so this is not in its zip.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..catalog import MAX_SEGMENTS, Catalog, catalog_id_args
from ..errors import TransientError, classify, error_code
from ..scheme import TableRef


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

    def create(self, table_input: dict[str, Any]) -> None:
        self._call(
            "CreateTable", self._glue.create_table, DatabaseName=self.table.database, TableInput=table_input
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
