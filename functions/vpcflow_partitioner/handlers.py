"""Lambda entry points. Thin: unwrap, one call into the pipeline, answer as the invoker expects.

Warm-container state (the settings, the table's scheme, the seen-set) lives in this module,
so that a container that already knows a partition makes no AWS call for it. The settings are
read once per container: Lambda starts new containers when the configuration changes.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from . import aws
from .config import SERVICE, Settings, tracing_enabled
from .envelopes import Envelope, unwrap
from .errors import TransientError
from .pipeline import Fleet, Partitioner, Report, merged
from .scheme import ConfigurationError

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="VpcFlowPartitioner", service=SERVICE)

_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def _traced(handler: _Handler) -> _Handler:
    """powertools' Tracer around the handler with TRACING=true (the `tracing` deploy param);
    without it the X-Ray SDK is never imported, which is most of a cold start's import time."""
    if not tracing_enabled():
        return handler
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE).capture_lambda_handler(capture_response=False)(handler)  # type: ignore[return-value]


@functools.cache
def _settings() -> Settings:
    return Settings.from_env()


@dataclass
class _CacheHits:
    """CacheHits not yet published: a warm container sees thousands of objects of partitions it
    knows, and a metrics document for each invocation of them would cost more than the work."""

    pending: int = 0
    published_at: float = 0.0


_cache_hits = _CacheHits()


@functools.cache
def _fleet(settings: Settings) -> Fleet:
    """A Partitioner per configured table (GLUE_TABLES, or the one GLUE_DATABASE.GLUE_TABLE)."""
    return Fleet.build(
        settings,
        glue=aws.client("glue", settings.endpoint_url, settings.region),
        dynamodb=aws.client("dynamodb", settings.endpoint_url, settings.region)
        if settings.cache_table
        else None,
    )


def _partitioner_for(table: str) -> Partitioner:
    """The Partitioner of a work item's table: one of the configured tables, as GLUE_TABLES
    writes it (or database.table)."""
    fleet = _fleet(_settings())
    try:
        return fleet.partitioner(table)
    except KeyError:
        names = ", ".join(p.name for p in fleet.partitioners)
        raise ConfigurationError(f"work item for table {table}: this function partitions {names}") from None


def reset() -> None:
    """Forget warm-container state and clients (a new container, for tests)."""
    _settings.cache_clear()
    _fleet.cache_clear()
    _cache_hits.pending, _cache_hits.published_at = 0, 0.0
    aws.reset()


