"""Pure parsing of S3 object keys written by VPC (and Transit Gateway) Flow Logs.

AWS documents two folder layouts, each daily or hourly ("Flow log files", VPC user guide):

    prefix/AWSLogs/{account}/vpcflowlogs/{region}/{yyyy}/{MM}/{dd}/[{HH}/]{file}
    prefix/AWSLogs/aws-account-id={account}/aws-service=vpcflowlogs/aws-region={region}/
        year={yyyy}/month={MM}/day={dd}/[hour={HH}/]{file}

Keys reach this module already decoded (envelopes.py decodes once, at the edge).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

# Every AWS partition's region names: us-east-1, us-gov-west-1, cn-northwest-1,
# us-iso-east-1, us-isob-east-1, eu-isoe-west-1, eusc-de-east-1, ap-southeast-5 ...
# (botocore's partitions.json; a unit test checks every name in it).
REGION_PATTERN = r"[a-z]{2,4}(?:-[a-z]+)+-\d{1,2}"
_ACCOUNT = r"\d{12}"
_FILE = r"[^/]+\.log\.(?:gz|parquet)"

# One grammar for keys and for folders: the folder name at each level below "AWSLogs/",
# plain and Hive-compatible. The Transit Gateway guide spells the Hive service folder
# `service=vpcflowlogs`, the VPC guide `aws-service=vpcflowlogs`: both are accepted.
_NAMES: dict[str, tuple[str, str]] = {
    "account": (rf"(?P<account>{_ACCOUNT})", rf"aws-account-id=(?P<account>{_ACCOUNT})"),
    "service": (r"vpcflowlogs", r"(?:aws-)?service=vpcflowlogs"),
    "region": (rf"(?P<region>{REGION_PATTERN})", rf"aws-region=(?P<region>{REGION_PATTERN})"),
    "year": (r"(?P<year>\d{4})", r"year=(?P<year>\d{4})"),
    "month": (r"(?P<month>\d{2})", r"month=(?P<month>\d{2})"),
    "day": (r"(?P<day>\d{2})", r"day=(?P<day>\d{2})"),
    "hour": (r"(?P<hour>\d{2})", r"hour=(?P<hour>\d{2})"),
}


def _layout(style: int) -> re.Pattern[str]:
    names = {level: pair[style] for level, pair in _NAMES.items()}
    daily = "/".join(names[level] for level in ("account", "service", "region", "year", "month", "day"))
    # \Z, not $: "$" would also match before a final newline, which is_flow_log_name refuses.
    return re.compile(rf"^(?P<prefix>(?:.*/)?)AWSLogs/{daily}/(?:{names['hour']}/)?(?P<file>{_FILE})\Z")


FLOW_LOG_SUFFIXES = (".log.gz", ".log.parquet")


def is_flow_log_name(name: str) -> bool:
    """Whether a file name (no folder) is one a flow log writes: `*.log.gz`, `*.log.parquet`."""
    # _FILE, spelled as string tests: this runs for every object a warm container sees.
    for suffix in FLOW_LOG_SUFFIXES:
        if name.endswith(suffix):
            return len(name) > len(suffix) and "/" not in name
    return False


_PLAIN = _layout(0)
_HIVE = _layout(1)
_FOLDER_NAMES = {
    level: (re.compile(rf"^{plain}\Z"), re.compile(rf"^{hive}\Z")) for level, (plain, hive) in _NAMES.items()
}
# AWS reserves "AWSLogs" ("You cannot use AWSLogs as a subfolder name"), so a key whose free
# prefix passes through an account folder of another AWSLogs tree is a copy nested inside
# AWS's own layout. The walk does not descend into account folders looking for one (that
# would list every date folder of every service), so neither may the Lambda partition it.
_ACCOUNT_FOLDER = re.compile(rf"(?:^|/)AWSLogs/(?:aws-account-id=)?{_ACCOUNT}/")

# Folder levels below the bucket prefix, outermost first. A partition key maps to one
# of them; the partition's Location is the folder of its deepest key.
LEVELS = ("root", "account", "service", "region", "year", "month", "day", "hour")


@dataclass(frozen=True, slots=True)
class FlowLogObject:
    """One flow-log file: where it sits and what its folders say."""

    key: str
    prefix: str  # everything before "AWSLogs/", "" or ending in "/"
    hive: bool
    account: str
    region: str
    year: str
    month: str
    day: str
    hour: str | None  # None in daily folders
    nested: bool = False  # the free prefix passes through another tree's account folder

    @property
    def date(self) -> date:
        return date(int(self.year), int(self.month), int(self.day))

    @property
    def service(self) -> str:
        return "vpcflowlogs"

    def folder(self, level: str) -> str:
        """The key prefix of the folder at `level`, ending in "/"."""
        depth = LEVELS.index(level)
        if depth > LEVELS.index("day") and self.hour is None:
            raise ValueError("daily folders have no hour level")
        # The key is the layout itself: the folder ends at the depth-th "/" after AWSLogs/.
        end = len(self.prefix) + len("AWSLogs/")
        for _ in range(depth):
            end = self.key.index("/", end) + 1
        return self.key[:end]


def parse_key(key: str) -> FlowLogObject | None:
    """The flow-log object a decoded key names, or None if it is not one."""
    match = _PLAIN.match(key) or _HIVE.match(key)
    if match is None:
        return None
    hour = match["hour"]
    if hour is not None and not 0 <= int(hour) <= 23:
        return None
    try:
        # Real calendar dates only; never compared with the clock.
        date(int(match["year"]), int(match["month"]), int(match["day"]))
    except ValueError:
        return None
    prefix = match["prefix"]
    return FlowLogObject(
        key=key,
        prefix=prefix,
        hive=match.re is _HIVE,
        account=match["account"],
        region=match["region"],
        year=match["year"],
        month=match["month"],
        day=match["day"],
        hour=hour,
        nested=bool(prefix) and _ACCOUNT_FOLDER.search(prefix) is not None,
    )


@dataclass(frozen=True, slots=True)
class FolderState:
    """What a folder can be on the way to flow-log objects, read from its path alone."""

    free: bool  # it may still be part of the free prefix before "AWSLogs/"
    level: str | None  # its level below an "AWSLogs/" folder ("root" is that folder), if any
    hive: bool = False  # the layout style, fixed by the account folder
    date: tuple[int, ...] = ()  # (year[, month[, day[, hour]]]) read from the folders so far


BUCKET_ROOT = FolderState(free=True, level=None)


def descend(state: FolderState, name: str) -> FolderState | None:
    """The state of the subfolder `name`, or None when no flow-log key can lie below it.

    parse_key accepts a key exactly when descending through its folders reaches the level
    of its file (day or hour) with the names this grammar allows: the walk and the Lambda
    share one definition of where flow logs are.
    """
    level: str | None = None
    hive = state.hive
    date = state.date
    if state.level is not None and state.level != "hour":
        below = LEVELS[LEVELS.index(state.level) + 1]
        styles = (0, 1) if below == "account" else (int(state.hive),)
        for style in styles:
            match = _FOLDER_NAMES[below][style].match(name)
            if match is not None:
                level, hive = below, bool(style)
                if below in ("year", "month", "day", "hour"):
                    date = (*date, int(match.group(below)))
                break
    if level is not None:
        # Inside an account folder the path is AWS's layout, never a free prefix again.
        return FolderState(free=False, level=level, hive=hive, date=date)
    if state.free:
        return FolderState(free=True, level="root" if name == "AWSLogs" else None)
    return None


def folder_state(prefix: str) -> FolderState | None:
    """The state of a folder given as a key prefix ("" or ending in "/")."""
    state: FolderState | None = BUCKET_ROOT
    for name in prefix.split("/")[:-1]:
        if state is None:
            return None
        state = descend(state, name)
    return state
