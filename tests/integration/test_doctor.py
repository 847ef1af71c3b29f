"""`doctor` against a deployment built on moto: healthy says ok everywhere, each broken link is named.

moto accepts more than AWS does (it stores overlapping notification rules, never validates a
queue policy, has no TestEventPattern and no IsRegisteredWithLakeFormation): where doctor asks
AWS to decide, these tests answer as AWS documents it, and assert what doctor concludes.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from helpers import ACCOUNT, BUCKET, DATABASE, TABLE, answer, change_table, inject_error
from moto import mock_aws
from moto.events.models import EventPattern
from moto.s3.models import s3_backends
from moto.sqs.models import sqs_backends
from vpcflow_partitioner import aws
from vpcflow_partitioner.catalog import Catalog
from vpcflow_partitioner.formats import DEFAULT_FIELDS, HIVE, MULTI_ACCOUNT, TEXT, TableSpec, parse_format
from vpcflow_partitioner.keys import parse_key
from vpcflow_partitioner.ops import doctor
from vpcflow_partitioner.ops.bootstrap import apply_init, plan_init
from vpcflow_partitioner.ops.cli import main
from vpcflow_partitioner.ops.routing import event_pattern
from vpcflow_partitioner.ops.synthetic import flow_log_file, object_key
from vpcflow_partitioner.scheme import PartitionSpec, Scheme
from vpcflow_partitioner.sources import DateRange, FolderWalk

REGION = "us-east-1"
ACCOUNTS = ("111122223333", "444455556666")
FUNCTION = "vpcflow-partitioner-test-on-object-created"
SWEEP = "vpcflow-partitioner-test-on-schedule"
CUSTOM_FORMAT = (
    "${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr} ${start} ${end} ${action} ${vpc-id}"
)


def client(service: str) -> Any:
    return aws.client(service, "", REGION)


@dataclass
class Deployment:
    """What `deploy` built, by name, as a stack's Outputs would give it."""

    trigger: str
    queue_url: str = ""
    queue_arn: str = ""
    dlq_url: str = ""
    dlq_arn: str = ""
    rule_name: str = ""
    function_arn: str = ""
    role_arn: str = ""
    mapping: str = ""
    alarm_topic: str = ""
    keys: list[str] = field(default_factory=list)
    hive: bool = False

    def args(self, *extra: str) -> list[str]:
        """The doctor command line that names all of it explicitly."""
        out = ["doctor", "--database", DATABASE, "--table", TABLE, "--dlq-url", self.dlq_url]
        if self.trigger == "sqs":
            out += ["--queue-url", self.queue_url]
        elif self.trigger == "eventbridge":
            out += ["--eventbridge", "--queue-url", self.queue_url, "--rule", self.rule_name]
        out += ["--function", FUNCTION]
        return [*out, *extra]


@pytest.fixture
def env(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("GLUE_DATABASE", raising=False)
    monkeypatch.delenv("GLUE_TABLE", raising=False)
    # Objects written a moment ago are "in flight" for five minutes; these tests look later.
    monkeypatch.setattr(doctor, "IN_FLIGHT_SECONDS", 0)
    aws.reset()
    # A message reaching the events queue makes moto run the function: without Docker.
    with mock_aws(config={"lambda": {"use_docker": False}}):
        answer_test_event_pattern()
        report_eventbridge_configuration()
        yield
    aws.reset()


def answer_test_event_pattern() -> None:
    """moto has no TestEventPattern; answer it with moto's own rule matcher, as AWS would."""

    def test(request: dict[str, Any]) -> dict[str, Any]:
        pattern = json.loads(request["EventPattern"])
        return {"Result": EventPattern(None, pattern).matches_event(json.loads(request["Event"]))}

    answer(client("events"), "TestEventPattern", test)


def report_eventbridge_configuration() -> None:
    """moto keeps a bucket's EventBridgeConfiguration but leaves it out of
    GetBucketNotificationConfiguration; AWS returns it (empty) while the switch is on."""

    def add(parsed: dict[str, Any], **_: Any) -> None:
        bucket = s3_backends[ACCOUNT]["aws"].buckets.get(BUCKET)
        config = bucket.notification_configuration if bucket is not None else None
        if config is not None and config.event_bridge is not None:
            parsed["EventBridgeConfiguration"] = {}

    client("s3").meta.events.register("after-call.s3.GetBucketNotificationConfiguration", add)


def function_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return None\n")
    return buffer.getvalue()


def deploy(
    trigger: str = "sqs",
    *,
    hive: bool = False,
    partitions: bool = True,
    queue_kms: str = "",
    with_notification: bool = True,
    mixed_format_account: str = "",
) -> Deployment:
    """A healthy deployment: bucket, queue + DLQ, function, mapping, table, fresh flow logs and
    their partitions, the notification for `trigger` written last (moto would deliver it)."""
    s3, sqs, lam, iam, events = client("s3"), client("sqs"), client("lambda"), client("iam"), client("events")
    d = Deployment(trigger, hive=hive)
    s3.create_bucket(Bucket=BUCKET)
    d.dlq_url = sqs.create_queue(QueueName="vpcflow-partitioner-test-dlq")["QueueUrl"]
    d.dlq_arn = arn_of(d.dlq_url)
    d.role_arn = iam.create_role(RoleName="partitioner", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    d.function_arn = lam.create_function(
        FunctionName=FUNCTION,
        Runtime="python3.12",
        Role=d.role_arn,
        Handler="handler.handler",
        Code={"ZipFile": function_zip()},
        Timeout=60,
        Environment={"Variables": {"GLUE_DATABASE": DATABASE, "GLUE_TABLE": TABLE, "SOURCE_BUCKETS": BUCKET}},
    )["FunctionArn"]
    if trigger in ("sqs", "eventbridge"):
        attributes = {
            "VisibilityTimeout": "360",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": d.dlq_arn, "maxReceiveCount": "5"}),
        }
        if queue_kms:
            attributes["KmsMasterKeyId"] = queue_kms
        else:
            attributes["SqsManagedSseEnabled"] = "true"  # as the stack does
        d.queue_url = sqs.create_queue(QueueName="vpcflow-partitioner-test-events", Attributes=attributes)[
            "QueueUrl"
        ]
        d.queue_arn = arn_of(d.queue_url)
        if trigger == "eventbridge":
            d.rule_name = "vpcflow-partitioner-test-object-created"
            rule_arn = events.put_rule(
                Name=d.rule_name,
                EventPattern=json.dumps(event_pattern(BUCKET, "AWSLogs/")),  # the stack's own
            )["RuleArn"]
            events.put_targets(Rule=d.rule_name, Targets=[{"Id": "events-queue", "Arn": d.queue_arn}])
            set_queue_policy(d, eventbridge_statement(d.queue_arn, rule_arn))
        else:
            set_queue_policy(d, s3_statement(d.queue_arn))
    else:
        lam.add_permission(
            FunctionName=FUNCTION,
            StatementId="s3-object-created",
            Action="lambda:InvokeFunction",
            Principal="s3.amazonaws.com",
            SourceArn=f"arn:aws:s3:::{BUCKET}",
            SourceAccount=ACCOUNT,
        )
        lam.put_function_event_invoke_config(
            FunctionName=FUNCTION, DestinationConfig={"OnFailure": {"Destination": d.dlq_arn}}
        )
    create_table(hive=hive)
    d.keys = upload(hive=hive, mixed_format_account=mixed_format_account)
    if partitions:
        create_partitions(d.keys)
    if with_notification:
        write_notification(d)
    if d.queue_url:
        # Last, on an empty queue: moto would run the function (in Docker) for any message.
        sqs.purge_queue(QueueUrl=d.queue_url)
        d.mapping = lam.create_event_source_mapping(
            EventSourceArn=d.queue_arn,
            FunctionName=FUNCTION,
            BatchSize=10,
            FunctionResponseTypes=["ReportBatchItemFailures"],
        )["UUID"]
    return d


def arn_of(url: str) -> str:
    return str(
        client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
    )


def s3_statement(queue_arn: str, bucket: str = BUCKET) -> dict[str, Any]:
    return {
        "Sid": "S3SendsObjectCreated",
        "Effect": "Allow",
        "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": {
            "ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"},
            "StringEquals": {"aws:SourceAccount": ACCOUNT},
        },
    }


def eventbridge_statement(queue_arn: str, rule_arn: str) -> dict[str, Any]:
    return {
        "Sid": "EventBridgeSendsObjectCreated",
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
    }


# The stack's queues refuse plain HTTP; a service delivering over TLS is not refused.
TLS_ONLY = {
    "Sid": "DenyWithoutTLS",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "sqs:*",
    "Resource": "*",
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}


def set_queue_policy(d: Deployment, *statements: dict[str, Any]) -> None:
    policy = json.dumps({"Version": "2012-10-17", "Statement": [*statements, TLS_ONLY]})
    client("sqs").set_queue_attributes(QueueUrl=d.queue_url, Attributes={"Policy": policy})


def create_table(hive: bool = False, location: str = f"s3://{BUCKET}/AWSLogs/") -> None:
    spec = TableSpec(DATABASE, TABLE, location, DEFAULT_FIELDS, TEXT, HIVE if hive else MULTI_ACCOUNT, False)
    glue = client("glue")
    apply_init(glue, spec, plan_init(glue, spec))


def upload(hive: bool = False, mixed_format_account: str = "") -> list[str]:
    """Two deliveries per account in the last hour, with AWS's default header line; a second
    flow log with another LogFormat in `mixed_format_account`'s folder."""
    now = datetime.now(UTC)
    keys = []
    for account in ACCOUNTS:
        for minutes in (40, 20):
            moment = now - timedelta(minutes=minutes)
            key = object_key(account, REGION, moment, hive=hive)
            client("s3").put_object(Bucket=BUCKET, Key=key, Body=flow_log_file(account, moment))
            keys.append(key)
        if account == mixed_format_account:
            moment = now - timedelta(minutes=10)
            key = object_key(account, REGION, moment, hive=hive, flow_log_id="fl-0fedcba9876543210")
            body = flow_log_file(account, moment, fields=parse_format(CUSTOM_FORMAT))
            client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)
            keys.append(key)
    return keys


