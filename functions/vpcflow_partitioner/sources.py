"""Where recovery messages come from: event files, an SQS queue, a walk over the bucket.

The walk lists folders with ListObjectsV2 and a "/" delimiter, level by level
(accounts -> service -> regions -> years -> months -> days [-> hours]), pruning by the date
range, and never lists every object: S3 returns each folder once as a CommonPrefix
("Organizing objects using prefixes", S3 guide). A CommonPrefix only exists while some key
starts with it, but that key may be a folder marker or a stray file, so each leaf folder is
confirmed with one short listing that must find a real flow-log object.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from .envelopes import Message, ObjectRef, message_from_body
from .errors import classify
from .keys import LEVELS, FolderState, descend, folder_state, parse_key
from .scheme import ConfigurationError, Scheme

_PROBE_KEYS = 100


@dataclass(frozen=True, slots=True)
class DateRange:
    """Inclusive bounds; None is open."""

    since: date | None = None
    until: date | None = None

    def admits(self, parts: tuple[int, ...]) -> bool:
        """Whether a (year[, month[, day]]) folder can hold dates in range."""
        low = (self.since.year, self.since.month, self.since.day)[: len(parts)] if self.since else None
        high = (self.until.year, self.until.month, self.until.day)[: len(parts)] if self.until else None
        return (low is None or parts >= low) and (high is None or parts <= high)


class RegionFolder(NamedTuple):
    """A region folder of one account's flow logs: where a distributed backfill slices."""

    folder: str
    account: str
    region: str


