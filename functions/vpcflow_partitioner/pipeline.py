"""The one code path: messages -> plan -> filter seen -> create -> mark -> Report.

The Lambda handlers, `replay`, `backfill`, `audit --fix` and `on_schedule` all feed
messages in here; they differ only in where the messages come from and in whether the
DynamoDB cache may answer "already present" (recovery asks Glue itself).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger

from .cache import BUSY, CLAIMED, PRESENT, PartitionCache, SeenSet, item_id
from .catalog import CREATED, EXISTS, Catalog
from .config import SERVICE, Settings
from .envelopes import Message, ObjectRef
from .errors import TransientError
from .keys import is_flow_log_name, parse_key
from .scheme import ConfigurationError, PartitionSpec, Scheme, Skip, TableRef, same_folder

logger = Logger(service=SERVICE, child=True)

# Outcomes per partition besides catalog.CREATED / catalog.EXISTS.
KNOWN = "known"  # in this container's seen-set
CACHED = "cached"  # the DynamoDB cache says present
WOULD_CREATE = "would create"  # dry run
_DONE = {CREATED, EXISTS, KNOWN, CACHED, WOULD_CREATE}
_COLLISION = "collision with "  # + the folder the partition has: acked, never "present"
_FAILED = "failed"  # a Skip that could not be confirmed against a fresh table: retry the record
_MISCONFIGURED = "misconfigured"  # a table that cannot be used as configured: fail, permanently

# A negative decision (outside the Location, unpartitionable) is final for the object, so
# it is taken against a table read during this invocation, once per kind of folder.
_RECHECK_MEMORY = 10_000
_PLAN_MEMORY = 16_384

# A claim held by another invocation usually turns into `present` within one Glue call;
# look again a few times before failing the record back to its retry mechanism.
_BUSY_WAITS = (0.2, 0.4, 0.8)

_NOT_FLOW_LOG = Skip("ignored", "not a flow-log object")
_FOREIGN_BUCKET = Skip("ignored", "bucket not in SOURCE_BUCKETS", misrouted=True)
_COULD_CONCERN = Skip("unpartitionable", "unknown table")  # a flow log, the table never read

METRIC_NAMES = (
    "PartitionsCreated",
    "PartitionsAlreadyPresent",
    "CacheHits",
    "ObjectsIgnored",  # every object that is not this table's, for any reason
    "ObjectsOutsideTable",  # of those, flow-log files from another bucket or outside the Location
    "ObjectsUnpartitionable",
    "RecordsMalformed",
    "RecordsFailed",
)


@dataclass(frozen=True, slots=True)
class MessageResult:
    """How one message ended: ok (done or ignored) or failed (retry it), and why."""

    id: str
    ok: bool
    notes: tuple[str, ...] = ()  # why it failed, or what was ignored or skipped
    # Acked, but it holds something replay cannot fix and an operator should see: a body
    # that is not an event, an object the table cannot represent, a folder collision.
    unresolved: bool = False
    done: tuple[tuple[tuple[str, ...], str], ...] = ()  # (partition values, outcome)
    permanent: bool = False  # failed on a table's configuration: retrying cannot help

    @property
    def detail(self) -> str:
        """One line for people (built only when asked: a warm SQS batch never needs it)."""
        parts = sorted(f"{'/'.join(values)} {outcome}" for values, outcome in self.done)
        return "; ".join(parts + list(self.notes)) or "nothing to do"


@dataclass
class Report:
    """What one run did, for responses, metrics, logs and the command line."""

    results: list[MessageResult] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    outcomes: dict[PartitionSpec, str] = field(default_factory=dict)
    ignored: Counter[str] = field(default_factory=Counter)  # why objects were no table's
    # Per table ([catalog:]database.table): its partitions' outcomes and its own counts.
    tables: dict[str, Report] = field(default_factory=dict)
    _index: dict[str, MessageResult] = field(default_factory=dict, repr=False)

    @property
    def failed(self) -> list[MessageResult]:
        return [r for r in self.results if not r.ok]

    def result(self, message_id: str) -> MessageResult:
        """The result of one message (SQS batches reach 10,000 messages: an index, not a scan)."""
        if len(self._index) != len(self.results):
            self._index = {r.id: r for r in self.results}
        return self._index[message_id]

    def metrics(self) -> dict[str, int]:
        """Counts under the fixed metric names (zeros left out)."""
        return {name: self.counts[name] for name in METRIC_NAMES if self.counts[name]}

    def partitions(self, *outcomes: str) -> list[PartitionSpec]:
        return sorted((s for s, o in self.outcomes.items() if o in outcomes), key=lambda s: s.values)

    def collisions(self) -> dict[PartitionSpec, str]:
        """Folders that map to a partition another folder has: spec -> that other folder."""
        return {s: o.removeprefix(_COLLISION) for s, o in self.outcomes.items() if is_collision(o)}


def is_collision(outcome: str) -> bool:
    """Whether an outcome says the partition belongs to another folder."""
    return outcome.startswith(_COLLISION)


_Plans = list[list[tuple[ObjectRef, PartitionSpec | Skip]]]  # per message: (object, its plan)


class _TableChanged(Exception):
    """The table changed between planning and creating: plan again with the new one."""


@dataclass(frozen=True, slots=True)
class _Resolved:
    outcome: str
    location: str = ""  # the partition's folder in the catalog, when done


class Partitioner:
    """Keeps one Glue table's partitions in step with the objects it is told about."""

    def __init__(
        self,
        settings: Settings,
        glue: Any,
        dynamodb: Any = None,
        *,
        seen: SeenSet | None = None,
        sleep: Callable[[float], None] = time.sleep,
        check_spelling: bool = True,
    ) -> None:
        self.settings = settings
        self.name = str(settings.table_names[0])  # as GLUE_TABLES writes it: [catalog:]database.table
        self._check_spelling = check_spelling  # `audit` reports misspelt partitions instead
        self.catalog = Catalog(glue, TableRef(settings.catalog_id, settings.database, settings.table), sleep)
        self.cache = (
            PartitionCache(dynamodb, settings.cache_table, settings.cache_ttl_days, sleep=sleep)
            if settings.cache_table and dynamodb is not None
            else None
        )
        self.seen = seen if seen is not None else SeenSet()
        self._sleep = sleep
        self._scheme: Scheme | None = None
        self._read_at = 0.0
        self._rechecked: set[tuple[str, str]] = set()  # folders whose negative decision was re-checked
        self._plans: dict[tuple[str, str, bool], PartitionSpec | Skip] = {}  # (bucket, folder, parquet)
        self._plans_for: tuple[Any, ...] = ()  # the table version the plans were made for

    def scheme(self, now: float | None = None) -> Scheme:
        """The table's scheme: read with GetTable, again once TABLE_REFRESH_SECONDS have passed.

        A first read that fails raises (nothing can be planned without the table); a
        periodic re-read that fails transiently keeps the scheme in hand: creates read the
        table again anyway, and a negative decision needs a fresh one.
        """
        if self._scheme is None:
            return self._read(time.time() if now is None else now)
        if now is not None and now - self._read_at >= self.settings.table_refresh_seconds:
            try:
                return self._read(now)
            except TransientError as exc:
                logger.warning("table not read again; using the one in hand", error=str(exc))
        return self._scheme

    def _read(self, now: float) -> Scheme:
        scheme = Scheme.from_table(self.catalog.get_table(), self.settings.catalog_id)
        changed = self._scheme is None or (self._scheme.version, self._scheme.create_time) != (
            scheme.version,
            scheme.create_time,
        )
        if changed and self._check_spelling:
            # A page of existing partitions, read once per table version: values spelled otherwise
            # than the folders (int months, another date format) would make every partition
            # we create a second one on its folder, read twice by Athena. Refuse loudly.
            for values, location in self.catalog.some_partitions():
                problem = scheme.misspelt(values, location)
                if problem:
                    raise ConfigurationError(problem)
        self._scheme, self._read_at = scheme, now
        if changed:
            self._rechecked.clear()
            logger.info(
                "table read",
                table=str(scheme.table),
                table_location=scheme.location,
                partition_keys=list(scheme.key_names),
                version=scheme.version,
            )
            if not scheme.file_suffix:
                # Neither a text nor a Parquet table: it takes both kinds of flow-log file, also
                # those a twin over the same Location takes (and it may read neither).
                logger.warning(
                    "table format unknown: it takes .log.gz and .log.parquet files",
                    table=str(scheme.table),
                    input_format=scheme.storage_descriptor.get("InputFormat", ""),
                )
        return scheme

    def _fresh(self, now: float) -> Scheme:
        """The table as it is now: read again unless it was read during this run."""
        if self._read_at >= now and self._scheme is not None:
            return self._scheme
        return self._read(now)

    def run(
        self,
        messages: Iterable[Message],
        now: float,
        *,
        use_cache: bool = True,
        dry_run: bool = False,
    ) -> Report:
        """Ensure every partition the messages' objects belong to; ConfigurationError propagates."""
        return Fleet((self,)).run(messages, now, use_cache=use_cache, dry_run=dry_run)

    def decide(
        self, messages: list[Message], now: float, *, use_cache: bool, dry_run: bool
    ) -> tuple[_Plans, dict[PartitionSpec, str], Counter[str]]:
        """Each object's plan, each wanted partition's outcome, and the partition counts;
        TransientError or ConfigurationError when the table cannot be read."""
        scheme = self.scheme(now)
        plans, specs, refused = self._plan(scheme, messages)
        negative = self._negative_folders(plans) if refused else set()
        if negative - self._rechecked and self._read_at < now:
            # About to turn objects away on the word of a table read earlier: look again,
            # once per folder and table version (a shared bucket must not cost a GetTable
            # per invocation).
            try:
                scheme = self._read(now)
                plans, specs, refused = self._plan(scheme, messages)
                negative = self._negative_folders(plans) if refused else set()
            except TransientError as exc:
                plans = _fail_negatives(plans, str(exc))
                negative = set()
        self._rechecked |= negative
        if len(self._rechecked) > _RECHECK_MEMORY:
            self._rechecked = set(negative)
        counts: Counter[str] = Counter()
        try:
            outcomes = self.ensure(scheme, specs, now, counts, use_cache=use_cache, dry_run=dry_run)
        except _TableChanged:
            scheme = self.scheme()
            plans, specs, _ = self._plan(scheme, messages)
            counts = Counter()
            outcomes = self.ensure(scheme, specs, now, counts, use_cache=use_cache, dry_run=dry_run)
        return plans, outcomes, counts

    def unread(self, messages: list[Message], error: str, permanent: bool = False) -> _Plans:
        """The plans of a run in which this table could not be read: every object it could
        concern fails (its record is retried), by the table last read when there is one, and
        by the object alone when there is none; the others are this table's to ignore."""
        scheme = self._scheme
        why = Skip(_MISCONFIGURED if permanent else _FAILED, f"table {self.name} not read: {error}")
        plans: _Plans = []
        for message in messages:
            planned: list[tuple[ObjectRef, PartitionSpec | Skip]] = []
            for ref in message.objects:
                plan = self.plan_object(scheme, ref.bucket, ref.key)
                concerns = isinstance(plan, PartitionSpec) or plan.outcome == "unpartitionable"
                planned.append((ref, why if concerns else plan))
            plans.append(planned)
        return plans

    def plan_object(self, scheme: Scheme | None, bucket: str, key: str) -> PartitionSpec | Skip:
        """The partition one object belongs to, or why none (allowlist, key, table). With no
        table at hand (never read), a flow-log file from an allowed bucket is one it could
        concern: _COULD_CONCERN."""
        # A flow log writes a file every five minutes into the same folder, and what a key
        # plans to depends on its folder alone once its file name is a flow-log file's: plan
        # each folder once per table version.
        folder, _, name = key.rpartition("/")
        if not is_flow_log_name(name):
            return _NOT_FLOW_LOG
        allowed = self.settings.source_buckets
        if allowed and bucket not in allowed:
            # Misrouted only if it is a flow log: an ELB or Route 53 log also ends in .log.gz.
            return _FOREIGN_BUCKET if parse_key(key) is not None else _NOT_FLOW_LOG
        if scheme is None:
            return _NOT_FLOW_LOG if parse_key(key) is None else _COULD_CONCERN
        version = (scheme.table, scheme.create_time, scheme.version)
        if self._plans_for != version:
            self._plans, self._plans_for = {}, version
        # A text and a Parquet file of one folder may belong to different tables' formats.
        memo = (bucket, folder, name.endswith(".log.parquet"))
        plan = self._plans.get(memo)
        if plan is None:
            obj = parse_key(key)
            plan = _NOT_FLOW_LOG if obj is None else scheme.plan(bucket, obj)
            if len(self._plans) >= _PLAN_MEMORY:
                # The newest out: the older entries stay, so a working set larger than the
                # memory still hits for most of it (clearing all, or the oldest, never would).
                self._plans.popitem()
            self._plans[memo] = plan
        return plan

    def _plan(self, scheme: Scheme, messages: list[Message]) -> tuple[_Plans, set[PartitionSpec], bool]:
        """Each object's plan, in one pass: the plans per message, the partitions wanted, and
        whether the table turned any object away."""
        plans: _Plans = []
        specs: set[PartitionSpec] = set()
        refused = False
        plan_object = self.plan_object
        for message in messages:
            planned = []
            for ref in message.objects:
                plan = plan_object(scheme, ref.bucket, ref.key)
                planned.append((ref, plan))
                if isinstance(plan, PartitionSpec):
                    specs.add(plan)
                elif plan.by_table:
                    refused = True
            plans.append(planned)
        return plans, specs, refused

    @staticmethod
    def _negative_folders(plans: _Plans) -> set[tuple[str, str]]:
        """(bucket, account-region folder) of flow-log objects the table turned away."""
        folders = set()
        for planned in plans:
            for ref, plan in planned:
                if isinstance(plan, Skip) and plan.by_table:
                    obj = parse_key(ref.key)
                    if obj is not None:
                        folders.add((ref.bucket, obj.folder("region")))
        return folders

    def ensure(
        self,
        scheme: Scheme,
        specs: Collection[PartitionSpec],
        now: float,
        counts: Counter[str],
        *,
        use_cache: bool = True,
        dry_run: bool = False,
    ) -> dict[PartitionSpec, str]:
        """Per spec: an outcome in _DONE, a collision with the folder the partition has, or
        why it failed (retry)."""
        # One lookup per partition: two folders that map to the same values are one
        # partition, and every folder but the one the catalog has is a collision.
        groups: dict[tuple[str, ...], list[PartitionSpec]] = {}
        for spec in sorted(set(specs), key=_by_values):
            groups.setdefault(spec.values, []).append(spec)
        resolved = self._resolve(
            [group[0] for group in groups.values()], scheme, now, counts, use_cache, dry_run
        )
        # A collision is only ever declared on Glue's word: a container's memory or the
        # cache may still hold a folder an `audit --fix` has since repointed.
        unconfirmed = [
            group[0]
            for group in groups.values()
            if resolved[group[0]].outcome in (KNOWN, CACHED)
            and any(not _same(resolved[group[0]].location, s.location) for s in group)
        ]
        if unconfirmed:
            confirmed = self._resolve(unconfirmed, scheme, now, counts, False, dry_run)
            resolved.update(confirmed)
            if use_cache and not dry_run:  # the cache learns the folder Glue has
                self._mark(scheme, {s: r.location for s, r in confirmed.items() if r.outcome == EXISTS}, now)
        outcomes: dict[PartitionSpec, str] = {}
        for group in groups.values():
            result = resolved[group[0]]
            for spec in group:
                if result.outcome in _DONE and not _same(result.location, spec.location):
                    outcomes[spec] = _COLLISION + result.location
                else:
                    outcomes[spec] = result.outcome
        return outcomes

    def _resolve(
        self,
        specs: list[PartitionSpec],
        scheme: Scheme,
        now: float,
        counts: Counter[str],
        use_cache: bool,
        dry_run: bool,
    ) -> dict[PartitionSpec, _Resolved]:
        """One spec per values: how the partition stands, and the folder it has."""
        resolved: dict[PartitionSpec, _Resolved] = {}
        seen_key = {s: (scheme.table, scheme.create_time, s.values) for s in specs}
        unknown = []
        for spec in specs:
            location = self.seen.get(seen_key[spec], now) if use_cache else None
            if location is not None:
                resolved[spec] = _Resolved(KNOWN, location)
                counts["CacheHits"] += 1
            else:
                unknown.append(spec)
        if not unknown:
            return resolved

        def remember(spec: PartitionSpec, outcome: str, location: str) -> None:
            resolved[spec] = _Resolved(outcome, location)
            if not dry_run:
                self.seen.add(seen_key[spec], location, now)

        busy: list[PartitionSpec] = []
        to_create: list[PartitionSpec] = []
        unverified: list[PartitionSpec] = []  # present in the cache, folder not recorded: ask Glue
        cache = self.cache if use_cache and not dry_run else None
        claimed = cache is not None
        if cache is not None:
            ids = {s: item_id(scheme, s) for s in unknown}
            recheck = any(self.seen.expired(seen_key[s], now) for s in unknown)
            try:
                states = cache.claim({ids[s]: s.location for s in unknown}, now, read_first=recheck)
            except TransientError as exc:
                return resolved | {s: _Resolved(str(exc)) for s in unknown}
            for spec in unknown:
                entry = states[ids[spec]]
                if entry.state == PRESENT and entry.location:
                    counts["CacheHits"] += 1
                    remember(spec, CACHED, entry.location)
                elif entry.state == PRESENT:
                    unverified.append(spec)
                elif entry.state == CLAIMED:
                    to_create.append(spec)
                elif entry.state == BUSY:
                    busy.append(spec)
                else:
                    resolved[spec] = _Resolved(entry.state)
            # An errored claim may have been applied (a timeout after DynamoDB wrote it).
            cache.release([ids[s] for s in unknown if s in resolved and resolved[s].outcome not in _DONE])
        else:
            unverified = unknown
        have: dict[tuple[str, ...], str] = {}
        try:
            have = self.catalog.existing(unverified) if unverified else {}
        except TransientError as exc:
            resolved.update({s: _Resolved(str(exc)) for s in unverified})
            unverified = []
        if unverified:
            for spec in unverified:
                if spec.values in have:
                    counts["PartitionsAlreadyPresent"] += 1
                    remember(spec, EXISTS, have[spec.values])
                else:
                    to_create.append(spec)
            if use_cache and not dry_run:  # entries written before folders were recorded learn theirs
                self._mark(scheme, {s: have[s.values] for s in unverified if s.values in have}, now)

        if dry_run:
            resolved.update({s: _Resolved(WOULD_CREATE, s.location) for s in to_create})
            return resolved
        resolved.update(self._create(scheme, to_create, now, counts, seen_key, claimed))
        if busy:
            resolved.update(self._await_others(busy, scheme, now, counts, seen_key))
        return resolved

    def _create(
        self,
        scheme: Scheme,
        specs: list[PartitionSpec],
        now: float,
        counts: Counter[str],
        seen_key: dict[PartitionSpec, Any],
        claimed: bool,
    ) -> dict[PartitionSpec, _Resolved]:
        """Create `specs` in Glue; mark what Glue has in the cache, and release our claims
        (`claimed`: the cache was asked first) on what it does not have."""
        if not specs:
            return {}
        ids = {s: item_id(scheme, s) for s in specs} if claimed else {}
        try:
            # New partitions carry the table's current StorageDescriptor: an `init --update`
            # a moment ago must not leave partitions with the old columns.
            current = self._fresh(now)
            if (current.version, current.create_time) != (scheme.version, scheme.create_time):
                raise _TableChanged
            results = self.catalog.create(scheme, specs)
        except TransientError as exc:
            self._release(ids.values())
            return {s: _Resolved(str(exc)) for s in specs}
        except Exception:
            self._release(ids.values())
            raise
        exists = [s for s in specs if results[s] == EXISTS]
        try:
            # AlreadyExists says nothing of where: read the folder Glue has, to tell a
            # partition another invocation created from a collision.
            have = self.catalog.existing(exists) if exists else {}
        except TransientError as exc:
            have = {}
            results |= {s: str(exc) for s in exists}
        resolved: dict[PartitionSpec, _Resolved] = {}
        for spec in specs:
            result = results[spec]
            if result == CREATED:
                resolved[spec] = _Resolved(CREATED, spec.location)
                counts["PartitionsCreated"] += 1
                logger.info(
                    "partition created",
                    table=str(scheme.table),
                    values=list(spec.values),
                    folder=spec.location,
                )
            elif result == EXISTS and spec.values in have:
                resolved[spec] = _Resolved(EXISTS, have[spec.values])
                counts["PartitionsAlreadyPresent"] += 1
                logger.info(
                    "partition already present",
                    table=str(scheme.table),
                    values=list(spec.values),
                    folder=have[spec.values],
                )
            elif result == EXISTS:
                resolved[spec] = _Resolved("AlreadyExists, but gone when read back; retry")
            else:
                resolved[spec] = _Resolved(result)
        done = {s: r.location for s, r in resolved.items() if r.outcome in (CREATED, EXISTS)}
        # Marked only now that Glue has answered: a cache entry always means "in Glue", at the
        # folder Glue has.
        self._mark(scheme, done, now)
        self._release(id_ for s, id_ in ids.items() if s not in done)
        for spec, location in done.items():
            self.seen.add(seen_key[spec], location, now)
        return resolved

    def _mark(self, scheme: Scheme, locations: dict[PartitionSpec, str], now: float) -> None:
        if self.cache is None or not locations:
            return
        try:
            self.cache.mark_present({item_id(scheme, s): location for s, location in locations.items()}, now)
        except Exception as exc:  # Glue has them; a later lookup merely costs more
            logger.warning("cache not marked", table=str(scheme.table), error=str(exc))

    def _release(self, ids: Iterable[str]) -> None:
        if self.cache is not None:
            self.cache.release(list(ids))

    def _await_others(
        self,
        specs: list[PartitionSpec],
        scheme: Scheme,
        now: float,
        counts: Counter[str],
        seen_key: dict[PartitionSpec, Any],
    ) -> dict[PartitionSpec, _Resolved]:
        assert self.cache is not None
        pending = {s: item_id(scheme, s) for s in specs}
        resolved: dict[PartitionSpec, _Resolved] = {}
        for delay in _BUSY_WAITS:
            self._sleep(delay)
            now += delay
            try:
                states = self.cache.read(list(pending.values()), now)
            except TransientError:
                continue
            for spec, id_ in list(pending.items()):
                entry = states.get(id_)
                if entry is not None and entry.state == PRESENT:
                    location = entry.location or spec.location
                    resolved[spec] = _Resolved(CACHED, location)
                    counts["CacheHits"] += 1
                    self.seen.add(seen_key[spec], location, now)
                    del pending[spec]
            if not pending:
                break
        for spec in pending:
            resolved[spec] = _Resolved("being created by another invocation; retry")
        return resolved


