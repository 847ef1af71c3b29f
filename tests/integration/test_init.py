"""`vpcflow-partitioner init` on moto."""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import ACCOUNT, BUCKET, CLASSIC_LOCATION, answer, change_table, load_event, partitions
from vpcflow_partitioner import aws, handlers
from vpcflow_partitioner.formats import FIELDS, PARQUET, TableSpec, columns, format_string
from vpcflow_partitioner.ops.cli import main

DB, TABLE = "flowlogs", "vpc_flow_logs"


def glue() -> Any:
    return aws.client("glue", "", "us-east-1")


def s3() -> Any:
    return aws.client("s3", "", "us-east-1")


@pytest.fixture
def world(mocked: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLUE_DATABASE", DB)
    monkeypatch.setenv("GLUE_TABLE", TABLE)
    s3().create_bucket(Bucket=BUCKET)


def init(*extra: str) -> int:
    return main(["init", "--database", DB, "--table", TABLE, "--location", CLASSIC_LOCATION, *extra])


def columns_of(table: str = TABLE) -> list[tuple[str, str]]:
    sd = glue().get_table(DatabaseName=DB, Name=table)["Table"]["StorageDescriptor"]
    return [(c["Name"], c["Type"]) for c in sd["Columns"]]


def test_default_init_creates_the_tutorial_table_and_is_idempotent(world: None, capsys: Any) -> None:
    assert init() == 0
    table = glue().get_table(DatabaseName=DB, Name=TABLE)["Table"]
    assert table["PartitionKeys"] == [{"Name": "date", "Type": "date"}]
    assert columns_of()[7] == ("protocol", "bigint")
    before = table.get("UpdateTime")
    assert init() == 0
    assert "unchanged" in capsys.readouterr().out
    assert glue().get_table(DatabaseName=DB, Name=TABLE)["Table"].get("UpdateTime") == before


def test_lambda_partitions_of_an_init_table_carry_its_serde(world: None) -> None:
    assert init() == 0
    handlers.on_object_created(load_event("sqs_s3.json"))
    table_sd = glue().get_table(DatabaseName=DB, Name=TABLE)["Table"]["StorageDescriptor"]
    for values in partitions(glue(), DB, TABLE):
        sd = glue().get_partition(DatabaseName=DB, TableName=TABLE, PartitionValues=list(values))[
            "Partition"
        ]["StorageDescriptor"]
        assert sd["SerdeInfo"] == table_sd["SerdeInfo"] and sd["Columns"] == table_sd["Columns"]


def test_bad_format_is_exit_2_and_creates_nothing(world: None, capsys: Any) -> None:
    assert init("--format", "${version} ${account-id} ${vpcid}") == 2
    assert "'vpcid'" in capsys.readouterr().err
    assert glue().get_databases()["DatabaseList"] == []


def test_from_object_reads_only_the_header_of_a_gzip_file(world: None) -> None:
    fields = FIELDS[:29]
    header = " ".join(f.name for f in fields)
    body = header + "\n" + "\n".join("2 123456789012 eni-0a1b2c3d " + "x " * 26 for _ in range(20000))
    key = f"AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/2022/08/29/{ACCOUNT}_vpcflowlogs_us-east-1_fl-1_20220829T0005Z_ab.log.gz"
    s3().put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(body.encode()))
    ranges: list[str] = []
    s3().meta.events.register(
        "before-parameter-build.s3.GetObject", lambda params, **_: ranges.append(params.get("Range"))
    )
    assert init("--from-object", f"s3://{BUCKET}/{key}") == 0
    assert [n for n, _ in columns_of()] == [f.column for f in fields]
    assert ranges == ["bytes=0-65535"]


def test_from_object_reads_a_parquet_footer(world: None) -> None:
    fields = FIELDS[:20]
    arrays = {
        f.column: pa.array([1], pa.int32())
        if "int" in c["Type"] and c["Type"] == "int"
        else pa.array([1], pa.int64())
        if c["Type"] == "bigint"
        else pa.array(["x"])
        for f, c in zip(fields, columns(fields, PARQUET), strict=True)
    }
    buffer = io.BytesIO()
    pq.write_table(pa.table(arrays), buffer, compression="gzip")
    key = f"AWSLogs/{ACCOUNT}/vpcflowlogs/us-east-1/2022/08/29/{ACCOUNT}_vpcflowlogs_us-east-1_fl-1_20220829T0005Z_ab.log.parquet"
    s3().put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue())
    assert init("--from-object", f"s3://{BUCKET}/{key}") == 0
    table = glue().get_table(DatabaseName=DB, Name=TABLE)["Table"]
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    assert columns_of() == [(c["Name"], c["Type"]) for c in columns(fields, PARQUET)]


