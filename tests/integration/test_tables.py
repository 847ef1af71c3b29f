"""GLUE_TABLES on moto: one deployment, many tables; routing, formats, isolation, metrics."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers import (
    ACCOUNT,
    BUCKET,
    CLASSIC_LOCATION,
    DATABASE,
    change_table,
    create_cache,
    create_table,
    failure,
    flow_key,
    inject_error,
    partitions,
    s3_body,
    sqs_event,
)
from vpcflow_partitioner import aws, handlers
from vpcflow_partitioner.scheme import ConfigurationError

ROOT = f"s3://{BUCKET}/AWSLogs/"
PARQUET_SD = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
}
ORG_KEYS = [("account_id", "string"), ("region", "string"), ("date", "date")]
OTHER = "210987654321"


def glue() -> Any:
    return aws.client("glue", "", "us-east-1")


def parquet_key(day: str, account: str = ACCOUNT) -> str:
    return flow_key(day, account=account).replace(".log.gz", ".log.parquet")


@pytest.fixture
def two(mocked: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """`regional`: one account's us-east-1 folder by date; `org`: every account and region."""
    create_table(glue(), table="regional")
    create_table(glue(), ROOT, ORG_KEYS, table="org")
    monkeypatch.setenv("GLUE_TABLES", f"{DATABASE}.regional, {DATABASE}.org")


def test_an_object_goes_to_every_table_whose_location_holds_it(two: None) -> None:
    response = handlers.on_object_created(
        sqs_event(s3_body(flow_key("2022-08-29")), s3_body(flow_key("2022-08-30", account=OTHER)))
    )
    assert response == {"batchItemFailures": []}
    assert partitions(glue(), table="regional") == {("2022-08-29",): f"{CLASSIC_LOCATION}2022/08/29/"}
    assert partitions(glue(), table="org") == {
        (ACCOUNT, "us-east-1", "2022-08-29"): f"{CLASSIC_LOCATION}2022/08/29/",
        (OTHER, "us-east-1", "2022-08-30"): f"{ROOT}{OTHER}/vpcflowlogs/us-east-1/2022/08/30/",
    }


def test_an_object_outside_every_table_is_counted_once(two: None, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    outside = f"elsewhere/{flow_key('2022-08-29')}".replace("elsewhere/AWSLogs", "elsewhere/x/AWSLogs")
    handlers.on_object_created(json.loads(s3_body(outside)))
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    totals = [d for d in documents if "table" not in d]
    assert [(d["ObjectsIgnored"], d["ObjectsOutsideTable"]) for d in totals] == [([1.0], [1.0])]
    assert all("table" not in d for d in documents)  # nothing happened in any table


def test_each_table_gets_its_own_metrics_beside_the_totals(
    two: None, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    handlers.on_object_created(
        json.loads(s3_body(flow_key("2022-08-29"), flow_key("2022-08-30", account=OTHER)))
    )
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    by_dimensions = {tuple(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]): d for d in documents}
    assert by_dimensions[("service",)]["PartitionsCreated"] == [3.0]  # what the alarms read
    per_table = {d["table"]: d["PartitionsCreated"] for d in documents if "table" in d}
    assert per_table == {f"{DATABASE}.regional": [1.0], f"{DATABASE}.org": [2.0]}
    assert all(
        set(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]) == {"service", "table"}
        for d in documents
        if "table" in d
    )


