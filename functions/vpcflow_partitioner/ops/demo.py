"""`vpcflow-partitioner demo`: the whole flow on a local AWS (a moto server on 127.0.0.1).

The code under test is the production code: it reaches the local AWS only through
AWS_ENDPOINT_URL. S3 delivers ObjectCreated notifications to SQS (moto does this for real);
`LocalEventSourceMapping` plays Lambda's SQS event source mapping.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from .. import aws

REGION = "us-east-1"
BUCKET = "demo-flow-logs"
DATABASE = "flowlogs"
TABLE = "vpc_flow_logs"
QUEUE = "vpcflow-partitioner-demo-events"
DLQ = "vpcflow-partitioner-demo-dlq"
CACHE = "vpcflow-partitioner-demo-cache"
ACCOUNTS = ("111122223333", "444455556666")
REGIONS = ("us-east-1", "ap-northeast-2")
LOCATION = f"s3://{BUCKET}/AWSLogs/"


@contextmanager
def local_aws() -> Iterator[str]:
    """A moto server on 127.0.0.1 (a free port), reached only through AWS_ENDPOINT_URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    _reset(endpoint)  # moto's backends live in this process: start from an empty AWS
    saved = {k: os.environ.get(k) for k in _LOCAL_ENV}
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_SESSION_TOKEN": "local",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }
    )
    try:
        yield endpoint
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _reset(endpoint)
        server.stop()
        aws.reset()


