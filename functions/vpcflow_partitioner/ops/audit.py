"""`audit`: every way the catalog and the bucket disagree, what may be repaired, what may go.

Safety rules, each against a race or a blind spot seen in review:
- Glue is read before the walk begins: a partition the Lambda creates while the walk runs
  was not in that snapshot, so it can never be taken for an orphan.
- A partition is pruned only when a listing of its own stored Location (not the walk's
  idea of where it should be) finds no flow-log object; its cache entry goes with it, and
  the Location is listed once more after the delete: an object that arrived meanwhile
  brings the partition straight back.
- A walk that found no folder at all while the table has partitions proves nothing:
  prune refuses.
- A folder that maps to a partition another folder has is a collision: reported, never
  "fixed" by pointing the partition elsewhere while the other folder still holds data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from ..cache import item_id
from ..catalog import CREATED, EXISTS, MAX_SEGMENTS, Partition
from ..config import SERVICE
from ..envelopes import Message, ObjectRef
from ..errors import classify
from ..keys import parse_key
from ..pipeline import Partitioner
from ..scheme import (
    ConfigurationError,
    PartitionSpec,
    Scheme,
    descriptor_drift,
    descriptor_fingerprint,
    folder_key,
    same_folder,
    split_location,
)
from ..sources import DateRange, FolderWalk

logger = Logger(service=SERVICE, child=True)

_PROBE_KEYS = 100

Values = tuple[str, ...]


class PruneRefused(Exception):
    """Pruning now could delete partitions whose data exists: one line says why."""


@dataclass(frozen=True, slots=True)
class Collision:
    values: Values
    folders: tuple[str, ...]  # every folder that maps to these values
    catalog_location: str  # the one Glue has ("" when Glue has none)


@dataclass(frozen=True, slots=True)
class Relocation:
    values: Values
    location: str  # stored in Glue, and holding no flow-log object
    folder: str  # where the walk found the partition's objects
    parameters: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class DescriptorDrift:
    values: Values
    location: str
    fields: tuple[str, ...]
    parameters: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Unreachable:
    """A partition the walk did not find as a folder, whose Location holds flow logs (outside
    the table's Location, after a move?) or cannot be listed: never pruned, always reported."""

    values: Values
    location: str
    reason: str


@dataclass(frozen=True, slots=True)
class SharedLocation:
    """A partition whose Location is the folder of another partition (values spelled another
    way, by another tool): Athena reads those files twice."""

    values: Values
    location: str
    owner: Values  # the partition the walk maps that folder to


@dataclass(frozen=True, slots=True)
class Unrepresentable:
    folder: str
    reason: str


@dataclass
class Findings:
    """What one audit found, before any repair."""

    folders: int = 0
    partitions: int = 0  # in Glue, within the date range, when the audit began
    missing: dict[Values, tuple[PartitionSpec, Message]] = field(default_factory=dict)
    orphaned: list[Partition] = field(default_factory=list)
    wrong_location: list[Relocation] = field(default_factory=list)
    descriptor_drift: list[DescriptorDrift] = field(default_factory=list)
    collisions: list[Collision] = field(default_factory=list)
    unrepresentable: list[Unrepresentable] = field(default_factory=list)
    unreachable: list[Unreachable] = field(default_factory=list)
    shared_location: list[SharedLocation] = field(default_factory=list)
    list_calls: int = 0

    def counts(self) -> dict[str, int]:
        """Each kind of drift and how much of it."""
        return {
            "missing": len(self.missing),
            "orphaned": len(self.orphaned),
            "wrong_location": len(self.wrong_location),
            "descriptor_drift": len(self.descriptor_drift),
            "collisions": len(self.collisions),
            "unrepresentable": len(self.unrepresentable),
            "unreachable": len(self.unreachable),
            "shared_location": len(self.shared_location),
        }


@dataclass
class Repairs:
    """What --fix and --prune changed, and what they could not."""

    created: list[Values] = field(default_factory=list)
    relocated: list[Values] = field(default_factory=list)
    updated: list[Values] = field(default_factory=list)
    pruned: list[Values] = field(default_factory=list)
    restored: list[Values] = field(default_factory=list)  # pruned, then brought back by a new object
    failed: dict[Values, str] = field(default_factory=dict)


class Audit:
    """Compares one table's catalog with its bucket; repairs through the one pipeline."""

    def __init__(
        self, partitioner: Partitioner, s3: Any, dates: DateRange | None = None, segments: int = MAX_SEGMENTS
    ) -> None:
        self.partitioner = partitioner
        self._s3 = s3
        self._dates = dates or DateRange()
        self._segments = segments
        self.scheme: Scheme = partitioner.scheme()
        self.list_calls = 0

    def find(self, collect: Callable[[FolderWalk], list[Message]] | None = None) -> Findings:
        """Read Glue, then walk the bucket (`collect` drives the walk, e.g. with progress)."""
        scheme = self.scheme
        # Glue first: whatever appears after this moment is not a prune candidate.
        before = {
            p.values: p
            for p in self.partitioner.catalog.partitions(segments=self._segments)
            if self._in_range(p)
        }
        walk = FolderWalk(self._s3, scheme, self._dates)
        messages = collect(walk) if collect is not None else list(walk.messages())
        findings = Findings(partitions=len(before))
        found: dict[Values, dict[str, Message]] = {}
        for message in messages:
            for ref in message.objects:
                planned = self.partitioner.plan_object(scheme, ref.bucket, ref.key)
                if isinstance(planned, PartitionSpec):
                    found.setdefault(planned.values, {}).setdefault(planned.location, message)
                elif planned.outcome == "unpartitionable":
                    findings.unrepresentable.append(Unrepresentable(message.id, planned.reason))
        findings.folders = sum(len(folders) for folders in found.values())
        table_fingerprint = descriptor_fingerprint(scheme.storage_descriptor)
        stored_on = {folder_key(p.location): p.values for p in before.values()}
        for values, folders in sorted(found.items()):
            stored = before.get(values)
            other = stored_on.get(folder_key(next(iter(folders))))
            if stored is None and len(folders) == 1 and other is not None and other != values:
                # The folder has a partition of other values (spelled otherwise, or pointed at the
                # wrong day): creating ours would make a second one on it. A shared Location,
                # never "missing" (listed below when that partition's own folder is not walked).
                if other in found:
                    findings.shared_location.append(SharedLocation(other, next(iter(folders)), values))
                continue
            if len(folders) > 1:
                findings.collisions.append(
                    Collision(values, tuple(sorted(folders)), stored.location if stored else "")
                )
                if stored is None:  # --fix does what the Lambda does: the first folder gets it
                    location, message = sorted(folders.items())[0]
                    findings.missing[values] = (PartitionSpec(values, location), message)
            elif stored is None:
                location, message = next(iter(folders.items()))
                findings.missing[values] = (PartitionSpec(values, location), message)
            elif not same_folder(stored.location, next(iter(folders))):
                folder = next(iter(folders))
                holds = self._holds_flow_logs(stored.location)
                if holds is False:
                    findings.wrong_location.append(
                        Relocation(values, stored.location, folder, stored.parameters)
                    )
                elif holds is True:  # both the stored Location and the walked folder hold data
                    findings.collisions.append(Collision(values, (folder,), stored.location))
                else:
                    findings.unreachable.append(Unreachable(values, stored.location, str(holds)))
            else:
                drift = descriptor_drift(table_fingerprint, stored.fingerprint)
                if drift:
                    findings.descriptor_drift.append(
                        DescriptorDrift(values, stored.location, tuple(drift), stored.parameters)
                    )
        self._recheck_missing(findings)
        owners = {folder_key(folder): values for values, folders in found.items() for folder in folders}
        for values, partition in sorted(before.items()):
            if values in found:
                continue
            owner = owners.get(folder_key(partition.location))
            if owner is not None:
                findings.shared_location.append(SharedLocation(values, partition.location, owner))
                continue
            holds = self._holds_flow_logs(partition.location)
            if holds is False:
                findings.orphaned.append(partition)
            else:
                reason = (
                    "its Location holds flow logs the walk did not reach" if holds is True else str(holds)
                )
                findings.unreachable.append(Unreachable(values, partition.location, reason))
        findings.list_calls = walk.list_calls + self.list_calls
        return findings

    def fix(self, findings: Findings, now: float, repairs: Repairs) -> None:
        """Create the missing, point wrong Locations at their folder, give drifted partitions the
        table's StorageDescriptor. Collisions and folders the table cannot represent stay."""
        if findings.missing:
            report = self.partitioner.run(
                [message for _, message in findings.missing.values()], now=now, use_cache=False
            )
            collisions = report.collisions()
            for values, (spec, _) in list(findings.missing.items()):
                outcome = report.outcomes.get(spec, "not planned")
                if outcome in (CREATED, EXISTS):
                    repairs.created.append(values)
                elif spec in collisions:  # another folder got there first while we walked
                    del findings.missing[values]
                    findings.collisions.append(Collision(values, (spec.location,), collisions[spec]))
                else:
                    repairs.failed[values] = outcome
        inputs: list[dict[str, Any]] = []
        relocated = []
        for move in findings.wrong_location:
            # Checked again: the stored folder may have received objects since the walk.
            holds = self._holds_flow_logs(move.location)
            if holds is False:
                inputs.append(self._input(move.values, move.folder, move.parameters))
                relocated.append(move.values)
            elif holds is True:
                repairs.failed[move.values] = f"{move.location} now holds flow logs: a collision"
            else:
                repairs.failed[move.values] = f"not repointed: {holds}"
        for drift in findings.descriptor_drift:
            inputs.append(self._input(drift.values, drift.location, drift.parameters))
        if not inputs:
            return
        moving = [m for m in findings.wrong_location if m.values in relocated]
        failed: dict[Values, str] = {}
        try:
            failed = self.partitioner.catalog.update(inputs)
        finally:
            # The cache remembers each partition's folder: every partition that may have moved
            # (or moved and came back) is forgotten there, also after an error or Ctrl-C, so
            # the next object is checked against Glue, not a folder the cache remembers.
            self._forget([m.values for m in moving])
        repairs.failed.update(failed)
        repairs.updated += [d.values for d in findings.descriptor_drift if d.values not in failed]
        moved = [m for m in moving if m.values not in failed]
        # A Lambda may have acked an object of the old folder on the word of the partition
        # until the update landed: an old folder that holds logs (or cannot be listed to tell)
        # gets its partition back, the state before the repair.
        checks = {m.values: self._holds_flow_logs(m.location) for m in moved}
        back = [m for m in moved if checks[m.values] is not False]
        undone = (
            self.partitioner.catalog.update([self._input(m.values, m.location, m.parameters) for m in back])
            if back
            else {}
        )
        for move in back:
            why = (
                f"{move.location} got flow logs during the repoint"
                if checks[move.values] is True
                else f"{move.location} could not be listed after the repoint ({checks[move.values]})"
            )
            result = (
                f"could not point back ({undone[move.values]})" if move.values in undone else "pointed back"
            )
            repairs.failed[move.values] = f"{why}: {result}; run audit --fix again"
        repairs.relocated += [m.values for m in moved if m not in back]

    def _input(
        self, values: Values, location: str, parameters: tuple[tuple[str, str], ...]
    ) -> dict[str, Any]:
        # BatchUpdatePartition replaces the whole partition: keep its own Parameters.
        return self.scheme.partition_input(PartitionSpec(values, location)) | {"Parameters": dict(parameters)}

    def prune(self, findings: Findings, now: float, repairs: Repairs) -> None:
        """Delete the orphans (proven empty) and their cache entries; bring back any that a new
        object reached meanwhile."""
        if not findings.orphaned:
            return
        self.refuse_if_blind(findings)
        # Listed once more right before the delete: the prompt may have waited minutes.
        orphans = []
        for partition in findings.orphaned:
            holds = self._holds_flow_logs(partition.location)
            if holds is False:
                orphans.append(partition)
            elif holds is True:
                repairs.restored.append(partition.values)  # kept: an object arrived
            else:
                repairs.failed[partition.values] = f"kept, not checked again before the delete: {holds}"
        values = [p.values for p in orphans]
        # Cache first: killed after this line, the partition stays and the cache merely has to
        # ask Glue again. Deleted first, the cache would answer "present" for a partition that
        # is gone, for CACHE_TTL_DAYS. A Lambda that marks one present between the two calls
        # is undone by the second forget, and its object is found by the listing below.
        self._forget(values)
        failed: dict[Values, str] = {}
        try:
            failed = self.partitioner.catalog.delete(values)
        finally:
            # Also after an error or Ctrl-C halfway: no folder that holds flow logs is left
            # without its partition, and no cache entry speaks for a deleted one.
            repairs.failed.update(failed)
            self._finish_prune([p for p in orphans if p.values not in failed], now, repairs)

    def _finish_prune(self, deleted: list[Partition], now: float, repairs: Repairs) -> None:
        interrupted: BaseException | None = None
        try:
            self._forget([p.values for p in deleted])
        except Exception as exc:
            # The cache may still say "present" (a Lambda marked it between the two forgets):
            # with no partition that would hide every new object. Put the partitions back.
            created = self.partitioner.catalog.create(
                self.scheme, [PartitionSpec(p.values, p.location) for p in deleted]
            )
            for partition in deleted:
                back = created.get(PartitionSpec(partition.values, partition.location)) in (CREATED, EXISTS)
                repairs.failed[partition.values] = f"its cache entry could not be deleted ({exc}): " + (
                    "the partition was put back"
                    if back
                    else "and putting the partition back failed: run backfill"
                )
            return
        for partition in deleted:
            try:
                self._settle(partition, now, repairs)
            except BaseException as exc:  # Ctrl-C too: settle the rest first, then stop
                repairs.failed[partition.values] = f"deleted, but not checked again ({exc!r}): run audit"
                interrupted = interrupted or exc
        if interrupted is not None:
            raise interrupted

    def _settle(self, partition: Partition, now: float, repairs: Repairs) -> None:
        """After a delete: pruned if its Location is still empty, else put back."""
        try:
            key = self._first_flow_log(partition.location)
        except _CannotList as exc:
            repairs.failed[partition.values] = f"deleted, but its Location was not listed again: {exc}"
            return
        if key is None:
            logger.info("partition pruned", values=list(partition.values), folder=partition.location)
            repairs.pruned.append(partition.values)
            return
        # An object arrived between the check and the delete: the Lambda may have acked it on
        # the word of the partition just deleted. Put the partition back.
        bucket, _ = split_location(partition.location)
        report = self.partitioner.run(
            [Message(partition.location, (ObjectRef(bucket, key),))], now=now, use_cache=False
        )
        outcomes = set(report.outcomes.values())
        if outcomes and outcomes <= {CREATED, EXISTS}:
            repairs.restored.append(partition.values)
        else:
            repairs.failed[partition.values] = (
                f"deleted, then {key} arrived and the partition could not be put back "
                f"({'; '.join(r.detail for r in report.results)}): run backfill"
            )

    def refuse_if_blind(self, findings: Findings) -> None:
        """Raise PruneRefused when the walk saw nothing of a table that has partitions."""
        if findings.folders == 0 and not findings.unrepresentable and findings.partitions:
            raise PruneRefused(
                f"the walk found no flow-log folder under {self.scheme.location} but the table has "
                f"{findings.partitions} partitions: refusing to prune (check the table Location, the "
                "bucket and its permissions)"
            )

    def _recheck_missing(self, findings: Findings) -> None:
        # The Lambda may have created some while the walk ran: ask Glue once more.
        if not findings.missing:
            return
        have = self.partitioner.catalog.existing([spec for spec, _ in findings.missing.values()])
        for values, location in have.items():
            spec, _ = findings.missing.pop(values)
            if not same_folder(location, spec.location):
                findings.collisions.append(Collision(values, (spec.location,), location))

    def _forget(self, values: list[Values]) -> None:
        cache = self.partitioner.cache
        if cache is None or not values:
            return
        cache.forget([item_id(self.scheme, PartitionSpec(v, "")) for v in values])

    def _in_range(self, partition: Partition) -> bool:
        day = self.scheme.date_of(partition.values)
        return day is None or self._dates.admits((day.year, day.month, day.day))

    def _holds_flow_logs(self, location: str) -> bool | str:
        """Whether a flow-log object lies under `location`, or why that cannot be told (then
        nothing there is deleted or moved)."""
        try:
            return self._first_flow_log(location) is not None
        except _CannotList as exc:
            return str(exc)

    def _first_flow_log(self, location: str) -> str | None:
        """The first flow-log key under `location` (a listing of the Location itself)."""
        try:
            bucket, prefix = split_location(location)
        except ConfigurationError as exc:
            raise _CannotList(f"cannot list {location!r}: not an s3:// folder") from exc
        if not prefix:
            raise _CannotList(f"cannot list {location}: the Location is a whole bucket")
        token = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": _PROBE_KEYS}
            if token:
                kwargs["ContinuationToken"] = token
            self.list_calls += 1
            try:
                response = self._s3.list_objects_v2(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise _CannotList(f"cannot list: {classify(exc, f'S3 ListObjectsV2 {location}')}") from exc
            for item in response.get("Contents") or []:
                if parse_key(item["Key"]) is not None:
                    return str(item["Key"])
            token = response.get("NextContinuationToken")
            if not response.get("IsTruncated") or not token:
                return None


class _CannotList(Exception):
    """A Location that cannot be listed is neither "holds flow logs" nor "empty"."""


def summary(findings: Findings, repairs: Repairs | None = None) -> dict[str, Any]:
    """The JSON shape of an audit: what was found, what was repaired, what remains. A partition
    is its list of values (a value may hold "/": yyyy/MM/dd) and, where known, its Location."""

    def values(v: Values) -> list[str]:
        return list(v)

    repairs = repairs or Repairs()
    done = {*repairs.created, *repairs.relocated, *repairs.updated, *repairs.pruned}
    remaining = {
        "missing": sum(1 for v in findings.missing if v not in done),
        # A restored partition is no orphan: a new object reached it while it was pruned.
        "orphaned": sum(
            1 for p in findings.orphaned if p.values not in done and p.values not in repairs.restored
        ),
        "wrong_location": sum(1 for m in findings.wrong_location if m.values not in done),
        "descriptor_drift": sum(1 for d in findings.descriptor_drift if d.values not in done),
        "collisions": len(findings.collisions),
        "unrepresentable": len(findings.unrepresentable),
        "unreachable": len(findings.unreachable),
        "shared_location": len(findings.shared_location),
    }
    return {
        "folders": findings.folders,
        "partitions_in_glue": findings.partitions,
        "missing": [
            {"values": values(v), "location": spec.location} for v, (spec, _) in findings.missing.items()
        ],
        "orphaned": [{"values": values(p.values), "location": p.location} for p in findings.orphaned],
        "wrong_location": [
            {"values": values(m.values), "location": m.location, "folder": m.folder}
            for m in findings.wrong_location
        ],
        "descriptor_drift": [
            {"values": values(d.values), "location": d.location, "fields": list(d.fields)}
            for d in findings.descriptor_drift
        ],
        "collisions": [
            {"values": values(c.values), "folders": list(c.folders), "catalog_location": c.catalog_location}
            for c in findings.collisions
        ],
        "unrepresentable": [{"folder": u.folder, "reason": u.reason} for u in findings.unrepresentable],
        "unreachable": [
            {"values": values(k.values), "location": k.location, "reason": k.reason}
            for k in findings.unreachable
        ],
        "shared_location": [
            {"values": values(d.values), "location": d.location, "folder_of": values(d.owner)}
            for d in findings.shared_location
        ],
        "created": [values(v) for v in repairs.created],
        "relocated": [values(v) for v in repairs.relocated],
        "updated": [values(v) for v in repairs.updated],
        "pruned": [values(v) for v in repairs.pruned],
        "restored": [values(v) for v in repairs.restored],
        "failed": [{"values": values(v), "reason": why} for v, why in repairs.failed.items()],
        "remaining": remaining,
        "list_calls": findings.list_calls,
    }
