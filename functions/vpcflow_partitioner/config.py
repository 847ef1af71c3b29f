"""Settings.from_env(): the only reader of os.environ."""

from __future__ import annotations

import os
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass

SERVICE = "vpcflow-partitioner"


class SettingsError(ValueError):
    """An environment variable is missing or malformed."""


@dataclass(frozen=True, slots=True)
class Settings:
    """What a deployment configures; everything else comes from the Glue table."""

    database: str
    table: str
    catalog_id: str = ""
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
        database = env.get("GLUE_DATABASE", "").strip()
        table = env.get("GLUE_TABLE", "").strip()
        if not database or not table:
            raise SettingsError(
                "name the table to keep partitioned: GLUE_DATABASE and GLUE_TABLE "
                "(--database and --table on the command line)"
            )
        where = Connection.read(env)
        buckets = frozenset(b.strip() for b in env.get("SOURCE_BUCKETS", "").split(",") if b.strip())
        return cls(
            database=database,
            table=table,
            catalog_id=env.get("GLUE_CATALOG_ID", "").strip(),
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
