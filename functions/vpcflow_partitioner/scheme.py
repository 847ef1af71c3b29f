"""Pure mapping from a Glue table's PartitionKeys and Location to one object's partition.

The table is the configuration: which keys, in which order, what a whole date looks like
(`projection.<key>.format`), and where the data lives. Nothing here calls AWS.
"""

from __future__ import annotations

import copy
import functools
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from .keys import LEVELS, FlowLogObject, folder_state, parse_key


class ConfigurationError(Exception):
    """The table cannot be served as configured; retrying will not help."""


@dataclass(frozen=True, slots=True)
class TableRef:
    """Which table: catalog id ("" for the caller's account), database, name."""

    catalog_id: str
    database: str
    name: str

    def __str__(self) -> str:
        return f"{self.database}.{self.name}"


@dataclass(frozen=True, slots=True)
class PartitionSpec:
    """One partition: its values in PartitionKeys order and its S3 folder."""

    values: tuple[str, ...]
    location: str  # s3://bucket/folder/ with a trailing slash


@dataclass(frozen=True, slots=True)
class Skip:
    """Why an object gets no partition: `ignored` (not this table's) or `unpartitionable`."""

    outcome: str
    reason: str
    by_table: bool = False  # decided by the table's Location or keys: worth a fresh look first
    # A flow-log file this deployment should never have heard of (another bucket, outside the
    # table's Location): counted apart, as the sign of a wrong prefix, Location or allowlist.
    misrouted: bool = False


@dataclass(frozen=True, slots=True)
class _Key:
    name: str
    role: str  # account, service, region, year, month, day, hour, date
    level: str  # the folder level whose value it carries
    date_format: tuple[tuple[str, bool], ...] = ()  # (token or literal, is_token)


_ROLES = {
    "date": "date",
    "dt": "date",
    "year": "year",
    "month": "month",
    "day": "day",
    "hour": "hour",
    "aws_account_id": "account",
    "account_id": "account",
    "accid": "account",
    "aws_region": "region",
    "region": "region",
    "aws_service": "service",
    "service": "service",  # the Transit Gateway guide's Hive folders: service=vpcflowlogs
}
_VARIABLE_LEVELS = ("account", "region", "year", "month", "day", "hour")
_DATE_TOKENS = re.compile(r"yyyy|yy|MM|dd|HH|'[^']*'|[A-Za-z]")
_DEFAULT_DATE_FORMAT = (("yyyy", True), ("-", False), ("MM", True), ("-", False), ("dd", True))


def split_location(location: str) -> tuple[str, str]:
    """`s3://bucket/prefix/` -> ("bucket", "prefix/"); the prefix ends in "/" unless empty."""
    match = re.match(r"^s3a?n?://([^/]+)/?(.*)$", location or "")
    if match is None:
        raise ConfigurationError(f"table Location {location!r} is not an s3:// URL")
    bucket, prefix = match.groups()
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix


