"""Backfill on the fleet: work items, their plan, and running one of them.

The operator's machine lists a table's region folders (a few calls), cuts the date range into
months, and sends one work item per (table, account, region, month) to the backfill queue;
`handlers.on_backfill` runs each item with the same folder walk, started at the item's region
folder and limited to its dates, and the same pipeline, asking Glue, never the cache.

The message body is the work-item contract (JSON, version 1):
  {"v": 1, "table": "[catalog:]database.table", "bucket": "...", "folder": "<region folder>/",
   "since": "YYYY-MM-DD", "until": "YYYY-MM-DD"}                      a walk slice
  {"v": 1, "table": "...", "inventory": {"bucket", "key", "format", "schema"[, "md5"]}, "since", "until"}
                                                                      one S3 Inventory data file
since/until are optional (open); md5, the manifest's MD5checksum of the file, is checked when
given. Anything else is malformed: the record fails, every time, and
reaches the DLQ, where an operator sees it.
"""

from __future__ import annotations

import calendar
import contextlib
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from .config import SERVICE
from .errors import TransientError, UsageError
from .keys import LEVELS
from .pipeline import Partitioner, Report
from .scheme import ConfigurationError
from .sources import SWEEP_LIST_CALLS, DateRange, FolderWalk, RegionFolder, sqs_call

if TYPE_CHECKING:
    from .inventory import Manifest

logger = Logger(service=SERVICE, child=True)

VERSION = 1
INVENTORY_FORMATS = ("CSV", "ORC", "Parquet")
_WALK_FIELDS = {"v", "table", "bucket", "folder", "since", "until"}
_INVENTORY_FIELDS = {"v", "table", "inventory", "since", "until"}
_INVENTORY_KEYS = {"bucket", "key", "format", "schema", "md5"}
_OPTIONAL = {"since", "until", "md5"}

# SendMessageBatch and ReceiveMessage take at most 10 messages.
_BATCH = 10
# A batch entry SQS refused (throttled, an internal error) is sent again, this many times.
_SEND_ROUNDS = 5


class WorkItemError(ValueError):
    """A message body that is not a work item of a version this build reads."""


@dataclass(frozen=True, slots=True)
class InventoryFile:
    """One data file of an S3 Inventory report: the manifest's fileFormat and fileSchema."""

    bucket: str
    key: str
    format: str  # CSV, ORC or Parquet
    schema: str
    md5: str = ""  # the manifest's MD5checksum of the file: the function checks what it downloads


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One slice of a backfill: a region folder over some dates, or one inventory data file."""

    table: str  # "[catalog:]database.table"
    bucket: str = ""
    folder: str = ""  # a folder under the table Location, ending in "/"
    since: date | None = None
    until: date | None = None
    inventory: InventoryFile | None = None

    @property
    def dates(self) -> DateRange:
        return DateRange(self.since, self.until)

    def __str__(self) -> str:
        where = (
            f"inventory s3://{self.inventory.bucket}/{self.inventory.key}"
            if self.inventory
            else f"s3://{self.bucket}/{self.folder}"
        )
        return f"{self.table} {where} {self.since or '...'}..{self.until or '...'}"

    def to_body(self) -> str:
        """The message body (the contract's JSON, version 1)."""
        body: dict[str, Any] = {"v": VERSION, "table": self.table}
        if self.inventory is not None:
            inv = self.inventory
            body["inventory"] = {
                "bucket": inv.bucket,
                "key": inv.key,
                "format": inv.format,
                "schema": inv.schema,
            } | ({"md5": inv.md5} if inv.md5 else {})
        else:
            body |= {"bucket": self.bucket, "folder": self.folder}
        if self.since:
            body["since"] = self.since.isoformat()
        if self.until:
            body["until"] = self.until.isoformat()
        return json.dumps(body, separators=(",", ":"))


def parse_body(text: str) -> WorkItem:
    """The work item a message body holds; WorkItemError (one line) for anything else."""
    try:
        body = json.loads(text)
    except (TypeError, ValueError):
        raise WorkItemError(f"not JSON: {_excerpt(text)}") from None
    if not isinstance(body, dict):
        raise WorkItemError(f"not a JSON object: {_excerpt(text)}")
    version = body.get("v")
    if type(version) is not int or version != VERSION:
        raise WorkItemError(f"work item version {version!r}: this build reads version {VERSION}")
    table = _text(body, "table")
    if table.count(".") < 1 or table.startswith(".") or table.endswith("."):
        raise WorkItemError(f"table {table!r} is not [catalog:]database.table")
    since, until = _date(body, "since"), _date(body, "until")
    if since and until and since > until:
        raise WorkItemError(f"since {since} is after until {until}")
    if "inventory" in body:
        _only(body, _INVENTORY_FIELDS)
        inv = body["inventory"]
        if not isinstance(inv, dict):
            raise WorkItemError("inventory is not an object")
        _only(inv, _INVENTORY_KEYS, "inventory.")
        fmt = _text(inv, "format")
        if fmt not in INVENTORY_FORMATS:
            raise WorkItemError(f"inventory format {fmt!r}: {', '.join(INVENTORY_FORMATS)} expected")
        found = InventoryFile(
            _text(inv, "bucket"),
            _text(inv, "key"),
            fmt,
            _text(inv, "schema", empty=True),
            _text(inv, "md5", empty=True) if "md5" in inv else "",
        )
        return WorkItem(table, since=since, until=until, inventory=found)
    _only(body, _WALK_FIELDS)
    folder = _text(body, "folder")
    if not folder.endswith("/") or folder.startswith("/"):
        raise WorkItemError(f"folder {folder!r} is not a key prefix ending in '/'")
    return WorkItem(table, _text(body, "bucket"), folder, since, until)


def _excerpt(text: Any) -> str:
    shown = repr(text)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _text(body: Mapping[str, Any], name: str, empty: bool = False) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not (value or empty):
        raise WorkItemError(f"{name!r} is missing or not a non-empty string")
    return value


def _date(body: Mapping[str, Any], name: str) -> date | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, str) and len(value) == 10:
        with contextlib.suppress(ValueError):
            return date.fromisoformat(value)
    raise WorkItemError(f"{name} {value!r} is not a date (YYYY-MM-DD)")


