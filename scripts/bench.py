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
import statistics
import subprocess
import sys
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

from helpers import CLASSIC_LOCATION, create_table, load_event  # noqa: E402
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
            assert response == {"batchItemFailures": []}, response


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


def bench_cpu() -> tuple[float, float]:
    """Median CPU microseconds per record, warm container, and per record of pure parsing."""
    events = sqs_events(10_000, ("2022-08-27", "2022-08-28", "2022-08-29"))
    with mock_aws():
        handlers.reset()
        settings = Settings.from_env()
        create_table(aws.client("glue", settings.endpoint_url, settings.region))
        invoke_all(events[:5])
        samples = []
        for _ in range(5):
            start = time.process_time()
            invoke_all(events)
            samples.append((time.process_time() - start) / 10_000 * 1e6)
        handlers.reset()
    from vpcflow_partitioner.envelopes import unwrap
    from vpcflow_partitioner.keys import parse_key

    table = {
        "Name": "t", "DatabaseName": "d", "PartitionKeys": [{"Name": "date", "Type": "date"}],
        "StorageDescriptor": {"Location": CLASSIC_LOCATION},
    }  # fmt: skip
    scheme = Scheme.from_table(table)
    cores = []
    for _ in range(5):
        start = time.process_time()
        for event in events:
            for message in unwrap(event).messages:
                for ref in message.objects:
                    obj = parse_key(ref.key)
                    assert obj is not None
                    scheme.plan(ref.bucket, obj)
        cores.append((time.process_time() - start) / 10_000 * 1e6)
    return statistics.median(samples), statistics.median(cores)


def bench_import() -> tuple[float, float]:
    """(whole import ms, our own modules' self time ms), median of 5 runs of -X importtime."""
    totals, ours = [], []
    for _ in range(5):
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import functions.vpcflow_partitioner.handlers"],
            check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        own = total = 0
        for line in result.stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, cumulative_us, name = (part.strip() for part in line[len("import time:") :].split("|"))
            if name.strip().startswith("functions.vpcflow_partitioner"):
                own += int(self_us)
            if name == "functions.vpcflow_partitioner.handlers":
                total = int(cumulative_us)
        totals.append(total / 1000)
        ours.append(own / 1000)
    return statistics.median(totals), statistics.median(ours)


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
    import tempfile

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

    per_record, core = bench_cpu()
    total_import, own_import = bench_import()
    console.print(
        f"CPU per record, warm container, whole handler (SQS batch of 10, powertools included): {per_record:.1f} us"
    )
    console.print(f"CPU per record, pure core (unwrap + parse_key + plan): {core:.1f} us")
    console.print(
        f"importing the handler module (median of 5, -X importtime): {total_import:.0f} ms in all, of which "
        f"{own_import:.1f} ms in our own modules; the rest is boto3, powertools and the X-Ray SDK its Tracer loads"
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


if __name__ == "__main__":
    main()
