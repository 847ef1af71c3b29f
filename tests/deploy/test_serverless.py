"""serverless.yml, packaged offline for each stage and trigger: template rules, refusals, the zip."""

from __future__ import annotations

import contextlib
import fnmatch
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from helpers import ACCOUNT, BUCKET, create_cache, inject_error, load_event
from vpcflow_partitioner import aws, handlers
from vpcflow_partitioner.errors import TransientError
from vpcflow_partitioner.formats import TableSpec
from vpcflow_partitioner.keys import parse_key
from vpcflow_partitioner.ops import doctor
from vpcflow_partitioner.scheme import PartitionSpec, Scheme

# One worker runs this module (`make test` distributes by file): osls writes .serverless/ in the
# project folder, so two packagings at once collide. (xdist_group marks are ignored by
# pytest-xdist 3.8 under pytest 9.2, which no longer reads Item._nodeid.)
pytestmark = pytest.mark.package
ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".build" / "tests"
HIVE_LOCATION = f"s3://{BUCKET}/AWSLogs/aws-account-id={ACCOUNT}/"
TABLES = ["flowlogs.us_east_1", "210987654321:central.vpc_flow_logs", "flowlogs.eu_west_1"]
VARIANTS = {
    "dev": ["--stage", "dev", "--param", f"sourceBucket={BUCKET}"],
    "prod": ["--stage", "prod", "--param", f"sourceBucket={BUCKET}", "--param", "alarmEmail=ops@example.com"],
    "eventbridge": [
        "--stage", "staging", "--param", f"sourceBucket={BUCKET}",
        "--param", "trigger=eventbridge", "--param", "tracing=true",
    ],
    # direct S3, no cache, an existing Hive table of one account: `=` in the notification prefix
    "s3-nocache": [
        "--stage", "small", "--param", f"sourceBucket={BUCKET}", "--param", "trigger=s3",
        "--param", "cache=false", "--param", "createTable=false", "--param", f"tableLocation={HIVE_LOCATION}",
    ],
    # another account's catalog, the operator's own alarm topic and layer
    "catalog": [
        "--stage", "central", "--region", "cn-north-1",
        "--param", f"sourceBucket={BUCKET}", "--param", "glueCatalogId=210987654321",
        "--param", "createTable=false", "--param", f"tableLocation=s3://{BUCKET}/AWSLogs/",
        "--param", "glueTable=vpc-flow-logs",  # an existing table keeps its hyphenated name
        "--param", "alarmTopicArn=arn:aws-cn:sns:cn-north-1:123456789012:ops-alarms",
        "--param", "powertoolsLayerArn=arn:aws-cn:lambda:cn-north-1:111122223333:layer:powertools:1",
    ],
    # a created table under a free prefix: Parquet, Hive, hourly
    "parquet-hourly": [
        "--stage", "lake", "--param", f"sourceBucket={BUCKET}", "--param", f"tableLocation=s3://{BUCKET}/vpc/AWSLogs/",
        "--param", "tableLayout=hive", "--param", "tableFileFormat=parquet", "--param", "tableHourly=true",
    ],
    # several existing tables under one routing prefix, one in another account's catalog;
    # S3 Inventory reports in their own bucket
    "tables": [
        "--stage", "org", "--param", f"sourceBucket={BUCKET}", "--param", "createTable=false",
        "--param", f"tableLocation=s3://{BUCKET}/AWSLogs/", "--param", f"tables={' , '.join(TABLES)}",
        "--param", "inventoryBucket=acme-inventory", "--param", "backfillConcurrency=250",
        "--param", "backfillTimeout=600",
    ],
    # the created table with a partition index on its date keys
    "partition-index": [
        "--stage", "indexed", "--param", f"sourceBucket={BUCKET}", "--param", "partitionIndex=true",
        "--param", "tableHourly=true",
    ],
}  # fmt: skip
PREFIXES = {"s3-nocache": f"AWSLogs/aws-account-id={ACCOUNT}/", "parquet-hourly": "vpc/AWSLogs/"}
OUTPUTS = {
    "SourceBucket", "TableLocation", "NotificationPrefix", "GlueDatabase", "GlueTable", "Trigger",
    "DeadLetterQueueUrl", "DeadLetterQueueArn", "ObjectCreatedFunctionName", "ScheduleFunctionName",
    "AlarmTopicArn",
}  # fmt: skip


def _npx() -> str:
    npx = shutil.which("npx")
    if npx is None or not (ROOT / "node_modules" / "osls").is_dir():
        pytest.fail("osls is not installed: run `make test`, which runs `npm ci` first")
    return npx


