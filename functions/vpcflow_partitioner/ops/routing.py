"""Which S3 objects reach the function: the bucket notification's filters and the EventBridge
pattern, defined once for the stack (deploy/resources.js reads them from `ops.deploy`) and for
`doctor`, which proposes them as fixes. Pure: the standard library and `keys` only."""

from __future__ import annotations

import re
import string
from typing import Any
from urllib.parse import quote_plus

from ..keys import FLOW_LOG_SUFFIXES

# S3 object key naming: "safe characters" are letters, digits and ! - _ . * ' ( ) (and / as the
# folder separator). S3 documents that special characters in a filter value must be written
# URL-encoded ("Configuring event notifications using object key name filtering"): a literal
# "=" (Hive-compatible folders) never matches; it must be "%3D".
# A space is "+" ("If your prefix or suffix contains a space, you must replace it with the '+'
# character", same page), as in the keys of S3's events (form encoding).
_SAFE = frozenset(string.ascii_letters + string.digits + "!-_.*'()/%+")
# The file each table format reads: a text table's `.log.gz`, a Parquet table's `.log.parquet`.
SUFFIXES = {"text": FLOW_LOG_SUFFIXES[0], "parquet": FLOW_LOG_SUFFIXES[1]}
_KINDS = {suffix: kind for kind, suffix in SUFFIXES.items()}


def unencoded(value: str) -> list[str]:
    """The characters of a filter value that S3 needs URL-encoded but are written as they are
    (a `%` counts only when no two hex digits follow it: `50%` is written `50%25`)."""
    bad = {c for c in value if c not in _SAFE}
    if re.search(r"%(?![0-9A-Fa-f]{2})", value):
        bad.add("%")
    return sorted(bad)


def encode_filter(value: str) -> str:
    """A key prefix or suffix as a notification filter value must be written (`=` -> `%3D`)."""
    # quote_plus keeps "~" whatever `safe` says; S3 does not list it as safe.
    return quote_plus(value, safe="/!-_.*'()").replace("~", "%7E")


def rule_id(name: str, suffix: str) -> str:
    """The notification rule's Id: the stack's name (service-stage) and the file kind, so that
    stages sharing a bucket never touch each other's rules."""
    return f"{name}-{_KINDS[suffix]}"


def notification_filters(key_prefix: str) -> list[dict[str, str]]:
    """One S3 rule per flow-log file suffix (a rule has one prefix and one suffix); a table at
    the bucket root filters on the suffix alone (an empty filter value is no filter)."""
    prefix = {"prefix": encode_filter(key_prefix)} if key_prefix else {}
    return [prefix | {"suffix": suffix} for suffix in FLOW_LOG_SUFFIXES]


def _wildcard_literal(text: str) -> str:
    # EventBridge wildcard matching: `*` is any run of characters; a literal `*` or `\` is escaped.
    return text.replace("\\", "\\\\").replace("*", "\\*")


def event_pattern(bucket: str, key_prefix: str) -> dict[str, Any]:
    """Flow-log files only, plain and Hive layouts (`.../123456789012/vpcflowlogs/...` and
    `.../aws-service=vpcflowlogs/...`): a shared log-archive bucket's CloudTrail, ELB or Config
    objects never reach the queue. EventBridge keys are not URL-encoded (`=` stays `=`)."""
    # A Location at or below the vpcflowlogs folder (classic tables, deep Hive tables) holds
    # flow-log files only: asking for another vpcflowlogs folder under it would match nothing.
    inside = any(f == "vpcflowlogs" or f.endswith("=vpcflowlogs") for f in key_prefix.split("/"))
    middle = "*" if inside else "*vpcflowlogs/*"
    key = [{"wildcard": f"{_wildcard_literal(key_prefix)}{middle}{suffix}"} for suffix in FLOW_LOG_SUFFIXES]
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket]}, "object": {"key": key}},
    }
