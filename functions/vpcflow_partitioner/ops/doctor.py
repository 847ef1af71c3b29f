"""`doctor`: check a live deployment end to end, and say how to fix each problem.

Every check reads; none changes anything. Each one answers ok, warn, fail, or error (it could
not check: a permission, an AWS error, something it was not told). Decisions that need no AWS
call (a policy statement, a notification rule, a pair of column lists) are plain functions
over plain values; the checks fetch what those functions read, through injected clients.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    InvalidRegionError,
    NoCredentialsError,
    NoRegionError,
    ProfileNotFound,
)

from ..catalog import Catalog
from ..config import Settings, SettingsError, TableName
from ..errors import TransientError, error_code, error_message
from ..formats import FormatError
from ..keys import parse_key
from ..scheme import ConfigurationError, PartitionSpec, Scheme, TableRef, same_folder, split_location
from ..sources import DateRange, FolderWalk, leaf_folder
from .bootstrap import read_object_fields
from .policy import SERVICE_CONTEXT, Request, evaluate_policy, listify, policy_document
from .routing import SUFFIXES, event_pattern, notification_filters, rule_id, unencoded
from .synthetic import object_key
from .tables import FILTERING, INDEX_NAME, TableWriter, date_index_keys

OK, WARN, FAIL, ERROR = "ok", "warn", "fail", "error"
_RANK = {OK: 0, WARN: 1, ERROR: 2, FAIL: 3}

SQS, EVENTBRIDGE, S3 = "sqs", "eventbridge", "s3"
FRESH_HOURS = 2
# S3 event notifications are "typically delivered in seconds but can sometimes take a minute or
# longer" (S3 user guide, "Amazon S3 Event Notifications"); the SQS event source adds its batching
# window. A partition missing for a folder younger than this may still be on its way.
IN_FLIGHT_SECONDS = 300
_SAMPLED_FOLDERS = 20  # at most this many fresh folders get their files' columns read


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's verdict: ok, warn, fail or error (could not check), and the fix for a problem."""

    check: str
    state: str
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"check": self.check, "state": self.state, "detail": self.detail, "fix": self.fix}


def worst(states: Iterable[str]) -> str:
    """The most serious of some states (ok < warn < error < fail)."""
    return max(states, key=_RANK.__getitem__, default=OK)


def combine(check: str, parts: Sequence[Finding], ok_detail: str) -> Finding:
    """One line for a check that found several things: the worst state, every problem said."""
    problems = [p for p in parts if p.state != OK]
    if not problems:
        return Finding(check, OK, "; ".join(p.detail for p in parts if p.detail) or ok_detail)
    state = worst(p.state for p in problems)
    ordered = sorted(problems, key=lambda p: -_RANK[p.state])
    fixes = [p.fix for p in ordered if p.fix]
    return Finding(check, state, "; ".join(p.detail for p in ordered), " ; ".join(dict.fromkeys(fixes)))


# ---------------------------------------------------------------- what to check


@dataclass(frozen=True)
class Target:
    """The deployment to check: from the stack's Outputs, then the flags (which win)."""

    database: str
    table: str
    catalog_id: str = ""
    bucket: str = ""  # "": the table's
    location_prefix: str = ""  # the table's Location must lie under s3://bucket/location_prefix
    notification_prefix: str = ""  # the prefix the notification filters on ("": the table's)
    trigger: str = ""  # sqs | eventbridge | s3 | "" (not said)
    queue_url: str = ""
    queue_arn: str = ""
    rule_name: str = ""
    function_name: str = ""
    schedule_function: str = ""
    dlq_url: str = ""
    dlq_arn: str = ""
    cache_table: str = ""
    stack: str = ""
    alarm_topic: str = ""
    backlog_seconds: int = 0  # the stack's queue-age alarm threshold (0: BACKLOG_SECONDS)


@dataclass(frozen=True, slots=True)
class StackInfo:
    name: str
    status: str
    outputs: dict[str, str]


def read_stack(cloudformation: Any, name: str) -> StackInfo:
    """The stack's status and Outputs; a missing stack is a ConfigurationError (one line, exit 1)."""
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        # DescribeStacks answers ValidationError "Stack with id X does not exist".
        message = exc.response.get("Error", {}).get("Message", "")
        if error_code(exc) == "ValidationError" and "does not exist" in message:
            region = cloudformation.meta.region_name
            raise ConfigurationError(f"CloudFormation stack {name} does not exist in {region}") from None
        raise ConfigurationError(
            f"CloudFormation DescribeStacks {name}: {error_code(exc)}: {message}"
        ) from exc
    stack = stacks[0]
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}
    return StackInfo(name, str(stack.get("StackStatus", "")), outputs)


def target_from_outputs(outputs: dict[str, str]) -> dict[str, str]:
    """Target fields the stack's Outputs give (names as the template publishes them)."""
    fields = {
        "bucket": outputs.get("SourceBucket", ""),
        "notification_prefix": outputs.get("NotificationPrefix", ""),
        "database": outputs.get("GlueDatabase", ""),
        "table": outputs.get("GlueTable", ""),
        "tables": outputs.get("GlueTables", ""),  # the `tables` param: "[catalog:]database.table,..."
        "catalog_id": outputs.get("GlueCatalogId", ""),
        "trigger": outputs.get("Trigger", ""),
        "queue_url": outputs.get("EventsQueueUrl", ""),
        "queue_arn": outputs.get("EventsQueueArn", ""),
        "dlq_url": outputs.get("DeadLetterQueueUrl", ""),
        "dlq_arn": outputs.get("DeadLetterQueueArn", ""),
        "function_name": outputs.get("ObjectCreatedFunctionName", ""),
        "schedule_function": outputs.get("ScheduleFunctionName", ""),
        "rule_name": outputs.get("ObjectCreatedRuleName", ""),
        "cache_table": outputs.get("CacheTableName", ""),
        "alarm_topic": outputs.get("AlarmTopicArn", ""),
        "backlog_seconds": outputs.get("QueueAgeAlarmSeconds", ""),
    }
    location = outputs.get("TableLocation", "")
    if location:
        bucket, prefix = split_location(location)
        fields["bucket"] = fields["bucket"] or bucket
        fields["location_prefix"] = prefix
    return fields


def resolve_trigger(eventbridge: bool, queue_url: str, function: str, stack_trigger: str) -> str:
    """The mode to check: --eventbridge, else the stack's (a --queue-url or --function only names
    a resource and never switches a stack's mode), else what the flags imply."""
    if eventbridge:
        return EVENTBRIDGE
    if stack_trigger:
        return stack_trigger
    if queue_url:
        return SQS
    return S3 if function else ""


def stack_finding(stack: StackInfo) -> Finding:
    """A stack whose last operation failed may have left the deployment half changed."""
    status = stack.status
    if status.endswith("_FAILED") or "ROLLBACK" in status:
        return Finding(
            "stack",
            WARN,
            f"stack {stack.name} is {status}: its last change did not apply as written",
            f"aws cloudformation describe-stack-events --stack-name {stack.name} (then redeploy)",
        )
    if status.endswith("_IN_PROGRESS"):
        return Finding("stack", WARN, f"stack {stack.name} is {status}: check again when it is done")
    return Finding("stack", OK, f"stack {stack.name} is {status}")


# ---------------------------------------------------------------- notification rules (pure)


@dataclass(frozen=True, slots=True)
class NotificationRule:
    """One rule of a bucket's notification configuration, its filter values as S3 stores them."""

    id: str
    kind: str  # queue, topic, lambda
    destination: str
    events: tuple[str, ...]
    prefix: str = ""
    suffix: str = ""


def notification_rules(config: dict[str, Any]) -> list[NotificationRule]:
    """The rules of a GetBucketNotificationConfiguration answer."""
    rules = []
    for section, kind, arn_key in (
        ("QueueConfigurations", "queue", "QueueArn"),
        ("TopicConfigurations", "topic", "TopicArn"),
        ("LambdaFunctionConfigurations", "lambda", "LambdaFunctionArn"),
    ):
        for entry in config.get(section) or []:
            filters = ((entry.get("Filter") or {}).get("Key") or {}).get("FilterRules") or []
            values = {str(f.get("Name", "")).lower(): str(f.get("Value", "")) for f in filters}
            rules.append(
                NotificationRule(
                    id=str(entry.get("Id") or "(no id)"),
                    kind=kind,
                    destination=str(entry.get(arn_key, "")),
                    events=tuple(entry.get("Events") or ()),
                    prefix=values.get("prefix", ""),
                    suffix=values.get("suffix", ""),
                )
            )
    return rules


def _decoded(value: str) -> str:
    return unquote_plus(value)


_CREATED_ALL = "s3:ObjectCreated:*"
# Flow logs are delivered by the log delivery service, whose bucket policy grants s3:PutObject;
# which upload method it uses is not documented (files reach 75 MB, "Flow log files", VPC user
# guide), and a multipart upload ends with s3:ObjectCreated:CompleteMultipartUpload, not :Put.
_CREATED_NEEDED = ("s3:ObjectCreated:Put", "s3:ObjectCreated:CompleteMultipartUpload")


def created_coverage(events: Iterable[str]) -> str:
    """all (every way flow logs may arrive), put (single PUTs only) or none."""
    names = set(events)
    if _CREATED_ALL in names or all(e in names for e in _CREATED_NEEDED):
        return "all"
    return "put" if _CREATED_NEEDED[0] in names else "none"


def _takes_created(events: Iterable[str]) -> bool:
    return any(e == _CREATED_ALL or e in _CREATED_NEEDED for e in events)


def _prefixes_overlap(a: str, b: str) -> bool:
    return a.startswith(b) or b.startswith(a)


def _suffixes_overlap(a: str, b: str) -> bool:
    return a.endswith(b) or b.endswith(a)


