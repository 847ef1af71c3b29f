"""`make bench-scale`: an organisation's backfill, simulated (issue 13, point 4; docs/SCALE.md).

S3 and Glue are stand-ins (scripts/scale/standins.py) that answer from arithmetic and charge
simulated time: `--list-latency` a ListObjectsV2 call, `--glue-latency` a Glue call, and at
most `--write-rate` BatchCreatePartition calls a second for the whole account (shared by all
workers). The walk and the pipeline are the production code, run for real on a sample of
the organisation (`--sample-accounts`); their CPU is measured on this machine and charged
to the simulated worker that ran them.

Scenarios:
  a. one machine: FolderWalk (16 threads) over the whole table, then one Partitioner.run
     with use_cache=False;
  b. distributed: `--workers` Lambda workers take work items (one per account x region x
     month) from a queue; each runs the per-slice walk and the pipeline;
  c. inventory: no list calls; `--workers` take one inventory data file each (rows made up
     from arithmetic), dedupe folders and run the pipeline.

What is measured and what is extrapolated is printed apart: the sample runs the real code;
the whole organisation is either scaled linearly from it (a), or replayed (b, c): every
work item of the organisation is scheduled on the workers with the simulated costs one
sample item of the same kind incurred (list time, CPU, and its Glue calls, which wait for
the shared write rate at their simulated time).
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import heapq
import json
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "GLUE_DATABASE": "flowlogs",
        "GLUE_TABLE": "vpc_flow_logs",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_NAMESPACE": "BenchScale",
    }
)
os.environ.pop("AWS_ENDPOINT_URL", None)

from vpcflow_partitioner.backfill import parse_body, run_item  # noqa: E402  (what on_backfill runs)
from vpcflow_partitioner.config import Settings  # noqa: E402
from vpcflow_partitioner.pipeline import Partitioner  # noqa: E402
from vpcflow_partitioner.sources import DateRange, FolderWalk  # noqa: E402

from scripts.scale.standins import (  # noqa: E402
    HARNESS,
    GlueCatalog,
    GlueLimits,
    Organisation,
    RateLimit,
    S3View,
    VirtualClock,
    org_table,
    slices,
)

INVENTORY_BUCKET = "org-inventory"
EPOCH = 1_800_000_000.0  # simulated time 0, as the `now` the pipeline is given
GLUE_PARTITIONS_PER_TABLE = 10_000_000  # Glue quota "Number of partitions per table" (default)


@dataclasses.dataclass
class Result:
    """One scenario's figures, measured on a sample or scaled to the organisation."""

    label: str
    how: str  # "measured: ..." or "extrapolated ..." / "replayed ..."
    list_calls: float
    glue_calls: Counter[str]
    partitions: float
    wall: float  # simulated seconds
    spent: dict[str, float]  # simulated seconds by cause, summed over workers
    cpu: float  # real CPU seconds of our code on this machine
    workers: int = 1
    items: int = 0

    def scaled(self, factor: float, how: str) -> Result:
        return Result(
            self.label,
            how,
            self.list_calls * factor,
            Counter({k: round(v * factor) for k, v in self.glue_calls.items()}),
            self.partitions * factor,
            self.wall * factor,
            {k: v * factor for k, v in self.spent.items()},
            self.cpu * factor,
            self.workers,
            round(self.items * factor),
        )


class Measure:
    """Our code's CPU on this machine: process CPU minus what the stand-ins spent."""

    def __enter__(self) -> Measure:
        self._cpu, self._harness = time.process_time(), HARNESS.seconds
        return self

    def __exit__(self, *_: object) -> None:
        self.seconds = max(0.0, (time.process_time() - self._cpu) - (HARNESS.seconds - self._harness))


