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


def test_an_eventbridge_key_percent_encoded_by_a_forwarder_is_decoded_once() -> None:
    """EventBridge keys are raw; one that only parses once percent-decoded is taken decoded,
    and a raw key that parses as it is stays as it is, '%' included."""
    hive = "AWSLogs/aws-account-id=123456789012/aws-service=vpcflowlogs/aws-region=us-east-1/"
    name = "123456789012_vpcflowlogs_us-east-1_fl-1_20220829T0905Z_a.log.gz"
    folders = f"{hive}year=2022/month=08/day=29/"
    event = load_event("eventbridge_object_created.json")
    event["detail"]["object"]["key"] = folders.replace("=", "%3D") + name
    assert unwrap(event).messages[0].objects[0].key == folders + name
    event["detail"]["object"]["key"] = "100%25/" + DAY29 + name  # parses raw: a literal "%25"
    assert unwrap(event).messages[0].objects[0].key == "100%25/" + DAY29 + name
    event["detail"]["object"]["key"] = "notes%3Dx.txt"  # not a flow log either way: as it is
    assert unwrap(event).messages[0].objects[0].key == "notes%3Dx.txt"


@pytest.mark.parametrize(
    "detail",
    [
        None,
        "text",
        {"bucket": {"name": "b"}},
        {"object": {"key": "k"}},
        {"bucket": {"name": 1}, "object": {"key": "k"}},
    ],
)
def test_an_eventbridge_event_without_bucket_or_key_is_malformed(detail: object) -> None:
    event = load_event("eventbridge_object_created.json")
    event["detail"] = detail
    message = unwrap(event).messages[0]
    assert message.malformed and message.objects == ()


def _sns(payload: object) -> dict:
    return {"Type": "Notification", "MessageId": "n", "Message": json.dumps(payload)}


def test_the_deepest_documented_chains_unwrap() -> None:
    """SQS -> SNS -> S3, and an on-failure destination record of an SNS-triggered invocation
    read back from its SQS queue: both carry the object."""
    from vpcflow_partitioner.envelopes import message_from_body

    s3_event = {"Records": [_s3_record(DAY29 + "f.log.gz")]}
    sns_record = {"EventSource": "aws:sns", "Sns": {"Message": json.dumps(s3_event)}}
    destination = {"requestContext": {"requestId": "r"}, "requestPayload": {"Records": [sns_record]}}
    for body in (_sns(s3_event), destination, _sns(destination)):
        message = message_from_body("m", json.dumps(body))
        assert message.malformed is None and [r.key for r in message.objects] == [DAY29 + "f.log.gz"]


@pytest.mark.parametrize("depth", [5, 6, 12])  # each level escapes the last: size doubles
def test_an_envelope_nested_deeper_than_any_aws_chain_is_malformed(depth: int) -> None:
    from vpcflow_partitioner.envelopes import message_from_body

    payload: object = {"Records": [_s3_record(DAY29 + "f.log.gz")]}
    for _ in range(depth):
        payload = _sns(payload)
    message = message_from_body("m", json.dumps(payload))
    assert message.malformed == "not an S3 event" and message.objects == ()


def test_four_sns_wrappings_are_still_read() -> None:
    from vpcflow_partitioner.envelopes import message_from_body

    payload: object = {"Records": [_s3_record(DAY29 + "f.log.gz")]}
    for _ in range(4):
        payload = _sns(payload)
    assert [r.key for r in message_from_body("m", json.dumps(payload)).objects] == [DAY29 + "f.log.gz"]


