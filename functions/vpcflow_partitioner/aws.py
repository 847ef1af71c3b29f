"""Lazily created, cached boto3 clients (never at import, so moto and AWS_ENDPOINT_URL apply)."""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore.config import Config

# Adaptive retry mode adds client-side rate limiting on top of exponential backoff, so a
# throttling storm from Glue slows us down instead of failing records ("Retries", boto3 guide).
RETRY_CONFIG = Config(
    retries={"mode": "adaptive", "max_attempts": 8},
    connect_timeout=5,
    read_timeout=20,
)


def client(service: str, endpoint_url: str = "", region: str = "", profile: str = "") -> Any:
    """One client per service, endpoint, region and named profile; boto3 reads credentials itself."""
    return _client(service, endpoint_url, region, profile)  # one cache key however it is called


@functools.cache
def _client(service: str, endpoint_url: str, region: str, profile: str) -> Any:
    return boto3.session.Session(profile_name=profile or None).client(  # type: ignore[call-overload]
        service,
        config=RETRY_CONFIG,
        endpoint_url=endpoint_url or None,
        region_name=region or None,
    )


def reset() -> None:
    """Forget the cached clients (tests switch endpoints and credentials)."""
    _client.cache_clear()