def one_machine(org: Organisation, args: argparse.Namespace, settings: Settings) -> Result:
    """Scenario a: the real FolderWalk over the whole table, then one Partitioner.run."""
    clock = VirtualClock(lanes=args.threads)
    s3 = S3View(org, clock, args.list_latency)
    catalog = GlueCatalog(org_table(f"s3://{org.bucket}/{org.prefix}"), _limits(args))
    partitioner = Partitioner(settings, catalog.view(clock))
    with Measure() as walk_cpu:
        walk = FolderWalk(s3, partitioner.scheme(EPOCH), DateRange(), workers=args.threads)
        messages = list(walk.messages())
    listing = clock.sync()
    # The walk's threads share one interpreter (one core at a time): CPU beyond the list
    # latency they overlap with adds to the wall time.
    clock.add(max(0.0, walk_cpu.seconds - listing), "cpu")
    with Measure() as run_cpu:
        partitioner.run(messages, now=EPOCH + clock.now, use_cache=False)
    clock.add(run_cpu.seconds, "cpu")
    return Result(
        "a. one machine, 16 threads",
        f"measured: {len(org.accounts)} accounts",
        s3.calls,
        catalog.calls,
        catalog.created,
        clock.now,
        clock.spent,
        walk_cpu.seconds + run_cpu.seconds,
        items=1,
    )


@dataclasses.dataclass
class Worker:
    clock: VirtualClock
    partitioner: Partitioner
    s3: S3View


def _workers(
    org: Organisation, catalog: GlueCatalog, settings: Settings, args: argparse.Namespace
) -> list[Worker]:
    out = []
    for _ in range(args.workers):
        clock = VirtualClock(lanes=args.threads)
        s3 = S3View(org, clock, args.list_latency, args.get_latency, args.read_throughput)
        out.append(Worker(clock, Partitioner(settings, catalog.view(clock)), s3))
    return out


def _fleet(
    workers: list[Worker], items: Iterator[Any], run: Callable[[Worker, Any], None], overhead: float
) -> list[list[tuple[str, float, str]]]:
    """Each item to the worker free first (an SQS queue and a Lambda fleet); the item's trace."""
    ready = [(0.0, i) for i in range(len(workers))]
    traces = []
    for item in items:
        _, i = heapq.heappop(ready)
        worker = workers[i]
        worker.clock.trace = []
        worker.clock.add(overhead, "queue")
        with Measure() as cpu:
            run(worker, item)
        worker.clock.add(cpu.seconds, "cpu")
        traces.append(worker.clock.trace)
        heapq.heappush(ready, (worker.clock.now, i))
    return traces


def distributed(
    org: Organisation, args: argparse.Namespace, settings: Settings, per: str
) -> tuple[Result, list[Any]]:
    """Scenario b: one work item per (account, region, `per`), `--workers` Lambda workers."""
    catalog = GlueCatalog(org_table(f"s3://{org.bucket}/{org.prefix}"), _limits(args))
    workers = _workers(org, catalog, settings, args)
    table = f"{settings.database}.{settings.table}"

    def items() -> Iterator[str]:
        for account, region, since, until in slices(org, per):
            folder = f"{org.prefix}AWSLogs/{account}/vpcflowlogs/{region}/"
            yield json.dumps({"v": 1, "table": table, "bucket": org.bucket, "folder": folder,
                              "since": since.isoformat(), "until": until.isoformat()})  # fmt: skip

    def run(worker: Worker, body: str) -> None:
        run_item(worker.partitioner, worker.s3, parse_body(body), EPOCH + worker.clock.now)

    traces = _fleet(workers, items(), run, args.item_overhead)
    return _fleet_result(
        f"b. distributed, an item per account, region and {per}", org, workers, catalog, traces
    ), traces


def inventory(org: Organisation, args: argparse.Namespace, settings: Settings) -> tuple[Result, list[Any]]:
    """Scenario c: one work item per inventory data file (`--rows-per-file` rows), no listing."""
    catalog = GlueCatalog(org_table(f"s3://{org.bucket}/{org.prefix}"), _limits(args))
    workers = _workers(org, catalog, settings, args)

    table = f"{settings.database}.{settings.table}"

    def files() -> Iterator[str]:
        # Each data file (gzip-compressed CSV: Bucket, Key, Size) is made before its item
        # starts and the stand-in serves it: its making is not the reader's work.
        rows: list[str] = []
        number = 0
        for n, key in enumerate(org.all_keys(), start=1):
            rows.append(f'"{org.bucket}","{quote_plus(key, safe="/")}","1024"\n')
            if n % args.rows_per_file == 0:
                yield _publish(rows, number)
                rows, number = [], number + 1
        if rows:
            yield _publish(rows, number)

    def _publish(rows: list[str], number: int) -> str:
        key = f"inventory/{org.bucket}/data/{number:06d}.csv.gz"
        S3View.files[(INVENTORY_BUCKET, key)] = gzip.compress("".join(rows).encode(), compresslevel=1)
        inventory = {"bucket": INVENTORY_BUCKET, "key": key, "format": "CSV", "schema": "Bucket, Key, Size"}
        return json.dumps({"v": 1, "table": table, "inventory": inventory})

    def run(worker: Worker, body: str) -> None:
        try:
            run_item(worker.partitioner, worker.s3, parse_body(body), EPOCH + worker.clock.now)
        finally:
            S3View.files.pop((INVENTORY_BUCKET, json.loads(body)["inventory"]["key"]), None)

    traces = _fleet(workers, files(), run, args.item_overhead)
    result = _fleet_result("c. inventory, one data file an item", org, workers, catalog, traces)
    return result, traces


