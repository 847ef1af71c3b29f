"""replay streams: its peak memory does not grow with the file (a new process, a moto server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import EVENTS, create_table
from vpcflow_partitioner import aws
from vpcflow_partitioner.ops.demo import local_aws
from vpcflow_partitioner.ops.synthetic import object_key

# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec from the parent process.
PEAK = (
    "import sys; from vpcflow_partitioner.ops.cli import main; code = main(sys.argv[1:]); "
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; "
    "print('PEAK_KB', hwm, file=sys.stderr); sys.exit(code)"
)


def write_ndjson(path: Path, megabytes: float) -> None:
    template = json.loads((EVENTS / "s3_notification.json").read_text())["Records"][0]
    with path.open("w") as handle:
        n = 0
        while handle.tell() < megabytes * 1_000_000:
            moment = datetime(2022, 1, 1, tzinfo=UTC) + timedelta(days=n % 40, minutes=n % 1440)
            template["s3"]["object"]["key"] = object_key("123456789012", "us-east-1", moment)
            handle.write(json.dumps({"Records": [template]}) + "\n")
            n += 1


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_replay_memory_stays_flat(aws_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GLUE_DATABASE", "flowlogs")
    monkeypatch.setenv("GLUE_TABLE", "vpc_flow_logs")
    peaks = {}
    with local_aws() as endpoint:
        create_table(aws.client("glue", endpoint, "us-east-1"))
        for megabytes in (0.5, 12):
            path = tmp_path / f"saved-{megabytes}.ndjson"
            write_ndjson(path, megabytes)
            done = subprocess.run(
                [sys.executable, "-c", PEAK, "replay", str(path), "--json"],
                capture_output=True,
                text=True,
                env=dict(os.environ),
                timeout=300,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["failed"] == 0
            peaks[megabytes] = int(done.stderr.split("PEAK_KB")[1].split()[0]) / 1024
    assert peaks[12] < 100  # MB: the process, boto3 and one Glue client are most of it
    assert peaks[12] - peaks[0.5] < 10, peaks  # 24 times the file, (almost) the same memory