def _package(args: list[str], target: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # no credentials at all
    env["VPCFLOW_PYTHON"] = sys.executable
    shutil.rmtree(target, ignore_errors=True)
    return subprocess.run(
        [_npx(), "serverless", "package", *args, "--package", str(target)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


SAID: dict[str, str] = {}  # what packaging each variant printed


@pytest.fixture(scope="module")
def packages() -> dict[str, Path]:
    out = {}
    for name, args in VARIANTS.items():
        target = BUILD / f"package-{name}"
        result = _package(args, target)
        assert result.returncode == 0, result.stdout + result.stderr
        SAID[name] = result.stdout + result.stderr
        out[name] = target
    return out


def template(packages: dict[str, Path], name: str) -> dict[str, Any]:
    return dict(json.loads((packages[name] / "cloudformation-template-update-stack.json").read_text()))


def of_type(t: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in t["Resources"].items() if v["Type"] == kind}


def listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_cfn_lint_is_clean(packages: dict[str, Path]) -> None:
    files = [str(p / "cloudformation-template-update-stack.json") for p in packages.values()]
    cfn_lint = str(Path(sys.executable).parent / "cfn-lint")
    result = subprocess.run([cfn_lint, "--format", "parseable", *files], capture_output=True, text=True)
    findings = [line for line in result.stdout.splitlines() if line.strip()]
    # The one warning left is osls's own: the DependsOn it writes on its custom resource for
    # an existing bucket, which a GetAtt already implies. Nothing of ours.
    ours = [f for f in findings if not ("W3005" in f and "CustomDashresource" in f)]
    assert ours == [], "\n".join(ours)
    assert result.returncode & ~4 == 0, result.stdout + result.stderr


# --- refusals: one line each, no Node stack -------------------------------------------------


# an existing table's params: what `tables` and the checks on it need
EXISTING = [
    "--param", f"sourceBucket={BUCKET}", "--param", "createTable=false", "--param", f"tableLocation=s3://{BUCKET}/AWSLogs/",
]  # fmt: skip
REFUSALS = {
    "no-source-bucket": ([], "param sourceBucket is required"),
    "bad-bucket-name": (["--param", "sourceBucket=My_Bucket"], "is not an S3 bucket name"),
    "unknown-trigger": (["--param", f"sourceBucket={BUCKET}", "--param", "trigger=sns"], 'not "sns"'),
    "catalog-with-createTable": (
        ["--param", f"sourceBucket={BUCKET}", "--param", "glueCatalogId=210987654321"],
        "set createTable=false",
    ),
    "existing-table-without-its-Location": (
        ["--param", f"sourceBucket={BUCKET}", "--param", "createTable=false"],
        "param tableLocation is required with createTable=false",
    ),
    "Location-in-another-bucket": (
        ["--param", f"sourceBucket={BUCKET}", "--param", "tableLocation=s3://elsewhere/AWSLogs/"],
        "is in bucket elsewhere",
    ),
    "bad-boolean": (["--param", f"sourceBucket={BUCKET}", "--param", "cache=yes"], "cache must be true or false"),
    "out-of-range": (
        ["--param", f"sourceBucket={BUCKET}", "--param", "maxConcurrency=1"],
        "maxConcurrency must be a whole number from 2 to 1000",
    ),
    "bad-format-string": (
        ["--param", f"sourceBucket={BUCKET}", "--param", "tableFormat=${version} ${no-such-field}"],
        "the Glue table definition failed",
    ),
    "stage-too-long": (
        ["--stage", "a-stage-name-that-is-far-too-long-x", "--param", f"sourceBucket={BUCKET}"],
        "Lambda allows 64",
    ),
    "database-name-athena-cannot-read": (
        ["--param", f"sourceBucket={BUCKET}", "--param", "glueDatabase=Flow-Logs"],
        "must be lowercase letters, digits and underscores",
    ),
    # numbers osls checks with its schema first: still our one line, naming the param
    "log-retention": (["--param", f"sourceBucket={BUCKET}", "--param", "logRetentionDays=abc"], "logRetentionDays must be one of"),
    "function-timeout": (["--param", f"sourceBucket={BUCKET}", "--param", "functionTimeout=abc"], "functionTimeout must be a whole number"),
    "prefix-and-Location-disagree": (
        [
            "--param", f"sourceBucket={BUCKET}", "--param", "flowLogPrefix=vpc/AWSLogs/",
            "--param", f"tableLocation=s3://{BUCKET}/other/AWSLogs/",
        ],
        "disagree: give tableLocation alone",
    ),
    "china-without-a-layer": (
        ["--region", "cn-north-1", "--param", f"sourceBucket={BUCKET}"],
        "param powertoolsLayerArn is required in cn-north-1",
    ),
    "email-with-own-topic": (
        [
            "--param", f"sourceBucket={BUCKET}", "--param", "alarmEmail=ops@example.com",
            "--param", "alarmTopicArn=arn:aws:sns:us-east-1:123456789012:ops",
        ],
        "params alarmEmail and alarmTopicArn",
    ),
    "tables-entry-malformed": (
        [*EXISTING, "--param", "tables=flowlogs.us_east_1,flowlogs,12345:db.t"],
        'not "flowlogs", "12345:db.t"',
    ),
    # without a catalog, an entry is in glueCatalogId's catalog: the same table twice
    "tables-duplicate": (
        [*EXISTING, "--param", "glueCatalogId=210987654321", "--param", "tables=db.t,210987654321:db.t"],
        "param tables names 210987654321:db.t more than once",
    ),
    "tables-with-createTable": (
        ["--param", f"sourceBucket={BUCKET}", "--param", "tables=db.t"],
        "names tables that must already exist",
    ),
    # Lambda's 4 KB for all of a function's variables
    "environment-over-4-KB": (
        [*EXISTING, "--param", "tables=" + ",".join(f"flowlogs.vpc_flow_logs_{n:04d}" for n in range(150))],
        "over Lambda's 4 KB for all variables",
    ),
    "partitionIndex-without-createTable": (
        [*EXISTING, "--param", "partitionIndex=true"],
        "run `vpcflow-partitioner init --partition-index`",
    ),
    "backfillConcurrency-out-of-range": (
        ["--param", f"sourceBucket={BUCKET}", "--param", "backfillConcurrency=1001"],
        "backfillConcurrency must be a whole number from 2 to 1000",
    ),
    "backfillTimeout-over-Lambda's": (
        ["--param", f"sourceBucket={BUCKET}", "--param", "backfillTimeout=901"],
        "backfillTimeout must be a whole number from 1 to 900",
    ),
    "backfillMemory-over-Lambda's": (
        ["--param", f"sourceBucket={BUCKET}", "--param", "backfillMemory=10241"],
        "backfillMemory must be a whole number from 128 to 10240",
    ),
    "inventoryBucket-name": (
        ["--param", f"sourceBucket={BUCKET}", "--param", "inventoryBucket=Inventory_Reports"],
        'param inventoryBucket "Inventory_Reports" is not an S3 bucket name',
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_wrong_param_is_refused_in_one_line(case: str) -> None:
    params, expected = REFUSALS[case]
    stage = [] if "--stage" in params else ["--stage", "refused"]
    result = _package([*stage, *params], BUILD / "package-refused")
    text = result.stdout + result.stderr
    assert result.returncode != 0, text
    lines = [line for line in text.splitlines() if expected in line]
    assert len(lines) == 1, text  # said once, not once per variable that needed it
    assert not re.search(r"^\s+at .+:\d+:\d+\)?$", text, re.MULTILINE), text  # no Node stack
    assert not (BUILD / "package-refused" / "cloudformation-template-update-stack.json").exists()


def test_make_passes_params_to_package_and_deploy() -> None:
    for target in ("package", "deploy"):
        result = subprocess.run(
            ["make", "-n", target, "STAGE=prod", "PARAMS=--param=sourceBucket=acme-flow-logs"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )  # fmt: skip
        command = next(line for line in result.stdout.splitlines() if f"serverless {target}" in line)
        assert "--stage prod" in command and "--param=sourceBucket=acme-flow-logs" in command


# --- roles ----------------------------------------------------------------------------------


def role_statements(t: dict[str, Any], role: str) -> list[dict[str, Any]]:
    properties = t["Resources"][role]["Properties"]
    return [s for policy in properties["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def actions(statements: list[dict[str, Any]], *services: str) -> set[str]:
    return {a for s in statements for a in listed(s["Action"]) if a.split(":")[0] in services}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_one_least_privilege_role_per_function(packages: dict[str, Path], name: str) -> None:
    t = template(packages, name)
    assert "IamRoleLambdaExecution" not in t["Resources"]  # no shared default role
    functions = of_type(t, "AWS::Lambda::Function")
    assert functions["OnObjectCreatedLambdaFunction"]["Properties"]["Role"] == {
        "Fn::Sub": "${ObjectCreatedRole.Arn}"
    }
    assert functions["OnScheduleLambdaFunction"]["Properties"]["Role"] == {"Fn::Sub": "${ScheduleRole.Arn}"}
    assert functions["OnBackfillLambdaFunction"]["Properties"]["Role"] == {"Fn::Sub": "${BackfillRole.Arn}"}
    tracing = "tracing=true" in VARIANTS[name]
    for role in ("ObjectCreatedRole", "ScheduleRole", "BackfillRole"):
        for statement in role_statements(t, role):
            assert statement["Effect"] == "Allow"
            for resource in listed(statement["Resource"]):
                if resource == "*":
                    assert all(a.startswith("xray:") for a in listed(statement["Action"])), statement
                elif isinstance(resource, dict) and "Fn::Sub" in resource:
                    assert resource["Fn::Sub"].startswith("arn:${AWS::Partition}:"), resource
        assert bool(actions(role_statements(t, role), "xray")) is tracing
    # the event function never lists or reads the bucket; the sweep only lists the table's folders
    assert actions(role_statements(t, "ObjectCreatedRole"), "s3") == set()
    (listing,) = [s for s in role_statements(t, "ScheduleRole") if actions([s], "s3")]
    assert listing["Action"] == "s3:ListBucket"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [PREFIXES.get(name, "AWSLogs/") + "*"]}}
    glue_arns = [
        r["Fn::Sub"]
        for r in next(s for s in role_statements(t, "ScheduleRole") if actions([s], "glue"))["Resource"]
    ]
    catalog = "210987654321" if name == "catalog" else "${AWS::AccountId}"
    if name != "tables":  # test_tables_each_table_granted_in_its_catalog
        assert all(f":glue:${{AWS::Region}}:{catalog}:" in arn for arn in glue_arns)
    queue = actions(role_statements(t, "ObjectCreatedRole"), "sqs")
    if name == "s3-nocache":
        assert queue == {"sqs:SendMessage"}  # the on-failure destination, nothing else
    else:
        assert queue == {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}


class _Recorder:
    """The API calls our code makes, as IAM actions, with the prefixes it lists."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import botocore.client

        self.actions: set[str] = set()
        self.prefixes: set[str] = set()
        self.on = True
        original = botocore.client.BaseClient._make_api_call  # type: ignore[attr-defined]
        recorder = self

        def record(client: Any, operation: str, params: dict[str, Any]) -> Any:
            if recorder.on:
                service = client.meta.service_model.signing_name
                recorder.actions.add(
                    "s3:ListBucket" if operation == "ListObjectsV2" else f"{service}:{operation}"
                )
                if operation == "ListObjectsV2":
                    recorder.prefixes.add(params.get("Prefix", ""))
            return original(client, operation, params)

        monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", record)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The test's own setup calls are not the handlers'."""
        self.on = False
        try:
            yield
        finally:
            self.on = True

    def take(self) -> set[str]:
        taken, self.actions = self.actions, set()
        return taken


def _s3_event(*keys: str) -> dict[str, Any]:
    record = load_event("s3_notification.json")["Records"][0]
    records = []
    for key in keys:
        copy = json.loads(json.dumps(record))
        copy["s3"]["object"]["key"] = quote_plus(key, safe="/")  # as S3 sends keys: URL-encoded
        records.append(copy)
    return {"Records": records}


def _key(location: str, day: date, hive: bool) -> str:
    prefix = location.removeprefix(f"s3://{BUCKET}/")
    y, m, d = f"{day:%Y}", f"{day:%m}", f"{day:%d}"
    if hive:  # a one-account table: its Location holds the account folder
        folder = f"{prefix}aws-service=vpcflowlogs/aws-region=us-east-1/year={y}/month={m}/day={d}/"
    else:
        folder = f"{prefix}{ACCOUNT}/vpcflowlogs/us-east-1/{y}/{m}/{d}/"
    return f"{folder}{ACCOUNT}_vpcflowlogs_us-east-1_fl-0a1b2c3d4e5f60718_{y}{m}{d}T0005Z_a1.log.gz"


@pytest.mark.parametrize("name", ["dev", "s3-nocache"])
def test_each_role_allows_exactly_the_calls_its_handler_makes(
    packages: dict[str, Path], name: str, mocked: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every path each handler takes on moto: what it calls is what its role allows, no more."""
    t = template(packages, name)
    resources = t["Resources"]
    env = resources["OnObjectCreatedLambdaFunction"]["Properties"]["Environment"]["Variables"]
    assert env == resources["OnScheduleLambdaFunction"]["Properties"]["Environment"]["Variables"]
    glue, s3 = aws.client("glue", "", "us-east-1"), aws.client("s3", "", "us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    database, table = env["GLUE_DATABASE"], env["GLUE_TABLE"]
    glue.create_database(DatabaseInput={"Name": database})
    if "FlowLogsTable" in resources:
        table_input = resources["FlowLogsTable"]["Properties"]["TableInput"]
    else:  # an existing one-account Hive table: its Location holds the account folder
        table_input = TableSpec(database, table, f"s3://{BUCKET}/AWSLogs/", layout="hive").table_input()
        table_input["PartitionKeys"] = table_input["PartitionKeys"][1:]  # no aws-account-id
        table_input["StorageDescriptor"]["Location"] = HIVE_LOCATION
    glue.create_table(DatabaseName=database, TableInput=table_input)
    for variable, value in env.items():
        if variable == "CACHE_TABLE":
            create_cache(aws.client("dynamodb", "", "us-east-1"), "partition-cache")
            value = "partition-cache"
        monkeypatch.setenv(variable, value)
    hive = name == "s3-nocache"
    today = date.today()
    keys = [
        _key(table_input["StorageDescriptor"]["Location"], today - timedelta(days=n), hive) for n in range(5)
    ]
    scheme = Scheme.from_table(glue.get_table(DatabaseName=database, Name=table)["Table"], "")
    recorder = _Recorder(monkeypatch)

    # on_object_created: new partitions; the same in a new container; a partition Glue has
    # and the cache does not; many partitions at once; Glue failing a create; an object
    # outside the table.
    handlers.on_object_created(_s3_event(keys[0], keys[1]))
    handlers.reset()
    handlers.on_object_created(_s3_event(keys[0]))
    with recorder.paused():
        obj = parse_key(keys[2])
        assert obj is not None
        spec = scheme.plan(BUCKET, obj)
        assert isinstance(spec, PartitionSpec)
        glue.batch_create_partition(
            DatabaseName=database, TableName=table, PartitionInputList=[scheme.partition_input(spec)]
        )
    handlers.on_object_created(_s3_event(keys[2]))
    handlers.reset()
    handlers.on_object_created(_s3_event(*keys[:3], keys[4]))  # many unknown at once: one read first
    handlers.reset()
    inject_error(aws.client("glue", "", "us-east-1"), "BatchCreatePartition", "ThrottlingException", times=1)
    with pytest.raises(TransientError, match="Throttling"):
        handlers.on_object_created(_s3_event(keys[3]))
    outside = f"elsewhere/AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/2022/08/29/{ACCOUNT}_vpcflowlogs_x.log.gz"
    handlers.on_object_created(_s3_event(outside))
    called = recorder.take()
    assert called == actions(role_statements(t, "ObjectCreatedRole"), "glue", "dynamodb", "s3"), called

    # on_schedule: the sweep lists the table's folders and asks Glue; it never reads the cache
    with recorder.paused():
        handlers.reset()
        for key in keys:
            s3.put_object(Bucket=BUCKET, Key=key, Body=b"")
        for partition in glue.get_partitions(DatabaseName=database, TableName=table)["Partitions"]:
            glue.delete_partition(DatabaseName=database, TableName=table, PartitionValues=partition["Values"])
    monkeypatch.setenv("RECONCILE_DAYS", "3")
    inject_error(aws.client("glue", "", "us-east-1"), "BatchCreatePartition", "ThrottlingException", times=1)
    with pytest.raises(TransientError):
        handlers.on_schedule({}, None)
    handlers.on_schedule({}, None)
    called = recorder.take()
    schedule_role = role_statements(t, "ScheduleRole")
    assert called == actions(schedule_role, "glue", "dynamodb", "s3"), called
    assert not called & {"dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"}
    (listing,) = [s for s in schedule_role if actions([s], "s3")]
    allowed = listing["Condition"]["StringLike"]["s3:prefix"]
    assert recorder.prefixes and all(
        any(fnmatch.fnmatchcase(p, a) for a in allowed) for p in recorder.prefixes
    )


# --- triggers, queues, filters --------------------------------------------------------------


@pytest.mark.parametrize("name", ["dev", "prod", "eventbridge"])
def test_queue_dlq_and_event_source_mapping(packages: dict[str, Path], name: str) -> None:
    t = template(packages, name)
    queue = t["Resources"]["EventsQueue"]["Properties"]
    dlq = t["Resources"]["EventsDeadLetterQueue"]["Properties"]
    timeout = t["Resources"]["OnObjectCreatedLambdaFunction"]["Properties"]["Timeout"]
    assert queue["VisibilityTimeout"] >= 6 * timeout
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }
    # 14 days, the SQS maximum, on both: an event that waits is not lost after 4 days
    assert queue["MessageRetentionPeriod"] == dlq["MessageRetentionPeriod"] == 1209600
    assert queue["SqsManagedSseEnabled"] is True and dlq["SqsManagedSseEnabled"] is True
    assert "KmsMasterKeyId" not in queue  # aws/sqs cannot be granted to S3
    (mapping,) = [
        m
        for m in of_type(t, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["EventsQueue", "Arn"]}
    ]
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["Properties"]["ScalingConfig"]["MaximumConcurrency"] == {"dev": 2, "prod": 10}.get(name, 5)
    statements = t["Resources"]["EventsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    allow = next(s for s in statements if s["Effect"] == "Allow")
    assert allow["Principal"]["Service"] == (
        "events.amazonaws.com" if name == "eventbridge" else "s3.amazonaws.com"
    )
    if name != "eventbridge":
        assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Fn::Sub": "${AWS::AccountId}"}}
        assert allow["Condition"]["ArnLike"]["aws:SourceArn"] == {
            "Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{BUCKET}"
        }
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )
    age = t["Resources"]["QueueAgeAlarm"]["Properties"]
    assert age["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert age["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["EventsQueue", "QueueName"]}}]
    assert (
        t["Resources"]["DeadLetterQueueAlarm"]["Properties"]["MetricName"]
        == "ApproximateNumberOfMessagesVisible"
    )


FLOW_LOG_KEYS = [
    f"AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/2024/05/01/{ACCOUNT}_vpcflowlogs_us-east-1_fl-1_20240501T0005Z_a.log.gz",
    f"AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/2024/05/01/07/{ACCOUNT}_vpcflowlogs_us-east-1_fl-1_20240501T0705Z_a.log.parquet",
    f"AWSLogs/aws-account-id={ACCOUNT}/aws-service=vpcflowlogs/aws-region=us-east-1/year=2024/month=05/day=01/x.log.gz",
    f"AWSLogs/aws-account-id={ACCOUNT}/service=vpcflowlogs/aws-region=us-east-1/year=2024/month=05/day=01/tgw.log.gz",
]
OTHER_KEYS = [
    f"AWSLogs/{ACCOUNT}/CloudTrail/us-east-1/2024/05/01/{ACCOUNT}_CloudTrail_us-east-1_20240501T0000Z_x.json.gz",
    f"AWSLogs/{ACCOUNT}/elasticloadbalancing/us-east-1/2024/05/01/{ACCOUNT}_elasticloadbalancing_us-east-1_app.lb.log.gz",
    f"AWSLogs/{ACCOUNT}/Config/us-east-1/2024/5/1/ConfigSnapshot/x.json.gz",
    f"AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/2024/05/01/",
    f"other/{ACCOUNT}/vpcflowlogs/us-east-1/2024/05/01/x.log.gz",
]


def test_eventbridge_rule_takes_flow_logs_only_and_keeps_what_it_cannot_deliver(
    packages: dict[str, Path], mocked: None
) -> None:
    t = template(packages, "eventbridge")
    rule = t["Resources"]["ObjectCreatedRule"]["Properties"]
    (target,) = rule["Targets"]
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
    dlq_policy = t["Resources"]["DeadLetterQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    grant = next(s for s in dlq_policy if s["Effect"] == "Allow")
    assert grant["Principal"] == {"Service": "events.amazonaws.com"}
    assert grant["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["ObjectCreatedRule", "Arn"]}}
    }
    # The pattern, tried on moto's EventBridge (its wildcard matching follows AWS's): events of
    # flow-log keys of both layouts reach the queue, a shared log-archive bucket's others do not.
    events, sqs = aws.client("events", "", "us-east-1"), aws.client("sqs", "", "us-east-1")
    url = sqs.create_queue(QueueName="matched")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="flow-logs", EventPattern=json.dumps(rule["EventPattern"]))
    events.put_targets(Rule="flow-logs", Targets=[{"Id": "q", "Arn": arn}])

    def matches(key: str, bucket: str = BUCKET) -> bool:
        detail = {"version": "0", "bucket": {"name": bucket}, "object": {"key": key, "size": 1}}
        entry = {"Source": "aws.s3", "DetailType": "Object Created", "Detail": json.dumps(detail)}
        assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        for message in received:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return [json.loads(m["Body"])["detail"]["object"]["key"] for m in received] == [key]

    assert all(matches(k) for k in FLOW_LOG_KEYS)
    assert not any(matches(k) for k in OTHER_KEYS)
    assert not matches(FLOW_LOG_KEYS[0], bucket="another-bucket")


def test_direct_s3_mode_filters_flow_log_files_with_the_prefix_encoded(packages: dict[str, Path]) -> None:
    t = template(packages, "s3-nocache")
    assert "EventsQueue" not in t["Resources"] and "FlowLogsTable" not in t["Resources"]
    (custom,) = [v for v in t["Resources"].values() if v["Type"] == "Custom::S3"]
    assert custom["Properties"]["BucketName"] == BUCKET
    # S3 matches filter values against URL-encoded keys: `=` is written %3D, or nothing matches
    prefix = f"AWSLogs/aws-account-id%3D{ACCOUNT}/"
    assert sorted(json.dumps(c, sort_keys=True) for c in custom["Properties"]["BucketConfigs"]) == sorted(
        json.dumps(
            {"Event": "s3:ObjectCreated:*", "Rules": [{"Prefix": prefix}, {"Suffix": suffix}]}, sort_keys=True
        )
        for suffix in (".log.gz", ".log.parquet")
    )
    (invoke_config,) = of_type(t, "AWS::Lambda::EventInvokeConfig").values()
    failure = invoke_config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
    assert failure == {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}  # nothing lost after Lambda's retries
    assert "DeadLetterQueueAlarm" in t["Resources"] and "QueueAgeAlarm" not in t["Resources"]


# --- alarms ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_alarm_reaches_someone(packages: dict[str, Path], name: str) -> None:
    t = template(packages, name)
    alarms = of_type(t, "AWS::CloudWatch::Alarm")
    own = name != "catalog"
    expected = [{"Ref": "AlarmTopic"}] if own else ["arn:aws-cn:sns:cn-north-1:123456789012:ops-alarms"]
    assert len(alarms) >= 5
    for alarm in alarms.values():
        assert alarm["Properties"]["ActionsEnabled"] is True
        assert alarm["Properties"]["AlarmActions"] == alarm["Properties"]["OKActions"] == expected
    assert ("AlarmTopic" in t["Resources"]) is own
    # doctor finds them by these names (exactly: another stage's names may start the same)
    stage = VARIANTS[name][1]
    names = {a["Properties"]["AlarmName"] for a in alarms.values()}
    assert names <= {f"vpcflow-partitioner-{stage}-{suffix}" for suffix in doctor.ALARMS}
    assert len(names) == len(alarms)
    surge = t["Resources"]["OutsideTableSurgeAlarm"]["Properties"]
    assert surge["MetricName"] == "ObjectsOutsideTable"  # not every ignored object: only misrouted flow logs
    if not own:
        return
    topic = t["Resources"]["AlarmTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}  # a key CloudWatch may use, not aws/sns
    key = t["Resources"]["AlarmTopicKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    cloudwatch = next(
        s
        for s in key["KeyPolicy"]["Statement"]
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    )
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    subscriptions = of_type(t, "AWS::SNS::Subscription")
    if name == "prod":
        (subscription,) = subscriptions.values()
        assert subscription["Properties"] == {
            "TopicArn": {"Ref": "AlarmTopic"},
            "Protocol": "email",
            "Endpoint": "ops@example.com",
        }
    else:
        assert subscriptions == {}
        # a topic nobody reads: deployable (someone may subscribe later), but said in one line
        assert "no one hears the alarms yet" in SAID[name]
    if name == "prod":
        assert "no one hears the alarms yet" not in SAID[name]


# --- what the stack owns, and says ----------------------------------------------------------


@pytest.mark.parametrize("name", list(VARIANTS))
def test_buckets_the_stack_owns_are_private_and_tls_only_deployment_bucket_versioned(
    packages: dict[str, Path], name: str
) -> None:
    t = template(packages, name)
    deployment = t["Resources"]["ServerlessDeploymentBucket"]["Properties"]
    assert deployment["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
    }  # fmt: skip
    assert deployment["VersioningConfiguration"] == {"Status": "Enabled"}
    for bucket in of_type(t, "AWS::S3::Bucket"):
        (policy,) = [
            p
            for p in of_type(t, "AWS::S3::BucketPolicy").values()
            if p["Properties"]["Bucket"] == {"Ref": bucket}
        ]
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": False}}
            for s in statements
        ) or any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        ), bucket


@pytest.mark.parametrize("name", list(VARIANTS))
def test_outputs_name_everything_doctor_reads(packages: dict[str, Path], name: str) -> None:
    t = template(packages, name)
    outputs = {k: v["Value"] for k, v in t["Outputs"].items()}
    assert set(outputs) >= OUTPUTS
    assert outputs["SourceBucket"] == BUCKET
    prefix = PREFIXES.get(name, "AWSLogs/")
    assert outputs["TableLocation"] == f"s3://{BUCKET}/{prefix}" and outputs["NotificationPrefix"] == prefix
    assert outputs["NotificationFilterPrefix"] == prefix.replace("=", "%3D")  # pasted as it is
    assert ("QueueAgeAlarmSeconds" in outputs) is (name != "s3-nocache")
    trigger = {"eventbridge": "eventbridge", "s3-nocache": "s3"}.get(name, "sqs")
    assert outputs["Trigger"] == trigger
    assert ("EventsQueueUrl" in outputs) is (trigger != "s3")
    assert ("ObjectCreatedRuleName" in outputs) is (trigger == "eventbridge")
    assert ("CacheTableName" in outputs) is (name != "s3-nocache")
    assert ("GlueCatalogId" in outputs) is (name == "catalog")


def test_cache_table_ttl_encryption_and_pitr_by_stage(packages: dict[str, Path]) -> None:
    for name, pitr in (("dev", False), ("prod", True)):
        cache = template(packages, name)["Resources"]["PartitionCache"]["Properties"]
        assert cache["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
        assert cache["SSESpecification"] == {"SSEEnabled": True} and cache["BillingMode"] == "PAY_PER_REQUEST"
        assert cache["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is pitr
        assert cache["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]


def test_glue_table_is_retained_and_is_the_init_definition(packages: dict[str, Path]) -> None:
    t = template(packages, "prod")
    for name in ("FlowLogsTable", "FlowLogsDatabase"):
        assert (
            t["Resources"][name]["DeletionPolicy"] == t["Resources"][name]["UpdateReplacePolicy"] == "Retain"
        )
    spec = TableSpec("flowlogs_prod", "vpc_flow_logs", f"s3://{BUCKET}/AWSLogs/", layout="multi-account")
    assert t["Resources"]["FlowLogsTable"]["Properties"]["TableInput"] == spec.table_input()
    env = t["Resources"]["OnObjectCreatedLambdaFunction"]["Properties"]["Environment"]["Variables"]
    assert env["GLUE_DATABASE"] == "flowlogs_prod" and env["CACHE_TABLE"] == {"Ref": "PartitionCache"}
    # tableLocation places a created table too; its layout, format and hours follow the params
    lake = template(packages, "parquet-hourly")["Resources"]["FlowLogsTable"]["Properties"]["TableInput"]
    spec = TableSpec(
        "flowlogs_lake",
        "vpc_flow_logs",
        f"s3://{BUCKET}/vpc/AWSLogs/",
        file_format="parquet",
        layout="hive",
        hourly=True,
    )
    assert lake == spec.table_input()


def test_workgroup_enforces_cutoff_and_encryption(packages: dict[str, Path]) -> None:
    t = template(packages, "prod")
    config = t["Resources"]["AthenaWorkGroup"]["Properties"]["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["BytesScannedCutoffPerQuery"] == 10737418240
    assert config["ResultConfiguration"]["EncryptionConfiguration"] == {"EncryptionOption": "SSE_S3"}
    assert "AthenaWorkGroup" not in template(packages, "dev")["Resources"]  # off in dev


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_named_resource_carries_the_stage(packages: dict[str, Path], name: str) -> None:
    stage = VARIANTS[name][1]
    t = template(packages, name)
    for key in ("QueueName", "TableName", "Name", "FunctionName", "AlarmName", "TopicName", "AliasName"):
        for logical, resource in t["Resources"].items():
            value = resource.get("Properties", {}).get(key)
            if isinstance(value, str) and resource["Type"] not in ("AWS::Glue::Table",):
                assert stage in value, (logical, value)


def test_functions_and_the_powertools_layer_commercial_by_ssm_elsewhere_by_arn(
    packages: dict[str, Path],
) -> None:
    t = template(packages, "prod")
    handlers_ = {
        v["Properties"]["Handler"]
        for v in of_type(t, "AWS::Lambda::Function").values()
        if "Handler" in v["Properties"]
    }
    assert {
        "functions/vpcflow_partitioner/handlers.on_object_created",
        "functions/vpcflow_partitioner/handlers.on_schedule",
        "functions/vpcflow_partitioner/handlers.on_backfill",
    } <= handlers_
    function = t["Resources"]["OnObjectCreatedLambdaFunction"]["Properties"]
    assert function["Architectures"] == ["arm64"] and function["Runtime"] == "python3.12"
    # Powertools' public SSM parameter, resolved by CloudFormation in the deploying region: the
    # layer for the function's architecture and runtime, at the version the tests run with. In
    # aws-cn and aws-us-gov the layer has other accounts and versions: an ARN is required there
    # (the "china-without-a-layer" refusal), as the catalog variant in cn-north-1 gives.
    version = importlib.metadata.version("aws-lambda-powertools")
    assert function["Layers"] == [
        {
            "Fn::Sub": [
                "{{resolve:ssm:${Name}}}",
                {"Name": f"/aws/service/powertools/python/arm64/python3.12/{version}"},
            ]
        }
    ]
    assert not any("017000801446" in json.dumps(f) for f in of_type(t, "AWS::Lambda::Function").values())
    catalog = template(packages, "catalog")["Resources"]["OnObjectCreatedLambdaFunction"]["Properties"]
    assert catalog["Layers"] == ["arn:aws-cn:lambda:cn-north-1:111122223333:layer:powertools:1"]
    assert (
        t["Resources"]["OnScheduleEventsRuleSchedule1"]["Properties"]["ScheduleExpression"] == "rate(1 hour)"
    )


@pytest.mark.parametrize(
    ("name", "mode"), [("dev", "PassThrough"), ("prod", "PassThrough"), ("eventbridge", "Active")]
)
def test_tracing_is_a_param_off_by_default(packages: dict[str, Path], name: str, mode: str) -> None:
    functions = [
        r["Properties"]
        for r in template(packages, name)["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and "Handler" in r["Properties"]
        and r["Properties"]["Handler"].startswith("functions/")
    ]  # fmt: skip
    assert len(functions) == 3
    for function in functions:
        assert function["TracingConfig"]["Mode"] == mode
        assert function["Environment"]["Variables"]["TRACING"] == ("true" if mode == "Active" else "false")


def test_the_zip_holds_only_the_package(packages: dict[str, Path]) -> None:
    names = zipfile.ZipFile(packages["prod"] / "vpcflow-partitioner.zip").namelist()
    assert names and all(n.startswith("functions/vpcflow_partitioner/") for n in names)
    assert "functions/vpcflow_partitioner/handlers.py" in names
    # the package minus the operator's subpackage: no console script, audit, demo or init
    assert not any("/ops/" in n for n in names)
    # bytecode only for the Lambda runtime's Python (make precompile), never the build machine's,
    # and checked-hash (flags 3): the zip keeps no file times a timestamp .pyc could match
    zipped = zipfile.ZipFile(packages["prod"] / "vpcflow-partitioner.zip")
    for name in (n for n in names if "__pycache__" in n):
        assert name.endswith(".cpython-312.pyc"), name
        assert int.from_bytes(zipped.read(name)[4:8], "little") == 3, name
    assert {n.rsplit("/", 1)[-1] for n in names} >= {"handlers.py", "pipeline.py", "sources.py", "keys.py"}


@pytest.fixture(scope="module")
def runtime_deps() -> Path:
    """boto3 and powertools at the layer's version (with the X-Ray SDK it carries), nothing else."""
    version = importlib.metadata.version("aws-lambda-powertools")
    target = ROOT / ".build" / f"lambda-runtime-{version}"
    if not (target / "aws_lambda_powertools").is_dir():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target),
             "boto3", f"aws-lambda-powertools=={version}", "aws-xray-sdk"],
            check=True,
        )  # fmt: skip
    return target


def test_the_zip_runs_as_lambda_imports_it(
    packages: dict[str, Path], runtime_deps: Path, tmp_path: Path
) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    zipfile.ZipFile(packages["dev"] / "vpcflow-partitioner.zip").extractall(tmp_path / "task")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        env = {
            "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
            "GLUE_DATABASE": "flowlogs", "GLUE_TABLE": "vpc_flow_logs", "PATH": os.environ["PATH"],
        }  # fmt: skip
        glue: Any = boto3.client(
            "glue",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="t",
            aws_secret_access_key="t",
        )
        glue.create_database(DatabaseInput={"Name": "flowlogs"})
        spec = TableSpec(
            "flowlogs", "vpc_flow_logs", "s3://example-flow-logs/AWSLogs/123456789012/vpcflowlogs/us-east-1/"
        )
        glue.create_table(DatabaseName="flowlogs", TableInput=spec.table_input())
        event_path = tmp_path / "event.json"
        event_path.write_text(json.dumps(load_event("sqs_s3.json")))
        program = (
            "import json, sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
            "import importlib; module = importlib.import_module('functions.vpcflow_partitioner.handlers')\n"
            "print(json.dumps(module.on_object_created(json.load(open(sys.argv[3])), None)))\n"
            "assert 'rich' not in sys.modules and 'moto' not in sys.modules\n"
            "assert 'aws_xray_sdk' not in sys.modules  # tracing is off by default\n"
        )
        # -I -S: no site-packages at all; only the unzipped task and the runtime's libraries
        result = subprocess.run(
            [getattr(sys, "_base_executable", sys.executable), "-I", "-S", "-c", program,
             str(tmp_path / "task"), str(runtime_deps), str(event_path)],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert '{"batchItemFailures": []}' in result.stdout
        values = {
            tuple(p["Values"])
            for p in glue.get_partitions(DatabaseName="flowlogs", TableName="vpc_flow_logs")["Partitions"]
        }
        assert values == {("2022-08-29",), ("2022-08-30",)}
    finally:
        server.stop()


# --- many tables, the partition index, the distributed backfill (issue 13) -----------------


def test_tables_each_table_granted_in_its_catalog_and_named_in_GLUE_TABLES(packages: dict[str, Path]) -> None:
    t = template(packages, "tables")
    wanted = set()
    for entry in TABLES:
        catalog, _, name = entry.rpartition(":")
        database, table = name.split(".")
        base = f"arn:${{AWS::Partition}}:glue:${{AWS::Region}}:{catalog or '${AWS::AccountId}'}:"
        wanted |= {f"{base}catalog", f"{base}database/{database}", f"{base}table/{database}/{table}"}
    for role in ("ObjectCreatedRole", "ScheduleRole", "BackfillRole"):
        (statement,) = [s for s in role_statements(t, role) if actions([s], "glue")]
        arns = [r["Fn::Sub"] for r in statement["Resource"]]
        assert sorted(arns) == sorted(wanted), role  # each once: the shared catalog and database too
        assert not any("flowlogs_org" in arn for arn in arns)  # not the one-table default
    functions = [f for f in of_type(t, "AWS::Lambda::Function").values() if "Handler" in f["Properties"]]
    for function in functions:
        env = function["Properties"]["Environment"]["Variables"]
        assert env["GLUE_TABLES"] == ",".join(TABLES)  # the entries as given, spaces trimmed
        assert "GLUE_DATABASE" not in env and "GLUE_TABLE" not in env  # no table the stack does not grant
    outputs = {k: v["Value"] for k, v in t["Outputs"].items()}
    assert outputs["GlueTables"] == ",".join(TABLES)
    assert (outputs["GlueDatabase"], outputs["GlueTable"]) == ("flowlogs", "us_east_1")
    assert "GlueTables" not in template(packages, "dev")["Outputs"]
    # the one routing prefix: tableLocation, the common parent of the tables' Locations
    assert outputs["TableLocation"] == f"s3://{BUCKET}/AWSLogs/"


def test_partition_index_on_the_created_tables_date_keys(packages: dict[str, Path]) -> None:
    t = template(packages, "partition-index")
    resources = t["Resources"]
    table_input = resources["FlowLogsTable"]["Properties"]["TableInput"]
    assert table_input["Parameters"]["partition_filtering.enabled"] == "true"
    index = resources["FlowLogsPartitionIndex"]
    assert index["Type"] == "Custom::GluePartitionIndex"
    assert index["DeletionPolicy"] == index["UpdateReplacePolicy"] == "Retain"  # it goes with the table
    props = index["Properties"]
    assert props["ServiceToken"] == {"Fn::GetAtt": ["PartitionIndexFunction", "Arn"]}
    assert props["TableName"] == {"Ref": "FlowLogsTable"} and props["DatabaseName"] == "flowlogs_indexed"
    assert props["IndexName"] == "vpcflow_partitioner_date"
    # the date keys in the table's order, at most three, never the hour
    assert props["Keys"] == ["year", "month", "day"]
    assert [k["Name"] for k in table_input["PartitionKeys"]][-1] == "hour"
    function = resources["PartitionIndexFunction"]["Properties"]
    assert function["Role"] == {"Fn::Sub": "${PartitionIndexRole.Arn}"}
    assert function["Runtime"] == "python3.12"
    code = function["Code"]["ZipFile"]
    compile(code, "index.py", "exec")  # the inline handler is Python that compiles
    assert "create_partition_index" in code
    assert "cfnresponse.FAILED" in code  # a failure answers: CloudFormation is never left waiting
    statements = role_statements(t, "PartitionIndexRole")
    assert actions(statements, "glue") == {"glue:CreatePartitionIndex"}
    assert resources["PartitionIndexLogGroup"]["Properties"]["LogGroupName"] == (
        "/aws/lambda/vpcflow-partitioner-indexed-partition-index"
    )
    for name in ("dev", "prod"):  # off by default: the table is init's definition, no index
        other = template(packages, name)["Resources"]
        assert "FlowLogsPartitionIndex" not in other and "PartitionIndexRole" not in other
        assert (
            "partition_filtering.enabled"
            not in other["FlowLogsTable"]["Properties"]["TableInput"]["Parameters"]
        )


@pytest.mark.parametrize("name", ["dev", "eventbridge", "s3-nocache", "tables"])
def test_backfill_queue_dlq_mapping_and_role(packages: dict[str, Path], name: str) -> None:
    t = template(packages, name)
    resources = t["Resources"]
    queue = resources["BackfillQueue"]["Properties"]
    dlq = resources["BackfillDeadLetterQueue"]["Properties"]
    function = resources["OnBackfillLambdaFunction"]["Properties"]
    stage = VARIANTS[name][1]
    assert function["Handler"] == "functions/vpcflow_partitioner/handlers.on_backfill"
    assert function["FunctionName"] == f"vpcflow-partitioner-{stage}-on-backfill"
    timeout = 600 if name == "tables" else 900
    assert function["Timeout"] == timeout
    assert queue["VisibilityTimeout"] >= 6 * timeout  # Lambda's guidance for SQS event sources
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["BackfillDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 3,
    }
    assert queue["MessageRetentionPeriod"] == dlq["MessageRetentionPeriod"] == 1209600
    assert queue["SqsManagedSseEnabled"] is True and dlq["SqsManagedSseEnabled"] is True
    policy = resources["BackfillQueuePolicy"]["Properties"]
    assert policy["Queues"] == [{"Ref": "BackfillQueue"}, {"Ref": "BackfillDeadLetterQueue"}]
    (deny,) = policy["PolicyDocument"]["Statement"]  # TLS only, and nobody else is granted
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == [
        {"Fn::GetAtt": ["BackfillQueue", "Arn"]},
        {"Fn::GetAtt": ["BackfillDeadLetterQueue", "Arn"]},
    ]
    (mapping,) = [
        m
        for m in of_type(t, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["BackfillQueue", "Arn"]}
    ]
    props = mapping["Properties"]
    assert props["FunctionName"] == {"Fn::GetAtt": ["OnBackfillLambdaFunction", "Arn"]}
    assert props["BatchSize"] == 1 and props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ScalingConfig"] == {"MaximumConcurrency": 250 if name == "tables" else 100}
    # its role: the sweep's Glue actions and listing, inventory reads, its queue, its log group
    statements = role_statements(t, "BackfillRole")
    schedule = role_statements(t, "ScheduleRole")
    assert actions(statements, "glue", "dynamodb") == actions(schedule, "glue", "dynamodb")
    glue_of = lambda ss: next(s for s in ss if actions([s], "glue"))["Resource"]  # noqa: E731
    assert glue_of(statements) == glue_of(schedule)
    assert actions(statements, "sqs") == {
        "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility",
    }  # fmt: skip
    (sqs,) = [s for s in statements if actions([s], "sqs")]
    assert sqs["Resource"] == {"Fn::GetAtt": ["BackfillQueue", "Arn"]}
    (listing,) = [s for s in statements if "s3:ListBucket" in listed(s["Action"])]
    (sweep_listing,) = [s for s in schedule if actions([s], "s3")]
    assert (
        listing["Resource"] == sweep_listing["Resource"]
        and listing["Condition"] == sweep_listing["Condition"]
    )
    # Objects are read only in the bucket inventory reports land in, and only when it is named.
    reads = [s for s in statements if "s3:GetObject" in listed(s["Action"])]
    if name == "tables":
        assert [r["Resource"] for r in reads] == [{"Fn::Sub": "arn:${AWS::Partition}:s3:::acme-inventory/*"}]
        assert actions(statements, "s3") == {"s3:ListBucket", "s3:GetObject"}
    else:
        assert reads == [] and actions(statements, "s3") == {"s3:ListBucket"}
    memory = of_type(t, "AWS::Lambda::Function")["OnBackfillLambdaFunction"]["Properties"]["MemorySize"]
    assert memory == 1769  # one vCPU, for decoding inventory files
    assert actions(statements, "logs") == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert {a.split(":")[0] for s in statements for a in listed(s["Action"])} <= {
        "logs", "glue", "s3", "sqs", "dynamodb", "xray",
    }  # fmt: skip
    outputs = {k: v["Value"] for k, v in t["Outputs"].items()}
    assert outputs["BackfillQueueUrl"] == {"Ref": "BackfillQueue"}
    assert outputs["BackfillDlqUrl"] == {"Ref": "BackfillDeadLetterQueue"}
    assert outputs["BackfillDlqArn"] == {"Fn::GetAtt": ["BackfillDeadLetterQueue", "Arn"]}
    assert outputs["BackfillFunctionName"] == {"Ref": "OnBackfillLambdaFunction"}
    # no alarm of its own: doctor knows the stack's alarms by name (the CLI watches the DLQ)
    names = {a["Properties"]["AlarmName"] for a in of_type(t, "AWS::CloudWatch::Alarm").values()}
    assert not any("backfill" in n for n in names)


def test_backfill_role_allows_exactly_the_calls_on_backfill_makes(
    packages: dict[str, Path], mocked: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A walk slice through on_backfill on moto: what it calls is what BackfillRole allows."""
    if not hasattr(handlers, "on_backfill"):
        pytest.skip("handlers.on_backfill arrives with issue 13's handler work")
    t = template(packages, "dev")
    resources = t["Resources"]
    env = resources["OnBackfillLambdaFunction"]["Properties"]["Environment"]["Variables"]
    glue, s3 = aws.client("glue", "", "us-east-1"), aws.client("s3", "", "us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    database, table = env["GLUE_DATABASE"], env["GLUE_TABLE"]
    glue.create_database(DatabaseInput={"Name": database})
    table_input = resources["FlowLogsTable"]["Properties"]["TableInput"]
    glue.create_table(DatabaseName=database, TableInput=table_input)
    for variable, value in env.items():
        if variable == "CACHE_TABLE":
            create_cache(aws.client("dynamodb", "", "us-east-1"), "partition-cache")
            value = "partition-cache"
        monkeypatch.setenv(variable, value)
    days = [date(2024, 5, 1) + timedelta(days=n) for n in range(3)]
    for day in days:
        s3.put_object(
            Bucket=BUCKET, Key=_key(table_input["StorageDescriptor"]["Location"], day, False), Body=b""
        )
    item = {
        "v": 1, "table": f"{database}.{table}", "bucket": BUCKET,
        "folder": f"AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/", "since": "2024-05-01", "until": "2024-05-31",
    }  # fmt: skip
    record = load_event("sqs_s3.json")["Records"][0]
    record["body"] = json.dumps(item)
    record["eventSourceARN"] = "arn:aws:sqs:us-east-1:123456789012:vpcflow-partitioner-dev-backfill"
    recorder = _Recorder(monkeypatch)
    answer = handlers.on_backfill({"Records": [record]}, None)
    assert answer == {"batchItemFailures": []}
    called = recorder.take()
    statements = role_statements(t, "BackfillRole")
    allowed = actions(statements, "glue", "dynamodb", "s3")
    assert called <= allowed, called - allowed
    assert {"glue:GetTable", "glue:BatchCreatePartition", "s3:ListBucket"} <= called
    (listing,) = [s for s in statements if "s3:ListBucket" in listed(s["Action"])]
    prefixes = listing["Condition"]["StringLike"]["s3:prefix"]
    assert recorder.prefixes and all(
        any(fnmatch.fnmatchcase(p, a) for a in prefixes) for p in recorder.prefixes
    )
    partitions = glue.get_partitions(DatabaseName=database, TableName=table)["Partitions"]
    assert len(partitions) == len(days)


def test_partition_index_handler_sends_the_documented_request_and_always_answers(
    packages: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inline custom-resource code against botocore's model of Glue (moto has no
    CreatePartitionIndex): the request Glue documents, AlreadyExists taken as done, and an
    answer to CloudFormation on every path."""
    import types

    import boto3
    from botocore.stub import Stubber

    resources = template(packages, "partition-index")["Resources"]
    code = resources["PartitionIndexFunction"]["Properties"]["Code"]["ZipFile"]
    props = {
        **resources["FlowLogsPartitionIndex"]["Properties"],
        "CatalogId": ACCOUNT,
        "TableName": "vpc_flow_logs",
    }
    answers: list[tuple[str, str]] = []
    cfnresponse = types.ModuleType("cfnresponse")
    cfnresponse.SUCCESS, cfnresponse.FAILED = "SUCCESS", "FAILED"  # type: ignore[attr-defined]
    cfnresponse.send = lambda event, context, status, data, physical=None: answers.append((status, physical))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cfnresponse", cfnresponse)
    glue = boto3.client("glue", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    monkeypatch.setattr(boto3, "client", lambda *args, **kwargs: glue)
    namespace: dict[str, Any] = {}
    exec(compile(code, "index.py", "exec"), namespace)
    request = {
        "CatalogId": ACCOUNT, "DatabaseName": "flowlogs_indexed", "TableName": "vpc_flow_logs",
        "PartitionIndex": {"Keys": ["year", "month", "day"], "IndexName": "vpcflow_partitioner_date"},
    }  # fmt: skip
    event = {"RequestType": "Create", "ResourceProperties": props}
    physical = "flowlogs_indexed.vpc_flow_logs.vpcflow_partitioner_date"
    with Stubber(glue) as stub:
        stub.add_response("create_partition_index", {}, request)
        stub.add_client_error("create_partition_index", "AlreadyExistsException", expected_params=request)
        stub.add_client_error("create_partition_index", "AccessDeniedException", expected_params=request)
        namespace["handler"](event, None)
        namespace["handler"]({**event, "RequestType": "Update", "PhysicalResourceId": physical}, None)
        namespace["handler"](event, None)
        namespace["handler"]({**event, "RequestType": "Delete", "PhysicalResourceId": physical}, None)
        stub.assert_no_pending_responses()
    assert answers == [
        ("SUCCESS", physical),
        ("SUCCESS", physical),
        ("FAILED", physical),
        ("SUCCESS", physical),
    ]