def _reset(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


_LOCAL_ENV = (
    "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE",
)  # fmt: skip


def client(service: str) -> Any:
    return aws.client(service, os.environ.get("AWS_ENDPOINT_URL", ""), REGION)


@dataclass
class Stack:
    """What `provision` made: the bucket's queue, its DLQ, and their URLs."""

    queue_url: str
    dlq_url: str
    queue_arn: str


def provision(max_receive: int = 3, visibility_timeout: int = 2) -> Stack:
    """Bucket, queue + DLQ, the bucket's notification to the queue, and the cache table."""
    s3, sqs, ddb = client("s3"), client("sqs"), client("dynamodb")
    s3.create_bucket(Bucket=BUCKET)
    dlq_url = sqs.create_queue(QueueName=DLQ)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    queue_url = sqs.create_queue(
        QueueName=QUEUE,
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive)}
            ),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "vpcflow-partitioner",
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "AWSLogs/"}]}},
                }
            ]
        },
    )
    ddb.create_table(
        TableName=CACHE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.update_time_to_live(
        TableName=CACHE, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"}
    )
    return Stack(queue_url, dlq_url, queue_arn)


def upload_flow_logs(days: int, first: date, per_day: int = 4, flow_logs: int = 2) -> list[str]:
    """Deliveries as AWS makes them: per account, region and flow log, every few hours."""
    from .synthetic import flow_log_file, object_key

    s3 = client("s3")
    keys: list[str] = []
    for account in ACCOUNTS:
        for region in REGIONS:
            for d in range(days):
                for slot in range(per_day):
                    moment = datetime(first.year, first.month, first.day, tzinfo=UTC) + timedelta(
                        days=d, hours=slot * (24 // per_day), minutes=5
                    )
                    for n in range(flow_logs):
                        flow_log_id = f"fl-{hashlib.sha1(f'{account}{region}{n}'.encode()).hexdigest()[:17]}"
                        key = object_key(account, region, moment, flow_log_id=flow_log_id)
                        body = flow_log_file(account, moment, records=25, seed=len(keys))
                        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
                        keys.append(key)
    return keys


@dataclass
class MappingStats:
    """What the local event source mapping saw."""

    invocations: int = 0
    messages: int = 0
    deleted: int = 0
    retried: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    last_success: float = 0.0


class LocalEventSourceMapping:
    """Lambda's SQS event source mapping, locally: batch, window, partial failures, redrive."""

    def __init__(
        self,
        queue_url: str,
        queue_arn: str,
        handler: Callable[[dict[str, Any], Any], Any],
        batch_size: int = 10,
        window_seconds: int = 0,
    ) -> None:
        self._sqs = client("sqs")
        self._url = queue_url
        self._arn = queue_arn
        self._handler = handler
        self._batch_size = batch_size
        self._window = window_seconds
        self.stats = MappingStats()

    def drain(self, idle_polls: int = 2, max_seconds: float = 60.0) -> MappingStats:
        """Poll until the queue stays empty for `idle_polls` receives (bounded in time)."""
        idle = 0
        deadline = time.monotonic() + max_seconds
        while idle < idle_polls and time.monotonic() < deadline:
            messages = self._sqs.receive_message(
                QueueUrl=self._url,
                MaxNumberOfMessages=self._batch_size,
                WaitTimeSeconds=self._window,
                MessageSystemAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                idle += 1
                if self._in_flight():
                    idle = 0
                    time.sleep(0.5)  # retried messages become visible after the visibility timeout
                continue
            idle = 0
            self._invoke(messages)
        return self.stats

    def _in_flight(self) -> bool:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=self._url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessagesNotVisible", "0")) > 0

    def _invoke(self, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [self._record(m) for m in messages]}
        self.stats.invocations += 1
        self.stats.messages += len(messages)
        self.stats.events.append(event)
        try:
            response = self._handler(event, None) or {}
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except Exception:  # the whole batch returns to the queue
            failed = {m["MessageId"] for m in messages}
        done = [m for m in messages if m["MessageId"] not in failed]
        self.stats.retried += len(failed)
        if done:
            self._sqs.delete_message_batch(
                QueueUrl=self._url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
            self.stats.deleted += len(done)
            self.stats.last_success = time.monotonic()

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        attributes = message.get("Attributes", {})
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": {
                "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
                "SentTimestamp": attributes.get("SentTimestamp", "0"),
                "SenderId": attributes.get("SenderId", "AIDAEXAMPLE"),
                "ApproximateFirstReceiveTimestamp": attributes.get("ApproximateFirstReceiveTimestamp", "0"),
            },
            "messageAttributes": {},
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self._arn,
            "awsRegion": REGION,
        }


class ApiCalls:
    """Counts the API calls made through some clients, as "service:Operation".

    Counted before botocore builds the request, so its retries of one request are not
    separate calls.
    """

    def __init__(self, *clients: Any) -> None:
        self.calls: Counter[str] = Counter()
        self.create_entries = 0
        for aws_client in clients:
            service = aws_client.meta.service_model.service_name
            aws_client.meta.events.register(f"before-parameter-build.{service}.*", self._count)

    def _count(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls[f"{model.service_model.service_name}:{model.name}"] += 1
        if model.name == "BatchCreatePartition":
            self.create_entries += len(params.get("PartitionInputList", []))

    def snapshot(self) -> tuple[Counter[str], int]:
        return Counter(self.calls), self.create_entries

    def take(self) -> Counter[str]:
        """The calls so far, and start counting afresh."""
        taken, self.calls = self.calls, Counter()
        return taken


def configure_function_env() -> None:
    """The environment serverless.yml gives the function."""
    os.environ.update(
        {"GLUE_DATABASE": DATABASE, "GLUE_TABLE": TABLE, "CACHE_TABLE": CACHE, "SOURCE_BUCKETS": BUCKET}
    )
    os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "VpcFlowPartitionerDemo")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")


def run_demo(out: Console, cli: Callable[[list[str]], int], days: int = 3) -> int:
    """Provision, upload, drain, replay, audit --fix; print what happened. Returns 0.

    `cli` is the console script's main: the demo runs the commands a user would type.
    """
    import io
    import logging
    from contextlib import redirect_stdout

    from .. import handlers
    from .logs import set_log_level

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    set_log_level(logging.WARNING)  # the decisions are in the tables below
    started = time.monotonic()
    first = date(2022, 8, 28)
    with local_aws() as endpoint:
        handlers.reset()
        configure_function_env()
        out.rule("[bold]vpcflow-partitioner demo[/]: a local AWS, no account")
        out.print(f"moto server at {endpoint}; the production code reaches it through AWS_ENDPOINT_URL")
        stack = provision()
        quiet = io.StringIO()
        with redirect_stdout(quiet):
            cli(["init", "--database", DATABASE, "--table", TABLE, "--location", LOCATION, "--multi-account"])
        out.print(
            f"provisioned: bucket {BUCKET} -> SQS {QUEUE} (DLQ after 3 receives), "
            f"DynamoDB cache {CACHE}, Glue table {DATABASE}.{TABLE} (init --multi-account)"
        )

        upload_started = time.monotonic()
        keys = upload_flow_logs(days, first)
        out.print(
            f"uploaded {len(keys)} flow-log files: {len(ACCOUNTS)} accounts x {len(REGIONS)} regions x "
            f"{days} days, named and placed as AWS does"
        )

        calls = ApiCalls(client("glue"), client("dynamodb"))
        mapping = LocalEventSourceMapping(stack.queue_url, stack.queue_arn, handlers.on_object_created)
        with redirect_stdout(quiet):  # the handler's EMF metrics go to CloudWatch in AWS
            stats = mapping.drain()
        drained, create_entries = calls.snapshot()
        glue_parts = client("glue").get_partitions(DatabaseName=DATABASE, TableName=TABLE)["Partitions"]
        table = Table(title="S3 notifications -> SQS -> on_object_created", show_header=False)
        for label, value in (
            ("objects uploaded", len(keys)),
            ("SQS messages processed", stats.messages),
            ("Lambda invocations (batch size 10)", stats.invocations),
            ("partitions created", len(glue_parts)),
            ("Glue calls", f"{_total(drained, 'glue')} ({_ops(drained, 'glue')})"),
            ("Glue create attempts (partition entries)", create_entries),
            ("DynamoDB calls", f"{_total(drained, 'dynamodb')} ({_ops(drained, 'dynamodb')})"),
            ("time from first upload to last partition", f"{stats.last_success - upload_started:.2f} s"),
        ):
            table.add_row(label, str(value))
        out.print(table)

        before, _ = calls.snapshot()
        with tempfile.NamedTemporaryFile("w", suffix=".ndjson", delete=False) as saved:
            for event in stats.events:
                saved.write(json.dumps(event) + "\n")
        replay_out = io.StringIO()
        with redirect_stdout(replay_out):
            cli(["replay", "--json", saved.name])
        os.unlink(saved.name)
        summary = json.loads(replay_out.getvalue())
        writes = calls.calls["glue:BatchCreatePartition"] - before["glue:BatchCreatePartition"]
        out.print(
            f"replayed all {len(stats.events)} events ({summary['objects']} objects): "
            f"[bold]{summary['partitions_created']} new partitions, {writes} Glue writes[/] "
            f"({summary['partitions_already_present']} already present, checked with Glue BatchGetPartition)"
        )

        victim = sorted(glue_parts, key=lambda p: p["Values"])[0]["Values"]
        client("glue").delete_partition(DatabaseName=DATABASE, TableName=TABLE, PartitionValues=victim)
        out.print(f"deleted partition {'/'.join(victim)} behind the partitioner's back")
        audit_out = io.StringIO()
        with redirect_stdout(audit_out):
            code = cli(["audit", "--fix", "--json"])
        audit = json.loads(audit_out.getvalue())
        back = client("glue").get_partition(DatabaseName=DATABASE, TableName=TABLE, PartitionValues=victim)
        out.print(
            f"audit --fix: {len(audit['missing'])} missing ({', '.join('/'.join(m['values']) for m in audit['missing'])}), {len(audit['created'])} created, "
            f"exit {code}; partition is back at {back['Partition']['StorageDescriptor']['Location']}"
        )
        dlq = client("sqs").get_queue_attributes(
            QueueUrl=stack.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        out.print(f"messages in the DLQ: {dlq['Attributes']['ApproximateNumberOfMessages']}")
        handlers.reset()

    out.rule("[bold]next, in Athena[/]")
    out.print(_NEXT_SQL, markup=False)
    out.print(f"demo finished in {time.monotonic() - started:.1f} s")
    return 0


def _total(calls: Counter[str], service: str) -> int:
    return sum(n for name, n in calls.items() if name.startswith(service + ":"))


def _ops(calls: Counter[str], service: str) -> str:
    return ", ".join(
        f"{name.split(':')[1]} {n}" for name, n in sorted(calls.items()) if name.startswith(service + ":")
    )


_NEXT_SQL = f"""\
-- yesterday's rejected traffic for one account (partition pruning on every key)
SELECT srcaddr, dstaddr, dstport, count(*) AS flows
FROM {DATABASE}.{TABLE}
WHERE aws_account_id = '111122223333' AND aws_region = 'us-east-1'
  AND year = '2022' AND month = '08' AND day = '29' AND action = 'REJECT'
GROUP BY 1, 2, 3 ORDER BY flows DESC LIMIT 20;

-- one local day in Seoul spans two UTC date partitions: prune on both, filter on the time
-- (vpcflow-partitioner init ... --view-timezone Asia/Seoul creates {TABLE}_asia_seoul)
SELECT * FROM {DATABASE}.{TABLE}_asia_seoul
WHERE ((year = '2022' AND month = '08' AND day = '28') OR (year = '2022' AND month = '08' AND day = '29'))
  AND "start" >= TIMESTAMP '2022-08-29 00:00:00' AND "start" < TIMESTAMP '2022-08-30 00:00:00';"""