def test_a_text_and_a_parquet_twin_each_take_their_own_files(
    mocked: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_table(glue(), table="text")
    create_table(glue(), table="parquet")
    change_table(glue(), DATABASE, "parquet", PARQUET_SD)
    monkeypatch.setenv("GLUE_TABLES", f"{DATABASE}.text,{DATABASE}.parquet")
    response = handlers.on_object_created(
        sqs_event(s3_body(flow_key("2022-08-29")), s3_body(parquet_key("2022-08-30")))
    )
    assert response == {"batchItemFailures": []}
    assert set(partitions(glue(), table="text")) == {("2022-08-29",)}
    assert set(partitions(glue(), table="parquet")) == {("2022-08-30",)}


def test_a_parquet_file_no_table_reads_is_outside_every_table(
    mocked: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GLUE_DATABASE", DATABASE)
    monkeypatch.setenv("GLUE_TABLE", "text")
    create_table(glue(), table="text")
    capsys.readouterr()
    response = handlers.on_object_created(json.loads(s3_body(parquet_key("2022-08-29"))))
    assert response == {"messages": 1, "ObjectsIgnored": 1, "ObjectsOutsideTable": 1}
    assert partitions(glue(), table="text") == {}


def test_a_table_whose_writes_fail_fails_only_its_records(two: None) -> None:
    handlers.on_object_created(json.loads(s3_body(flow_key("2022-08-01"))))  # both tables read
    create_calls: list[str] = []

    def fail_org(params: dict[str, Any], **_: Any) -> Any:
        table = json.loads(params["body"])["TableName"]
        create_calls.append(table)
        if table == "org":
            return failure("InternalServiceException", 500)
        return None

    glue().meta.events.register_first("before-call.glue.BatchCreatePartition", fail_org)
    response = handlers.on_object_created(
        sqs_event(s3_body(flow_key("2022-08-02")), s3_body(flow_key("2022-08-03", account=OTHER)))
    )
    # m0 is in both tables: regional created it, org failed it; m1 is org's alone.
    assert response == {"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]}
    assert ("2022-08-02",) in partitions(glue(), table="regional")
    assert sorted(create_calls) == ["org", "regional"]


def test_a_table_that_cannot_be_read_fails_only_the_records_it_could_concern(
    two: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TABLE_REFRESH_SECONDS", "0")
    handlers.reset()
    handlers.on_object_created(json.loads(s3_body(flow_key("2022-08-01"))))  # both tables known
    glue().delete_table(DatabaseName=DATABASE, Name="regional")  # gone five minutes ago
    response = handlers.on_object_created(
        sqs_event(
            s3_body(flow_key("2022-08-02")),  # in regional's Location: it could concern it
            s3_body(flow_key("2022-08-03", account=OTHER)),  # outside regional's Location
        )
    )
    assert response == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert (OTHER, "us-east-1", "2022-08-03") in partitions(glue(), table="org")
    assert (ACCOUNT, "us-east-1", "2022-08-02") in partitions(glue(), table="org")


def test_a_cold_container_that_cannot_read_a_table_fails_every_flow_log_record(
    two: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    inject_error(glue(), "GetTable", "AccessDeniedException", times=1)  # the first table read
    response = handlers.on_object_created(
        sqs_event(
            s3_body(flow_key("2022-08-03", account=OTHER)),
            s3_body("AWSLogs/elb/app.log"),  # no flow log: no table could want it
        )
    )
    # Which Location the unread table has is unknown: the flow log could be its.
    assert response == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
    assert (OTHER, "us-east-1", "2022-08-03") in partitions(glue(), table="org")


def test_every_table_unreadable_is_the_configuration_error_of_one(
    mocked: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GLUE_TABLES", f"{DATABASE}.missing_a,{DATABASE}.missing_b")
    glue().create_database(DatabaseInput={"Name": DATABASE})
    with pytest.raises(ConfigurationError, match="missing_a"):  # loud, as with one table
        handlers.on_object_created(sqs_event(s3_body(flow_key("2022-08-03"))))


def test_each_table_keeps_its_own_cache_entries(two: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers import CACHE

    monkeypatch.setenv("CACHE_TABLE", CACHE)
    create_cache(aws.client("dynamodb", "", "us-east-1"))
    handlers.reset()
    handlers.on_object_created(json.loads(s3_body(flow_key("2022-08-29"))))
    items = aws.client("dynamodb", "", "us-east-1").scan(TableName=CACHE)["Items"]
    tables = sorted(json.loads(i["id"]["S"])[2] for i in items)
    assert tables == ["org", "regional"]


def test_the_sweep_walks_every_table(two: None, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    s3 = aws.client("s3", "", "us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    s3.put_object(Bucket=BUCKET, Key=flow_key(today), Body=b"x")
    s3.put_object(Bucket=BUCKET, Key=flow_key(today, account=OTHER), Body=b"x")
    assert handlers.on_schedule({})["PartitionsCreated"] == 3
    assert set(partitions(glue(), table="regional")) == {(today,)}
    assert len(partitions(glue(), table="org")) == 2


# ---------------------------------------------------------------- the command line over many tables


@pytest.fixture
def twins(mocked: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A text and a Parquet table over one Location; the folders hold both kinds of file, the
    text file first in each listing (it sorts before), as during a format migration."""
    from datetime import UTC, datetime

    from vpcflow_partitioner.ops.synthetic import object_key

    create_table(glue(), table="text")
    create_table(glue(), table="parquet")
    change_table(glue(), DATABASE, "parquet", PARQUET_SD)
    monkeypatch.setenv("GLUE_TABLES", f"{DATABASE}.text,{DATABASE}.parquet")
    s3 = aws.client("s3", "", "us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    for day, kinds in ((10, (False, True)), (11, (False,)), (12, (True,))):
        for parquet in kinds:
            moment = datetime(2024, 2, day, tzinfo=UTC)
            s3.put_object(
                Bucket=BUCKET, Key=object_key(ACCOUNT, "us-east-1", moment, parquet=parquet), Body=b"x"
            )
    return s3


def test_backfill_fills_every_table_each_from_its_own_files(
    twins: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from vpcflow_partitioner.ops.cli import main

    assert main(["backfill", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(partitions(glue(), table="text")) == {("2024-02-10",), ("2024-02-11",)}
    assert set(partitions(glue(), table="parquet")) == {("2024-02-10",), ("2024-02-12",)}
    assert summary["partitions_created"] == 4 and summary["ignored"] == 0
    assert sorted((p["table"], p["values"][0]) for p in summary["partitions"]) == [
        (f"{DATABASE}.parquet", "2024-02-10"),
        (f"{DATABASE}.parquet", "2024-02-12"),
        (f"{DATABASE}.text", "2024-02-10"),
        (f"{DATABASE}.text", "2024-02-11"),
    ]


def test_a_table_flag_backfills_one_of_the_tables(twins: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from vpcflow_partitioner.ops.cli import main

    assert main(["backfill", "--table", "parquet", "--json"]) == 0
    assert "table" not in json.loads(capsys.readouterr().out)["partitions"][0]  # one table: as before
    assert partitions(glue(), table="text") == {}
    assert set(partitions(glue(), table="parquet")) == {("2024-02-10",), ("2024-02-12",)}


def test_audit_reports_every_table(twins: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from vpcflow_partitioner.ops.cli import main

    assert main(["audit", "--json"]) == 3
    document = json.loads(capsys.readouterr().out)
    assert {name: len(table["missing"]) for name, table in document["tables"].items()} == {
        f"{DATABASE}.text": 2,
        f"{DATABASE}.parquet": 2,
    }
    assert main(["audit", "--fix", "--json"]) == 0
    assert set(partitions(glue(), table="parquet")) == {("2024-02-10",), ("2024-02-12",)}


def test_replay_goes_to_every_table(twins: Any, tmp_path: Any) -> None:
    from vpcflow_partitioner.ops.cli import main

    saved = tmp_path / "events.json"
    saved.write_text(s3_body(flow_key("2022-08-29"), parquet_key("2022-08-30")))
    assert main(["replay", str(saved)]) == 0
    assert set(partitions(glue(), table="text")) == {("2022-08-29",)}
    assert set(partitions(glue(), table="parquet")) == {("2022-08-30",)}


# ---------------------------------------------------------------- what review found


def test_a_misconfigured_table_fails_its_batch_operations_tasks_permanently(
    two: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers import load_event

    monkeypatch.setenv("TABLE_REFRESH_SECONDS", "0")
    handlers.reset()
    handlers.on_object_created(json.loads(s3_body(flow_key("2022-08-01"))))  # both tables known
    glue().delete_table(DatabaseName=DATABASE, Name="regional")  # a configuration error now
    event = load_event("batch_operations_v2.json")
    event["tasks"][1]["s3Key"] = flow_key("2022-08-03", account=OTHER)  # outside regional's Location
    results = {r["taskId"]: r["resultCode"] for r in handlers.on_object_created(event)["results"]}
    assert list(results.values()) == ["PermanentFailure", "Succeeded"]  # retrying cannot bring it back


def test_an_object_two_tables_cannot_represent_is_counted_once(
    mocked: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue(), table="a", keys=[("date", "date"), ("hour", "string")])
    create_table(glue(), table="b", keys=[("date", "date"), ("hour", "string")])
    monkeypatch.setenv("GLUE_TABLES", f"{DATABASE}.a,{DATABASE}.b")
    capsys.readouterr()
    response = handlers.on_object_created(json.loads(s3_body(flow_key("2022-08-29"))))  # a daily file
    assert response["ObjectsUnpartitionable"] == 1
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    per_table = {d["table"]: d["ObjectsUnpartitionable"] for d in documents if "table" in d}
    assert per_table == {f"{DATABASE}.a": [1.0], f"{DATABASE}.b": [1.0]}


def test_the_sweeps_table_documents_count_its_failures(two: None, capsys: pytest.CaptureFixture[str]) -> None:
    import time

    from vpcflow_partitioner.errors import TransientError

    s3 = aws.client("s3", "", "us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    s3.put_object(Bucket=BUCKET, Key=flow_key(today, account=OTHER), Body=b"x")
    inject_error(glue(), "BatchCreatePartition", "InternalServiceException", status=500)
    capsys.readouterr()
    with pytest.raises(TransientError):
        handlers.on_schedule({})
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert {d["table"]: d["RecordsFailed"] for d in documents if "table" in d} == {f"{DATABASE}.org": [1.0]}


def test_a_stacks_tables_win_over_the_shells_one_table() -> None:
    from vpcflow_partitioner.config import Settings

    shell = {"GLUE_DATABASE": "mine", "GLUE_TABLE": "scratch"}
    settings = Settings.from_env(shell, GLUE_TABLES=f"{DATABASE}.a,{DATABASE}.b")
    assert [str(n) for n in settings.table_names] == [f"{DATABASE}.a", f"{DATABASE}.b"]


def test_a_table_of_an_unknown_format_takes_both_files_and_says_so(
    mocked: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    create_table(glue(), table="custom")
    change_table(
        glue(), DATABASE, "custom", {"InputFormat": "com.example.ColumnarInputFormat", "SerdeInfo": {}}
    )
    monkeypatch.setenv("GLUE_TABLES", f"{DATABASE}.custom")
    handlers.on_object_created(sqs_event(s3_body(flow_key("2022-08-29")), s3_body(parquet_key("2022-08-30"))))
    assert set(partitions(glue(), table="custom")) == {("2022-08-29",), ("2022-08-30",)}
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "table format unknown: it takes .log.gz and .log.parquet files"
    ]


def test_a_task_one_table_fails_transiently_is_retried_though_another_is_misconfigured(
    two: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers import load_event

    monkeypatch.setenv("TABLE_REFRESH_SECONDS", "0")
    handlers.reset()
    handlers.on_object_created(json.loads(s3_body(flow_key("2022-08-01"))))  # both tables known
    glue().delete_table(DatabaseName=DATABASE, Name="regional")  # misconfigured now
    inject_error(glue(), "BatchCreatePartition", "InternalServiceException", status=500)  # org: transient
    event = load_event("batch_operations_v2.json")
    results = [r["resultCode"] for r in handlers.on_object_created(event)["results"]]
    # The org table may recover: S3 Batch Operations must try again, not give up.
    assert results == ["TemporaryFailure", "TemporaryFailure"]


def test_a_throttled_table_read_answers_batch_operations_tasks_temporary(
    mocked: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers import load_event

    monkeypatch.setenv("GLUE_DATABASE", DATABASE)
    monkeypatch.setenv("GLUE_TABLE", "regional")
    create_table(glue(), table="regional")
    inject_error(glue(), "GetTable", "ThrottlingException")
    response = handlers.on_object_created(load_event("batch_operations_v2.json"))
    # A raise would fail the invocation; TemporaryFailure is the code S3 Batch Operations retries.
    assert [r["resultCode"] for r in response["results"]] == ["TemporaryFailure", "TemporaryFailure"]


def test_init_creates_one_table_and_asks_which_of_several(
    mocked: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vpcflow_partitioner.ops.cli import main

    monkeypatch.setenv("GLUE_TABLES", f"{DATABASE}.text,{DATABASE}.parquet")
    location = ["--location", f"s3://{BUCKET}/AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/"]
    assert main(["init", *location]) == 2
    assert "pick one with --table" in capsys.readouterr().err
    assert main(["init", *location, "--table", "parquet", "--file-format", "parquet"]) == 0
    assert glue().get_table(DatabaseName=DATABASE, Name="parquet")["Table"]["Name"] == "parquet"
