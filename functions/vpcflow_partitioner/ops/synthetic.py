"""Realistic flow-log objects for the demo, the benchmark and the tests.

Names and folders follow "Flow log files" in the VPC user guide:
`{account}_vpcflowlogs_{region}_{flow-log-id}_{YYYYMMDDTHHmmZ}_{hash}.log.gz`, one file per
flow log (and sometimes several) every 5 minutes, in the folder of its UTC date [and hour].
"""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
import random
from datetime import datetime

from ..formats import DEFAULT_FIELDS, Field


def object_key(
    account: str,
    region: str,
    moment: datetime,
    *,
    prefix: str = "",
    hive: bool = False,
    hourly: bool = False,
    flow_log_id: str = "fl-0123456789abcdef0",
    parquet: bool = False,
) -> str:
    """The key AWS writes a flow-log file under, for one delivery moment (UTC)."""
    if hive:
        folder = (
            f"AWSLogs/aws-account-id={account}/aws-service=vpcflowlogs/aws-region={region}/"
            f"year={moment:%Y}/month={moment:%m}/day={moment:%d}/" + (f"hour={moment:%H}/" if hourly else "")
        )
    else:
        folder = f"AWSLogs/{account}/vpcflowlogs/{region}/{moment:%Y/%m/%d}/" + (
            f"{moment:%H}/" if hourly else ""
        )
    digest = hashlib.sha1(f"{account}{region}{flow_log_id}{moment.isoformat()}".encode()).hexdigest()[:8]
    name = f"{account}_vpcflowlogs_{region}_{flow_log_id}_{moment:%Y%m%dT%H%M}Z_{digest}"
    return f"{prefix}{folder}{name}.log.{'parquet' if parquet else 'gz'}"


def flow_log_file(
    account: str,
    moment: datetime,
    records: int = 20,
    *,
    seed: int = 0,
    fields: tuple[Field, ...] = DEFAULT_FIELDS,
) -> bytes:
    """A gzip text file: the header line, then records that look real."""
    rng = random.Random(seed)
    end = int(moment.timestamp())
    lines = [" ".join(f.name for f in fields)]
    enis = [f"eni-{rng.getrandbits(68):017x}" for _ in range(4)]
    for _ in range(records):
        status = rng.choices(["OK", "NODATA", "SKIPDATA"], [95, 4, 1])[0]
        start = end - rng.randint(60, 600)
        eni = rng.choice(enis)
        if status != "OK":
            values = {
                "version": "2",
                "account-id": account,
                "interface-id": eni,
                "start": str(start),
                "end": str(end),
                "log-status": status,
            }
        else:
            protocol = rng.choices([6, 17, 1], [80, 15, 5])[0]
            private = str(ipaddress.IPv4Address(0x0A000000 + rng.getrandbits(16)))
            public = str(ipaddress.IPv4Address(rng.randint(0x01000000, 0x09FFFFFF)))
            src, dst = (private, public) if rng.random() < 0.5 else (public, private)
            packets = rng.randint(1, 500)
            values = {
                "version": "2",
                "account-id": account,
                "interface-id": eni,
                "srcaddr": src,
                "dstaddr": dst,
                "srcport": str(rng.choice([443, 80, 53, 22]) if protocol != 1 else 0),
                "dstport": str(rng.randint(1024, 65535) if protocol != 1 else 0),
                "protocol": str(protocol),
                "packets": str(packets),
                "bytes": str(packets * rng.randint(40, 1500)),
                "start": str(start),
                "end": str(end),
                "action": rng.choices(["ACCEPT", "REJECT"], [85, 15])[0],
                "log-status": "OK",
            }
        lines.append(" ".join(values.get(f.name, "-") for f in fields))
    return gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)