def notification_finding(
    config: dict[str, Any],
    *,
    bucket: str,
    table_prefix: str,
    notify_prefix: str,
    suffix: str,
    kind: str,
    destination: str,
    reaches: Callable[[NotificationRule], bool],
    name: str = "vpcflow-partitioner",
) -> tuple[Finding, NotificationRule | None]:
    """Whether the bucket sends the ObjectCreated events of the table's flow-log keys (those under
    `table_prefix` ending in `suffix`) to `destination` (a queue, or a function in s3 mode), with
    the rule that does; `reaches` says whether a rule's destination delivers to it (an SNS topic
    the queue subscribes to does)."""
    rules = notification_rules(config)
    ours = [r for r in rules if reaches(r)]
    problems: list[Finding] = []
    covering: list[NotificationRule] = []
    partial: list[NotificationRule] = []
    for rule in ours:
        bad = [c for v in (rule.prefix, rule.suffix) for c in unencoded(v)]
        if bad:
            chars = ", ".join(repr(c) for c in dict.fromkeys(bad))
            problems.append(
                Finding(
                    "notification",
                    FAIL,
                    f"rule {rule.id!r} filters on prefix {rule.prefix!r} suffix {rule.suffix!r} with "
                    f"{chars} written as is: S3 needs special characters URL-encoded in filter values, so "
                    "this rule never matches",
                    _rule_fix(bucket, kind, destination, _decoded(rule.prefix), suffix, name, rule.id),
                )
            )
            continue
        prefix, rule_suffix = _decoded(rule.prefix), _decoded(rule.suffix)
        events = created_coverage(rule.events)
        if events == "none" or not suffix.endswith(rule_suffix):
            continue
        if table_prefix.startswith(prefix):
            covering.append(rule)
        elif prefix.startswith(table_prefix):
            partial.append(rule)
    foreign = [
        r
        for r in rules
        if r not in ours
        and _takes_created(r.events)
        and not unencoded(r.prefix + r.suffix)
        and _prefixes_overlap(_decoded(r.prefix), table_prefix)
        and _suffixes_overlap(_decoded(r.suffix), suffix)
    ]
    where = f"s3://{bucket}/{table_prefix}*{suffix}"
    if covering:
        put_only = [r for r in covering if created_coverage(r.events) == "put"]
        if len(put_only) == len(covering):
            problems.append(
                Finding(
                    "notification",
                    WARN,
                    f"rule {put_only[0].id!r} takes s3:ObjectCreated:Put only: a flow-log file uploaded in "
                    "parts (CompleteMultipartUpload) would not notify",
                    f'set the rule\'s Events to ["{_CREATED_ALL}"]',
                )
            )
        for other in foreign:
            problems.append(
                Finding(
                    "notification",
                    WARN,
                    f"rule {other.id!r} also takes ObjectCreated events of {where} (to {other.destination}): "
                    "S3 refuses overlapping rules for the same event type, so the next write of this "
                    "configuration fails",
                    "fan out with SNS (one rule to a topic, the topic to both destinations) or use EventBridge",
                )
            )
        rule = next((r for r in covering if r.kind == kind), covering[0])
        via = f" through topic {rule.destination}" if rule.kind == "topic" else ""
        return combine(
            "notification",
            problems,
            f"rule {rule.id!r} sends ObjectCreated of {where} to {destination}{via}",
        ), rule
    if foreign:
        other = foreign[0]
        problems.append(
            Finding(
                "notification",
                FAIL,
                f"no rule sends ObjectCreated of {where} to {destination}; rule {other.id!r} already sends "
                f"them to {other.destination}, and S3 refuses a second rule on an overlapping prefix for the "
                "same event type, so ours cannot be added",
                f"fan out with SNS: point rule {other.id!r} at an SNS topic and subscribe {other.destination} "
                f"and {destination} to it (the function reads SNS envelopes, raw or not); or deploy with "
                "trigger=eventbridge",
            )
        )
    elif partial:
        narrow = ", ".join(repr(_decoded(r.prefix)) for r in partial)
        problems.append(
            Finding(
                "notification",
                WARN,
                f"rules to {destination} cover only the prefixes {narrow} of {where}: flow logs elsewhere "
                "under the table never notify",
                # in place of the narrow rules: S3 refuses a rule overlapping them
                _rule_fix(
                    bucket, kind, destination, notify_prefix, suffix, name, ", ".join(r.id for r in partial)
                ),
            )
        )
    elif not any(p.state == FAIL for p in problems):
        problems.append(
            Finding(
                "notification",
                FAIL,
                f"no ObjectCreated rule of bucket {bucket} sends {where} to {destination}",
                _rule_fix(bucket, kind, destination, notify_prefix, suffix, name),
            )
        )
    return combine("notification", problems, ""), None


def _rule_fix(
    bucket: str, kind: str, destination: str, prefix: str, suffix: str, name: str, replaces: str = ""
) -> str:
    section, arn_key = {
        "queue": ("QueueConfigurations", "QueueArn"),
        "lambda": ("LambdaFunctionConfigurations", "LambdaFunctionArn"),
    }[kind]
    rule = {
        "Id": rule_id(name, suffix),
        arn_key: destination,
        "Events": [_CREATED_ALL],
        "Filter": {
            "Key": {
                "FilterRules": [
                    {"Name": key, "Value": value}
                    for filters in notification_filters(prefix)
                    if filters["suffix"] == suffix
                    for key, value in filters.items()
                ]
            }
        },
    }
    instead = f" in place of rule {replaces!r}" if replaces else ""
    if kind == "lambda":  # s3 mode: the stack writes its own rules (osls's custom resource)
        return (
            f"redeploy the stack, which writes its rules; by hand: {json.dumps(rule)} in {section}{instead}"
        )
    return (
        f"PutBucketNotificationConfiguration replaces the whole configuration: "
        f"aws s3api get-bucket-notification-configuration --bucket {bucket} > notification.json, "
        f"add '{json.dumps(rule)}' to its {section}{instead}, then aws s3api "
        f"put-bucket-notification-configuration --bucket {bucket} --notification-configuration "
        "file://notification.json"
    )


# ---------------------------------------------------------------- columns (pure)


def field_difference(table_columns: Sequence[str], file_columns: Sequence[str], positional: bool) -> str:
    """How a file's fields differ from the table's columns ("" when they agree). Text files are
    read by position (LazySimpleSerDe), so their order counts too; Parquet by name."""
    extra = [c for c in file_columns if c not in table_columns]
    missing = [c for c in table_columns if c not in file_columns]
    parts = []
    if extra:
        parts.append(f"fields the table lacks: {', '.join(extra)}")
    if missing:
        parts.append(f"columns the file lacks: {', '.join(missing)}")
    if not parts and positional and list(table_columns) != list(file_columns):
        parts.append("same fields in another order (text files are read by position)")
    return "; ".join(parts)


def table_file_format(table: dict[str, Any]) -> str:
    descriptor = table.get("StorageDescriptor") or {}
    text = f"{descriptor.get('InputFormat', '')} {(descriptor.get('SerdeInfo') or {}).get('SerializationLibrary', '')}"
    return "parquet" if "parquet" in text.lower() else "text"


# ---------------------------------------------------------------- the checks


@dataclass
class Facts:
    """What earlier checks learnt that later ones need."""

    table: dict[str, Any] | None = None
    scheme: Scheme | None = None
    queue_arn: str = ""
    queue_attributes: dict[str, str] | None = None
    rule_arn: str = ""
    topic_arn: str = ""  # the SNS topic between the bucket and the queue, in a fan-out
    function_arn: str = ""
    function: dict[str, Any] | None = None
    dlq_url: str = ""
    dlq_arn: str = ""
    account: str = ""
    partition: str = "aws"
    partitions: int | None = None  # the table's, counted up to past INDEX_ADVICE_PARTITIONS
    findings: dict[str, Finding] = field(default_factory=dict)


Client = Callable[[str], Any]


def _arn_parts(arn: str) -> list[str]:
    return arn.split(":", 5) if arn.startswith("arn:") else []


def _function_name(name_or_arn: str) -> str:
    parts = name_or_arn.split(":")
    if name_or_arn.startswith("arn:") and len(parts) >= 7:
        return parts[6]
    return name_or_arn


def _queue_name(url_or_arn: str) -> str:
    return url_or_arn.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]


def check_table(glue: Any, target: Target, facts: Facts) -> Finding:
    """1. The table exists, its partition keys are ones a flow-log folder provides, and its
    Location lies inside the bucket and prefix (the table is the configuration)."""
    ids = {"CatalogId": target.catalog_id} if target.catalog_id else {}
    name = f"{target.database}.{target.table}"
    init = (
        f"vpcflow-partitioner init --database {target.database} --table {target.table} "
        f"--location s3://{target.bucket or '<bucket>'}/{target.location_prefix or 'AWSLogs/'} --multi-account"
    )
    try:
        table = glue.get_table(DatabaseName=target.database, Name=target.table, **ids)["Table"]
    except ClientError as exc:
        if error_code(exc) == "EntityNotFoundException":
            return Finding(
                "table",
                FAIL,
                f"table {name} does not exist: {error_message(exc)}",
                f"redeploy the stack with createTable=true, or {init}",
            )
        raise
    facts.table = table
    try:
        scheme = Scheme.from_table(table, target.catalog_id)
    except ConfigurationError as exc:
        return Finding(
            "table", FAIL, str(exc), f"partition keys cannot change in place: create a table with {init}"
        )
    facts.scheme = scheme
    problems = []
    wanted = f"s3://{target.bucket or scheme.bucket}/{target.location_prefix}"
    if not scheme.location.startswith(wanted):
        problems.append(
            Finding(
                "table",
                FAIL,
                f"table {name} reads {scheme.location}, outside {wanted}: the function ignores every "
                "object of the bucket as not this table's",
                f"ALTER TABLE `{target.database}`.`{target.table}` SET LOCATION '{wanted}' (Athena), then "
                f"vpcflow-partitioner backfill --database {target.database} --table {target.table}",
            )
        )
    if target.notification_prefix and not _prefixes_overlap(target.notification_prefix, scheme.prefix):
        problems.append(
            Finding(
                "table",
                FAIL,
                f"the notification prefix {target.notification_prefix!r} and the table's Location "
                f"{scheme.location} do not overlap: no notified object is this table's",
                "deploy with flowLogPrefix set to the table's folder (or point the table at the prefix)",
            )
        )
    keys = ", ".join(scheme.key_names)
    return combine("table", problems, f"table {name} reads {scheme.location} (partition keys {keys})")


def check_notification(s3: Any, sns: Any, target: Target, facts: Facts) -> Finding:
    """2. The bucket notifies the queue (sqs), EventBridge (eventbridge) or the function (s3)."""
    assert facts.scheme is not None and facts.table is not None
    scheme = facts.scheme
    config = s3.get_bucket_notification_configuration(Bucket=scheme.bucket)
    suffix = SUFFIXES[table_file_format(facts.table)]
    notify_prefix = target.notification_prefix
    if not notify_prefix or not scheme.prefix.startswith(notify_prefix):
        notify_prefix = scheme.prefix
    if target.trigger == EVENTBRIDGE:
        if config.get("EventBridgeConfiguration") is not None:
            return Finding("notification", OK, f"bucket {scheme.bucket} sends its events to EventBridge")
        return Finding(
            "notification",
            FAIL,
            f"bucket {scheme.bucket} does not send events to EventBridge (EventBridgeConfiguration is off)",
            f"PutBucketNotificationConfiguration replaces the whole configuration: aws s3api "
            f"get-bucket-notification-configuration --bucket {scheme.bucket} > notification.json, add "
            '"EventBridgeConfiguration": {} to it, then aws s3api put-bucket-notification-configuration '
            f"--bucket {scheme.bucket} --notification-configuration file://notification.json",
        )
    if target.trigger == S3:
        function = facts.function_arn or target.function_name
        wanted = _function_name(function)
        finding, _ = notification_finding(
            config,
            bucket=scheme.bucket,
            table_prefix=scheme.prefix,
            notify_prefix=notify_prefix,
            suffix=suffix,
            kind="lambda",
            destination=function,
            reaches=lambda r: r.kind == "lambda" and _function_name(r.destination) == wanted,
            name=target.stack or "vpcflow-partitioner",
        )
        return finding
    subscribed: dict[str, bool] = {}

    def reaches(rule: NotificationRule) -> bool:
        if rule.kind == "queue":
            return rule.destination == facts.queue_arn
        if rule.kind == "topic" and rule.destination not in subscribed:
            subscribed[rule.destination] = _subscribes(sns, rule.destination, facts.queue_arn)
        return rule.kind == "topic" and subscribed[rule.destination]

    finding, rule = notification_finding(
        config,
        bucket=scheme.bucket,
        table_prefix=scheme.prefix,
        notify_prefix=notify_prefix,
        suffix=suffix,
        kind="queue",
        destination=facts.queue_arn,
        reaches=reaches,
        name=target.stack or "vpcflow-partitioner",
    )
    if rule is not None and rule.kind == "topic":
        facts.topic_arn = rule.destination
    return finding


def _subscribes(sns: Any, topic_arn: str, queue_arn: str) -> bool:
    """Whether the queue subscribes to the topic (the SNS fan-out the README suggests when another
    rule already takes the prefix)."""
    try:
        for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
            for subscription in page.get("Subscriptions") or []:
                if subscription.get("Protocol") == "sqs" and subscription.get("Endpoint") == queue_arn:
                    return True
    except ClientError:
        return False  # another account's topic, or no permission: not shown to reach the queue
    return False


