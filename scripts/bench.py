"""`make bench`: the figures behind the speed and cost claims (printed, never asserted).

1. Calls to AWS for 1,000 events over 3 partitions, cold and warm container, with and
   without the DynamoDB cache (moto in-process, calls counted at the botocore layer).
2. CPU per record in a warm container, and what importing the handler costs.
3. Backfill of a simulated year (one account and region, 50 flow logs delivering every
   5 minutes: 5.26 million objects) against a flat listing of every object.
"""

from __future__ import annotations

import io
import json
import os
import py_compile
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import redirect_stdout
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "GLUE_DATABASE": "flowlogs",
        "GLUE_TABLE": "vpc_flow_logs",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_NAMESPACE": "Bench",
    }
)
os.environ.pop("AWS_ENDPOINT_URL", None)

from helpers import create_table, load_event  # noqa: E402
from moto import mock_aws  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from vpcflow_partitioner import aws, handlers  # noqa: E402
from vpcflow_partitioner.config import Settings  # noqa: E402
from vpcflow_partitioner.ops.demo import ApiCalls  # noqa: E402
from vpcflow_partitioner.ops.synthetic import object_key  # noqa: E402
from vpcflow_partitioner.pipeline import Partitioner  # noqa: E402
from vpcflow_partitioner.scheme import Scheme  # noqa: E402
from vpcflow_partitioner.sources import DateRange, FolderWalk  # noqa: E402

console = Console(highlight=False)
CACHE = "bench-cache"


