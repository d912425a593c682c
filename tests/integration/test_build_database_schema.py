"""The build database's schema script (the image role's build_database_schema.sh.j2), run
by sh in a throwaway TimescaleDB of the test bed on this machine's engine, as the role runs
it (one exec, the script on stdin): the release's files in order, each in a transaction of
its own; a failing file is named with psql's error, nothing of it is kept, and the next one
runs; a file's text reaches psql as it is, whatever it holds (shell syntax, quotes, tabs,
another file's end marker). Seen to fail with a fixed end marker (EOF): the hostile file's
text ended early and the rest ran as shell.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from testlib import render_template

DB_IMAGE = "local/timescaledb:trixie"

FIRST = "CREATE TABLE t1 (a int);\nINSERT INTO t1 VALUES (1);"
# Shell syntax, quotes, a tab, a here-document end of the usual kind and the first file's
# own end marker, inside the SQL and in a comment.
VALUE = "\nEOF\nALGOTRADE_SQL_" + hashlib.sha256(FIRST.encode()).hexdigest() + "\n$(id)\t`id` 'q\" \\"
HOSTILE = (
    "-- $(touch /pwned) `touch /pwned` 'quote\" \\\n"
    "CREATE TABLE t3 (a text);\n"
    f"INSERT INTO t3 VALUES ($${VALUE}$$);\n"
)
MIGRATIONS = {
    "V001__first.sql": FIRST,
    "V002__broken.sql": "CREATE TABLE t2 (a int);\nSELECT nope FROM nowhere;\n",
    "V003__hostile.sql": HOSTILE,
}


def docker(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], input=stdin, capture_output=True, text=True, check=False)


@pytest.fixture
def database() -> Iterator[str]:
    name = f"algotrade-test-build-db-{uuid.uuid4().hex[:8]}"
    started = docker("run", "-d", "--name", name, "-e", "POSTGRES_PASSWORD=unused", DB_IMAGE)
    assert started.returncode == 0, started.stderr
    try:
        deadline = time.monotonic() + 120
        while docker("exec", name, "pg_isready", "-q", "-h", "127.0.0.1", "-U", "postgres").returncode != 0:
            assert time.monotonic() < deadline, docker("logs", name).stderr[-3000:]
            time.sleep(1)
        yield name
    finally:
        docker("rm", "-f", name)


def sql(database: str, query: str) -> str:
    result = docker("exec", database, "psql", "-X", "-At", "-U", "postgres", "-c", query)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_each_file_runs_in_order_alone_and_as_written(tmp_path: Path, database: str) -> None:
    script = render_template(
        "build_database_schema.sh.j2",
        tmp_path,
        __release_migrations=[{"file": name} for name in MIGRATIONS] + [{"file": "V004__not_read.sql"}],
        __release_migration_texts=MIGRATIONS,
    )
    result = docker("exec", "-i", database, "sh", "-s", stdin=script)
    assert result.returncode == 0, result.stderr
    failed = [line.split("\t") for line in result.stdout.splitlines()]
    assert [name for name, _ in failed] == ["V002__broken.sql"], result.stdout
    assert 'relation "nowhere" does not exist' in failed[0][1]
    assert sql(database, "SELECT a FROM t1") == "1\n"
    assert sql(database, "SELECT count(*) FROM pg_tables WHERE tablename = 't2'") == "0\n", "kept in part"
    assert sql(database, "SELECT a FROM t3") == VALUE + "\n"
    assert docker("exec", database, "ls", "/pwned").returncode != 0
