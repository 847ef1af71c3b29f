"""`vpcflow-partitioner`: keep a Glue table of VPC Flow Logs partitioned, from the command line.

Every command goes through the pipeline the Lambda function runs. Exit codes, for every command:
  0  done, or in step
  1  runtime error: an AWS error, a permission, a missing table, bucket or queue (one line)
  2  usage or input error: a bad flag, format string, date or input file
  3  drift found, or with --dry-run: changes that would be made (terraform's -detailed-exitcode)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import re
import shlex
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import IO, Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    InvalidRegionError,
    NoCredentialsError,
    ProfileNotFound,
)
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from .. import aws, backfill
from ..backfill import SLICES
from ..catalog import CREATED, EXISTS
from ..config import Connection, Settings, SettingsError
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
from ..inventory import (
    InventoryCounts,
    Manifest,
    inventory_messages,
    inventory_objects,
    least_per_folder,
    read_manifest,
)
from ..pipeline import CACHED, KNOWN, WOULD_CREATE, Fleet, Partitioner, Report, is_collision
from ..scheme import ConfigurationError, PartitionSpec
from ..sources import (
    IDLE_RECEIVES,
    WAIT_SECONDS,
    DateRange,
    FolderWalk,
    Unreadable,
    drain_outcome,
    drain_queue,
)
from . import doctor as checkup
from .audit import Audit, Findings, PruneRefused, Repairs
from .audit import summary as audit_summary
from .bootstrap import InitPlan, apply_index, apply_init, create_view, plan_init, read_object_fields
from .inputs import NOT_JSON, EventFile, events_to_messages
from .logs import configure
from .tables import FILTERING, INDEX_NAME, date_index_keys

PROG = "vpcflow-partitioner"
OK, RUNTIME_ERROR, USAGE_ERROR, DRIFT = 0, 1, 2, 3
# Replayed messages go to the pipeline in runs of this many: memory stays flat on any file.
_REPLAY_CHUNK = 1000


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit code 2
        self.exit(USAGE_ERROR, f"error: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None, stdin: IO[bytes] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error (2), returned like any outcome
        return int(exc.code or 0)
    args.stdin = stdin if stdin is not None else sys.stdin.buffer
    configure(args.verbose)
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        return int(args.run(args, out, err))
    except (UsageError, FormatError, SettingsError, ProfileNotFound, InvalidRegionError) as exc:
        _error(err, exc)  # a bad flag or input: nothing an AWS retry could change
        return USAGE_ERROR
    except NoCredentialsError:
        _error(err, "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID, or pass --profile)")
        return RUNTIME_ERROR
    except (ConfigurationError, TransientError, ClientError, BotoCoreError, PruneRefused) as exc:
        _error(err, exc)
        return RUNTIME_ERROR
    except KeyboardInterrupt:
        _error(err, "interrupted")
        return RUNTIME_ERROR
    except Exception as exc:  # never a traceback for the user; -v shows it
        if args.verbose:
            traceback.print_exc()
        _error(err, f"unexpected {type(exc).__name__}: {exc} (run with -v for the traceback)")
        return RUNTIME_ERROR


def _error(err: Console, message: object) -> None:
    err.print(f"[bold red]error:[/] {escape(str(message))}")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vpcflow-partitioner")
    except PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------- the parser


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """aws-cli's options, accepted before or after the subcommand (after it they override)."""

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("global options")
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default(False),
        help="log every decision (JSON lines, stderr)",
    )
    group.add_argument(
        "--region", default=default(""), help="AWS Region (default: $AWS_REGION, else the profile's region)"
    )
    group.add_argument(
        "--profile", default=default(""), help="named profile in ~/.aws/config (default: $AWS_PROFILE)"
    )
    group.add_argument(
        "--endpoint-url",
        default=default(""),
        metavar="URL",
        help="send every AWS call to URL, e.g. a local moto server (default: $AWS_ENDPOINT_URL)",
    )
    group.add_argument(
        "--output",
        choices=("table", "json"),
        default=default("table"),
        help="how the report is printed on stdout (default: table)",
    )
    group.add_argument(
        "--json",
        dest="output",
        action="store_const",
        const="json",
        default=default("table"),
        help="--output json",
    )
    group.add_argument(
        "--version", action="version", version=f"{PROG} {_version()}", help="print the version"
    )


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `vpcflow-partitioner COMMAND --help` for a command's options and an example.",
    )
    _global_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    def command(name: str, summary: str, description: str, examples: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=summary,
            description=description,
            epilog="examples:\n" + examples,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _global_options(sub, top=False)
        return sub

    def table_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--database", default="", help="Glue database (default: $GLUE_DATABASE)")
        p.add_argument("--table", default="", help="Glue table (default: $GLUE_TABLE)")
        p.add_argument(
            "--catalog-id", default="", help="the catalog's account id (default: $GLUE_CATALOG_ID)"
        )

    def range_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--since", type=_date, help="first date folder, YYYY-MM-DD (default: the first there is)"
        )
        p.add_argument(
            "--until", type=_date, help="last date folder, YYYY-MM-DD (default: the last there is)"
        )

    def dry_run(p: argparse.ArgumentParser, what: str) -> None:
        p.add_argument(
            "--dry-run",
            action="store_true",
            help=f"say what {what} would do and change nothing (exit 3 if anything)",
        )

    init = command(
        "init",
        "create the Glue table (and an Athena view) that matches what AWS delivers",
        "Create the database and table for the flow log's format and layout, or compare an existing "
        "table with it (exit 3 when it differs; --update applies the difference and rewrites every "
        "partition's columns).",
        "  vpcflow-partitioner init --database flowlogs --table vpc_flow_logs \\\n"
        "      --location s3://my-bucket/AWSLogs/ --multi-account --dry-run\n\n" + _VIEW_HELP,
    )
    table_options(init)
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
    init.add_argument(
        "--update",
        action="store_true",
        help="update a table that differs, and rewrite its partitions' columns",
    )
    init.add_argument("--yes", action="store_true", help="do not ask before --update rewrites partitions")
    init.add_argument(
        "--partition-index",
        action="store_true",
        help="also a Glue partition index on the date keys, and partition_filtering.enabled, so that "
        "Athena fetches one day's partitions instead of all (pays off past ~100,000 partitions)",
    )
    init.add_argument(
        "--print-ddl",
        action="store_true",
        help="print the Athena DDL (and a partition-projection variant); change nothing",
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
    dry_run(init, "init")
    init.set_defaults(run=_init)

    replay = command(
        "replay",
        "replay saved events (any envelope) or drain a queue such as the DLQ",
        "Feed saved events to the pipeline (JSON or NDJSON files, .gz, or - for standard input; "
        "any envelope the function accepts), or drain an SQS queue: a message is deleted only when "
        "done, anything else stays in the queue. Asks Glue, never the cache.",
        "  vpcflow-partitioner replay saved-events.ndjson.gz --dry-run\n"
        "  aws s3 cp s3://bucket/events.ndjson - | vpcflow-partitioner replay -\n"
        "  vpcflow-partitioner replay --queue-url https://sqs.eu-west-1.amazonaws.com/123456789012/"
        "vpcflow-partitioner-prod-dlq --save-unreadable dlq.ndjson",
    )
    table_options(replay)
    replay.add_argument(
        "files", nargs="*", metavar="FILE", help="JSON or NDJSON, gzip or not; - is standard input"
    )
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
    dry_run(replay, "replaying the files")
    replay.set_defaults(run=_replay)

    backfill = command(
        "backfill",
        "create the partitions of every date folder in the bucket",
        "Walk the table's Location folder by folder (a / delimiter, never every object) and create "
        "every partition that is missing. Asks Glue, never the cache.\n\n"
        "--distributed: list the table's region folders here (a few calls), send one work item per "
        "account, region and month to the stack's backfill queue, and let its on_backfill function "
        "walk them; then show the queue until it is empty (exit 1 if work items landed in the DLQ, "
        "with the command that replays them). An open --since/--until is closed by each region's own "
        "year folders (one list call per region).",
        "  vpcflow-partitioner backfill --since 2024-01-01 --dry-run   # plan: exit 3 if it would create any\n"
        "  vpcflow-partitioner backfill --since 2024-01-01             # apply\n"
        "  vpcflow-partitioner backfill --inventory s3://inventory-bucket/flow-logs/daily/2024-03-01T01-00Z/manifest.json\n"
        "  vpcflow-partitioner backfill --distributed --stack vpcflow-partitioner-prod --dry-run\n"
        "  vpcflow-partitioner backfill --distributed --stack vpcflow-partitioner-prod --since 2023-01-01\n"
        "  vpcflow-partitioner backfill --distributed --stack vpcflow-partitioner-prod --replay-dlq",
    )
    table_options(backfill)
    range_options(backfill)
    dry_run(backfill, "backfill")
    backfill.add_argument(
        "--inventory",
        default=None,
        metavar="S3_URI",
        help="read the objects from an S3 Inventory report (s3://.../manifest.json; CSV, ORC or Parquet) "
        "instead of listing the bucket: zero list calls; with --distributed, one work item per data file",
    )
    fleet = backfill.add_argument_group("distributed (on the function fleet)")
    fleet.add_argument(
        "--distributed",
        action="store_true",
        help="send one work item per table, account, region and month (or --slice year) to the backfill "
        "queue instead of walking here",
    )
    fleet.add_argument(
        "--stack",
        default="",
        help="read the queues (BackfillQueueUrl, BackfillDlqUrl) and the table from this stack's Outputs",
    )
    fleet.add_argument("--queue-url", default="", help="the backfill queue (default: the stack's)")
    fleet.add_argument(
        "--slice",
        choices=sorted(SLICES),
        default="month",
        help="one work item per account, region and month (default), or year: a twelfth of the items "
        "and fuller Glue writes, for an organisation's years (docs/SCALE.md)",
    )
    fleet.add_argument(
        "--dlq-url",
        default="",
        help="its dead-letter queue (default: the stack's, else the queue's redrive target)",
    )
    fleet.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show the queue until it is empty, then check the DLQ (default: on a terminal; Ctrl-C "
        "stops the watching, not the backfill)",
    )
    fleet.add_argument(
        "--replay-dlq",
        action="store_true",
        help="move the work items in the DLQ back to the backfill queue (resume a backfill)",
    )
    backfill.set_defaults(run=_backfill)

    audit = command(
        "audit",
        "compare the folders in S3 with the partitions in Glue; report every drift",
        "Report every drift between the bucket and the catalog: missing partitions, orphaned ones, "
        "wrong Locations, StorageDescriptor drift, folder collisions, folders the table cannot "
        "represent, unreachable and shared Locations. Exit 3 while any remains.",
        "  vpcflow-partitioner audit --since 2024-01-01\n"
        "  vpcflow-partitioner audit --fix --prune --dry-run\n"
        "  vpcflow-partitioner audit --fix --prune --yes --cache-table vpcflow-partitioner-prod-cache",
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
    dry_run(audit, "--fix and --prune")
    audit.set_defaults(run=_audit)

    doctor = command(
        "doctor",
        "check a live deployment end to end; say how to fix each problem",
        "Check the table, the bucket's notification, the queue's policy and encryption, the event "
        "source mapping, the function, the DLQ, Lake Formation, and that every folder written in the "
        f"last {checkup.FRESH_HOURS} hours has its partition and the table's columns. Reads only. One line per "
        "check: ok, warn, fail (with the fix) or error (could not check). Exit 3 when a check failed, "
        "1 when none failed but one could not check, 0 otherwise (warnings allowed).",
        "  vpcflow-partitioner doctor --stack vpcflow-partitioner-prod --region eu-west-1\n"
        "  vpcflow-partitioner doctor --database flowlogs --table vpc_flow_logs \\\n"
        "      --queue-url https://sqs.eu-west-1.amazonaws.com/123456789012/vpcflow-partitioner-prod-events\n"
        "  vpcflow-partitioner doctor --stack vpcflow-partitioner-prod --output json | jq '.[] | select(.state != \"ok\")'",
    )
    table_options(doctor)
    doctor.add_argument(
        "--stack",
        default="",
        help="read everything below from this CloudFormation stack's Outputs (flags win)",
    )
    doctor.add_argument("--bucket", default="", help="the flow-log bucket (default: the table's)")
    doctor.add_argument(
        "--prefix",
        default="",
        help="the key prefix the table must lie under and the notification filters on (default: the table's)",
    )
    doctor.add_argument(
        "--queue-url", default="", help="the events queue: sqs mode, or with --eventbridge the rule's target"
    )
    doctor.add_argument(
        "--eventbridge",
        action="store_true",
        help="eventbridge mode: S3 -> EventBridge rule -> the queue (default mode with --queue-url: sqs)",
    )
    doctor.add_argument(
        "--rule", default="", help="eventbridge mode: the rule (default: the one targeting the queue)"
    )
    doctor.add_argument(
        "--function",
        default="",
        help="the on_object_created function (default: the event source mapping's; alone: s3 mode)",
    )
    doctor.add_argument(
        "--dlq-url", default="", help="the dead-letter queue (default: the queue's redrive target)"
    )
    doctor.set_defaults(run=_doctor)

    demo = command(
        "demo",
        "the whole flow on a local AWS (moto); no account needed",
        "Start a moto server on 127.0.0.1, deliver realistic flow logs, let S3 notify SQS and the "
        "function, then replay, audit and query: what the README's first command shows.",
        "  vpcflow-partitioner demo --days 3",
    )
    demo.add_argument("--days", type=_positive, default=3, help="days of flow logs to deliver (default: 3)")
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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _settings(args: argparse.Namespace, **overrides: str) -> Settings:
    """Flags first, then the environment (the same variables the function reads)."""
    if args.endpoint_url and not args.endpoint_url.startswith(("http://", "https://")):
        raise UsageError(f"--endpoint-url {args.endpoint_url!r} is not an http:// or https:// URL")
    return Settings.from_env(
        None,
        GLUE_DATABASE=args.database,
        GLUE_TABLE=args.table,
        GLUE_CATALOG_ID=args.catalog_id,
        AWS_REGION=args.region,
        AWS_ENDPOINT_URL=args.endpoint_url,
        AWS_PROFILE=args.profile,
        **overrides,
    )


def _stack_settings(args: argparse.Namespace, found: dict[str, str], where: Connection) -> Settings:
    """Settings for a command that reads a stack: flags first, then the stack's Outputs (its
    GlueTables stand for its tables: --table or --database picks among them, both name a
    table outright), then the environment."""
    stack_tables = found.get("tables", "") if not (args.database and args.table) else ""
    return Settings.from_env(
        None,
        GLUE_DATABASE=args.database or ("" if stack_tables else found.get("database", "")),
        GLUE_TABLE=args.table or ("" if stack_tables else found.get("table", "")),
        GLUE_TABLES=stack_tables,
        GLUE_CATALOG_ID=args.catalog_id or found.get("catalog_id", ""),
        AWS_REGION=where.region,
        AWS_ENDPOINT_URL=where.endpoint_url,
        AWS_PROFILE=where.profile,
    )


def _client(settings: Settings, service: str) -> Any:
    return aws.client(service, settings.endpoint_url, settings.region, settings.profile)


def _fleet(settings: Settings, check_spelling: bool = True) -> Fleet:
    """A Partitioner per configured table: GLUE_TABLES, or the one table --table names."""
    cache = _client(settings, "dynamodb") if settings.cache_table else None
    return Fleet.build(settings, _client(settings, "glue"), cache, check_spelling=check_spelling)


def _json(args: argparse.Namespace) -> bool:
    return bool(args.output == "json")


def _confirmed(args: argparse.Namespace, err: Console, question: str, what: str) -> bool:
    """Ask on a terminal; off a terminal, only --yes says yes (a usage error otherwise)."""
    if args.yes:
        return True
    if not (sys.stdin.isatty() and err.is_terminal):
        raise UsageError(f"{what}: run it on a terminal to confirm, or add --yes")
    return err.input(question, markup=False).strip().lower() in ("y", "yes")


# ---------------------------------------------------------------- init


def _init(args: argparse.Namespace, out: Console, err: Console) -> int:
    settings = _settings(args)
    if len(settings.table_names) > 1:
        # One table a run: its Location, format and layout are this run's flags.
        raise UsageError(
            f"init creates one table; GLUE_TABLES names {len(settings.table_names)}: pick one with --table "
            "(or --database and --table)"
        )
    file_format = args.file_format or TEXT
    if args.from_object:
        fields, detected = read_object_fields(_client(settings, "s3"), args.from_object)
        file_format = args.file_format or detected
    else:
        fields = parse_format(args.format or DEFAULT_FORMAT)
    layout = HIVE if args.hive else MULTI_ACCOUNT if args.multi_account else CLASSIC
    location = args.location if args.location.endswith("/") else args.location + "/"
    spec = TableSpec(settings.database, settings.table, location, fields, file_format, layout, args.hourly)
    if args.print_ddl and _json(args):
        ddl = {"ddl": spec.athena_ddl(), "projection_ddl": spec.projection_ddl()}
        if args.view_timezone:
            ddl["view_ddl"] = view_sql(spec, args.view_timezone)[1]
        if args.partition_index:
            ddl["partition_index_ddl"] = _index_ddl(spec, settings.catalog_id)
        out.print(json.dumps(ddl, indent=2), markup=False)
        return OK
    if args.print_ddl:
        out.print(spec.athena_ddl(), markup=False)
        out.print(
            "\n-- Athena-only alternative: partition projection, no catalog partitions needed", markup=False
        )
        out.print(spec.projection_ddl(), markup=False)
        if args.view_timezone:
            out.print(f"\n{view_sql(spec, args.view_timezone)[1]};", markup=False)
        if args.partition_index:
            out.print(f"\n{_index_ddl(spec, settings.catalog_id)}", markup=False)
        return OK
    glue = _client(settings, "glue")
    plan = plan_init(glue, spec, settings.catalog_id, partition_index=args.partition_index)
    _warn_if_no_bucket(_client(settings, "s3"), location, err)
    keys_differ = [d for d in plan.differences if d.startswith("partition keys")]
    if args.update and keys_differ:
        raise FormatError(
            f"{spec.database}.{spec.name}: partition keys cannot change in place ({keys_differ[0]}); "
            "create a table under another name"
        )
    view, sql = view_sql(spec, args.view_timezone) if args.view_timezone else ("", "")
    apply = not args.dry_run and (plan.action == "create" or (plan.action == "update" and args.update))
    if apply and plan.action == "update" and plan.partitions:
        question = f"update {spec.database}.{spec.name} and rewrite {plan.partitions} partitions? [y/N] "
        if not _confirmed(args, err, question, "--update rewrites every partition's columns"):
            err.print("nothing changed")
            apply = False
    rewritten = apply_init(glue, spec, plan, settings.catalog_id) if apply else 0
    # The index is additive (nothing rewritten): it needs no --update, only no --dry-run.
    indexed = apply_index(glue, spec, plan, settings.catalog_id) if not args.dry_run else False
    index_action = _index_action(plan, indexed or (apply and not plan.table_exists))
    if view and not args.dry_run and (apply or plan.action == "none"):
        create_view(_client(settings, "athena"), sql, args.workgroup, args.athena_output)
    database = "exists" if plan.database_exists else ("created" if apply else "would create")
    action = {
        "create": "created" if apply else "would create",
        "update": "updated" if apply else ("would update" if args.update else "differs"),
        "none": "unchanged",
    }[plan.action]
    summary = {
        "database": spec.database,
        "database_action": database,
        "table": f"{spec.database}.{spec.name}",
        "action": action,
        "differences": plan.differences,
        "partitions_updated": rewritten,
        "partitions_would_update": plan.partitions if action == "would update" else 0,
        "format": format_string(fields),
        "file_format": file_format,
        "layout": layout,
        "view": view,
        "partition_index": {"name": INDEX_NAME, "keys": plan.index_keys, "action": index_action}
        if plan.index
        else None,
    }
    if _json(args):
        out.print(json.dumps(summary, indent=2), markup=False)
    else:
        out.print(f"database [bold]{escape(spec.database)}[/]: {database}")
        out.print(f"table [bold]{escape(f'{spec.database}.{spec.name}')}[/]: {action}")
        for difference in plan.differences:
            out.print(f"  - {escape(difference)}")
        if action == "differs" and keys_differ:
            out.print(
                "  the table's definition is unchanged; partition keys cannot change in place: create a "
                "table under another name"
            )
        elif action == "differs":
            out.print("  the table's definition is unchanged; run again with --update to apply it")
        if action == "would update":
            out.print(f"  would rewrite the columns of {plan.partitions} partitions")
        if rewritten:
            out.print(f"  {rewritten} existing partitions rewritten to the new columns")
        if plan.index:
            keys = escape(", ".join(plan.index_keys))
            out.print(f"partition index [bold]{INDEX_NAME}[/] ({keys}) and {FILTERING}: {index_action}")
        if view:
            done = "created" if not args.dry_run and (apply or plan.action == "none") else "would create"
            out.print(f"view [bold]{escape(spec.database)}.{escape(view)}[/]: {done}")
            out.print(local_day_query(spec, args.view_timezone, date(2022, 8, 29)), markup=False)
    changes = action in ("would create", "would update", "differs") or database == "would create"
    changes = changes or index_action.startswith(("would", "present; would"))
    return DRIFT if changes or (args.dry_run and view) else OK


def _index_ddl(spec: TableSpec, catalog_id: str = "") -> str:
    """The partition index (a Glue API call: Athena DDL has none) and the table property."""
    keys = date_index_keys(spec.table_input() | {"DatabaseName": spec.database})
    return (
        "-- A Glue partition index on the date keys, then partition filtering: Athena then asks Glue\n"
        "-- for the partitions of the days a query names instead of loading all of them. It pays off\n"
        "-- past about 100,000 partitions (an organisation's few hundred account/region pairs over a\n"
        "-- year). The index serves =, <, >, BETWEEN on the date keys joined by AND; LIKE, IN, OR\n"
        '-- and NOT are filtered after it (Glue developer guide, "Creating partition indexes").\n'
        f"-- aws glue create-partition-index --database-name {spec.database} --table-name {spec.name} "
        f"--partition-index 'Keys={','.join(keys)},IndexName={INDEX_NAME}'"
        f"{f' --catalog-id {catalog_id}' if catalog_id else ''}\n"
        f"ALTER TABLE `{spec.database}`.`{spec.name}` SET TBLPROPERTIES ('{FILTERING}'='true');"
    )


def _index_action(plan: InitPlan, done: bool) -> str:
    """What happened to the index and the table property ("" when not asked)."""
    if plan.index == "create":
        return "created" if done else "would create"
    if plan.index == "present" and plan.filtering_to_set:
        return "present; filtering switched on" if done else "present; would switch filtering on"
    return "present" if plan.index else ""


def _warn_if_no_bucket(s3: Any, location: str, err: Console) -> None:
    """A table over a bucket that does not exist (yet) is allowed, and worth one line."""
    bucket = location.split("/")[2] if location.startswith("s3://") else ""
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchBucket", "NotFound"):
            err.print(
                f"[yellow]warning:[/] bucket {escape(bucket)} does not exist (yet): nothing is partitioned until flow logs arrive there"
            )
    except BotoCoreError:
        pass  # unreachable here: the table calls will say so


# ---------------------------------------------------------------- replay / backfill


@dataclass
class _Totals:
    events: int = 0
    messages: int = 0
    objects: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    partitions: dict[tuple[str, PartitionSpec], str] = field(default_factory=dict)  # (table, spec)
    failures: list[str] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)

    def add(self, report: Report) -> None:
        self.counts.update(report.counts)
        self.ignored.update(report.ignored)
        for table, part in report.tables.items():  # every run's report says its tables
            for spec, outcome in part.outcomes.items():
                # Across runs (a replay goes in chunks) a partition keeps its best outcome: created
                # by the first chunk stays "created" when the next one finds it present.
                known = self.partitions.get((table, spec))
                if known is None or _RANK[_word(outcome)] < _RANK[_word(known)]:
                    self.partitions[(table, spec)] = outcome
        self.failures += [f"{r.id}: {r.detail}" for r in report.failed]

    def summary(self) -> dict[str, Any]:
        outcomes = Counter(_word(o) for o in self.partitions.values())
        return {
            "partitions_created": outcomes["created"],
            "partitions_already_present": outcomes["already present"],
            "partitions_would_create": outcomes["would create"],
            "partitions_failed": outcomes["failed"],
            "collisions": outcomes["collision"],
            "ignored": self.counts["ObjectsIgnored"],
            "unpartitionable": self.counts["ObjectsUnpartitionable"],
            "malformed": self.counts["RecordsMalformed"],
            "failed": len(self.failures),
        }

    def partition_list(self) -> list[dict[str, Any]]:
        """Each partition's outcome; with more than one table, which table it is in."""
        many = len({table for table, _ in self.partitions}) > 1
        return [
            ({"table": table} if many else {})
            | {
                "values": list(spec.values),
                "location": spec.location,
                "outcome": _word(outcome),
                "detail": outcome,
            }
            for (table, spec), outcome in sorted(
                self.partitions.items(), key=lambda item: (item[0][0], item[0][1].values, item[0][1].location)
            )
        ]


_RANK = {"created": 0, "already present": 1, "would create": 2, "collision": 3, "failed": 4}


def _word(outcome: str) -> str:
    """created, already present, would create, collision or failed."""
    if outcome == CREATED:
        return "created"
    if outcome in (EXISTS, KNOWN, CACHED):
        return "already present"
    if outcome == WOULD_CREATE:
        return "would create"
    return "collision" if is_collision(outcome) else "failed"


def _replay(args: argparse.Namespace, out: Console, err: Console) -> int:
    if bool(args.files) == bool(args.queue_url):
        raise UsageError(
            "give event files (or - for standard input) or --queue-url, not both and not neither"
        )
    if args.save_unreadable and not args.queue_url:
        raise UsageError("--save-unreadable needs --queue-url (unreadable lines in files are already saved)")
    settings = _settings(args)
    fleet = _fleet(settings)
    if args.queue_url:
        return _drain(args, out, settings, fleet)
    sources = [EventFile(path, args.stdin) for path in args.files]  # every file readable, or exit 2 now
    for partitioner in fleet.partitioners:
        partitioner.scheme()  # a missing table fails before anything is read
    totals = _Totals()
    empty: list[str] = []
    problem: UsageError | None = None
    with contextlib.ExitStack() as stack, _progress(err, bytes_=True) as progress:
        for source in sources:
            stack.enter_context(source)
        try:
            for source in sources:
                task = progress.add_task(escape(source.name), total=source.size)
                events = held = 0
                for chunk in _chunks(_messages(source, totals), _REPLAY_CHUNK):
                    good = sum(1 for m in chunk if not m.malformed)
                    if not events and not good:
                        # Nothing but lines that are not events so far (a file that holds no event
                        # at all is one error line below, not a warning a line): count them.
                        held += len(chunk)
                        continue
                    events += good
                    # Recovery asks Glue, never the cache.
                    totals.add(fleet.run(chunk, now=time.time(), use_cache=False, dry_run=args.dry_run))
                    progress.update(task, completed=source.position())
                progress.update(task, completed=source.position())
                if not events:
                    empty.append(source.name)
                elif held:
                    totals.counts["RecordsMalformed"] += held
                    err.print(
                        f"[yellow]warning:[/] the first {held} lines of {escape(source.name)} are not events"
                    )
        except UsageError as exc:  # a file unreadable halfway: report what was done, then say why
            problem = exc
    if problem is None and empty:
        problem = UsageError(
            f"{', '.join(empty)}: no S3 event in it (JSON or NDJSON of any envelope the function accepts)"
        )
    if problem is not None and not totals.partitions and not totals.failures:
        raise problem  # nothing happened: the error alone
    code = _finish(
        args,
        out,
        totals,
        {"events": totals.events, "messages": totals.messages, "objects": totals.objects},
        "replay",
    )
    if problem is not None:
        raise problem
    return code


def _messages(source: EventFile, totals: _Totals) -> Iterator[Message]:
    for label, event in source.events():
        totals.events += event is not NOT_JSON  # documents; a line that is not JSON is malformed
        for message in events_to_messages(label, event):
            totals.messages += 1
            totals.objects += len(message.objects)
            yield message


def _chunks(messages: Iterator[Message], size: int) -> Iterator[list[Message]]:
    chunk: list[Message] = []
    for message in messages:
        chunk.append(message)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _drain(args: argparse.Namespace, out: Console, settings: Settings, fleet: Fleet) -> int:
    if args.dry_run:
        raise UsageError(
            "--dry-run cannot drain a queue (receiving hides messages); replay saved files instead"
        )
    totals = _Totals()
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
        for partitioner in fleet.partitioners:
            partitioner.scheme()
        unresolved: list[str] = []

        def process(messages: list[Message]) -> dict[str, str]:
            totals.messages += len(messages)
            totals.objects += sum(len(m.objects) for m in messages)
            report = fleet.run(messages, now=time.time(), use_cache=False)
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
        "events": drained.received,
        "messages": totals.messages,
        "objects": totals.objects,
        "received": drained.received,
        "done": drained.done,
        "kept": drained.kept,
        "failed": drained.failed,  # kept; a later drain retries them
        "unresolved": drained.unresolved,  # kept; an operator has to look
        "unreadable_saved": drained.unreadable if args.save_unreadable else 0,
    }
    if _json(args):
        # The names before done/kept, for scripts that read them.
        extra |= {"deleted": drained.done, "kept_in_queue": drained.kept, "unresolved_messages": unresolved}
    code = _finish(args, out, totals, extra, "replay")
    if not _json(args):
        for line in unresolved[:20]:
            out.print(f"[yellow]kept[/] {escape(line)}")
        if args.save_unreadable and drained.unreadable:
            out.print(f"{drained.unreadable} unreadable messages appended to {escape(args.save_unreadable)}")
    # Anything kept means the queue still needs attention: a retry (1) or an operator (3).
    if code == OK and drained.failed:
        return RUNTIME_ERROR
    return DRIFT if code == OK and drained.unresolved else code


