"""Lambda entry points. Thin: unwrap, one call into the pipeline, answer as the invoker expects.

Warm-container state (the table's scheme and the seen-set) lives in this module, keyed by
the settings, so that a container that already knows a partition makes no AWS call for it.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.s3_batch_operation_event import (
    S3BatchOperationResponseRecord,
)

from . import aws
from .config import SERVICE, Settings
from .envelopes import Envelope, unwrap
from .errors import TransientError
from .pipeline import Partitioner, Report
from .scheme import ConfigurationError
from .sources import sweep_messages

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="VpcFlowPartitioner", service=SERVICE)
tracer = Tracer(service=SERVICE)


@functools.cache
def _partitioner(settings: Settings) -> Partitioner:
    return Partitioner(
        settings,
        glue=aws.client("glue", settings.endpoint_url, settings.region),
        dynamodb=aws.client("dynamodb", settings.endpoint_url, settings.region)
        if settings.cache_table
        else None,
    )


def reset() -> None:
    """Forget warm-container state and clients (a new container, for tests)."""
    _partitioner.cache_clear()
    aws.reset()


def on_object_created(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Ensure the partitions of the objects in any supported S3 ObjectCreated envelope."""
    return _on_object_created(event, _context(context))


def on_schedule(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Sweep the last RECONCILE_DAYS days of the table's folders and create what is missing."""
    return _on_schedule(event, _context(context))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def _on_object_created(event: dict[str, Any], context: Any) -> dict[str, Any]:
    envelope = unwrap(event)
    partitioner = _partitioner(Settings.from_env())
    try:
        report = partitioner.run(envelope.messages, now=time.time())
    except ConfigurationError as exc:
        # Loud, every time: the records go back to their retry path and on to the DLQ.
        logger.error("configuration error", error=str(exc))
        metrics.add_metric("RecordsFailed", MetricUnit.Count, len(envelope.messages))
        if envelope.kind == "batch":
            return _batch_response(envelope, None, permanent=str(exc))
        raise
    _publish(report)
    if envelope.kind == "sqs":
        return _sqs_response(event, report, context)
    if envelope.kind == "batch":
        return _batch_response(envelope, report)
    if report.failed:
        raise TransientError("; ".join(r.detail for r in report.failed))
    return _summary(report)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def _on_schedule(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    partitioner = _partitioner(settings)
    now = time.time()
    scheme = partitioner.scheme(now)
    messages, truncated = sweep_messages(
        aws.client("s3", settings.endpoint_url, settings.region),
        scheme,
        days=settings.reconcile_days,
        now=now,
    )
    # The sweep asks Glue, never the cache: it exists to repair what the cache missed.
    report = partitioner.run(messages, now=now, use_cache=False)
    _publish(report)
    if report.failed:
        raise TransientError("; ".join(r.detail for r in report.failed))
    if truncated:
        # Loud, every run: a sweep that never finishes must not look like a healthy one.
        raise ConfigurationError(
            f"the sweep stopped at its list-call budget before seeing every folder under "
            f"{scheme.location}: set the table Location to the AWSLogs/ folder, or run "
            "`vpcflow-partitioner backfill`"
        )
    return _summary(report)


def _publish(report: Report) -> None:
    for name, count in report.metrics().items():
        metrics.add_metric(name, MetricUnit.Count, count)


def _summary(report: Report) -> dict[str, Any]:
    return {"messages": len(report.results), **report.metrics()}


def _sqs_response(event: dict[str, Any], report: Report, context: Any) -> dict[str, Any]:
    failed = {r.id: r.detail for r in report.failed}

    def check(record: Any) -> None:
        if record.message_id in failed:
            raise TransientError(failed[record.message_id])

    # Return the partial response even when every record failed: SQS redelivers each.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return dict(
        process_partial_response(event=event, record_handler=check, processor=processor, context=context)
    )


def _batch_response(envelope: Envelope, report: Report | None, permanent: str = "") -> dict[str, Any]:
    # AWS sends one task per invocation today and powertools' S3BatchOperationResponse
    # insists on exactly one result; the schema allows a list, so answer every task.
    results = []
    for message in envelope.messages:
        if report is None:
            code, text = "PermanentFailure", permanent
        else:
            result = report.result(message.id)
            code, text = ("Succeeded" if result.ok else "TemporaryFailure"), result.detail
        results.append(S3BatchOperationResponseRecord(message.id, code, text).asdict())  # type: ignore[arg-type]
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
