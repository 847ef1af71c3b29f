"""`vpcflow-partitioner`: init, replay, backfill, audit and demo, all through the one pipeline.

Exit codes: 0 done / in step, 1 runtime error (AWS error, permission, missing table or
bucket), 2 usage or input error, 3 drift found (`audit` without `--fix`, `init` against a
different table without `--update`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from .. import aws
from ..catalog import CREATED, EXISTS
from ..config import SERVICE, Settings, SettingsError
from ..envelopes import Message
from ..errors import TransientError, UsageError
from ..formats import (
    CLASSIC,
    DEFAULT_FORMAT,
    HIVE,
    MULTI_ACCOUNT,
    PARQUET,
    TEXT,
    FormatError,
    TableSpec,
    format_string,
    local_day_query,
    parse_format,
    view_sql,
)
from ..pipeline import CACHED, KNOWN, WOULD_CREATE, Partitioner, Report
from ..scheme import ConfigurationError, PartitionSpec
from ..sources import (
    IDLE_RECEIVES,
    WAIT_SECONDS,
    DateRange,
    FolderWalk,
    Unreadable,
    drain_outcome,
    drain_queue,
    events_to_messages,
    read_event_files,
)
from .audit import Audit, Findings, PruneRefused, Repairs
from .audit import summary as audit_summary
from .bootstrap import create_view, init_table, read_object_fields
from .logs import set_log_level

OK, RUNTIME_ERROR, USAGE_ERROR, DRIFT = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit code 2
        self.print_usage(sys.stderr)
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), returned like every other outcome
        return int(exc.code or 0)
    # Decisions are logged as JSON on stderr, so that stdout stays the report (or --json).
    Logger(service=SERVICE, logger_handler=logging.StreamHandler(sys.stderr))
    set_log_level(logging.INFO if args.verbose else logging.WARNING)
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        return int(args.run(args, out, err))
    except (UsageError, FormatError, SettingsError) as exc:
        err.print(f"[bold red]error:[/] {exc}")
        return USAGE_ERROR
    except NoCredentialsError:
        err.print("[bold red]error:[/] no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID)")
        return RUNTIME_ERROR
    except (ConfigurationError, TransientError, ClientError, BotoCoreError, PruneRefused) as exc:
        err.print(f"[bold red]error:[/] {exc}")
        return RUNTIME_ERROR
    except KeyboardInterrupt:
        err.print("interrupted")
        return RUNTIME_ERROR


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vpcflow-partitioner", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every decision (JSON, on stderr)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def table_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--database", default="", help="Glue database (default: $GLUE_DATABASE)")
        p.add_argument("--table", default="", help="Glue table (default: $GLUE_TABLE)")
        p.add_argument("--catalog-id", default="", help="catalog account id (default: $GLUE_CATALOG_ID)")
        p.add_argument("--json", action="store_true", help="print a JSON summary instead of tables")

    def range_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--since", type=_date, help="first date folder, YYYY-MM-DD (default: the first there is)"
        )
        p.add_argument(
            "--until", type=_date, help="last date folder, YYYY-MM-DD (default: the last there is)"
        )

    init = commands.add_parser(
        "init",
        help="create the Glue table (and an Athena view) that matches what AWS delivers",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_VIEW_HELP,
    )
    init.add_argument("--database", required=True)
    init.add_argument("--table", required=True)
    init.add_argument("--catalog-id", default="")
    init.add_argument(
        "--location", required=True, help="s3://bucket/[prefix/]AWSLogs/[{account}/vpcflowlogs/{region}/]"
    )
    source = init.add_mutually_exclusive_group()
    source.add_argument("--format", default="", help=f"the flow log's LogFormat (default: {DEFAULT_FORMAT})")
    source.add_argument(
        "--from-object",
        default="",
        help="s3://.../file.log.gz or .log.parquet: read the format from a delivered file",
    )
    init.add_argument(
        "--file-format",
        choices=[TEXT, PARQUET],
        default="",
        help="default: text, or the --from-object file's",
    )
    layout = init.add_mutually_exclusive_group()
    layout.add_argument(
        "--multi-account",
        action="store_true",
        help="(aws_account_id, aws_region, year, month, day) over AWSLogs/",
    )
    layout.add_argument(
        "--hive",
        action="store_true",
        help="Hive-compatible prefixes: AWS's aws-account-id=... partition names",
    )
    init.add_argument(
        "--hourly", action="store_true", help="hourly partitions (the flow log delivers per hour)"
    )
    init.add_argument("--update", action="store_true", help="update a table that differs, and its partitions")
    init.add_argument(
        "--print-ddl",
        action="store_true",
        help="print the Athena DDL (and the partition-projection variant); change nothing",
    )
    init.add_argument(
        "--view-timezone", default="", help="also create <table>_<zone> with start/end in this IANA zone"
    )
    init.add_argument(
        "--workgroup", default="primary", help="Athena workgroup for the view (default: primary)"
    )
    init.add_argument(
        "--athena-output", default="", help="s3:// query result location, if the workgroup has none"
    )
    init.add_argument("--dry-run", action="store_true", help="show what would change; change nothing")
    init.add_argument("--json", action="store_true")
    init.set_defaults(run=_init)

    replay = commands.add_parser(
        "replay", help="replay saved events (any envelope) or drain a queue such as the DLQ"
    )
    table_options(replay)
    replay.add_argument("files", nargs="*", help="JSON files: one event per file, or one per line (NDJSON)")
    replay.add_argument(
        "--queue-url",
        default="",
        help="drain this SQS queue; a message is deleted only when done, anything else stays",
    )
    replay.add_argument(
        "--save-unreadable",
        default="",
        metavar="FILE",
        help="with --queue-url: append the kept messages whose body is not an event to FILE (NDJSON)",
    )
    replay.add_argument(
        "--wait-seconds",
        type=int,
        choices=range(1, 21),
        default=WAIT_SECONDS,
        metavar="1-20",
        help=f"with --queue-url: long-poll wait per receive; the drain ends after {IDLE_RECEIVES} "
        f"receives in a row bring nothing new (default: {WAIT_SECONDS})",
    )
    replay.add_argument("--dry-run", action="store_true")
    replay.set_defaults(run=_replay)

    backfill = commands.add_parser(
        "backfill", help="create the partitions of every date folder in the bucket"
    )
    table_options(backfill)
    range_options(backfill)
    backfill.add_argument("--dry-run", action="store_true")
    backfill.set_defaults(run=_backfill)

    audit = commands.add_parser(
        "audit",
        help="compare the folders in S3 with the partitions in Glue; report every drift",
        description=(
            "Report every drift between the bucket and the catalog: missing partitions, orphaned "
            "ones, wrong Locations, StorageDescriptor drift, folder collisions and folders the table "
            "cannot represent. Exit 3 when any remains."
        ),
    )
    table_options(audit)
    range_options(audit)
    audit.add_argument(
        "--fix",
        action="store_true",
        help="create missing partitions, repoint wrong Locations, rewrite drifted StorageDescriptors",
    )
    audit.add_argument(
        "--prune",
        action="store_true",
        help="delete partitions whose own Location holds no flow-log object (asks first; --yes off a terminal)",
    )
    audit.add_argument("--yes", action="store_true", help="do not ask before --prune deletes")
    cache = audit.add_mutually_exclusive_group()
    cache.add_argument(
        "--cache-table",
        default="",
        help="the function's DynamoDB cache, whose entries --prune deletes too (default: $CACHE_TABLE)",
    )
    cache.add_argument(
        "--no-cache", action="store_true", help="the deployment has no DynamoDB cache (--prune needs to know)"
    )
    audit.add_argument(
        "--dry-run", action="store_true", help="say what --fix and --prune would do; change nothing"
    )
    audit.set_defaults(run=_audit)

    demo = commands.add_parser("demo", help="the whole flow on a local AWS (moto); no account needed")
    demo.add_argument("--days", type=int, default=3)
    demo.set_defaults(run=_demo)
    return parser


_VIEW_HELP = """\
Local time: --view-timezone Asia/Seoul creates a view whose start/end are KST timestamps,
computed with AT TIME ZONE (correct across DST, unlike + INTERVAL '9' HOUR). Partitions stay
UTC, so one local day spans two UTC date partitions. Prune on both, then filter on start:

  SELECT * FROM flowlogs.vpc_flow_logs_asia_seoul
  WHERE ("date" = DATE '2022-08-28' OR "date" = DATE '2022-08-29')
    AND "start" >= TIMESTAMP '2022-08-29 00:00:00'
    AND "start" <  TIMESTAMP '2022-08-30 00:00:00'
