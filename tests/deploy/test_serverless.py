"""serverless.yml, packaged offline for each stage and trigger: template rules and the zip itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from helpers import load_event
from vpcflow_partitioner.formats import TableSpec

# One worker packages: osls writes .serverless/ in the project folder, so two at once collide.
pytestmark = [pytest.mark.package, pytest.mark.xdist_group("package")]
ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / ".build" / "tests"
VARIANTS = {
    "dev": ["--stage", "dev"],
    "prod": ["--stage", "prod"],
    "eventbridge": ["--stage", "staging", "--param", "trigger=eventbridge", "--param", "tracing=true"],
    "s3-nocache": [
        "--stage",
        "small",
        "--param",
        "trigger=s3",
        "--param",
        "cache=false",
        "--param",
        "createTable=false",
    ],
}


def _npx() -> str:
    npx = shutil.which("npx")
    if npx is None or not (ROOT / "node_modules" / "osls").is_dir():
        pytest.fail("osls is not installed: run `make test`, which runs `npm ci` first")
    return npx


@pytest.fixture(scope="module")
def packages() -> dict[str, Path]:
    out = {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # no credentials at all
    env["VPCFLOW_PYTHON"] = sys.executable
    for name, args in VARIANTS.items():
        target = BUILD / f"package-{name}"
        shutil.rmtree(target, ignore_errors=True)
        result = subprocess.run(
            [_npx(), "serverless", "package", *args, "--package", str(target)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        out[name] = target
    return out


def template(packages: dict[str, Path], name: str) -> dict[str, Any]:
    return dict(json.loads((packages[name] / "cloudformation-template-update-stack.json").read_text()))


def of_type(t: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in t["Resources"].items() if v["Type"] == kind}


def test_cfn_lint_finds_no_errors(packages: dict[str, Path]) -> None:
    files = [str(p / "cloudformation-template-update-stack.json") for p in packages.values()]
    cfn_lint = str(Path(sys.executable).parent / "cfn-lint")
    result = subprocess.run([cfn_lint, *files], capture_output=True, text=True)
    # cfn-lint's exit code is a bit mask: 2 = errors, 4 = warnings, 8 = informational
    assert result.returncode & 2 == 0 and result.returncode & 1 == 0, result.stdout + result.stderr


def statements(t: dict[str, Any]) -> list[dict[str, Any]]:
    role = t["Resources"]["IamRoleLambdaExecution"]["Properties"]
    return [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]


@pytest.mark.parametrize("name", list(VARIANTS))
def test_iam_is_least_privilege(packages: dict[str, Path], name: str) -> None:
    t = template(packages, name)
    for statement in statements(t):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        if "*" in resources:
            assert all(a.startswith("xray:") for a in actions), statement  # X-Ray has no resource level
        for resource in resources:
            if isinstance(resource, dict) and "Fn::Sub" in resource:
                assert resource["Fn::Sub"].startswith("arn:${AWS::Partition}:"), resource
        s3_actions = [a for a in actions if a.startswith("s3:")]
        assert s3_actions in ([], ["s3:ListBucket"])  # the function never reads objects
        if s3_actions:
            assert statement["Condition"]["StringLike"]["s3:prefix"] == ["AWSLogs/*", "AWSLogs/"]
    glue = next(s for s in statements(t) if any(a.startswith("glue:") for a in s["Action"]))
    assert sorted(glue["Action"]) == sorted(
        [
            "glue:GetTable",
            "glue:GetPartition",
            "glue:GetPartitions",
            "glue:BatchGetPartition",
            "glue:BatchCreatePartition",
        ]
    )
    arns = [r["Fn::Sub"] for r in glue["Resource"]]
    assert any(a.endswith(":catalog") for a in arns) and any("/vpc_flow_logs" in a for a in arns)
    ddb = [s for s in statements(t) if any(a.startswith("dynamodb:") for a in s["Action"])]
    if name == "s3-nocache":
        assert ddb == [] and "PartitionCache" not in t["Resources"]
    else:
        assert ddb[0]["Resource"] == {"Fn::GetAtt": ["PartitionCache", "Arn"]}


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
    assert queue["SqsManagedSseEnabled"] is True and dlq["SqsManagedSseEnabled"] is True
    assert "KmsMasterKeyId" not in queue  # aws/sqs cannot be granted to S3
    (mapping,) = of_type(t, "AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["Properties"]["ScalingConfig"]["MaximumConcurrency"] == {"dev": 2, "prod": 10}.get(name, 5)
    policy = t["Resources"]["EventsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]
    assert policy["Principal"]["Service"] == (
        "events.amazonaws.com" if name == "eventbridge" else "s3.amazonaws.com"
    )
    if name == "eventbridge":
        pattern = t["Resources"]["ObjectCreatedRule"]["Properties"]["EventPattern"]
        assert pattern["detail-type"] == ["Object Created"]
        assert pattern["detail"]["object"]["key"] == [{"prefix": "AWSLogs/"}]
    alarm = t["Resources"]["DeadLetterQueueAlarm"]["Properties"]
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"


def test_direct_s3_mode_uses_the_existing_bucket(packages: dict[str, Path]) -> None:
    t = template(packages, "s3-nocache")
    assert "EventsQueue" not in t["Resources"] and "FlowLogsTable" not in t["Resources"]
    custom = [v for v in t["Resources"].values() if v["Type"] == "Custom::S3"]
    assert custom and custom[0]["Properties"]["BucketName"] == "my-flow-logs-bucket"
    (invoke_config,) = of_type(t, "AWS::Lambda::EventInvokeConfig").values()
    failure = invoke_config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
    assert failure == {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}  # nothing lost after Lambda's retries
    assert "DeadLetterQueueAlarm" in t["Resources"]


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
    spec = TableSpec(
        "flowlogs_prod", "vpc_flow_logs", "s3://my-flow-logs-bucket/AWSLogs/", layout="multi-account"
    )
    assert t["Resources"]["FlowLogsTable"]["Properties"]["TableInput"] == spec.table_input()
    env = t["Resources"]["OnObjectCreatedLambdaFunction"]["Properties"]["Environment"]["Variables"]
    assert env["GLUE_DATABASE"] == "flowlogs_prod" and env["CACHE_TABLE"] == {"Ref": "PartitionCache"}


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
    for key in ("QueueName", "TableName", "Name", "FunctionName", "AlarmName"):
        for logical, resource in t["Resources"].items():
            value = resource.get("Properties", {}).get(key)
            if isinstance(value, str) and resource["Type"] not in ("AWS::Glue::Table",):
                assert stage in value, (logical, value)


def test_functions_and_layer(packages: dict[str, Path]) -> None:
    t = template(packages, "prod")
    handlers = {
        v["Properties"]["Handler"]
        for v in of_type(t, "AWS::Lambda::Function").values()
        if "Handler" in v["Properties"]
    }
    assert {
        "functions/vpcflow_partitioner/handlers.on_object_created",
        "functions/vpcflow_partitioner/handlers.on_schedule",
    } <= handlers
    function = t["Resources"]["OnObjectCreatedLambdaFunction"]["Properties"]
    assert function["Architectures"] == ["arm64"] and function["Runtime"] == "python3.12"
    assert function["Layers"][0].endswith(
        "AWSLambdaPowertoolsPythonV3-python312-arm64:27"
    )  # same architecture
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
        if r["Type"] == "AWS::Lambda::Function"
    ]
    assert functions
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
    """boto3 and powertools (with the X-Ray SDK its layer carries), and nothing else."""
    target = ROOT / ".build" / "lambda-runtime"
    if not (target / "aws_lambda_powertools").is_dir():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target),
             "boto3", "aws-lambda-powertools>=3,<4", "aws-xray-sdk"],
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