@dataclass(frozen=True)
class Scheme:
    """How one table partitions flow-log objects."""

    table: TableRef
    create_time: str  # the table's CreateTime: a recreated table is another table
    version: str  # UpdateTime and VersionId: what changes when the table is updated
    bucket: str
    prefix: str
    keys: tuple[_Key, ...]
    storage_descriptor: dict[str, Any]

    @functools.cached_property
    def file_suffix(self) -> str:
        """The flow-log files this table reads: ".log.parquet" for a Parquet table, ".log.gz" for
        a text one, "" (both) for a format it cannot tell. Flow logs write text files gzipped
        as .log.gz and Parquet files as .log.parquet ("Flow log files", VPC user guide); a text
        table cannot read a Parquet file, so a text and a Parquet twin over one folder tree
        each take their own files only."""
        descriptor = self.storage_descriptor
        serde = str((descriptor.get("SerdeInfo") or {}).get("SerializationLibrary") or "")
        reader = f"{descriptor.get('InputFormat') or ''} {serde}".lower()
        if "parquet" in reader:
            return ".log.parquet"
        if "textinputformat" in reader:
            return ".log.gz"
        return ""

    @classmethod
    def from_table(cls, table: dict[str, Any], catalog_id: str = "") -> Scheme:
        """Build the scheme from a Glue GetTable `Table`; unknown key names are an error."""
        ref = TableRef(catalog_id or table.get("CatalogId", ""), table["DatabaseName"], table["Name"])
        descriptor = table.get("StorageDescriptor") or {}
        bucket, prefix = split_location(descriptor.get("Location", ""))
        columns = table.get("PartitionKeys") or []
        if not columns:
            raise ConfigurationError(f"table {ref} has no partition keys")
        parameters = table.get("Parameters") or {}
        names = [_normalise(c["Name"]) for c in columns]
        whole_day = "year" not in names and "month" not in names
        keys = []
        for column in columns:
            name = column["Name"]
            role = _ROLES.get(_normalise(name))
            if role is None:
                raise ConfigurationError(
                    f"table {ref} has partition key {name!r}, which no flow-log folder "
                    f"provides (known: {', '.join(sorted(_ROLES))})"
                )
            if role == "day" and whole_day:
                role = "date"
            keys.append(_make_key(name, role, parameters.get(f"projection.{name}.format")))
        return cls(
            table=ref,
            create_time=_timestamp(table.get("CreateTime")),
            version=f"{_timestamp(table.get('UpdateTime'))} v{table.get('VersionId', '')}",
            bucket=bucket,
            prefix=prefix,
            keys=tuple(keys),
            storage_descriptor=descriptor,
        )

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.keys)

    def plan(self, bucket: str, obj: FlowLogObject) -> PartitionSpec | Skip:
        """The partition `obj` belongs to, or why it has none."""
        if bucket != self.bucket or not obj.key.startswith(self.prefix):
            return Skip(
                "ignored", f"outside the table location {self.location}", by_table=True, misrouted=True
            )
        suffix = self.file_suffix
        if suffix and not obj.key.endswith(suffix):
            return Skip(
                "ignored",
                f"a {obj.key.rsplit('.', 1)[-1]} file: table {self.table} reads {suffix} files",
                by_table=True,
                misrouted=True,
            )
        if obj.nested:
            return Skip(
                "unpartitionable",
                f"the key is nested inside another AWSLogs account folder ({obj.prefix}); "
                "move it out of AWS's reserved AWSLogs/ tree",
            )
        deepest = self.deepest_level
        if obj.hour is None and deepest == "hour":
            return Skip(
                "unpartitionable",
                "the table has an hour key but the object is in a daily folder",
                by_table=True,
            )
        uncovered = self._uncovered_level(deepest)
        if uncovered is not None:
            return Skip(
                "unpartitionable",
                f"the table location {self.location} is above the {uncovered} folder "
                f"but no partition key holds the {uncovered}",
                by_table=True,
            )
        values = tuple(_value(k, obj) for k in self.keys)
        return PartitionSpec(values, f"s3://{bucket}/{obj.folder(deepest)}")

    def misspelt(self, values: tuple[str, ...], location: str) -> str | None:
        """Why an existing partition's values are not the ones this scheme gives its folder, if
        they are not: the Lambda would create a second partition on that folder."""
        try:
            bucket, prefix = split_location(location)
        except ConfigurationError:
            return None
        obj = parse_key(
            f"{prefix}probe{self.file_suffix or '.log.gz'}"
        )  # the folder read as any file in it would be
        if obj is None:
            return None
        planned = self.plan(bucket, obj)
        if not isinstance(planned, PartitionSpec) or not same_folder(planned.location, location):
            return None
        if planned.values == tuple(values) or _spelling(planned.values) != _spelling(tuple(values)):
            return None  # the same, or other values: a wrong Location, which audit reports
        return (
            f"table {self.table} has partition {list(values)} on {location}, whose folder gives "
            f"{list(planned.values)}: partitions written as {list(planned.values)} would be a second "
            "partition on the same folder. Spell values as the folders do (zero-padded; a whole "
            "date as projection.<key>.format says, else YYYY-MM-DD) or set that format property"
        )

    def date_of(self, values: tuple[str, ...]) -> date | None:
        """The date a partition's values name, or None when its keys hold no whole date."""
        parts: dict[str, str] = {}
        for key, value in zip(self.keys, values, strict=False):
            if key.role in ("year", "month", "day"):
                parts[key.role] = value
            elif key.role == "date":
                pattern = "".join(
                    {
                        "yyyy": r"(?P<year>\d{4})",
                        "yy": r"(?P<yy>\d{2})",
                        "MM": r"(?P<month>\d{2})",
                        "dd": r"(?P<day>\d{2})",
                        "HH": r"\d{2}",
                    }[text]
                    if is_token
                    else re.escape(text)
                    for text, is_token in key.date_format
                )
                match = re.fullmatch(pattern, value)
                if match is None:
                    return None
                parts |= {k: v for k, v in match.groupdict().items() if v}
                if "yy" in parts:
                    parts["year"] = "20" + parts.pop("yy")
        try:
            return date(int(parts["year"]), int(parts["month"]), int(parts["day"]))
        except (KeyError, ValueError):
            return None

    def partition_input(self, spec: PartitionSpec) -> dict[str, Any]:
        """The Glue PartitionInput: the table's StorageDescriptor with only Location changed."""
        descriptor = copy.deepcopy(self.storage_descriptor)
        descriptor["Location"] = spec.location
        return {"Values": list(spec.values), "StorageDescriptor": descriptor}

    def _uncovered_level(self, deepest: str) -> str | None:
        # The table Location fixes every folder down to its own level; each variable folder
        # between it and the deepest key must be carried by a key, or two folders would map
        # to the same values.
        for level in LEVELS[LEVELS.index(self._location_level) + 1 : LEVELS.index(deepest) + 1]:
            if level in _VARIABLE_LEVELS and level not in self._carried:
                return level
        return None

    @functools.cached_property
    def _location_level(self) -> str:
        """The layout level the Location itself is at ("root" when at or above AWSLogs/)."""
        state = folder_state(self.prefix)
        if state is None or state.level is None or state.free:
            return "root"
        return state.level

    @functools.cached_property
    def _carried(self) -> frozenset[str]:
        carried = {k.level for k in self.keys}
        if any(k.role == "date" for k in self.keys):
            carried |= {"year", "month", "day"}
        return frozenset(carried)

    @functools.cached_property
    def deepest_level(self) -> str:
        return max((k.level for k in self.keys), key=LEVELS.index)