def test_a_different_table_is_reported_and_kept_unless_update(world: None, capsys: Any) -> None:
    assert init() == 0
    handlers.on_object_created(load_event("sqs_s3.json"))  # two partitions with the old columns
    wider = format_string(FIELDS[:20])
    assert init("--format", wider) == 3
    out = capsys.readouterr().out
    assert "columns to add" in out and "vpc_id" in out
    assert len(columns_of()) == 14
    assert init("--format", wider, "--update") == 2  # it rewrites partitions: --yes off a terminal
    assert len(columns_of()) == 14
    assert init("--format", wider, "--update", "--dry-run") == 3
    assert "would rewrite the columns of 2 partitions" in capsys.readouterr().out
    assert init("--format", wider, "--update", "--yes") == 0
    assert len(columns_of()) == 20
    for values, location in partitions(glue(), DB, TABLE).items():
        sd = glue().get_partition(DatabaseName=DB, TableName=TABLE, PartitionValues=list(values))[
            "Partition"
        ]["StorageDescriptor"]
        assert len(sd["Columns"]) == 20 and sd["Location"] == location and location.endswith("/")
    assert init("--format", wider) == 0


def test_partition_keys_cannot_change_in_place(world: None, capsys: Any) -> None:
    assert init() == 0
    code = main(
        [
            "init",
            "--database",
            DB,
            "--table",
            TABLE,
            "--location",
            f"s3://{BUCKET}/AWSLogs/",
            "--multi-account",
            "--update",
        ]
    )
    assert code == 2 and "partition keys" in capsys.readouterr().err


def test_view_is_created_through_athena(world: None, capsys: Any) -> None:
    athena = aws.client("athena", "", "us-east-1")
    queries: list[str] = []
    athena.meta.events.register(
        "before-parameter-build.athena.StartQueryExecution",
        lambda params, **_: queries.append(params["QueryString"]),
    )
    assert init("--view-timezone", "Asia/Seoul", "--athena-output", f"s3://{BUCKET}/athena/") == 0
    assert len(queries) == 1 and 'VIEW "flowlogs"."vpc_flow_logs_asia_seoul"' in queries[0]
    assert "DATE '2022-08-28'" in capsys.readouterr().out


def test_print_ddl_matches_what_init_creates(world: None, capsys: Any) -> None:
    assert init("--print-ddl") == 0
    assert glue().get_databases()["DatabaseList"] == []  # printing changes nothing
    assert capsys.readouterr().out.startswith(TableSpec(DB, TABLE, CLASSIC_LOCATION).athena_ddl())


def test_dry_run_creates_nothing_and_says_what_it_would(world: None, capsys: Any) -> None:
    assert init("--dry-run") == 3  # it would create the database and the table
    out = capsys.readouterr().out
    assert "database flowlogs: would create" in out and "table flowlogs.vpc_flow_logs: would create" in out
    assert glue().get_databases()["DatabaseList"] == []
    assert init() == 0
    assert "database flowlogs: created" in capsys.readouterr().out
    assert init("--dry-run") == 0  # in step: nothing to do