def _backfill(args: argparse.Namespace, out: Console, err: Console) -> int:
    if args.since and args.until and args.since > args.until:
        raise UsageError("--since is after --until")
    if args.distributed:
        return _distributed(args, out, err)
    for flag in ("stack", "queue_url", "dlq_url", "replay_dlq"):
        if getattr(args, flag):
            raise UsageError(f"--{flag.replace('_', '-')} needs --distributed")
    if args.wait is not None:
        raise UsageError("--wait and --no-wait need --distributed")
    if args.slice != "month":
        raise UsageError("--slice needs --distributed")
    settings = _settings(args)
    s3 = _client(settings, "s3")
    if args.inventory is not None:
        return _backfill_inventory(args, out, err, settings, s3)
    totals = _Totals()
    extra: Counter[str] = Counter()
    # Each table walks its own Location (twins over one Location walk it twice: each probes
    # its own file format) and creates through its own Partitioner.
    for partitioner in _fleet(settings).partitioners:
        walk = FolderWalk(s3, partitioner.scheme(), DateRange(args.since, args.until))
        messages = _collect(walk, err)
        totals.add(partitioner.run(messages, now=time.time(), use_cache=False, dry_run=args.dry_run))
        extra.update(
            folders_walked=walk.folders_walked,
            folders_with_flow_logs=len(messages),
            objects_probed=walk.objects_probed,
            list_calls=walk.list_calls,
            glue_create_calls=partitioner.catalog.create_calls,
        )
    return _finish(args, out, totals, dict(extra), "backfill")


