"""The database's schema migrations on the stack host: the sample app's setup script and
its scripts/migrations/V*.sql, applied before the app of a release starts, each once, and
recorded with their checksums in the table algotrade_schema_history.

The disruptive tests change the scenario's copy of the sample app on the controller (a
new, an edited, a broken migration), deploy with the scenario's converge playbook and put
the copy back; they run after test_stack.py's (the file's name sorts after it) and each
leaves the stack healthy.

Seen to fail, each, against the roles of before migrations (64b7f55's roles and
plugins in the work tree, the database made by them: the setup script as its init
script): no history table, no migrations in release.json and the init script mounted
(the two tests of the cold deploy), and the disruptive ones at their first look at the
history. And on a converged scenario, each test against the mechanism it covers taken
out: the runner's include in roles/switch main.yml `when: false` (the upgrade: V003 not
applied, no "applied" line), the refusal of a changed file `that: true` (the edited file:
the run passed), the stop at a refused file `when: false` (the broken file: the run
passed), the baseline never taken in migration_plan (the take-over: the setup script ran
again, no baseline line).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import shlex
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import testinfra.host
from stackenv import (
    APP,
    COMPOSE,
    DB,
    INVENTORY,
    PROJECT,
    STACK_HOSTS,
    VARS,
    api,
    assert_no_secret,
    current_release,
    wait_healthy,
)
from test_stack import assert_put_back, ids, release_state
from testlib import REPO, ansible_playbook, failed_task, recap, run_ok

testinfra_hosts = STACK_HOSTS

CONVERGE = REPO / "molecule" / "stack" / "converge.yml"
SCRIPTS = Path(VARS["sample_app_dir"]) / "scripts"
MIGRATIONS = SCRIPTS / "migrations"
SETUP = "setup_timescale.sql"
# The sample's migrations, in order; V004's column comment holds braces and a shell word.
APPLIED = (
    "V001__create_signals.sql",
    "V002__create_scheduled_backtest_runs.sql",
    "V003__index_signals_and_results.sql",
    "V004__add_signal_confidence.sql",
)
V001, V004_CONFIDENCE = APPLIED[0], APPLIED[-1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def psql(host: testinfra.host.Host, sql: str) -> str:
    """One statement in the stack's database, as its owner; the result unaligned."""
    return run_ok(host, f"docker exec {DB} psql -X -At -U algo -d algo_trade -c {shlex.quote(sql)}").strip()


def history(host: testinfra.host.Host) -> list[dict[str, Any]]:
    """The rows of the schema history, in the order they were applied."""
    rows = json.loads(
        psql(
            host,
            "SELECT coalesce(json_agg(h ORDER BY applied_at, file), '[]') FROM algotrade_schema_history h",
        )
    )
    assert isinstance(rows, list)
    return rows


def recorded(host: testinfra.host.Host) -> list[tuple[str, str | None, str, bool]]:
    return [(r["file"], r["version"], r["checksum"], r["baseline"]) for r in history(host)]


def scenario_list() -> list[tuple[str, str | None, str, bool]]:
    """The history the sample app's schema makes: setup, V001..V004, applied in that order."""
    return [(SETUP, None, sha256(SCRIPTS / SETUP), False)] + [
        (name, name[1:4], sha256(MIGRATIONS / name), False) for name in APPLIED
    ]


def db_mounts(host: testinfra.host.Host) -> list[str]:
    mounts = json.loads(run_ok(host, f"docker inspect -f '{{{{json .Mounts}}}}' {DB}"))
    return [str(m["Destination"]) for m in mounts]


@contextmanager
def source_file(path: Path, text: str) -> Iterator[None]:
    """A file of the scenario's sample app, written for the body and put back after it."""
    before = path.read_bytes() if path.exists() else None
    path.write_text(text)
    try:
        yield
    finally:
        if before is None:
            path.unlink()
        else:
            path.write_bytes(before)


def deploy(*args: str, **extra_vars: object) -> tuple[subprocess.CompletedProcess[str], str]:
    result = ansible_playbook(CONVERGE, INVENTORY, *args, extra_vars=extra_vars or None)
    out = result.stdout + result.stderr
    assert_no_secret(out)
    return result, " ".join(out.split())


