from __future__ import annotations

import pytest
from vpcflow_partitioner.keys import parse_key

FILE = "123456789012_vpcflowlogs_us-east-1_fl-0123456789abcdef0_20220829T0905Z_5f2a9c1e.log.gz"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (f"AWSLogs/123456789012/vpcflowlogs/us-east-1/2022/08/29/{FILE}", ("", False, None)),
        (f"AWSLogs/123456789012/vpcflowlogs/us-east-1/2022/08/29/09/{FILE}", ("", False, "09")),
        (
            "AWSLogs/aws-account-id=123456789012/aws-service=vpcflowlogs/aws-region=us-east-1/"
            f"year=2022/month=08/day=29/{FILE}",
            ("", True, None),
        ),
        (
            "logs/vpc/AWSLogs/aws-account-id=123456789012/aws-service=vpcflowlogs/aws-region=us-east-1/"
            f"year=2022/month=08/day=29/hour=23/{FILE}",
            ("logs/vpc/", True, "23"),
        ),
        (f"a b+c/AWSLogs/123456789012/vpcflowlogs/us-east-1/2022/08/29/{FILE}", ("a b+c/", False, None)),
    ],
)
def test_all_four_layouts_and_any_prefix(key: str, expected: tuple[str, bool, str | None]) -> None:
    obj = parse_key(key)
    assert obj is not None
    assert (obj.prefix, obj.hive, obj.hour) == expected
    assert (obj.account, obj.region, obj.year, obj.month, obj.day) == (
        "123456789012",
        "us-east-1",
        "2022",
        "08",
        "29",
    )


@pytest.mark.parametrize(
    "region",
    ["us-gov-west-1", "cn-northwest-1", "eu-isoe-west-1", "us-isob-east-1", "ap-southeast-5", "il-central-1"],
)
def test_every_partitions_region_names(region: str) -> None:
    key = f"AWSLogs/210987654321/vpcflowlogs/{region}/2024/02/29/210987654321_vpcflowlogs_{region}_fl-1_x.log.parquet"
    obj = parse_key(key)
    assert obj is not None and obj.region == region and obj.date.isoformat() == "2024-02-29"


@pytest.mark.parametrize(
    "key",
    [
        "AWSLogs/123456789012/vpcflowlogs/us-east-1/2022/08/29/",  # folder marker
        "AWSLogs/123456789012/vpcflowlogs/us-east-1/2022/02/30/" + FILE,  # no such day
        "AWSLogs/123456789012/vpcflowlogs/us-east-1/2022/13/01/" + FILE,
        "AWSLogs/123456789012/vpcflowlogs/us-east-1/2022/08/29/24/" + FILE,  # no such hour
        "AWSLogs/123456789012/CloudTrail/us-east-1/2022/08/29/123456789012_CloudTrail_us-east-1_x.json.gz",
        "AWSLogs/123456789012/elasticloadbalancing/us-east-1/2022/08/29/x.log.gz",
        "AWSLogs/12345678901/vpcflowlogs/us-east-1/2022/08/29/" + FILE,  # 11-digit account
        "AWSLogs/123456789012/vpcflowlogs/US-EAST-1/2022/08/29/" + FILE,
        "AWSLogs/123456789012/vpcflowlogs/us-east-1/2022/08/29/" + FILE + ".tmp",
        "AWSLogs/123456789012/vpcflowlogs/us-east-1/2022/8/29/" + FILE,
        "AWSLogs/aws-account-id=123456789012/aws-service=vpcflowlogs/aws-region=us-east-1/year=2022/month=08/day=29/hour=09/",
        "xAWSLogs/123456789012/vpcflowlogs/us-east-1/2022/08/29/" + FILE,
        "",
    ],
)
def test_everything_else_is_not_a_flow_log_object(key: str) -> None:
    assert parse_key(key) is None


def test_dates_are_never_compared_with_the_clock() -> None:
    for year in ("1999", "2099"):
        assert parse_key(f"AWSLogs/123456789012/vpcflowlogs/us-east-1/{year}/01/01/{FILE}") is not None


