"""Which partitions are known: a bounded in-memory set, then a DynamoDB table.

DynamoDB item: `id` (S) names catalog, database, table, the table's CreateTime and the
partition values; `status` is `claimed` (one invocation is creating it, short expiry) or
`present` (Glue answered created or already exists); `expiration` (N, epoch seconds) is the
TTL attribute. TTL deletes expired items "typically within a few days" (DynamoDB TTL docs),
so a reader treats `expiration < now` as absent instead of trusting that it is gone.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from .config import SERVICE
from .errors import TransientError, classify, error_code
from .scheme import PartitionSpec, Scheme

logger = Logger(service=SERVICE, child=True)

PRESENT = "present"
CLAIMED = "claimed"  # by us, this invocation: go ahead and create
BUSY = "busy"  # claimed by another invocation that has not finished

# "BatchGetItem: up to 100 items"; "BatchWriteItem: up to 25 put or delete requests".
_GET_CHUNK = 100
_WRITE_CHUNK = 25
_UNPROCESSED_TRIES = 5
# Above this many unknown partitions one BatchGetItem is cheaper than a claim each.
_READ_FIRST_ABOVE = 3


class SeenSet:
    """Partitions this container knows are present; bounded, least recently used out first."""

    def __init__(self, limit: int = 4096) -> None:
        self._items: OrderedDict[Hashable, None] = OrderedDict()
        self._limit = limit

    def __contains__(self, key: Hashable) -> bool:
        if key in self._items:
            self._items.move_to_end(key)
            return True
        return False

    def add(self, key: Hashable) -> None:
        self._items[key] = None
        self._items.move_to_end(key)
        while len(self._items) > self._limit:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def item_id(scheme: Scheme, spec: PartitionSpec) -> str:
    """The cache key: JSON, so values holding any character stay unambiguous."""
    table = scheme.table
    return json.dumps(
        [table.catalog_id, table.database, table.name, scheme.create_time, *spec.values],
        separators=(",", ":"),
    )


class PartitionCache:
    """Conditional claims and `present` marks in one DynamoDB table."""

    def __init__(
        self,
        dynamodb: Any,
        table_name: str,
        ttl_days: int,
        claim_seconds: int = 180,  # longer than a create with all its botocore retries
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._ddb = dynamodb
        self._table = table_name
        self._ttl_seconds = ttl_days * 86400
        self._claim_seconds = claim_seconds
        self._sleep = sleep
        self._token = uuid.uuid4().hex
        self.calls = 0

    def claim(self, ids: Sequence[str], now: float) -> dict[str, str]:
        """Per id: PRESENT, BUSY, CLAIMED (ours now), or a transient error message."""
        states: dict[str, str] = {}
        todo = list(ids)
        if len(todo) > _READ_FIRST_ABOVE:
            states.update(self.read(todo, now))
            todo = [i for i in todo if i not in states]
        for id_ in todo:
            states[id_] = self._claim_one(id_, now)
        return states

    def _claim_one(self, id_: str, now: float) -> str:
        self.calls += 1
        try:
            # One conditional write either takes the claim or, through ALL_OLD, tells us who
            # has it: no separate read for a partition this container has not seen yet.
            self._ddb.put_item(
                TableName=self._table,
                Item={
                    "id": {"S": id_},
                    "status": {"S": CLAIMED},
                    "claim": {"S": self._token},
                    "expiration": {"N": str(int(now) + self._claim_seconds)},
                },
                ConditionExpression="attribute_not_exists(id) OR expiration < :now",
                ExpressionAttributeValues={":now": {"N": str(int(now))}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                return _transient(exc, f"DynamoDB PutItem {self._table}")
            item: dict[str, Any] = dict(exc.response.get("Item") or {})  # type: ignore[call-overload]
            return PRESENT if _status(item, now) == PRESENT else BUSY
        except BotoCoreError as exc:
            return _transient(exc, f"DynamoDB PutItem {self._table}")
        return CLAIMED

    def read(self, ids: Sequence[str], now: float) -> dict[str, str]:
        """Per id found and unexpired: PRESENT or BUSY (strongly consistent reads)."""
        states: dict[str, str] = {}
        for start in range(0, len(ids), _GET_CHUNK):
            keys: list[dict[str, Any]] = [{"id": {"S": i}} for i in ids[start : start + _GET_CHUNK]]
            for attempt in range(_UNPROCESSED_TRIES):
                self.calls += 1
                try:
                    response = self._ddb.batch_get_item(
                        RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}}
                    )
                except (ClientError, BotoCoreError) as exc:
                    raise classify(exc, f"DynamoDB BatchGetItem {self._table}") from exc
                for item in (response.get("Responses") or {}).get(self._table, []):
                    status = _status(item, now)
                    if status is not None:
                        states[item["id"]["S"]] = PRESENT if status == PRESENT else BUSY
                keys = ((response.get("UnprocessedKeys") or {}).get(self._table) or {}).get("Keys") or []
                if not keys:
                    break
                self._backoff(attempt)
            else:
                raise TransientError(f"DynamoDB BatchGetItem {self._table}: keys still unprocessed")
        return states

    def mark_present(self, ids: Sequence[str], now: float) -> None:
        """Record that Glue has these partitions; only call after Glue said so."""
        expiration = str(int(now) + self._ttl_seconds)
        for start in range(0, len(ids), _WRITE_CHUNK):
            requests: list[dict[str, Any]] = [
                {
                    "PutRequest": {
                        "Item": {
                            "id": {"S": i},
                            "status": {"S": PRESENT},
                            "expiration": {"N": expiration},
                        }
                    }
                }
                for i in ids[start : start + _WRITE_CHUNK]
            ]
            for attempt in range(_UNPROCESSED_TRIES):
                self.calls += 1
                try:
                    response = self._ddb.batch_write_item(RequestItems={self._table: requests})
                except (ClientError, BotoCoreError) as exc:
                    raise classify(exc, f"DynamoDB BatchWriteItem {self._table}") from exc
                requests = (response.get("UnprocessedItems") or {}).get(self._table) or []
                if not requests:
                    break
                self._backoff(attempt)
            else:
                raise TransientError(f"DynamoDB BatchWriteItem {self._table}: items still unprocessed")

    def release(self, ids: Sequence[str]) -> None:
        """Drop our claims after a failed create, so a retry need not wait for them to expire."""
        for id_ in ids:
            self.calls += 1
            try:
                self._ddb.delete_item(
                    TableName=self._table,
                    Key={"id": {"S": id_}},
                    ConditionExpression="#c = :token",
                    ExpressionAttributeNames={"#c": "claim"},
                    ExpressionAttributeValues={":token": {"S": self._token}},
                )
            except (ClientError, BotoCoreError) as exc:
                # The claim expires by itself; losing this call only delays the retry.
                logger.info("claim not released", id=id_, error=str(exc))

    def _backoff(self, attempt: int) -> None:
        self._sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))


def _status(item: dict[str, Any], now: float) -> str | None:
    """The item's status, or None when it is past its expiration (TTL deletes late)."""
    try:
        if float(item["expiration"]["N"]) < now:
            return None
        return str(item["status"]["S"])
    except (KeyError, TypeError, ValueError):
        return None


def _transient(exc: Exception, what: str) -> str:
    error = classify(exc, what)
    if not isinstance(error, TransientError):
        raise error from exc
    return f"error: {error}"