def example_keys(scheme: Scheme, moment: datetime) -> list[str]:
    """Flow-log keys of the table, plain and Hive layout where its Location allows both."""
    hourly = scheme.deepest_level == "hour"
    match = re.match(r"^(?P<free>(?:.*/)?)AWSLogs/(?P<rest>.*)$", scheme.prefix)
    free = match["free"] if match else scheme.prefix
    rest = match["rest"].split("/") if match else []
    account = re.sub(r"^aws-account-id=", "", rest[0]) if rest and rest[0] else "123456789012"
    region = re.sub(r"^aws-region=", "", rest[2]) if len(rest) > 2 and rest[2] else "us-east-1"
    parquet = table_file_format({"StorageDescriptor": scheme.storage_descriptor}) == "parquet"
    keys = []
    for hive in (False, True):
        key = free + object_key(account, region, moment, hive=hive, hourly=hourly, parquet=parquet)
        obj = parse_key(key)
        if obj is not None and isinstance(scheme.plan(scheme.bucket, obj), PartitionSpec):
            keys.append(key)
    return keys


def s3_event(
    bucket: str, key: str, account: str, region: str, reason: str, moment: datetime, partition: str = "aws"
) -> dict[str, Any]:
    """An EventBridge `Object Created` event as S3 sends it (keys are not URL-encoded there)."""
    return {
        "version": "0",
        "id": "00000000-0000-0000-0000-000000000000",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": account,
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:{partition}:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {"key": key, "size": 1024, "etag": "0" * 32, "sequencer": "00"},
            "request-id": "0",
            "requester": "delivery.logs.amazonaws.com",
            "source-ip-address": "10.0.0.1",
            "reason": reason,
        },
    }


def check_rule(events: Any, target: Target, facts: Facts, now: float) -> Finding:
    """EventBridge mode: the rule is on the default bus, enabled, targets the queue, and its
    pattern matches the table's flow-log keys (TestEventPattern: AWS's own matcher decides)."""
    assert facts.scheme is not None
    scheme = facts.scheme
    name = target.rule_name
    if not name:
        names = events.list_rule_names_by_target(TargetArn=facts.queue_arn).get("RuleNames") or []
        if not names:
            return Finding(
                "eventbridge rule",
                FAIL,
                f"no EventBridge rule targets {facts.queue_arn}",
                "redeploy the stack with trigger=eventbridge (it creates the rule)",
            )
        name = names[0]
    try:
        rule = events.describe_rule(Name=name)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return Finding(
                "eventbridge rule",
                FAIL,
                f"rule {name} does not exist on the default event bus",
                "redeploy the stack with trigger=eventbridge",
            )
        raise
    facts.rule_arn = str(rule.get("Arn", ""))
    problems = []
    # S3 sends its events to the account's default event bus ("Amazon EventBridge", S3 user guide).
    bus = str(rule.get("EventBusName") or "default")
    if bus != "default":
        problems.append(
            Finding(
                "eventbridge rule",
                FAIL,
                f"rule {name} is on bus {bus}: S3 sends only to the default bus",
                "create the rule on the default event bus",
            )
        )
    if rule.get("State") == "DISABLED":
        problems.append(
            Finding(
                "eventbridge rule", FAIL, f"rule {name} is DISABLED", f"aws events enable-rule --name {name}"
            )
        )
    targets = events.list_targets_by_rule(Rule=name).get("Targets") or []
    if not any(t.get("Arn") == facts.queue_arn for t in targets):
        problems.append(
            Finding(
                "eventbridge rule",
                FAIL,
                f"rule {name} does not target {facts.queue_arn}",
                f"aws events put-targets --rule {name} --targets Id=events-queue,Arn={facts.queue_arn}",
            )
        )
    pattern = rule.get("EventPattern")
    moment = datetime.fromtimestamp(now, tz=UTC)
    keys = example_keys(scheme, moment)
    wanted = json.dumps(event_pattern(scheme.bucket, scheme.prefix))
    pattern_fix = f"aws events put-rule --name {name} --event-pattern '{wanted}' (EventBridge keys are not URL-encoded: '=' stays '=')"
    if not pattern:
        problems.append(
            Finding("eventbridge rule", FAIL, f"rule {name} has no event pattern (a schedule?)", pattern_fix)
        )
    else:
        account = facts.account or "123456789012"
        region = events.meta.region_name
        for key in keys:
            for reason, state in (("PutObject", FAIL), ("CompleteMultipartUpload", WARN)):
                event = s3_event(scheme.bucket, key, account, region, reason, moment, facts.partition)
                matched = events.test_event_pattern(EventPattern=pattern, Event=json.dumps(event)).get(
                    "Result"
                )
                if not matched:
                    layout = "Hive" if "aws-account-id=" in key else "plain"
                    problems.append(
                        Finding(
                            "eventbridge rule",
                            state,
                            f"rule {name}'s pattern does not match a {reason} of a {layout}-layout key of the "
                            f"table (s3://{scheme.bucket}/{key})",
                            pattern_fix,
                        )
                    )
                    break
        if not keys:
            problems.append(
                Finding(
                    "eventbridge rule",
                    WARN,
                    f"no example flow-log key could be built for {scheme.location}: the pattern is unchecked",
                )
            )
    return combine(
        "eventbridge rule", problems, f"rule {name} sends Object Created of {scheme.location} to the queue"
    )