def _fleet_result(
    label: str,
    org: Organisation,
    workers: list[Worker],
    catalog: GlueCatalog,
    traces: list[Any],
) -> Result:
    spent: defaultdict[str, float] = defaultdict(float)
    for worker in workers:
        for cause, seconds in worker.clock.spent.items():
            spent[cause] += seconds
    return Result(
        label,
        f"measured: {len(org.accounts)} accounts",
        sum(w.s3.calls for w in workers),
        catalog.calls,
        catalog.created,
        max(w.clock.now for w in workers),
        spent,
        spent["cpu"],
        len(workers),
        len(traces),
    )


def replay(
    traces: list[list[tuple[str, float, str]]], items: int, workers: int, args: argparse.Namespace
) -> tuple[float, dict[str, float], Counter[str]]:
    """Schedule `items` work items on `workers`, item k costing as sample trace k mod len:
    fixed costs add up, Glue calls wait for the shared rates in simulated time. A worker's
    first item reads a page of partitions (the cold container's spelling check); later items
    do not, whatever the sample item did."""
    writes, reads = RateLimit(args.write_rate), RateLimit(args.read_rate)
    ready = [(0.0, i, True) for i in range(workers)]
    spent: defaultdict[str, float] = defaultdict(float)
    calls: Counter[str] = Counter()
    cold_read = next((t for trace in traces for t in trace if t[2] == "GetPartitions"), None)
    end = 0.0
    for k in range(items):
        now, i, cold = heapq.heappop(ready)
        steps = [t for t in traces[k % len(traces)] if t[2] != "GetPartitions"]
        if cold and cold_read is not None:
            steps.insert(0, cold_read)
        for cause, seconds, api in steps:
            if api:
                start = (writes if cause == "glue write" else reads).reserve(now)
                spent[cause + " wait"] += start - now
                now = start
                calls[api] += 1
            now += seconds
            spent[cause] += seconds
        end = max(end, now)
        heapq.heappush(ready, (now, i, False))
    return end, spent, calls


def _limits(args: argparse.Namespace) -> GlueLimits:
    return GlueLimits(latency=args.glue_latency, write_rate=args.write_rate, read_rate=args.read_rate)


def _minutes(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:,.1f} h"
    return f"{seconds / 60:,.1f} min" if seconds >= 60 else f"{seconds:,.1f} s"