def descriptor_fingerprint(sd: dict[str, Any]) -> tuple[Any, ...]:
    """What of a StorageDescriptor Athena reads per partition: the columns, the SerDe and its
    parameters, the input and output formats (small enough to keep for every partition)."""
    info = sd.get("SerdeInfo") or {}
    return (
        tuple(
            (str(c.get("Name", "")).lower(), str(c.get("Type", "")).lower()) for c in sd.get("Columns") or []
        ),
        (str(info.get("SerializationLibrary", "")), tuple(sorted((info.get("Parameters") or {}).items()))),
        str(sd.get("InputFormat") or ""),
        str(sd.get("OutputFormat") or ""),
    )


_FINGERPRINT_FIELDS = ("columns", "serde", "InputFormat", "OutputFormat")


def descriptor_drift(table: tuple[Any, ...], partition: tuple[Any, ...]) -> list[str]:
    """Which of the fingerprinted fields differ between a table's and a partition's descriptor."""
    return [name for name, a, b in zip(_FINGERPRINT_FIELDS, table, partition, strict=True) if a != b]


def _spelling(values: tuple[str, ...]) -> tuple[Any, ...]:
    """Values with spelling set aside: words as they are, digits as numbers and as one string of
    two-digit-at-least runs ("2", "02"; "2024/02/10", "2024-2-10", "20240210" read alike;
    "09" and "10" do not)."""

    def one(value: str) -> tuple[Any, ...]:
        words = tuple(re.findall(r"[A-Za-z]+", value))
        digits = "".join(run.zfill(2) for run in re.findall(r"\d+", value)).lstrip("0")
        return words, digits

    return tuple(one(value) for value in values)


def same_folder(a: str, b: str) -> bool:
    """Whether two S3 Locations name one folder (a trailing slash, s3a:// and s3n:// aside)."""
    return folder_key(a) == folder_key(b)


def folder_key(location: str) -> str:
    """A Location written one way: s3://bucket/prefix/ (for comparing and indexing)."""
    return re.sub(r"^s3[an]?://", "s3://", location.strip()).rstrip("/") + "/"


def _timestamp(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value or "")


def _normalise(name: str) -> str:
    return name.lower().replace("-", "_")


def _make_key(name: str, role: str, projection_format: str | None) -> _Key:
    if role != "date":
        return _Key(name, role, role)
    tokens = _parse_date_format(name, projection_format) if projection_format else _DEFAULT_DATE_FORMAT
    level = "hour" if ("HH", True) in tokens else "day"
    return _Key(name, role, level, tokens)


def _parse_date_format(name: str, pattern: str) -> tuple[tuple[str, bool], ...]:
    tokens: list[tuple[str, bool]] = []
    position = 0
    for match in _DATE_TOKENS.finditer(pattern):
        if match.start() > position:
            tokens.append((pattern[position : match.start()], False))
        text = match.group()
        if text.startswith("'"):
            tokens.append((text[1:-1], False))
        elif len(text) == 1:
            raise ConfigurationError(
                f"projection.{name}.format {pattern!r}: only yyyy, yy, MM, dd and HH are supported"
            )
        else:
            tokens.append((text, True))
        position = match.end()
    if position < len(pattern):
        tokens.append((pattern[position:], False))
    return tuple(tokens)


def _value(key: _Key, obj: FlowLogObject) -> str:
    if key.role == "date":
        parts = {"yyyy": obj.year, "yy": obj.year[2:], "MM": obj.month, "dd": obj.day, "HH": obj.hour or ""}
        return "".join(parts[text] if is_token else text for text, is_token in key.date_format)
    if key.role == "service":
        return obj.service
    value = getattr(obj, key.role)
    return str(value)