def queue_attributes(sqs: Any, queue_url: str) -> dict[str, str]:
    return dict(sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"])


def _sender(target: Target, facts: Facts) -> tuple[str, str, set[str]]:
    """Who sends to the queue: (service principal, its aws:SourceArn, the condition keys a
    statement for it should carry to admit that source only)."""
    if target.trigger == EVENTBRIDGE:
        return "events.amazonaws.com", facts.rule_arn, {"aws:sourcearn"} if facts.rule_arn else set()
    if facts.topic_arn:
        return "sns.amazonaws.com", facts.topic_arn, {"aws:sourcearn"}
    assert facts.scheme is not None
    # A bucket ARN names no account, and a deleted bucket's name can be taken by another account:
    # S3's guide asks for aws:SourceAccount as well as aws:SourceArn in destination policies.
    bucket_arn = f"arn:{facts.partition}:s3:::{facts.scheme.bucket}"
    return "s3.amazonaws.com", bucket_arn, {"aws:sourcearn", "aws:sourceaccount"}


def check_queue_policy(facts: Facts, target: Target) -> Finding:
    """3a. The queue's policy lets S3 (or the rule, or the topic) send, and only from this source."""
    assert facts.scheme is not None and facts.queue_attributes is not None
    policy = policy_document(facts.queue_attributes.get("Policy"))
    principal, source, conditions = _sender(target, facts)
    # The stack deploys in the bucket's account, next to the queue: the queue's account is the bucket's.
    context = SERVICE_CONTEXT | ({"aws:sourceaccount": facts.account} if facts.account else {})
    if source:
        context["aws:sourcearn"] = source
    request = Request(principal, ("sqs:SendMessage",), facts.queue_arn, context)
    verdict = evaluate_policy(policy, request)
    statement = {
        "Sid": principal.split(".")[0].upper() + "SendsObjectCreated",
        "Effect": "Allow",
        "Principal": {"Service": principal},
        "Action": "sqs:SendMessage",
        "Resource": facts.queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": source or "<rule ARN>"}}
        | (
            {"StringEquals": {"aws:SourceAccount": facts.account}}
            if "aws:sourceaccount" in conditions and facts.account
            else {}
        ),
    }
    # SetQueueAttributes replaces the whole policy: the fix is the policy as it is, without a Deny
    # that applies, plus the statement this check looked for (under a Sid of its own).
    kept = [
        st
        for st in listify((policy or {}).get("Statement"))
        if not (isinstance(st, dict) and st.get("Sid") in verdict.denied)
    ]
    taken = {str(st.get("Sid")) for st in kept if isinstance(st, dict)}
    number = 2
    while statement["Sid"] in taken:
        statement["Sid"] = re.sub(r"\d*$", str(number), str(statement["Sid"]))
        number += 1
    merged = {"Version": "2012-10-17", **(policy or {}), "Statement": [*kept, statement]}
    url = target.queue_url or facts.queue_arn
    fix = (
        f"aws sqs set-queue-attributes --queue-url {url} --attributes "
        f"'{json.dumps({'Policy': json.dumps(merged)})}'"
    )
    who = f"{principal} from {source or 'the rule'}"
    if verdict.denied:
        return Finding(
            "queue policy",
            FAIL,
            f"statement {verdict.denied[0]} denies sqs:SendMessage to {who}",
            fix,
        )
    if not verdict.grants(request):
        why = f" ({'; '.join(verdict.refused[:3])})" if verdict.refused else ""
        return Finding("queue policy", FAIL, f"the queue policy does not let {who} send{why}", fix)
    missing = sorted(conditions - verdict.conditions)
    unverified = verdict.caveat()
    if missing:
        return Finding(
            "queue policy",
            WARN,
            f"{principal} may send, but the statement lacks {', '.join(missing)}: any "
            f"{ {'s3': 'bucket', 'events': 'rule', 'sns': 'topic'}[principal.split('.')[0]] } could send "
            f"(confused deputy){unverified}",
            fix,
        )
    return Finding("queue policy", WARN if unverified else OK, f"{who} may send{unverified}")


def check_topic_policy(sns: Any, facts: Facts) -> Finding:
    """SNS fan-out: the topic between the bucket and the queue lets S3 publish from this bucket,
    and its encryption is one S3 can use."""
    assert facts.scheme is not None
    attributes = sns.get_topic_attributes(TopicArn=facts.topic_arn)["Attributes"]
    bucket_arn = f"arn:{facts.partition}:s3:::{facts.scheme.bucket}"
    context = SERVICE_CONTEXT | {"aws:sourcearn": bucket_arn}
    context |= {"aws:sourceaccount": facts.account} if facts.account else {}
    request = Request("s3.amazonaws.com", ("sns:Publish",), facts.topic_arn, context)
    policy = policy_document(attributes.get("Policy"))
    verdict = evaluate_policy(policy, request)
    problems = []
    if not verdict.grants(request):
        statement = {
            "Sid": "S3PublishesObjectCreated",
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "SNS:Publish",
            "Resource": facts.topic_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": bucket_arn}}
            | ({"StringEquals": {"aws:SourceAccount": facts.account}} if facts.account else {}),
        }
        merged = (policy or {"Version": "2012-10-17"}) | {
            "Statement": [*listify((policy or {}).get("Statement")), statement]
        }
        problems.append(
            Finding(
                "topic policy",
                FAIL,
                f"topic {facts.topic_arn} does not let s3.amazonaws.com publish for {bucket_arn}",
                f"aws sns set-topic-attributes --topic-arn {facts.topic_arn} --attribute-name Policy "
                f"--attribute-value '{json.dumps(merged)}'",
            )
        )
    key = attributes.get("KmsMasterKeyId", "")
    if key == "alias/aws/sns" or key.endswith(":alias/aws/sns"):
        # As with aws/sqs: an AWS managed key's policy cannot admit S3.
        problems.append(
            Finding(
                "topic policy",
                FAIL,
                f"topic {facts.topic_arn} is encrypted with the AWS managed key aws/sns, which S3 cannot use",
                f"aws sns set-topic-attributes --topic-arn {facts.topic_arn} --attribute-name KmsMasterKeyId "
                "--attribute-value <a customer managed key that admits s3.amazonaws.com>",
            )
        )
    if not problems and verdict.caveat():
        problems.append(
            Finding(
                "topic policy", WARN, f"s3.amazonaws.com may publish to {facts.topic_arn}{verdict.caveat()}"
            )
        )
    return combine("topic policy", problems, f"s3.amazonaws.com may publish to {facts.topic_arn}")


def check_queue_encryption(kms: Any, facts: Facts, target: Target) -> Finding:
    """3b. The queue's encryption is one S3 (or EventBridge) can write to."""
    assert facts.queue_attributes is not None
    attributes = facts.queue_attributes
    key_id = attributes.get("KmsMasterKeyId", "")
    service = _sender(target, facts)[0]
    sse_sqs = f"aws sqs set-queue-attributes --queue-url {target.queue_url or facts.queue_arn} --attributes SqsManagedSseEnabled=true"
    if not key_id:
        if str(attributes.get("SqsManagedSseEnabled", "")).lower() == "true":
            return Finding("queue encryption", OK, "SSE-SQS (keys SQS manages; S3 can send)")
        return Finding("queue encryption", OK, "not encrypted at rest (S3 can send; SSE-SQS costs nothing)")
    # The AWS managed key's policy cannot be changed and admits only principals of the account
    # that use SQS ("Key management", SQS developer guide): a service principal such as S3 is not one.
    aws_managed = f" {key_id} is the AWS managed key aws/sqs, whose key policy cannot admit {service}"
    if key_id == "alias/aws/sqs" or key_id.endswith(":alias/aws/sqs"):
        return Finding(
            "queue encryption",
            FAIL,
            "the queue is encrypted with" + aws_managed,
            f"{sse_sqs}, or a customer managed key",
        )
    try:
        metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    except ClientError as exc:
        if error_code(exc) == "NotFoundException" and "alias/aws/" in key_id:
            return Finding("queue encryption", FAIL, "the queue is encrypted with" + aws_managed, sse_sqs)
        raise
    if metadata.get("KeyManager") == "AWS":
        return Finding(
            "queue encryption",
            FAIL,
            f"the queue's key {key_id} is AWS managed: its key policy cannot admit {service}",
            f"{sse_sqs}, or a customer managed key",
        )
    if metadata.get("KeyState") != "Enabled":
        return Finding(
            "queue encryption",
            FAIL,
            f"the queue's key {key_id} is {metadata.get('KeyState')}",
            f"aws kms enable-key --key-id {metadata.get('KeyId')}",
        )
    policy = (
        policy_document(kms.get_key_policy(KeyId=metadata["Arn"], PolicyName="default").get("Policy")) or {}
    )
    # S3 (and EventBridge) encrypt what they send with the queue's key: the key policy must let them
    # kms:GenerateDataKey and kms:Decrypt (S3 user guide, "Configuring ... notifications ... SSE").
    request = Request(service, ("kms:GenerateDataKey", "kms:Decrypt"), metadata["Arn"], {})
    verdict = evaluate_policy(policy, request)
    if not verdict.grants(request):
        statement = {
            "Sid": "ServiceSendsToEncryptedQueue",
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
            "Resource": "*",
        }
        merged = policy | {"Statement": [*listify(policy.get("Statement")), statement]}
        return Finding(
            "queue encryption",
            FAIL,
            f"the key policy of {metadata['Arn']} does not let {service} use kms:GenerateDataKey and kms:Decrypt",
            # PutKeyPolicy replaces the whole policy: the fix is the policy as it is, plus the statement.
            f"aws kms put-key-policy --key-id {metadata['KeyId']} --policy-name default --policy "
            f"'{json.dumps(merged)}'",
        )
    return Finding(
        "queue encryption", OK, f"SSE-KMS with customer managed key {metadata['Arn']}, usable by {service}"
    )


def check_queue(facts: Facts, target: Target) -> Finding:
    """The events queue redrives to the DLQ and hides a message long enough for the function."""
    assert facts.queue_attributes is not None
    attributes = facts.queue_attributes
    url = target.queue_url or facts.queue_arn
    problems = []
    redrive = policy_document(attributes.get("RedrivePolicy")) or {}
    dlq = str(redrive.get("deadLetterTargetArn", ""))
    if not dlq:
        problems.append(
            Finding(
                "queue",
                WARN,
                "the queue has no redrive policy: a message that keeps failing is retried until its retention ends, then lost",
                f"aws sqs set-queue-attributes --queue-url {url} --attributes file://redrive.json (RedrivePolicy to the DLQ)",
            )
        )
    elif facts.dlq_arn and dlq != facts.dlq_arn:
        problems.append(
            Finding(
                "queue",
                WARN,
                f"the queue redrives to {dlq}, not to the DLQ {facts.dlq_arn} this check watches",
            )
        )
    timeout = int((facts.function or {}).get("Timeout") or 0)
    visibility = int(attributes.get("VisibilityTimeout") or 0)
    # "set the source queue's visibility timeout to at least six times the timeout that you configure
    # on your function" (Lambda developer guide, "Using Lambda with Amazon SQS").
    if timeout and visibility < 6 * timeout:
        problems.append(
            Finding(
                "queue",
                WARN,
                f"visibility timeout {visibility}s is under 6 x the function's timeout {timeout}s: a message "
                "may be received again while an invocation still works on it",
                f"aws sqs set-queue-attributes --queue-url {url} --attributes VisibilityTimeout={6 * timeout}",
            )
        )
    detail = f"redrives to {dlq} after {redrive.get('maxReceiveCount')} receives" if dlq else ""
    return combine("queue", problems, detail or "queue attributes fine")


def event_source_mappings(lambda_: Any, queue_arn: str) -> list[dict[str, Any]]:
    mappings: list[dict[str, Any]] = []
    for page in lambda_.get_paginator("list_event_source_mappings").paginate(EventSourceArn=queue_arn):
        mappings.extend(page.get("EventSourceMappings") or [])
    return mappings


def check_mapping(lambda_: Any, target: Target, facts: Facts) -> tuple[Finding, str]:
    """4a. Lambda reads the queue: an Enabled mapping that reports batch item failures.
    Returns the finding and the function it maps to (when none was named)."""
    mappings = event_source_mappings(lambda_, facts.queue_arn)
    wanted = _function_name(target.function_name)
    ours = [m for m in mappings if not wanted or _function_name(str(m.get("FunctionArn", ""))) == wanted]
    function = wanted or (_function_name(str(ours[0].get("FunctionArn", ""))) if ours else "")
    create = (
        f"aws lambda create-event-source-mapping --function-name {function or '<function>'} --event-source-arn "
        f"{facts.queue_arn} --batch-size 10 --function-response-types ReportBatchItemFailures"
    )
    if not ours:
        return Finding(
            "event source mapping",
            FAIL,
            f"no event source mapping from {facts.queue_arn} to {function or 'a function'}",
            create,
        ), function
    mapping = ours[0]
    uuid = mapping.get("UUID", "")
    problems = []
    state = str(mapping.get("State", ""))
    # States: Creating, Enabling, Enabled, Disabling, Disabled, Updating, Deleting (Lambda API).
    if state == "Disabled" or state == "Disabling":
        reason = mapping.get("StateTransitionReason") or ""
        problems.append(
            Finding(
                "event source mapping",
                FAIL,
                f"mapping {uuid} is {state}{f' ({reason})' if reason else ''}: messages wait in the queue",
                f"aws lambda update-event-source-mapping --uuid {uuid} --enabled",
            )
        )
    elif state != "Enabled":
        problems.append(
            Finding("event source mapping", WARN, f"mapping {uuid} is {state}: check again in a minute")
        )
    if "ReportBatchItemFailures" not in (mapping.get("FunctionResponseTypes") or []):
        problems.append(
            Finding(
                "event source mapping",
                FAIL,
                f"mapping {uuid} does not report batch item failures: Lambda ignores the function's "
                "batchItemFailures and deletes a whole batch whose records failed",
                f"aws lambda update-event-source-mapping --uuid {uuid} --function-response-types ReportBatchItemFailures",
            )
        )
    others = sorted({_function_name(str(m.get("FunctionArn", ""))) for m in mappings if m not in ours})
    if others:
        problems.append(
            Finding(
                "event source mapping",
                WARN,
                f"the queue also feeds {', '.join(others)}: each message goes to one consumer only",
            )
        )
    batch = f"batch size {mapping.get('BatchSize')}"
    return combine(
        "event source mapping",
        problems,
        f"mapping {uuid} ({state}, {batch}, ReportBatchItemFailures) to {function}",
    ), function


def check_function(lambda_: Any, target: Target, facts: Facts, name: str) -> Finding:
    """4b. The function exists, can run, and its environment names this table and bucket."""
    try:
        config = lambda_.get_function_configuration(FunctionName=name)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return Finding("function", FAIL, f"function {name} does not exist", "redeploy the stack")
        raise
    facts.function = config
    facts.function_arn = str(config.get("FunctionArn", ""))
    if not facts.account:
        facts.account = _arn_parts(facts.function_arn)[4] if len(_arn_parts(facts.function_arn)) > 4 else ""
    problems = []
    state = str(config.get("State", "Active"))
    if state == "Failed" or config.get("LastUpdateStatus") == "Failed":
        reason = config.get("StateReason") or config.get("LastUpdateStatusReason") or ""
        problems.append(
            Finding(
                "function",
                FAIL,
                f"function {name} is {state}/{config.get('LastUpdateStatus')}: {reason}",
                "redeploy the stack",
            )
        )
    elif state == "Inactive":
        problems.append(
            Finding(
                "function",
                WARN,
                f"function {name} is Inactive (idle): its next invocation waits while Lambda restores it",
            )
        )
    # The function reads its tables as config.Settings does: GLUE_TABLES, or GLUE_DATABASE,
    # GLUE_TABLE and GLUE_CATALOG_ID.
    variables = dict((config.get("Environment") or {}).get("Variables") or {})
    env_fix_vars = dict(variables)
    wanted = (target.catalog_id, target.database.lower(), target.table.lower())
    try:
        reads = Settings.from_env(variables).table_names
    except SettingsError as exc:
        reads = ()
        problems.append(
            Finding("function", FAIL, f"function {name} cannot start: {exc}", "redeploy the stack")
        )
    if reads and not any((n.catalog_id, n.database.lower(), n.table.lower()) == wanted for n in reads):
        shown = ", ".join(str(n) for n in reads)
        if variables.get("GLUE_TABLES", "").strip():
            entry = TableName(target.catalog_id, target.database, target.table)
            env_fix_vars["GLUE_TABLES"] = f"{variables['GLUE_TABLES'].strip()},{entry}"
        else:
            env_fix_vars.update({"GLUE_DATABASE": target.database, "GLUE_TABLE": target.table})
            env_fix_vars.pop("GLUE_CATALOG_ID", None)
            if target.catalog_id:
                env_fix_vars["GLUE_CATALOG_ID"] = target.catalog_id
        problems.append(
            Finding(
                "function",
                FAIL,
                f"function {name} partitions {shown}, not {target.database}.{target.table}"
                + (f" in catalog {target.catalog_id}" if target.catalog_id else ""),
                _env_fix(name, env_fix_vars),
            )
        )
    buckets = {b.strip() for b in variables.get("SOURCE_BUCKETS", "").split(",") if b.strip()}
    bucket = facts.scheme.bucket if facts.scheme else target.bucket
    if buckets and bucket and bucket not in buckets:
        env_fix_vars["SOURCE_BUCKETS"] = ",".join(sorted(buckets | {bucket}))
        problems.append(
            Finding(
                "function",
                FAIL,
                f"function {name} ignores bucket {bucket}: SOURCE_BUCKETS={variables['SOURCE_BUCKETS']}",
                _env_fix(name, env_fix_vars),
            )
        )
    if target.cache_table and variables.get("CACHE_TABLE") != target.cache_table:
        problems.append(
            Finding(
                "function",
                WARN,
                f"function {name} uses cache {variables.get('CACHE_TABLE') or '(none)'}, the stack's is {target.cache_table}",
            )
        )
    concurrency = lambda_.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")
    if concurrency == 0:
        problems.append(
            Finding(
                "function",
                FAIL,
                f"function {name} has reserved concurrency 0: every invocation is throttled",
                f"aws lambda delete-function-concurrency --function-name {name}",
            )
        )
    return combine(
        "function", problems, f"function {name} ({state}) partitions {target.database}.{target.table}"
    )


def _env_fix(name: str, variables: dict[str, str]) -> str:
    # update-function-configuration replaces the whole environment: every variable is written.
    return (
        f"redeploy the stack with the right params, or aws lambda update-function-configuration --function-name {name} "
        f"--environment '{json.dumps({'Variables': variables})}'"
    )


def check_function_permission(lambda_: Any, target: Target, facts: Facts) -> Finding:
    """s3 mode: the function's resource policy lets S3 invoke it for this bucket, and failed
    events go to the DLQ (Lambda retries an asynchronous invocation twice, then drops it)."""
    assert facts.scheme is not None
    name = target.function_name
    bucket_arn = f"arn:{facts.partition}:s3:::{facts.scheme.bucket}"
    add = (
        f"aws lambda add-permission --function-name {name} --statement-id s3-object-created --action "
        f"lambda:InvokeFunction --principal s3.amazonaws.com --source-arn {bucket_arn}"
        + (f" --source-account {facts.account}" if facts.account else "")
    )
    try:
        policy = policy_document(lambda_.get_policy(FunctionName=name).get("Policy"))
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
        policy = None
    context = SERVICE_CONTEXT | {"aws:sourcearn": bucket_arn}
    context |= {"aws:sourceaccount": facts.account} if facts.account else {}
    request = Request("s3.amazonaws.com", ("lambda:InvokeFunction",), facts.function_arn, context)
    verdict = evaluate_policy(policy, request)
    problems = []
    if verdict.grants(request) and verdict.caveat():
        problems.append(
            Finding("function permission", WARN, f"s3.amazonaws.com may invoke {name}{verdict.caveat()}")
        )
    if not verdict.grants(request):
        problems.append(
            Finding(
                "function permission",
                FAIL,
                f"function {name}'s resource policy does not let s3.amazonaws.com invoke it for {bucket_arn}",
                add,
            )
        )
    destination = ""
    try:
        invoke = lambda_.get_function_event_invoke_config(FunctionName=name)
        destination = str(
            ((invoke.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination", "")
        )
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
    if not facts.dlq_arn and destination.startswith("arn:") and ":sqs:" in destination:
        facts.dlq_arn = destination  # the DLQ, when none was named
    dlq = facts.dlq_arn
    if not destination or (dlq and destination != dlq):
        problems.append(
            Finding(
                "function permission",
                WARN,
                f"function {name} sends failed events to {destination or 'nowhere'}: after two retries they are dropped",
                f"aws lambda put-function-event-invoke-config --function-name {name} --destination-config "
                f"'{json.dumps({'OnFailure': {'Destination': dlq or '<DLQ ARN>'}})}'",
            )
        )
    return combine(
        "function permission",
        problems,
        f"s3.amazonaws.com may invoke {name} for {bucket_arn}; failures go to {destination}",
    )


def check_dlq(sqs: Any, cloudwatch: Any, facts: Facts, now: float) -> Finding:
    """5. The DLQ is empty; if not, how old its oldest message is (CloudWatch, never guessed)."""
    url = facts.dlq_url
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    depth = int(attributes.get("ApproximateNumberOfMessages") or 0)
    hidden = int(attributes.get("ApproximateNumberOfMessagesNotVisible") or 0)
    if not depth and not hidden:
        return Finding("dlq", OK, f"{_queue_name(url)} is empty")
    _, age = oldest_message_age(cloudwatch, url, now)
    count = f"{depth} {'message' if depth == 1 else 'messages'}" + (
        f" (+{hidden} in flight)" if hidden else ""
    )
    return Finding(
        "dlq",
        FAIL,
        f"{_queue_name(url)} holds {count}; the oldest is {age}: events that gave up",
        f"fix the cause (the other checks, the function's logs), then vpcflow-partitioner replay --queue-url {url}",
    )


def oldest_message_age(cloudwatch: Any, url: str, now: float) -> tuple[float | None, str]:
    """The age of a queue's oldest message in seconds (None: not known) and how to say it:
    CloudWatch's ApproximateAgeOfOldestMessage of the last hour, never guessed."""
    try:
        end = datetime.fromtimestamp(now, tz=UTC)
        points = (
            cloudwatch.get_metric_statistics(
                Namespace="AWS/SQS",
                MetricName="ApproximateAgeOfOldestMessage",
                Dimensions=[{"Name": "QueueName", "Value": _queue_name(url)}],
                StartTime=end - timedelta(hours=1),
                EndTime=end,
                Period=60,
                Statistics=["Maximum"],
            ).get("Datapoints")
            or []
        )
    except ClientError as exc:
        return None, f"unknown (CloudWatch: {error_code(exc)})"
    if not points:
        return None, "unknown (no CloudWatch datapoint in the last hour)"
    latest = max(points, key=lambda p: p["Timestamp"])
    seconds = float(latest["Maximum"])
    return seconds, f"{_duration(seconds)} (CloudWatch, {latest['Timestamp']:%H:%M} UTC)"


# The stack's queue-age alarm fires past this (param queueAgeAlarmSeconds): polling has stopped
# or the function fails, and a message waiting longer than the queue's retention is lost unseen.
BACKLOG_SECONDS = 3600


def check_backlog(cloudwatch: Any, facts: Facts, target: Target, now: float) -> Finding:
    """The events queue is drained: its oldest message is younger than BACKLOG_SECONDS."""
    assert facts.queue_attributes is not None
    attributes = facts.queue_attributes
    url = target.queue_url or facts.queue_arn
    depth = int(attributes.get("ApproximateNumberOfMessages") or 0)
    retention = int(attributes.get("MessageRetentionPeriod") or 0)
    if not depth:
        return Finding("backlog", OK, "no message waits in the events queue")
    seconds, age = oldest_message_age(cloudwatch, url, now)
    waiting = (
        f"{depth} {'message waits' if depth == 1 else 'messages wait'} in the events queue, the oldest {age}"
    )
    if seconds is not None and seconds > (target.backlog_seconds or BACKLOG_SECONDS):
        expiry = f"; messages expire unseen after {_duration(retention)}" if retention else ""
        return Finding(
            "backlog",
            FAIL,
            f"{waiting}: nothing is draining it{expiry}",
            "see the event source mapping and function checks (disabled, throttled to 0, failing), "
            f"and the function's logs; aws sqs get-queue-attributes --queue-url {url} --attribute-names All",
        )
    return Finding("backlog", OK, waiting)


# The stack's alarms, `<stack>-<name>` (deploy/resources.js; a test holds the two together).
# Named exactly: another stage's stack may share the name as a prefix (`prod` and `prod-eu`).
ALARMS = (
    "function-errors",
    "sweep-errors",
    "objects-unpartitionable",
    "objects-outside-table",
    "dlq-not-empty",
    "events-queue-age",
)


def check_alarms(cloudwatch: Any, sns: Any, target: Target, topic_arn: str) -> Finding:
    """The stack's alarms act, and their topic has someone who reads it."""
    names = [f"{target.stack}-{name}" for name in ALARMS]
    alarms = [
        alarm
        for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNames=names)
        for alarm in page.get("MetricAlarms") or []
    ]
    problems = []
    silent = [a["AlarmName"] for a in alarms if not a.get("ActionsEnabled") or not a.get("AlarmActions")]
    found = {a["AlarmName"] for a in alarms}
    # The queue-age alarm exists only with a queue (not in s3 mode).
    queue_age = f"{target.stack}-events-queue-age"
    missing = [n for n in names if n not in found and (n != queue_age or target.queue_url)]
    if missing:
        problems.append(
            Finding("alarms", WARN, f"missing alarms: {', '.join(missing)}", "redeploy the stack")
        )
    if silent:
        problems.append(
            Finding(
                "alarms",
                FAIL,
                f"{', '.join(silent)} notify nobody (actions disabled or none)",
                f"aws cloudwatch enable-alarm-actions --alarm-names {' '.join(silent)} (or redeploy the stack)",
            )
        )
    topics = {topic_arn} if topic_arn else set()
    topics |= {a for alarm in alarms for a in alarm.get("AlarmActions") or [] if ":sns:" in a}
    for topic in sorted(topics):
        problems += _topic_readers(sns, topic)
    count = f"{len(alarms)} {'alarm' if len(alarms) == 1 else 'alarms'}"
    return combine("alarms", problems, f"{count} act; {', '.join(sorted(topics)) or 'no topic'} is read")


def _topic_readers(sns: Any, topic: str) -> list[Finding]:
    """Nothing when someone confirmed a subscription to the topic; otherwise why not."""
    try:
        subscriptions = [
            s
            for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic)
            for s in page.get("Subscriptions") or []
        ]
    except ClientError as exc:  # a topic of another account (alarmTopicArn): said, not fatal
        return [
            Finding(
                "alarms",
                WARN,
                f"cannot read the subscriptions of {topic} ({error_code(exc)}): make sure someone confirmed one",
            )
        ]
    subscribe = (
        f"aws sns subscribe --topic-arn {topic} --protocol email --notification-endpoint you@example.com "
        "(then click the link SNS mails), or deploy with --param=alarmEmail=you@example.com"
    )
    if not subscriptions:
        return [Finding("alarms", WARN, f"nobody subscribes to {topic}: alarms reach no one", subscribe)]
    if not any(str(s.get("SubscriptionArn", "")).startswith("arn:") for s in subscriptions):
        return [
            Finding(
                "alarms",
                WARN,
                f"every subscription to {topic} is pending confirmation: alarms reach no one yet",
                "click the confirmation link SNS mailed (or subscribe again)",
            )
        ]
    return []


# Past this many partitions, Athena's planning time grows with a table it must load whole: a
# partition index lets it fetch one day's partitions instead ("Creating partition indexes").
INDEX_ADVICE_PARTITIONS = 100_000


def check_partition_index(glue: Any, target: Target, facts: Facts) -> Finding:
    """A table past INDEX_ADVICE_PARTITIONS partitions has a partition index Athena uses: ACTIVE
    (or CREATING), led by the first date key a query names, with partition filtering on."""
    assert facts.table is not None and facts.scheme is not None
    ref = facts.scheme.table
    indexes = TableWriter(glue, ref).partition_indexes()
    enabled = str((facts.table.get("Parameters") or {}).get(FILTERING, "")).lower() == "true"
    alter = f"ALTER TABLE `{ref.database}`.`{ref.name}` SET TBLPROPERTIES ('{FILTERING}'='true') (Athena)"
    keys = date_index_keys(facts.table)

    def described(i: dict[str, Any]) -> str:
        return f"{i['IndexName']} ({', '.join(k['Name'] for k in i.get('Keys') or [])}) {i.get('IndexStatus', '')}"

    # "The first key of the index should be passed in the expression" (Glue developer guide).
    usable = [
        i
        for i in indexes
        if i.get("IndexStatus") in ("ACTIVE", "CREATING")
        and [k["Name"] for k in i.get("Keys") or []][:1] == keys[:1]
    ]
    create = (
        f"aws glue create-partition-index --database-name {ref.database} --table-name {ref.name} "
        f"--partition-index 'Keys={','.join(keys)},IndexName={INDEX_NAME}'{_catalog_flag(ref)}"
    )
    if usable and not enabled:
        return Finding(
            "partition index",
            WARN,
            f"the table has partition index {described(usable[0])}, but {FILTERING} is not true: "
            "Athena does not use it",
            alter,
        )
    if usable:
        return Finding("partition index", OK, f"{described(usable[0])}, with {FILTERING}")
    if indexes:
        return Finding(
            "partition index",
            WARN,
            f"no partition index Athena can use for dates: {'; '.join(described(i) for i in indexes)} "
            f"(an ACTIVE index led by {keys[0]} is needed)",
            f"{create}, then {alter}",
        )
    counted = _partition_count(glue, facts)
    if counted > INDEX_ADVICE_PARTITIONS:
        return Finding(
            "partition index",
            WARN,
            f"the table has more than {INDEX_ADVICE_PARTITIONS:,} partitions and no partition index: "
            "Athena loads every partition to plan each query",
            f"{create}, then {alter}; or vpcflow-partitioner init ... --partition-index",
        )
    return Finding(
        "partition index",
        OK,
        f"{counted:,} partitions: no index needed yet (it pays off past {INDEX_ADVICE_PARTITIONS:,})",
    )


# "Number of partitions per table": 10,000,000 by default, adjustable ("AWS Glue endpoints and
# quotas", AWS General Reference). A table that would pass it stops taking partitions.
GLUE_PARTITIONS_PER_TABLE = 10_000_000
QUOTA_WARN_SHARE = 0.8
_FOREVER_YEARS = 3  # the horizon a table without an expiration rule is projected over


QUOTA_LIST_CALLS = 5_000  # the region folders of ~2,500 accounts; past it, "at least"


def check_partition_quota(s3: Any, glue: Any, facts: Facts) -> Finding:
    """The partitions the table will hold: its account-region folders x the days S3 keeps the
    objects (its lifecycle expiration, else _FOREVER_YEARS) x partitions a day, or what it holds
    already when that is more, against Glue's per-table quota; past QUOTA_WARN_SHARE of it,
    split the table."""
    assert facts.scheme is not None
    scheme = facts.scheme
    walk = FolderWalk(s3, scheme, max_list_calls=QUOTA_LIST_CALLS)
    regions = len(walk.region_folders())
    if walk.truncated:
        # The walk goes level by level: stopped, it may have reached no region folder at all.
        return Finding(
            "partition quota",
            WARN,
            f"the table's account-region folders were not all counted within {QUOTA_LIST_CALLS:,} list "
            f"calls (more than ~{QUOTA_LIST_CALLS // 2:,} accounts): its projection is unknown, and an "
            f"organisation that size passes Glue's {GLUE_PARTITIONS_PER_TABLE:,} partitions per table "
            "within years",
            "split the table, one per flow-log prefix or group of accounts, and name them in the "
            "`tables` param (GLUE_TABLES) (docs/SCALE.md)",
        )
    days = _expiration_days(s3, scheme.bucket, scheme.prefix)
    kept = days if days is not None else 365 * _FOREVER_YEARS
    per_day = {"hour": 24, "day": 1}.get(scheme.deepest_level, 1 / 30)
    projected = int(regions * kept * per_day)
    # What the table holds now: partitions of expired objects stay until `audit --prune`.
    held = _partition_count(glue, facts)
    # Glue keeps a partition after S3 expires its objects: the lifecycle bounds the table only
    # when `audit --prune` deletes the emptied partitions.
    horizon = (
        f"{days} days kept (S3 lifecycle, with `audit --prune` after it)"
        if days is not None
        else f"{_FOREVER_YEARS} years (no expiration rule)"
    )
    detail = (
        f"{regions:,} account-region {_plural(regions, 'folder')} x {horizon}"
        + (" x 24 hours" if per_day == 24 else "")
        + f" = {projected:,} partitions"
    )
    if held > INDEX_ADVICE_PARTITIONS and held > projected:
        # Counted only so far: the table may be anywhere up to its quota. Say so, never a share.
        return Finding(
            "partition quota",
            WARN,
            f"{detail}, but the table holds more than {INDEX_ADVICE_PARTITIONS:,} already (the count "
            "stopped there): partitions of expired objects stay until `audit --prune`; compare its "
            f"count with Glue's {GLUE_PARTITIONS_PER_TABLE:,} per table",
            f"aws glue get-partitions --database-name {scheme.table.database} --table-name "
            f"{scheme.table.name}{_catalog_flag(scheme.table)} --query 'length(Partitions)'; then "
            "`vpcflow-partitioner audit --prune`, or split the table (docs/SCALE.md)",
        )
    if held > projected:
        detail += f"; the table holds {held:,} already"
        projected = held
    detail += (
        f": {projected / GLUE_PARTITIONS_PER_TABLE:.0%} of Glue's {GLUE_PARTITIONS_PER_TABLE:,} per table"
    )
    if projected >= QUOTA_WARN_SHARE * GLUE_PARTITIONS_PER_TABLE:
        return Finding(
            "partition quota",
            WARN,
            f"{detail}: past it the table takes no new partitions",
            "split the table, one per flow-log prefix or group of accounts, and name them in the "
            "`tables` param (GLUE_TABLES) (docs/SCALE.md); or expire old objects; or ask Service "
            "Quotas for more partitions per table",
        )
    return Finding("partition quota", OK, detail)


def _expiration_days(s3: Any, bucket: str, prefix: str) -> int | None:
    """The fewest days an enabled lifecycle rule covering every object under `prefix` keeps them."""
    try:
        rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules") or []
    except ClientError as exc:
        if error_code(exc) == "NoSuchLifecycleConfiguration":
            return None
        raise
    found = []
    for rule in rules:
        days = (rule.get("Expiration") or {}).get("Days")
        if rule.get("Status") != "Enabled" or not days:
            continue
        where = rule.get("Filter") or {}
        both = where.get("And") or {}
        if {"Tag", "ObjectSizeGreaterThan", "ObjectSizeLessThan"} & (set(where) | set(both)) or both.get(
            "Tags"
        ):
            continue  # only some objects (by tag or size): not every flow log
        covered = where.get("Prefix", (where.get("And") or {}).get("Prefix", rule.get("Prefix", "")))
        if prefix.startswith(covered or ""):
            found.append(int(days))
    return min(found) if found else None


def _plural(count: int, word: str) -> str:
    return word if count == 1 else f"{word}s"


def _partition_count(glue: Any, facts: Facts) -> int:
    """The table's partitions, counted page by page and stopped past INDEX_ADVICE_PARTITIONS (at
    most ~100 GetPartitions calls), once a doctor run: the index and quota checks both read it."""
    assert facts.scheme is not None
    if facts.partitions is None:
        counted = 0
        for _ in Catalog(glue, facts.scheme.table).partitions(columns=False):
            counted += 1
            if counted > INDEX_ADVICE_PARTITIONS:
                break
        facts.partitions = counted  # only once whole: a count an error cut short is not kept
    return facts.partitions


def _catalog_flag(ref: TableRef) -> str:
    return f" --catalog-id {ref.catalog_id}" if ref.catalog_id else ""


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# Partition creation changes the table's metadata: Lake Formation asks for ALTER on the table
# (CreatePartition fails with "Insufficient Lake Formation permission(s): Required Alter on <table>"),
# and reading the table and its partitions for DESCRIBE. ALTER on a table in a registered location
# also needs data location permission on that location: "Lake Formation data location permissions
# control the ability to create or alter Data Catalog resources that point to particular Amazon S3
# locations" ("Underlying data access control", Lake Formation developer guide).
LAKE_FORMATION_NEEDED = ("ALTER", "DESCRIBE")


def lake_formation_gaps(grants: Iterable[dict[str, Any]], role_arn: str) -> list[str]:
    """Which of LAKE_FORMATION_NEEDED the role lacks on the table, from ListPermissions entries."""
    held: set[str] = set()
    for grant in grants:
        principal = (grant.get("Principal") or {}).get("DataLakePrincipalIdentifier", "")
        if principal in (role_arn, "IAM_ALLOWED_PRINCIPALS"):
            permissions = set(grant.get("Permissions") or [])
            if principal == "IAM_ALLOWED_PRINCIPALS" and "ALL" in permissions:
                return []  # the table defers to IAM ("Use only IAM access control")
            held |= permissions
    if "ALL" in held:
        return []
    return [p for p in LAKE_FORMATION_NEEDED if p not in held]


def check_lake_formation(lakeformation: Any, target: Target, facts: Facts) -> Finding:
    """6. A table under Lake Formation grants the function's role what partition creation needs."""
    table = facts.table or {}
    if not table.get("IsRegisteredWithLakeFormation"):
        return Finding(
            "lake formation", OK, "the table is not registered with Lake Formation: IAM alone decides"
        )
    role = str((facts.function or {}).get("Role", ""))
    if not role:
        return Finding(
            "lake formation",
            ERROR,
            "the table is registered with Lake Formation, and the function's role is unknown: name --function",
        )
    ids = {"CatalogId": target.catalog_id} if target.catalog_id else {}
    resource = {"Table": {"DatabaseName": target.database, "Name": target.table} | ids}
    grants = _pages(
        lakeformation.list_permissions,
        "PrincipalResourcePermissions",
        **ids,
        Resource=resource,
        IncludeRelated="TRUE",
    )
    gaps = lake_formation_gaps(grants, role)
    problems = []
    if gaps:
        problems.append(
            Finding(
                "lake formation",
                FAIL,
                f"role {role} lacks Lake Formation {', '.join(gaps)} on {target.database}.{target.table} "
                "(grants through LF-Tag expressions are not read here)",
                f"aws lakeformation grant-permissions --principal DataLakePrincipalIdentifier={role} "
                f"--permissions {' '.join(LAKE_FORMATION_NEEDED)} --resource '{json.dumps(resource)}'",
            )
        )
    location = ""
    if facts.scheme is not None:
        location = f"arn:{facts.partition}:s3:::{facts.scheme.bucket}/{facts.scheme.prefix}"
    registered = [
        str(r.get("ResourceArn", ""))
        for r in _pages(lakeformation.list_resources, "ResourceInfoList")
        if location.rstrip("/").startswith(str(r.get("ResourceArn", "")).rstrip("/"))
    ]
    if registered:
        arn = max(registered, key=len)
        data = {"DataLocation": {"ResourceArn": arn} | ids}
        holders = _pages(lakeformation.list_permissions, "PrincipalResourcePermissions", **ids, Resource=data)
        if not any(
            (g.get("Principal") or {}).get("DataLakePrincipalIdentifier") == role
            and {"DATA_LOCATION_ACCESS", "ALL"} & set(g.get("Permissions") or [])
            for g in holders
        ):
            problems.append(
                Finding(
                    "lake formation",
                    FAIL,
                    f"role {role} lacks DATA_LOCATION_ACCESS on the registered location {arn}: partitions pointing there cannot be created",
                    f"aws lakeformation grant-permissions --principal DataLakePrincipalIdentifier={role} "
                    f"--permissions DATA_LOCATION_ACCESS --resource '{json.dumps(data)}'",
                )
            )
    return combine(
        "lake formation", problems, f"role {role} holds {', '.join(LAKE_FORMATION_NEEDED)} on the table"
    )


def _pages(call: Callable[..., dict[str, Any]], items: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every item of a NextToken-paged Lake Formation list (boto3 has no paginator for these)."""
    out: list[dict[str, Any]] = []
    token = ""
    while True:
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        out.extend(page.get(items) or [])
        token = page.get("NextToken") or ""
        if not token:
            return out


def check_schedule(lambda_: Any, events: Any, name: str) -> Finding:
    """The safety sweep's schedule rule exists and is enabled."""
    try:
        arn = lambda_.get_function_configuration(FunctionName=name)["FunctionArn"]
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return Finding(
                "schedule", FAIL, f"the sweep function {name} does not exist", "redeploy the stack"
            )
        raise
    names = events.list_rule_names_by_target(TargetArn=arn).get("RuleNames") or []
    if not names:
        return Finding(
            "schedule",
            WARN,
            f"no EventBridge rule invokes the sweep {name}: missed partitions are never swept",
            "redeploy the stack (it creates the schedule)",
        )
    for rule in names:
        described = events.describe_rule(Name=rule)
        if described.get("State") != "DISABLED":
            return Finding(
                "schedule",
                OK,
                f"rule {rule} runs the sweep {described.get('ScheduleExpression') or ''}".rstrip(),
            )
    return Finding(
        "schedule",
        WARN,
        f"rule {names[0]} that runs the sweep {name} is DISABLED",
        f"aws events enable-rule --name {names[0]}",
    )


def check_cache(dynamodb: Any, name: str) -> Finding:
    """The DynamoDB cache exists and expires its entries on `expiration`."""
    try:
        dynamodb.describe_table(TableName=name)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return Finding(
                "cache",
                FAIL,
                f"cache table {name} does not exist: every record fails",
                "redeploy the stack (cache=true creates it)",
            )
        raise
    ttl = dynamodb.describe_time_to_live(TableName=name).get("TimeToLiveDescription") or {}
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING") or ttl.get("AttributeName") != "expiration":
        return Finding(
            "cache",
            WARN,
            f"cache table {name} has TTL {ttl.get('TimeToLiveStatus', 'DISABLED')} on {ttl.get('AttributeName') or '(none)'}: entries are never deleted (reads still treat them as expired)",
            f"aws dynamodb update-time-to-live --table-name {name} --time-to-live-specification Enabled=true,AttributeName=expiration",
        )
    return Finding("cache", OK, f"cache table {name}, TTL on expiration")


# ---------------------------------------------------------------- freshness and columns


@dataclass(frozen=True)
class FreshFolder:
    """A leaf folder of the table with flow-log objects written inside the window."""

    folder: str
    partition: PartitionSpec | None
    skip_reason: str
    first_seen: datetime  # the folder's oldest flow-log object
    samples: tuple[str, ...]  # the newest objects, one of another flow log when there is one
    fresh: int  # flow-log objects written in the window


_FLOW_LOG_ID = re.compile(r"_(fl-[0-9a-zA-Z]+)_")


def _samples(objects: list[tuple[datetime, str]]) -> tuple[str, ...]:
    """The newest object, and the newest of another flow log writing to the same folder (the
    likeliest place for a second format), else the second newest."""
    ordered = [key for _, key in sorted(objects, reverse=True)]
    if not ordered:
        return ()

    def flow_log(key: str) -> str:
        found = _FLOW_LOG_ID.search(key.rsplit("/", 1)[-1])
        return found.group(1) if found else ""

    first = ordered[0]
    other = next((k for k in ordered[1:] if flow_log(k) != flow_log(first)), None)
    second = other or (ordered[1] if len(ordered) > 1 else None)
    return (first, second) if second else (first,)


def fresh_folders(
    s3: Any, scheme: Scheme, now: float, hours: int = FRESH_HOURS
) -> tuple[list[FreshFolder], int]:
    """The table's leaf folders with flow-log objects written in the last `hours` (today's and,
    within the window, yesterday's date folders, walked as backfill walks them), and how many
    list calls it took."""
    since = now - hours * 3600
    until_day = datetime.fromtimestamp(now, tz=UTC).date()
    first_day = datetime.fromtimestamp(since, tz=UTC).date()
    walk = FolderWalk(s3, scheme, DateRange(first_day, until_day), workers=8)
    # Not probed: each leaf is listed below anyway, which finds its flow-log objects.
    leaves = [folder for folder, when in walk.leaf_folders() if _folder_end(when) >= since]
    calls = [walk.list_calls]

    def look(folder: str) -> FreshFolder | None:
        objects: list[tuple[datetime, str]] = []
        first: datetime | None = None
        token = ""
        while True:
            kwargs: dict[str, Any] = {"Bucket": scheme.bucket, "Prefix": folder}
            if token:
                kwargs["ContinuationToken"] = token
            response = s3.list_objects_v2(**kwargs)
            calls.append(1)
            for item in response.get("Contents") or []:
                obj = parse_key(item["Key"])
                if obj is None or obj.nested or leaf_folder(obj, scheme.deepest_level) != folder:
                    continue
                modified = item["LastModified"]
                first = modified if first is None else min(first, modified)
                if modified.timestamp() >= since:
                    objects.append((modified, item["Key"]))
            token = response.get("NextContinuationToken") or ""
            if not response.get("IsTruncated") or not token:
                break
        if not objects or first is None:
            return None
        newest = parse_key(max(objects)[1])
        assert newest is not None
        planned = scheme.plan(scheme.bucket, newest)
        spec = planned if isinstance(planned, PartitionSpec) else None
        reason = "" if spec else getattr(planned, "reason", "")
        return FreshFolder(folder, spec, reason, first, _samples(objects), len(objects))

    with ThreadPoolExecutor(8, thread_name_prefix="doctor") as pool:
        found = [f for f in pool.map(look, leaves) if f is not None]
    return sorted(found, key=lambda f: f.folder), sum(calls)


def _folder_end(when: tuple[int, ...]) -> float:
    """When a (year, month, day[, hour]) folder's time ends (an hour folder older than the
    window holds nothing fresh); a folder without its date is never skipped."""
    if len(when) < 3:
        return float("inf")
    start = datetime(when[0], when[1], when[2], tzinfo=UTC)
    if len(when) > 3:
        return (start + timedelta(hours=when[3] + 1)).timestamp()
    return (start + timedelta(days=1)).timestamp()


# The links an object passes on its way to a partition, in order: the first that failed is the
# likeliest reason a fresh folder has none.
_LINKS = (
    ("notification", "the bucket's notification"),
    ("eventbridge rule", "the EventBridge rule"),
    ("topic policy", "the SNS topic"),
    ("queue policy", "the queue policy"),
    ("queue encryption", "the queue's encryption"),
    ("queue", "the queue"),
    ("event source mapping", "the event source mapping"),
    ("function permission", "the function's permission for S3"),
    ("function", "the function"),
    ("lake formation", "Lake Formation"),
    ("table", "the table"),
)


def broken_link(findings: dict[str, Finding]) -> str:
    """The likeliest broken link between a new object and its partition."""
    for check, name in _LINKS:
        finding = findings.get(check)
        if finding is not None and finding.state == FAIL:
            return f"{name} (see the {check} check)"
    dlq = findings.get("dlq")
    if dlq is not None and dlq.state == FAIL:
        return "the function fails on these events (they reach the DLQ: read its logs)"
    return (
        "no check failed: read the function's logs (errors, throttles) and the queue's age of oldest message"
    )


def check_freshness(
    glue: Any, facts: Facts, folders: list[FreshFolder], now: float, target: Target
) -> Finding:
    """7. Each folder written in the window has its partition in Glue (Glue is asked, never the cache)."""
    assert facts.scheme is not None
    scheme = facts.scheme
    if not folders:
        return Finding(
            "freshness",
            WARN,
            f"no flow-log object written under {scheme.location} in the last {FRESH_HOURS} hours: is a flow log delivering here?",
            "aws ec2 describe-flow-logs --filter Name=log-destination-type,Values=s3",
        )
    specs = [f.partition for f in folders if f.partition is not None]
    existing = Catalog(glue, scheme.table).existing(specs) if specs else {}
    missing: list[FreshFolder] = []
    waiting: list[FreshFolder] = []
    elsewhere: list[str] = []
    unpartitionable: list[str] = []
    for folder in folders:
        if folder.partition is None:
            unpartitionable.append(f"{folder.folder} ({folder.skip_reason})")
            continue
        location = existing.get(folder.partition.values)
        if location is None:
            young = now - folder.first_seen.timestamp() < IN_FLIGHT_SECONDS
            (waiting if young else missing).append(folder)
        elif not same_folder(location, folder.partition.location):
            elsewhere.append(
                f"{'/'.join(folder.partition.values)} points at {location}, its objects are in {folder.partition.location}"
            )
    problems = []
    command = f"vpcflow-partitioner backfill --database {target.database} --table {target.table}"
    if missing:
        since = min(_date_of(f) for f in missing)
        names = ", ".join("/".join(f.partition.values) for f in missing[:5] if f.partition)
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        problems.append(
            Finding(
                "freshness",
                FAIL,
                f"{len(missing)} of {len(folders)} folders written in the last {FRESH_HOURS} hours have no "
                f"partition: {names}{more}; likely broken: {broken_link(facts.findings)}",
                f"fix that link, then {command} --since {since.isoformat()}",
            )
        )
    if unpartitionable:
        problems.append(
            Finding(
                "freshness",
                FAIL,
                f"the table cannot represent {', '.join(unpartitionable[:3])}",
                "fix the table's partition keys or Location (vpcflow-partitioner audit lists every such folder)",
            )
        )
    if elsewhere:
        problems.append(
            Finding(
                "freshness",
                FAIL,
                "; ".join(elsewhere[:3]),
                f"vpcflow-partitioner audit --fix --database {target.database} --table {target.table}",
            )
        )
    if waiting:
        names = ", ".join(f.folder for f in waiting[:3])
        problems.append(
            Finding(
                "freshness",
                WARN,
                f"{names}: first object under {IN_FLIGHT_SECONDS // 60} minutes old and no partition yet (notifications may take a minute): check again shortly",
            )
        )
    fresh = sum(f.fresh for f in folders)
    return combine(
        "freshness",
        problems,
        f"{len(folders)} folders written in the last {FRESH_HOURS} hours ({fresh} objects), each with its partition",
    )


def _date_of(folder: FreshFolder) -> date:
    obj = parse_key(folder.samples[0])
    assert obj is not None  # samples are flow-log keys
    return obj.date


def _file_name(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def check_columns(s3: Any, facts: Facts, folders: list[FreshFolder], target: Target) -> Finding:
    """8. The newest files of each fresh folder have the table's columns (their header line or
    Parquet footer only), and one folder does not mix formats."""
    assert facts.table is not None and facts.scheme is not None
    table = facts.table
    columns = [
        str(c.get("Name", "")).lower() for c in (table.get("StorageDescriptor") or {}).get("Columns") or []
    ]
    wanted_format = table_file_format(table)
    bucket = facts.scheme.bucket
    problems: list[Finding] = []
    read = 0
    differing: list[str] = []
    sampled = folders[:_SAMPLED_FOLDERS]
    init = f"vpcflow-partitioner init --database {target.database} --table {target.table} --location {facts.scheme.location}"
    for folder in sampled:
        seen: dict[str, tuple[str, ...]] = {}
        for key in folder.samples:
            url = f"s3://{bucket}/{key}"
            try:
                fields, file_format = read_object_fields(s3, url)
            except (ConfigurationError, TransientError, FormatError) as exc:
                problems.append(
                    Finding(
                        "columns",
                        ERROR,
                        f"could not read {url}: {exc}",
                        "the doctor's principal needs s3:GetObject (and kms:Decrypt for SSE-KMS objects)",
                    )
                )
                continue
            read += 1
            names = tuple(f.column for f in fields)
            seen[key] = names
            if file_format != wanted_format:
                problems.append(
                    Finding(
                        "columns",
                        FAIL,
                        f"{url} is {file_format}, the table reads {wanted_format}",
                        "give that flow log its own prefix and table: vpcflow-partitioner init --database "
                        f"{target.database} --table <another table> --location s3://{bucket}/<its prefix> "
                        f"--from-object {url}",
                    )
                )
                continue
            difference = field_difference(columns, names, positional=file_format == "text")
            if difference:
                differing.append(url)
                problems.append(
                    Finding(
                        "columns",
                        FAIL,
                        f"{url}: {difference}",
                        f"if the flow log's format changed for good: {init} --from-object {url} --update; if two "
                        "flow logs write different formats here: give one its own prefix and table "
                        "(init --from-object)",
                    )
                )
        formats = set(seen.values())
        if len(formats) > 1:
            keys = list(seen)
            problems.append(
                Finding(
                    "columns",
                    FAIL,
                    f"folder {folder.folder} mixes formats: {_file_name(keys[0])} has "
                    f"{len(seen[keys[0]])} fields, {_file_name(keys[1])} has {len(seen[keys[1]])}",
                    "one table reads one format: give each flow log its own prefix and table (init --from-object), "
                    "or make their LogFormat the same",
                )
            )
    if not sampled:
        return Finding("columns", OK, "no fresh folder to sample")
    more = f" (of {len(folders)})" if len(folders) > len(sampled) else ""
    return combine(
        "columns",
        problems,
        f"{read} files of {len(sampled)} fresh folders{more} have the table's {len(columns)} columns",
    )


# ---------------------------------------------------------------- the run


_DENIED = (
    "AccessDenied",
    "AccessDeniedException",
    "AuthorizationError",
    "UnauthorizedOperation",
    "AuthorizationErrorException",
)


def _guard(check: str, run: Callable[[], Finding]) -> Finding:
    """A check that raises becomes an `error` line (could not check); credentials, region and
    an unreachable endpoint stop the whole run (one line, as in every command)."""
    try:
        return run()
    except (NoCredentialsError, NoRegionError, EndpointConnectionError, ProfileNotFound, InvalidRegionError):
        raise
    except ClientError as exc:
        code = error_code(exc)
        operation = exc.operation_name
        if code in _DENIED:
            return Finding(
                check,
                ERROR,
                f"could not check: {operation} denied ({error_message(exc)})",
                f"give the doctor's principal permission for {operation}",
            )
        return Finding(check, ERROR, f"could not check: {operation}: {code}: {error_message(exc)}")
    except (BotoCoreError, ConfigurationError, TransientError, FormatError) as exc:
        return Finding(check, ERROR, f"could not check: {exc}")


def run_doctor(client: Client, target: Target, now: float, stack: StackInfo | None = None) -> list[Finding]:
    """Every check, in the order an object travels; each one line."""
    facts = Facts(dlq_arn=target.dlq_arn)
    out: list[Finding] = []

    def add(finding: Finding) -> Finding:
        facts.findings[finding.check] = finding
        out.append(finding)
        return finding

    if stack is not None:
        add(stack_finding(stack))
    table = add(_guard("table", lambda: check_table(client("glue"), target, facts)))
    trigger = target.trigger or (
        SQS if target.queue_url or target.queue_arn else S3 if target.function_name else ""
    )
    target = replace(target, trigger=trigger)

    if trigger == EVENTBRIDGE and not (target.queue_url or target.queue_arn) and target.rule_name:
        target = replace(target, queue_arn=_queue_of_rule(client("events"), target.rule_name))
    # The queue first: its ARN names the account and partition, its redrive policy the DLQ.
    if trigger in (SQS, EVENTBRIDGE) and not (target.queue_url or target.queue_arn):
        add(Finding("queue", ERROR, "the events queue is unknown: give --queue-url (or --stack)"))
    elif trigger in (SQS, EVENTBRIDGE):
        queue = _guard("queue", lambda: _read_queue(client("sqs"), target, facts))
        if queue.state != OK:
            add(queue)
    if not facts.account:
        facts.account = _caller_account(client)

    function_name = target.function_name
    mapping: Finding | None = None
    if trigger in (SQS, EVENTBRIDGE) and facts.queue_attributes is not None:
        result: list[str] = [function_name]

        def mapping_check() -> Finding:
            finding, name = check_mapping(client("lambda"), target, facts)
            result[0] = name
            return finding

        mapping = _guard("event source mapping", mapping_check)
        function_name = result[0]
    function: Finding | None = None
    if function_name:
        function = _guard("function", lambda: check_function(client("lambda"), target, facts, function_name))
        target = replace(target, function_name=function_name)

    if facts.scheme is None:
        add(_needs("notification", table))
    elif not trigger:
        add(
            Finding(
                "notification",
                ERROR,
                "the trigger is unknown: give --stack, --queue-url, --eventbridge or --function",
            )
        )
    elif trigger in (SQS, EVENTBRIDGE) and facts.queue_attributes is None:
        add(
            _needs("notification", facts.findings.get("queue") or Finding("queue", ERROR, "give --queue-url"))
        )
    elif trigger == S3 and not function_name:
        add(Finding("notification", ERROR, "s3 mode needs the function: give --function"))
    else:
        add(_guard("notification", lambda: check_notification(client("s3"), client("sns"), target, facts)))
    if facts.topic_arn:
        add(_guard("topic policy", lambda: check_topic_policy(client("sns"), facts)))
    if trigger == EVENTBRIDGE and facts.scheme is not None and facts.queue_attributes is not None:
        add(_guard("eventbridge rule", lambda: check_rule(client("events"), target, facts, now)))
    if trigger in (SQS, EVENTBRIDGE) and facts.queue_attributes is not None and facts.scheme is not None:
        add(_guard("queue policy", lambda: check_queue_policy(facts, target)))
        add(_guard("queue encryption", lambda: check_queue_encryption(client("kms"), facts, target)))
        add(_guard("queue", lambda: check_queue(facts, target)))
        add(_guard("backlog", lambda: check_backlog(client("cloudwatch"), facts, target, now)))
    if mapping is not None:
        add(mapping)
    if function is not None:
        add(function)
    elif trigger in (SQS, EVENTBRIDGE, S3):
        add(
            Finding(
                "function",
                ERROR,
                "the function is unknown (no event source mapping names one): give --function",
            )
        )
    if trigger == S3 and facts.function is not None and facts.scheme is not None:
        add(_guard("function permission", lambda: check_function_permission(client("lambda"), target, facts)))
    # The DLQ: named, or the queue's redrive target, or (s3 mode) the function's on-failure destination.
    dlq = Finding("dlq", ERROR, "the DLQ is unknown: give --dlq-url (or --stack)")
    if target.dlq_url or facts.dlq_arn:
        dlq = _guard("dlq", lambda: _read_dlq(client("sqs"), target, facts))
    if facts.dlq_url:
        dlq = _guard("dlq", lambda: check_dlq(client("sqs"), client("cloudwatch"), facts, now))
    add(dlq)
    if facts.table is not None:
        add(_guard("lake formation", lambda: check_lake_formation(client("lakeformation"), target, facts)))
        if facts.scheme is not None:
            add(_guard("partition index", lambda: check_partition_index(client("glue"), target, facts)))
            add(_guard("partition quota", lambda: check_partition_quota(client("s3"), client("glue"), facts)))
    if target.schedule_function:
        add(
            _guard(
                "schedule",
                lambda: check_schedule(client("lambda"), client("events"), target.schedule_function),
            )
        )
    cache = target.cache_table or str(
        ((facts.function or {}).get("Environment") or {}).get("Variables", {}).get("CACHE_TABLE", "")
    )
    if cache:
        add(_guard("cache", lambda: check_cache(client("dynamodb"), cache)))
    if target.stack:
        add(
            _guard(
                "alarms",
                lambda: check_alarms(client("cloudwatch"), client("sns"), target, target.alarm_topic),
            )
        )

    if facts.scheme is None:
        add(_needs("freshness", table))
        add(_needs("columns", table))
        return out
    folders: list[FreshFolder] = []

    def walk() -> Finding:
        assert facts.scheme is not None
        folders.extend(fresh_folders(client("s3"), facts.scheme, now)[0])
        return check_freshness(client("glue"), facts, folders, now, target)

    freshness = add(_guard("freshness", walk))
    if freshness.state == ERROR:
        add(_needs("columns", freshness))
    else:
        add(_guard("columns", lambda: check_columns(client("s3"), facts, folders, target)))
    return out


def _needs(check: str, failed: Finding) -> Finding:
    return Finding(check, ERROR, f"not checked: the {failed.check} check did not pass")


_NO_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def _read_queue(sqs: Any, target: Target, facts: Facts) -> Finding:
    """Read the events queue's attributes (its ARN, policy, encryption, redrive policy)."""
    url = target.queue_url
    try:
        if not url:
            parts = _arn_parts(target.queue_arn)
            url = sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
        facts.queue_attributes = queue_attributes(sqs, url)
    except ClientError as exc:
        if error_code(exc) in _NO_QUEUE:
            return Finding("queue", FAIL, f"queue {url} does not exist", "redeploy the stack")
        raise
    facts.queue_arn = facts.queue_attributes.get("QueueArn", target.queue_arn)
    parts = _arn_parts(facts.queue_arn)
    if parts:
        facts.partition, facts.account = parts[1], parts[4]
    redrive = policy_document(facts.queue_attributes.get("RedrivePolicy")) or {}
    facts.dlq_arn = target.dlq_arn or str(redrive.get("deadLetterTargetArn", ""))
    return Finding("queue", OK, url)


def _read_dlq(sqs: Any, target: Target, facts: Facts) -> Finding:
    """Find the DLQ's URL from its ARN (a redrive policy and a destination name ARNs)."""
    if target.dlq_url:
        facts.dlq_url = target.dlq_url
        return Finding("dlq", OK, "")
    parts = _arn_parts(facts.dlq_arn)
    if len(parts) < 6 or parts[2] != "sqs":
        return Finding("dlq", ERROR, f"the DLQ {facts.dlq_arn} is not an SQS queue ARN: give --dlq-url")
    try:
        facts.dlq_url = sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
    except ClientError as exc:
        if error_code(exc) in _NO_QUEUE:
            return Finding("dlq", FAIL, f"the DLQ {facts.dlq_arn} does not exist", "redeploy the stack")
        raise
    return Finding("dlq", OK, "")


def _queue_of_rule(events: Any, rule: str) -> str:
    """The SQS queue an EventBridge rule targets ("" when it has none or cannot be read)."""
    try:
        targets = events.list_targets_by_rule(Rule=rule).get("Targets") or []
    except (ClientError, BotoCoreError):
        return ""
    return next((str(t["Arn"]) for t in targets if ":sqs:" in str(t.get("Arn", ""))), "")


def _caller_account(client: Client) -> str:
    try:
        return str(client("sts").get_caller_identity()["Account"])
    except (ClientError, BotoCoreError):
        return ""


def exit_code(findings: Sequence[Finding]) -> int:
    """3 when a check failed, 1 when none failed but one could not check, else 0."""
    states = {f.state for f in findings}
    if FAIL in states:
        return 3
    return 1 if ERROR in states else 0


def summary(findings: Sequence[Finding]) -> str:
    counts = {state: sum(1 for f in findings if f.state == state) for state in (OK, WARN, FAIL, ERROR)}
    return ", ".join(f"{n} {state}" for state, n in counts.items())
