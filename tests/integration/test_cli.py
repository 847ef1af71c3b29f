"""The console script as an AWS operator uses it: aws-cli's options, plan and apply, any input, no traceback."""

from __future__ import annotations

import argparse
import gzip
import io
import json
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers import BUCKET, CLASSIC_LOCATION, DATABASE, TABLE, create_table, partitions
from vpcflow_partitioner import aws
from vpcflow_partitioner.ops import cli
from vpcflow_partitioner.ops.cli import main
from vpcflow_partitioner.ops.inputs import EventFile
from vpcflow_partitioner.ops.synthetic import object_key

EVENTS = Path(__file__).resolve().parents[2] / "events"
SNS_EVENT = (EVENTS / "sns_s3.json").read_text()  # one object, partition 2022-08-29


def glue() -> Any:
    return aws.client("glue", "", "us-east-1")


def s3() -> Any:
    return aws.client("s3", "", "us-east-1")


@pytest.fixture
def env(mocked: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLUE_DATABASE", DATABASE)
    monkeypatch.setenv("GLUE_TABLE", TABLE)
    s3().create_bucket(Bucket=BUCKET)


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------- aws-cli's global options


@pytest.mark.parametrize("where", ["before", "after"])
def test_version_and_output_before_or_after_the_subcommand(
    env: None, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    create_table(glue())
    s3().put_object(
        Bucket=BUCKET,
        Key=object_key("123456789012", "us-east-1", datetime(2024, 2, 10, tzinfo=UTC)),
        Body=b"x",
    )

    def run(*options: str, dry_run: bool = False) -> int:
        command = ["backfill", *(["--dry-run"] if dry_run else [])]
        return main([*options, *command] if where == "before" else [*command, *options])

    assert run("--version") == 0
    assert capsys.readouterr().out.startswith("vpcflow-partitioner")
    assert run("--output", "json", dry_run=True) == 3
    assert json.loads(capsys.readouterr().out)["partitions_would_create"] == 1
    assert run("--json") == 0
    assert json.loads(capsys.readouterr().out)["partitions_created"] == 1
    assert run("-v") == 0  # decisions as JSON lines on stderr
    assert any(json.loads(line)["message"] == "table read" for line in capsys.readouterr().err.splitlines())


def test_region_profile_and_endpoint_url_mean_what_they_mean_in_aws_cli(
    env: None, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_table(glue())  # in us-east-1
    assert main(["backfill"]) == 0
    assert main(["backfill", "--region", "eu-west-1"]) == 1  # no such table there
    assert "EntityNotFoundException" in one_line(capsys.readouterr().err)
    config = tmp_path / "config"
    config.write_text(
        "[profile elsewhere]\nregion = eu-west-1\naws_access_key_id = testing\naws_secret_access_key = testing\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    aws.reset()
    assert main(["--profile", "elsewhere", "backfill"]) == 1  # the profile's region
    assert "EntityNotFoundException" in one_line(capsys.readouterr().err)
    assert main(["backfill", "--profile", "nosuch"]) == 2  # a bad flag
    assert "nosuch" in one_line(capsys.readouterr().err)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert main(["backfill", "--region", "us-east-1", "--endpoint-url", f"http://127.0.0.1:{port}"]) == 1
    assert f"127.0.0.1:{port}" in one_line(capsys.readouterr().err)


def test_every_command_reads_the_table_from_flags_or_the_environment(
    env: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["init", "--location", CLASSIC_LOCATION]) == 0  # GLUE_DATABASE / GLUE_TABLE
    assert glue().get_table(DatabaseName=DATABASE, Name=TABLE)
    monkeypatch.delenv("GLUE_TABLE")
    capsys.readouterr()
    for command in (["init", "--location", CLASSIC_LOCATION], ["backfill"], ["audit"], ["replay", "x.json"]):
        assert main(command) == 2
        assert "GLUE_TABLE" in one_line(capsys.readouterr().err)
    assert main(["backfill", "--table", TABLE]) == 0


def test_every_flag_has_help_and_every_command_a_description_and_an_example() -> None:
    parser = cli._build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in commands.choices.items():
        assert sub.description and "examples:" in (sub.epilog or ""), name
        for action in sub._actions:
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)


def test_init_says_when_it_creates_the_database_and_its_dry_run_shows_it(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["init", "--database", "nodb", "--location", CLASSIC_LOCATION]
    assert main([*args, "--dry-run"]) == 3
    assert "database nodb: would create" in capsys.readouterr().out
    assert glue().get_databases()["DatabaseList"] == []
    assert main(args) == 0
    assert "database nodb: created" in capsys.readouterr().out
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "database nodb: exists" in out and "unchanged" in out


# ---------------------------------------------------------------- replay reads anything a user has


def test_replay_reads_standard_input(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    create_table(glue())
    ndjson = (json.dumps(json.loads(SNS_EVENT)) + "\n").encode()
    assert main(["replay", "-", "--json"], stdin=io.BytesIO(gzip.compress(ndjson))) == 0
    assert json.loads(capsys.readouterr().out)["partitions_created"] == 1
    assert set(partitions(glue())) == {("2022-08-29",)}


def test_a_pretty_printed_file_with_a_bom_is_one_event(
    env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue())
    path = tmp_path / "saved.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(json.loads(SNS_EVENT), indent=2).encode())
    assert main(["replay", "--json", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["events"], summary["malformed"], summary["partitions_created"]) == (1, 0, 1)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"not json at all\n", "no S3 event"),
        (b"", "no S3 event"),
        (b'{"hello": "world"}\n', "no S3 event"),
        (bytes(range(256)), "not UTF-8"),
        (b"\x1f\x8b\x08\x00broken gzip", "cannot read"),
    ],
    ids=["not-json", "empty", "json-but-no-event", "binary", "broken-gzip"],
)
def test_a_file_without_an_event_is_one_line_and_exit_2(
    env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, says: str
) -> None:
    create_table(glue())
    path = tmp_path / "input"
    path.write_bytes(content)
    assert main(["replay", str(path)]) == 2
    assert says in one_line(capsys.readouterr().err)


def test_replay_streams_a_big_file(tmp_path: Path) -> None:
    line = json.dumps(json.loads(SNS_EVENT)) + "\n"
    path = tmp_path / "big.ndjson"
    with path.open("w") as handle:
        for _ in range(20_000):
            handle.write(line)
    size = path.stat().st_size
    with EventFile(str(path), io.BytesIO()) as source:
        events = source.events()
        next(events)
        assert source.position() < 256 * 1024 < size  # the first event did not read the file
        assert sum(1 for _ in events) == 19_999


# ---------------------------------------------------------------- plan and apply, like terraform


def test_backfill_plans_then_applies(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    create_table(glue())
    for day in (10, 11):
        s3().put_object(
            Bucket=BUCKET,
            Key=object_key("123456789012", "us-east-1", datetime(2024, 2, day, tzinfo=UTC)),
            Body=b"x",
        )
    assert main(["backfill", "--dry-run"]) == 3
    out = capsys.readouterr().out
    assert "partitions it would create" in out and "plan: would create 2 partitions" in out
    assert partitions(glue()) == {}
    assert main(["backfill", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["partitions_created"] == 2 and summary["folders_with_flow_logs"] == 2
    assert summary["list_calls"] >= 2 and summary["objects_probed"] >= 2 and summary["folders_walked"] >= 1
    assert [(p["values"], p["outcome"]) for p in summary["partitions"]] == [
        (["2024-02-10"], "created"),
        (["2024-02-11"], "created"),
    ]
    assert summary["partitions"][0]["location"] == f"{CLASSIC_LOCATION}2024/02/10/"
    assert main(["backfill", "--dry-run"]) == 0  # in step
    assert "plan: nothing to do" in capsys.readouterr().out


def test_audit_dry_run_says_would(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    create_table(glue())
    s3().put_object(
        Bucket=BUCKET,
        Key=object_key("123456789012", "us-east-1", datetime(2024, 2, 10, tzinfo=UTC)),
        Body=b"x",
    )
    assert main(["audit", "--fix", "--dry-run"]) == 3
    assert "would be created" in capsys.readouterr().out
    assert partitions(glue()) == {}
    assert main(["audit", "--fix"]) == 0
    out = capsys.readouterr().out
    assert "fixed: 1 created" in out and "remaining: none" in out


# ---------------------------------------------------------------- logs and errors


def test_a_warning_is_one_human_line_without_v_and_json_with_it(
    env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue())
    path = tmp_path / "saved.ndjson"
    path.write_text(json.dumps(json.loads(SNS_EVENT)) + "\n{oops\n")
    assert main(["replay", str(path)]) == 0
    warning = one_line(capsys.readouterr().err)
    assert warning.startswith("warning: record malformed") and "not JSON" in warning
    assert main(["replay", "-v", str(path)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert any(line["level"] == "WARNING" and line["message"] == "record malformed" for line in lines)


def _no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    aws.reset()


COMMANDS = {
    "init": ["init", "--location", CLASSIC_LOCATION],
    "replay": ["replay", str(EVENTS / "sns_s3.json")],
    "drain": [
        "replay",
        "--queue-url",
        "https://sqs.us-east-1.amazonaws.com/123456789012/nosuch",
        "--wait-seconds",
        "1",
    ],
    "backfill": ["backfill"],
    "audit": ["audit"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(
    "failure", ["no-credentials", "endpoint-down", "no-database", "no-table", "no-bucket", "no-queue"]
)
def test_every_command_fails_in_one_line_with_its_exit_code(
    mocked: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    failure: str,
) -> None:
    monkeypatch.setenv("GLUE_DATABASE", DATABASE)
    monkeypatch.setenv("GLUE_TABLE", TABLE)
    argv = list(COMMANDS[command])
    if failure != "no-bucket":
        s3().create_bucket(Bucket=BUCKET)
    if failure not in ("no-database", "no-table") and command != "init":
        create_table(glue())
    if failure == "no-table":
        glue().create_database(DatabaseInput={"Name": DATABASE})
    if command == "drain" and failure != "no-queue":
        url = aws.client("sqs", "", "us-east-1").create_queue(QueueName="dlq")["QueueUrl"]
        argv[2] = url
    if failure == "no-credentials":
        _no_credentials(monkeypatch, tmp_path)
    if failure == "endpoint-down":
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            argv += ["--endpoint-url", f"http://127.0.0.1:{closed.getsockname()[1]}"]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == EXPECTED.get((command, failure), 1), err
    if code == 0:  # at most a warning (init over a bucket that does not exist yet)
        assert not err.strip() or one_line(err).startswith("warning:")
    else:
        assert one_line(err).startswith("error:")


# What a failure does not touch: init creates a missing database or table (and never reads the
# bucket); replay reads files, not the bucket, and needs no queue; only the drain needs one.
EXPECTED = {
    ("init", "no-database"): 0,
    ("init", "no-table"): 0,
    ("init", "no-bucket"): 0,
    ("init", "no-queue"): 0,
    ("replay", "no-bucket"): 0,
    ("replay", "no-queue"): 0,
    ("drain", "no-bucket"): 0,
    ("backfill", "no-queue"): 0,
    ("audit", "no-queue"): 0,
}


@pytest.mark.parametrize(
    "argv",
    [
        ["backfill", "--since", "yesterday"],
        ["audit", "--since", "2024-02-10", "--until", "2024-02-01"],
        ["replay", "/no/such/file.json"],
        ["replay"],
        ["init", "--location", CLASSIC_LOCATION, "--format", "${version} ${nosuchfield}"],
        ["backfill", "--output", "yaml"],
        ["nosuchcommand"],
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    env: None, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    create_table(glue())
    assert main(argv) == 2
    assert one_line(capsys.readouterr().err)


# ---------------------------------------------------------------- found when a new user tried it


def test_a_bad_file_after_a_good_one_reports_what_was_done_then_exits_2(
    env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue())
    good, bad = tmp_path / "good.json", tmp_path / "bad.bin"
    good.write_text(SNS_EVENT)
    bad.write_bytes(bytes(range(256)))
    assert main(["replay", "--json", str(good), str(bad)]) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out)["partitions_created"] == 1  # what it did is on record
    assert "not UTF-8" in one_line(captured.err)


def test_saved_arrays_and_sqs_receive_message_output_are_events(
    env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue())
    sqs_body = json.loads((EVENTS / "sqs_s3.json").read_text())["Records"][0]["body"]
    (tmp_path / "array.json").write_text(json.dumps([json.loads(SNS_EVENT)]))  # jq -s
    (tmp_path / "received.json").write_text(  # aws sqs receive-message
        json.dumps({"Messages": [{"MessageId": "m-1", "ReceiptHandle": "r", "Body": sqs_body}]})
    )
    assert main(["replay", "--json", str(tmp_path / "array.json"), str(tmp_path / "received.json")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["malformed"] == 0 and summary["partitions_created"] >= 1


def test_an_ndjson_file_with_a_broken_first_line_still_streams(tmp_path: Path) -> None:
    line = json.dumps(json.loads(SNS_EVENT)) + "\n"
    path = tmp_path / "big.ndjson"
    with path.open("w") as handle:
        handle.write("{oops\n")
        for _ in range(20_000):
            handle.write(line)
    with EventFile(str(path), io.BytesIO()) as source:
        events = source.events()
        assert next(events)[0].endswith(":1")  # the broken line, as a line of its own
        next(events)
        assert source.position() < 256 * 1024  # not read whole


def test_ignored_objects_are_said_without_v(
    env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(
        glue(),
        "s3://another-bucket/AWSLogs/",
        [
            ("aws_account_id", "string"),
            ("aws_region", "string"),
            ("year", "string"),
            ("month", "string"),
            ("day", "string"),
        ],
    )
    path = tmp_path / "saved.json"
    path.write_text(SNS_EVENT)
    assert main(["replay", str(path)]) == 0
    assert (
        "ignored 1 object: outside the table location s3://another-bucket/AWSLogs/" in capsys.readouterr().out
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["backfill", "--endpoint-url", "notaurl"],
        ["demo", "--days", "0"],
        ["backfill", "--region", "bad region"],
    ],
)
def test_bad_flags_are_usage_errors(env: None, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    create_table(glue())
    assert main(argv) == 2
    assert one_line(capsys.readouterr().err)


def test_a_corrupt_parquet_footer_is_a_usage_error(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    key = "AWSLogs/123456789012/vpcflowlogs/us-east-1/2024/02/10/x.log.parquet"
    s3().put_object(
        Bucket=BUCKET,
        Key=key,
        Body=b"\x15\x04\x15\x20\x99\x88garbage\x00\x00" + (12).to_bytes(4, "little") + b"PAR1",
    )
    assert main(["init", "--location", CLASSIC_LOCATION, "--from-object", f"s3://{BUCKET}/{key}"]) == 2
    assert "Parquet" in one_line(capsys.readouterr().err)


def test_init_says_partition_keys_cannot_change_and_print_ddl_has_json(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", "--location", f"s3://{BUCKET}/AWSLogs/", "--multi-account"]) == 0
    capsys.readouterr()
    assert main(["init", "--location", f"s3://{BUCKET}/AWSLogs/", "--hive"]) == 3
    out = capsys.readouterr().out
    assert "partition keys cannot change in place" in out and "--update to apply" not in out
    assert main(["init", "--location", f"s3://{BUCKET}/AWSLogs/", "--hive", "--update", "--yes"]) == 2
    assert "partition keys: table has" in one_line(capsys.readouterr().err)
    assert main(["init", "--location", CLASSIC_LOCATION, "--print-ddl", "--json"]) == 0
    assert "CREATE EXTERNAL TABLE" in json.loads(capsys.readouterr().out)["ddl"]


def test_audit_dry_run_says_would_only_for_what_was_asked(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue())
    s3().put_object(
        Bucket=BUCKET,
        Key=object_key("123456789012", "us-east-1", datetime(2024, 2, 10, tzinfo=UTC)),
        Body=b"x",
    )
    glue().create_partition(
        DatabaseName=DATABASE,
        TableName=TABLE,
        PartitionInput={
            "Values": ["2023-01-01"],
            "StorageDescriptor": {"Location": f"{CLASSIC_LOCATION}2023/01/01/"},
        },
    )
    assert main(["audit", "--prune", "--dry-run", "--no-cache"]) == 3
    out = capsys.readouterr().out
    assert "would be pruned" in out and "would be created" not in out and "remains (--fix)" in out
    assert "plan: would create 0, repoint 0, rewrite 0, prune 1" in out


def test_a_collision_replayed_is_exit_3(
    env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create_table(glue())
    glue().create_partition(
        DatabaseName=DATABASE,
        TableName=TABLE,
        PartitionInput={
            "Values": ["2022-08-29"],
            "StorageDescriptor": {"Location": f"s3://{BUCKET}/elsewhere/"},
        },
    )
    path = tmp_path / "saved.json"
    path.write_text(SNS_EVENT)
    assert main(["replay", "--json", str(path)]) == 3  # acked, but no partition covers its folder
    assert json.loads(capsys.readouterr().out)["collisions"] == 1


def test_init_warns_about_a_bucket_that_does_not_exist(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "--location", "s3://no-such-bucket/AWSLogs/", "--multi-account"]) == 0
    assert "bucket no-such-bucket does not exist" in one_line(capsys.readouterr().err)
    assert main(["init", "--location", CLASSIC_LOCATION, "--table", "other"]) == 0
    assert capsys.readouterr().err == ""