# How often --wait reads the queue's counts, and how many readings in a row must show it empty:
# SQS's approximate counts lag ("up to a minute", GetQueueAttributes), so one empty reading
# right after a send, or between two receives of a poller, says little.
_POLL_SECONDS = 10.0
_SETTLE_POLLS = 3


def _pause(seconds: float) -> None:
    time.sleep(seconds)


def _distributed(args: argparse.Namespace, out: Console, err: Console) -> int:
    if args.slice != "month" and (args.inventory is not None or args.replay_dlq):
        raise UsageError(
            "--slice cuts a walk's dates: an inventory is cut by its data files, a replay not at all"
        )
    if args.replay_dlq and (args.dry_run or args.since or args.until or args.inventory is not None):
        raise UsageError(
            "--replay-dlq moves the DLQ's work items as they are: no --dry-run, --since, --until or --inventory"
        )
    if args.endpoint_url and not args.endpoint_url.startswith(("http://", "https://")):
        raise UsageError(f"--endpoint-url {args.endpoint_url!r} is not an http:// or https:// URL")
    where = Connection.from_env(
        None, AWS_REGION=args.region, AWS_ENDPOINT_URL=args.endpoint_url, AWS_PROFILE=args.profile
    )

    def client(service: str) -> Any:
        return aws.client(service, where.endpoint_url, where.region, where.profile)

    queue_url, dlq_url, found = args.queue_url, args.dlq_url, {}
    outputs: dict[str, str] | None = None
    if args.stack:
        outputs = checkup.read_stack(client("cloudformation"), args.stack).outputs
        found = checkup.target_from_outputs(outputs)
        queue_url = queue_url or outputs.get("BackfillQueueUrl", "")
        dlq_url = dlq_url or outputs.get("BackfillDlqUrl", "")
        if not queue_url:
            raise ConfigurationError(
                f"stack {args.stack} has no BackfillQueueUrl output: deploy the version with the backfill "
                "queue, or pass --queue-url"
            )
    if not queue_url:
        raise UsageError("--distributed needs the backfill queue: --stack NAME or --queue-url URL")
    sqs = client("sqs")
    report: dict[str, Any] = {"queue_url": queue_url}
    if args.replay_dlq:
        dlq_url = dlq_url or backfill.dead_letter_queue(sqs, queue_url)
        if not dlq_url:
            raise UsageError(f"{queue_url} has no redrive policy: name the DLQ with --dlq-url")
        total = backfill.move_messages(sqs, dlq_url, queue_url)
        report |= {"dlq_url": dlq_url, "replayed": total}
        if not _json(args):
            out.print(f"moved {total} work {_plural(total, 'item')} from {escape(dlq_url)} back to the queue")
    else:
        settings = _stack_settings(args, found, where)
        items: list[backfill.WorkItem] = []
        list_calls = 0
        fleet = _fleet(settings)
        if args.inventory is not None:
            manifest = _manifest(_client(settings, "s3"), args.inventory, fleet)
            readable = (outputs or {}).get("InventoryBucket", "")
            elsewhere = sorted({f.bucket for f in manifest.files} - {readable})
            if outputs is not None and elsewhere:
                # The function may read only the stack's inventoryBucket: every item would fail.
                raise UsageError(
                    f"{args.inventory} keeps its data files in {elsewhere[0]}, and stack {args.stack}'s "
                    f"backfill function may read "
                    + (f"only {readable}" if readable else "no inventory bucket")
                    + f": deploy it with --param=inventoryBucket={elsewhere[0]}"
                )
            if manifest.format != "CSV":
                # The function's zip has no pyarrow (tens of MB): it reads CSV reports only.
                raise UsageError(
                    f"{args.inventory} is a {manifest.format} report: the backfill function reads CSV "
                    "reports only; run without --distributed, or configure the inventory as CSV"
                )
            for partitioner in fleet.partitioners:  # one item per table and data file
                items += backfill.inventory_items(
                    partitioner.name, manifest, DateRange(args.since, args.until)
                )
        for partitioner in fleet.partitioners if args.inventory is None else ():
            # One item per table, region and month.
            planned, walk = _plan_slices(partitioner, settings, args, err)
            items += planned
            list_calls += walk.list_calls
        report |= {
            "tables": [str(n) for n in settings.table_names],
            "region_folders": len({(item.table, item.folder) for item in items if item.inventory is None}),
            "list_calls": list_calls,
            "work_items": len(items),
        }
        if args.dry_run:
            return _print_plan(args, out, items, report)
        dlq_url = dlq_url or backfill.dead_letter_queue(sqs, queue_url)
        total = backfill.send(sqs, queue_url, items)
        report |= {"dlq_url": dlq_url, "sent": total}
        if not _json(args):
            out.print(
                f"sent {total} work {_plural(total, 'item')} ({report['region_folders']} region folders, "
                f"{list_calls} list calls) to {escape(queue_url)}"
            )
    wait = args.wait if args.wait is not None else out.is_terminal
    report["waited"] = bool(wait)
    code = OK
    if wait:
        final = _watch(sqs, queue_url, dlq_url, total, err)
        report |= {"waiting": final.waiting, "in_flight": final.in_flight, "dead_letters": final.dead}
        if final.dead:
            report["replay_command"] = _replay_command(args, queue_url, dlq_url)
            code = RUNTIME_ERROR
    if _json(args):
        out.print(json.dumps(report, indent=2), markup=False)
    elif wait:
        dead = report["dead_letters"]
        if dead is None:
            out.print("the backfill queue is empty; no DLQ known to check (--dlq-url)")
        elif dead:
            out.print(
                f"[red]{dead} work {_plural(dead, 'item')} in the DLQ[/] {escape(dlq_url)}; the function's "
                f"logs say why. Replay them with:\n  {escape(report['replay_command'])}"
            )
        else:
            out.print("the backfill queue is empty and its DLQ too: done")
    else:
        out.print("not waiting: the function works through the queue; run again with --wait to watch it")
    return code