def scheme() -> Scheme:
    return Scheme.from_table(client("glue").get_table(DatabaseName=DATABASE, Name=TABLE)["Table"])


def create_partitions(keys: list[str]) -> None:
    table = scheme()
    specs = set()
    for key in keys:
        obj = parse_key(key)
        assert obj is not None
        planned = table.plan(BUCKET, obj)
        assert isinstance(planned, PartitionSpec)
        specs.add(planned)
    outcomes = Catalog(client("glue"), table.table).create(table, sorted(specs, key=lambda s: s.values))
    assert set(outcomes.values()) == {"created"}


def write_notification(d: Deployment, rules: list[dict[str, Any]] | None = None, **extra: Any) -> None:
    config: dict[str, Any] = dict(extra)
    if d.trigger == "eventbridge":
        config.setdefault("EventBridgeConfiguration", {})
    elif rules is not None:
        config["QueueConfigurations" if d.trigger == "sqs" else "LambdaFunctionConfigurations"] = rules
    elif d.trigger == "sqs":
        config["QueueConfigurations"] = [
            queue_rule(d.queue_arn, suffix) for suffix in (".log.gz", ".log.parquet")
        ]
    else:
        config["LambdaFunctionConfigurations"] = [
            {
                "Id": f"vpcflow-partitioner{suffix.replace('.', '-')}",
                "LambdaFunctionArn": d.function_arn,
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {
                    "Key": {
                        "FilterRules": [
                            {"Name": "prefix", "Value": "AWSLogs/"},
                            {"Name": "suffix", "Value": suffix},
                        ]
                    }
                },
            }
            for suffix in (".log.gz", ".log.parquet")
        ]
    client("s3").put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration=config)


def queue_rule(
    queue_arn: str, suffix: str = ".log.gz", prefix: str = "AWSLogs/", rule_id: str = ""
) -> dict[str, Any]:
    filters = [{"Name": "prefix", "Value": prefix}] + (
        [{"Name": "suffix", "Value": suffix}] if suffix else []
    )
    return {
        "Id": rule_id or f"vpcflow-partitioner{suffix.replace('.', '-')}",
        "QueueArn": queue_arn,
        "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": filters}},
    }


def run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, dict[str, dict[str, str]]]:
    """Run doctor with --output json: the exit code and each check's finding by name."""
    code = main([*args, "--output", "json"])
    captured = capsys.readouterr()
    assert captured.out, captured.err
    findings = json.loads(captured.out)
    assert [set(f) for f in findings] == [{"check", "state", "detail", "fix"}] * len(findings)
    by_check = {f["check"]: f for f in findings}
    assert len(by_check) == len(findings), "one line per check"
    return code, by_check


def quoted_json(fix: str) -> Any:
    """The JSON document a fix passes in single quotes (the last one)."""
    match = re.search(r"'(\{.*\})'", fix)
    assert match is not None, fix
    return json.loads(match.group(1))


def only_failure(findings: dict[str, dict[str, str]], check: str) -> dict[str, str]:
    """The one failing check, which must have a fix."""
    failing = {name: f for name, f in findings.items() if f["state"] == "fail"}
    assert set(failing) == {check}, failing
    assert failing[check]["fix"], failing[check]
    return failing[check]


# ---------------------------------------------------------------- healthy


