"""The one code path: messages -> plan -> filter seen -> create -> mark -> Report.

The Lambda handlers, `replay`, `backfill`, `audit --fix` and `on_schedule` all feed
messages in here; they differ only in where the messages come from and in whether the
DynamoDB cache may answer "already present" (recovery asks Glue itself).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger

from .cache import BUSY, CLAIMED, PRESENT, PartitionCache, SeenSet, item_id
from .catalog import CREATED, EXISTS, Catalog
from .config import SERVICE, Settings
from .envelopes import Message
from .errors import TransientError
from .keys import parse_key
from .scheme import PartitionSpec, Scheme, Skip, TableRef

logger = Logger(service=SERVICE, child=True)

# Outcomes per partition besides catalog.CREATED / catalog.EXISTS.
KNOWN = "known"  # in this container's seen-set
CACHED = "cached"  # the DynamoDB cache says present
WOULD_CREATE = "would create"  # dry run
_DONE = {CREATED, EXISTS, KNOWN, CACHED, WOULD_CREATE}

# A claim held by another invocation usually turns into `present` within one Glue call;
# look again a few times before failing the record back to its retry mechanism.
_BUSY_WAITS = (0.2, 0.4, 0.8)

METRIC_NAMES = (
    "PartitionsCreated",
    "PartitionsAlreadyPresent",
    "CacheHits",
    "ObjectsIgnored",
    "ObjectsUnpartitionable",
    "RecordsMalformed",
    "RecordsFailed",
)


@dataclass(frozen=True, slots=True)
class MessageResult:
    """How one message ended: ok (done or ignored) or failed (retry it), and why."""

    id: str
    ok: bool
    detail: str
    # Acked, but it holds something replay cannot fix and an operator should see: a body
    # that is not an event, an object the table cannot represent, a folder collision.
    unresolved: bool = False


@dataclass
class Report:
    """What one run did, for responses, metrics, logs and the command line."""

    results: list[MessageResult] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    outcomes: dict[PartitionSpec, str] = field(default_factory=dict)
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
    ) -> None:
        self.settings = settings
        self.catalog = Catalog(glue, TableRef(settings.catalog_id, settings.database, settings.table), sleep)
        self.cache = (
            PartitionCache(dynamodb, settings.cache_table, settings.cache_ttl_days, sleep=sleep)
            if settings.cache_table and dynamodb is not None
            else None
        )
        self.seen = seen if seen is not None else SeenSet()
        self._sleep = sleep
        self._scheme: Scheme | None = None

    def scheme(self) -> Scheme:
        """The table's scheme, read with GetTable once per container (a failure is retried)."""
        if self._scheme is None:
            self._scheme = Scheme.from_table(self.catalog.get_table(), self.settings.catalog_id)
            logger.info(
                "table read",
                table=str(self._scheme.table),
                table_location=self._scheme.location,
                partition_keys=list(self._scheme.key_names),
            )
        return self._scheme

    def run(
        self,
        messages: Iterable[Message],
        now: float,
        *,
        use_cache: bool = True,
        dry_run: bool = False,
    ) -> Report:
        """Ensure every partition the messages' objects belong to; ConfigurationError propagates."""
        scheme = self.scheme()
        report = Report()
        wanted: list[tuple[Message, set[PartitionSpec], list[str]]] = []
        ignored: Counter[str] = Counter()
        for message in messages:
            notes: list[str] = []
            specs: set[PartitionSpec] = set()
            if message.malformed:
                report.counts["RecordsMalformed"] += 1
                logger.warning("record malformed", message_id=message.id, reason=message.malformed)
                notes.append(f"malformed: {message.malformed}")
            for reason in message.ignored:
                report.counts["ObjectsIgnored"] += 1
                ignored[f"notification {reason}"] += 1
                notes.append(f"ignored: {reason}")
            for ref in message.objects:
                planned = self.plan_object(scheme, ref.bucket, ref.key)
                if isinstance(planned, PartitionSpec):
                    specs.add(planned)
                elif planned.outcome == "unpartitionable":
                    report.counts["ObjectsUnpartitionable"] += 1
                    logger.warning(
                        "object unpartitionable", bucket=ref.bucket, key=ref.key, reason=planned.reason
                    )
                    notes.append(f"unpartitionable: {planned.reason}")
                else:
                    report.counts["ObjectsIgnored"] += 1
                    ignored[planned.reason] += 1
                    notes.append(f"ignored: {planned.reason}")
            wanted.append((message, specs, notes))
        for reason, count in ignored.items():
            logger.info("objects ignored", reason=reason, count=count)

        all_specs = sorted({s for _, specs, _ in wanted for s in specs}, key=lambda s: s.values)
        report.outcomes = self.ensure(
            scheme, all_specs, now, report.counts, use_cache=use_cache, dry_run=dry_run
        )

        for message, specs, notes in wanted:
            failures = sorted(
                f"{'/'.join(s.values)}: {report.outcomes[s]}"
                for s in specs
                if report.outcomes[s] not in _DONE
            )
            if failures:
                report.counts["RecordsFailed"] += 1
                report.results.append(MessageResult(message.id, False, "; ".join(failures)))
                continue
            done = sorted(f"{'/'.join(s.values)} {report.outcomes[s]}" for s in specs)
            unresolved = any(note.startswith(("malformed", "unpartitionable")) for note in notes)
            report.results.append(
                MessageResult(message.id, True, "; ".join(done + notes) or "nothing to do", unresolved)
            )
        return report

    def plan_object(self, scheme: Scheme, bucket: str, key: str) -> PartitionSpec | Skip:
        """The partition one object belongs to, or why none (allowlist, key, table)."""
        allowed = self.settings.source_buckets
        if allowed and bucket not in allowed:
            return Skip("ignored", "bucket not in SOURCE_BUCKETS")
        obj = parse_key(key)
        if obj is None:
            return Skip("ignored", "not a flow-log object")
        return scheme.plan(bucket, obj)

    def ensure(
        self,
        scheme: Scheme,
        specs: Sequence[PartitionSpec],
        now: float,
        counts: Counter[str],
        *,
        use_cache: bool = True,
        dry_run: bool = False,
    ) -> dict[PartitionSpec, str]:
        """Per spec: an outcome in _DONE, or why it failed."""
        outcomes: dict[PartitionSpec, str] = {}
        seen_key = {s: (scheme.table, scheme.create_time, s.values) for s in specs}
        unknown = []
        for spec in specs:
            if use_cache and seen_key[spec] in self.seen:
                outcomes[spec] = KNOWN
                counts["CacheHits"] += 1
            else:
                unknown.append(spec)
        if not unknown:
            return outcomes

        busy: list[PartitionSpec] = []
        if self.cache is not None and use_cache and not dry_run:
            ids = {s: item_id(scheme, s) for s in unknown}
            try:
                states = self.cache.claim(list(ids.values()), now)
            except TransientError as exc:
                states = {i: f"error: {exc}" for i in ids.values()}
            to_create = []
            for spec in unknown:
                state = states[ids[spec]]
                if state == PRESENT:
                    outcomes[spec] = CACHED
                    counts["CacheHits"] += 1
                    self.seen.add(seen_key[spec])
                elif state == CLAIMED:
                    to_create.append(spec)
                elif state == BUSY:
                    busy.append(spec)
                else:
                    outcomes[spec] = state
        else:
            try:
                have = self.catalog.existing(unknown)
            except TransientError as exc:
                return outcomes | {s: str(exc) for s in unknown}
            to_create = []
            for spec in unknown:
                if spec.values in have:
                    outcomes[spec] = EXISTS
                    counts["PartitionsAlreadyPresent"] += 1
                    if not dry_run:
                        self.seen.add(seen_key[spec])
                else:
                    to_create.append(spec)

        if dry_run:
            outcomes.update({s: WOULD_CREATE for s in to_create})
            return outcomes

        outcomes.update(self._create(scheme, to_create, now, counts, seen_key))
        if busy:
            outcomes.update(self._await_others(busy, scheme, now, counts, seen_key))
        return outcomes

    def _create(
        self,
        scheme: Scheme,
        specs: list[PartitionSpec],
        now: float,
        counts: Counter[str],
        seen_key: dict[PartitionSpec, Any],
    ) -> dict[PartitionSpec, str]:
        if not specs:
            return {}
        try:
            results = self.catalog.create(scheme, specs)
        except Exception:
            if self.cache is not None:
                self.cache.release([item_id(scheme, s) for s in specs])
            raise
        done = [s for s in specs if results[s] in (CREATED, EXISTS)]
        failed = [s for s in specs if results[s] not in (CREATED, EXISTS)]
        for spec in done:
            created = results[spec] == CREATED
            counts["PartitionsCreated" if created else "PartitionsAlreadyPresent"] += 1
            logger.info(
                "partition created" if created else "partition already present",
                table=str(scheme.table),
                values=list(spec.values),
                folder=spec.location,
            )
        if self.cache is not None:
            # Marked only now that Glue has answered: a cache entry always means "in Glue".
            try:
                self.cache.mark_present([item_id(scheme, s) for s in done], now)
            except Exception as exc:  # the partitions are in Glue; the claim simply expires
                logger.warning("cache not marked", table=str(scheme.table), error=str(exc))
            if failed:
                self.cache.release([item_id(scheme, s) for s in failed])
        for spec in done:
            self.seen.add(seen_key[spec])
        return results

    def _await_others(
        self,
        specs: list[PartitionSpec],
        scheme: Scheme,
        now: float,
        counts: Counter[str],
        seen_key: dict[PartitionSpec, Any],
    ) -> dict[PartitionSpec, str]:
        assert self.cache is not None
        ids = {s: item_id(scheme, s) for s in specs}
        pending = dict(ids)
        outcomes: dict[PartitionSpec, str] = {}
        for delay in _BUSY_WAITS:
            self._sleep(delay)
            now += delay
            try:
                states = self.cache.read(list(pending.values()), now)
            except TransientError:
                continue
            for spec, id_ in list(pending.items()):
                if states.get(id_) == PRESENT:
                    outcomes[spec] = CACHED
                    counts["CacheHits"] += 1
                    self.seen.add(seen_key[spec])
                    del pending[spec]
            if not pending:
                break
        for spec in pending:
            outcomes[spec] = "being created by another invocation; retry"
        return outcomes