class FolderWalk:
    """Delimiter walk of one table's Location; counts its ListObjectsV2 calls.

    Which folders can hold flow logs is decided by keys.descend, the grammar parse_key
    uses, so the walk finds every folder the Lambda would partition, under a free prefix
    of any depth (a copied AWSLogs/AWSLogs/ tree included). Each level's folders are
    listed, and the leaves probed, by a small thread pool (boto3 clients are thread-safe):
    an organisation's year of folders is hundreds of thousands of independent list calls,
    and each one waits on the network, not on CPU.

    `start` walks one folder under the Location instead of all of it (a distributed backfill's
    slice: one account's region); it must be a folder the grammar allows, not below the
    table's deepest partition level.
    """

    def __init__(
        self,
        s3: Any,
        scheme: Scheme,
        dates: DateRange = DateRange(),
        workers: int = 16,
        max_list_calls: int | None = None,
        start: str | None = None,
    ) -> None:
        self._s3 = s3
        self._scheme = scheme
        self._start = scheme.prefix if start is None else _checked_start(scheme, start)
        self._dates = dates
        self._workers = max(1, workers)
        self._lock = threading.Lock()
        self._budget = max_list_calls
        self.list_calls = 0
        self.folders_walked = 0  # folders listed with the delimiter
        self.objects_probed = 0  # keys looked at to confirm a leaf holds a flow-log object
        self.truncated = False  # stopped at max_list_calls: what it found is only part
        self.leaf_level = scheme.deepest_level

    def messages(self) -> Iterator[Message]:
        """One message per leaf folder holding a flow-log object (naming one such object), and
        one per folder above the leaves that holds flow-log objects itself (daily files under
        an hourly table: the plan says why the table cannot represent them)."""
        with ThreadPoolExecutor(self._workers, thread_name_prefix="walk") as pool:
            leaves, strays = self._leaves(pool)
            for folder, key in [*zip(leaves, pool.map(self._probe, leaves), strict=True), *strays]:
                if key is not None:
                    yield Message(
                        f"s3://{self._scheme.bucket}/{folder}", (ObjectRef(self._scheme.bucket, key),)
                    )

    def leaf_folders(self) -> list[tuple[str, tuple[int, ...]]]:
        """The leaf folders within the date range and their (year, month, day[, hour]), not
        probed: for a caller that lists each of them anyway (doctor reads their objects)."""
        with ThreadPoolExecutor(self._workers, thread_name_prefix="walk") as pool:
            leaves, _ = self._leaves(pool)
        out = []
        for folder in leaves:
            state = folder_state(folder)
            out.append((folder, state.date if state is not None else ()))
        return out

    def region_folders(self) -> list[RegionFolder]:
        """The region folders below the start, with their account and region (a few list calls:
        accounts, their service folders, their regions, and any free prefix above them); the
        start itself when it is a region folder or below one (a walk may not begin above it)."""
        start = folder_state(self._start)
        if start is None:
            return []
        if start.level is not None and LEVELS.index(start.level) >= LEVELS.index("region"):
            return [_region_folder(self._start)]
        with ThreadPoolExecutor(self._workers, thread_name_prefix="walk") as pool:
            folders, _ = self._leaves(pool, "region")
        return [_region_folder(folder) for folder in folders]

    def years(self, folder: str) -> list[int]:
        """The years that have a folder below a region folder (one listing; the year of a folder
        at or below the year level without any)."""
        state = folder_state(folder)
        if state is None:
            return []
        if state.date:
            return [state.date[0]]
        children, _ = self._children(folder)
        found = set()
        for child in children:
            below = descend(state, child[len(folder) : -1])
            if below is not None and below.level == "year":
                found.add(below.date[0])
        return sorted(found)

    def _leaves(
        self, pool: ThreadPoolExecutor, leaf_level: str | None = None
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """Folders at the table's deepest partition level (or `leaf_level`) within the date
        range, and (folder, key) of flow-log objects lying directly in a folder above that level."""
        leaf_level = leaf_level or self.leaf_level
        start = folder_state(self._start)
        if start is None:
            return [], []
        if start.level == leaf_level:
            # A start at a leaf (a Location or a work item's folder that is one day): its own date
            # decides, as a listed leaf's does.
            admitted = not start.date or self._dates.admits(start.date[:3])
            return ([self._start] if admitted else []), []
        leaves: list[str] = []
        strays: list[tuple[str, str]] = []
        frontier: list[tuple[str, FolderState]] = [(self._start, start)]
        # Breadth first: one level at a time, every folder of the level listed concurrently.
        while frontier:
            if self._budget is not None and self.list_calls + len(frontier) > self._budget:
                self.truncated = True
                break
            listed = pool.map(self._children, [folder for folder, _ in frontier])
            next_frontier = []
            for (folder, state), (children, direct) in zip(frontier, listed, strict=True):
                if direct is not None:
                    strays.append((folder, direct))
                for child in children:
                    below = descend(state, child[len(folder) : -1])
                    if below is None or (below.date and not self._dates.admits(below.date[:3])):
                        continue
                    if below.level == leaf_level:
                        leaves.append(child)
                    elif below.free or LEVELS.index(below.level or "root") < LEVELS.index(leaf_level):
                        next_frontier.append((child, below))
            frontier = next_frontier
        return leaves, strays

    def _children(self, prefix: str) -> tuple[list[str], str | None]:
        """Subfolders of `prefix`, and a flow-log object directly in it, if any."""
        with self._lock:
            self.folders_walked += 1
        children: list[str] = []
        direct: str | None = None
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self._scheme.bucket, "Prefix": prefix, "Delimiter": "/"}
            if token:
                kwargs["ContinuationToken"] = token
            response = self._list(kwargs)
            children.extend(p["Prefix"] for p in response.get("CommonPrefixes") or [])
            if direct is None:
                direct = next(
                    (i["Key"] for i in response.get("Contents") or [] if _in_folder(i["Key"], prefix)), None
                )
            token = response.get("NextContinuationToken")
            if not response.get("IsTruncated") or not token:
                return children, direct

    def _probe(self, folder: str) -> str | None:
        """The first flow-log object of this leaf folder, or None (a marker or stray files only)."""
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self._scheme.bucket, "Prefix": folder, "MaxKeys": _PROBE_KEYS}
            if token:
                kwargs["ContinuationToken"] = token
            response = self._list(kwargs)
            for item in response.get("Contents") or []:
                with self._lock:
                    self.objects_probed += 1
                obj = parse_key(item["Key"])
                # Under this leaf by the same reading of its folders, not a deeper copy, and a
                # file of the table's format (a Parquet twin's folder may hold text files too).
                if (
                    obj is not None
                    and not obj.nested
                    and item["Key"].endswith(self._scheme.file_suffix)
                    and leaf_folder(obj, self.leaf_level) == folder
                ):
                    return str(item["Key"])
            token = response.get("NextContinuationToken")
            if not response.get("IsTruncated") or not token:
                return None

    def _list(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.list_calls += 1
        try:
            return dict(self._s3.list_objects_v2(**kwargs))
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, f"S3 ListObjectsV2 s3://{kwargs['Bucket']}/{kwargs['Prefix']}") from exc


