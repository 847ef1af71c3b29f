"""Pure unwrapping of every event shape that can carry an S3 ObjectCreated notification.

Each envelope becomes `Message`s: the unit that succeeds or fails together (an SQS
message, an S3 Batch Operations task, or the whole event for direct, SNS and EventBridge
invocations). Keys are decoded exactly once, here, by the rule of their source:

- S3 notifications (direct, via SQS, via SNS) carry form-URL-encoded keys
  ("Note that the object keyname value is URL encoded", S3 event message structure):
  `=` arrives as `%3D`, a space as `+`.
- EventBridge "Object Created" events carry the key as stored (not documented as
  encoded; real events show raw `=`), so the raw field is used as it is.
- S3 Batch Operations tasks carry URL-encoded keys, decoded here as powertools' `s3_key` does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, unquote_plus

from .keys import parse_key

Kind = Literal["sqs", "batch", "direct"]

# SQS -> SNS -> S3 is the deepest documented chain; anything deeper is not an event.
_MAX_DEPTH = 4


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """A created object: bucket and decoded key."""

    bucket: str
    key: str


@dataclass(frozen=True, slots=True)
class Message:
    """What one retryable unit carries."""

    id: str
    objects: tuple[ObjectRef, ...] = ()
    ignored: tuple[str, ...] = ()  # reasons for notifications that are not ObjectCreated
    malformed: str | None = None  # why the body is not an event, if it is not


@dataclass(frozen=True, slots=True)
class Envelope:
    """An invocation's messages and how the invoker expects an answer."""

    kind: Kind
    messages: tuple[Message, ...]
    batch_invocation: dict[str, Any] = field(default_factory=dict)


class _Malformed(Exception):
    pass


def unwrap(event: Any) -> Envelope:
    """Split any supported invocation event into messages of decoded object refs."""
    if isinstance(event, dict):
        records = event.get("Records")
        if isinstance(records, list) and records and _source(records[0]) == "aws:sqs":
            # The documented fields, read as dicts: this runs for every record, and powertools'
            # data-class wrappers cost about as much again as the rest of the parsing.
            return Envelope(
                "sqs", tuple(message_from_body(r.get("messageId", ""), r.get("body", "")) for r in records)
            )
        if "invocationSchemaVersion" in event and "tasks" in event:
            return _batch(event)
    return Envelope("direct", (_message("event", event),))