@pytest.fixture
def glue_indexes(world: None) -> dict[str, Any]:
    """Glue's partition indexes, which moto does not keep: CreateTable's PartitionIndexes and
    CreatePartitionIndex add to this store, GetPartitionIndexes reads it. Requests are kept."""
    store: dict[str, Any] = {"indexes": [], "requests": []}

    def create_table(params: dict[str, Any], **_: Any) -> None:
        for index in json.loads(params["body"]).get("PartitionIndexes") or []:
            store["requests"].append(("CreateTable", index))
            store["indexes"].append(
                {"IndexName": index["IndexName"], "Keys": [{"Name": k} for k in index["Keys"]]}
            )

    def create_index(request: dict[str, Any]) -> dict[str, Any]:
        index = request["PartitionIndex"]
        store["requests"].append(("CreatePartitionIndex", index))
        store["indexes"].append(
            {"IndexName": index["IndexName"], "Keys": [{"Name": k} for k in index["Keys"]]}
        )
        return {}

    def get_indexes(_: dict[str, Any]) -> dict[str, Any]:
        return {"PartitionIndexDescriptorList": [{"IndexStatus": "ACTIVE"} | i for i in store["indexes"]]}

    glue().meta.events.register_first("before-call.glue.CreateTable", create_table)  # then moto's
    answer(glue(), "CreatePartitionIndex", create_index)
    answer(glue(), "GetPartitionIndexes", get_indexes)
    return store


def filtering() -> str | None:
    return (
        glue()
        .get_table(DatabaseName=DB, Name=TABLE)["Table"]
        .get("Parameters", {})
        .get("partition_filtering.enabled")
    )


def test_a_new_table_gets_its_date_index_in_the_same_create(
    glue_indexes: dict[str, Any], capsys: Any
) -> None:
    assert (
        init("--multi-account", "--location", f"s3://{BUCKET}/AWSLogs/", "--partition-index", "--dry-run")
        == 3
    )
    assert "would create" in capsys.readouterr().out and glue_indexes["requests"] == []
    assert init("--multi-account", "--location", f"s3://{BUCKET}/AWSLogs/", "--partition-index") == 0
    out = capsys.readouterr().out
    assert (
        "partition index vpcflow_partitioner_date (year, month, day) and partition_filtering.enabled: created"
        in out
    )
    assert glue_indexes["requests"] == [
        ("CreateTable", {"Keys": ["year", "month", "day"], "IndexName": "vpcflow_partitioner_date"})
    ]
    assert filtering() == "true"
    # Again: present, nothing asked of Glue, exit 0; and an update of the columns keeps filtering on.
    assert init("--multi-account", "--location", f"s3://{BUCKET}/AWSLogs/", "--partition-index") == 0
    assert ": present" in capsys.readouterr().out and len(glue_indexes["requests"]) == 1
    wider = format_string(FIELDS[:20])
    args = [
        "--multi-account",
        "--location",
        f"s3://{BUCKET}/AWSLogs/",
        "--format",
        wider,
        "--update",
        "--yes",
    ]
    assert init(*args) == 0
    assert filtering() == "true" and len(columns_of()) == 20


def test_an_existing_table_gets_the_index_without_update_and_keeps_its_partitions(
    glue_indexes: dict[str, Any], capsys: Any
) -> None:
    assert init() == 0  # the classic table: PARTITIONED BY (date date)
    handlers.on_object_created(load_event("sqs_s3.json"))
    before = partitions(glue(), DB, TABLE)
    assert init("--partition-index", "--dry-run") == 3
    assert "would create" in capsys.readouterr().out and filtering() is None
    assert init("--partition-index") == 0  # additive: no --update, no question
    assert glue_indexes["requests"] == [
        ("CreatePartitionIndex", {"Keys": ["date"], "IndexName": "vpcflow_partitioner_date"})
    ]
    assert filtering() == "true" and partitions(glue(), DB, TABLE) == before
    assert columns_of()[7] == ("protocol", "bigint")  # the rest of the table untouched


def test_a_table_with_three_indexes_is_refused_in_one_line(glue_indexes: dict[str, Any], capsys: Any) -> None:
    assert init() == 0
    # three other indexes (keys this table does not have: only their number matters here)
    glue_indexes["indexes"] += [{"IndexName": f"other{i}", "Keys": [{"Name": f"k{i}"}]} for i in range(3)]
    capsys.readouterr()
    assert init("--partition-index") == 1  # the table's state, not a usage error
    err = capsys.readouterr().err
    assert "has 3 partition indexes, Glue's maximum" in err and len(err.strip().splitlines()) == 1
    # Failed indexes are listed by Glue but are not usable: they do not count.
    for index in glue_indexes["indexes"]:
        index["IndexStatus"] = "FAILED"
    assert init("--partition-index") == 0 and glue_indexes["requests"][-1][0] == "CreatePartitionIndex"


