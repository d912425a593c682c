"""The backup role's scripts and units, rendered the way the role renders them, then linted."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from testlib import REPO

ROLE = REPO / "roles" / "backup"


def render(template: str, tmp_path: Path, **overrides: object) -> str:
    out = tmp_path / template.removesuffix(".j2")
    extra = {"__backup_tools_image": "algo-trade/backup-tools:0123456789abcdef", **overrides}
    result = subprocess.run(
        [
            "ansible",
            "localhost",
            "-m",
            "ansible.builtin.template",
            "-a",
            f"src={ROLE / 'templates' / template} dest={out}",
            "-e",
            f"@{ROLE / 'defaults' / 'main.yml'}",
            "-e",
            f"@{ROLE / 'vars' / 'main.yml'}",
            "-e",
            json.dumps(extra),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out.read_text()


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
    # SQLite through its backup API in a helper as the app's UID; no copy of a volume.
    assert 'sqlite_tool[@]}" backup /data/bots.db /backup/bots.db' in script
    assert "tar " not in script
    assert "cp -a" not in script


def test_sqlite_tool_uses_the_online_backup_api(tmp_path: Path) -> None:
    tool = render("sqlite-tool.sh.j2", tmp_path)
    assert ".backup '$3'" in tool
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