def _source(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    return record.get("eventSource") or record.get("EventSource")


def message_from_body(message_id: str, body: str) -> Message:
    """One message from an SQS body (a DLQ being drained, a saved message)."""
    try:
        payload = json.loads(body)
    except (TypeError, ValueError):
        return Message(message_id, malformed="SQS body is not JSON")
    return _message(message_id, payload)


def _message(message_id: str, payload: Any) -> Message:
    objects: list[ObjectRef] = []
    ignored: list[str] = []
    try:
        _collect(payload, objects, ignored, depth=0)
    except _Malformed as exc:
        return Message(message_id, malformed=str(exc))
    except (KeyError, TypeError, AttributeError) as exc:  # a record missing a documented field
        return Message(message_id, malformed=f"not an S3 event: missing {exc}")
    return Message(message_id, tuple(objects), tuple(ignored))


def _collect(payload: Any, objects: list[ObjectRef], ignored: list[str], depth: int) -> None:
    if depth > _MAX_DEPTH or not isinstance(payload, dict):
        raise _Malformed("not an S3 event")
    if payload.get("Event") == "s3:TestEvent":
        ignored.append("s3:TestEvent")
        return
    records = payload.get("Records")
    if isinstance(records, list):
        for record in records:
            _collect_record(record, objects, ignored, depth)
        return
    if payload.get("Type") == "Notification" and isinstance(payload.get("Message"), str):
        # SNS -> SQS without raw message delivery: the SNS envelope is the body.
        _collect(_loads(payload["Message"], "SNS message"), objects, ignored, depth + 1)
        return
    if isinstance(payload.get("requestPayload"), dict) and "requestContext" in payload:
        # A Lambda on-failure destination record: the original event is the payload.
        _collect(payload["requestPayload"], objects, ignored, depth + 1)
        return
    if payload.get("source") == "aws.s3" and "detail-type" in payload:
        _collect_eventbridge(payload, objects, ignored)
        return
    raise _Malformed("not an S3 event")


def _collect_record(record: Any, objects: list[ObjectRef], ignored: list[str], depth: int) -> None:
    source = _source(record)
    if source == "aws:s3":
        event_name = str(record["eventName"])
        if not event_name.startswith("ObjectCreated:"):
            ignored.append(event_name)
            return
        s3 = record["s3"]
        key, bucket = s3["object"]["key"], s3["bucket"]["name"]  # the key still form-encoded
        if not isinstance(key, str) or not isinstance(bucket, str):
            raise _Malformed("an S3 record whose key or bucket is not a string")
        if "%" in key or "+" in key:  # decode once, here; flow-log keys seldom need it
            key = unquote_plus(key)
        objects.append(ObjectRef(bucket, key))
    elif source == "aws:sns":
        _collect(_loads(record["Sns"]["Message"], "SNS message"), objects, ignored, depth + 1)
    else:
        raise _Malformed(f"unknown record source {source!r}")


def _collect_eventbridge(event: dict[str, Any], objects: list[ObjectRef], ignored: list[str]) -> None:
    if event["detail-type"] != "Object Created":
        ignored.append(str(event["detail-type"]))
        return
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise _Malformed("EventBridge event without detail")
    try:
        bucket = detail["bucket"]["name"]
        key = detail["object"]["key"]
    except (KeyError, TypeError) as exc:
        raise _Malformed("EventBridge event without bucket or key") from exc
    if not isinstance(key, str) or not isinstance(bucket, str):
        raise _Malformed("an EventBridge event whose key or bucket is not a string")
    # Raw, as stored. powertools' S3EventBridgeNotificationObject.key would unquote_plus it
    # and turn a literal "+" into a space. Only a key that does not parse raw but does once
    # percent-decoded is taken decoded (flow-log names never contain "%").
    if parse_key(key) is None and "%" in key and parse_key(unquote(key)) is not None:
        key = unquote(key)
    objects.append(ObjectRef(bucket, key))


def _loads(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise _Malformed(f"{what} is not JSON") from exc


def _batch(event: dict[str, Any]) -> Envelope:
    # Read as dicts (the documented schema 1.0 and 2.0 fields): powertools' data classes would
    # import all of its event classes, a large part of a cold start.
    messages = []
    tasks = event.get("tasks")
    for task in tasks if isinstance(tasks, list) else []:
        task_id = task.get("taskId") if isinstance(task, dict) else None
        if not isinstance(task_id, str) or not task_id:
            messages.append(Message("", malformed="task without taskId"))
            continue
        arn = task.get("s3BucketArn")
        # Not powertools' s3_bucket: it splits on ":::" and so returns the whole ARN when
        # the ARN carries a region and account. Schema 2.0 names the bucket in s3Bucket.
        bucket = parse_bucket_arn(arn) if arn is not None else task.get("s3Bucket")
        if not isinstance(bucket, str) or not bucket:
            why = f"not an S3 bucket ARN: {arn!r}" if arn is not None else "task without s3Bucket"
            messages.append(Message(task_id, malformed=why))
            continue
        raw_key = task.get("s3Key")
        if not isinstance(raw_key, str):
            messages.append(Message(task_id, malformed="task without s3Key"))
            continue
        messages.append(Message(task_id, (ObjectRef(bucket, unquote_plus(raw_key)),)))  # URL-encoded
    return Envelope(
        "batch",
        tuple(messages),
        batch_invocation={
            "invocationSchemaVersion": str(event.get("invocationSchemaVersion", "")),
            "invocationId": str(event.get("invocationId", "")),
        },
    )


def parse_bucket_arn(arn: Any) -> str | None:
    """The bucket an S3 bucket ARN names, in any partition; None for any other value."""
    # arn:partition:service:region:account-id:resource ("Identify AWS resources with ARNs").
    # S3 bucket ARNs usually leave region and account empty, but a filled-in form exists.
    if not isinstance(arn, str):
        return None
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or not parts[1] or parts[2] != "s3":
        return None
    bucket = parts[5]
    # An object ("bucket/key"), an access point ("accesspoint/name") or nothing: not a bucket.
    if not bucket or "/" in bucket or ":" in bucket:
        return None
    return bucket