def _only(body: Mapping[str, Any], allowed: set[str], where: str = "") -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise WorkItemError(f"unknown field {where}{unknown[0]!r} in a version {VERSION} work item")
    missing = sorted(allowed - set(body) - _OPTIONAL)
    if missing:
        raise WorkItemError(f"{where}{missing[0]!r} is missing")


# ---------------------------------------------------------------- the plan


class PlanError(UsageError):
    """The backfill cannot be cut into slices as asked (the command line: a usage error)."""


def months(since: date, until: date) -> list[tuple[date, date]]:
    """The calendar months from `since` to `until`, each clipped to them (inclusive bounds)."""
    out = []
    year, month = since.year, since.month
    while (year, month) <= (until.year, until.month):
        first = date(year, month, 1)
        last = date(year, month, calendar.monthrange(year, month)[1])  # 29 in a leap February
        out.append((max(first, since), min(last, until)))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def calendar_years(since: date, until: date) -> list[tuple[date, date]]:
    """The calendar years from `since` to `until`, each clipped to them (inclusive bounds)."""
    return [
        (max(date(year, 1, 1), since), min(date(year, 12, 31), until))
        for year in range(since.year, until.year + 1)
    ]


# How a region folder's range is cut: a month a work item (the default: small retries), or a
# year (a twelfth of the items, and each BatchCreatePartition carries ~100 partitions instead
# of a month's ~30: docs/SCALE.md measures the difference).
SLICES = {"month": months, "year": calendar_years}


def plan(
    table: str,
    bucket: str,
    regions: Iterable[RegionFolder],
    dates: DateRange,
    years: Mapping[str, Sequence[int]] | None = None,
    per: str = "month",
) -> list[WorkItem]:
    """One work item per region folder and month (or year) of the range, clipped to it.

    An open end of the range is closed by the region's own year folders (`years`: folder ->
    the years listed below it): from January of its first year, to December of its last.
    """
    items = []
    for folder, _account, _region in regions:
        since, until = dates.since, dates.until
        if since is None or until is None:
            if years is None:
                raise PlanError(
                    "an open date range needs the region folders' years listed (or --since and --until)"
                )
            listed = sorted(years.get(folder, ()))
            if not listed:
                continue  # no year folder: nothing to backfill below it
            since = since or date(listed[0], 1, 1)
            until = until or date(listed[-1], 12, 31)
        wanted = set(years.get(folder, ())) if years is not None else None
        for first, last in SLICES[per](since, until) if since <= until else []:
            if wanted is not None and first.year not in wanted:
                continue  # a year with no folder in this region: nothing to walk
            items.append(WorkItem(table, bucket, folder, first, last))
    return items


