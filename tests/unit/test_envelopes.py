from __future__ import annotations

import json

import pytest
from helpers import BUCKET, event_names, load_event
from vpcflow_partitioner.envelopes import ObjectRef, unwrap
from vpcflow_partitioner.keys import parse_key

DAY29 = "AWSLogs/123456789012/vpcflowlogs/us-east-1/2022/08/29/"
DAY30 = "AWSLogs/123456789012/vpcflowlogs/us-east-1/2022/08/30/"


@pytest.mark.parametrize("name", event_names())
def test_every_sample_event_unwraps_to_parseable_keys(name: str) -> None:
    envelope = unwrap(load_event(name))
    refs = [ref for m in envelope.messages for ref in m.objects]
    assert all(m.malformed is None for m in envelope.messages)
    if name == "sqs_s3_test_event.json":
        assert refs == [] and envelope.messages[0].ignored == ("s3:TestEvent",)
        return
    assert refs and all(ref.bucket == BUCKET and parse_key(ref.key) is not None for ref in refs)


@pytest.mark.parametrize(
    ("name", "kind", "messages"),
    [
        ("s3_notification.json", "direct", 1),
        ("sns_s3.json", "direct", 1),
        ("eventbridge_object_created.json", "direct", 1),
        ("sqs_s3.json", "sqs", 2),
        ("sqs_sns_s3.json", "sqs", 1),
        ("sqs_sns_raw_s3.json", "sqs", 1),
        ("sqs_eventbridge.json", "sqs", 1),
        ("batch_operations_v1.json", "batch", 1),
        ("batch_operations_v2.json", "batch", 2),
    ],
)
def test_retry_units_per_envelope(name: str, kind: str, messages: int) -> None:
    envelope = unwrap(load_event(name))
    assert envelope.kind == kind
    assert len(envelope.messages) == messages


def test_s3_notification_keys_are_form_decoded_once() -> None:
    event = load_event("s3_notification_hive_hourly.json")
    raw = event["Records"][0]["s3"]["object"]["key"]
    assert "%3D" in raw
    ref = unwrap(event).messages[0].objects[0]
    assert "aws-account-id=123456789012/" in ref.key and "%" not in ref.key


def _s3_record(raw_key: str, name: str = "ObjectCreated:Put") -> dict:
    record = load_event("s3_notification.json")["Records"][0]
    record["eventName"] = name
    record["s3"]["object"]["key"] = raw_key
    return record


def test_plus_is_a_space_and_percent_2b_is_a_plus_in_notifications() -> None:
    event = {"Records": [_s3_record("a+b%2Bc%253D/" + DAY29 + "f.log.gz")]}
    assert unwrap(event).messages[0].objects[0].key == "a b+c%3D/" + DAY29 + "f.log.gz"


def test_eventbridge_keys_are_taken_raw() -> None:
    event = load_event("eventbridge_object_created.json")
    event["detail"]["object"]["key"] = "logs+2022/" + DAY29 + "x.log.gz"
    assert unwrap(event).messages[0].objects[0].key == "logs+2022/" + DAY29 + "x.log.gz"


def test_batch_operations_keys_are_decoded_by_powertools_once() -> None:
    event = load_event("batch_operations_v2.json")
    event["tasks"][0]["s3Key"] = "year%3D2022%2Bx/" + DAY30 + "f.log.gz"
    envelope = unwrap(event)
    assert envelope.messages[0].objects[0] == ObjectRef(BUCKET, "year=2022+x/" + DAY30 + "f.log.gz")
    assert envelope.batch_invocation["invocationSchemaVersion"] == "2.0"


def test_v1_bucket_comes_from_the_arn() -> None:
    envelope = unwrap(load_event("batch_operations_v1.json"))
    assert envelope.messages[0].objects[0].bucket == BUCKET


def test_non_created_notifications_are_ignored_not_malformed() -> None:
    event = {"Records": [_s3_record(DAY29 + "f.log.gz", "ObjectRemoved:Delete")]}
    message = unwrap(event).messages[0]
    assert message.objects == () and message.ignored == ("ObjectRemoved:Delete",)
    bridge = load_event("eventbridge_object_created.json")
    bridge["detail-type"] = "Object Deleted"
    assert unwrap(bridge).messages[0].ignored == ("Object Deleted",)


def test_malformed_sqs_bodies_are_isolated_per_message() -> None:
    event = load_event("sqs_s3.json")
    event["Records"][0]["body"] = "this is not json"
    event["Records"][1]["body"] = json.dumps({"hello": "world"})
    event["Records"].append(
        dict(
            event["Records"][1],
            messageId="ok",
            body=json.dumps({"Records": [_s3_record(DAY29 + "f.log.gz")]}),
        )
    )
    messages = unwrap(event).messages
    assert [m.malformed is not None for m in messages] == [True, True, False]
    assert messages[2].objects[0].key == DAY29 + "f.log.gz"


def test_sns_message_that_is_not_json_is_malformed() -> None:
    event = load_event("sqs_sns_s3.json")
    body = json.loads(event["Records"][0]["body"])
    body["Message"] = "{broken"
    event["Records"][0]["body"] = json.dumps(body)
    assert unwrap(event).messages[0].malformed == "SNS message is not JSON"


@pytest.mark.parametrize("event", [None, [], "text", {}, {"Records": "x"}, {"detail-type": "Object Created"}])
def test_anything_else_is_malformed_not_an_exception(event: object) -> None:
    envelope = unwrap(event)
    assert envelope.kind == "direct" and envelope.messages[0].malformed


def test_a_record_missing_documented_fields_is_malformed() -> None:
    record = _s3_record(DAY29 + "f.log.gz")
    del record["s3"]["object"]
    assert unwrap({"Records": [record]}).messages[0].malformed
    sqs = load_event("sqs_s3.json")
    sqs["Records"][0]["body"] = json.dumps({"Records": [{"eventSource": "aws:s3"}]})
    messages = unwrap(sqs).messages
    assert messages[0].malformed and messages[1].malformed is None


def test_lambda_on_failure_destination_records_carry_the_original_event() -> None:
    original = load_event("s3_notification.json")
    record = {
        "version": "1.0",
        "timestamp": "2022-08-29T09:06:00.000Z",
        "requestContext": {"requestId": "r", "condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "requestPayload": original,
        "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
    }
    from vpcflow_partitioner.envelopes import message_from_body

    message = message_from_body("dlq-1", json.dumps(record))
    assert [r.key for r in message.objects] == [r.key for r in unwrap(original).messages[0].objects]
