"""What a restore reads from a backup's manifest about its SQLite databases (filter
algotrade.deploy.backup_sqlite): this version's backups (format 2: every database of the
app-data volume) and those of before (format 1: the daemon's bots.db alone)."""

from __future__ import annotations

from typing import Any

import pytest
from testlib import collection_plugin

backup_sqlite = collection_plugin("filter", "backup_sqlite").backup_sqlite
SUM = {"sha256": "0" * 64, "bytes": 1}
DAEMON = {"_sqlx_migrations": 1, "bot_configs": 5, "bot_runtime_state": 5}
BACKTEST = {"_sqlx_migrations": 1, "bot_configs": 2, "bot_runtime_state": 2}


def format2(**changes: object) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "format": 2,
        "tables": {
            "timescaledb": {"public.trades": 3},
            "sqlite": {"/data/bots.db": DAEMON, "/data/backtest-daemon/bots.db": BACKTEST},
        },
        "sqlite": {"/data/bots.db": "bots.db", "/data/backtest-daemon/bots.db": "backtest-daemon__bots.db"},
        "files": {"db.dump": SUM, "globals.sql": SUM, "bots.db": SUM, "backtest-daemon__bots.db": SUM},
    }
    return {**manifest, **changes}


def format1(with_bots: bool = True) -> dict[str, Any]:
    """As the backup script of before wrote it: one bots.db, its counts flat."""
    files = {"db.dump": SUM, "globals.sql": SUM} | ({"bots.db": SUM} if with_bots else {})
    return {
        "format": 1,
        "tables": {"timescaledb": {"public.trades": 3}, "sqlite": {"bots": 160} if with_bots else {}},
        "files": files,
    }


def test_a_backup_of_the_whole_volume_puts_back_each_database_and_removes_the_rest() -> None:
    read = backup_sqlite(format2(), ["/data/bots.db", "/data/late-service/bots.db"])
    assert read["problems"] == []
    assert read["whole_volume"] is True
    assert read["databases"] == {
        "/data/backtest-daemon/bots.db": {"file": "backtest-daemon__bots.db", "tables": BACKTEST},
        "/data/bots.db": {"file": "bots.db", "tables": DAEMON},
    }
    assert read["remove"] == ["/data/late-service/bots.db"]
    assert read["summary"] == (
        "/data/backtest-daemon/bots.db: _sqlx_migrations=1, bot_configs=2, bot_runtime_state=2; "
        "/data/bots.db: _sqlx_migrations=1, bot_configs=5, bot_runtime_state=5"
    )


def test_a_backup_of_a_volume_without_databases_removes_every_one() -> None:
    manifest = format2(sqlite={}, tables={"timescaledb": {}, "sqlite": {}}, files={"db.dump": SUM})
    read = backup_sqlite(manifest, ["/data/bots.db", "/data/backtest-daemon/bots.db"])
    assert (read["problems"], read["databases"], read["summary"]) == ([], {}, "none")
    assert read["remove"] == ["/data/backtest-daemon/bots.db", "/data/bots.db"]


def test_a_backup_of_before_sets_bots_db_only() -> None:
    """Format 1 knows nothing of the other databases: they stay as they are."""
    read = backup_sqlite(format1(), ["/data/bots.db", "/data/backtest-daemon/bots.db"])
    assert read["problems"] == []
    assert read["whole_volume"] is False
    assert read["databases"] == {"/data/bots.db": {"file": "bots.db", "tables": {"bots": 160}}}
    assert read["remove"] == []
    assert read["summary"] == "/data/bots.db: bots=160"


def test_a_backup_of_before_without_bots_db_removes_bots_db_only() -> None:
    """As the restore of before did: a backup of a volume the app never ran on."""
    read = backup_sqlite(format1(with_bots=False), ["/data/bots.db", "/data/backtest-daemon/bots.db"])
    assert (read["problems"], read["databases"]) == ([], {})
    assert read["remove"] == ["/data/bots.db"]
    assert backup_sqlite(format1(with_bots=False), [])["remove"] == []


def test_a_manifest_without_a_format_is_one_of_before() -> None:
    manifest = format1()
    del manifest["format"]
    assert backup_sqlite(manifest)["databases"] == backup_sqlite(format1())["databases"]


@pytest.mark.parametrize(
    ("manifest", "said"),
    [
        (
            format2(sqlite={"/data/../etc/bots.db": "bots.db"}),
            "\"sqlite\" names '/data/../etc/bots.db' is not a plain path in /data",
        ),
        (format2(sqlite={"/var/lib/bots.db": "bots.db"}), "'/var/lib/bots.db' is not a file in /data"),
        (format2(sqlite={"/data": "bots.db"}), "'/data' is not a file in /data"),
        (format2(sqlite={"/data/bots.db": "../bots.db"}), "/data/bots.db's copy '../bots.db' is not one of"),
        (format2(sqlite={"/data/bots.db": "db.dump"}), "/data/bots.db's copy 'db.dump' is not one of"),
        (format2(sqlite={"/data/bots.db": "missing.db"}), "/data/bots.db's copy 'missing.db' is not one of"),
        (
            format2(tables={"sqlite": {"/data/bots.db": {"bot_configs": "5"}}}),
            "tables.sqlite must give the row count of each table of /data/bots.db",
        ),
        (
            format2(tables={"sqlite": {"/data/bots.db": DAEMON}}),
            "tables.sqlite must give the row count of each table of /data/backtest-daemon/bots.db",
        ),
        (
            format2(
                tables={
                    "sqlite": {
                        "/data/bots.db": DAEMON,
                        "/data/backtest-daemon/bots.db": BACKTEST,
                        "/data/x.db": {},
                    }
                }
            ),
            'tables.sqlite counts databases that "sqlite" does not list: /data/x.db',
        ),
        (
            format2(sqlite={"/data/bots.db": "bots.db", "/data/backtest-daemon/bots.db": "bots.db"}),
            "two databases name one file",
        ),
        (format2(sqlite=None), '"sqlite" and tables.sqlite must map each database'),
        ({**format1(), "tables": {"sqlite": {"bots": -1}}}, "tables.sqlite must give bots.db's row count"),
        (format2(format=3), "manifest format 3 is not one this collection reads (1 or 2)"),
    ],
)
def test_a_manifest_that_does_not_describe_its_databases_whole_is_named(
    manifest: dict[str, Any], said: str
) -> None:
    """The restore refuses it before anything changes (restore_checks.yml): a path outside
    the volume, a copy that is not a checked file of the backup, counts missing or not
    numbers. Nothing to restore is taken from such an entry."""
    read = backup_sqlite(manifest, ["/data/bots.db"])
    assert any(said in problem for problem in read["problems"]), read["problems"]
    assert all(not path.startswith(("/data/..", "/var")) for path in read["databases"])