def test_folder_of_each_level() -> None:
    obj = parse_key(
        "p/AWSLogs/aws-account-id=123456789012/aws-service=vpcflowlogs/aws-region=us-east-1/"
        f"year=2022/month=08/day=29/hour=09/{FILE}"
    )
    assert obj is not None
    assert obj.folder("root") == "p/AWSLogs/"
    assert (
        obj.folder("region")
        == "p/AWSLogs/aws-account-id=123456789012/aws-service=vpcflowlogs/aws-region=us-east-1/"
    )
    assert obj.folder("hour").endswith("year=2022/month=08/day=29/hour=09/")
    daily = parse_key(f"AWSLogs/123456789012/vpcflowlogs/us-east-1/2022/08/29/{FILE}")
    assert daily is not None
    assert daily.folder("day") == "AWSLogs/123456789012/vpcflowlogs/us-east-1/2022/08/29/"
    with pytest.raises(ValueError):
        daily.folder("hour")


def test_every_region_in_botocores_partition_data_parses() -> None:
    import json
    import re
    from pathlib import Path

    import botocore

    data = json.loads((Path(botocore.__file__).parent / "data" / "partitions.json").read_text())
    regions = [
        name
        for partition in data["partitions"]
        for name in partition["regions"]
        if re.match(partition["regionRegex"], name)  # leaves out aws-global and its kind
    ]
    assert "eusc-de-east-1" in regions
    for region in regions:
        key = f"AWSLogs/123456789012/vpcflowlogs/{region}/2024/01/01/123456789012_vpcflowlogs_{region}_fl-1_20240101T0005Z_a.log.gz"
        assert parse_key(key) is not None, region


def test_transit_gateway_hive_keys_spell_the_service_without_aws() -> None:
    # The Transit Gateway guide documents ".../aws-account-id=A/service=vpcflowlogs/aws-region=R/..."
    key = (
        "AWSLogs/aws-account-id=123456789012/service=vpcflowlogs/aws-region=us-east-1/"
        "year=2024/month=01/day=01/123456789012_vpcflowlogs_us-east-1_tgw-attach-1_20240101T0005Z_a.log.gz"
    )
    obj = parse_key(key)
    assert obj is not None and obj.hive and obj.account == "123456789012" and obj.day == "01"


def test_folder_states_follow_the_key_grammar() -> None:
    from vpcflow_partitioner.keys import folder_state

    plain = folder_state("logs/AWSLogs/123456789012/vpcflowlogs/us-east-1/2024/02/")
    assert plain is not None and (plain.level, plain.free, plain.hive, plain.date) == (
        "month",
        False,
        False,
        (2024, 2),
    )
    copied = folder_state("AWSLogs/AWSLogs/")  # a copy: still a free prefix, and a root again
    assert copied is not None and (copied.level, copied.free) == ("root", True)
    hive = folder_state("AWSLogs/aws-account-id=123456789012/service=vpcflowlogs/aws-region=eusc-de-east-1/")
    assert hive is not None and (hive.level, hive.hive) == ("region", True)
    # Mixed styles and other services' trees hold no flow logs; inside an account folder the
    # path is never a free prefix again.
    assert folder_state("AWSLogs/aws-account-id=123456789012/vpcflowlogs/") is None
    assert folder_state("AWSLogs/123456789012/CloudTrail/") is None
    assert folder_state("AWSLogs/123456789012/vpcflowlogs/us-east-1/2024/01/01/09/x/") is None
    assert folder_state("") is not None and folder_state("anything/at/all/") is not None


def test_a_key_nested_in_another_account_folder_is_marked() -> None:
    nested = parse_key(
        f"AWSLogs/123456789012/backup/AWSLogs/123456789012/vpcflowlogs/us-east-1/2022/08/29/{FILE}"
    )
    assert nested is not None and nested.nested
    copied = parse_key(f"AWSLogs/AWSLogs/123456789012/vpcflowlogs/us-east-1/2022/08/29/{FILE}")
    assert copied is not None and not copied.nested