def test_a_cold_deploy_applied_the_setup_and_the_migrations_once_in_order(host: testinfra.host.Host) -> None:
    """The converge (a cold deploy) applied setup, V001..V004 in order, each recorded
    with its file's SHA-256, and the side effect's release, with the same files, applied
    none of them again. V004's column comment holds braces and a shell word: the text
    reached the database as written."""
    assert recorded(host) == scenario_list()
    applied = [datetime.datetime.fromisoformat(r["applied_at"]) for r in history(host)]
    assert applied == sorted(applied)
    columns = psql(host, "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM "
                   "information_schema.columns WHERE table_name = 'signals'")  # fmt: skip
    assert columns == "time,source,symbol,value,confidence"
    comment = psql(host, "SELECT col_description('signals'::regclass, 5)")
    assert comment == "How sure the source is, 0 to 1 ({{ as written }} $(exit 1))"


def test_the_release_carries_its_migrations_and_the_database_runs_no_init_script(
    host: testinfra.host.Host,
) -> None:
    """release.json lists the files with their checksums, the compose file names them (the
    release's id digests it), the files lie root-only in the release's inputs, and the
    database container mounts no init script."""
    release = current_release(host)
    expected = [(name, version or "", checksum) for name, version, checksum, _baseline in scenario_list()]
    assert [(m["file"], m["version"], m["sha256"]) for m in release["migrations"]] == expected  # type: ignore[attr-defined]
    (directory,) = [d for d in release["inputs"] if str(d).startswith("migrations-")]  # type: ignore[attr-defined]
    compose = host.file(f"{PROJECT}/current/compose.yaml").content_string
    for name, _version, checksum in expected:
        assert f"#   {name} sha256:{checksum}" in compose
        copy = host.file(f"{PROJECT}/inputs/{directory}/{name}")
        assert (copy.uid, copy.gid, copy.mode) == (0, 0, 0o440)
        assert copy.sha256sum == checksum
    assert not [m for m in db_mounts(host) if "docker-entrypoint-initdb.d" in m]


# --- Disruptive tests (run last): each leaves the stack healthy. ---------------

V005 = "V005__add_signal_notes.sql"
V005_TEXT = "ALTER TABLE signals ADD COLUMN notes TEXT;\n"


@pytest.mark.disruptive
def test_an_upgrade_applies_a_new_migration_once_and_a_second_run_nothing(host: testinfra.host.Host) -> None:
    """A release that adds V005: check mode names it and changes nothing; the deploy applies
    it once, before the new app starts, the database container kept; the run after changes
    nothing (changed=0) and applies nothing."""
    before = recorded(host)
    db = ids(host)[DB]
    running = current_release(host)
    with source_file(MIGRATIONS / V005, V005_TEXT):
        checked, out = deploy("--check")
        assert checked.returncode == 0, out[-3000:]
        assert "Check mode: schema migrations on stack-a: 5 of 6 applied before;" in out, out[-3000:]
        assert f"to apply before the app starts: {V005}." in out
        assert recorded(host) == before
        assert current_release(host) == running

        result, out = deploy()
        assert result.returncode == 0, out[-3000:]
        assert f"Schema migrations on stack-a: applied {V005} (5 applied before)." in out, out[-3000:]
        assert recorded(host) == [*before, (V005, "005", sha256(MIGRATIONS / V005), False)]
        assert "notes" in psql(
            host, "SELECT column_name FROM information_schema.columns WHERE table_name = 'signals'"
        )
        assert ids(host)[DB] == db, "a release whose database settings did not change keeps its container"
        wait_healthy(host, timeout=60)
        assert api(host, "GET", "/api/bots").startswith("200 ")

        again, out = deploy()
        assert again.returncode == 0, out[-3000:]
        for name in ("stack-a", "stack-attacker"):
            assert recap(again, name)["changed"] == 0, out[-3000:]
        assert "Schema migrations on stack-a: applied nothing (6 applied before)." in out, out[-3000:]
        assert len(history(host)) == 6


@pytest.mark.disruptive
def test_a_migration_changed_after_it_was_applied_is_refused_and_nothing_changes(
    host: testinfra.host.Host,
) -> None:
    """V001 edited after it ran: the run is refused naming the file, in the release's
    preparation (before a build, a release or a container), and the host runs on as it
    did: the same release, containers, images, releases and history (the source staged for
    builds is the edited one)."""
    before = release_state(host)
    rows = history(host)
    images = sorted(run_ok(host, "docker images -q --no-trunc").split())
    inputs = run_ok(host, f"ls {PROJECT}/inputs").split()
    edited = (MIGRATIONS / V001).read_text() + "-- an edit after it ran\n"
    with source_file(MIGRATIONS / V001, edited):
        result, out = deploy()
    assert result.returncode != 0, out[-3000:]
    assert f"Refused on stack-a: {V001} changed since it was applied to the database" in out, out[-3000:]
    assert f"the release's file has {hashlib.sha256(edited.encode()).hexdigest()}" in out
    assert failed_task(result).endswith("migrate | Refuse migrations that changed since they were applied")
    assert release_state(host) == before
    assert history(host) == rows
    assert sorted(run_ok(host, "docker images -q --no-trunc").split()) == images
    assert run_ok(host, f"ls {PROJECT}/inputs").split() == inputs


