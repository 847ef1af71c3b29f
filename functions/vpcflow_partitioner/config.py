"""Settings.from_env(): the only reader of os.environ."""

from __future__ import annotations

import os
import re
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass, replace

SERVICE = "vpcflow-partitioner"


class SettingsError(ValueError):
    """An environment variable is missing or malformed."""


# Glue names: database and table names are at most 255 characters without "." (that separates
# them here) or ","; a catalog id is the 12-digit account that owns the catalog.
_TABLE_NAME = re.compile(
    r"^(?:(?P<catalog>\d{12}):)?(?P<database>[^.,:\s]{1,255})\.(?P<table>[^.,\s]{1,255})$"
)


@dataclass(frozen=True, slots=True)
class TableName:
    """One configured table, written "[catalog:]database.table" (GLUE_TABLES)."""

    catalog_id: str
    database: str
    table: str

    def __str__(self) -> str:
        name = f"{self.database}.{self.table}"
        return f"{self.catalog_id}:{name}" if self.catalog_id else name

    @classmethod
    def parse(cls, text: str, catalog_id: str = "") -> TableName:
        """ "[catalog:]database.table"; `catalog_id` when the text names none."""
        match = _TABLE_NAME.match(text.strip())
        if match is None:
            raise SettingsError(f"{text.strip()!r} is not a table: write [catalog:]database.table")
        return cls(match["catalog"] or catalog_id, match["database"], match["table"])

    def matches(self, text: str) -> bool:
        """Whether `text` names this table: as written, database.table, or the bare table name."""
        return text in (str(self), f"{self.database}.{self.table}", self.table)


@dataclass(frozen=True, slots=True)
class Settings:
    """What a deployment configures; everything else comes from the Glue table."""

    database: str  # the first table's (the only one's in the one-table form)
    table: str
    catalog_id: str = ""
    # Every table the deployment keeps (GLUE_TABLES), in the order written; () means the one above.
    tables: tuple[TableName, ...] = ()
    cache_table: str = ""
    cache_ttl_days: int = 35
    source_buckets: frozenset[str] = frozenset()
    reconcile_days: int = 2
    # How long a container trusts the table it read before reading it again; 0: every invocation.
    table_refresh_seconds: int = 300
    # An invocation of cache hits alone prints no metrics document: its CacheHits ride along
    # with a later document, or go alone once this many seconds passed; 0: every invocation.
    cache_hits_metrics_seconds: int = 60
    # boto3 reads these itself; they are kept here so that a changed endpoint or region
    # gets its own clients and its own warm state.
    endpoint_url: str = ""
    region: str = ""
    profile: str = ""  # a named profile (the command line's --profile; boto3 reads AWS_PROFILE itself)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: str) -> Settings:
        """Read the documented variables; `overrides` (e.g. CLI flags) win when non-empty."""
        # Read in place: no copy of the whole environment.
        env: Mapping[str, str] = ChainMap(
            {k: v for k, v in overrides.items() if v},
            os.environ if environ is None else dict(environ),
        )
        catalog_id = env.get("GLUE_CATALOG_ID", "").strip()
        tables = _tables(env, overrides, catalog_id)
        first = tables[0]
        where = Connection.read(env)
        buckets = frozenset(b.strip() for b in env.get("SOURCE_BUCKETS", "").split(",") if b.strip())
        return cls(
            database=first.database,
            table=first.table,
            catalog_id=first.catalog_id,
            tables=tables,
            cache_table=env.get("CACHE_TABLE", "").strip(),
            cache_ttl_days=_int_setting(env, "CACHE_TTL_DAYS", 35),
            source_buckets=buckets,
            reconcile_days=_int_setting(env, "RECONCILE_DAYS", 2),
            table_refresh_seconds=_int_setting(env, "TABLE_REFRESH_SECONDS", 300, minimum=0),
            cache_hits_metrics_seconds=_int_setting(env, "CACHE_HITS_METRICS_SECONDS", 60, minimum=0),
            endpoint_url=where.endpoint_url,
            region=where.region,
            profile=where.profile,
        )

    @property
    def table_names(self) -> tuple[TableName, ...]:
        """Every table this deployment keeps (one in the one-table form)."""
        return self.tables or (TableName(self.catalog_id, self.database, self.table),)

    def for_table(self, name: TableName) -> Settings:
        """These settings for one of the tables: what a Partitioner of that table reads."""
        return replace(
            self, database=name.database, table=name.table, catalog_id=name.catalog_id, tables=(name,)
        )


