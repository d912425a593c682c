"""The filters behind the schema migrations (plugins/filter/migrations.py): V files in
version order, a release's list with checksums, and the plan against a database's history.

Seen to fail with string order in migration_order (V10 before V9), with the plan
comparing only file names (an edited file went unnoticed) and with the baseline taken
for any database with tables (a database holding one of the setup's four tables).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from testlib import collection_plugin

migrations = collection_plugin("filter", "migrations")

SETUP = """\
-- schema
CREATE EXTENSION IF NOT EXISTS timescaledb;
CREATE TABLE IF NOT EXISTS ohlcv (time TIMESTAMPTZ NOT NULL);
create table public.Trades (x int);
CREATE TEMP TABLE scratch (x int);
/* CREATE TABLE commented_out (x int); */
SELECT 'CREATE TABLE in_a_string (x int)';
CREATE UNLOGGED TABLE "Quoted ""Name\"\"\" (x int);
"""


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_versions_in_numeric_order_not_string_order() -> None:
    names = [
        "V10__ten.sql",
        "V9__nine.sql",
        "V001__one.sql",
        "V2_1__two_one.sql",
        "V2__two.sql",
        "V1.5__x.sql",
    ]
    assert migrations.migration_order(names) == [
        "V001__one.sql",
        "V1.5__x.sql",
        "V2__two.sql",
        "V2_1__two_one.sql",
        "V9__nine.sql",
        "V10__ten.sql",
    ]


def test_order_keeps_the_paths() -> None:
    paths = ["scripts/migrations/V018__a.sql", "scripts/migrations/V002__b.sql"]
    assert migrations.migration_order(paths) == paths[::-1]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["V1__a.sql", "V001__b.sql"], "V1__a.sql and V001__b.sql have the same version"),
        (["V1__a.sql", "V1.0__b.sql"], "same version"),
        (["V1_a.sql"], "V1_a.sql: not a versioned migration's name"),
        (["Vx__a.sql"], "not a versioned migration's name"),
        (["V1__a b.sql"], "not a versioned migration's name"),
        (["V1__a.sql\nx"], "not a versioned migration's name"),
    ],
)
def test_bad_names_and_duplicate_versions_are_refused(names: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        migrations.migration_order(names)


def test_tables_a_script_creates() -> None:
    assert migrations.sql_tables(SETUP) == ["ohlcv", "trades", 'Quoted "Name"']


def test_files_with_checksums_and_the_setup_marked() -> None:
    files = migrations.migration_files(
        [("scripts/setup_timescale.sql", SETUP), ("scripts/migrations/V001__signals.sql", "SELECT 1;\n")]
    )
    assert files == [
        {
            "file": "setup_timescale.sql",
            "version": "",
            "sha256": sha(SETUP),
            "setup": True,
            "tables": ["ohlcv", "trades", 'Quoted "Name"'],
        },
        {"file": "V001__signals.sql", "version": "001", "sha256": sha("SELECT 1;\n")},
    ]
    assert files[1]["sha256"] == hashlib.sha256(b"SELECT 1;\n").hexdigest()


def test_a_first_v_file_is_no_setup() -> None:
    files = migrations.migration_files([("V001__a.sql", "CREATE TABLE a (x int);")])
    assert "setup" not in files[0]


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("a/x.sql", ""), ("b/x.sql", "")], "x.sql is listed twice"),
        ([("x y.sql", "")], "must be letters, digits"),
        ([("x.txt", "")], "ending in .sql"),
        ([("x.sql", b"\xff\xfe")], "not UTF-8"),
        ([("x.sql", "bad \udcff")], "not UTF-8"),
    ],
)
def test_bad_files_are_refused(pairs: list[tuple[str, Any]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        migrations.migration_files(pairs)


FILES: list[dict[str, Any]] = [
    {
        "file": "setup_timescale.sql",
        "version": "",
        "sha256": "s",
        "setup": True,
        "tables": ["ohlcv", "trades"],
    },
    {"file": "V001__a.sql", "version": "001", "sha256": "a"},
    {"file": "V002__b.sql", "version": "002", "sha256": "b"},
]


def row(name: str, checksum: str) -> dict[str, str]:
    return {"file": name, "checksum": checksum, "applied_at": "2026-01-01T00:00:00+00:00"}


def test_an_empty_database_gets_every_file() -> None:
    plan = migrations.migration_plan(FILES, None, [])
    assert plan["pending"] == ["setup_timescale.sql", "V001__a.sql", "V002__b.sql"]
    assert plan["baseline"] == ""
    assert plan["history"] is False


def test_applied_files_are_skipped_and_new_ones_pending() -> None:
    history = [row("setup_timescale.sql", "s"), row("V001__a.sql", "a")]
    plan = migrations.migration_plan(FILES, history, ["ohlcv", "trades"])
    assert plan["applied"] == ["setup_timescale.sql", "V001__a.sql"]
    assert plan["pending"] == ["V002__b.sql"]
    assert plan["changed"] == []
    assert plan["late"] == []


def test_a_file_changed_after_it_was_applied_is_named() -> None:
    history = [row("setup_timescale.sql", "s"), row("V001__a.sql", "old")]
    plan = migrations.migration_plan(FILES, history, [])
    assert plan["changed"] == [
        {"file": "V001__a.sql", "applied": "old", "now": "a", "applied_at": "2026-01-01T00:00:00+00:00"}
    ]


def test_a_database_of_before_migrations_takes_the_setup_as_baseline() -> None:
    plan = migrations.migration_plan(FILES, None, ["trades", "ohlcv", "other"])
    assert plan["baseline"] == "setup_timescale.sql"
    assert plan["baseline_tables"] == ["ohlcv", "trades"]
    assert plan["pending"] == ["V001__a.sql", "V002__b.sql"]


def test_a_database_with_some_of_the_setups_tables_is_not_taken_as_baseline() -> None:
    plan = migrations.migration_plan(FILES, None, ["ohlcv"])
    assert plan["baseline"] == ""
    assert plan["baseline_missing"] == ["trades"]


def test_a_setup_that_creates_no_table_is_baseline_for_any_table() -> None:
    files = [{**FILES[0], "tables": []}, *FILES[1:]]
    assert migrations.migration_plan(files, None, ["x"])["baseline"] == "setup_timescale.sql"
    assert migrations.migration_plan(files, None, [])["baseline"] == ""


def test_a_history_table_is_the_truth_even_when_empty() -> None:
    plan = migrations.migration_plan(FILES, [], ["ohlcv", "trades"])
    assert plan["baseline"] == ""
    assert plan["pending"][0] == "setup_timescale.sql"


def test_late_and_unlisted_files() -> None:
    history = [row("setup_timescale.sql", "s"), row("V002__b.sql", "b"), row("V003__c.sql", "c")]
    plan = migrations.migration_plan(FILES, history, [])
    assert plan["pending"] == ["V001__a.sql"]
    assert plan["late"] == ["V001__a.sql"]
    assert plan["unlisted"] == ["V003__c.sql"]
