from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials, one region, no endpoint: nothing can reach a real account."""
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_PROFILE",
        "CACHE_TABLE",
        "SOURCE_BUCKETS",
        "GLUE_CATALOG_ID",
        "GLUE_TABLES",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "VpcFlowPartitionerTest")


@pytest.fixture
def mocked(aws_env: None) -> Iterator[Any]:
    """moto in-process, and a cold container before and after."""
    from moto import mock_aws
    from vpcflow_partitioner import handlers

    handlers.reset()
    with mock_aws():
        yield
    handlers.reset()