def test_an_index_on_the_same_keys_under_another_name_is_enough(
    glue_indexes: dict[str, Any], capsys: Any
) -> None:
    assert init() == 0
    glue_indexes["indexes"].append({"IndexName": "by_day", "Keys": [{"Name": "date"}]})
    assert init("--partition-index") == 0  # switches filtering on, creates nothing
    assert glue_indexes["requests"] == [] and filtering() == "true"
    assert ": present; filtering switched on" in capsys.readouterr().out


def test_print_ddl_gives_the_index_command_and_the_table_property(world: None, capsys: Any) -> None:
    assert init("--hive", "--location", f"s3://{BUCKET}/AWSLogs/", "--print-ddl", "--partition-index") == 0
    out = capsys.readouterr().out
    assert "--partition-index 'Keys=year,month,day,IndexName=vpcflow_partitioner_date'" in out
    assert f"ALTER TABLE `{DB}`.`{TABLE}` SET TBLPROPERTIES ('partition_filtering.enabled'='true');" in out
    assert glue().get_databases()["DatabaseList"] == []  # printed, not done


def test_a_failed_index_on_the_same_keys_is_not_present(glue_indexes: dict[str, Any], capsys: Any) -> None:
    assert init() == 0
    glue_indexes["indexes"].append(
        {"IndexName": "by_day", "Keys": [{"Name": "date"}], "IndexStatus": "FAILED"}
    )
    assert init("--partition-index") == 0
    assert glue_indexes["requests"] == [
        ("CreatePartitionIndex", {"Keys": ["date"], "IndexName": "vpcflow_partitioner_date"})
    ]
    # Ours failed to build: it must be deleted before it can be made again (one line, exit 1).
    glue_indexes["indexes"] = [
        {
            "IndexName": "vpcflow_partitioner_date",
            "Keys": [{"Name": "date"}],
            "IndexStatus": "FAILED",
            "BackfillErrors": [{"Code": "MISSING_PARTITION_VALUE_ERROR"}],
        }
    ]
    capsys.readouterr()
    assert init("--partition-index") == 1
    err = capsys.readouterr().err.strip()
    assert "FAILED (MISSING_PARTITION_VALUE_ERROR)" in err and "delete-partition-index" in err
    assert len(err.splitlines()) == 1


def test_an_existing_table_is_indexed_on_its_own_keys_whatever_the_flags(
    glue_indexes: dict[str, Any], capsys: Any
) -> None:
    """AWS's documented table (accid, region, day) with projection.day.format yyyy/MM/dd."""
    glue().create_database(DatabaseInput={"Name": DB})
    glue().create_table(
        DatabaseName=DB,
        TableInput={
            "Name": TABLE,
            "PartitionKeys": [{"Name": n, "Type": "string"} for n in ("accid", "region", "day")],
            "Parameters": {"projection.day.format": "yyyy/MM/dd", "team": "netsec"},
            "StorageDescriptor": {
                "Location": f"s3://{BUCKET}/AWSLogs/",
                "Columns": [{"Name": "a", "Type": "int"}],
            },
        },
    )
    assert (
        init("--multi-account", "--location", f"s3://{BUCKET}/AWSLogs/", "--partition-index") == 3
    )  # differs
    out = capsys.readouterr().out
    assert "(day) and partition_filtering.enabled: created" in out
    assert "the table's definition is unchanged" in out
    assert glue_indexes["requests"] == [
        ("CreatePartitionIndex", {"Keys": ["day"], "IndexName": "vpcflow_partitioner_date"})
    ]
    assert filtering() == "true"
    params = glue().get_table(DatabaseName=DB, Name=TABLE)["Table"]["Parameters"]
    assert params["team"] == "netsec" and params["projection.day.format"] == "yyyy/MM/dd"


def test_update_keeps_the_tables_other_properties(world: None) -> None:
    assert init() == 0
    change_table(glue(), DB, TABLE, team="netsec")
    assert init("--format", format_string(FIELDS[:20]), "--update", "--yes") == 0
    assert glue().get_table(DatabaseName=DB, Name=TABLE)["Table"]["Parameters"]["team"] == "netsec"