def _plan_slices(
    partitioner: Partitioner, settings: Settings, args: argparse.Namespace, err: Console
) -> tuple[list[backfill.WorkItem], FolderWalk]:
    """The work items: the table's region folders (and their years, for an open range) x months."""
    scheme = partitioner.scheme()
    table = partitioner.name
    backfill.check_slicable(scheme.deepest_level, table)
    dates = DateRange(args.since, args.until)
    walk = FolderWalk(_client(settings, "s3"), scheme, dates)
    with (
        err.status("listing region folders", spinner="dots") if err.is_terminal else contextlib.nullcontext()
    ):
        regions = walk.region_folders()
        # Each region's year folders (one listing each, concurrently: each waits on the network)
        # close an open range and leave out the years a region has no folder for.
        with ThreadPoolExecutor(16, thread_name_prefix="years") as pool:
            years = dict(
                zip(
                    (r.folder for r in regions),
                    pool.map(walk.years, (r.folder for r in regions)),
                    strict=True,
                )
            )
    return backfill.plan(table, scheme.bucket, regions, dates, years, args.slice), walk


def _print_plan(
    args: argparse.Namespace, out: Console, items: list[backfill.WorkItem], report: dict[str, Any]
) -> int:
    report["dry_run"] = True
    if _json(args):
        report["items"] = [json.loads(item.to_body()) for item in items]
        out.print(json.dumps(report, indent=2), markup=False)
    else:
        if items and len(items) <= 50:
            table = Table(title="backfill: work items it would send")
            for column in ("table", "folder or inventory file", "since", "until"):
                table.add_column(column, overflow="fold")
            for item in items:
                where = (
                    f"s3://{item.inventory.bucket}/{item.inventory.key}"
                    if item.inventory is not None
                    else f"s3://{item.bucket}/{item.folder}"
                )
                table.add_row(
                    escape(item.table), escape(where), str(item.since or "-"), str(item.until or "-")
                )
            out.print(table)
        cut = f"{report['region_folders']} region folders" if not args.inventory else "inventory data files"
        out.print(
            f"plan: would send {len(items)} work {_plural(len(items), 'item')} "
            f"({cut}, {report['list_calls']} list calls)"
            if items
            else f"plan: nothing to do ({report['list_calls']} list calls)"
        )
    return DRIFT if items else OK


