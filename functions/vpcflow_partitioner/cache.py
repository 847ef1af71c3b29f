"""Which partitions are known: a bounded in-memory set, then a DynamoDB table.

DynamoDB item: `id` (S) names catalog, database, table, the table's CreateTime and the
partition values; `status` is `claimed` (one invocation is creating it, short expiry) or
`present` (Glue answered created or already exists); `location` (S) is the partition's S3
folder, so that a second folder mapping to the same values is seen as a collision;
`claim` (S) is the claiming container's token; `expiration` (N, epoch seconds) is the
TTL attribute. TTL deletes expired items "typically within a few days" (DynamoDB TTL docs),
so a reader treats `expiration < now` as absent instead of trusting that it is gone.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Entry:
    """What the cache says of one partition: its state and, once present, its folder."""

    state: str
    location: str = ""  # "" for an entry written before folders were recorded


# How long a container trusts that a partition it saw is present before asking the cache
# (or Glue) again, so that one `audit --prune` deleted is not assumed present forever.
SEEN_SECONDS = 300


class SeenSet:
    """Partitions this container knows are present, with their folder; bounded (LRU) and
    trusted for `ttl_seconds` only."""

    def __init__(self, limit: int = 4096, ttl_seconds: float = SEEN_SECONDS) -> None:
        self._items: OrderedDict[Hashable, tuple[str, float]] = OrderedDict()
        self._limit = limit
        self.ttl_seconds = ttl_seconds

    def get(self, key: Hashable, now: float) -> str | None:
        """The folder of a known partition, or None when unknown or no longer trusted."""
        item = self._items.get(key)
        if item is None or item[1] <= now:
            return None
        self._items.move_to_end(key)
        return item[0]

    def expired(self, key: Hashable, now: float) -> bool:
        """Whether the partition was known and its time is up (worth a cheap read first)."""
        item = self._items.get(key)
        return item is not None and item[1] <= now

    def add(self, key: Hashable, location: str, now: float) -> None:
        if self.ttl_seconds <= 0:
            return
        self._items[key] = (location, now + self.ttl_seconds)
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

    def claim(self, wanted: Mapping[str, str], now: float, read_first: bool = False) -> dict[str, Entry]:
        """Per id (id -> the folder we would create): PRESENT (with the recorded folder),
        BUSY, CLAIMED (ours now), or a transient error message."""
        states: dict[str, Entry] = {}
        todo = list(wanted)
        if read_first or len(todo) > _READ_FIRST_ABOVE:
            states.update(self.read(todo, now))
            todo = [i for i in todo if i not in states]
        for id_ in todo:
            states[id_] = self._claim_one(id_, wanted[id_], now)
        return states

    def _claim_one(self, id_: str, location: str, now: float) -> Entry:
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
                    "location": {"S": location},
                    "expiration": {"N": str(int(now) + self._claim_seconds)},
                },
                ConditionExpression="attribute_not_exists(id) OR expiration < :now",
                ExpressionAttributeValues={":now": {"N": str(int(now))}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                return Entry(_transient(exc, f"DynamoDB PutItem {self._table}"))
            item: dict[str, Any] = dict(exc.response.get("Item") or {})  # type: ignore[call-overload]
            return self._entry(item, now) or Entry(BUSY)
        except BotoCoreError as exc:
            return Entry(_transient(exc, f"DynamoDB PutItem {self._table}"))
        return Entry(CLAIMED)

    def _entry(self, item: dict[str, Any], now: float) -> Entry | None:
        status = _status(item, now)
        if status is None:
            return None
        location = str((item.get("location") or {}).get("S", ""))
        if status == PRESENT:
            return Entry(PRESENT, location)
        # A claim with our token is ours: a request whose answer was lost (a timeout after
        # DynamoDB applied it) or a failed create whose release did not get through.
        if (item.get("claim") or {}).get("S") == self._token:
            return Entry(CLAIMED)
        return Entry(BUSY)

    def read(self, ids: Sequence[str], now: float) -> dict[str, Entry]:
        """Per id found and unexpired: PRESENT (with its folder), CLAIMED (ours) or BUSY;
        strongly consistent reads."""
        states: dict[str, Entry] = {}
        ids = list(dict.fromkeys(ids))  # BatchGetItem rejects a request with duplicate keys
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
                    entry = self._entry(item, now)
                    if entry is not None:
                        states[item["id"]["S"]] = entry
                keys = ((response.get("UnprocessedKeys") or {}).get(self._table) or {}).get("Keys") or []
                if not keys:
                    break
                self._backoff(attempt)
            else:
                raise TransientError(f"DynamoDB BatchGetItem {self._table}: keys still unprocessed")
        return states

    def mark_present(self, locations: Mapping[str, str], now: float) -> None:
        """Record that Glue has these partitions (id -> Glue's folder); only call after Glue said so."""
        expiration = str(int(now) + self._ttl_seconds)
        self._write(
            [
                {
                    "PutRequest": {
                        "Item": {
                            "id": {"S": i},
                            "status": {"S": PRESENT},
                            "location": {"S": location},
                            "expiration": {"N": expiration},
                        }
                    }
                }
                for i, location in locations.items()
            ]
        )

    def forget(self, ids: Sequence[str]) -> None:
        """Delete entries (after their partitions were deleted from Glue)."""
        self._write([{"DeleteRequest": {"Key": {"id": {"S": i}}}} for i in dict.fromkeys(ids)])

    def _write(self, all_requests: list[dict[str, Any]]) -> None:
        for start in range(0, len(all_requests), _WRITE_CHUNK):
            requests = all_requests[start : start + _WRITE_CHUNK]
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