def check_slicable(deepest_level: str, table: str) -> None:
    """Refuse a table whose partitions are coarser than a month: a slice would repeat them."""
    if LEVELS.index(deepest_level) < LEVELS.index("month"):
        raise PlanError(
            f"table {table} partitions by {deepest_level} folders, not by date: distributed slices are "
            "one region's month; run `backfill` without --distributed"
        )


def inventory_items(table: str, manifest: Manifest, dates: DateRange) -> list[WorkItem]:
    """One work item per data file of an S3 Inventory report: zero list calls."""
    return [
        WorkItem(
            table,
            since=dates.since,
            until=dates.until,
            inventory=InventoryFile(file.bucket, file.key, manifest.format, manifest.file_schema, file.md5),
        )
        for file in manifest.files
    ]


# ---------------------------------------------------------------- one item, in the function


def run_item(partitioner: Partitioner, s3: Any, item: WorkItem, now: float) -> Report:
    """Walk the item's slice (or read its inventory file) and ensure its partitions, asking Glue."""
    scheme = partitioner.scheme(now)
    if item.inventory is not None:
        from . import inventory  # for inventory items only, not every cold start

        inv = item.inventory
        objects = inventory.data_file_objects(
            s3, inv.bucket, inv.key, inv.format, inv.schema, md5=inv.md5 or None
        )
        messages = list(inventory.inventory_messages(objects, scheme, item.dates))
        return partitioner.run(messages, now=now, use_cache=False)
    if item.bucket != scheme.bucket:
        raise ConfigurationError(
            f"work item bucket {item.bucket} is not the bucket of the table Location {scheme.location}"
        )
    walk = FolderWalk(s3, scheme, item.dates, max_list_calls=SWEEP_LIST_CALLS, start=item.folder)
    messages = list(walk.messages())
    logger.info(
        "slice walked",
        item=str(item),
        folders=len(messages),
        list_calls=walk.list_calls,
        truncated=walk.truncated,
    )
    if walk.truncated:
        # Loud: a slice that never finishes must not look done (it would never be retried).
        raise ConfigurationError(
            f"the walk of {item} stopped at {SWEEP_LIST_CALLS} list calls before seeing every folder"
        )
    # Recovery asks Glue, never the cache: it exists to repair what the cache missed.
    return partitioner.run(messages, now=now, use_cache=False)


@dataclass
class BatchOutcome:
    """What on_backfill did with one SQS batch: failed message ids, summed metric counts."""

    failed: list[str]
    counts: dict[str, int]


def run_records(
    records: Sequence[Mapping[str, Any]],
    partitioner_for: Callable[[str], Partitioner],
    s3: Any,
    now: float,
) -> BatchOutcome:
    """Run each SQS record's work item; a record fails on a malformed body, a walk or table error,
    or any partition that failed (SQS redelivers it, then moves it to the DLQ)."""
    failed: list[str] = []
    counts: dict[str, int] = {}

    def count(name: str, n: int = 1) -> None:
        counts[name] = counts.get(name, 0) + n

    for record in records:
        message_id = str(record.get("messageId", ""))
        try:
            item = parse_body(str(record.get("body", "")))
        except WorkItemError as exc:
            logger.error("work item malformed", message_id=message_id, error=str(exc))
            count("RecordsMalformed")
            count("RecordsFailed")
            failed.append(message_id)
            continue
        try:
            report = run_item(partitioner_for(item.table), s3, item, now)
        except (ConfigurationError, TransientError) as exc:
            logger.error("work item failed", message_id=message_id, item=str(item), error=str(exc))
            count("RecordsFailed")
            failed.append(message_id)
            continue
        for name, n in report.metrics().items():
            count(name, n)
        if report.failed:
            logger.warning(
                "work item failed",
                message_id=message_id,
                item=str(item),
                reason="; ".join(r.detail for r in report.failed[:5]),
            )
            count("RecordsFailed")
            failed.append(message_id)
    return BatchOutcome(failed, counts)


# ---------------------------------------------------------------- the queue, from the command line