def on_object_created(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Ensure the partitions of the objects in any supported S3 ObjectCreated envelope."""
    return _on_object_created(event, _context(context))


def on_schedule(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Sweep the last RECONCILE_DAYS days of the table's folders and create what is missing."""
    return _on_schedule(event, _context(context))


def on_backfill(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Run the backfill queue's work items (SQS); answer the records that failed."""
    return _on_backfill(event, _context(context))


@logger.inject_lambda_context(clear_state=True)
@_traced
def _on_object_created(event: dict[str, Any], context: Any) -> dict[str, Any]:
    envelope = unwrap(event)
    fleet = _fleet(_settings())
    now = time.time()
    try:
        report = fleet.run(envelope.messages, now=now)
    except ConfigurationError as exc:
        # Loud, every time: the records go back to their retry path and on to the DLQ.
        logger.error("configuration error", error=str(exc))
        _publish(Report(counts=Counter(RecordsFailed=len(envelope.messages))), now)
        if envelope.kind == "batch":
            return _batch_response(envelope, None, "PermanentFailure", str(exc))
        raise
    except TransientError as exc:
        if envelope.kind != "batch":
            raise  # the invoker's retry: SQS redelivers, S3 and EventBridge invoke again
        # "Amazon S3 batch operations retries the operation if the Lambda function returns a
        # TemporaryFailure response code" (Lambda guide, "Error handling and automatic retries").
        logger.warning("no table could be read; the tasks are retried", error=str(exc))
        _publish(Report(counts=Counter(RecordsFailed=len(envelope.messages))), now)
        return _batch_response(envelope, None, "TemporaryFailure", str(exc))
    _publish(report, now)
    if envelope.kind == "sqs":
        return _sqs_response(report)
    if envelope.kind == "batch":
        return _batch_response(envelope, report)
    if report.failed:
        raise TransientError("; ".join(r.detail for r in report.failed))
    return _summary(report)


@logger.inject_lambda_context(clear_state=True)
@_traced
def _on_schedule(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = _settings()
    now = time.time()
    from .sources import sweep_messages  # the walk: for the sweep only, not every cold start

    s3 = aws.client("s3", settings.endpoint_url, settings.region)
    failures: list[str] = []
    stopped: list[str] = []
    reports: list[Report] = []
    # Each table walks its own Location and creates its own partitions: one table that
    # cannot be read or walked does not stop the others' sweep.
    for partitioner in _fleet(settings).partitioners:
        try:
            scheme = partitioner.scheme(now)
            messages, truncated = sweep_messages(s3, scheme, days=settings.reconcile_days, now=now)
            # The sweep asks Glue, never the cache: it exists to repair what the cache missed.
            report = partitioner.run(messages, now=now, use_cache=False)
        except (TransientError, ConfigurationError) as exc:
            if len(_fleet(settings).partitioners) == 1:
                raise
            logger.error("table not swept", table=partitioner.name, error=str(exc))
            failures.append(f"{partitioner.name}: {exc}")
            continue
        reports.append(report)
        failures += [f"{partitioner.name}: {r.detail}" for r in report.failed]
        if truncated:
            stopped.append(scheme.location)
    report = merged(reports)
    _publish(report, now)
    if failures:
        raise TransientError("; ".join(failures))
    if stopped:
        # Loud, every run: a sweep that never finishes must not look like a healthy one.
        raise ConfigurationError(
            f"the sweep stopped at its list-call budget before seeing every folder under "
            f"{', '.join(stopped)}: set the table Location to the AWSLogs/ folder, or run "
            "`vpcflow-partitioner backfill`"
        )
    return _summary(report)


@logger.inject_lambda_context(clear_state=True)
@_traced
def _on_backfill(event: dict[str, Any], context: Any) -> dict[str, Any]:
    from .backfill import run_records  # the walk: for the backfill function only

    settings = _settings()
    now = time.time()
    outcome = run_records(
        event.get("Records") or [],
        _partitioner_for,
        aws.client("s3", settings.endpoint_url, settings.region),
        now,
    )
    _publish(Report(counts=Counter(outcome.counts)), now)
    # The partial batch response: SQS redelivers these, then moves them to the DLQ.
    return {"batchItemFailures": [{"itemIdentifier": i} for i in outcome.failed]}


def _publish(report: Report, now: float) -> None:
    """One EMF document on stdout for what happened, unless it was only cache hits: those are
    added to a later document, or published alone CACHE_HITS_METRICS_SECONDS after the last.
    The totals carry the `service` dimension alone (what the alarms read); with more than one
    table, each table's counts follow in a document of its own with (`service`, `table`)."""
    counts = {name: count for name, count in report.metrics().items() if count}
    hits = _cache_hits
    hits.pending += counts.pop("CacheHits", 0)
    # A new container publishes at once (published_at 0): a burst of short-lived containers
    # loses at most each one's last CACHE_HITS_METRICS_SECONDS of hits.
    every = _settings().cache_hits_metrics_seconds
    if not counts and (not hits.pending or now - hits.published_at < every):
        return
    if hits.pending:
        counts["CacheHits"] = hits.pending
    hits.pending, hits.published_at = 0, now
    for name, count in counts.items():
        metrics.add_metric(name, MetricUnit.Count, count)
    metrics.flush_metrics()
    if len(report.tables) < 2:
        return
    for table, part in report.tables.items():
        # Per table: what its partitions did and what failed in it (cache hits: totals only).
        per_table = {n: c for n, c in part.metrics().items() if c and n != "CacheHits"}
        if not per_table:
            continue
        metrics.add_dimension("table", table)
        for name, count in per_table.items():
            metrics.add_metric(name, MetricUnit.Count, count)
        metrics.flush_metrics()


def _summary(report: Report) -> dict[str, Any]:
    return {"messages": len(report.results), **report.metrics()}


def _sqs_response(report: Report) -> dict[str, Any]:
    # The partial batch response of an event source mapping with ReportBatchItemFailures:
    # {"batchItemFailures": [{"itemIdentifier": messageId}]} ("Handling errors for an SQS event
    # source", Lambda guide), also when every record failed: SQS redelivers each of them.
    # Written out rather than through powertools' BatchProcessor, which costs more per record
    # than the whole of our pipeline on a warm container.
    for result in report.failed:
        logger.warning("record failed", message_id=result.id, reason=result.detail)
    return {"batchItemFailures": [{"itemIdentifier": r.id} for r in report.failed]}


def _batch_response(
    envelope: Envelope, report: Report | None, failure: str = "", why: str = ""
) -> dict[str, Any]:
    """Each task's result from the report, or every task `failure` for `why` when there is none."""
    # AWS sends one task per invocation today; the schema allows a list, so answer every task.
    results = []
    for message in envelope.messages:
        if report is None:
            code, text = failure, why
        else:
            result = report.result(message.id)
            failure = "PermanentFailure" if result.permanent else "TemporaryFailure"
            code, text = ("Succeeded" if result.ok else failure), result.detail
        # The documented per-task result: taskId, resultCode, resultString.
        results.append({"taskId": message.id, "resultCode": code, "resultString": text})
    return {
        "invocationSchemaVersion": envelope.batch_invocation["invocationSchemaVersion"],
        "treatMissingKeysAs": "PermanentFailure",
        "invocationId": envelope.batch_invocation["invocationId"],
        "results": results,
    }


# What powertools' Logger reads from the Lambda context.
_CONTEXT_FIELDS = ("function_name", "memory_limit_in_mb", "invoked_function_arn", "aws_request_id")


class _LocalContext:
    """Stands in for the Lambda context (or fills its gaps) when a handler is called directly."""

    function_name = SERVICE
    memory_limit_in_mb = 0
    invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{SERVICE}"
    aws_request_id = "local"

    def __init__(self, given: Any = None) -> None:
        for name in _CONTEXT_FIELDS:
            value = getattr(given, name, None)
            if value is not None:
                setattr(self, name, value)
        self._given = given

    def get_remaining_time_in_millis(self) -> int:
        remaining = getattr(self._given, "get_remaining_time_in_millis", None)
        return int(remaining()) if callable(remaining) else 900_000


def _context(context: Any) -> Any:
    """The real Lambda context, or a stand-in when there is none or it lacks fields."""
    if context is not None and all(hasattr(context, name) for name in _CONTEXT_FIELDS):
        return context
    return _LocalContext(context)
