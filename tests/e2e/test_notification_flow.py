"""The real notification flow on a moto server: S3 -> SQS -> (local event source mapping) -> handler."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stdout
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from helpers import inject_error
from vpcflow_partitioner import handlers
from vpcflow_partitioner.keys import parse_key
from vpcflow_partitioner.ops import demo
from vpcflow_partitioner.ops.cli import main

pytestmark = pytest.mark.e2e


@pytest.fixture
def world(aws_env: None) -> Iterator[demo.Stack]:
    with demo.local_aws():
        handlers.reset()
        demo.configure_function_env()
        stack = demo.provision(max_receive=3, visibility_timeout=1)
        with redirect_stdout(io.StringIO()):
            assert (
                main(
                    [
                        "init",
                        "--database",
                        demo.DATABASE,
                        "--table",
                        demo.TABLE,
                        "--location",
                        demo.LOCATION,
                        "--multi-account",
                    ]
                )
                == 0
            )
        yield stack
        handlers.reset()


def glue_partitions() -> dict[tuple[str, ...], dict[str, Any]]:
    pages = (
        demo.client("glue")
        .get_paginator("get_partitions")
        .paginate(DatabaseName=demo.DATABASE, TableName=demo.TABLE)
    )
    return {tuple(p["Values"]): p for page in pages for p in page["Partitions"]}


def expected_from(keys: list[str]) -> dict[tuple[str, ...], str]:
    out: dict[tuple[str, ...], str] = {}
    for key in keys:
        obj = parse_key(key)
        assert obj is not None
        out[(obj.account, obj.region, obj.year, obj.month, obj.day)] = (
            f"s3://{demo.BUCKET}/{obj.folder('day')}"
        )
    return out


def queue_depths(stack: demo.Stack) -> tuple[int, int]:
    sqs = demo.client("sqs")
    depth = []
    for url in (stack.queue_url, stack.dlq_url):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        depth.append(
            int(attributes["ApproximateNumberOfMessages"])
            + int(attributes["ApproximateNumberOfMessagesNotVisible"])
        )
    return depth[0], depth[1]


def test_uploaded_logs_become_exactly_their_partitions(
    world: demo.Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = demo.upload_flow_logs(days=3, first=date(2022, 8, 28))
    calls = demo.ApiCalls(demo.client("glue"), demo.client("dynamodb"))
    mapping = demo.LocalEventSourceMapping(world.queue_url, world.queue_arn, handlers.on_object_created)
    with redirect_stdout(io.StringIO()):
        stats = mapping.drain()
    expected = expected_from(keys)
    found = glue_partitions()
    assert {v: p["StorageDescriptor"]["Location"] for v, p in found.items()} == expected
    table_sd = demo.client("glue").get_table(DatabaseName=demo.DATABASE, Name=demo.TABLE)["Table"][
        "StorageDescriptor"
    ]
    assert all(p["StorageDescriptor"]["SerdeInfo"] == table_sd["SerdeInfo"] for p in found.values())
    assert calls.create_entries == len(expected)  # one create attempt per partition
    assert stats.messages == len(keys) + 1  # every object, and S3's s3:TestEvent
    assert queue_depths(world) == (0, 0)

    # replay every event into a cold container: nothing new, no Glue write
    handlers.reset()
    before = calls.snapshot()[0]["glue:BatchCreatePartition"]
    with redirect_stdout(io.StringIO()):
        for event in stats.events:
            assert handlers.on_object_created(event) == {"batchItemFailures": []}
    assert calls.snapshot()[0]["glue:BatchCreatePartition"] == before
    assert set(glue_partitions()) == set(expected)


def test_a_transient_glue_failure_ends_with_every_partition_present(world: demo.Stack) -> None:
    keys = demo.upload_flow_logs(days=2, first=date(2022, 8, 28), per_day=2, flow_logs=1)
    glue = demo.client("glue")  # the handler's own client (same endpoint and region)
    inject_error(glue, "BatchCreatePartition", "ThrottlingException", times=2)
    mapping = demo.LocalEventSourceMapping(world.queue_url, world.queue_arn, handlers.on_object_created)
    with redirect_stdout(io.StringIO()):
        stats = mapping.drain()
    assert stats.retried > 0  # the failures went back to the queue
    assert set(glue_partitions()) == set(expected_from(keys))
    assert queue_depths(world) == (0, 0)  # nothing in the DLQ


def test_a_poison_message_is_consumed_without_blocking_the_queue(world: demo.Stack) -> None:
    sqs = demo.client("sqs")
    sqs.send_message(QueueUrl=world.queue_url, MessageBody="this is not JSON {")
    sqs.send_message(QueueUrl=world.queue_url, MessageBody=json.dumps({"unexpected": "shape"}))
    keys = demo.upload_flow_logs(days=1, first=date(2022, 8, 28), per_day=1, flow_logs=1)
    mapping = demo.LocalEventSourceMapping(
        world.queue_url, world.queue_arn, handlers.on_object_created, batch_size=2
    )
    with redirect_stdout(io.StringIO()):
        stats = mapping.drain()
    assert stats.retried == 0
    assert set(glue_partitions()) == set(expected_from(keys))
    assert queue_depths(world) == (0, 0)


def test_the_demo_command_runs_as_a_user_types_it(tmp_path: Path) -> None:
    # A new process, as `make demo` starts it: the command line's logging set-up and the
    # function's handlers share that process, in the order a user's run imports them.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GLUE_", "CACHE_"))}
    done = subprocess.run(
        [sys.executable, "-m", "vpcflow_partitioner.ops.cli", "demo", "--days", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env | {"HOME": str(tmp_path), "COLUMNS": "120"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"partitions created\s*│\s*8\b", done.stdout), (
        done.stdout
    )  # 2 accounts x 2 regions x 2 days
    assert "0 new partitions, 0 Glue writes" in done.stdout and "messages in the DLQ: 0" in done.stdout
    assert "Traceback" not in done.stderr and "error" not in done.stderr