@dataclass(frozen=True, slots=True)
class _Decided:
    """One table's part of a run: each object's plan, and each wanted partition's outcome."""

    name: str
    plans: _Plans
    outcomes: dict[PartitionSpec, str]
    counts: Counter[str]


class Fleet:
    """Every table of a deployment over the same messages (GLUE_TABLES; one table in the
    one-table form). Each object goes to every table whose Location and file format take it,
    each table with its own scheme, seen-set and cache entries; a table that cannot be read
    fails only the records whose objects it could concern."""

    def __init__(self, partitioners: Sequence[Partitioner]) -> None:
        if not partitioners:
            raise ValueError("a fleet needs a table")
        self.partitioners = tuple(partitioners)

    @classmethod
    def build(cls, settings: Settings, glue: Any, dynamodb: Any = None, **options: Any) -> Fleet:
        """One Partitioner per configured table, sharing the clients."""
        return cls(
            [Partitioner(settings.for_table(n), glue, dynamodb, **options) for n in settings.table_names]
        )

    def partitioner(self, name: str) -> Partitioner:
        """The Partitioner of one configured table: [catalog:]database.table, database.table or
        the bare table name when only one table has it; KeyError otherwise."""
        found = [p for p in self.partitioners if p.settings.table_names[0].matches(name)]
        if len(found) != 1:
            raise KeyError(name)
        return found[0]

    def run(
        self,
        messages: Iterable[Message],
        now: float,
        *,
        use_cache: bool = True,
        dry_run: bool = False,
    ) -> Report:
        """Ensure every partition the messages' objects belong to, in every table that takes
        them; ConfigurationError or TransientError propagates only when no table could be read."""
        messages = list(messages)
        decided: list[_Decided] = []
        errors: list[Exception] = []
        for partitioner in self.partitioners:
            try:
                plans, outcomes, counts = partitioner.decide(
                    messages, now, use_cache=use_cache, dry_run=dry_run
                )
            except (TransientError, ConfigurationError) as exc:
                if len(self.partitioners) == 1:
                    raise
                errors.append(exc)
                # Loud: a table that cannot be read is as bad as a wrong configuration.
                logger.error("table not read", table=partitioner.name, error=str(exc))
                permanent = isinstance(exc, ConfigurationError)
                plans, outcomes, counts = partitioner.unread(messages, str(exc), permanent), {}, Counter()
            decided.append(_Decided(partitioner.name, plans, outcomes, counts))
        if len(errors) == len(self.partitioners):
            # A configuration error only when retrying cannot help any table: a transient one
            # anywhere is worth the retry (the tables that are fine by then get theirs).
            raise next((e for e in errors if not isinstance(e, ConfigurationError)), errors[0])
        return _combine(messages, decided)