def _watch(sqs: Any, queue_url: str, dlq_url: str, total: int, err: Console) -> backfill.QueueProgress:
    """Read the queue until it has been empty, nothing in flight, _SETTLE_POLLS readings in a row."""
    settled = 0
    with _progress(err) as bar:
        task = bar.add_task("backfill", total=total or None)
        while True:
            now = backfill.progress(sqs, queue_url, dlq_url)
            left = now.waiting + now.in_flight
            bar.update(
                task,
                completed=max(0, total - left),
                description=f"backfill: {now.waiting} waiting, {now.in_flight} in flight, {now.dead or 0} in the DLQ",
            )
            settled = settled + 1 if now.drained else 0
            if settled >= _SETTLE_POLLS:
                return now
            _pause(_POLL_SECONDS)


def _replay_command(args: argparse.Namespace, queue_url: str, dlq_url: str) -> str:
    """The command that moves this backfill's DLQ back to its queue, with the same connection."""
    words = [PROG, "backfill", "--distributed", "--replay-dlq"]
    words += ["--stack", args.stack] if args.stack else ["--queue-url", queue_url, "--dlq-url", dlq_url]
    for flag in ("region", "profile", "endpoint_url"):
        if getattr(args, flag):
            words += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
    return shlex.join(words)


def _manifest(s3: Any, uri: str, fleet: Fleet) -> Manifest:
    """The report's manifest, refused in one line when it lists another bucket than the tables'."""
    if not re.match(r"^s3://[^/]+/.+", uri):
        raise UsageError(f"--inventory {uri!r} is not s3://bucket/path/manifest.json")
    manifest = read_manifest(s3, uri)
    for partitioner in fleet.partitioners:
        bucket = partitioner.scheme().bucket
        if manifest.source_bucket != bucket:
            raise UsageError(
                f"{uri} lists bucket {manifest.source_bucket}, table {partitioner.name} is in {bucket}"
            )
    return manifest


