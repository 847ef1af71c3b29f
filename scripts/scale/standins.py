"""Stand-ins for S3 and Glue at organisation scale, charging simulated time instead of sleeping.

`Organisation` answers ListObjectsV2 for N accounts x R regions x D days of flow logs from
arithmetic: no object is stored. It follows the ListObjectsV2 reference: keys in UTF-8 binary
order; with a Delimiter, keys sharing the text between Prefix and the first delimiter are
rolled up into one CommonPrefixes entry that "counts as only one return against the MaxKeys
value"; at most MaxKeys (<= 1,000) returns a page; KeyCount is the number returned;
IsTruncated and NextContinuationToken say whether more follow.

`GlueCatalog` keeps the partitions of one table in memory and asserts the API's documented
limits (botocore's service model, from the Glue API reference): BatchCreatePartition takes
at most 100 PartitionInputList entries, BatchGetPartition at most 1,000 PartitionsToGet,
GetPartitions at most MaxResults=1000.

Time: every call is charged to a `VirtualClock` (one per simulated worker), never slept.
A clock has lanes (the walk's thread pool): calls of one walk level run on the lane free
first, and a new level starts when the last call of the previous one has finished (the walk
lists level by level). Glue calls are serial on the clock and wait for a slot of a shared
`RateLimit` in simulated time, so that 100 workers share one account's Glue write rate.
"""

from __future__ import annotations

import bisect
import copy
import io
import itertools
import threading
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, ClassVar

from botocore.exceptions import ClientError

MAX_KEYS = 1000  # ListObjectsV2: "returns up to 1,000 key names"; more is never returned
CREATE_LIMIT = 100  # BatchCreatePartition PartitionInputList: max 100 items
GET_LIMIT = 1000  # BatchGetPartition PartitionsToGet: max 1000 items
PAGE_LIMIT = 1000  # GetPartitions MaxResults: 1..1000