def merged(reports: Iterable[Report]) -> Report:
    """Reports of separate runs as one (the sweep runs each table on its own walk)."""
    total = Report()
    for report in reports:
        total.results += report.results
        total.counts.update(report.counts)
        total.ignored.update(report.ignored)
        total.outcomes.update(report.outcomes)
        for name, part in report.tables.items():
            known = total.tables.setdefault(name, Report())
            known.counts.update(part.counts)
            known.outcomes.update(part.outcomes)
    if len(total.tables) > 1:
        total.outcomes = {}  # one table's partitions are not another's: read them per table
    return total


def _combine(messages: list[Message], decided: list[_Decided]) -> Report:
    """Per message: acked (with what was done) or failed (with why), and the counts. An object
    is ignored, or outside the table, only when no table takes it, and counted once.

    The usual message (every object's partition is there) allocates no notes and builds no
    strings: the detail line is made only when someone reads it.
    """
    report = Report()
    multi = len(decided) > 1
    for part in decided:
        report.tables[part.name] = Report(counts=part.counts, outcomes=part.outcomes)
        report.counts.update(part.counts)
    if not multi:
        report.outcomes = decided[0].outcomes
    ignored, counts = report.ignored, report.counts
    for index, message in enumerate(messages):
        notes: list[str] = []
        failures: list[str] = []
        done: list[tuple[tuple[str, ...], str]] = []
        if message.malformed:
            counts["RecordsMalformed"] += 1
            logger.warning("record malformed", message_id=message.id, reason=message.malformed)
            notes.append(f"malformed: {message.malformed}")
        for reason in message.ignored:
            counts["ObjectsIgnored"] += 1
            ignored[f"notification {reason}"] += 1
            notes.append(f"ignored: {reason}")
        failed_in: set[str] = set()
        permanent = transient = False
        for position, ref in enumerate(message.objects):
            taken = False
            skips: list[Skip] = []
            whys: list[str] = []
            for part in decided:
                plan = part.plans[index][position][1]
                label = f"{part.name}: " if multi else ""
                if isinstance(plan, PartitionSpec):
                    taken = True
                    outcome = part.outcomes[plan]
                    if outcome in _DONE:
                        done.append((plan.values, f"{outcome} in {part.name}" if multi else outcome))
                        continue
                    if not is_collision(outcome):
                        failures.append(f"{label}{'/'.join(plan.values)}: {outcome}")
                        failed_in.add(part.name)
                        transient = True
                        continue
                    why = f"{outcome}: another folder maps to the same partition values"
                elif plan.outcome in (_FAILED, _MISCONFIGURED):
                    taken = True
                    permanent |= plan.outcome == _MISCONFIGURED
                    transient |= plan.outcome == _FAILED
                    failures.append(f"{label}{ref.key}: {plan.reason}")
                    failed_in.add(part.name)
                    continue
                elif plan.outcome == "unpartitionable":
                    why = plan.reason
                else:
                    skips.append(plan)
                    continue
                taken = True
                whys.append(f"{label}{why}")
                report.tables[part.name].counts["ObjectsUnpartitionable"] += 1
            if whys:
                counts["ObjectsUnpartitionable"] += 1
                why = "; ".join(whys)
                logger.warning("object unpartitionable", bucket=ref.bucket, key=ref.key, reason=why)
                notes.append(f"unpartitionable: {why}")
            if taken:
                continue
            # No table takes it: one count, one reason (the tables' reasons, when they differ).
            counts["ObjectsIgnored"] += 1
            if all(skip.misrouted for skip in skips):
                counts["ObjectsOutsideTable"] += 1
            reason = "; ".join(dict.fromkeys(skip.reason for skip in skips))
            ignored[reason] += 1
            notes.append(f"ignored: {reason}")
        for name in failed_in:
            report.tables[name].counts["RecordsFailed"] += 1
        if failures:
            counts["RecordsFailed"] += 1
            report.results.append(
                MessageResult(
                    message.id,
                    ok=False,
                    notes=tuple(dict.fromkeys(failures)),
                    permanent=permanent and not transient,  # retried while any table may recover
                )
            )
            continue
        report.results.append(
            MessageResult(
                message.id,
                ok=True,
                notes=tuple(notes) if notes else (),
                unresolved=bool(notes)
                and (bool(message.malformed) or any(n.startswith("unpartitionable") for n in notes)),
                done=tuple(done) if len(done) < 2 else tuple(dict.fromkeys(done)),
            )
        )
    for reason, count in ignored.items():
        logger.info("objects ignored", reason=reason, count=count)
    return report


def _by_values(spec: PartitionSpec) -> tuple[tuple[str, ...], str]:
    return spec.values, spec.location


def _same(a: str, b: str) -> bool:
    return a == b or same_folder(a, b)  # the same string nearly always: skip the normalising


def _fail_negatives(plans: _Plans, error: str) -> _Plans:
    """Plans whose table-made refusals become failures: never turn an object away unchecked."""
    return [
        [
            (ref, Skip(_FAILED, f"table not read again before turning the object away: {error}"))
            if isinstance(plan, Skip) and plan.by_table
            else (ref, plan)
            for ref, plan in planned
        ]
        for planned in plans
    ]