def _backfill_inventory(
    args: argparse.Namespace, out: Console, err: Console, settings: Settings, s3: Any
) -> int:
    """backfill --inventory: the report's objects instead of a walk; the same pipeline."""
    fleet = _fleet(settings)
    manifest = _manifest(s3, args.inventory, fleet)
    read = InventoryCounts()
    totals = _Totals()
    folders = 0
    with err.status("reading the inventory", spinner="dots") if err.is_terminal else contextlib.nullcontext():
        # The rows are streamed (a report lists millions of objects); a folder's least key of
        # each format is kept, all that any table's messages need: the report is read once.
        objects = least_per_folder(inventory_objects(s3, manifest, read))
    for partitioner in fleet.partitioners:
        messages = list(inventory_messages(objects, partitioner.scheme(), DateRange(args.since, args.until)))
        folders += len(messages)
        totals.add(partitioner.run(messages, now=time.time(), use_cache=False, dry_run=args.dry_run))
    if manifest.created is not None:
        # A report is a snapshot: what was written since is not in it.
        made = datetime.fromtimestamp(manifest.created, tz=UTC)
        err.print(
            f"[yellow]note:[/] the report was made {made:%Y-%m-%d %H:%M} UTC: objects written since are "
            f"not in it; `backfill --since {made:%Y-%m-%d}` covers them"
        )
    extra = {
        "inventory_created": made.isoformat() if manifest.created is not None else None,
        "inventory_files": read.data_files,
        "inventory_rows": read.rows,
        "inventory_bytes": read.bytes,
        "versions_skipped": read.versions_skipped,
        "folders_with_flow_logs": folders,
        "list_calls": 0,
        "glue_create_calls": sum(p.catalog.create_calls for p in fleet.partitioners),
    }
    return _finish(args, out, totals, extra, "backfill")