def test_a_healthy_sqs_deployment_is_all_ok(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy()
    code, findings = run(capsys, d.args())
    assert {name: f["state"] for name, f in findings.items()} == {
        "table": "ok",
        "notification": "ok",
        "queue policy": "ok",
        "queue encryption": "ok",
        "queue": "ok",
        "backlog": "ok",
        "event source mapping": "ok",
        "function": "ok",
        "dlq": "ok",
        "lake formation": "ok",
        "partition index": "ok",
        "partition quota": "ok",
        "freshness": "ok",
        "columns": "ok",
    }
    assert code == 0
    assert "2 folders written in the last 2 hours (4 objects)" in findings["freshness"]["detail"]
    assert "4 files of 2 fresh folders" in findings["columns"]["detail"]


def test_table_output_is_one_line_per_check_and_a_summary(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deploy()
    client("lambda").update_event_source_mapping(UUID=d.mapping, Enabled=False)
    assert main(d.args()) == 3
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 15  # 14 checks and the summary
    failing = [line for line in lines if line.startswith("FAIL")]
    assert len(failing) == 1 and "event source mapping" in failing[0]
    assert f"fix: aws lambda update-event-source-mapping --uuid {d.mapping} --enabled" in failing[0]
    assert lines[-1] == f"doctor {DATABASE}.{TABLE}: 13 ok, 0 warn, 1 fail, 0 error"


def test_the_function_and_dlq_are_found_from_the_queue(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy()
    code, findings = run(
        capsys, ["doctor", "--database", DATABASE, "--table", TABLE, "--queue-url", d.queue_url]
    )
    assert code == 0, findings
    assert FUNCTION in findings["event source mapping"]["detail"]
    assert findings["dlq"]["detail"] == "vpcflow-partitioner-test-dlq is empty"


# ---------------------------------------------------------------- the table


def test_a_table_outside_the_bucket_fails(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy()
    change_table(client("glue"), DATABASE, TABLE, {"Location": "s3://another-bucket/AWSLogs/"})
    code, findings = run(capsys, d.args("--bucket", BUCKET, "--prefix", "AWSLogs/"))
    assert code == 3
    failure = findings["table"]
    assert failure["state"] == "fail"
    assert "s3://another-bucket/AWSLogs/, outside s3://example-flow-logs/AWSLogs/" in failure["detail"]
    assert "SET LOCATION 's3://example-flow-logs/AWSLogs/'" in failure["fix"]


def test_a_missing_table_fails_and_what_needs_it_is_not_checked(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deploy()
    client("glue").delete_table(DatabaseName=DATABASE, Name=TABLE)
    code, findings = run(capsys, d.args())
    assert code == 3
    assert findings["table"]["state"] == "fail" and "vpcflow-partitioner init" in findings["table"]["fix"]
    for check in ("notification", "freshness", "columns"):
        assert findings[check]["state"] == "error", findings[check]


# ---------------------------------------------------------------- the notification


def test_no_notification_rule_fails_with_the_rule_to_merge(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deploy(with_notification=False)
    code, findings = run(capsys, d.args())
    assert code == 3
    failure = only_failure(findings, "notification")
    assert (
        f"no ObjectCreated rule of bucket {BUCKET} sends s3://{BUCKET}/AWSLogs/*.log.gz" in failure["detail"]
    )
    assert "get-bucket-notification-configuration" in failure["fix"]
    assert "put-bucket-notification-configuration" in failure["fix"]
    rule = quoted_json(failure["fix"])
    assert rule["QueueArn"] == d.queue_arn
    write_notification(d, [rule])
    code, findings = run(capsys, d.args())
    assert code == 0 and findings["notification"]["state"] == "ok", findings["notification"]


def test_a_literal_equals_sign_in_a_filter_prefix_fails(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deploy(hive=True, with_notification=False)
    write_notification(d, [queue_rule(d.queue_arn, prefix="AWSLogs/aws-account-id=111122223333/")])
    code, findings = run(capsys, d.args())
    assert code == 3
    failure = only_failure(findings, "notification")
    assert "'=' written as is" in failure["detail"] and "never matches" in failure["detail"]
    assert '"Value": "AWSLogs/aws-account-id%3D111122223333/"' in failure["fix"]


def test_an_encoded_prefix_rule_is_fine(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy(hive=True, with_notification=False)
    write_notification(d, [queue_rule(d.queue_arn, prefix="AWSLogs/")])
    code, findings = run(capsys, d.args())
    assert code == 0, findings
    assert findings["notification"]["state"] == "ok"


def test_a_table_at_the_bucket_root_gets_a_rule_without_prefix_in_place_of_the_narrow_one(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deploy(with_notification=False)
    change_table(client("glue"), DATABASE, TABLE, {"Location": f"s3://{BUCKET}/"})
    write_notification(d, [queue_rule(d.queue_arn, prefix="AWSLogs/", rule_id="narrow")])
    code, findings = run(capsys, d.args())
    assert code == 0  # a warning: the rule works for AWSLogs/, flow logs elsewhere would not notify
    warning = findings["notification"]
    assert warning["state"] == "warn" and "cover only the prefixes 'AWSLogs/'" in warning["detail"]
    assert "in place of rule 'narrow'" in warning["fix"]  # S3 refuses the two side by side
    rule = quoted_json(warning["fix"])
    assert rule["Filter"]["Key"]["FilterRules"] == [{"Name": "suffix", "Value": ".log.gz"}]  # no empty prefix
    write_notification(d, [rule])
    _, findings = run(capsys, d.args())
    assert findings["notification"]["state"] == "ok", findings["notification"]


def test_a_wrong_profile_is_one_line_and_a_usage_error(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy()
    assert main([*d.args(), "--profile", "no-such-profile"]) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert captured.out == "" and len(lines) == 1 and "no-such-profile" in lines[0], captured


def test_an_overlapping_rule_to_another_queue_fails_and_suggests_a_fan_out(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deploy(with_notification=False)
    siem = client("sqs").create_queue(QueueName="siem-ingest")["QueueUrl"]
    siem_arn = arn_of(siem)
    # S3 refuses a second rule for the same events on an overlapping prefix: ours is not there.
    write_notification(d, [queue_rule(siem_arn, suffix="", prefix="AWSLogs/", rule_id="siem")])
    code, findings = run(capsys, d.args())
    assert code == 3
    failure = only_failure(findings, "notification")
    assert f"rule 'siem' already sends them to {siem_arn}" in failure["detail"]
    assert "SNS" in failure["fix"] and "trigger=eventbridge" in failure["fix"]


def test_an_sns_fan_out_to_the_queue_is_recognised(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's way around an existing rule: the bucket notifies a topic, the queue subscribes."""
    d = deploy(with_notification=False)
    sns = client("sns")
    topic = sns.create_topic(Name="flow-logs-created")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=d.queue_arn)
    owner_only = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Owner",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": "SNS:*",
                "Resource": topic,
            }
        ],
    }
    sns.set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(owner_only))
    rule = {"Id": "fan-out", "TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}
    client("s3").put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration={"TopicConfigurations": [rule]}
    )
    code, findings = run(capsys, d.args())
    assert code == 3  # S3 may not publish, SNS may not send: both named, with their fixes
    assert f"through topic {topic}" in findings["notification"]["detail"]
    assert findings["topic policy"]["state"] == "fail"
    assert f"does not let sns.amazonaws.com from {topic} send" in findings["queue policy"]["detail"]
    topic_fix = quoted_json(findings["topic policy"]["fix"])
    sns.set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(topic_fix))
    client("sqs").set_queue_attributes(
        QueueUrl=d.queue_url, Attributes=quoted_json(findings["queue policy"]["fix"])
    )
    code, findings = run(capsys, d.args())
    assert code == 0, findings
    assert findings["topic policy"]["state"] == "ok" and findings["queue policy"]["state"] == "ok"


def test_a_put_only_rule_warns_about_multipart_uploads(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy(with_notification=False)
    rule = queue_rule(d.queue_arn) | {"Events": ["s3:ObjectCreated:Put"]}
    write_notification(d, [rule])
    code, findings = run(capsys, d.args())
    assert code == 0
    assert findings["notification"]["state"] == "warn"
    assert "CompleteMultipartUpload" in findings["notification"]["detail"]


# ---------------------------------------------------------------- the queue


def test_a_queue_policy_for_another_bucket_fails(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy()
    set_queue_policy(d, s3_statement(d.queue_arn, bucket="some-other-bucket"))
    code, findings = run(capsys, d.args())
    assert code == 3
    failure = only_failure(findings, "queue policy")
    assert f"does not let s3.amazonaws.com from arn:aws:s3:::{BUCKET} send" in failure["detail"]
    assert "arn:aws:s3:::some-other-bucket" in failure["detail"]
    # The fix is the whole policy, as SetQueueAttributes replaces it: applied, doctor is satisfied.
    assert failure["fix"].startswith(f"aws sqs set-queue-attributes --queue-url {d.queue_url} --attributes '")
    client("sqs").set_queue_attributes(QueueUrl=d.queue_url, Attributes=quoted_json(failure["fix"]))
    code, findings = run(capsys, d.args())
    assert code == 0 and findings["queue policy"]["state"] == "ok", findings["queue policy"]
    kept = json.loads(
        client("sqs").get_queue_attributes(QueueUrl=d.queue_url, AttributeNames=["Policy"])["Attributes"][
            "Policy"
        ]
    )
    sids = [statement["Sid"] for statement in kept["Statement"]]
    assert sids[:2] == ["S3SendsObjectCreated", "DenyWithoutTLS"] and len(sids) == 3  # both kept


def test_a_queue_policy_without_source_conditions_warns(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deploy()
    statement = s3_statement(d.queue_arn)
    del statement["Condition"]
    set_queue_policy(d, statement)
    code, findings = run(capsys, d.args())
    assert code == 0
    assert findings["queue policy"]["state"] == "warn"
    assert (
        "lacks aws:sourceaccount, aws:sourcearn: any bucket could send" in findings["queue policy"]["detail"]
    )


def test_a_deny_for_s3_wins_over_the_allow(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy()
    deny = s3_statement(d.queue_arn) | {"Sid": "NoS3", "Effect": "Deny"}
    set_queue_policy(d, s3_statement(d.queue_arn), deny)
    code, findings = run(capsys, d.args())
    assert code == 3
    failure = only_failure(findings, "queue policy")
    assert "NoS3 denies" in failure["detail"]
    client("sqs").set_queue_attributes(QueueUrl=d.queue_url, Attributes=quoted_json(failure["fix"]))
    assert run(capsys, d.args())[0] == 0


def test_a_queue_encrypted_with_the_aws_managed_key_fails(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deploy(queue_kms="alias/aws/sqs")
    code, findings = run(capsys, d.args())
    assert code == 3
    failure = only_failure(findings, "queue encryption")
    assert "AWS managed key aws/sqs" in failure["detail"]
    assert "SqsManagedSseEnabled=true" in failure["fix"]


@pytest.mark.parametrize("admits_s3", [True, False])
def test_a_customer_managed_key_must_admit_s3(
    env: None, capsys: pytest.CaptureFixture[str], admits_s3: bool
) -> None:
    kms = client("kms")
    policy: dict[str, Any] = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Admin",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }
    if admits_s3:
        policy["Statement"].append(
            {
                "Sid": "S3",
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
                "Resource": "*",
            }
        )
    key = kms.create_key(Policy=json.dumps(policy))["KeyMetadata"]["KeyId"]
    d = deploy(queue_kms=key)
    code, findings = run(capsys, d.args())
    if admits_s3:
        assert code == 0 and findings["queue encryption"]["state"] == "ok", findings
    else:
        assert code == 3
        failure = only_failure(findings, "queue encryption")
        assert "does not let s3.amazonaws.com use kms:GenerateDataKey and kms:Decrypt" in failure["detail"]
        assert failure["fix"].startswith(
            f"aws kms put-key-policy --key-id {key} --policy-name default --policy '"
        )
        kms.put_key_policy(KeyId=key, PolicyName="default", Policy=json.dumps(quoted_json(failure["fix"])))
        code, findings = run(capsys, d.args())
        assert code == 0 and findings["queue encryption"]["state"] == "ok", findings["queue encryption"]


# ---------------------------------------------------------------- the function


def test_a_disabled_event_source_mapping_fails(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy()
    client("lambda").update_event_source_mapping(UUID=d.mapping, Enabled=False)
    code, findings = run(capsys, d.args())
    assert code == 3
    failure = only_failure(findings, "event source mapping")
    assert "is Disabled" in failure["detail"]
    assert failure["fix"] == f"aws lambda update-event-source-mapping --uuid {d.mapping} --enabled"


def test_a_mapping_without_batch_item_failures_fails(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy()
    client("lambda").update_event_source_mapping(UUID=d.mapping, FunctionResponseTypes=[])
    code, findings = run(capsys, d.args())
    assert code == 3
    assert "ReportBatchItemFailures" in only_failure(findings, "event source mapping")["fix"]


def test_a_function_partitioning_another_table_fails(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy()
    client("lambda").update_function_configuration(
        FunctionName=FUNCTION,
        Environment={
            "Variables": {"GLUE_DATABASE": DATABASE, "GLUE_TABLE": "old_table", "SOURCE_BUCKETS": BUCKET}
        },
    )
    code, findings = run(capsys, d.args())
    assert code == 3
    failure = only_failure(findings, "function")
    assert f"partitions {DATABASE}.old_table, not {DATABASE}.{TABLE}" in failure["detail"]
    assert f'"GLUE_TABLE": "{TABLE}"' in failure["fix"] and f'"SOURCE_BUCKETS": "{BUCKET}"' in failure["fix"]


def test_a_function_throttled_to_zero_fails(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy()
    client("lambda").put_function_concurrency(FunctionName=FUNCTION, ReservedConcurrentExecutions=0)
    code, findings = run(capsys, d.args())
    assert code == 3
    assert (
        only_failure(findings, "function")["fix"]
        == f"aws lambda delete-function-concurrency --function-name {FUNCTION}"
    )


# ---------------------------------------------------------------- the DLQ


def test_a_non_empty_dlq_fails_with_the_replay_command(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy()
    for n in range(3):
        client("sqs").send_message(QueueUrl=d.dlq_url, MessageBody=json.dumps({"n": n}))
    code, findings = run(capsys, d.args())
    assert code == 3
    failure = only_failure(findings, "dlq")
    assert "holds 3 messages" in failure["detail"]
    assert "unknown (no CloudWatch datapoint in the last hour)" in failure["detail"]  # never guessed
    assert failure["fix"].endswith(f"vpcflow-partitioner replay --queue-url {d.dlq_url}")


def oldest_message_age(queue: str, seconds: int) -> None:
    """The CloudWatch datapoint SQS would have published two minutes ago."""
    client("cloudwatch").put_metric_data(
        Namespace="AWS/SQS",
        MetricData=[
            {
                "MetricName": "ApproximateAgeOfOldestMessage",
                "Dimensions": [{"Name": "QueueName", "Value": queue}],
                "Timestamp": datetime.now(UTC) - timedelta(minutes=2),
                "Value": seconds,
            }
        ],
    )


def test_the_dlq_age_comes_from_cloudwatch(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy()
    client("sqs").send_message(QueueUrl=d.dlq_url, MessageBody="{}")
    oldest_message_age("vpcflow-partitioner-test-dlq", 5400)
    code, findings = run(capsys, d.args())
    assert code == 3
    assert "the oldest is 90 min (CloudWatch" in findings["dlq"]["detail"]


@pytest.mark.filterwarnings("ignore:Tried to parse AWS")
def test_another_stages_alarms_and_an_unreadable_topic_are_not_this_stacks_failures(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deploy()
    deploy_sweep_and_cache(d)
    cloudwatch = client("cloudwatch")
    # stage `test-eu` shares the stack name as a prefix; its muted alarm is not ours
    cloudwatch.put_metric_alarm(
        AlarmName="vpcflow-partitioner-test-eu-function-errors",
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
        ActionsEnabled=False,
    )
    # our alarms also notify a topic of another account, whose subscriptions we cannot list
    foreign = "arn:aws:sns:us-east-1:210987654321:central-alarms"
    alarm = cloudwatch.describe_alarms(AlarmNames=["vpcflow-partitioner-test-dlq-not-empty"])["MetricAlarms"][
        0
    ]
    keep = ("AlarmName", "Namespace", "MetricName", "Statistic", "Period", "EvaluationPeriods", "Threshold")
    cloudwatch.put_metric_alarm(
        **{k: alarm[k] for k in keep},
        ComparisonOperator=alarm["ComparisonOperator"],
        AlarmActions=[d.alarm_topic, foreign],
    )
    client("cloudformation").create_stack(
        StackName="vpcflow-partitioner-test", TemplateBody=stack_template(d)
    )
    code, findings = run(capsys, ["doctor", "--stack", "vpcflow-partitioner-test"])
    alarms = findings["alarms"]
    assert code == 0 and alarms["state"] == "warn", alarms
    assert "test-eu" not in alarms["detail"]
    assert f"cannot read the subscriptions of {foreign} (NotFound)" in alarms["detail"]


def test_an_events_queue_nobody_drains_fails(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy()
    client("lambda").delete_event_source_mapping(UUID=d.mapping)  # polling stopped
    # moto's queue keeps the deleted mapping and would hand it the message at once.
    sqs_backends[ACCOUNT]["us-east-1"].queues[
        "vpcflow-partitioner-test-events"
    ].lambda_event_source_mappings.clear()
    client("sqs").send_message(QueueUrl=d.queue_url, MessageBody="{}")
    oldest_message_age("vpcflow-partitioner-test-events", 7200)
    code, findings = run(capsys, d.args())
    assert code == 3
    backlog = findings["backlog"]
    assert backlog["state"] == "fail", backlog
    assert "1 message waits in the events queue, the oldest 2.0 h (CloudWatch" in backlog["detail"]
    assert "nothing is draining it; messages expire unseen after" in backlog["detail"]


def test_a_large_table_without_a_partition_index_warns(
    env: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    d = deploy()  # 2 partitions
    monkeypatch.setattr(doctor, "INDEX_ADVICE_PARTITIONS", 2)
    code, findings = run(capsys, d.args())
    assert findings["partition index"]["detail"] == "2 partitions: no index needed yet (it pays off past 2)"
    monkeypatch.setattr(doctor, "INDEX_ADVICE_PARTITIONS", 1)
    code, findings = run(capsys, d.args())
    warning = findings["partition index"]
    assert code == 0 and warning["state"] == "warn"
    assert "more than 1 partitions and no partition index" in warning["detail"]
    assert "--partition-index 'Keys=year,month,day,IndexName=vpcflow_partitioner_date'" in warning["fix"]
    assert "'partition_filtering.enabled'='true'" in warning["fix"]


def test_a_partition_index_athena_cannot_use_warns(
    env: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    d = deploy()
    indexes: list[dict[str, Any]] = []
    answer(client("glue"), "GetPartitionIndexes", lambda _: {"PartitionIndexDescriptorList": indexes})
    change_table(client("glue"), DATABASE, TABLE, **{"partition_filtering.enabled": "true"})
    date_keys = [{"Name": k} for k in ("year", "month", "day")]
    for index, verdict in (
        ({"IndexName": "by_date", "Keys": date_keys, "IndexStatus": "ACTIVE"}, "ok"),
        ({"IndexName": "by_date", "Keys": date_keys, "IndexStatus": "FAILED"}, "warn"),
        ({"IndexName": "by_region", "Keys": [{"Name": "aws_region"}], "IndexStatus": "ACTIVE"}, "warn"),
    ):
        indexes[:] = [index]
        _, findings = run(capsys, d.args())
        assert findings["partition index"]["state"] == verdict, (index, findings["partition index"])
    assert "an ACTIVE index led by year is needed" in findings["partition index"]["detail"]


# ---------------------------------------------------------------- freshness and columns


def test_fresh_hour_folders_are_listed_once_and_older_hours_not_at_all(env: None) -> None:
    client("s3").create_bucket(Bucket=BUCKET)
    spec = TableSpec(DATABASE, TABLE, f"s3://{BUCKET}/AWSLogs/", DEFAULT_FIELDS, TEXT, MULTI_ACCOUNT, True)
    apply_init(client("glue"), spec, plan_init(client("glue"), spec))
    now = datetime.now(UTC)
    for hours_ago in (5, 1, 0):  # the hour folder of 5 hours ago ended before the 2-hour window
        key = object_key(ACCOUNTS[0], REGION, now - timedelta(hours=hours_ago), hourly=True)
        client("s3").put_object(Bucket=BUCKET, Key=key, Body=flow_log_file(ACCOUNTS[0], now))
    found, calls = doctor.fresh_folders(client("s3"), scheme(), now.timestamp())
    fresh = [f"{(now - timedelta(hours=h)):%Y/%m/%d/%H}/" for h in (1, 0)]
    assert [f.folder[-len(fresh[0]) :] for f in found] == fresh
    # Each fresh hour folder is listed once after the walk (not probed first), the old one never.
    first_day = (now - timedelta(hours=doctor.FRESH_HOURS)).date()
    walk = FolderWalk(client("s3"), scheme(), DateRange(first_day, now.date()))
    walk.leaf_folders()
    assert calls == walk.list_calls + 2


def test_a_fresh_folder_without_its_partition_fails(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy(partitions=False)
    create_partitions([k for k in d.keys if ACCOUNTS[0] in k])  # the second account's is missing
    code, findings = run(capsys, d.args())
    assert code == 3
    failure = only_failure(findings, "freshness")
    today = datetime.now(UTC).date()
    assert (
        f"1 of 2 folders written in the last 2 hours have no partition: {ACCOUNTS[1]}/{REGION}/"
        in failure["detail"]
    )
    assert "no check failed: read the function's logs" in failure["detail"]
    assert failure["fix"].endswith(
        f"vpcflow-partitioner backfill --database {DATABASE} --table {TABLE} --since {today:%Y-%m-%d}"
    )


def test_missing_partitions_name_the_broken_link(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy(partitions=False, with_notification=False)
    code, findings = run(capsys, d.args())
    assert code == 3
    assert findings["notification"]["state"] == "fail"
    assert (
        "likely broken: the bucket's notification (see the notification check)"
        in findings["freshness"]["detail"]
    )


def test_a_partition_missing_for_a_minute_is_in_flight(
    env: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(doctor, "IN_FLIGHT_SECONDS", 3600)  # every object here is younger
    d = deploy(partitions=False)
    code, findings = run(capsys, d.args())
    assert code == 0
    assert (
        findings["freshness"]["state"] == "warn" and "check again shortly" in findings["freshness"]["detail"]
    )


def test_a_folder_with_another_log_format_fails_and_says_which_fields(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deploy(mixed_format_account=ACCOUNTS[1])
    code, findings = run(capsys, d.args())
    assert code == 3
    failure = only_failure(findings, "columns")
    assert "fl-0fedcba9876543210" in failure["detail"]
    assert "fields the table lacks: vpc_id" in failure["detail"]
    assert (
        "columns the file lacks: srcport, dstport, protocol, packets, bytes, log_status" in failure["detail"]
    )
    assert "mixes formats" in failure["detail"]
    assert "--update" in failure["fix"] and "--from-object s3://" in failure["fix"]


# ---------------------------------------------------------------- EventBridge mode


def test_a_healthy_eventbridge_deployment_is_all_ok(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy("eventbridge")
    code, findings = run(capsys, d.args())
    assert code == 0, findings
    assert findings["eventbridge rule"]["state"] == "ok"
    assert findings["notification"]["detail"] == f"bucket {BUCKET} sends its events to EventBridge"


def test_eventbridge_mode_with_the_bucket_switch_off_fails(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deploy("eventbridge", with_notification=False)
    code, findings = run(capsys, d.args())
    assert code == 3
    failure = only_failure(findings, "notification")
    assert "EventBridgeConfiguration is off" in failure["detail"]
    assert '"EventBridgeConfiguration": {}' in failure["fix"]


def test_an_eventbridge_pattern_that_misses_hive_keys_fails(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deploy("eventbridge", hive=True)
    plain_only = {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [BUCKET]},
            "object": {"key": [{"prefix": "AWSLogs/1"}, {"prefix": "AWSLogs/4"}]},
        },
    }
    client("events").put_rule(Name=d.rule_name, EventPattern=json.dumps(plain_only))
    code, findings = run(capsys, d.args())
    assert code == 3
    failure = only_failure(findings, "eventbridge rule")
    assert "does not match a PutObject of a Hive-layout key" in failure["detail"]
    assert json.dumps(event_pattern(BUCKET, "AWSLogs/")) in failure["fix"]  # the stack's pattern


def test_the_queue_policy_must_name_the_rule_in_eventbridge_mode(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deploy("eventbridge")
    set_queue_policy(d, s3_statement(d.queue_arn))  # written for sqs mode
    code, findings = run(capsys, d.args())
    assert code == 3
    assert "events.amazonaws.com" in only_failure(findings, "queue policy")["detail"]


# ---------------------------------------------------------------- s3 mode


def test_a_healthy_direct_s3_deployment_is_all_ok(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy("s3")
    code, findings = run(capsys, d.args())
    assert code == 0, findings
    assert set(findings) >= {"notification", "function permission", "dlq"}
    assert "event source mapping" not in findings


def test_s3_mode_without_the_invoke_permission_fails(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy("s3")
    client("lambda").remove_permission(FunctionName=FUNCTION, StatementId="s3-object-created")
    code, findings = run(capsys, d.args())
    assert code == 3
    failure = only_failure(findings, "function permission")
    assert "--principal s3.amazonaws.com" in failure["fix"]


# ---------------------------------------------------------------- Lake Formation


def registered_with_lake_formation() -> None:
    """moto's GetTable has no IsRegisteredWithLakeFormation: add it as AWS answers for such a table."""

    def mark(parsed: dict[str, Any], **_: Any) -> None:
        if "Table" in parsed:
            parsed["Table"]["IsRegisteredWithLakeFormation"] = True

    client("glue").meta.events.register("after-call.glue.GetTable", mark)


def test_lake_formation_without_grants_fails(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy()
    registered_with_lake_formation()
    lf = client("lakeformation")
    lf.register_resource(ResourceArn=f"arn:aws:s3:::{BUCKET}/AWSLogs", UseServiceLinkedRole=True)
    code, findings = run(capsys, d.args())
    assert code == 3
    failure = only_failure(findings, "lake formation")
    assert (
        f"role {d.role_arn} lacks Lake Formation ALTER, DESCRIBE on {DATABASE}.{TABLE}" in failure["detail"]
    )
    assert "lacks DATA_LOCATION_ACCESS on the registered location" in failure["detail"]
    assert (
        f"--principal DataLakePrincipalIdentifier={d.role_arn} --permissions ALTER DESCRIBE" in failure["fix"]
    )

    principal = {"DataLakePrincipalIdentifier": d.role_arn}
    lf.grant_permissions(
        Principal=principal,
        Resource={"Table": {"DatabaseName": DATABASE, "Name": TABLE}},
        Permissions=["ALTER", "DESCRIBE"],
    )
    lf.grant_permissions(
        Principal=principal,
        Resource={"DataLocation": {"ResourceArn": f"arn:aws:s3:::{BUCKET}/AWSLogs"}},
        Permissions=["DATA_LOCATION_ACCESS"],
    )
    code, findings = run(capsys, d.args())
    assert code == 0, findings
    assert findings["lake formation"]["state"] == "ok"


# ---------------------------------------------------------------- --stack, exit codes


def stack_template(d: Deployment, trigger: str = "") -> str:
    outputs = {
        "SourceBucket": BUCKET,
        "TableLocation": f"s3://{BUCKET}/AWSLogs/",
        "NotificationPrefix": "AWSLogs/",
        "GlueDatabase": DATABASE,
        "GlueTable": TABLE,
        "Trigger": trigger or d.trigger,
        "EventsQueueUrl": d.queue_url,
        "EventsQueueArn": d.queue_arn,
        "DeadLetterQueueUrl": d.dlq_url,
        "DeadLetterQueueArn": d.dlq_arn,
        "ObjectCreatedFunctionName": FUNCTION,
        "ScheduleFunctionName": SWEEP,
        "CacheTableName": "vpcflow-partitioner-test-cache",
    }
    if d.rule_name:
        outputs["ObjectCreatedRuleName"] = d.rule_name
    if d.alarm_topic:
        outputs["AlarmTopicArn"] = d.alarm_topic
    return json.dumps(
        {
            "Resources": {"Nothing": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": {name: {"Value": value} for name, value in outputs.items()},
        }
    )


def deploy_sweep_and_cache(d: Deployment, schedule_enabled: bool = True) -> None:
    lam, events, ddb = client("lambda"), client("events"), client("dynamodb")
    sweep = lam.create_function(
        FunctionName=SWEEP,
        Runtime="python3.12",
        Role=d.role_arn,
        Handler="handler.handler",
        Code={"ZipFile": function_zip()},
    )["FunctionArn"]
    events.put_rule(
        Name="sweep-schedule",
        ScheduleExpression="rate(6 hours)",
        State="ENABLED" if schedule_enabled else "DISABLED",
    )
    events.put_targets(Rule="sweep-schedule", Targets=[{"Id": "sweep", "Arn": sweep}])
    ddb.create_table(
        TableName="vpcflow-partitioner-test-cache",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.update_time_to_live(
        TableName="vpcflow-partitioner-test-cache",
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"},
    )
    variables = {
        "GLUE_DATABASE": DATABASE,
        "GLUE_TABLE": TABLE,
        "SOURCE_BUCKETS": BUCKET,
        "CACHE_TABLE": "vpcflow-partitioner-test-cache",
    }
    lam.update_function_configuration(FunctionName=FUNCTION, Environment={"Variables": variables})
    # The stack's alarms and their topic, read by someone.
    sns, cloudwatch = client("sns"), client("cloudwatch")
    d.alarm_topic = sns.create_topic(Name="vpcflow-partitioner-test-alarms")["TopicArn"]
    sns.subscribe(TopicArn=d.alarm_topic, Protocol="sqs", Endpoint=d.dlq_arn)  # confirmed at once
    for name in doctor.ALARMS:  # the stack's six
        cloudwatch.put_metric_alarm(
            AlarmName=f"vpcflow-partitioner-test-{name}",
            Namespace="AWS/SQS",
            MetricName="ApproximateNumberOfMessagesVisible",
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=0,
            ComparisonOperator="GreaterThanThreshold",
            ActionsEnabled=True,
            AlarmActions=[d.alarm_topic],
        )


@pytest.mark.filterwarnings("ignore:Tried to parse AWS")  # moto: WaitConditionHandle is a no-op
def test_stack_outputs_name_everything(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy()
    deploy_sweep_and_cache(d)
    client("cloudformation").create_stack(
        StackName="vpcflow-partitioner-test", TemplateBody=stack_template(d)
    )
    code, findings = run(capsys, ["doctor", "--stack", "vpcflow-partitioner-test"])
    assert code == 0, findings
    assert findings["stack"]["detail"] == "stack vpcflow-partitioner-test is CREATE_COMPLETE"
    assert findings["schedule"]["detail"] == "rule sweep-schedule runs the sweep rate(6 hours)"
    assert findings["cache"]["detail"] == "cache table vpcflow-partitioner-test-cache, TTL on expiration"
    assert findings["event source mapping"]["state"] == "ok" and findings["dlq"]["state"] == "ok"
    assert findings["alarms"] == {
        "check": "alarms",
        "state": "ok",
        "detail": f"6 alarms act; {d.alarm_topic} is read",
        "fix": "",
    }


@pytest.mark.filterwarnings("ignore:Tried to parse AWS")
def test_alarms_that_reach_no_one_are_named(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy()
    deploy_sweep_and_cache(d)
    sns, cloudwatch = client("sns"), client("cloudwatch")
    for subscription in sns.list_subscriptions_by_topic(TopicArn=d.alarm_topic)["Subscriptions"]:
        sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])
    cloudwatch.disable_alarm_actions(AlarmNames=["vpcflow-partitioner-test-dlq-not-empty"])
    client("cloudformation").create_stack(
        StackName="vpcflow-partitioner-test", TemplateBody=stack_template(d)
    )
    code, findings = run(capsys, ["doctor", "--stack", "vpcflow-partitioner-test"])
    assert code == 3
    failure = only_failure(findings, "alarms")
    assert "vpcflow-partitioner-test-dlq-not-empty notify nobody" in failure["detail"]
    assert f"nobody subscribes to {d.alarm_topic}" in failure["detail"]
    assert (
        "aws cloudwatch enable-alarm-actions --alarm-names vpcflow-partitioner-test-dlq-not-empty"
        in failure["fix"]
    )
    assert f"aws sns subscribe --topic-arn {d.alarm_topic}" in failure["fix"]


@pytest.mark.filterwarnings("ignore:Tried to parse AWS")  # moto: WaitConditionHandle is a no-op
def test_stack_values_yield_to_flags_and_a_disabled_sweep_warns(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deploy()
    deploy_sweep_and_cache(d, schedule_enabled=False)
    client("cloudformation").create_stack(
        StackName="vpcflow-partitioner-test", TemplateBody=stack_template(d)
    )
    code, findings = run(
        capsys, ["doctor", "--stack", "vpcflow-partitioner-test", "--table", "no_such_table"]
    )
    assert code == 3
    assert "table flowlogs.no_such_table does not exist" in findings["table"]["detail"]
    assert findings["schedule"]["state"] == "warn"
    assert findings["schedule"]["fix"] == "aws events enable-rule --name sweep-schedule"


def test_a_queue_flag_does_not_switch_an_eventbridge_stack_to_sqs(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deploy("eventbridge")
    deploy_sweep_and_cache(d)
    client("cloudformation").create_stack(
        StackName="vpcflow-partitioner-test", TemplateBody=stack_template(d)
    )
    code, findings = run(
        capsys, ["doctor", "--stack", "vpcflow-partitioner-test", "--queue-url", d.queue_url]
    )
    assert code == 0, findings
    assert findings["notification"]["detail"] == f"bucket {BUCKET} sends its events to EventBridge"
    assert findings["eventbridge rule"]["state"] == "ok"


def test_a_missing_stack_is_one_line_and_exit_1(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--stack", "nope"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert lines == ["error: CloudFormation stack nope does not exist in us-east-1"]


def test_no_table_named_is_a_usage_error(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--queue-url", "https://example.com/q"]) == 2
    assert "GLUE_TABLE" in capsys.readouterr().err


def test_a_check_it_could_not_perform_makes_exit_1(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    d = deploy()
    inject_error(client("s3"), "GetBucketNotificationConfiguration", "AccessDenied", status=403)
    code, findings = run(capsys, d.args())
    assert code == 1
    assert findings["notification"]["state"] == "error"
    assert "GetBucketNotificationConfiguration denied" in findings["notification"]["detail"]
    assert not [f for f in findings.values() if f["state"] == "fail"]


def test_a_failure_outranks_a_check_it_could_not_perform(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deploy()
    inject_error(client("s3"), "GetBucketNotificationConfiguration", "AccessDenied", status=403)
    client("lambda").put_function_concurrency(FunctionName=FUNCTION, ReservedConcurrentExecutions=0)
    code, _ = run(capsys, d.args())
    assert code == 3


def test_doctor_checks_every_configured_table(
    env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    d = deploy()
    monkeypatch.setenv("GLUE_TABLES", f"{DATABASE}.{TABLE},{DATABASE}.not_created")
    args = [a for a in d.args() if a not in ("--database", DATABASE, "--table", TABLE)]
    assert main([*args, "--output", "json"]) == 3
    document = json.loads(capsys.readouterr().out)
    states = {name: {f["check"]: f["state"] for f in found} for name, found in document["tables"].items()}
    assert states[f"{DATABASE}.{TABLE}"]["table"] == "ok"
    assert states[f"{DATABASE}.not_created"]["table"] == "fail"
    assert main([*args, "--table", TABLE, "--output", "json"]) == 0  # --table picks one
    assert isinstance(json.loads(capsys.readouterr().out), list)
    assert main(args) == 3
    lines = capsys.readouterr().out.splitlines()
    # The deployment's checks are said once; the second table's own lines follow.
    assert sum("redrives to" in line for line in lines) == 1  # the queue check
    second = lines[lines.index(next(x for x in lines if x.startswith(f"doctor {DATABASE}.{TABLE}:"))) + 1 :]
    assert second[0].startswith("FAIL  table") and second[-1].startswith(f"doctor {DATABASE}.not_created:")
    assert "as above)" in second[-1]


def _quota_table(days: int | None, hourly: bool, held: int = 0) -> Any:
    """An organisation table over 4 accounts x 23 regions (one object each) and, with `days`,
    a lifecycle rule expiring the flow logs after that many days."""
    from vpcflow_partitioner.ops.doctor import Facts, check_partition_quota
    from vpcflow_partitioner.scheme import Scheme

    s3 = client("s3")
    s3.create_bucket(Bucket=BUCKET)
    regions = [
        f"{area}-{side}-{n}" for area in ("us", "eu", "ap") for side in ("east", "west") for n in (1, 2, 3, 4)
    ]
    for account in ("111111111111", "222222222222", "333333333333", "444444444444"):
        for region in regions[:23]:
            moment = datetime(2024, 3, 1, 5, tzinfo=UTC)
            s3.put_object(Bucket=BUCKET, Key=object_key(account, region, moment, hourly=hourly), Body=b"x")
    if days is not None:
        s3.put_bucket_lifecycle_configuration(
            Bucket=BUCKET,
            LifecycleConfiguration={
                "Rules": [
                    {
                        "ID": "tagged",
                        "Status": "Enabled",
                        "Filter": {"Tag": {"Key": "k", "Value": "v"}},
                        "Expiration": {"Days": 1},
                    },
                    {
                        "ID": "logs",
                        "Status": "Enabled",
                        "Filter": {"Prefix": "AWSLogs/"},
                        "Expiration": {"Days": days},
                    },
                ]
            },
        )
    keys = ["aws_account_id", "aws_region", "year", "month", "day"] + (["hour"] if hourly else [])
    glue = client("glue")
    glue.create_database(DatabaseInput={"Name": DATABASE})
    table = {
        "Name": TABLE,
        "PartitionKeys": [{"Name": k, "Type": "string"} for k in keys],
        "StorageDescriptor": {"Location": f"s3://{BUCKET}/AWSLogs/"},
    }
    glue.create_table(DatabaseName=DATABASE, TableInput=table)
    for start in range(0, held, 100):  # partitions of objects long expired: nobody pruned them
        values = [
            ["111111111111", "us-east-1", "2019", "01", f"{i:04d}"] + (["00"] if hourly else [])
            for i in range(start, min(held, start + 100))
        ]
        glue.batch_create_partition(
            DatabaseName=DATABASE, TableName=TABLE, PartitionInputList=[{"Values": v} for v in values]
        )
    read = glue.get_table(DatabaseName=DATABASE, Name=TABLE)["Table"]
    return check_partition_quota(s3, glue, Facts(scheme=Scheme.from_table(read)))


def test_partition_quota_projects_folders_times_days_kept(env: None) -> None:
    finding = _quota_table(days=400, hourly=False)
    assert (finding.state, finding.detail) == (
        "ok",
        "92 account-region folders x 400 days kept (S3 lifecycle, with `audit --prune` after it) = 36,800 "
        "partitions: 0% of Glue's "
        "10,000,000 per table",
    )


def test_partition_quota_warns_before_an_hourly_table_reaches_glues_limit(env: None) -> None:
    finding = _quota_table(days=3650, hourly=True)  # 92 x 3650 x 24 = 8,059,200: 81 %
    assert finding.state == "warn" and "8,059,200 partitions: 81%" in finding.detail
    assert "split the table" in finding.fix and "GLUE_TABLES" in finding.fix


def test_partition_quota_projects_three_years_without_an_expiration_rule(env: None) -> None:
    assert _quota_table(days=None, hourly=True).detail == (
        "92 account-region folders x 3 years (no expiration rule) x 24 hours = 2,417,760 partitions: 24% of "
        "Glue's 10,000,000 per table"
    )


def test_partition_quota_counts_what_the_table_holds_when_it_is_more(env: None) -> None:
    finding = _quota_table(days=1, hourly=False, held=250)  # 92 folders x 1 day, 250 never pruned
    assert finding.detail.endswith(
        "= 92 partitions; the table holds 250 already: 0% of Glue's 10,000,000 per table"
    )


def test_partition_quota_stops_at_its_list_call_budget(env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from vpcflow_partitioner.ops import doctor as module

    monkeypatch.setattr(module, "QUOTA_LIST_CALLS", 3)  # a bucket root over thousands of folders
    finding = _quota_table(days=400, hourly=False)
    assert finding.state == "warn" and "were not all counted within 3 list calls" in finding.detail
    assert "%" not in finding.detail  # no projection from folders it did not see


def test_partition_quota_warns_when_the_count_stopped_past_the_projection(
    env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vpcflow_partitioner.ops import doctor as module

    monkeypatch.setattr(module, "INDEX_ADVICE_PARTITIONS", 200)  # the count stops at 201
    finding = _quota_table(days=1, hourly=False, held=250)
    assert (
        finding.state == "warn" and "holds more than 200 already (the count stopped there)" in finding.detail
    )
    assert "%" not in finding.detail  # no share of the quota from a count that stopped