"""


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        GLUE_DATABASE=args.database, GLUE_TABLE=args.table, GLUE_CATALOG_ID=args.catalog_id
    )


def _client(settings: Settings, service: str) -> Any:
    return aws.client(service, settings.endpoint_url, settings.region)


def _partitioner(settings: Settings, check_spelling: bool = True) -> Partitioner:
    cache = _client(settings, "dynamodb") if settings.cache_table else None
    return Partitioner(settings, _client(settings, "glue"), cache, check_spelling=check_spelling)


# ---------------------------------------------------------------- init


def _init(args: argparse.Namespace, out: Console, err: Console) -> int:
    settings = Settings.from_env(
        GLUE_DATABASE=args.database, GLUE_TABLE=args.table, GLUE_CATALOG_ID=args.catalog_id
    )
    file_format = args.file_format or TEXT
    if args.from_object:
        fields, detected = read_object_fields(_client(settings, "s3"), args.from_object)
        file_format = args.file_format or detected
    else:
        fields = parse_format(args.format or DEFAULT_FORMAT)
    layout = HIVE if args.hive else MULTI_ACCOUNT if args.multi_account else CLASSIC
    location = args.location if args.location.endswith("/") else args.location + "/"
    spec = TableSpec(args.database, args.table, location, fields, file_format, layout, args.hourly)
    if args.print_ddl:
        out.print(spec.athena_ddl(), markup=False)
        out.print(
            "\n-- Athena-only alternative: partition projection, no catalog partitions needed", markup=False
        )
        out.print(spec.projection_ddl(), markup=False)
        if args.view_timezone:
            out.print(f"\n{view_sql(spec, args.view_timezone)[1]};", markup=False)
        return OK
    result = init_table(
        _client(settings, "glue"), spec, settings.catalog_id, update=args.update, dry_run=args.dry_run
    )
    view = ""
    if args.view_timezone:
        view, sql = view_sql(spec, args.view_timezone)
        if not args.dry_run and result.action != "differs":
            create_view(_client(settings, "athena"), sql, args.workgroup, args.athena_output)
    summary = {
        "table": f"{spec.database}.{spec.name}",
        "action": result.action,
        "differences": result.differences,
        "partitions_updated": result.partitions_updated,
        "format": format_string(fields),
        "file_format": file_format,
        "layout": layout,
        "view": view,
    }
    if args.json:
        out.print(json.dumps(summary, indent=2), markup=False)
    else:
        out.print(f"table [bold]{spec.database}.{spec.name}[/]: {result.action}")
        for difference in result.differences:
            out.print(f"  [yellow]differs[/] {difference}")
        if result.action == "differs":
            out.print("  nothing changed; run again with --update to apply")
        if result.partitions_updated:
            out.print(f"  {result.partitions_updated} existing partitions updated to the new columns")
        if view:
            out.print(
                f"view [bold]{spec.database}.{view}[/]: {'would create' if args.dry_run else 'created'}"
            )
            out.print(local_day_query(spec, args.view_timezone, date(2022, 8, 29)), markup=False)
    return DRIFT if result.action == "differs" else OK


# ---------------------------------------------------------------- replay / backfill / audit


@dataclass
class _Totals:
    events: int = 0
    messages: int = 0
    objects: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    partitions: dict[PartitionSpec, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def add(self, report: Report) -> None:
        self.counts.update(report.counts)
        self.partitions.update(report.outcomes)
        self.failures += [f"{r.id}: {r.detail}" for r in report.failed]

    def summary(self) -> dict[str, Any]:
        outcomes = Counter(self.partitions.values())
        return {
            "events": self.events,
            "messages": self.messages,
            "objects": self.objects,
            "partitions_created": outcomes[CREATED],
            "partitions_already_present": outcomes[EXISTS] + outcomes[KNOWN] + outcomes[CACHED],
            "partitions_would_create": outcomes[WOULD_CREATE],
            "ignored": self.counts["ObjectsIgnored"],
            "unpartitionable": self.counts["ObjectsUnpartitionable"],
            "malformed": self.counts["RecordsMalformed"],
            "failed": len(self.failures),
        }


def _replay(args: argparse.Namespace, out: Console, err: Console) -> int:
    if bool(args.files) == bool(args.queue_url):
        raise UsageError("give event files or --queue-url, not both and not neither")
    if args.save_unreadable and not args.queue_url:
        raise UsageError("--save-unreadable needs --queue-url (unreadable lines in files are already saved)")
    settings = _settings(args)
    partitioner = _partitioner(settings)
    totals = _Totals()
    if not args.queue_url:
        messages = []
        for label, event in read_event_files(args.files):
            totals.events += 1
            messages += events_to_messages(label, event)
        totals.messages = len(messages)
        totals.objects = sum(len(m.objects) for m in messages)
        # Recovery asks Glue, never the cache.
        totals.add(partitioner.run(messages, now=time.time(), use_cache=False, dry_run=args.dry_run))
        return _finish(args, out, totals, {}, "replay")

    if args.dry_run:
        raise UsageError(
            "--dry-run cannot drain a queue (receiving hides messages); replay saved files instead"
        )
    with contextlib.ExitStack() as stack:
        on_unreadable: Callable[[Unreadable], None] | None = None
        if args.save_unreadable:
            try:
                saved = stack.enter_context(open(args.save_unreadable, "a", encoding="utf-8"))
            except OSError as exc:
                raise UsageError(f"cannot write {args.save_unreadable}: {exc.strerror}") from None

            def save(message: Unreadable) -> None:
                line = {"message_id": message.message_id, "body": message.body, "reason": message.reason}
                saved.write(json.dumps(line) + "\n")
                saved.flush()  # a drain stopped halfway still leaves what it saw

            on_unreadable = save

        # A missing table fails here, before a receive hides any message for its visibility timeout.
        partitioner.scheme()
        unresolved: list[str] = []

        def process(messages: list[Message]) -> dict[str, str]:
            totals.messages += len(messages)
            totals.objects += sum(len(m.objects) for m in messages)
            report = partitioner.run(messages, now=time.time(), use_cache=False)
            totals.add(report)
            unresolved.extend(f"{r.id}: {r.detail}" for r in report.results if r.ok and r.unresolved)
            return {r.id: drain_outcome(r.ok, r.unresolved) for r in report.results}

        drained = drain_queue(
            _client(settings, "sqs"),
            args.queue_url,
            process,
            wait_seconds=args.wait_seconds,
            on_unreadable=on_unreadable,
        )
    totals.events = drained.received
    totals.failures += drained.problems
    extra: dict[str, Any] = {
        "received": drained.received,
        "done": drained.done,
        "kept": drained.kept,
        "failed": drained.failed,  # kept; a later drain retries them
        "unresolved": drained.unresolved,  # kept; an operator has to look
        "unreadable_saved": drained.unreadable if args.save_unreadable else 0,
    }
    if args.json:
        # The names before done/kept, for scripts that read them.
        extra |= {"deleted": drained.done, "kept_in_queue": drained.kept, "unresolved_messages": unresolved}
    code = _finish(args, out, totals, extra, "replay")
    if not args.json:
        for line in unresolved[:20]:
            out.print(f"[yellow]kept[/] {escape(line)}")
        if args.save_unreadable and drained.unreadable:
            out.print(f"{drained.unreadable} unreadable messages appended to {args.save_unreadable}")
    # Anything kept means the queue still needs attention: a retry (1) or an operator (3).
    if code == OK and drained.failed:
        return RUNTIME_ERROR
    return DRIFT if code == OK and drained.unresolved else code


def _walk(
    args: argparse.Namespace, settings: Settings, partitioner: Partitioner, err: Console
) -> tuple[FolderWalk, list[Message]]:
    if args.since and args.until and args.since > args.until:
        raise UsageError("--since is after --until")
    walk = FolderWalk(_client(settings, "s3"), partitioner.scheme(), DateRange(args.since, args.until))
    messages = []
    with _progress(err) as progress:
        task = progress.add_task("listing date folders", total=None)
        for message in walk.messages():
            messages.append(message)
            progress.update(
                task, advance=1, description=f"listing date folders ({walk.list_calls} list calls)"
            )
    return walk, messages


def _backfill(args: argparse.Namespace, out: Console, err: Console) -> int:
    settings = _settings(args)
    partitioner = _partitioner(settings)
    walk, messages = _walk(args, settings, partitioner, err)
    totals = _Totals(events=len(messages), messages=len(messages), objects=len(messages))
    totals.add(partitioner.run(messages, now=time.time(), use_cache=False, dry_run=args.dry_run))
    extra = {
        "folders": len(messages),
        "list_calls": walk.list_calls,
        "glue_create_calls": partitioner.catalog.create_calls,
    }
    return _finish(args, out, totals, extra, "backfill")


def _audit(args: argparse.Namespace, out: Console, err: Console) -> int:
    destructive = args.prune and not args.dry_run
    terminal = sys.stdin.isatty() and err.is_terminal
    if destructive and not args.yes and not terminal:
        raise UsageError("--prune deletes partitions: run it on a terminal to confirm, or add --yes")
    if args.since and args.until and args.since > args.until:
        raise UsageError("--since is after --until")
    settings = Settings.from_env(
        GLUE_DATABASE=args.database,
        GLUE_TABLE=args.table,
        GLUE_CATALOG_ID=args.catalog_id,
        CACHE_TABLE=args.cache_table,
    )
    if args.no_cache:
        settings = dataclasses.replace(settings, cache_table="")
    elif destructive and not settings.cache_table:
        # A pruned partition left "present" in the cache is acked for CACHE_TTL_DAYS.
        raise UsageError(
            "--prune must also delete the function's cache entries: set CACHE_TABLE or --cache-table "
            "NAME, or pass --no-cache if the deployment has no cache"
        )
    partitioner = _partitioner(settings, check_spelling=False)  # audit lists them, as shared Locations
    audit = Audit(partitioner, _client(settings, "s3"), DateRange(args.since, args.until))
    findings = audit.find(lambda walk: _collect(walk, err))
    repairs = Repairs()
    if args.fix and not args.dry_run:
        audit.fix(findings, time.time(), repairs)
    if args.prune and findings.orphaned:
        audit.refuse_if_blind(findings)
        if destructive and not args.yes and not _confirm(findings, err):
            err.print("nothing pruned")
        elif destructive:
            audit.prune(findings, time.time(), repairs)
    report = audit_summary(findings, repairs)
    if args.prune and args.dry_run:
        report["would_prune"] = report["orphaned"]
    if args.fix and args.dry_run:
        report["would_create"] = report["missing"]
        report["would_repoint"] = [m["values"] for m in report["wrong_location"]]
        report["would_rewrite"] = [d["values"] for d in report["descriptor_drift"]]
    if args.json:
        out.print(json.dumps(report, indent=2), markup=False)
    else:
        _print_audit(out, audit, findings, repairs, report, dry_run=args.dry_run)
    if repairs.failed:
        return RUNTIME_ERROR
    return DRIFT if any(report["remaining"].values()) else OK


def _collect(walk: FolderWalk, err: Console) -> list[Message]:
    messages = []
    with _progress(err) as progress:
        task = progress.add_task("listing folders", total=None)
        for message in walk.messages():
            messages.append(message)
            progress.update(task, advance=1, description=f"listing folders ({walk.list_calls} list calls)")
    return messages


def _confirm(findings: Findings, err: Console) -> bool:
    err.print(f"--prune will delete {len(findings.orphaned)} partitions whose Location holds no flow log:")
    for partition in findings.orphaned[:20]:
        err.print(f"  {escape('/'.join(partition.values))}  {escape(partition.location)}")
    if len(findings.orphaned) > 20:
        err.print(f"  ... and {len(findings.orphaned) - 20} more")
    return err.input("delete them? [y/N] ").strip().lower() in ("y", "yes")


def _print_audit(
    out: Console, audit: Audit, findings: Findings, repairs: Repairs, report: dict[str, Any], *, dry_run: bool
) -> None:
    table = Table(title=f"audit {audit.scheme.table} ({audit.scheme.location})")
    table.add_column("partition or folder", overflow="fold")
    table.add_column("drift", overflow="fold")
    table.add_column("state", overflow="fold")
    done = {*repairs.created, *repairs.relocated, *repairs.updated, *repairs.pruned}

    def state(values: tuple[str, ...], fixable: str) -> str:
        if values in repairs.failed:
            return f"[red]failed: {escape(repairs.failed[values])}[/]"
        if values in repairs.restored:
            return "[green]kept: a new object arrived[/]"
        if values in done:
            return f"[green]{fixable}[/]"
        return "[yellow]would be " + fixable + "[/]" if dry_run else "[yellow]remains[/]"

    for values in findings.missing:
        table.add_row("/".join(values), "missing", state(values, "created"))
    for move in findings.wrong_location:
        table.add_row(
            "/".join(move.values),
            f"Location {move.location}, folder {move.folder}",
            state(move.values, "repointed"),
        )
    for drift in findings.descriptor_drift:
        table.add_row(
            "/".join(drift.values),
            f"{', '.join(drift.fields)} differ from the table",
            state(drift.values, "rewritten"),
        )
    for partition in findings.orphaned:
        table.add_row(
            "/".join(partition.values),
            f"orphaned: nothing under {partition.location}",
            state(partition.values, "pruned"),
        )
    for collision in findings.collisions:
        folders = ", ".join(collision.folders)
        table.add_row(
            "/".join(collision.values),
            f"collision: {folders} (Glue has {collision.catalog_location or 'none'})",
            "[red]needs an operator[/]",
        )
    for item in findings.unrepresentable:
        table.add_row(
            item.folder, f"the table cannot represent it: {item.reason}", "[red]needs an operator[/]"
        )
    for shared in findings.shared_location:
        table.add_row(
            "/".join(shared.values),
            f"its Location {shared.location} is the folder of {'/'.join(shared.owner)}: read twice",
            "[red]needs an operator[/]",
        )
    for far in findings.unreachable:
        table.add_row(
            "/".join(far.values),
            f"not found by the walk; {far.reason}",
            "[yellow]kept; needs an operator[/]",
        )
    if table.row_count:
        out.print(table)
    found = (
        ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in findings.counts().items() if n) or "no drift"
    )
    remaining = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in report["remaining"].items() if n)
    out.print(
        f"{findings.folders} folders, {findings.partitions} partitions in Glue: {found} "
        f"({findings.list_calls} list calls)"
    )
    if done or repairs.restored:
        out.print(
            f"fixed: {len(repairs.created)} created, {len(repairs.relocated)} repointed, "
            f"{len(repairs.updated)} rewritten, {len(repairs.pruned)} pruned"
            + (f" ({len(repairs.restored)} kept: a new object arrived)" if repairs.restored else "")
        )
    out.print(f"remaining: {remaining}" if remaining else "remaining: none, the table is in step")


def _finish(args: argparse.Namespace, out: Console, totals: _Totals, extra: dict[str, Any], what: str) -> int:
    summary = totals.summary() | extra
    if args.json:
        out.print(json.dumps(summary | {"failures": totals.failures}, indent=2), markup=False)
    else:
        changed = sorted(
            ((s, o) for s, o in totals.partitions.items() if o in (CREATED, WOULD_CREATE)),
            key=lambda item: item[0].values,
        )
        if changed and len(changed) <= 50:
            table = Table(title=f"{what}: partitions {'to create' if args.dry_run else 'created'}")
            table.add_column("values", overflow="fold")
            table.add_column("location", overflow="fold")
            for spec, _ in changed:
                table.add_row("/".join(spec.values), spec.location)
            out.print(table)
        summary_table = Table(title=f"{what} summary", show_header=False)
        for key, value in summary.items():
            summary_table.add_row(key.replace("_", " "), str(value))
        out.print(summary_table)
        for failure in totals.failures[:20]:
            out.print(f"[red]failed[/] {failure}")
    return RUNTIME_ERROR if totals.failures else OK


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def _demo(args: argparse.Namespace, out: Console, err: Console) -> int:
    from .demo import run_demo

    return run_demo(out, main, days=args.days)


if __name__ == "__main__":
    sys.exit(main())
