"""replay --queue-url: what a drain receives, deletes, keeps and saves."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import BUCKET, DATABASE, TABLE, create_table, load_event, partitions
from vpcflow_partitioner import aws
from vpcflow_partitioner.envelopes import Message
from vpcflow_partitioner.ops.cli import main
from vpcflow_partitioner.ops.synthetic import object_key
from vpcflow_partitioner.sources import drain_queue

ACCOUNT = "123456789012"
FIRST = datetime(2022, 8, 1, 0, 5, tzinfo=UTC)
HOURLY_KEYS = [
    ("aws_account_id", "string"),
    ("aws_region", "string"),
    ("year", "string"),
    ("month", "string"),
    ("day", "string"),
    ("hour", "string"),
]


def glue() -> Any:
    return aws.client("glue", "", "us-east-1")


def sqs() -> Any:
    return aws.client("sqs", "", "us-east-1")


@pytest.fixture
def env(mocked: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLUE_DATABASE", DATABASE)
    monkeypatch.setenv("GLUE_TABLE", TABLE)


def s3_body(key: str) -> str:
    record = load_event("s3_notification.json")["Records"][0]
    record["s3"]["bucket"]["name"] = BUCKET
    record["s3"]["object"]["key"] = key
    return json.dumps({"Records": [record]})


def queue(*bodies: str) -> str:
    url = str(sqs().create_queue(QueueName="partitioner-dlq")["QueueUrl"])
    for body in bodies:
        sqs().send_message(QueueUrl=url, MessageBody=body)
    return url


def counts(url: str) -> tuple[int, int]:
    """(visible, in flight): a message received and not deleted is in flight until its timeout."""
    attributes = sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_a_receive_of_only_repeats_does_not_end_the_drain(
    env: None, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    create_table(glue())
    days = [FIRST + timedelta(days=d) for d in range(25)]
    url = queue(*(s3_body(object_key(ACCOUNT, "us-east-1", day)) for day in days))
    client = sqs()
    receive = client.receive_message
    responses: list[dict[str, Any]] = []

    def repeat_the_first_batch_once(**kwargs: Any) -> dict[str, Any]:
        # Another consumer's visibility timeout ran out: a receive brings back only seen messages.
        response = responses[0] if len(responses) == 1 else receive(**kwargs)
        responses.append(response)
        return dict(response)

    monkeypatch.setattr(client, "receive_message", repeat_the_first_batch_once)
    assert main(["replay", "--queue-url", url, "--json", "--wait-seconds", "1"]) == 0
    assert counts(url) == (0, 0)
    assert set(partitions(glue())) == {(f"{day:%Y-%m-%d}",) for day in days}
    summary = json.loads(capsys.readouterr().out)
    assert (summary["received"], summary["done"], summary["kept"]) == (25, 25, 0)


class ScriptedQueue:
    """An SQS stand-in whose receives answer from a script, then empty."""

    def __init__(self, script: list[list[str]]) -> None:
        self.script = list(script)
        self.receives: list[dict[str, Any]] = []
        self.deleted: list[str] = []

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        self.receives.append(kwargs)
        ids = self.script.pop(0) if self.script else []
        return {"Messages": [{"MessageId": i, "ReceiptHandle": f"rh-{i}", "Body": "{}"} for i in ids]}

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.deleted += [e["ReceiptHandle"].removeprefix("rh-") for e in Entries]
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


def done(messages: list[Message]) -> dict[str, str]:
    return {m.id: "done" for m in messages}


def test_the_drain_stops_after_three_receives_in_a_row_bring_nothing_new() -> None:
    # An empty receive, then two that bring only repeats: still not three in a row.
    fake = ScriptedQueue([["a", "b"], [], ["a"], ["c"], [], ["b", "c"], ["d"]])
    result = drain_queue(fake, "url", done)
    assert sorted(fake.deleted) == ["a", "b", "c", "d"] and result.received == 4
    assert len(fake.receives) == 7 + 3  # the script, then three receives with nothing new
    # Long polling on every receive: a short-polled empty answer does not mean an empty queue.
    assert all(r["WaitTimeSeconds"] >= 1 and r["MaxNumberOfMessages"] == 10 for r in fake.receives)


def test_the_number_of_idle_receives_and_the_wait_are_injectable() -> None:
    fake = ScriptedQueue([["a"], [], [], ["b"]])
    drain_queue(fake, "url", done, idle_receives=2, wait_seconds=7)
    assert fake.deleted == ["a"] and len(fake.receives) == 3
    assert {r["WaitTimeSeconds"] for r in fake.receives} == {7}


def test_a_message_sqs_would_not_delete_is_counted_as_kept_not_done() -> None:
    class RefusesB(ScriptedQueue):
        def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
            refused = [e for e in Entries if e["ReceiptHandle"] == "rh-b"]
            super().delete_message_batch(QueueUrl, [e for e in Entries if e not in refused])
            failed = [{"Id": e["Id"], "Code": "ReceiptHandleIsInvalid", "SenderFault": True} for e in refused]
            return {"Successful": [], "Failed": failed}

    result = drain_queue(RefusesB([["a", "b"]]), "url", done, wait_seconds=1)
    assert (result.done, result.failed, result.kept) == (1, 1, 1)
    assert result.problems == ["b: not deleted (ReceiptHandleIsInvalid)"]


def unresolved_queue() -> str:
    """A table with an hour key; four messages of which only the first can be acted on."""
    create_table(glue(), f"s3://{BUCKET}/AWSLogs/", HOURLY_KEYS)
    return queue(
        s3_body(object_key(ACCOUNT, "us-east-1", FIRST, hourly=True)),  # created
        s3_body(object_key(ACCOUNT, "us-east-1", FIRST)),  # a daily folder: the table cannot hold it
        "not json at all",
        json.dumps({"hello": "world"}),
    )


def test_messages_it_cannot_act_on_stay_in_the_queue(env: None, capsys: Any) -> None:
    url = unresolved_queue()
    exit_code = main(["replay", "--queue-url", url, "--json", "--wait-seconds", "1"])
    assert counts(url) == (3, 0)  # still in the queue, and visible again once the drain ended
    assert exit_code == 3  # nothing to retry; an operator has to look
    summary = json.loads(capsys.readouterr().out)
    assert {k: summary[k] for k in ("received", "done", "kept", "failed", "unresolved")} == {
        "received": 4,
        "done": 1,
        "kept": 3,
        "failed": 0,
        "unresolved": 3,
    }
    assert set(partitions(glue())) == {(ACCOUNT, "us-east-1", "2022", "08", "01", "00")}


def test_save_unreadable_appends_each_unreadable_body_as_one_json_line(
    env: None, tmp_path: Path, capsys: Any
) -> None:
    url = unresolved_queue()
    saved = tmp_path / "unreadable.ndjson"
    saved.write_text('{"earlier": "run"}\n')
    args = ["replay", "--queue-url", url, "--save-unreadable", str(saved), "--json", "--wait-seconds", "1"]
    assert main(args) == 3
    summary = json.loads(capsys.readouterr().out)
    assert summary["unreadable_saved"] == 2
    lines = [json.loads(line) for line in saved.read_text().splitlines()]
    assert lines[0] == {"earlier": "run"}
    assert sorted(line["body"] for line in lines[1:]) == ["not json at all", '{"hello": "world"}']
    assert all(line["message_id"] and line["reason"] for line in lines[1:])
    assert counts(url) == (3, 0)  # saved and kept: the queue still has the evidence


def test_an_unwritable_save_file_is_a_usage_error_before_anything_is_received(
    env: None, tmp_path: Path, capsys: Any
) -> None:
    url = unresolved_queue()
    args = ["replay", "--queue-url", url, "--save-unreadable", str(tmp_path / "no" / "such" / "dir")]
    assert main(args) == 2
    assert "cannot write" in capsys.readouterr().err
    assert counts(url) == (4, 0)


def test_a_missing_table_exits_1_before_any_message_is_received(env: None, capsys: Any) -> None:
    url = queue(s3_body(object_key(ACCOUNT, "us-east-1", FIRST)))
    assert main(["replay", "--queue-url", url, "--wait-seconds", "1"]) == 1
    err = capsys.readouterr().err
    assert "EntityNotFoundException" in err and len(err.strip().splitlines()) == 1
    assert counts(url) == (1, 0)


class VisibleQueue(ScriptedQueue):
    """Records which kept messages are made visible again, and the bodies it hands out."""

    def __init__(self, script: list[list[str]], bodies: dict[str, str] | None = None) -> None:
        super().__init__(script)
        self.bodies = bodies or {}
        self.shown: list[list[dict[str, Any]]] = []

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        response = super().receive_message(**kwargs)
        for m in response["Messages"]:
            m["Body"] = self.bodies.get(m["MessageId"], '{"Event": "s3:TestEvent"}')
        return response

    def change_message_visibility_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> None:
        self.shown.append(Entries)


def test_each_message_is_deleted_or_kept_by_what_process_said_and_counted() -> None:
    fake = VisibleQueue([["a", "b", "c", "d", "e"]], bodies={"e": "not json"})
    seen: list[Any] = []
    verdicts = {"a": "done", "b": "failed", "c": "unresolved", "e": "failed"}  # d: not answered for
    result = drain_queue(fake, "url", lambda ms: {m.id: verdicts[m.id] for m in ms if m.id in verdicts},
                         on_unreadable=seen.append, wait_seconds=1)  # fmt: skip
    assert fake.deleted == ["a"]
    assert (result.received, result.done, result.failed, result.unresolved, result.kept) == (5, 1, 3, 1, 4)
    assert result.unreadable == 1 and [(u.message_id, u.body) for u in seen] == [("e", "not json")]
    assert seen[0].reason == "SQS body is not JSON"
    # What it kept is visible again at once, for the next drain, in batches of at most 10.
    assert [[e["ReceiptHandle"] for e in batch] for batch in fake.shown] == [["rh-b", "rh-c", "rh-d", "rh-e"]]
    assert all(e["VisibilityTimeout"] == 0 for e in fake.shown[0])


def test_kept_messages_are_shown_again_ten_a_call_even_after_an_error() -> None:
    fake = VisibleQueue([[f"m{i:02d}" for i in range(10)], [f"n{i:02d}" for i in range(3)], ["boom"]])

    def process(messages: list[Message]) -> dict[str, str]:
        if messages[0].id == "boom":
            raise KeyboardInterrupt
        return {}

    with pytest.raises(KeyboardInterrupt):
        drain_queue(fake, "url", process, wait_seconds=1)
    assert [len(batch) for batch in fake.shown] == [10, 4]  # boom's too: it was never answered
    assert fake.deleted == []


def test_a_drain_that_keeps_nothing_shows_nothing_again() -> None:
    fake = VisibleQueue([["a", "b"]])
    result = drain_queue(fake, "url", done, wait_seconds=1)
    assert fake.shown == [] and (result.done, result.kept) == (2, 0)


def test_drain_outcome_deletes_only_what_is_done_and_whole() -> None:
    from vpcflow_partitioner.sources import drain_outcome

    assert drain_outcome(ok=True, unresolved=False) == "done"
    assert drain_outcome(ok=True, unresolved=True) == "unresolved"
    assert drain_outcome(ok=False, unresolved=True) == "failed"
    assert drain_outcome(ok=False, unresolved=False) == "failed"


def test_why_sqs_would_not_delete_a_message_is_reported() -> None:
    class Refuses(ScriptedQueue):
        def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
            failed = [{"Id": e["Id"], "Code": "InternalError", "Message": "try later"} for e in Entries]
            return {"Successful": [], "Failed": failed}

    result = drain_queue(Refuses([["a"]]), "url", done, wait_seconds=1)
    assert result.problems == ["a: not deleted (InternalError: try later)"] and result.failed == 1


def test_a_queue_that_cannot_be_read_names_the_queue() -> None:
    from botocore.exceptions import ClientError
    from vpcflow_partitioner.scheme import ConfigurationError

    class Denied(ScriptedQueue):
        def receive_message(self, **kwargs: Any) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "ReceiveMessage")

    with pytest.raises(ConfigurationError, match=r"^SQS https://queue/dlq: AccessDenied: no$"):
        drain_queue(Denied([]), "https://queue/dlq", done, wait_seconds=1)
