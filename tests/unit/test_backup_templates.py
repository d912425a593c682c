"""The backup role's scripts and units, rendered the way the role renders them, then linted."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from testlib import REPO, ansible_template, collection_plugin

ROLE = REPO / "roles" / "backup"
backup_sqlite = collection_plugin("filter", "backup_sqlite")


def render(template: str, tmp_path: Path, **overrides: object) -> str:
    extra = {"__backup_tools_image": "algo-trade/backup-tools:0123456789abcdef", **overrides}
    return ansible_template(
        ROLE / "templates" / template,
        tmp_path / template.removesuffix(".j2"),
        [ROLE / "defaults" / "main.yml", ROLE / "vars" / "main.yml"],
        extra,
    )


@pytest.mark.parametrize("template", ["backup.sh.j2", "sqlite-tool.sh.j2"])
def test_scripts_pass_shellcheck(tmp_path: Path, template: str) -> None:
    render(template, tmp_path)
    if shutil.which("shellcheck") is None:
        pytest.fail("shellcheck is not installed (tests/testbed/setup.sh installs it)")
    script = tmp_path / template.removesuffix(".j2")
    result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_backup_script_dumps_from_one_snapshot_and_keeps_no_password(tmp_path: Path) -> None:
    script = render("backup.sh.j2", tmp_path, backup_keep=4, backup_dir="/srv/backups")
    assert "SELECT pg_export_snapshot() || ' ' || extract(epoch FROM clock_timestamp());" in script
    # bots.db right after the snapshot, before the dump (the manifest's moments).
    assert (
        script.index("pg_export_snapshot()")
        < script.index('"${sqlite_tool[@]}" backup')
        < script.index("pg_dump -U")
    )
    assert (
        '"moments": {"timescaledb": $db_moment, "sqlite_from": $sqlite_from, "sqlite_to": $sqlite_to}'
        in script
    )
    assert 'pg_dump -U "$POSTGRES_USER" -d "$POSTGRES_DB" -Fc --snapshot="$1"' in script
    assert "SET TRANSACTION SNAPSHOT" in script
    assert "--globals-only --no-role-passwords" in script
    assert "backup_dir=/srv/backups" in script
    assert "keep=4" in script
    # Every SQLite database of the volume through the backup API, in one helper as the
    # app's UID; no copy of a volume.
    assert '"${sqlite_tool[@]}" backup-all /data /backup' in script
    assert '"format": 2,' in script
    assert "tar " not in script
    assert "cp -a" not in script


def test_sqlite_tool_uses_the_online_backup_api(tmp_path: Path) -> None:
    tool = render("sqlite-tool.sh.j2", tmp_path)
    assert ".backup '$2'" in tool
    assert "PRAGMA integrity_check;" in tool
    assert 'rm -f "$3-wal" "$3-shm" "$3-journal"' in tool


def test_timer_runs_the_backup_script(tmp_path: Path) -> None:
    service = render("backup.service.j2", tmp_path)
    timer = render("backup.timer.j2", tmp_path, backup_schedule="hourly")
    assert "ExecStart=/usr/local/sbin/algo-trade-backup" in service
    assert "Type=oneshot" in service
    assert "OnCalendar=hourly" in timer
    assert "Persistent=true" in timer


def test_helper_image_adds_sqlite3_only_when_missing(tmp_path: Path) -> None:
    dockerfile = render("Dockerfile.j2", tmp_path)
    assert dockerfile.count("FROM ") == 1
    assert "FROM debian:trixie-slim" in dockerfile
    assert "if ! command -v sqlite3" in dockerfile
    assert "USER 10001:10001" in dockerfile


def test_sqlite_tool_backs_up_a_database_being_written(tmp_path: Path) -> None:
    """The rendered helper on this machine's sqlite3: a consistent copy while a writer commits."""
    if shutil.which("sqlite3") is None:
        pytest.fail("sqlite3 is not installed (tests/testbed/setup.sh installs it)")
    render("sqlite-tool.sh.j2", tmp_path)
    tool = ["sh", str(tmp_path / "sqlite-tool.sh")]
    source, copy = tmp_path / "bots.db", tmp_path / "copy.db"
    db = sqlite3.connect(source, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE bots (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    stop = threading.Event()

    def write() -> None:
        writer = sqlite3.connect(source, isolation_level=None, timeout=10)
        while not stop.is_set():
            writer.execute("INSERT INTO bots (name) VALUES ('bot')")
        writer.close()

    thread = threading.Thread(target=write)
    thread.start()
    try:
        time.sleep(0.2)
        backup = subprocess.run(
            [*tool, "backup", str(source), str(copy)], capture_output=True, text=True, check=False
        )
        assert backup.returncode == 0, backup.stderr
    finally:
        stop.set()
        thread.join()
    counts = subprocess.run([*tool, "counts", str(copy)], check=True, capture_output=True, text=True)
    table, rows = counts.stdout.split()
    total = db.execute("SELECT count(*) FROM bots").fetchone()[0]
    assert table == "bots"
    assert 0 < int(rows) < total, "a copy from the middle of the writes"
    assert not Path(f"{copy}-wal").exists(), "the copy is one self-contained file"

    restored = tmp_path / "restored.db"
    restored.write_bytes(b"stale")
    Path(f"{restored}-wal").write_bytes(b"stale wal")
    subprocess.run([*tool, "restore", str(copy), str(restored)], check=True, capture_output=True)
    assert not Path(f"{restored}-wal").exists()
    check = sqlite3.connect(restored)
    assert check.execute("SELECT count(*) FROM bots").fetchone()[0] == int(rows)


def test_backup_script_asks_the_app_for_a_hostile_health_path_as_it_is(tmp_path: Path) -> None:
    """The health path (stack_health_path, through the stack's local fact) reaches the
    backup's version probe as one printf argument: the request line holds exactly that
    path, % signs included, and nothing in it runs. Seen to fail with the line of before
    (the path inside printf's single-quoted format): `$(touch ...)` ran and printf took
    `%2F%s` for conversions."""
    canary = tmp_path / "ran"
    path = f"/api/bots?q='$(touch {canary})'&r=\"`touch {canary}`\";touch {canary}%2F%s"
    script = render("backup.sh.j2", tmp_path, stack_health_path=path)
    (line,) = [line for line in script.splitlines() if "printf 'GET" in line]
    sent = tmp_path / "sent"
    subprocess.run(["bash", "-c", f"exec 3>{sent}\n{line}"], check=True, cwd=tmp_path)
    assert sent.read_bytes() == f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode()
    assert not canary.exists(), "a command in the health path ran"


def sqlite_tool(tmp_path: Path) -> list[str]:
    """The rendered helper, run with this machine's sh and sqlite3."""
    if shutil.which("sqlite3") is None:
        pytest.fail("sqlite3 is not installed (tests/testbed/setup.sh installs it)")
    render("sqlite-tool.sh.j2", tmp_path)
    return ["sh", str(tmp_path / "sqlite-tool.sh")]


def bot_database(path: Path, bots: int, wal: bool = True) -> None:
    """A bot registry as the app makes it (the sample's tables), with `bots` bots."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None)
    if wal:
        db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE bot_configs (bot_id TEXT PRIMARY KEY, symbol TEXT, created_at INTEGER)")
    db.execute("CREATE TABLE bot_runtime_state (bot_id TEXT PRIMARY KEY, status TEXT)")
    for i in range(bots):
        db.execute("INSERT INTO bot_configs VALUES (?, 'ETH', 1700000000)", (f"bot-{i}",))
    db.close()


def a_volume(root: Path) -> Path:
    """An app-data volume: the daemon's and the backtest daemon's bot databases, a
    service's database without the .db suffix, and files that are no database."""
    data = root / "data"
    bot_database(data / "bots.db", 3)
    bot_database(data / "backtest-daemon" / "bots.db", 2)
    bot_database(data / "collector" / "state.sqlite", 1, wal=False)
    (data / "notes.db").write_text("not a database\n")
    (data / "empty.db").write_bytes(b"")
    (data / ".write-test-42").write_bytes(b"")
    return data


def test_sqlite_tool_finds_every_database_of_a_volume(tmp_path: Path) -> None:
    """Databases by SQLite's header, whatever their name; no WAL, SHM or other file."""
    tool = sqlite_tool(tmp_path)
    data = a_volume(tmp_path)
    # An open WAL database keeps its -wal and -shm files beside it.
    held = sqlite3.connect(data / "bots.db")
    held.execute("SELECT count(*) FROM bot_configs").fetchone()
    assert (data / "bots.db-wal").exists()
    listed = subprocess.run([*tool, "list", str(data)], capture_output=True, text=True, check=True)
    held.close()
    assert listed.stdout.splitlines() == [
        f"{data}/backtest-daemon/bots.db",
        f"{data}/bots.db",
        f"{data}/collector/state.sqlite",
    ]


def test_sqlite_tool_backs_up_every_database_of_a_volume(tmp_path: Path) -> None:
    tool = sqlite_tool(tmp_path)
    data, dest = a_volume(tmp_path), tmp_path / "backup"
    dest.mkdir()
    result = subprocess.run(
        [*tool, "backup-all", str(data), str(dest)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"database {data}/backtest-daemon/bots.db backtest-daemon__bots.db",
        "rows bot_configs 2",
        "rows bot_runtime_state 0",
        f"database {data}/bots.db bots.db",
        "rows bot_configs 3",
        "rows bot_runtime_state 0",
        f"database {data}/collector/state.sqlite collector__state.sqlite",
        "rows bot_configs 1",
        "rows bot_runtime_state 0",
    ]
    assert sorted(p.name for p in dest.iterdir()) == [
        "backtest-daemon__bots.db",
        "bots.db",
        "collector__state.sqlite",
    ]
    copy = sqlite3.connect(dest / "backtest-daemon__bots.db")
    assert copy.execute("SELECT count(*) FROM bot_configs").fetchone()[0] == 2
    assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


@pytest.mark.parametrize(
    ("files", "said"),
    [
        (["bad name.db"], "a database's path may hold letters, digits"),
        (["a__b.db", "a/b.db"], "would both be named a__b.db; rename one"),
        (["db.dump"], "a file of the backup's own; rename it"),
    ],
)
def test_sqlite_tool_refuses_a_volume_it_cannot_name_whole(
    tmp_path: Path, files: list[str], said: str
) -> None:
    """A database it cannot name fails the whole backup (no copy without it).

    Seen to pass the first case (the run went on without the database) with the list
    piped into the loop: the pipe lost the list's status.
    """
    tool = sqlite_tool(tmp_path)
    data, dest = tmp_path / "data", tmp_path / "backup"
    dest.mkdir()
    bot_database(data / "bots.db", 1)
    for file in files:
        bot_database(data / file, 1)
    result = subprocess.run(
        [*tool, "backup-all", str(data), str(dest)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0, result.stdout
    assert said in result.stderr


def test_sqlite_tool_restores_into_a_directory_it_makes(tmp_path: Path) -> None:
    """The backtest daemon's database goes back into a volume recreated empty."""
    tool = sqlite_tool(tmp_path)
    source = tmp_path / "copy.db"
    bot_database(source, 2, wal=False)
    target = tmp_path / "data" / "backtest-daemon" / "bots.db"
    subprocess.run([*tool, "restore", str(source), str(target)], check=True, capture_output=True)
    assert sqlite3.connect(target).execute("SELECT count(*) FROM bot_configs").fetchone()[0] == 2
    assert not Path(f"{target}.restoring").exists()


# A docker stand-in for the backup script: the database answers as psql, pg_dump and
# pg_dumpall would; `docker run` of the helper runs the rendered sqlite-tool on FAKE_DATA
# (the volume) and the script's work directory (naming paths as the container sees them).
FAKE_DOCKER = r"""#!/usr/bin/env bash
set -euo pipefail
args=" $* "
case "$args" in
  *" volume ls "*) echo algo-trade_app-data ;;
  *" ps --status running -q db "*) echo db1 ;;
  *" ps -a -q "*) echo "container-${*: -1}" ;;
  *" inspect "*) echo "image-of-${*: -1}" ;;
  *" port app "*) exit 1 ;;
  *" exec -T db "*pg_dumpall*) echo "CREATE ROLE algo;" ;;
  *" exec -T db "*"pg_dump -U"*) printf 'PGDMP fake dump' ;;
  *" exec -T db "*psql*)
    while IFS= read -r line; do
      case "$line" in
        *pg_export_snapshot*) echo "00000003-0000001B-1 1700000000.250000" ;;
        *"current_setting('server_version')"*)
          printf '%s\n' "17.6" "2.19.3" '{"public.trades": 5}' ;;
      esac
    done ;;
  *" run "*)
    backup=""
    while [ $# -gt 0 ]; do
      case "$1" in
        -v) case "$2" in *:/backup) backup=${2%:/backup} ;; esac; shift 2 ;;
        algo-trade/backup-tools:*) shift; break ;;
        *) shift ;;
      esac
    done
    cmd=$1; shift
    mapped=()
    for arg in "$@"; do
      arg=${arg/#\/data/$FAKE_DATA}
      mapped+=("${arg/#\/backup/$backup}")
    done
    sh "$FAKE_TOOL" "$cmd" "${mapped[@]}" | sed "s|$FAKE_DATA|/data|g" ;;
  *) echo "fake docker: unexpected $*" >&2; exit 1 ;;
esac
"""


def run_backup_script(
    tmp_path: Path, data: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    backups, project = tmp_path / "backups", tmp_path / "project"
    project.mkdir()
    render("sqlite-tool.sh.j2", tmp_path)
    render("backup.sh.j2", tmp_path, backup_dir=str(backups), backup_project_dir=str(project))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "FAKE_DATA": str(data),
        "FAKE_TOOL": str(tmp_path / "sqlite-tool.sh"),
    }
    result = subprocess.run(
        ["bash", str(tmp_path / "backup.sh"), *args], capture_output=True, text=True, check=False, env=env
    )
    return result, backups


def test_backup_script_keeps_every_database_with_its_path_and_rows(tmp_path: Path) -> None:
    """The script end to end on a docker stand-in: each database of the volume a file of
    the backup, its path in /data and row counts in the manifest (format 2), which the
    restore's filter reads back whole."""
    if shutil.which("sqlite3") is None:
        pytest.fail("sqlite3 is not installed (tests/testbed/setup.sh installs it)")
    result, backups = run_backup_script(tmp_path, a_volume(tmp_path))
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.splitlines()[-1])
    assert path.parent == backups
    manifest = json.loads((path / "manifest.json").read_text())
    # Named after when it was taken, not after a database file (seen to fail: the loop
    # over the databases overwrote the backup's name with the last file's).
    assert re.fullmatch(r"\d{8}T\d{6}Z", path.name), path.name
    assert manifest["name"] == path.name
    assert manifest["format"] == 2
    assert manifest["sqlite"] == {
        "/data/backtest-daemon/bots.db": "backtest-daemon__bots.db",
        "/data/bots.db": "bots.db",
        "/data/collector/state.sqlite": "collector__state.sqlite",
    }
    assert manifest["tables"]["sqlite"] == {
        "/data/backtest-daemon/bots.db": {"bot_configs": 2, "bot_runtime_state": 0},
        "/data/bots.db": {"bot_configs": 3, "bot_runtime_state": 0},
        "/data/collector/state.sqlite": {"bot_configs": 1, "bot_runtime_state": 0},
    }
    assert manifest["tables"]["timescaledb"] == {"public.trades": 5}
    assert set(manifest["files"]) == {"db.dump", "globals.sql", *manifest["sqlite"].values()}
    assert sorted(p.name for p in path.iterdir()) == sorted([*manifest["files"], "manifest.json"])
    moments = manifest["moments"]
    assert moments["timescaledb"] == 1700000000.25
    assert moments["sqlite_from"] <= moments["sqlite_to"]
    copy = sqlite3.connect(path / "backtest-daemon__bots.db")
    assert copy.execute("SELECT count(*) FROM bot_configs").fetchone()[0] == 2
    read = backup_sqlite.backup_sqlite(manifest, ["/data/bots.db", "/data/late/bots.db"])
    assert read["problems"] == []
    assert read["remove"] == ["/data/late/bots.db"]
    assert {p: d["file"] for p, d in read["databases"].items()} == manifest["sqlite"]


def test_backup_script_refuses_a_volume_without_databases_but_records_it_before_a_restore(
    tmp_path: Path,
) -> None:
    """A regular backup of a volume the app never ran on fails; the restore's backup of
    the data it replaces (a lost volume, recreated empty) records no database."""
    if shutil.which("sqlite3") is None:
        pytest.fail("sqlite3 is not installed (tests/testbed/setup.sh installs it)")
    data = tmp_path / "data"
    data.mkdir()
    result, backups = run_backup_script(tmp_path, data)
    assert result.returncode != 0
    assert "there is no SQLite database in algo-trade_app-data" in result.stderr
    result = subprocess.run(
        ["bash", str(tmp_path / "backup.sh"), "--before-restore"],
        capture_output=True,
        text=True,
        check=False,
        env={
            "PATH": f"{tmp_path / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "FAKE_DATA": str(data),
            "FAKE_TOOL": str(tmp_path / "sqlite-tool.sh"),
        },
    )
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.splitlines()[-1])
    assert path.parent == backups / "before-restore"
    manifest = json.loads((path / "manifest.json").read_text())
    assert (manifest["kind"], manifest["sqlite"], manifest["tables"]["sqlite"]) == ("before-restore", {}, {})
    assert set(manifest["files"]) == {"db.dump", "globals.sql"}