def _finish(args: argparse.Namespace, out: Console, totals: _Totals, extra: dict[str, Any], what: str) -> int:
    summary = extra | totals.summary()
    dry = bool(getattr(args, "dry_run", False))
    if _json(args):
        document = summary | {
            "dry_run": dry,
            "partitions": totals.partition_list(),
            "failures": totals.failures,
        }
        out.print(json.dumps(document, indent=2), markup=False)
    else:
        changed = [p for p in totals.partition_list() if p["outcome"] in ("created", "would create")]
        if changed and len(changed) <= 50:
            table = Table(title=f"{what}: partitions {'it would create' if dry else 'created'}")
            table.add_column("values", overflow="fold")
            table.add_column("location", overflow="fold")
            for partition in changed:
                table.add_row(escape("/".join(partition["values"])), escape(str(partition["location"])))
            out.print(table)
        summary_table = Table(title=f"{what} summary", show_header=False)
        for key, value in summary.items():
            summary_table.add_row(key.replace("_", " "), str(value))
        out.print(summary_table)
        for failure in totals.failures[:20]:
            out.print(f"[red]failed[/] {escape(failure)}")
        for reason, count in totals.ignored.most_common(10):
            out.print(f"[yellow]ignored[/] {count} {_plural(count, 'object')}: {escape(reason)}")
        if dry:
            would = summary["partitions_would_create"]
            out.print(
                f"plan: would create {would} {_plural(would, 'partition')}"
                if would
                else "plan: nothing to do"
            )
    if totals.failures:
        return RUNTIME_ERROR
    if summary["collisions"] or summary["unpartitionable"]:
        return DRIFT  # objects no partition can cover: `audit` lists them for an operator
    return DRIFT if dry and summary["partitions_would_create"] else OK


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"


# ---------------------------------------------------------------- audit


def _audit(args: argparse.Namespace, out: Console, err: Console) -> int:
    destructive = args.prune and not args.dry_run
    if destructive and not args.yes and not (sys.stdin.isatty() and err.is_terminal):
        raise UsageError("--prune deletes partitions: run it on a terminal to confirm, or add --yes")
    if args.since and args.until and args.since > args.until:
        raise UsageError("--since is after --until")
    settings = _settings(args, CACHE_TABLE=args.cache_table)
    if args.no_cache:
        settings = dataclasses.replace(settings, cache_table="")
    elif destructive and not settings.cache_table:
        # A pruned partition left "present" in the cache is acked for CACHE_TTL_DAYS.
        raise UsageError(
            "--prune must also delete the function's cache entries: set CACHE_TABLE or --cache-table "
            "NAME, or pass --no-cache if the deployment has no cache"
        )
    fleet = _fleet(settings, check_spelling=False)  # audit lists them, as shared Locations
    many = len(fleet.partitioners) > 1
    reports: dict[str, dict[str, Any]] = {}
    codes = []
    for partitioner in fleet.partitioners:
        if many and not _json(args):
            out.rule(f"audit {escape(partitioner.name)}")
        report, code = _audit_table(args, out, err, settings, partitioner, destructive)
        reports[partitioner.name] = report
        codes.append(code)
    if _json(args):
        document: dict[str, Any] = {"tables": reports} if many else reports[fleet.partitioners[0].name]
        out.print(json.dumps(document, indent=2), markup=False)
    return RUNTIME_ERROR if RUNTIME_ERROR in codes else max(codes)


def _audit_table(
    args: argparse.Namespace,
    out: Console,
    err: Console,
    settings: Settings,
    partitioner: Partitioner,
    destructive: bool,
) -> tuple[dict[str, Any], int]:
    """Audit one table: its report, and its exit code."""
    audit = Audit(partitioner, _client(settings, "s3"), DateRange(args.since, args.until))
    findings = audit.find(lambda walk: _collect(walk, err))
    repairs = Repairs()
    if args.fix and not args.dry_run:
        audit.fix(findings, time.time(), repairs)
    if args.prune and findings.orphaned:
        audit.refuse_if_blind(findings)
        if destructive and not args.yes:
            _show_orphans(findings, err)
        if destructive and _confirmed(args, err, "delete them? [y/N] ", "--prune deletes partitions"):
            audit.prune(findings, time.time(), repairs)
        elif destructive:
            err.print("nothing pruned")
    report = audit_summary(findings, repairs) | {"dry_run": bool(args.dry_run)}
    if args.prune and args.dry_run:
        report["would_prune"] = report["orphaned"]
    if args.fix and args.dry_run:
        report["would_create"] = report["missing"]
        report["would_repoint"] = report["wrong_location"]
        report["would_rewrite"] = report["descriptor_drift"]
    if not _json(args):
        _print_audit(out, audit, findings, repairs, report, args)
    if repairs.failed:
        return report, RUNTIME_ERROR
    return report, DRIFT if any(report["remaining"].values()) else OK