def _shares(spent: dict[str, float]) -> str:
    total = sum(spent.values()) or 1.0
    parts = sorted(spent.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {v / total:.0%}" for k, v in parts if v / total >= 0.005)


def _binding(r: Result, write_rate: float, read_rate: float) -> str:
    """The limit whose floor comes closest to the wall time: the Glue write rate (writes /
    rate), the Glue read rate, or the workers' own time (list latency, Glue round trips,
    CPU: their sum over the workers / workers)."""
    writes = r.glue_calls.get("BatchCreatePartition", 0)
    reads = sum(r.glue_calls.values()) - writes
    own = sum(v for k, v in r.spent.items() if not k.endswith(" wait")) / r.workers
    floors = {
        "Glue write rate": writes / write_rate if write_rate > 0 else 0.0,
        "Glue read rate": reads / read_rate if read_rate > 0 else 0.0,
        "workers' own time": own,
    }
    name = max(floors, key=floors.__getitem__)
    detail = ", ".join(f"{k} {_minutes(v)}" for k, v in floors.items())
    return f"{name} (floors: {detail})"


def print_results(title: str, results: list[Result], args: argparse.Namespace) -> None:
    print(f"\n{title}\n")
    print(
        "| scenario | what ran | list calls | Glue calls | partitions | simulated wall | where the time goes (worker-seconds) | binds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        glue = ", ".join(f"{k} {v:,}" for k, v in sorted(r.glue_calls.items()))
        print(
            f"| {r.label} | {r.how} | {r.list_calls:,.0f} | {glue} | {r.partitions:,.0f} | "
            f"{_minutes(r.wall)} | {_shares(r.spent)} | {_binding(r, args.write_rate, args.read_rate)} |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", type=int, default=1000, help="accounts in the organisation")
    parser.add_argument("--regions", type=int, default=20)
    parser.add_argument(
        "--days", type=int, default=1095, help="daily folders per account and region (3 years)"
    )
    parser.add_argument("--first-day", default="2023-01-01")
    parser.add_argument(
        "--files-per-day", type=int, default=288, help="objects a folder (one flow log, 5-minute files)"
    )
    parser.add_argument(
        "--sample-accounts", type=int, default=1, help="accounts run with the real code (a, b)"
    )
    parser.add_argument(
        "--inventory-sample-accounts", type=int, default=1, help="accounts run with the real code (c)"
    )
    parser.add_argument(
        "--inventory-sample-regions", type=int, default=5, help="of their regions, run with the real code (c)"
    )
    parser.add_argument(
        "--full", action="store_true", help="run the whole organisation with the real code (hours)"
    )
    parser.add_argument("--scenarios", default="abc")
    parser.add_argument(
        "--workers", type=int, default=100, help="Lambda workers (the queue's maximum concurrency)"
    )
    parser.add_argument("--threads", type=int, default=16, help="FolderWalk threads a worker")
    parser.add_argument("--list-latency", type=float, default=0.020, help="seconds a ListObjectsV2 call")
    parser.add_argument("--glue-latency", type=float, default=0.100, help="seconds a Glue call (assumed)")
    parser.add_argument(
        "--write-rate", type=float, default=50.0,
        help="BatchCreatePartition calls a second, account-wide (undocumented: see docs/SCALE.md)",
    )  # fmt: skip
    parser.add_argument("--read-rate", type=float, default=100.0, help="other Glue calls a second (assumed)")
    parser.add_argument(
        "--item-overhead", type=float, default=0.05, help="seconds a work item spends in SQS + Lambda"
    )
    parser.add_argument("--rows-per-file", type=int, default=250_000, help="rows an inventory data file")
    parser.add_argument(
        "--read-throughput", type=float, default=50e6, help="bytes a second a GetObject reads"
    )
    parser.add_argument(
        "--get-latency", type=float, default=0.020, help="seconds before a GetObject's first byte"
    )
    parser.add_argument(
        "--rates", default="25:50,50:100,100:200,250:500,500:1000",
        help="write:read Glue rates the distributed replay is repeated at",
    )  # fmt: skip
    parser.add_argument("--slices", default="month,year", help="work item spans for b: month, year, all")
    args = parser.parse_args(argv)

    first = date.fromisoformat(args.first_day)
    full = Organisation.of(args.accounts, args.regions, first, args.days, files=args.files_per_day)
    settings = Settings.from_env()
    last = first + timedelta(days=args.days - 1)
    print(
        f"organisation: {args.accounts:,} accounts x {args.regions} regions x {args.days:,} days "
        f"({first} to {last}) = {full.leaf_folders:,} daily partitions, {full.objects:,} objects; "
        f"one table (Glue's default quota: {GLUE_PARTITIONS_PER_TABLE:,} partitions a table)"
    )
    print(
        f"simulated: ListObjectsV2 {args.list_latency * 1000:.0f} ms, Glue call {args.glue_latency * 1000:.0f} ms, "
        f"BatchCreatePartition <= {args.write_rate:g}/s and other Glue calls <= {args.read_rate:g}/s account-wide, "
        f"{args.workers} workers x {args.threads} walk threads, {args.item_overhead * 1000:.0f} ms queue overhead an item"
    )
    sample_n = args.accounts if args.full else min(args.sample_accounts, args.accounts)
    sample = Organisation.of(sample_n, args.regions, first, args.days, files=args.files_per_day)
    factor = len(full.accounts) / len(sample.accounts)
    measured: list[Result] = []
    scaled: list[Result] = []
    started = time.perf_counter()

    if "a" in args.scenarios:
        a = one_machine(sample, args, settings)
        measured.append(a)
        if factor != 1:
            r = a.scaled(factor, f"extrapolated x{factor:g} (linear in accounts)")
            for api in ("GetTable", "GetPartitions"):  # once a run, not once an account
                r.glue_calls[api] = a.glue_calls[api]
            scaled.append(r)
    replays: list[tuple[str, list[Any], int]] = []  # (label, sample traces, items in the organisation)
    if "b" in args.scenarios:
        for per in args.slices.split(","):
            b, traces = distributed(sample, args, settings, per)
            measured.append(b)
            items = sum(1 for _ in slices(full, per))
            replays.append((b.label, traces, items))
            if factor != 1:
                wall, spent, calls = replay(traces, items, args.workers, args)
                r = b.scaled(factor, f"replayed: {items:,} items on sample-item costs")
                r.wall, r.spent, r.items, r.glue_calls = wall, spent, items, calls
                scaled.append(r)
    if "c" in args.scenarios:
        inv_n = args.accounts if args.full else min(args.inventory_sample_accounts, args.accounts)
        inv_r = args.regions if args.full else min(args.inventory_sample_regions, args.regions)
        inv_sample = Organisation.of(inv_n, inv_r, first, args.days, files=args.files_per_day)
        c, traces_c = inventory(inv_sample, args, settings)
        c.how = f"measured: {inv_n} account(s) x {inv_r} regions"
        measured.append(c)
        inv_factor = full.leaf_folders / inv_sample.leaf_folders
        if inv_factor != 1:
            items = -(-full.objects // args.rows_per_file)
            # The sample's last file is short: replay full files only.
            full_traces = traces_c[:-1] or traces_c
            wall, spent, calls = replay(full_traces, items, args.workers, args)
            r = c.scaled(inv_factor, f"replayed: {items:,} data files on sample-file costs")
            r.wall, r.spent, r.items, r.glue_calls = wall, spent, items, calls
            scaled.append(r)
    print_results(
        f"Measured: the real walk and pipeline over stand-ins ({time.perf_counter() - started:.0f} s real time)",
        measured,
        args,
    )
    for r in measured:
        per = r.partitions or 1
        print(
            f"  {r.label}: our CPU {r.cpu:,.1f} s on this machine = {r.cpu / per * 1e6:,.0f} µs a partition"
            + (f", {r.list_calls / per:.2f} list calls a partition" if r.list_calls else "")
            + (f", {r.items:,} work items on {r.workers} workers" if r.workers > 1 else "")
        )
    if scaled:
        print_results(
            f"The whole organisation ({full.leaf_folders:,} partitions): NOT run; extrapolated or replayed from the sample above",
            scaled,
            args,
        )
    if args.rates and factor != 1:
        pairs = [tuple(float(x) for x in pair.split(":")) for pair in args.rates.split(",")]
        print(
            f"\nDistributed (b), the whole organisation replayed at other Glue rates ({args.workers} workers):\n"
        )
        print(
            "| BatchCreatePartition/s | other Glue calls/s | "
            + " | ".join(label for label, _, _ in replays)
            + " |"
        )
        print("|---|---|" + "---|" * len(replays))
        for write_rate, read_rate in pairs:
            rated = argparse.Namespace(**{**vars(args), "write_rate": write_rate, "read_rate": read_rate})
            cells = [_minutes(replay(traces, items, args.workers, rated)[0]) for _, traces, items in replays]
            print(f"| {write_rate:g} | {read_rate:g} | " + " | ".join(cells) + " |")
    partitions = full.leaf_folders
    share = partitions / GLUE_PARTITIONS_PER_TABLE
    quota = (
        f"is {share:.1f}x Glue's default per-table quota: split it (docs/SCALE.md)."
        if share >= 0.8
        else f"is {share:.1%} of Glue's default per-table quota."
    )
    print(
        f"\nFloors for the whole organisation: {partitions:,} partitions need >= {-(-partitions // 100):,} "
        f"BatchCreatePartition calls (100 a call): {_minutes(partitions / 100 / args.write_rate)} at {args.write_rate:g}/s; "
        f"15 minutes needs >= {partitions / 100 / 900:,.2f} calls/s sustained. One table of {partitions:,} partitions "
        + quota
    )


if __name__ == "__main__":
    main()