def _checked_start(scheme: Scheme, start: str) -> str:
    """`start` if a walk can begin there; a one-line ConfigurationError otherwise."""
    where = f"s3://{scheme.bucket}/{start}"
    if not start.endswith("/") or not start.startswith(scheme.prefix):
        raise ConfigurationError(f"{where} is not a folder under the table Location {scheme.location}")
    state = folder_state(start)
    if state is None:
        raise ConfigurationError(f"{where} is not a folder flow logs are delivered under (AWSLogs/...)")
    if state.level is not None and LEVELS.index(state.level) > LEVELS.index(scheme.deepest_level):
        raise ConfigurationError(
            f"{where} is below the {scheme.deepest_level} folders the table {scheme.table} partitions by"
        )
    return start


def _region_folder(folder: str) -> RegionFolder:
    """`folder` (a region folder, or a folder below one) with the account and region it is of."""
    state: FolderState | None = folder_state("")
    names: dict[str, str] = {}
    for name in folder.split("/")[:-1]:
        assert state is not None  # folder_state(folder) was checked by the caller
        state = descend(state, name)
        if state is not None and state.level in ("account", "region") and not state.free:
            # A Hive folder is "aws-account-id=123456789012", "aws-region=us-east-1".
            names[state.level] = name.rpartition("=")[2]
    if "region" not in names:
        raise ConfigurationError(f"{folder} is not a region folder of a flow log")
    return RegionFolder(folder, names["account"], names["region"])


def leaf_folder(obj: Any, level: str) -> str | None:
    """The object's folder at `level` (its date or hour folder); None when it has none there."""
    try:
        return str(obj.folder(level))
    except ValueError:  # a daily object under an hourly leaf level
        return None


def _in_folder(key: str, folder: str) -> bool:
    """Whether `key` is a flow-log object lying directly in `folder` (not below it)."""
    obj = parse_key(key)
    return obj is not None and not obj.nested and key.rfind("/") + 1 == len(folder)


# The sweep runs inside a Lambda function: a walk that needs more list calls than this
# (a table Location at the root of a big bucket: every folder outside AWSLogs/ trees is a
# possible free prefix) would run into the function's timeout on every run, silently.
SWEEP_LIST_CALLS = 20_000


def sweep_messages(s3: Any, scheme: Scheme, days: int, now: float) -> tuple[list[Message], bool]:
    """Messages for the folders of the last `days` UTC days (today included), and whether the
    walk stopped at SWEEP_LIST_CALLS before seeing everything."""
    today = datetime.fromtimestamp(now, tz=UTC).date()
    dates = DateRange(today - timedelta(days=days - 1), today)
    walk = FolderWalk(s3, scheme, dates, max_list_calls=SWEEP_LIST_CALLS)
    messages = list(walk.messages())
    return messages, walk.truncated


# What `process` says of each message it was given; only DONE messages are deleted.
DONE = "done"
FAILED = "failed"  # kept: it becomes visible again and a later drain retries it
UNRESOLVED = "unresolved"  # kept: retrying cannot fix it; an operator has to look

# SQS ReceiveMessage returns at most 10 messages. Short polling samples a subset of the
# servers and may answer empty while messages wait; long polling (WaitTimeSeconds 1 to 20)
# asks them all ("Amazon SQS short and long polling", SQS Developer Guide). A receive may
# also bring back only messages this drain already has (another consumer let them go, or
# their visibility timeout ran out): that says nothing about the rest of the queue, so the
# drain ends only after several receives in a row bring nothing new.
_MAX_MESSAGES = 10
IDLE_RECEIVES = 3
WAIT_SECONDS = 2


