"""GLUE_TABLES: how a deployment names many tables, and how --table picks one."""

from __future__ import annotations

import pytest
from vpcflow_partitioner.config import Settings, SettingsError, TableName

TWO = {"GLUE_TABLES": "flowlogs.text, 111122223333:org.parquet"}


def names(settings: Settings) -> list[str]:
    return [str(n) for n in settings.table_names]


def test_glue_tables_names_each_table_with_its_catalog() -> None:
    settings = Settings.from_env(TWO | {"GLUE_CATALOG_ID": "444455556666"})
    assert names(settings) == ["444455556666:flowlogs.text", "111122223333:org.parquet"]
    assert (settings.database, settings.table, settings.catalog_id) == ("flowlogs", "text", "444455556666")
    one = settings.for_table(settings.table_names[1])
    assert (one.database, one.table, one.catalog_id, names(one)) == (
        "org",
        "parquet",
        "111122223333",
        ["111122223333:org.parquet"],
    )


def test_the_one_table_form_is_one_table() -> None:
    settings = Settings.from_env({"GLUE_DATABASE": "flowlogs", "GLUE_TABLE": "vpc"})
    assert names(settings) == ["flowlogs.vpc"]
    assert settings.tables == (TableName("", "flowlogs", "vpc"),)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("flowlogs", "'flowlogs' is not a table"),
        ("flowlogs.a,flowlogs.a", "names flowlogs.a twice"),
        ("12345:flowlogs.a", "is not a table"),
        ("db.a.b", "is not a table"),
        (" , ", "names no table"),
    ],
)
def test_a_malformed_list_is_refused_in_one_line(value: str, error: str) -> None:
    with pytest.raises(SettingsError, match=error):
        Settings.from_env({"GLUE_TABLES": value})


def test_a_table_flag_picks_one_of_the_tables() -> None:
    assert names(Settings.from_env(TWO, GLUE_TABLE="parquet")) == ["111122223333:org.parquet"]
    assert names(Settings.from_env(TWO, GLUE_TABLE="flowlogs.text")) == ["flowlogs.text"]
    with pytest.raises(SettingsError, match="not one of GLUE_TABLES"):
        Settings.from_env(TWO, GLUE_TABLE="other")


def test_a_bare_name_two_tables_share_is_refused() -> None:
    with pytest.raises(SettingsError, match="more than one"):
        Settings.from_env({"GLUE_TABLES": "a.vpc,b.vpc"}, GLUE_TABLE="vpc")


def test_database_and_table_flags_name_a_table_outright() -> None:
    assert names(Settings.from_env(TWO, GLUE_DATABASE="x", GLUE_TABLE="y")) == ["x.y"]


def test_two_namings_that_disagree_are_refused() -> None:
    with pytest.raises(SettingsError, match="GLUE_TABLES does not list"):
        Settings.from_env(TWO | {"GLUE_DATABASE": "flowlogs", "GLUE_TABLE": "other"})
    assert names(Settings.from_env(TWO | {"GLUE_DATABASE": "flowlogs", "GLUE_TABLE": "text"})) == [
        "flowlogs.text",
        "111122223333:org.parquet",
    ]


def test_one_table_spelt_twice_is_refused() -> None:
    with pytest.raises(SettingsError, match="twice"):
        Settings.from_env({"GLUE_TABLES": "flowlogs.A,flowlogs.a"})
    with pytest.raises(SettingsError, match="twice"):
        Settings.from_env({"GLUE_TABLES": "123456789012:db.t,db.t", "GLUE_CATALOG_ID": "123456789012"})


def test_a_database_flag_alone_picks_that_databases_tables() -> None:
    assert names(Settings.from_env(TWO, GLUE_DATABASE="org")) == ["111122223333:org.parquet"]
    with pytest.raises(SettingsError, match="no table of GLUE_TABLES"):
        Settings.from_env(TWO, GLUE_DATABASE="other")


def test_a_database_flag_is_not_mixed_with_the_shells_one_table() -> None:
    shell = TWO | {"GLUE_DATABASE": "flowlogs", "GLUE_TABLE": "text"}
    assert names(Settings.from_env(shell, GLUE_DATABASE="org")) == ["111122223333:org.parquet"]
    assert names(Settings.from_env(TWO | {"GLUE_DATABASE": "FlowLogs", "GLUE_TABLE": "TEXT"})) == [
        "flowlogs.text",
        "111122223333:org.parquet",
    ]