V006 = "V006__broken.sql"
V006_TEXT = """\
CREATE TABLE broken_probe (x int);
ALTER TABLE no_such_table ADD COLUMN y int;
"""


@pytest.mark.disruptive
def test_a_failing_migration_stops_the_release_and_the_previous_one_runs_on(
    host: testinfra.host.Host,
) -> None:
    """A release with a migration the database refuses: the run fails naming the file and
    the server's error, before the new app starts: the same app container serves on,
    healthy, the release of before stays the current one, and nothing of the file is in
    the database (its first statement neither: one transaction) nor in the history."""
    before = release_state(host)
    rows = history(host)
    with source_file(MIGRATIONS / V006, V006_TEXT):
        result, out = deploy()
    assert result.returncode != 0, out[-3000:]
    assert f"Schema migration {V006} failed on stack-a, and nothing of it was applied" in out, out[-4000:]
    assert 'line 2: ERROR: relation "no_such_table" does not exist' in out, out[-4000:]
    assert_put_back(host, before, out)
    assert ids(host)[APP] == before["ids"][APP], "the app of before never stopped"  # type: ignore[index]
    assert history(host) == rows
    assert psql(host, "SELECT to_regclass('broken_probe')") == ""


V007 = "V007__narrow_run_ids.sql"


@pytest.mark.disruptive
def test_a_migration_that_changes_a_checked_query_recompiles_its_unchanged_library(
    host: testinfra.host.Host,
) -> None:
    """A release whose migration narrows the column that the compile-time checked query of
    the library backtest-scheduler returns (bigint to integer), the library's Rust sources
    unchanged: its build compiles the library again against the new schema, whose type
    the code does not take, and fails; nothing of the release starts and the migration is
    not applied. sccache (cargo-chef) holds the library as the scenario's earlier builds
    compiled it against the schema of before: with the Dockerfile of before (no
    CARGO_ALGOTRADE_MACRO_INPUTS), the same two steps on the demo host (a migration that
    changes no query, then this one) built the release and it went live."""
    before = release_state(host)
    rows = history(host)
    narrow = "ALTER TABLE scheduled_backtest_runs ALTER COLUMN id TYPE integer;\n"
    with source_file(MIGRATIONS / V007, narrow):
        result, out = deploy()
    assert result.returncode != 0, out[-3000:]
    assert "expected `i64`, found `i32`" in out, out[-4000:]
    assert "Build the application image" in failed_task(result), out[-3000:]
    after = release_state(host)
    assert after["release"] == before["release"]
    assert after["ids"] == before["ids"], "nothing of the release started"
    assert after["releases"] == before["releases"], "the release whose image did not build is removed"
    assert history(host) == rows
    assert host.run("docker inspect algo-trade-build-db").rc != 0, "the build database was removed"


def test_the_build_host_keeps_the_locks_of_kept_releases_only(host: testinfra.host.Host) -> None:
    """After the deploys of this scenario (more images than stack_release_keep releases),
    the Cargo.lock files resolved per image tag are those of the images the kept releases
    run: the prune removes the others with their images."""
    paths = run_ok(host, f"ls -d {PROJECT}/releases/*/release.json").split()
    kept = {json.loads(host.file(path).content_string)["image"].split(":")[-1] for path in paths}
    locks = {Path(p).stem for p in run_ok(host, f"ls {PROJECT}/build/locks/").split()}
    assert locks, "the sample has no Cargo.lock: its image's lock is kept"
    assert locks <= kept, (
        f"locks of images no kept release runs: {sorted(locks - kept)} (kept: {sorted(kept)})"
    )


@pytest.mark.disruptive
def test_a_database_made_anew_gets_the_setup_and_every_migration_applied(host: testinfra.host.Host) -> None:
    """The database volume removed (after the migrations the tests above added and took
    away again): the next deploy makes the database anew and applies the setup script and
    every migration of the source, in order, as the scenario's converge did; the tests after
    this file's find the database as it made it."""
    run_ok(host, f"{COMPOSE} down")
    run_ok(host, "docker volume rm algo-trade_db-data")
    cold, out = deploy()
    assert cold.returncode == 0, out[-3000:]
    assert recorded(host) == scenario_list()
    wait_healthy(host, timeout=60)