@dataclass
class DrainResult:
    """What a drain did with every message it received: done (deleted) or kept."""

    received: int = 0
    done: int = 0
    failed: int = 0
    unresolved: int = 0
    unreadable: int = 0  # of the kept: bodies that are not events
    problems: list[str] = field(default_factory=list)  # messages that could not be deleted

    @property
    def kept(self) -> int:
        return self.failed + self.unresolved


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A kept message whose body is not an event: what an operator needs to inspect it."""

    message_id: str
    body: str
    reason: str


def drain_queue(
    sqs: Any,
    queue_url: str,
    process: Callable[[list[Message]], dict[str, str]],
    *,
    visibility_timeout: int = 300,
    idle_receives: int = IDLE_RECEIVES,
    wait_seconds: int = WAIT_SECONDS,
    on_unreadable: Callable[[Unreadable], None] | None = None,
) -> DrainResult:
    """Receive every message once; delete each only when `process` says it is DONE.

    Kept messages stay in the queue, hidden for `visibility_timeout` while this drain runs
    (so that it does not loop on them), and visible again as soon as it ends: a drain run a
    minute later sees them, rather than an empty queue.
    """
    result = DrainResult()
    seen: set[str] = set()
    kept: list[str] = []  # receipt handles of the messages it keeps
    idle = 0
    try:
        while idle < idle_receives:
            response = sqs_call(
                sqs.receive_message,
                queue_url,
                QueueUrl=queue_url,
                MaxNumberOfMessages=_MAX_MESSAGES,
                WaitTimeSeconds=wait_seconds,
                VisibilityTimeout=visibility_timeout,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
            batch = [m for m in response.get("Messages") or [] if m["MessageId"] not in seen]
            if not batch:
                idle += 1
                continue
            idle = 0
            seen.update(m["MessageId"] for m in batch)
            result.received += len(batch)
            # Until `process` answers, the whole batch counts as kept (an error, Ctrl-C).
            kept += [m["ReceiptHandle"] for m in batch]
            messages = [message_from_body(m["MessageId"], m.get("Body", "")) for m in batch]
            outcome = process(messages)
            done: list[dict[str, Any]] = []
            for raw, message in zip(batch, messages, strict=True):
                verdict = outcome.get(message.id, FAILED)  # not answered for: keep it
                if verdict == DONE:
                    done.append(raw)
                elif verdict == UNRESOLVED:
                    result.unresolved += 1
                else:
                    result.failed += 1
                if verdict != DONE and message.malformed:
                    result.unreadable += 1
                    if on_unreadable is not None:
                        on_unreadable(Unreadable(message.id, raw.get("Body", ""), message.malformed))
            _delete(sqs, queue_url, done, result)
            gone = {m["ReceiptHandle"] for m in done}
            kept = [handle for handle in kept if handle not in gone]
    finally:
        # Also after an error or Ctrl-C: what it kept is visible again for the next drain.
        _show_again(sqs, queue_url, kept)
    return result


def _show_again(sqs: Any, queue_url: str, kept: list[str]) -> None:
    """Make the kept messages visible again now (ChangeMessageVisibilityBatch, 10 a call)."""
    for start in range(0, len(kept), _MAX_MESSAGES):
        entries = [
            {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
            for i, handle in enumerate(kept[start : start + _MAX_MESSAGES])
        ]
        # Losing this call only delays them: they come back when the visibility timeout ends.
        with contextlib.suppress(ClientError, BotoCoreError):
            sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)


def drain_outcome(ok: bool, unresolved: bool) -> str:
    """A pipeline MessageResult's answer to `drain_queue`: delete only what is done and whole."""
    if not ok:
        return FAILED
    return UNRESOLVED if unresolved else DONE


def _delete(sqs: Any, queue_url: str, done: list[dict[str, Any]], result: DrainResult) -> None:
    if not done:
        return
    entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)]
    response = sqs_call(sqs.delete_message_batch, queue_url, QueueUrl=queue_url, Entries=entries)
    failed = {f["Id"]: f for f in response.get("Failed") or []}
    for entry, message in zip(entries, done, strict=True):
        failure = failed.get(entry["Id"])
        if failure is None:
            result.done += 1
            continue
        # Still in the queue: it comes back, and a later drain finds its partition present.
        result.failed += 1
        why = ": ".join(str(failure[k]) for k in ("Code", "Message") if failure.get(k))
        result.problems.append(f"{message['MessageId']}: not deleted ({why})")


def sqs_call(method: Callable[..., Any], queue_url: str, **kwargs: Any) -> dict[str, Any]:
    """One SQS call, its botocore error classified (ConfigurationError or TransientError)."""
    try:
        return dict(method(**kwargs))
    except (ClientError, BotoCoreError) as exc:
        raise classify(exc, f"SQS {queue_url}") from exc