@pytest.mark.parametrize(
    ("task", "why"),
    [
        ({"s3Key": "k", "s3Bucket": "b"}, "task without taskId"),
        ({"taskId": "", "s3Key": "k", "s3Bucket": "b"}, "task without taskId"),
        ({"taskId": "t", "s3Key": "k"}, "task without s3Bucket"),
        (
            {"taskId": "t", "s3Key": "k", "s3BucketArn": "arn:aws:s3:::b/k"},
            "not an S3 bucket ARN: 'arn:aws:s3:::b/k'",
        ),
        ({"taskId": "t", "s3Bucket": "b"}, "task without s3Key"),
        ({"taskId": "t", "s3Bucket": "b", "s3Key": 7}, "task without s3Key"),
    ],
)
def test_a_batch_task_missing_a_field_is_malformed_alone(task: dict, why: str) -> None:
    good = {"taskId": "ok", "s3Bucket": BUCKET, "s3Key": DAY29 + "f.log.gz"}
    event = {"invocationSchemaVersion": "2.0", "invocationId": "i", "tasks": [task, good]}
    envelope = unwrap(event)
    assert envelope.kind == "batch"
    assert [m.malformed for m in envelope.messages] == [why, None]
    assert envelope.messages[1].objects == (ObjectRef(BUCKET, DAY29 + "f.log.gz"),)
    assert envelope.batch_invocation == {"invocationSchemaVersion": "2.0", "invocationId": "i"}


@pytest.mark.parametrize(
    ("arn", "bucket"),
    [
        ("arn:aws:s3:::b", "b"),
        ("arn:aws-cn:s3:::b", "b"),
        ("arn:aws:s3:us-east-1:123456789012:b", "b"),
        ("arn:aws:s3:::", None),
        ("arn:aws:s3:::b/k", None),
        ("arn:aws:s3:us-east-1:123456789012:accesspoint/ap", None),
        ("arn::s3:::b", None),
        ("arn:aws:sqs:::b", None),
        ("aws:s3:::b", None),
        ("arn:aws:s3:b", None),
        (7, None),
    ],
)
def test_bucket_arns_of_any_partition(arn: object, bucket: str | None) -> None:
    from vpcflow_partitioner.envelopes import parse_bucket_arn

    assert parse_bucket_arn(arn) == bucket


def test_an_s3_record_whose_key_is_not_a_string_is_malformed() -> None:
    record = _s3_record(DAY29 + "f.log.gz")
    record["s3"]["object"]["key"] = 12
    assert unwrap({"Records": [record]}).messages[0].malformed


def test_records_of_an_unknown_source_are_malformed() -> None:
    assert unwrap({"Records": [{"eventSource": "aws:kinesis"}]}).messages[0].malformed == (
        "unknown record source 'aws:kinesis'"
    )
    sqs = load_event("sqs_s3.json")
    sqs["Records"][0]["body"] = json.dumps({"Records": ["not a record"]})
    assert unwrap(sqs).messages[0].malformed == "unknown record source None"


def test_a_plus_alone_is_a_space_in_a_notification() -> None:
    event = {"Records": [_s3_record("vpc+a/" + DAY29 + "f.log.gz")]}
    assert unwrap(event).messages[0].objects[0].key == "vpc a/" + DAY29 + "f.log.gz"


def test_object_created_from_another_source_than_s3_is_not_an_event() -> None:
    event = load_event("eventbridge_object_created.json")
    event["source"] = "custom.uploader"
    message = unwrap(event).messages[0]
    assert message.malformed == "not an S3 event" and message.objects == ()


@pytest.mark.parametrize(
    ("detail", "why"),
    [
        (None, "EventBridge event without detail"),
        ({"bucket": {"name": "b"}}, "EventBridge event without bucket or key"),
        ({"bucket": "b", "object": {"key": "k"}}, "EventBridge event without bucket or key"),
        (
            {"bucket": {"name": 1}, "object": {"key": "k"}},
            "an EventBridge event whose key or bucket is not a string",
        ),
    ],
)
def test_why_an_eventbridge_event_is_malformed(detail: object, why: str) -> None:
    event = load_event("eventbridge_object_created.json")
    event["detail"] = detail
    assert unwrap(event).messages[0].malformed == why


def test_a_direct_sns_event_whose_message_is_not_json_is_malformed() -> None:
    event = load_event("sns_s3.json")
    event["Records"][0]["Sns"]["Message"] = "{broken"
    assert unwrap(event).messages[0].malformed == "SNS message is not JSON"


def test_a_batch_task_that_is_not_an_object_is_malformed_alone() -> None:
    event = {"invocationSchemaVersion": "2.0", "invocationId": "i", "tasks": ["x", None]}
    assert [m.malformed for m in unwrap(event).messages] == ["task without taskId"] * 2
    assert unwrap({"invocationSchemaVersion": "1.0", "tasks": "x"}).messages == ()
