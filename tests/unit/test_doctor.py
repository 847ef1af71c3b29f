"""doctor's decisions that need no AWS call: policies, notification rules, columns, exit codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from vpcflow_partitioner.ops.doctor import (
    ERROR,
    FAIL,
    OK,
    WARN,
    Finding,
    broken_link,
    combine,
    created_coverage,
    exit_code,
    field_difference,
    lake_formation_gaps,
    notification_finding,
    resolve_trigger,
    target_from_outputs,
)
from vpcflow_partitioner.ops.doctor import _samples as samples
from vpcflow_partitioner.ops.policy import Request, evaluate_policy
from vpcflow_partitioner.ops.routing import encode_filter, unencoded

QUEUE = "arn:aws:sqs:us-east-1:123456789012:events"
BUCKET_ARN = "arn:aws:s3:::flow-logs"
S3_SEND = Request(
    "s3.amazonaws.com",
    ("sqs:SendMessage",),
    QUEUE,
    {"aws:sourcearn": BUCKET_ARN, "aws:sourceaccount": "123456789012"},
)


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(**extra: Any) -> dict[str, Any]:
    return {
        "Effect": "Allow",
        "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": QUEUE,
    } | extra


# ---------------------------------------------------------------- resource policies


@pytest.mark.parametrize(
    ("statement", "granted"),
    [
        (allow(), True),
        (allow(Action="sqs:*"), True),
        (allow(Action=["sqs:ReceiveMessage", "SQS:sendmessage"]), True),  # actions ignore case
        (allow(Action="sqs:ReceiveMessage"), False),
        (allow(Resource="arn:aws:sqs:us-east-1:123456789012:*"), True),
        (allow(Resource="arn:aws:sqs:us-east-1:123456789012:other"), False),
        (allow(Principal={"Service": ["sns.amazonaws.com", "s3.amazonaws.com"]}), True),
        (allow(Principal={"Service": "events.amazonaws.com"}), False),
        (allow(Principal="*", Condition={"ArnLike": {"aws:SourceArn": BUCKET_ARN}}), True),
        (allow(Principal={"AWS": "arn:aws:iam::123456789012:root"}), False),  # the account, not S3
        (allow(Condition={"ArnLike": {"aws:SourceArn": "arn:aws:s3:::flow-*"}}), True),
        (allow(Condition={"ArnEquals": {"aws:SourceArn": "arn:aws:s3:::other"}}), False),
        (allow(Condition={"StringEquals": {"AWS:SOURCEACCOUNT": "123456789012"}}), True),  # keys ignore case
        (allow(Condition={"StringEquals": {"aws:SourceAccount": "999999999999"}}), False),
        (allow(Condition={"StringNotEquals": {"aws:SourceAccount": "123456789012"}}), False),
        (allow(Condition={"ArnLikeIfExists": {"aws:SourceArn": BUCKET_ARN}}), True),
    ],
)
def test_a_statement_grants_what_iam_would(statement: dict[str, Any], granted: bool) -> None:
    assert evaluate_policy(policy(statement), S3_SEND).grants(S3_SEND) is granted


def test_an_explicit_deny_wins_and_is_named() -> None:
    deny = allow(Sid="NoS3", Effect="Deny")
    verdict = evaluate_policy(policy(allow(), deny), S3_SEND)
    assert not verdict.grants(S3_SEND) and verdict.denied == ["NoS3"]


def test_a_tls_only_deny_refuses_plain_http_but_not_a_service_delivering() -> None:
    tls_only = allow(
        Sid="TlsOnly", Effect="Deny", Principal="*", Condition={"Bool": {"aws:SecureTransport": "false"}}
    )
    over_tls = Request(
        S3_SEND.principal, S3_SEND.actions, QUEUE, S3_SEND.context | {"aws:securetransport": "true"}
    )
    verdict = evaluate_policy(policy(allow(), tls_only), over_tls)
    assert verdict.grants(over_tls) and verdict.caveat() == ""  # the stack's own policy: plain ok
    plain = Request(
        S3_SEND.principal, S3_SEND.actions, QUEUE, S3_SEND.context | {"aws:securetransport": "FALSE"}
    )
    assert evaluate_policy(policy(allow(), tls_only), plain).denied == ["TlsOnly"]


def test_conditions_it_cannot_evaluate_are_said_not_guessed() -> None:
    tls_only = allow(
        Sid="TlsOnly", Effect="Deny", Principal="*", Condition={"Bool": {"aws:SecureTransport": "false"}}
    )
    verdict = evaluate_policy(policy(allow(), tls_only), S3_SEND)  # the request does not say
    assert verdict.grants(S3_SEND)  # a Deny that may not apply refuses nothing
    assert "TlsOnly: Bool aws:SecureTransport" in verdict.caveat()
    owner = allow(Principal={"AWS": "*"}, Condition={"StringEquals": {"AWS:SourceOwner": "123456789012"}})
    assert evaluate_policy(policy(owner), S3_SEND).caveat()


def test_no_policy_grants_nothing() -> None:
    assert not evaluate_policy(None, S3_SEND).grants(S3_SEND)
    # A Statement may be one statement rather than a list of them.
    assert evaluate_policy({"Statement": allow()}, S3_SEND).grants(S3_SEND)


def test_every_action_of_the_request_must_be_granted() -> None:
    kms = Request(
        "s3.amazonaws.com", ("kms:GenerateDataKey", "kms:Decrypt"), "arn:aws:kms:us-east-1:1:key/k", {}
    )
    generate = {
        "Effect": "Allow",
        "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "kms:GenerateDataKey*",
        "Resource": "*",
    }
    assert not evaluate_policy(policy(generate), kms).grants(kms)
    decrypt = generate | {"Action": "kms:Decrypt"}
    assert evaluate_policy(policy(generate, decrypt), kms).grants(kms)


# ---------------------------------------------------------------- notification rules


def rule(
    prefix: str = "AWSLogs/",
    suffix: str = ".log.gz",
    events: tuple[str, ...] = ("s3:ObjectCreated:*",),
    arn: str = QUEUE,
    rule_id: str = "ours",
) -> dict[str, Any]:
    filters = [{"Name": "Prefix", "Value": prefix}] + (
        [{"Name": "Suffix", "Value": suffix}] if suffix else []
    )
    return {
        "Id": rule_id,
        "QueueArn": arn,
        "Events": list(events),
        "Filter": {"Key": {"FilterRules": filters}},
    }


def judge(*rules: dict[str, Any], table_prefix: str = "AWSLogs/") -> Finding:
    finding, _ = notification_finding(
        {"QueueConfigurations": list(rules)},
        bucket="flow-logs",
        table_prefix=table_prefix,
        notify_prefix=table_prefix,
        suffix=".log.gz",
        kind="queue",
        destination=QUEUE,
        reaches=lambda r: r.kind == "queue" and r.destination == QUEUE,
    )
    return finding


@pytest.mark.parametrize(
    ("rules", "state"),
    [
        ([rule()], OK),
        ([rule(prefix="", suffix="")], OK),  # the whole bucket covers the table
        ([rule(prefix="AWSLogs/", suffix="")], OK),
        ([rule(suffix=".gz")], OK),
        ([rule(suffix=".log.parquet")], FAIL),  # the table reads .log.gz
        ([rule(prefix="logs/")], FAIL),
        ([rule(prefix="AWSLogs/111122223333/")], WARN),  # part of the table only
        ([rule(events=("s3:ObjectCreated:Put",))], WARN),
        ([rule(events=("s3:ObjectCreated:Put", "s3:ObjectCreated:CompleteMultipartUpload"))], OK),
        ([rule(events=("s3:ObjectRemoved:*",))], FAIL),
        ([rule(arn="arn:aws:sqs:us-east-1:123456789012:other")], FAIL),
    ],
)
def test_a_rule_covers_the_table_or_says_why_not(rules: list[dict[str, Any]], state: str) -> None:
    finding = judge(*rules)
    assert finding.state == state, finding
    assert (finding.fix != "") is (state != OK)


def test_hive_prefixes_must_be_url_encoded() -> None:
    assert unencoded("AWSLogs/aws-account-id=111122223333/") == ["="]
    assert unencoded("AWSLogs/aws-account-id%3D111122223333/") == []
    assert (
        encode_filter("AWSLogs/aws-account-id=1/aws-service=vpcflowlogs/")
        == "AWSLogs/aws-account-id%3D1/aws-service%3Dvpcflowlogs/"
    )
    literal = judge(
        rule(prefix="AWSLogs/aws-account-id="), table_prefix="AWSLogs/aws-account-id=111122223333/"
    )
    assert literal.state == FAIL and "never matches" in literal.detail
    encoded = judge(
        rule(prefix="AWSLogs/aws-account-id%3D"), table_prefix="AWSLogs/aws-account-id=111122223333/"
    )
    assert encoded.state == OK, encoded


def test_an_overlapping_rule_elsewhere_blocks_ours_or_warns_beside_it() -> None:
    siem = rule(prefix="AWS", suffix="", arn="arn:aws:sqs:us-east-1:123456789012:siem", rule_id="siem")
    blocked = judge(siem)
    assert blocked.state == FAIL and "SNS" in blocked.fix and "'siem'" in blocked.detail
    beside = judge(rule(), siem)
    assert beside.state == WARN and "next write of this configuration fails" in beside.detail
    other_suffix = rule(suffix=".csv", arn="arn:aws:sqs:us-east-1:123456789012:siem")
    assert judge(other_suffix).state == FAIL and "SNS" not in judge(other_suffix).fix


def test_created_coverage() -> None:
    assert created_coverage(["s3:ObjectCreated:*"]) == "all"
    assert created_coverage(["s3:ObjectCreated:Put", "s3:ObjectCreated:CompleteMultipartUpload"]) == "all"
    assert created_coverage(["s3:ObjectCreated:Put", "s3:ObjectCreated:Copy"]) == "put"
    assert created_coverage(["s3:ObjectCreated:Post"]) == "none"


# ---------------------------------------------------------------- columns, Lake Formation, samples


def test_field_difference() -> None:
    table = ["version", "account_id", "srcaddr"]
    assert field_difference(table, table, positional=True) == ""
    assert field_difference(table, ["version", "srcaddr", "account_id"], positional=True) == (
        "same fields in another order (text files are read by position)"
    )
    assert (
        field_difference(table, ["version", "srcaddr", "account_id"], positional=False) == ""
    )  # Parquet: by name
    assert field_difference(table, ["version", "account_id", "vpc_id"], positional=True) == (
        "fields the table lacks: vpc_id; columns the file lacks: srcaddr"
    )


ROLE = "arn:aws:iam::123456789012:role/partitioner"


@pytest.mark.parametrize(
    ("grants", "gaps"),
    [
        ([], ["ALTER", "DESCRIBE"]),
        ([(ROLE, ["ALTER", "DESCRIBE"])], []),
        ([(ROLE, ["ALL"])], []),
        ([(ROLE, ["SELECT", "INSERT"])], ["ALTER", "DESCRIBE"]),  # data access is not metadata
        ([(ROLE, ["ALTER"]), (ROLE, ["DESCRIBE"])], []),
        ([("arn:aws:iam::123456789012:role/other", ["ALL"])], ["ALTER", "DESCRIBE"]),
        ([("IAM_ALLOWED_PRINCIPALS", ["ALL"])], []),  # the table defers to IAM
    ],
)
def test_lake_formation_gaps(grants: list[tuple[str, list[str]]], gaps: list[str]) -> None:
    entries = [{"Principal": {"DataLakePrincipalIdentifier": p}, "Permissions": perms} for p, perms in grants]
    assert lake_formation_gaps(entries, ROLE) == gaps


def test_the_samples_are_the_newest_and_the_newest_of_another_flow_log() -> None:
    now = datetime(2024, 2, 10, 12, tzinfo=UTC)

    def key(flow_log: str, minutes: int) -> tuple[datetime, str]:
        moment = now - timedelta(minutes=minutes)
        return (
            moment,
            f"AWSLogs/1/vpcflowlogs/us-east-1/2024/02/10/1_vpcflowlogs_us-east-1_{flow_log}_{moment:%Y%m%dT%H%M}Z_ab.log.gz",
        )

    one = [key("fl-aaa", 5), key("fl-aaa", 10), key("fl-bbb", 55), key("fl-aaa", 15)]
    assert samples(one) == (one[0][1], one[2][1])
    same = [key("fl-aaa", 5), key("fl-aaa", 10), key("fl-aaa", 15)]
    assert samples(same) == (same[0][1], same[1][1])
    assert samples([]) == ()


# ---------------------------------------------------------------- outputs, links, exit codes


def test_stack_outputs_become_the_target() -> None:
    found = target_from_outputs(
        {
            "SourceBucket": "flow-logs",
            "TableLocation": "s3://flow-logs/logs/AWSLogs/",
            "NotificationPrefix": "logs/AWSLogs/",
            "GlueDatabase": "flowlogs_prod",
            "GlueTable": "vpc_flow_logs",
            "Trigger": "eventbridge",
            "ObjectCreatedRuleName": "rule",
        }
    )
    assert found["bucket"] == "flow-logs" and found["location_prefix"] == "logs/AWSLogs/"
    assert found["trigger"] == "eventbridge" and found["rule_name"] == "rule"
    assert found["catalog_id"] == "" and found["queue_url"] == ""


def test_the_broken_link_is_the_first_failing_one_on_the_way() -> None:
    findings = {
        "function": Finding("function", FAIL, "x"),
        "queue policy": Finding("queue policy", FAIL, "x"),
        "notification": Finding("notification", OK, "x"),
    }
    assert broken_link(findings).startswith("the queue policy")
    assert broken_link({"dlq": Finding("dlq", FAIL, "x")}).startswith("the function fails")
    assert broken_link({}).startswith("no check failed")


def test_combine_and_exit_codes() -> None:
    line = combine(
        "queue", [Finding("queue", WARN, "a", "fix a"), Finding("queue", FAIL, "b", "fix b")], "fine"
    )
    assert line == Finding("queue", FAIL, "b; a", "fix b ; fix a")
    assert combine("queue", [], "fine") == Finding("queue", OK, "fine")
    assert exit_code([Finding("a", OK, ""), Finding("b", WARN, "")]) == 0
    assert exit_code([Finding("a", ERROR, ""), Finding("b", WARN, "")]) == 1
    assert exit_code([Finding("a", ERROR, ""), Finding("b", FAIL, "")]) == 3


@pytest.mark.parametrize(
    ("eventbridge", "queue_url", "function", "stack", "expected"),
    [
        (False, "", "", "", ""),
        (True, "q", "", "sqs", "eventbridge"),
        (False, "q", "", "eventbridge", "eventbridge"),  # a queue flag never switches the stack's mode
        (False, "", "f", "sqs", "sqs"),
        (False, "q", "f", "", "sqs"),
        (False, "", "f", "", "s3"),
    ],
)
def test_the_mode_comes_from_eventbridge_then_the_stack_then_the_flags(
    eventbridge: bool, queue_url: str, function: str, stack: str, expected: str
) -> None:
    assert resolve_trigger(eventbridge, queue_url, function, stack) == expected