def sqs_events(total: int, days: tuple[str, ...]) -> list[dict[str, Any]]:
    """`total` SQS messages (10 per invocation), each one object, spread over `days`."""
    template = load_event("sqs_s3.json")["Records"][0]
    record = json.loads(template["body"])["Records"][0]
    events, batch = [], []
    for i in range(total):
        day = days[i % len(days)]
        moment = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(
            minutes=5 * (i // len(days)) % 1440
        )
        key = object_key("123456789012", "us-east-1", moment, flow_log_id=f"fl-{i % 50:017d}")
        body = json.loads(json.dumps(record))
        body["s3"]["object"]["key"] = key
        batch.append(dict(template, messageId=f"m{i}", body=json.dumps({"Records": [body]})))
        if len(batch) == 10:
            events.append({"Records": batch})
            batch = []
    if batch:
        events.append({"Records": batch})
    return events


def invoke_all(events: list[dict[str, Any]]) -> None:
    with redirect_stdout(io.StringIO()):
        for event in events:
            response = handlers.on_object_created(event)
            assert not response.get("batchItemFailures"), response


def bench_calls() -> list[tuple[str, str, str, str]]:
    rows = []
    events = sqs_events(1000, ("2022-08-27", "2022-08-28", "2022-08-29"))
    for cache in (True, False):
        with mock_aws():
            handlers.reset()
            if cache:
                os.environ["CACHE_TABLE"] = CACHE
            else:
                os.environ.pop("CACHE_TABLE", None)
            settings = Settings.from_env()
            glue = aws.client("glue", settings.endpoint_url, settings.region)
            ddb = aws.client("dynamodb", settings.endpoint_url, settings.region)
            create_table(glue)
            if cache:
                ddb.create_table(
                    TableName=CACHE,
                    KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                    AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                    BillingMode="PAY_PER_REQUEST",
                )
            calls = ApiCalls(glue, ddb)
            label = "DynamoDB cache" if cache else "no cache (Glue BatchGetPartition)"
            invoke_all(events)  # cold container, brand-new partitions
            rows.append((label, "cold, 3 new partitions", *_split(calls.take())))
            invoke_all(events)  # the same container again
            rows.append((label, "warm", *_split(calls.take())))
            # Past SEEN_SECONDS and TABLE_REFRESH_SECONDS: the container asks again.
            with mock.patch("time.time", return_value=time.time() + 301):
                invoke_all(events)
            rows.append((label, "warm, 5 minutes on", *_split(calls.take())))
            handlers.reset()  # a new container: partitions exist, cache (if any) knows them
            calls = ApiCalls(
                aws.client("glue", settings.endpoint_url, settings.region),
                aws.client("dynamodb", settings.endpoint_url, settings.region),
            )
            invoke_all(events)
            rows.append((label, "cold, partitions known", *_split(calls.take())))
            handlers.reset()
    os.environ.pop("CACHE_TABLE", None)
    return rows


def _split(calls: Counter[str]) -> tuple[str, str]:
    def fmt(service: str) -> str:
        ops = {k.split(":")[1]: v for k, v in calls.items() if k.startswith(service)}
        total = sum(ops.values())
        return f"{total}" + (
            " (" + ", ".join(f"{k} {v}" for k, v in sorted(ops.items())) + ")" if ops else ""
        )

    return fmt("glue"), fmt("dynamodb")


def _wrap(kind: str, bodies: list[str]) -> dict[str, Any]:
    """One invocation event carrying `bodies` (S3 notification JSON) the way `kind` delivers them."""
    sqs = load_event("sqs_s3.json")["Records"][0]
    if kind == "sqs":
        return {"Records": [dict(sqs, messageId=f"m{i}", body=b) for i, b in enumerate(bodies)]}
    if kind == "direct":
        return {"Records": [json.loads(b)["Records"][0] for b in bodies]}
    if kind == "sns-sqs":
        sns = json.loads(load_event("sqs_sns_s3.json")["Records"][0]["body"])
        return {
            "Records": [
                dict(sqs, messageId=f"m{i}", body=json.dumps(sns | {"Message": b}))
                for i, b in enumerate(bodies)
            ]
        }
    if kind == "eventbridge-sqs":
        template = json.loads(load_event("sqs_eventbridge.json")["Records"][0]["body"])
        records = []
        for i, b in enumerate(bodies):
            s3 = json.loads(b)["Records"][0]["s3"]
            detail = template["detail"] | {
                "bucket": {"name": s3["bucket"]["name"]},
                "object": {"key": s3["object"]["key"]},
            }
            records.append(dict(sqs, messageId=f"m{i}", body=json.dumps(template | {"detail": detail})))
        return {"Records": records}
    raise ValueError(kind)


def _bodies(total: int, days: tuple[str, ...]) -> list[str]:
    record = json.loads(load_event("sqs_s3.json")["Records"][0]["body"])["Records"][0]
    bodies = []
    for i in range(total):
        moment = datetime.fromisoformat(days[i % len(days)]).replace(tzinfo=UTC) + timedelta(
            minutes=5 * (i // 3) % 1440
        )
        body = json.loads(json.dumps(record))
        body["s3"]["object"]["key"] = object_key(
            "123456789012", "us-east-1", moment, flow_log_id=f"fl-{i % 50:017d}"
        )
        bodies.append(json.dumps({"Records": [body]}))
    return bodies


def _cpu_us(fn: Any, records: int, repeats: int = 7) -> float:
    """Least CPU microseconds per record over `repeats` runs (the least is the least disturbed)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best / records * 1e6


def bench_cpu() -> dict[str, Any]:
    """Warm-container CPU per record by envelope, the libraries' floor, and per-invocation cost."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
    from aws_lambda_powertools.utilities.data_classes import S3Event

    days = ("2022-08-27", "2022-08-28", "2022-08-29")
    bodies = _bodies(10_000, days)
    out: dict[str, Any] = {}
    with mock_aws():
        handlers.reset()
        settings = Settings.from_env()
        create_table(aws.client("glue", settings.endpoint_url, settings.region))
        for kind in ("sqs", "direct", "sns-sqs", "eventbridge-sqs"):
            events = [_wrap(kind, bodies[i : i + 10]) for i in range(0, len(bodies), 10)]
            invoke_all(events[:5])  # warm: the container knows the three partitions
            out[kind] = _cpu_us(lambda events=events: invoke_all(events), len(bodies))
        singles = [_wrap("sqs", [b]) for b in bodies[:2000]]
        per_single = _cpu_us(lambda: invoke_all(singles), len(singles))
        out["per_invocation"] = max(0.0, (per_single - out["sqs"]) * 10 / 9)  # batch of 1 vs 10
        handlers.reset()
    events = [_wrap("sqs", bodies[i : i + 10]) for i in range(0, len(bodies), 10)]

    def powertools_floor() -> None:
        # What a handler built on powertools pays before any work of its own: BatchProcessor
        # over the batch, and S3Event parsing of each body.
        def record_handler(record: Any) -> None:
            for s3_record in S3Event(json.loads(record.body)).records:
                _ = (s3_record.s3.bucket.name, s3_record.s3.get_object.key)

        for event in events:
            processor = BatchProcessor(event_type=EventType.SQS)
            process_partial_response(event=event, record_handler=record_handler, processor=processor)

    def dict_floor() -> None:
        for event in events:
            for record in event["Records"]:
                for s3_record in json.loads(record["body"])["Records"]:
                    _ = (s3_record["s3"]["bucket"]["name"], s3_record["s3"]["object"]["key"])

    out["floor_powertools"] = _cpu_us(powertools_floor, len(bodies))
    out["floor_dicts"] = _cpu_us(dict_floor, len(bodies))
    return out


def bench_import() -> dict[str, float]:
    """Cold import of the handlers module over the libraries it stands on, median of 5 new
    processes: our package compiled from source (a zip without .pyc, as Lambda gets it) and
    with its bytecode precompiled. The libraries keep their installed bytecode either way."""
    import compileall
    import shutil

    program = (
        "import sys, time; t = time.perf_counter()\n"
        "import boto3\n"
        "from aws_lambda_powertools import Logger, Metrics\n"
        "from aws_lambda_powertools.utilities.batch import BatchProcessor\n"
        "a = time.perf_counter()\n"
        "import vpcflow_partitioner.handlers\n"
        "b = time.perf_counter()\n"
        "print((a - t) * 1000, (b - a) * 1000, 'aws_xray_sdk' in sys.modules)\n"
    )
    figures: dict[str, float] = {}
    env = {k: v for k, v in os.environ.items() if k not in ("TRACING", "PYTHONPYCACHEPREFIX")}
    for mode in ("compiled", "cached"):
        floors, ours = [], []
        with tempfile.TemporaryDirectory() as task:
            shutil.copytree(
                ROOT / "functions" / "vpcflow_partitioner",
                Path(task) / "vpcflow_partitioner",
                ignore=shutil.ignore_patterns("__pycache__", "ops"),
            )
            if mode == "cached":
                compileall.compile_dir(
                    task, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH
                )
            for _ in range(5):
                done = subprocess.run(
                    [sys.executable, "-c", program],
                    check=True, capture_output=True, text=True,
                    env=env | {"PYTHONPATH": task, "PYTHONDONTWRITEBYTECODE": "1"},
                )  # fmt: skip
                floor, own, xray = done.stdout.split()
                assert xray == "False", "tracing is off: the X-Ray SDK must not be imported"
                floors.append(float(floor))
                ours.append(float(own))
        figures[f"floor_{mode}"] = statistics.median(floors)
        figures[mode] = statistics.median(ours)
    return figures


class VirtualBucket:
    """ListObjectsV2 over a simulated year of keys, answered from arithmetic, not storage.

    Honours what the walk relies on: Prefix, Delimiter="/" CommonPrefixes, MaxKeys and
    continuation. 50 flow logs x 288 deliveries a day x 365 days = 5,256,000 keys.
    """

    def __init__(self, first: date, days: int, flow_logs: int = 50, latency: float = 0.0) -> None:
        self.latency = latency  # seconds per call, as a real ListObjectsV2 round trip takes
        self.first, self.days, self.flow_logs = first, days, flow_logs
        self.calls = 0
        self._lock = threading.Lock()  # the walk lists from a thread pool
        self.root = "AWSLogs/123456789012/vpcflowlogs/us-east-1/"

    def objects_per_day(self) -> int:
        return self.flow_logs * 288

    def list_objects_v2(
        self, Bucket: str, Prefix: str, Delimiter: str = "", MaxKeys: int = 1000, **_: Any
    ) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
        if self.latency:
            time.sleep(self.latency)
        dates = [self.first + timedelta(days=i) for i in range(self.days)]
        folders = [self.root + d.strftime("%Y/%m/%d/") for d in dates]
        if Delimiter:
            children = sorted(
                {self._child(Prefix, f) for f in folders if f.startswith(Prefix) and f != Prefix} - {None}
            )
            return {"CommonPrefixes": [{"Prefix": c} for c in children], "IsTruncated": False}
        day_folder = next(f for f in folders if f.startswith(Prefix))
        day = dates[folders.index(day_folder)]
        keys = [
            object_key("123456789012", "us-east-1", datetime(day.year, day.month, day.day, tzinfo=UTC)
                       + timedelta(minutes=5 * slot), flow_log_id=f"fl-{n:017d}")
            for slot in range(2) for n in range(self.flow_logs)
        ][:MaxKeys]  # fmt: skip
        return {"Contents": [{"Key": k} for k in keys], "IsTruncated": True, "NextContinuationToken": "more"}

    @staticmethod
    def _child(prefix: str, folder: str) -> str | None:
        rest = folder[len(prefix) :]
        return prefix + rest.split("/", 1)[0] + "/" if "/" in rest else None


def bench_backfill() -> dict[str, Any]:
    first, days = date(2022, 1, 1), 365
    bucket = VirtualBucket(first, days)
    with mock_aws():
        handlers.reset()
        settings = Settings.from_env()
        glue = aws.client("glue", settings.endpoint_url, settings.region)
        create_table(glue, "s3://example-flow-logs/" + bucket.root)
        partitioner = Partitioner(settings, glue)
        calls = ApiCalls(glue)
        walk = FolderWalk(bucket, partitioner.scheme(), DateRange())
        messages = list(walk.messages())
        report = partitioner.run(messages, now=time.time(), use_cache=False)
        glue_calls = calls.take()
        handlers.reset()
    timings = {}
    for workers in (1, 16):
        slow = VirtualBucket(first, days, latency=0.02)
        started = time.perf_counter()
        count = sum(
            1
            for _ in FolderWalk(
                slow, Scheme.from_table(_classic_table(bucket.root)), workers=workers
            ).messages()
        )
        timings[workers] = (time.perf_counter() - started, count)
    total_objects = bucket.objects_per_day() * days
    return {
        "objects": total_objects,
        "partitions": len(report.partitions("created")),
        "walk_list_calls": walk.list_calls,
        "flat_list_calls": -(-total_objects // 1000),  # ListObjectsV2 returns at most 1,000 keys a page
        "glue_calls": dict(glue_calls),
        "walk_seconds": {w: round(t, 2) for w, (t, _) in timings.items()},
    }


def _classic_table(root: str) -> dict[str, Any]:
    return {
        "Name": "t", "DatabaseName": "d", "PartitionKeys": [{"Name": "date", "Type": "date"}],
        "StorageDescriptor": {"Location": f"s3://example-flow-logs/{root}"},
    }  # fmt: skip


# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec from the parent (this process,
# with its moto server), while VmHWM belongs to the new process image alone.
_PEAK = (
    "import sys; from vpcflow_partitioner.ops.cli import main; code = main(sys.argv[1:]); "
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; "
    "print('PEAK_KB', hwm, file=sys.stderr); sys.exit(code)"
)


def bench_replay_memory(megabytes: tuple[int, ...] = (1, 50)) -> list[tuple[int, int, float, float]]:
    """(file MB, events, peak RSS MB, seconds) of `replay FILE` in a new process against a moto server."""
    import subprocess

    from vpcflow_partitioner.ops.demo import local_aws

    template = json.loads((ROOT / "events" / "s3_notification.json").read_text())
    results = []
    with local_aws() as endpoint, tempfile.TemporaryDirectory() as tmp:
        glue = aws.client("glue", endpoint, "us-east-1")
        create_table(glue)
        for size in megabytes:
            path = Path(tmp) / f"saved-{size}.ndjson"
            events = 0
            with path.open("w") as handle:
                while handle.tell() < size * 1_000_000:
                    record = template["Records"][0]
                    day = datetime(2022, 1, 1, tzinfo=UTC) + timedelta(
                        days=events % 60, minutes=events % 1440
                    )
                    record["s3"]["object"]["key"] = object_key("123456789012", "us-east-1", day)
                    handle.write(json.dumps({"Records": [record]}) + "\n")
                    events += 1
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", _PEAK, "replay", str(path), "--json"],
                capture_output=True,
                text=True,
                check=True,
                env=dict(os.environ),
            )
            seconds = time.perf_counter() - started
            peak = int(done.stderr.split("PEAK_KB")[1].split()[0]) / 1024
            results.append((size, events, peak, seconds))
    return results


def main() -> None:
    console.rule("[bold]vpcflow-partitioner benchmark")
    rows = bench_calls()
    table = Table(title="AWS calls for 1,000 SQS messages (one object each) over 3 daily partitions")
    for column in ("dedupe", "container", "Glue calls", "DynamoDB calls"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)

    cpu = bench_cpu()
    table = Table(title="CPU per record, warm container, partitions known (least of 7 runs)")
    table.add_column("case")
    table.add_column("µs per record", justify="right")
    for kind, label in (
        ("sqs", "S3 notifications via SQS, batches of 10 (whole handler)"),
        ("direct", "S3 notifications invoking directly, 10 records an event"),
        ("eventbridge-sqs", "EventBridge via SQS, batches of 10"),
        ("sns-sqs", "SNS via SQS, batches of 10"),
        ("floor_powertools", "floor: powertools BatchProcessor + S3Event parsing alone"),
        ("floor_dicts", "floor: json.loads of each body, dict reads alone"),
    ):
        table.add_row(label, f"{cpu[kind]:.1f}")
    table.add_row(
        "per-invocation overhead (batch of 1 against 10), µs per invocation", f"{cpu['per_invocation']:.0f}"
    )
    console.print(table)
    imports = bench_import()
    console.print(
        f"cold import of vpcflow_partitioner.handlers over boto3 + powertools Logger, Metrics and "
        f"BatchProcessor (median of 5 new processes): {imports['cached']:.1f} ms with our bytecode cached "
        f"(the libraries took {imports['floor_cached']:.0f} ms), {imports['compiled']:.1f} ms compiling our "
        f"modules from source; tracing off, the X-Ray SDK is not imported"
    )

    backfill = bench_backfill()
    table = Table(title="Backfill: one account and region, a year, 50 flow logs every 5 minutes")
    table.add_column("")
    table.add_column("delimiter walk (ours)")
    table.add_column("flat listing of every object")
    table.add_row("objects in the bucket", f"{backfill['objects']:,}", f"{backfill['objects']:,}")
    table.add_row(
        "ListObjectsV2 calls", f"{backfill['walk_list_calls']:,}", f"{backfill['flat_list_calls']:,}"
    )
    table.add_row("partitions created", str(backfill["partitions"]), "")
    table.add_row(
        "Glue calls",
        ", ".join(f"{k.split(':')[1]} {v}" for k, v in sorted(backfill["glue_calls"].items())),
        "",
    )
    console.print(table)
    for size, events, peak, took in bench_replay_memory():
        console.print(
            f"replay of a {size} MB NDJSON file ({events:,} events, a new process, moto server): "
            f"peak RSS {peak:.0f} MB, {took:.1f} s"
        )
    seconds = backfill["walk_seconds"]
    console.print(
        f"the same walk with 20 ms per ListObjectsV2 round trip: {seconds[1]} s listing one call at a time, "
        f"{seconds[16]} s with the walk's 16 threads"
    )
    console.print(
        "an organisation (1,000 accounts x 20 regions x 3 years), simulated: make bench-scale (docs/SCALE.md)"
    )


if __name__ == "__main__":
    main()