def send(
    sqs: Any, queue_url: str, items: Sequence[WorkItem], sleep: Callable[[float], None] = time.sleep
) -> int:
    """Send the items, 10 a SendMessageBatch, sending again the entries SQS lists as Failed;
    returns how many were sent (all of them, or TransientError)."""
    sent = 0
    for start in range(0, len(items), _BATCH):
        pending = {str(i): item.to_body() for i, item in enumerate(items[start : start + _BATCH])}
        for attempt in range(_SEND_ROUNDS):
            entries = [{"Id": i, "MessageBody": body} for i, body in pending.items()]
            response = sqs_call(sqs.send_message_batch, queue_url, QueueUrl=queue_url, Entries=entries)
            for ok in response.get("Successful") or []:
                sent += pending.pop(ok["Id"], None) is not None
            failures = response.get("Failed") or []
            if not pending:
                break
            sender = [f for f in failures if f.get("SenderFault")]
            if sender or attempt == _SEND_ROUNDS - 1:
                why = (sender or failures or [{"Code": "no answer"}])[0]
                raise TransientError(
                    f"SQS SendMessageBatch {queue_url}: {len(pending)} work items not sent "
                    f"({why.get('Code', '')}: {why.get('Message', '')}); {sent} sent before them"
                )
            sleep(0.2 * 2**attempt)
    return sent


@dataclass(frozen=True, slots=True)
class QueueProgress:
    """How far the backfill queue is: waiting, in flight (a function has them), dead."""

    waiting: int
    in_flight: int
    dead: int | None  # None: no DLQ known

    @property
    def drained(self) -> bool:
        return self.waiting == 0 and self.in_flight == 0


def progress(sqs: Any, queue_url: str, dlq_url: str = "") -> QueueProgress:
    """The queue's approximate counts (SQS updates them within about a minute) and the DLQ's depth."""
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    queue = sqs_call(sqs.get_queue_attributes, queue_url, QueueUrl=queue_url, AttributeNames=names)
    counts = {k: int(v) for k, v in (queue.get("Attributes") or {}).items()}
    dead = None
    if dlq_url:
        dlq = sqs_call(
            sqs.get_queue_attributes,
            dlq_url,
            QueueUrl=dlq_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        dead = sum(int(v) for v in (dlq.get("Attributes") or {}).values())
    return QueueProgress(
        counts.get(names[0], 0) + counts.get(names[2], 0),
        counts.get(names[1], 0),
        dead,
    )


def dead_letter_queue(sqs: Any, queue_url: str) -> str:
    """The URL of the queue's DLQ, read from its RedrivePolicy ("" when it has none)."""
    attributes = sqs_call(
        sqs.get_queue_attributes, queue_url, QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]
    )
    policy = (attributes.get("Attributes") or {}).get("RedrivePolicy")
    if not policy:
        return ""
    arn = str(json.loads(policy).get("deadLetterTargetArn", ""))
    parts = arn.split(":")  # arn:aws:sqs:region:account:name
    if len(parts) != 6:
        return ""
    answer = sqs_call(sqs.get_queue_url, arn, QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])
    return str(answer["QueueUrl"])


def move_messages(
    sqs: Any,
    source_url: str,
    target_url: str,
    *,
    wait_seconds: int = 1,
    idle_receives: int = 2,
    visibility_timeout: int = 60,
) -> int:
    """Move every message of `source_url` (the DLQ) to `target_url`; returns how many.

    SQS's own redrive (StartMessageMoveTask) is not in moto, and this works for any pair of
    queues: receive, send, and delete only what was sent. Killed halfway, a message is at
    worst in both queues, and a work item run twice only finds its partitions present.
    """
    moved = 0
    idle = 0
    while idle < idle_receives:
        response = sqs_call(
            sqs.receive_message,
            source_url,
            QueueUrl=source_url,
            MaxNumberOfMessages=_BATCH,
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=visibility_timeout,
        )
        batch = response.get("Messages") or []
        if not batch:
            idle += 1
            continue
        idle = 0
        entries = [{"Id": str(i), "MessageBody": m.get("Body", "")} for i, m in enumerate(batch)]
        sent = sqs_call(sqs.send_message_batch, target_url, QueueUrl=target_url, Entries=entries)
        done = [batch[int(ok["Id"])] for ok in sent.get("Successful") or []]
        # What was not sent stays in the source; it is visible again after its timeout.
        if done:
            gone = sqs_call(
                sqs.delete_message_batch,
                source_url,
                QueueUrl=source_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
            moved += len(gone.get("Successful") or [])
    return moved