def _show_orphans(findings: Findings, err: Console) -> None:
    err.print(f"--prune will delete {len(findings.orphaned)} partitions whose Location holds no flow log:")
    for partition in findings.orphaned[:20]:
        err.print(f"  {escape('/'.join(partition.values))}  {escape(partition.location)}")
    if len(findings.orphaned) > 20:
        err.print(f"  ... and {len(findings.orphaned) - 20} more")


def _print_audit(
    out: Console,
    audit: Audit,
    findings: Findings,
    repairs: Repairs,
    report: dict[str, Any],
    args: argparse.Namespace,
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
        asked = args.prune if fixable == "pruned" else args.fix
        if args.dry_run and asked:
            return f"[yellow]would be {fixable}[/]"
        return "[yellow]remains[/]" + ("" if asked else f" (--{'prune' if fixable == 'pruned' else 'fix'})")

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
    if args.dry_run:
        would = [
            f"create {len(report.get('would_create', []))}",
            f"repoint {len(report.get('would_repoint', []))}",
            f"rewrite {len(report.get('would_rewrite', []))}",
            f"prune {len(report.get('would_prune', []))}",
        ]
        out.print(
            f"plan: would {', '.join(would)}"
            if (args.fix or args.prune)
            else "plan: nothing asked (--fix, --prune)"
        )
    out.print(f"remaining: {remaining}" if remaining else "remaining: none, the table is in step")


def _collect(walk: FolderWalk, err: Console) -> list[Message]:
    messages = []
    with _progress(err) as progress:
        task = progress.add_task("listing folders", total=None)
        for message in walk.messages():
            messages.append(message)
            progress.update(task, advance=1, description=f"listing folders ({walk.list_calls} list calls)")
    return messages


def _progress(console: Console, bytes_: bool = False) -> Progress:
    count = DownloadColumn() if bytes_ else MofNCompleteColumn()
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        count,
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


# ---------------------------------------------------------------- doctor

_STATE_STYLE = {
    checkup.OK: "green",
    checkup.WARN: "yellow",
    checkup.FAIL: "bold red",
    checkup.ERROR: "magenta",
}


def _doctor(args: argparse.Namespace, out: Console, err: Console) -> int:
    if args.endpoint_url and not args.endpoint_url.startswith(("http://", "https://")):
        raise UsageError(f"--endpoint-url {args.endpoint_url!r} is not an http:// or https:// URL")
    where = Connection.from_env(
        None, AWS_REGION=args.region, AWS_ENDPOINT_URL=args.endpoint_url, AWS_PROFILE=args.profile
    )

    def client(service: str) -> Any:
        return aws.client(service, where.endpoint_url, where.region, where.profile)

    stack = checkup.read_stack(client("cloudformation"), args.stack) if args.stack else None
    found = checkup.target_from_outputs(stack.outputs) if stack else {}
    # Flags first, then the stack's Outputs, then the environment (as the other commands read it).
    settings = _stack_settings(args, found, where)
    prefix = args.prefix
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    trigger = checkup.resolve_trigger(
        args.eventbridge, args.queue_url, args.function, found.get("trigger", "")
    )
    if trigger and trigger not in (checkup.SQS, checkup.EVENTBRIDGE, checkup.S3):
        raise UsageError(f"the stack's Trigger output is {trigger!r}: sqs, eventbridge or s3 expected")
    target = checkup.Target(
        database=settings.database,
        table=settings.table,
        catalog_id=settings.catalog_id,
        bucket=args.bucket or found.get("bucket", ""),
        location_prefix=prefix or found.get("location_prefix", ""),
        notification_prefix=prefix or found.get("notification_prefix", ""),
        trigger=trigger,
        queue_url=args.queue_url or found.get("queue_url", ""),
        queue_arn="" if args.queue_url else found.get("queue_arn", ""),
        rule_name=args.rule or found.get("rule_name", ""),
        function_name=args.function or found.get("function_name", ""),
        schedule_function=found.get("schedule_function", ""),
        dlq_url=args.dlq_url or found.get("dlq_url", ""),
        dlq_arn="" if args.dlq_url else found.get("dlq_arn", ""),
        cache_table=found.get("cache_table", "") or settings.cache_table,
        stack=args.stack,
        alarm_topic=found.get("alarm_topic", ""),
        backlog_seconds=int(found.get("backlog_seconds") or 0),
    )
    # Every configured table (GLUE_TABLES, or the stack's GlueTables), each checked as the one
    # table of the deployment: its Location must be routed, its role must reach it.
    targets = [
        dataclasses.replace(target, database=n.database, table=n.table, catalog_id=n.catalog_id)
        for n in settings.table_names
    ]
    results: dict[str, list[checkup.Finding]] = {}
    with (
        err.status("checking the deployment", spinner="dots") if err.is_terminal else contextlib.nullcontext()
    ):
        for one, name in zip(targets, settings.table_names, strict=True):
            results[str(name)] = checkup.run_doctor(client, one, time.time(), stack)
    if _json(args):
        if len(results) == 1:
            document: Any = [f.as_dict() for f in next(iter(results.values()))]
        else:
            document = {"tables": {name: [f.as_dict() for f in found] for name, found in results.items()}}
        out.print(json.dumps(document, indent=2), markup=False)
    else:
        first: list[checkup.Finding] = []
        for one, findings in zip(targets, results.values(), strict=True):
            # The deployment's own checks (stack, queue, alarms ...) read alike for every table:
            # said once, under the first table.
            shown = [f for f in findings if f not in first]
            width = max(len(f.check) for f in findings)
            for finding in shown:
                state = f"[{_STATE_STYLE[finding.state]}]{finding.state.upper():5}[/]"
                fix = f" [bold]fix:[/] {escape(finding.fix)}" if finding.fix else ""
                out.print(f"{state} {finding.check:{width}}  {escape(finding.detail)}{fix}")
            same = len(findings) - len(shown)
            said = f" ({same} {_plural(same, 'check')} as above)" if same else ""
            out.print(f"doctor {escape(one.database)}.{escape(one.table)}: {checkup.summary(findings)}{said}")
            first = first or findings
    return max(checkup.exit_code(findings) for findings in results.values())


def _demo(args: argparse.Namespace, out: Console, err: Console) -> int:
    from .demo import run_demo

    return run_demo(out, main, days=args.days)


if __name__ == "__main__":
    sys.exit(main())