def _tables(env: Mapping[str, str], overrides: Mapping[str, str], catalog_id: str) -> tuple[TableName, ...]:
    """GLUE_TABLES, or the one table GLUE_DATABASE and GLUE_TABLE name; a --table flag alone picks
    one of GLUE_TABLES, and --database with --table name a table outright."""
    database = env.get("GLUE_DATABASE", "").strip()
    table = env.get("GLUE_TABLE", "").strip()
    listed = env.get("GLUE_TABLES", "").strip()
    if not listed or (overrides.get("GLUE_DATABASE") and overrides.get("GLUE_TABLE")):
        if not database or not table:
            raise SettingsError(
                "name the table to keep partitioned: GLUE_DATABASE and GLUE_TABLE, or GLUE_TABLES "
                "(--database and --table on the command line)"
            )
        return (TableName(catalog_id, database, table),)
    names = tuple(TableName.parse(text, catalog_id) for text in listed.split(",") if text.strip())
    if not names:
        raise SettingsError(f"GLUE_TABLES={listed!r} names no table")
    # Glue keeps names in lower case ("For Hive compatibility, this must be entirely lowercase"):
    # `flowlogs.A` and `flowlogs.a` are one table, and it would be partitioned twice.
    spelt = [(n.catalog_id, n.database.lower(), n.table.lower()) for n in names]
    repeated = [str(n) for n, key in zip(names, spelt, strict=True) if spelt.count(key) > 1]
    if repeated:
        raise SettingsError(f"GLUE_TABLES names {repeated[0]} twice")
    alone = overrides.get("GLUE_DATABASE", "").strip()
    if alone and not overrides.get("GLUE_TABLE", "").strip():
        # --database alone: the tables of that database.
        names = tuple(n for n in names if n.database.lower() == alone.lower())
        if not names:
            raise SettingsError(f"--database {alone}: no table of GLUE_TABLES is in it")
    picked = overrides.get("GLUE_TABLE", "").strip()
    if picked:
        chosen = [n for n in names if n.matches(picked)]
        if len(chosen) != 1:
            raise SettingsError(
                f"--table {picked}: {'more than one' if chosen else 'not one'} of GLUE_TABLES "
                f"({', '.join(map(str, names))}); write it as database.table"
            )
        return tuple(chosen)
    if (
        database
        and table
        # The environment's two namings only: a flag or a stack's tables given outright win.
        and not any(overrides.get(k) for k in ("GLUE_TABLES", "GLUE_DATABASE", "GLUE_TABLE"))
        and not any(
            n.database.lower() == database.lower() and n.table.lower() == table.lower() for n in names
        )
    ):
        # Two ways of naming the tables that disagree: refuse rather than pick one.
        raise SettingsError(
            f"GLUE_DATABASE and GLUE_TABLE name {database}.{table}, which GLUE_TABLES does not list"
        )
    return names


@dataclass(frozen=True, slots=True)
class Connection:
    """Where AWS calls go: endpoint, region and named profile, read as Settings reads them. The
    command line needs them before it knows the table (`doctor --stack` reads it from the stack)."""

    endpoint_url: str = ""
    region: str = ""
    profile: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: str) -> Connection:
        """The documented variables; `overrides` (command-line flags) win when non-empty."""
        return cls.read(
            ChainMap(
                {k: v for k, v in overrides.items() if v}, os.environ if environ is None else dict(environ)
            )
        )

    @classmethod
    def read(cls, env: Mapping[str, str]) -> Connection:
        return cls(
            endpoint_url=env.get("AWS_ENDPOINT_URL", "").strip(),
            region=(env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "").strip(),
            profile=env.get("AWS_PROFILE", "").strip(),
        )


def tracing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """TRACING=true (the `tracing` deploy param): wrap the handlers in powertools' Tracer."""
    env = os.environ if environ is None else environ
    return env.get("TRACING", "").strip().lower() in ("true", "1", "active")


def _int_setting(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name}={text!r} must be at least {minimum}")
    return value
