"""Lazily created, cached boto3 clients (never at import, so moto and AWS_ENDPOINT_URL apply)."""

from __future__ import annotations

import functools
import threading
from typing import Any

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config

# Adaptive retry mode adds client-side rate limiting on top of exponential backoff, so a
# throttling storm from Glue slows us down instead of failing records ("Retries", boto3 guide).
RETRY_CONFIG = Config(
    retries={"mode": "adaptive", "max_attempts": 8},
    connect_timeout=5,
    read_timeout=20,
)

# A boto3 Session is not thread-safe; the clients it makes are. Clients are made under this lock.
_LOCK = threading.RLock()


def client(service: str, endpoint_url: str = "", region: str = "", profile: str = "") -> Any:
    """One client per service, endpoint, region and named profile; boto3 reads credentials itself."""
    return _client(service, endpoint_url, region, profile)  # one cache key however it is called


@functools.cache
def _client(service: str, endpoint_url: str, region: str, profile: str) -> Any:
    with _LOCK:
        return _session(profile).client(  # type: ignore[call-overload]
            service,
            config=RETRY_CONFIG,
            endpoint_url=endpoint_url or None,
            region_name=region or None,
        )


@functools.cache
def _session(profile: str) -> boto3.session.Session:
    # One session per profile: it reads the shared config files and endpoint data once, not once
    # per client (a command that checks a dozen services would read them a dozen times).
    core = botocore.session.get_session()
    loader = _loader()
    core.register_component("data_loader", loader)
    session = boto3.session.Session(botocore_session=core, profile_name=profile or None)
    # Each boto3 Session appends its data folder to the loader's search path: keep it once.
    loader.search_paths[:] = list(dict.fromkeys(loader.search_paths))
    return session


@functools.cache
def _loader() -> botocore.loaders.Loader:
    """Service models and endpoint data, parsed once per process (they hold no credentials)."""
    return botocore.loaders.Loader()


def reset() -> None:
    """Forget the cached clients and sessions (tests switch endpoints, credentials and profiles)."""
    with _LOCK:
        _client.cache_clear()
        _session.cache_clear()
