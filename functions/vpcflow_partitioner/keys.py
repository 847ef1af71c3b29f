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
# us-iso-east-1, us-isob-east-1, eu-isoe-west-1, ap-southeast-5 ...
REGION_PATTERN = r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}"
_ACCOUNT = r"\d{12}"
_FILE = r"[^/]+\.log\.(?:gz|parquet)"

_PLAIN = re.compile(
    rf"^(?P<prefix>(?:.*/)?)AWSLogs/(?P<account>{_ACCOUNT})/(?P<service>vpcflowlogs)/"
    rf"(?P<region>{REGION_PATTERN})/(?P<year>\d{{4}})/(?P<month>\d{{2}})/(?P<day>\d{{2}})/"
    rf"(?:(?P<hour>\d{{2}})/)?(?P<file>{_FILE})$"
)
_HIVE = re.compile(
    rf"^(?P<prefix>(?:.*/)?)AWSLogs/aws-account-id=(?P<account>{_ACCOUNT})/"
    rf"aws-service=(?P<service>vpcflowlogs)/aws-region=(?P<region>{REGION_PATTERN})/"
    rf"year=(?P<year>\d{{4}})/month=(?P<month>\d{{2}})/day=(?P<day>\d{{2}})/"
    rf"(?:hour=(?P<hour>\d{{2}})/)?(?P<file>{_FILE})$"
)

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
    return FlowLogObject(
        key=key,
        prefix=match["prefix"],
        hive=match.re is _HIVE,
        account=match["account"],
        region=match["region"],
        year=match["year"],
        month=match["month"],
        day=match["day"],
        hour=hour,
    )