class HarnessCpu:
    """CPU seconds spent inside the stand-ins (all threads), to subtract from what is measured."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self.seconds += seconds


HARNESS = HarnessCpu()


class VirtualClock:
    """Simulated time of one worker: `lanes` parallel list lanes (a thread pool) and serial calls."""

    def __init__(self, lanes: int = 1, start: float = 0.0) -> None:
        self.now = start
        self._lanes = [start] * max(1, lanes)
        self._phase: Any = None
        self._lock = threading.Lock()
        self.spent: defaultdict[str, float] = defaultdict(
            float
        )  # seconds by cause, for "where the time goes"
        self.trace: list[tuple[str, float, str]] = []  # (cause, seconds, Glue API) in order, to replay

    def parallel(self, phase: Any, cost: float, not_before: float = 0.0) -> float:
        """A call from the pool: on the lane free first, after every call of an earlier phase."""
        with self._lock:
            if phase != self._phase:
                self._barrier()
                self._phase = phase
            i = min(range(len(self._lanes)), key=self._lanes.__getitem__)
            start = max(self._lanes[i], not_before)
            self._lanes[i] = start + cost
            return self._lanes[i]

    def serial(self, cost: float, cause: str, not_before: float = 0.0, api: str = "") -> float:
        """A call made alone (the pipeline's Glue calls); waits until `not_before` if later."""
        with self._lock:
            self._barrier()
            if not_before > self.now:
                self.spent[cause + " wait"] += not_before - self.now
                self.now = not_before
            self.now += cost
            self.spent[cause] += cost
            self.trace.append((cause, cost, api))
            return self.now

    def sync(self) -> float:
        """Wait for every lane (the end of a walk); the clock's time after it."""
        with self._lock:
            self._barrier()
            return self.now

    def add(self, seconds: float, cause: str) -> None:
        with self._lock:
            self._barrier()
            self.now += seconds
            self.spent[cause] += seconds
            self.trace.append((cause, seconds, ""))

    def _barrier(self) -> None:
        end = max(self._lanes)
        if end > self.now:
            self.spent["list"] += end - self.now
            self.trace.append(("list", end - self.now, ""))
            self.now = end
        self._lanes = [self.now] * len(self._lanes)
        self._phase = None


class RateLimit:
    """At most `rate` calls a second in simulated time, shared by every worker.

    Calls arrive out of time order (workers are simulated one after another), so this is a
    calendar of slots 1/rate apart, not a bucket refilled as time goes: a call takes the
    first free slot at or after its time. Steady state only: no burst allowance.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._next: dict[int, int] = {}  # used slot -> a later slot that may be free
        self._lock = threading.Lock()

    def reserve(self, at: float) -> float:
        """The simulated time the call may start: its slot."""
        if self.rate <= 0:
            return at
        with self._lock:
            slot = self._find(int(-(-at * self.rate // 1)))
            self._next[slot] = slot + 1
            return max(at, slot / self.rate)

    def _find(self, slot: int) -> int:
        path = []
        while slot in self._next:
            path.append(slot)
            slot = self._next[slot]
        for used in path:  # path compression: the next search jumps straight here
            self._next[used] = slot
        return slot


@dataclass(frozen=True)
class Organisation:
    """Flow logs of `accounts` x `regions` x `days` daily folders from `first`, `files` a folder."""

    accounts: tuple[str, ...]
    regions: tuple[str, ...]
    first: date
    days: int
    files: int = 288  # one flow log delivering every 5 minutes
    hive: bool = False
    prefix: str = ""  # free prefix before AWSLogs/, "" or ending in "/"
    bucket: str = "org-flow-logs"
    _tree: dict[str, dict[str, list[str]]] = field(default_factory=dict, compare=False, repr=False)
    _cache: dict[tuple[Any, ...], tuple[list[str], frozenset[str]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def of(cls, accounts: int, regions: int, first: date, days: int, **kwargs: Any) -> Organisation:
        """`accounts` made-up account ids and the first `regions` of a fixed region list."""
        names = tuple(f"{100000000000 + 7919 * i:012d}" for i in range(accounts))
        return cls(names, REGIONS[:regions], first, days, **kwargs)

    def __post_init__(self) -> None:
        for offset in range(self.days):
            d = self.first + timedelta(days=offset)
            self._tree.setdefault(f"{d.year:04d}", {}).setdefault(f"{d.month:02d}", []).append(f"{d.day:02d}")

    @property
    def leaf_folders(self) -> int:
        return len(self.accounts) * len(self.regions) * self.days

    @property
    def objects(self) -> int:
        return self.leaf_folders * self.files

    # The folder names at each depth below the prefix, as (plain, Hive) spellings.
    def _names(self, depth: int, parents: list[str]) -> list[str]:
        hive = self.hive
        if depth == 0:
            return ["AWSLogs"]
        if depth == 1:
            return [f"aws-account-id={a}" if hive else a for a in self.accounts]
        if depth == 2:
            return ["aws-service=vpcflowlogs" if hive else "vpcflowlogs"]
        if depth == 3:
            return [f"aws-region={r}" if hive else r for r in self.regions]
        values = [p.rpartition("=")[2] for p in parents[4:]]
        if depth == 4:
            names = list(self._tree)
        elif depth == 5:
            names = list(self._tree.get(values[0], {}))
        else:
            names = self._tree.get(values[0], {}).get(values[1], [])
        label = ("year", "month", "day")[depth - 4]
        return [f"{label}={n}" if hive else n for n in names]

    def _children(self, parents: list[str]) -> list[str]:
        """Sorted child folder names ("name/") of the folder reached by `parents`."""
        return self._kids(parents)[0]

    def _kids(self, parents: list[str]) -> tuple[list[str], frozenset[str]]:
        # What lies below a folder depends only on its depth and its year and month.
        cache_key = (len(parents), *parents[4:])
        kids = self._cache.get(cache_key)
        if kids is None:
            names = sorted(n + "/" for n in self._names(len(parents), parents))
            kids = self._cache[cache_key] = (names, frozenset(names))
        return kids

    def _files(self, parents: list[str]) -> list[str]:
        """Sorted file names of a day folder (flow log id first, then the 5-minute time)."""
        values = [p.rpartition("=")[2] for p in parents]
        account, region, y, m, d = values[1], values[3], values[4], values[5], values[6]
        out = []
        for n in range(self.files):
            log, slot = divmod(n, 288)
            minutes = slot * 5
            digest = zlib.crc32(f"{account}{region}{y}{m}{d}{n}".encode()) | 0x10000000
            out.append(
                f"{account}_vpcflowlogs_{region}_fl-{log:017x}_{y}{m}{d}T{minutes // 60:02d}{minutes % 60:02d}Z_"
                f"{digest:08x}.log.gz"
            )
        return out

    def all_keys(self) -> Iterator[str]:
        """Every key, in listing order (for a moto bucket or an inventory report)."""
        yield from (e for e, _ in self._entries([], self.prefix, "", "", None))

    def _entries(
        self, parents: list[str], path: str, prefix: str, delimiter: str, after: str | None
    ) -> Iterator[tuple[str, bool]]:
        """(key or common prefix, is_prefix) under the folder `path`, in order, after `after`."""
        if len(parents) == 7:
            names = self._files(parents)
            start = 0 if after is None else bisect.bisect_right([path + n for n in names], after)
            for name in names[start:]:
                key = path + name
                if key.startswith(prefix):
                    yield key, False
            return
        for name in self._children(parents):
            child = path + name
            if not (child.startswith(prefix) or prefix.startswith(child)):
                continue
            if after is not None and child <= after and not after.startswith(child):
                continue  # the whole folder was returned on an earlier page
            if (
                delimiter
                and len(child) > len(prefix)
                and child.find(delimiter, len(prefix)) == len(child) - 1
            ):
                if after is None or child > after:
                    yield child, True
                continue
            yield from self._entries([*parents, name[:-1]], child, prefix, delimiter, after)

    def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]:
        """ListObjectsV2 as S3 answers it; no time charged (see S3View)."""
        prefix = kwargs.get("Prefix", "")
        delimiter = kwargs.get("Delimiter", "")
        if delimiter not in ("", "/"):
            raise NotImplementedError("only the '/' delimiter is simulated")
        if kwargs.get("Bucket") != self.bucket:
            raise _error("NoSuchBucket", "The specified bucket does not exist", 404)
        max_keys = min(int(kwargs.get("MaxKeys", MAX_KEYS)), MAX_KEYS)
        token = kwargs.get("ContinuationToken")
        after = token[len("sim:") :] if token else kwargs.get("StartAfter") or None
        page: list[tuple[str, bool]] = []
        truncated = False
        base = self._base(prefix)
        if delimiter and len(prefix) < len(self.prefix) and self.prefix.startswith(prefix):
            # Everything lies under the free prefix: its next folder is the one common prefix.
            rolled = self.prefix[: self.prefix.index("/", len(prefix)) + 1]
            if max_keys > 0 and (after is None or rolled > after):
                page.append((rolled, True))
        elif base is not None and max_keys > 0:
            parents, path = base
            for entry in self._entries(parents, path, prefix, delimiter, after):
                if len(page) == max_keys:
                    truncated = True
                    break
                page.append(entry)
        response: dict[str, Any] = {
            "IsTruncated": truncated,
            "Name": self.bucket,
            "Prefix": prefix,
            "MaxKeys": max_keys,
            "KeyCount": len(page),
        }
        if delimiter:
            response["Delimiter"] = delimiter
        contents = [
            {"Key": k, "Size": 1024, "StorageClass": "STANDARD"} for k, is_prefix in page if not is_prefix
        ]
        prefixes = [{"Prefix": k} for k, is_prefix in page if is_prefix]
        if contents:
            response["Contents"] = contents
        if prefixes:
            response["CommonPrefixes"] = prefixes
        if token:
            response["ContinuationToken"] = token
        if truncated:
            response["NextContinuationToken"] = "sim:" + page[-1][0]
        return response

    def _base(self, prefix: str) -> tuple[list[str], str] | None:
        """The deepest folder every key matching `prefix` lies in (its parents and path)."""
        if not (prefix.startswith(self.prefix) or self.prefix.startswith(prefix)):
            return None
        if len(prefix) <= len(self.prefix):
            return [], self.prefix
        parents: list[str] = []
        path = self.prefix
        for name in prefix[len(self.prefix) :].split("/")[:-1]:
            if len(parents) == 7 or name + "/" not in self._kids(parents)[1]:
                return None
            parents.append(name)
            path += name + "/"
        return parents, path


REGIONS = (
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "eu-south-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-east-1",
    "sa-east-1",
    "me-south-1",
    "af-south-1",
    "il-central-1",
    "ap-south-2",
    "eu-central-2",
)


def _error(code: str, message: str, status: int = 400) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "Simulated")


class S3View:
    """One worker's S3 client: ListObjectsV2 over the organisation, `latency` charged a call;
    GetObject of the files put in `S3View.files` (inventory data files), `get_latency` and
    their bytes at `throughput` charged."""

    files: ClassVar[dict[tuple[str, str], bytes]] = {}

    def __init__(
        self,
        org: Organisation,
        clock: VirtualClock,
        latency: float = 0.02,
        get_latency: float = 0.02,
        throughput: float = 50e6,
    ) -> None:
        self.org = org
        self.clock = clock
        self.latency = latency
        self.get_latency = get_latency
        self.throughput = throughput
        self.gets = 0
        self.calls = 0
        self._pages: dict[str, float] = {}  # continuation token -> when its page arrived
        self._lock = threading.Lock()

    def list_objects_v2(self, **kwargs: Any) -> dict[str, Any]:
        started = time.thread_time()
        try:
            return self._list(kwargs)
        finally:
            HARNESS.add(time.thread_time() - started)

    def get_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        data = self.files.get((Bucket, Key))
        if data is None:
            raise _error("NoSuchKey", "The specified key does not exist.", 404)
        self.gets += 1
        self.clock.serial(self.get_latency + len(data) / self.throughput, "get")
        return {"Body": io.BytesIO(data), "ContentLength": len(data)}

    def _list(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        response = self.org.list_objects_v2(**kwargs)
        # The walk's levels are folder depths: one level is listed before the next starts.
        phase = (bool(kwargs.get("Delimiter")), kwargs.get("Prefix", "").count("/"))
        token = kwargs.get("ContinuationToken")
        with self._lock:
            self.calls += 1
            not_before = self._pages.pop(token, 0.0) if token else 0.0
        done = self.clock.parallel(phase, self.latency, not_before)
        if response.get("NextContinuationToken"):
            with self._lock:  # the next page is asked for after this one came back
                self._pages[response["NextContinuationToken"]] = done
        return response


@dataclass
class GlueLimits:
    """Simulated Glue: per-call latency and the account's call rates (shared by all workers)."""

    latency: float = 0.1
    write_rate: float = 50.0  # BatchCreatePartition calls a second
    read_rate: float = 100.0  # every other call a second
    writes: RateLimit = field(init=False)
    reads: RateLimit = field(init=False)

    def __post_init__(self) -> None:
        self.writes = RateLimit(self.write_rate)
        self.reads = RateLimit(self.read_rate)


class GlueCatalog:
    """One Glue table and its partitions, shared by every worker's GlueView."""

    def __init__(self, table: dict[str, Any], limits: GlueLimits | None = None) -> None:
        self.table = table
        self.limits = limits or GlueLimits()
        self.partitions: dict[tuple[str, ...], str] = {}  # values -> Location
        self.calls: Counter[str] = Counter()
        self.created = 0
        self._lock = threading.Lock()

    def view(self, clock: VirtualClock) -> GlueView:
        return GlueView(self, clock)


class GlueView:
    """One worker's Glue client: the calls the pipeline makes, limits asserted, time charged."""

    def __init__(self, catalog: GlueCatalog, clock: VirtualClock) -> None:
        self._catalog = catalog
        self.clock = clock

    def _charge(self, api: str) -> None:
        limits = self._catalog.limits
        with self._catalog._lock:
            self._catalog.calls[api] += 1
        writes = api == "BatchCreatePartition"
        start = (limits.writes if writes else limits.reads).reserve(self.clock.sync())
        self.clock.serial(limits.latency, "glue write" if writes else "glue read", start, api)

    def _check(self, kwargs: dict[str, Any]) -> None:
        table = self._catalog.table
        if (kwargs.get("DatabaseName"), kwargs.get("TableName", kwargs.get("Name"))) != (
            table["DatabaseName"],
            table["Name"],
        ):
            raise _error("EntityNotFoundException", "Table not found")

    def __getattribute__(self, name: str) -> Any:
        attribute = object.__getattribute__(self, name)
        if name not in _GLUE_APIS:
            return attribute

        def measured(**kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return attribute(**kwargs)
            finally:
                HARNESS.add(time.thread_time() - started)

        return measured

    def get_table(self, **kwargs: Any) -> dict[str, Any]:
        self._charge("GetTable")
        self._check(kwargs)
        return {"Table": copy.deepcopy(self._catalog.table)}

    def get_partitions(self, **kwargs: Any) -> dict[str, Any]:
        self._charge("GetPartitions")
        self._check(kwargs)
        size = int(kwargs.get("MaxResults", PAGE_LIMIT))
        if not 1 <= size <= PAGE_LIMIT:
            raise _error("ValidationException", f"MaxResults must be 1..{PAGE_LIMIT}")
        if kwargs.get("Expression") or kwargs.get("Segment"):
            raise NotImplementedError("GetPartitions Expression/Segment are not simulated")
        start = int(kwargs.get("NextToken") or 0)
        with self._catalog._lock:  # Glue promises no order; insertion order is one
            items = list(itertools.islice(self._catalog.partitions.items(), start, start + size + 1))
        page = items[:size]
        response: dict[str, Any] = {"Partitions": [self._partition(v, loc) for v, loc in page]}
        if len(items) > size:
            response["NextToken"] = str(start + size)
        return response

    def batch_get_partition(self, **kwargs: Any) -> dict[str, Any]:
        self._charge("BatchGetPartition")
        self._check(kwargs)
        wanted = kwargs["PartitionsToGet"]
        if len(wanted) > GET_LIMIT:
            raise _error("ValidationException", f"PartitionsToGet: at most {GET_LIMIT} items")
        have = self._catalog.partitions
        found = [
            self._partition(tuple(w["Values"]), have[tuple(w["Values"])])
            for w in wanted
            if tuple(w["Values"]) in have
        ]
        return {"Partitions": found, "UnprocessedKeys": []}

    def batch_create_partition(self, **kwargs: Any) -> dict[str, Any]:
        inputs = kwargs["PartitionInputList"]
        if len(inputs) > CREATE_LIMIT:
            # AWS refuses the whole request (a validation error), as botocore's model says.
            raise _error("ValidationException", f"PartitionInputList: at most {CREATE_LIMIT} items")
        self._charge("BatchCreatePartition")
        self._check(kwargs)
        errors = []
        with self._catalog._lock:
            for item in inputs:
                values = tuple(item["Values"])
                if values in self._catalog.partitions:
                    errors.append(
                        {
                            "PartitionValues": list(values),
                            "ErrorDetail": {"ErrorCode": "AlreadyExistsException", "ErrorMessage": "exists"},
                        }
                    )
                else:
                    self._catalog.partitions[values] = item["StorageDescriptor"]["Location"]
                    self._catalog.created += 1
        return {"Errors": errors} if errors else {}

    def _partition(self, values: tuple[str, ...], location: str) -> dict[str, Any]:
        table = self._catalog.table
        return {
            "Values": list(values),
            "DatabaseName": table["DatabaseName"],
            "TableName": table["Name"],
            "StorageDescriptor": {"Location": location},
        }


_GLUE_APIS = frozenset({"get_table", "get_partitions", "batch_get_partition", "batch_create_partition"})


def org_table(
    location: str, database: str = "flowlogs", name: str = "vpc_flow_logs", hive: bool = False
) -> dict[str, Any]:
    """A GetTable `Table` for an organisation's flow logs: `init --multi-account`'s text table
    (formats.TableSpec), its Location `location`."""
    from datetime import UTC, datetime

    from vpcflow_partitioner.formats import MULTI_ACCOUNT, TableSpec

    spec = TableSpec(database, name, "s3://bucket/AWSLogs/", layout=MULTI_ACCOUNT)
    return {
        **spec.table_input(),
        "DatabaseName": database,
        "CatalogId": "123456789012",
        "CreateTime": datetime(2026, 1, 1, tzinfo=UTC),
        "UpdateTime": datetime(2026, 1, 1, tzinfo=UTC),
        "VersionId": "0",
        "StorageDescriptor": spec.storage_descriptor() | {"Location": location},
    }


def slices(org: Organisation, per: str = "month") -> Iterator[tuple[str, str, date, date]]:
    """(account, region, first day, last day) of every (account, region, `per`) slice, `per`
    being "month" or "year" (cut as `backfill --distributed --slice` cuts) or "all" (the
    whole date range)."""
    from vpcflow_partitioner.backfill import SLICES

    last = org.first + timedelta(days=org.days - 1)
    spans = [(org.first, last)] if per == "all" else SLICES[per](org.first, last)
    for account in org.accounts:
        for region in org.regions:
            for since, until in spans:
                yield account, region, since, until
