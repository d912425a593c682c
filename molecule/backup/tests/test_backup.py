"""Operations on one host after the side effect: a backup taken under load, the volumes
lost and restored, v2 rolled back to v1, the database password rotated.

The side effect leaves /root/scenario.json (the backup it took, the counts before the
loss, the app container before the rotation and the database clock around it) and the
rotation's output (rotate.yml). Tests run in file order: the rotation's are checked
before any later test restarts the app; the last ones tear the stack down.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pytest
import testinfra.host
import testinfra.utils.ansible_runner
from testlib import (
    REPO,
    ansible_playbook,
    expected_hosts,
    instance_name,
    leaked_secrets,
    recap,
    run_ok,
    run_with_stdin,
    secret_forms,
)

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
HOST = "backup-a"
testinfra_hosts = expected_hosts(INVENTORY, "all", [HOST])
PROJECT = "/opt/algo-trade"
BACKUPS = "/var/backups/algo-trade"
COMPOSE = f"docker compose --project-directory {PROJECT}"
APP = "algo-trade-app-1"
PLAYBOOKS = REPO / "playbooks"
# Each playbook run's output, for a failed CI run and for the README's examples.
ARTIFACTS = REPO / "tests" / "artifacts" / "backup-scenario"
VARS = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_variables(HOST)
# How the inventory reaches the host (Molecule's, from create.yml's instance config).
REACH = (
    "ansible_connection",
    "ansible_host",
    "ansible_port",
    "ansible_user",
    "ansible_private_key_file",
    "ansible_ssh_common_args",
    "ansible_become_method",
)
# The passwords as the database has them: the vault's values end with a newline, which
# the role strips everywhere (filter secret_text), as the PostgreSQL image does.
OLD_DB_PASSWORD = VARS["stack_db_password"].rstrip("\r\n")
NEW_DB_PASSWORD = VARS["rotated_db_password"].rstrip("\r\n")
# The app role's (stack_db_app_user, algo_app): the side effect rotates both.
OLD_APP_PASSWORD = VARS["stack_db_app_password"].rstrip("\r\n")
NEW_APP_PASSWORD = VARS["rotated_db_app_password"].rstrip("\r\n")
for name in ("rotated_db_password", "stack_db_app_password", "rotated_db_app_password"):
    assert "\n" in VARS[name], "the scenario's passwords must end with a newline"
APP_ROLE = "algo_app"
# The passwords the failing rotations below try (never applied): they reach the runs in a
# vars file, not on an argv.
THIRD_DB_PASSWORD = "molecule-db-pw-third/7c+e=9d"  # noqa: S105 (a test secret)
THIRD_APP_PASSWORD = "molecule-app-pw-third/4b+'=2a"  # noqa: S105 (a test secret)
SECRETS = [
    OLD_DB_PASSWORD,
    NEW_DB_PASSWORD,
    OLD_APP_PASSWORD,
    NEW_APP_PASSWORD,
    VARS["stack_tui_password"],
    THIRD_DB_PASSWORD,
    THIRD_APP_PASSWORD,
]
# Later playbook runs must know the rotated passwords, as an operator's vault would.
ROTATED = {
    "stack_db_password": VARS["rotated_db_password"],
    "stack_db_app_password": VARS["rotated_db_app_password"],
}

# The daemon's TCP login, as the app makes it (to the service name: the official image
# trusts 127.0.0.1 without a password); the password comes on stdin.
# The role: the first argument, the admin (POSTGRES_USER) without one.
DB_LOGIN = (
    f"{COMPOSE} exec -T db sh -c 'IFS= read -r PGPASSWORD; export PGPASSWORD;"
    ' psql -X -At -h db -U "${1:-$POSTGRES_USER}" -d "$POSTGRES_DB" -c "SELECT 1"\' login'
)
# The sample's services that write to TimescaleDB all the time (backtest-daemon a result,
# scheduled-backtest a run: every 10 s and at each start), by table and its time column. A
# backup's counts are compared with the rows as of its database moment in these tables,
# with all rows in the others.
WRITTEN = {"public.backtest_results": "created_at", "public.scheduled_backtest_runs": "started_at"}
WRITING_SERVICES = ("backtest-daemon", "scheduled-backtest")
# The bot databases of the default services (the daemon's and the backtest daemon's), as
# a backup's manifest names them, and their copies in the backup.
DAEMON_DB, BACKTEST_DB = "/data/bots.db", "/data/backtest-daemon/bots.db"
SQLITE_COPIES = {DAEMON_DB: "bots.db", BACKTEST_DB: "backtest-daemon__bots.db"}
# A bot database made after the scenario's backup (a service added since): the safety
# backup's test makes it; it stays.
LATE_DB = "/data/late-service/bots.db"
SAMPLE = Path(VARS["sample_app_dir"])
COUNTS_SQL = (
    "SELECT json_object_agg(format('%I.%I', schemaname, tablename), (xpath('/row/n/text()',"
    " query_to_xml(format('SELECT count(*) AS n FROM %I.%I', schemaname, tablename), false, true, '')))[1]"
    "::text::bigint) FROM pg_tables WHERE schemaname = 'public'"
)


T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    """Poll `probe` until it returns a value other than None (or False), or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def assert_no_secret(text: str, where: str) -> None:
    """Fail, naming the secret by number and form only: pytest's report of a plain
    `assert value not in text` would print the value and the text around it."""
    leaks = leaked_secrets(text, SECRETS)
    if leaks:
        pytest.fail(f"{', '.join(leaks)} of SECRETS reached {where}", pytrace=False)


def docker_time(value: str) -> float:
    """A Docker timestamp (RFC 3339 with nanoseconds) as seconds since the epoch."""
    stamp = value.strip().replace("Z", "+00:00")
    head, _plus, zone = stamp.partition("+")
    if "." in head:
        whole, fraction = head.split(".")
        head = f"{whole}.{fraction[:6]}"
    return datetime.fromisoformat(f"{head}+{zone}").timestamp()


def scenario(host: testinfra.host.Host) -> dict[str, Any]:
    value = json.loads(host.file("/root/scenario.json").content_string)
    assert isinstance(value, dict)
    return value


def manifest(host: testinfra.host.Host, name: str) -> dict[str, Any]:
    value = json.loads(host.file(f"{BACKUPS}/{name}/manifest.json").content_string)
    assert isinstance(value, dict)
    return value


def backups(host: testinfra.host.Host) -> list[str]:
    listing = run_ok(host, f"find {BACKUPS} -mindepth 1 -maxdepth 1 -type d -name '2*Z' -printf '%f\\n'")
    return sorted(listing.split())


def table_counts(host: testinfra.host.Host, as_of: float | None = None) -> dict[str, int]:
    """Rows per table; with `as_of` (seconds since the epoch, a backup's moments.timescaledb),
    the tables the services keep writing (WRITTEN) count only their rows up to it."""
    out = run_ok(host, f"{COMPOSE} exec -T db psql -U algo -d algo_trade -tAc {json.dumps(COUNTS_SQL)}")
    value = json.loads(out)
    assert isinstance(value, dict)
    if as_of is not None:
        for table, column in WRITTEN.items():
            if table in value:
                sql = f"SELECT count(*) FROM {table} WHERE {column} <= to_timestamp({as_of!r})"  # noqa: S608
                value[table] = int(
                    run_ok(host, f"{COMPOSE} exec -T db psql -X -U algo -d algo_trade -tAc {json.dumps(sql)}")
                )
    return value


def restored_counts(host: testinfra.host.Host, taken: dict[str, Any]) -> dict[str, int]:
    """The rows of the backup `taken` (a manifest) as the database holds them now: what the
    services wrote since its moment left out."""
    return table_counts(host, as_of=taken["moments"]["timescaledb"])


def bot_rows(taken: dict[str, Any], database: str = DAEMON_DB) -> int:
    """How many bots a backup's manifest counted in one of its bot databases."""
    rows = taken["tables"]["sqlite"][database]["bot_configs"]
    assert isinstance(rows, int)
    return rows


def sqlite_rows(host: testinfra.host.Host, database: str, sql: str, in_app: bool = True) -> list[list[Any]]:
    """The rows of a query on a SQLite database: one of the volume's, read in the app's
    container as its UID (in_app), or a file on the host (a backup's copy). A database
    that is not there is an error, never made."""
    script = (
        "import json, sqlite3, sys;"
        " db = sqlite3.connect('file:' + sys.argv[1] + '?mode=rw', uri=True, timeout=30);"
        " print(json.dumps(db.execute(sys.argv[2]).fetchall()))"
    )
    where = f"docker exec {APP} " if in_app else ""
    value = json.loads(
        run_ok(host, f"{where}python3 -c {shlex.quote(script)} {shlex.quote(database)} {shlex.quote(sql)}")
    )
    assert isinstance(value, list)
    return value


BOT_IDS_SQL = "SELECT bot_id FROM bot_configs ORDER BY 1"


def backtest_bots(host: testinfra.host.Host) -> list[str]:
    """The bots in the backtest daemon's own bot database."""
    return [str(row[0]) for row in sqlite_rows(host, BACKTEST_DB, BOT_IDS_SQL)]


def add_backtest_bot(host: testinfra.host.Host, bot_id: str) -> None:
    """A bot written into the backtest daemon's bot database (it has no API), as the side effect does."""
    script = (
        "import sqlite3, sys, time; db = sqlite3.connect(sys.argv[1], timeout=30); now = int(time.time());"
        " db.execute(\"INSERT INTO bot_configs VALUES (?, 'BTC', 'quad_ma', 'paper', ?)\","
        " (sys.argv[2], now));"
        " db.execute(\"INSERT INTO bot_runtime_state VALUES (?, 'stopped', ?)\", (sys.argv[2], now));"
        " db.commit()"
    )
    run_ok(host, f"docker exec {APP} python3 -c {shlex.quote(script)} {BACKTEST_DB} {shlex.quote(bot_id)}")


def in_volume(host: testinfra.host.Host, path: str) -> bool:
    return bool(host.run(f"docker exec {APP} test -e {shlex.quote(path)}").rc == 0)


def bots(host: testinfra.host.Host) -> list[dict[str, Any]]:
    script = (
        "import json,urllib.request as u;print(u.urlopen('http://127.0.0.1:8080/api/bots').read().decode())"
    )
    value = json.loads(run_ok(host, f"python3 -c {json.dumps(script)}"))["bots"]
    assert isinstance(value, list)
    return value


def api_version(host: testinfra.host.Host) -> str:
    script = (
        "import urllib.request as u;"
        "print(u.urlopen('http://127.0.0.1:8080/api/bots').headers['X-Algo-Trade-Version'])"
    )
    return run_ok(host, f"python3 -c {json.dumps(script)}").strip()


def db_login(host: testinfra.host.Host, password: str, role: str = "") -> bool:
    """A TCP login as the admin (or `role`) with `password`, which travels on stdin only
    (never an argv)."""
    result = subprocess.run(
        ["docker", "exec", "-i", instance_name(host), "sh", "-c", f"{DB_LOGIN} {role}"],
        input=f"{password}\n",
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and result.stdout.strip() == "1"


def psql_rows(host: testinfra.host.Host, sql: str) -> list[dict[str, Any]]:
    """The rows of a query that selects one json_agg of objects, as the stack's superuser
    over the db container's socket."""
    out = run_ok(host, f"{COMPOSE} exec -T db psql -X -U algo -d algo_trade -tAc {json.dumps(sql)}")
    value = json.loads(out.strip() or "null") or []
    assert isinstance(value, list), value
    return value


def app_started(host: testinfra.host.Host) -> tuple[str, float]:
    """The app container's ID and its start time (seconds since the epoch)."""
    out = run_ok(host, f"docker inspect -f '{{{{.Id}}}} {{{{.State.StartedAt}}}}' {APP}").split()
    return out[0], docker_time(out[1])


def app_state(host: testinfra.host.Host) -> str:
    return run_ok(host, f"docker inspect -f '{{{{.State.Status}}}}' {APP}").strip()


def wait_healthy(host: testinfra.host.Host, timeout: int = 120) -> None:
    def healthy() -> bool:
        """Every service healthy, or running for one without a health check."""
        state = "'{{.Service}}={{.Health}}:{{.State}}'"
        states = host.run(f"{COMPOSE} ps --format {state}").stdout.split()
        return bool(states) and all(s.endswith(("=healthy:running", "=:running")) for s in states)

    try:
        wait_for("every service healthy", healthy, timeout, interval=1)
    except AssertionError as error:
        states = host.run(f"{COMPOSE} ps -a").stdout
        raise AssertionError(f"{error}:\n{states}\n{host.run(f'{COMPOSE} logs --tail 30').stdout}") from None


def playbook(
    name: str, *inventories: Path, **extra_vars: object
) -> tuple[int, str, subprocess.CompletedProcess[str]]:
    """Run one of the collection's playbooks (on the scenario's inventory and `inventories`);
    no secret may reach its output, plain or encoded."""
    more = [arg for path in inventories for arg in ("-i", str(path))]
    result = ansible_playbook(
        PLAYBOOKS / f"{name}.yml", INVENTORY, *more, extra_vars={**ROTATED, **extra_vars}
    )
    out = result.stdout + result.stderr
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with (ARTIFACTS / f"{name}.log").open("a") as log:
        log.write(f"$ ansible-playbook playbooks/{name}.yml -e {json.dumps(extra_vars)}\n{out}\n")
    assert_no_secret(out, f"the output of {name}.yml")
    # Whitespace normalised: the YAML callback folds long lines.
    return result.returncode, " ".join(out.split()), result


# --- The backup taken while writers wrote, and its restore -------------------------


def test_backup_files_match_the_manifest_checksums(host: testinfra.host.Host) -> None:
    name = scenario(host)["backup"]
    taken = manifest(host, name)
    files = taken["files"]
    assert set(files) == {"db.dump", "globals.sql", *SQLITE_COPIES.values()}
    assert taken["sqlite"] == SQLITE_COPIES
    for file, entry in files.items():
        path = f"{BACKUPS}/{name}/{file}"
        assert host.file(path).sha256sum == entry["sha256"], path
        assert host.file(path).size == entry["bytes"], path


def test_backup_is_root_only_and_holds_no_password(host: testinfra.host.Host) -> None:
    name = scenario(host)["backup"]
    assert host.file(BACKUPS).mode == 0o700
    for file in ("manifest.json", *manifest(host, name)["files"]):
        entry = host.file(f"{BACKUPS}/{name}/{file}")
        assert (entry.user, entry.mode) == ("root", 0o600), file
    globals_sql = host.file(f"{BACKUPS}/{name}/globals.sql").content_string
    assert "CREATE ROLE algo" in globals_sql
    assert "SCRAM-SHA-256$" not in globals_sql
    for number, secret in enumerate(SECRETS):
        for form, value in secret_forms(secret).items():
            # The result named first: pytest's report would print the command, value and all.
            found = host.run("grep -rqaF -e %s %s", value, f"{BACKUPS}/{name}").rc != 1
            assert not found, f"secret #{number} ({form}) is in the backup (or grep failed)"


def test_backup_was_taken_while_the_writers_wrote(host: testinfra.host.Host) -> None:
    record = scenario(host)
    taken = manifest(host, record["backup"])
    trades = taken["tables"]["timescaledb"]["public.trades"]
    seeded = 1441  # the side effect's generate_series: 10 days every 10 minutes, both ends
    assert trades >= seeded + 50, "the writer had written before the backup started"
    assert record["trades_before_loss"] > trades, "the writer kept writing after the snapshot"
    assert record["bots_before_loss"] > bot_rows(taken) > 3


def test_restored_rows_equal_the_manifest(host: testinfra.host.Host) -> None:
    """Every table holds the backup's rows (those the services wrote since its moment left
    out). The schema history (algotrade_schema_history) is in the dump and comes back with
    the rest: the sample app's setup and each of its migrations."""
    taken = manifest(host, scenario(host)["backup"])
    assert restored_counts(host, taken) == taken["tables"]["timescaledb"]
    assert set(taken["tables"]["timescaledb"]) == {
        "public.ohlcv",
        "public.trades",
        "public.fills",
        "public.backtest_results",
        "public.signals",
        "public.scheduled_backtest_runs",
        "public.algotrade_schema_history",
    }
    migrations = sorted(p.name for p in (SAMPLE / "scripts" / "migrations").glob("V*.sql"))
    schema = ["setup_timescale.sql", *migrations]
    assert len(schema) == 5, schema
    assert taken["tables"]["timescaledb"]["public.algotrade_schema_history"] == len(schema)
    files: list[object] = list(psql_rows(host, "SELECT json_agg(file) FROM algotrade_schema_history"))
    assert sorted(map(str, files)) == sorted(schema)


def test_the_restored_tables_grant_the_app_role_its_rights_only(host: testinfra.host.Host) -> None:
    """The dump's grants are left out (pg_restore --no-acl: they name the roles of the host it
    came from); the restore puts back the app role's: read and write on every table but the
    schema history, owned by the admin. Seen to fail without the restore's db_roles step (no
    table granted: the app was locked out of its data)."""
    rows = psql_rows(
        host,
        "SELECT json_agg(json_build_object('table', c.relname, 'owner', pg_get_userbyid(c.relowner),"
        " 'dml', has_table_privilege('algo_app', c.oid, 'SELECT')"
        " AND has_table_privilege('algo_app', c.oid, 'INSERT')"
        " AND has_table_privilege('algo_app', c.oid, 'UPDATE')"
        " AND has_table_privilege('algo_app', c.oid, 'DELETE')"
        ", 'any', has_table_privilege('algo_app', c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')))"
        " FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')",
    )
    assert {r["owner"] for r in rows} == {"algo"}
    assert {r["table"]: r["dml"] for r in rows if r["table"] != "algotrade_schema_history"} == {
        r["table"]: True for r in rows if r["table"] != "algotrade_schema_history"
    }
    assert [r["any"] for r in rows if r["table"] == "algotrade_schema_history"] == [False]


def test_restored_hypertables_are_hypertables(host: testinfra.host.Host) -> None:
    query = "'SELECT hypertable_name FROM timescaledb_information.hypertables ORDER BY 1'"
    out = run_ok(host, f"{COMPOSE} exec -T db psql -U algo -d algo_trade -tAc {query}")
    assert out.split() == ["backtest_results", "fills", "ohlcv", "signals", "trades"]
    show = "'SHOW timescaledb.restoring'"
    restoring = run_ok(host, f"{COMPOSE} exec -T db psql -U algo -d algo_trade -tAc {show}")
    assert restoring.strip() == "off", "timescaledb_post_restore() ran"


def test_bots_are_back(host: testinfra.host.Host) -> None:
    taken = manifest(host, scenario(host)["backup"])
    found = {bot["bot_id"]: bot for bot in bots(host)}
    seeded = {"seed-alpha", "seed-beta", "seed-gamma"}
    assert seeded <= set(found)
    for bot_id in seeded:
        bot = found[bot_id]
        assert (bot["symbol"], bot["strategy"], bot["mode"]) == ("ETH", "quad_ma", "paper"), bot
    assert len(found) == bot_rows(taken)


def test_backtest_daemon_bots_are_back(host: testinfra.host.Host) -> None:
    """The backtest daemon's own bot database (its BOT_DATABASE_URL, not the daemon's
    bots.db) was backed up with its path and rows, lost with the volume and put back: the
    bots the side effect wrote into it, which the daemon restored when it started again."""
    taken = manifest(host, scenario(host)["backup"])
    assert taken["tables"]["sqlite"][BACKTEST_DB]["bot_configs"] == 2
    assert taken["tables"]["sqlite"][BACKTEST_DB]["bot_runtime_state"] == 2
    assert backtest_bots(host) == ["bt-alpha", "bt-beta"]
    copy = f"{BACKUPS}/{taken['name']}/{SQLITE_COPIES[BACKTEST_DB]}"
    rows = sqlite_rows(
        host, copy, "SELECT bot_id, symbol, strategy FROM bot_configs ORDER BY 1", in_app=False
    )
    assert rows == [["bt-alpha", "BTC", "quad_ma"], ["bt-beta", "BTC", "quad_ma"]]
    log = run_ok(host, "docker logs algo-trade-backtest-daemon-1 2>&1")
    started = [line for line in log.splitlines() if "Backtest daemon sample-1 started" in line]
    assert started, log[-3000:]
    assert "2 bots restored" in started[-1], started[-3:]


def test_backup_fetched_to_the_controller(host: testinfra.host.Host) -> None:
    name = scenario(host)["backup"]
    local = Path(VARS["backup_fetch_dir"]) / HOST / name
    files = manifest(host, name)["files"]
    for file, entry in files.items():
        assert hashlib.sha256((local / file).read_bytes()).hexdigest() == entry["sha256"]
    # The trading data on the controller: readable by its owner only.
    for path in [local.parent, local, *local.iterdir()]:
        assert path.stat().st_mode & 0o077 == 0, f"{path}: {oct(path.stat().st_mode)}"


def test_backup_fetch_streams_the_files_into_private_directories(
    host: testinfra.host.Host, tmp_path: Path
) -> None:
    """The copy to the controller goes through the connection's file transfer (FETCH in
    -vvv), never slurp (which, under become, base64s each whole file in memory on both
    ends); the controller's directories are 0700, the files 0600, no partial copy left.

    Seen to fail with the fetch under the play's become (as before): slurp ran for each
    file and no FETCH was logged.
    """
    fetched = tmp_path / "fetched"
    result = ansible_playbook(
        PLAYBOOKS / "backup.yml", INVENTORY, "-vvv", extra_vars={**ROTATED, "backup_fetch_dir": str(fetched)}
    )
    out = result.stdout + result.stderr
    assert_no_secret(out, "the output of backup.yml -vvv")
    assert result.returncode == 0, out[-3000:]
    (name,) = [path.name for path in (fetched / HOST).iterdir()]
    files = ["manifest.json", *manifest(host, name)["files"]]
    # ansible.builtin.fetch calls the connection's fetch_file (logged FETCH at -vvv) only
    # for a file it did not read through slurp. The whole output: where a worker's
    # verbose lines land relative to the task's header is not fixed. The login user
    # (deploy, over SSH) fetches its private copy of each file, removed after.
    for file in files:
        source = re.search(rf"FETCH (\S+) TO {re.escape(f'{fetched}/{HOST}/.{name}.partial/{file}')}", out)
        assert source, file
        assert re.fullmatch(r"/home/deploy/\.algo-trade-fetch\.\w+/\d+", source.group(1)), source.group(1)
    assert host.run("ls -d /home/deploy/.algo-trade-fetch.*").rc != 0, "a private copy was left"
    assert sorted(path.name for path in (fetched / HOST / name).iterdir()) == sorted(files)
    for path in [fetched / HOST, fetched / HOST / name]:
        assert path.stat().st_mode & 0o777 == 0o700, f"{path}: {oct(path.stat().st_mode)}"
    for file in files:
        path = fetched / HOST / name / file
        assert path.stat().st_mode & 0o777 == 0o600, f"{path}: {oct(path.stat().st_mode)}"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == (
            manifest(host, name)["files"][file]["sha256"]
            if file != "manifest.json"
            else host.file(f"{BACKUPS}/{name}/manifest.json").sha256sum
        )


# --- Rollback and password rotation (side effect) ----------------------------------


def test_rollback_runs_v1_again(host: testinfra.host.Host) -> None:
    v1 = manifest(host, scenario(host)["backup"])["app"]["image"]
    running = run_ok(host, f"docker inspect -f '{{{{.Config.Image}}}}' {APP}").strip()
    assert running == v1
    assert api_version(host) == "sample-1"
    tags = run_ok(host, "docker images algo-trade/app --format '{{.Repository}}:{{.Tag}}'").split()
    assert v1 in tags
    assert len(tags) >= 2, "v2 stays on the host for a roll forward"


def test_rollback_after_the_rotation_refuses_an_older_release_and_changes_nothing(
    host: testinfra.host.Host,
) -> None:
    """The rotation (side effect) made the newest release: the release before it, the
    default target, was made with the old password, and its app would be locked out. The
    rollback refuses it and changes nothing; asked for the running release by id, it
    says so and changes nothing (a second rollback does not go one further back)."""
    running = run_ok(host, f"docker inspect -f '{{{{.Config.Image}}}}' {APP}").strip()
    current = json.loads(host.file(f"{PROJECT}/current/release.json").content_string)
    rc, out, result = playbook("rollback")
    assert rc != 0, out[-3000:]
    assert "was made with another database password (rotate_db_password ran since)" in out
    assert recap(result, HOST)["changed"] == 0
    rc, out, result = playbook("rollback", ops_rollback_to=current["id"])
    assert rc == 0, out[-3000:]
    assert f"runs release {current['id']} already, nothing changed" in out
    assert recap(result, HOST)["changed"] == 0
    assert run_ok(host, f"docker inspect -f '{{{{.Config.Image}}}}' {APP}").strip() == running


@pytest.mark.parametrize(
    ("role", "file", "owner"),
    [("", "db_password", 70), (APP_ROLE, "db_app_password", 0)],
    ids=["admin", "app"],
)
def test_rotated_passwords_work_and_the_old_ones_are_refused(
    host: testinfra.host.Host, role: str, file: str, owner: int
) -> None:
    """Both roles rotated in one run: the admin's (stack_db_password) and the app's
    (stack_db_app_password), each in its own secret file."""
    new, old = (NEW_APP_PASSWORD, OLD_APP_PASSWORD) if role else (NEW_DB_PASSWORD, OLD_DB_PASSWORD)
    wait_healthy(host, timeout=30)
    # Results named first: pytest's report of `assert db_login(...)` would print the argument.
    new_works, old_works = db_login(host, new, role), db_login(host, old, role)
    assert new_works, "the new password is refused"
    assert not old_works, "the old password still works"
    secret = host.file(f"{PROJECT}/secrets/{file}")
    assert hashlib.sha256(secret.content).hexdigest() == hashlib.sha256(new.encode()).hexdigest()
    assert (secret.mode, secret.uid) == (0o400, owner)


def test_rotation_recreated_the_app(host: testinfra.host.Host) -> None:
    """A running container keeps the config file it started with: the rotation must
    recreate the app (its config input changed) within the rotation's run.

    Seen to fail when the rotation left the app running (roles/ops
    rotate_db_password.yml without "Stop the app", `recreate: never` on the start):
    same ID, and the run failed its health gate.
    """
    record = scenario(host)
    before = record["app_before_rotation"]
    container, started = app_started(host)
    assert container != before["id"], "the app container is the one that ran before the rotation"
    assert record["rotation_began"] < started < record["rotation_ended"], (
        f"the app started at {started}, not during the rotation "
        f"({record['rotation_began']} to {record['rotation_ended']})"
    )


def test_app_reads_the_new_password(host: testinfra.host.Host) -> None:
    """The config the daemon reads (config/Config.toml, the app_config secret) holds the
    new password, URL-encoded in the database URL. Compared by sha256 inside the
    container: the value is never printed.

    Seen to fail when the rotation left the app running (no "Stop the app",
    `recreate: never`): the container still read the old file.
    """
    expected = f'url = "postgresql://{APP_ROLE}:{quote(NEW_APP_PASSWORD, safe="")}@db:5432/algo_trade"\n'
    script = "grep '^url = ' /app/config/Config.toml | sha256sum"
    found = run_ok(host, f"docker exec {APP} sh -c {json.dumps(script)}").split()[0]
    assert found == hashlib.sha256(expected.encode()).hexdigest(), "the app's database URL is not the new one"


def test_app_session_was_made_after_the_rotation_with_the_new_password(host: testinfra.host.Host) -> None:
    """The daemon holds a TimescaleDB session opened after the rotation began, from its
    own address, where the database asks for the password (scram-sha-256); the old
    password is refused (the test above), so the session was made with the new one.
    (The sample keeps one session and reconnects every 2 s when it is lost.)

    Seen to fail when the rotation left the app running (no "Stop the app",
    `recreate: never`): it kept the old password and had no session after the
    database's restart.
    """
    record = scenario(host)
    rules = psql_rows(
        host,
        "SELECT json_agg(json_build_object('type', type, 'address', address, 'auth', auth_method))"
        " FROM pg_hba_file_rules",
    )
    remote = [r for r in rules if r["type"].startswith("host") and r["address"] not in ("127.0.0.1", "::1")]
    assert remote, rules
    assert all(r["auth"] == "scram-sha-256" for r in remote), rules
    addresses = set(
        run_ok(
            host,
            f"docker inspect -f '{{{{range .NetworkSettings.Networks}}}}{{{{.IPAddress}}}} {{{{end}}}}'"
            f" {APP}",
        ).split()
    )
    sql = (
        "SELECT json_agg(json_build_object('address', host(client_addr),"
        " 'start', extract(epoch FROM backend_start)))"
        " FROM pg_stat_activity WHERE usename = 'algo_app' AND client_addr IS NOT NULL"
    )

    def app_sessions() -> list[float] | None:
        starts = [float(r["start"]) for r in psql_rows(host, sql) if r["address"] in addresses]
        return starts or None

    sessions = wait_for("the app's database session", app_sessions, timeout=30)
    assert all(start > record["rotation_began"] for start in sessions), (sessions, record["rotation_began"])


def test_rotation_output_holds_no_secret(host: testinfra.host.Host) -> None:
    """The side effect's rotation run (rotate.yml keeps its output): no secret, plain,
    URL-encoded or base64.

    Seen to fail when the role printed the old secret file's slurped content (base64,
    not the plain form). (Its `stack_db_password | urlencode` was caught by the same
    check in playbook(), on test_rotation_again_changes_nothing's run.)
    """
    log = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "rotate_db_password.log"
    out = log.read_text()
    assert_no_secret(out, "the output of the side effect's rotate_db_password.yml")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "rotate_db_password-side-effect.log").write_text(out)
    # The result named first: pytest's report would print the whole output.
    finished = (
        "the database, the secret files and the app use the new passwords (admin and app changed)"
        in " ".join(out.split())
    )
    assert finished, f"the rotation did not finish: see {log}"


def test_rotation_kept_the_data_and_the_password_out_of_logs(host: testinfra.host.Host) -> None:
    taken = manifest(host, scenario(host)["backup"])
    assert restored_counts(host, taken) == taken["tables"]["timescaledb"]
    assert len(bots(host)) == bot_rows(taken)
    logs = run_ok(host, f"{COMPOSE} logs --no-color 2>&1; ps auxww")
    assert_no_secret(logs, "the containers' logs or a process's argv")


def test_rotation_again_changes_nothing(host: testinfra.host.Host) -> None:
    started = run_ok(host, f"docker inspect -f '{{{{.State.StartedAt}}}}' {APP}")
    rc, out, _run = playbook("rotate_db_password")
    assert rc == 0, out[-3000:]
    assert "the passwords were current already, nothing changed" in out
    assert run_ok(host, f"docker inspect -f '{{{{.State.StartedAt}}}}' {APP}") == started


def rotation_state(host: testinfra.host.Host) -> dict[str, object]:
    """What a rotation that fails must leave as it found: the password the database takes,
    the secret file (its digest, mode, owner), the current release and the releases kept."""
    secret = host.file(f"{PROJECT}/secrets/db_password")
    app_secret = host.file(f"{PROJECT}/secrets/db_app_password")
    new_works, third_works = db_login(host, NEW_DB_PASSWORD), db_login(host, THIRD_DB_PASSWORD)
    app_new_works = db_login(host, NEW_APP_PASSWORD, APP_ROLE)
    app_third_works = db_login(host, THIRD_APP_PASSWORD, APP_ROLE)
    return {
        "database takes the rotated password": new_works,
        "database takes the third password": third_works,
        "app role takes the rotated password": app_new_works,
        "app role takes the third password": app_third_works,
        "secret file": (hashlib.sha256(secret.content).hexdigest(), secret.mode, secret.uid),
        "app secret file": (hashlib.sha256(app_secret.content).hexdigest(), app_secret.mode, app_secret.uid),
        "current release": json.loads(host.file(f"{PROJECT}/current/release.json").content_string)["id"],
        "releases": sorted(run_ok(host, f"ls {PROJECT}/releases").split()),
        "lock": host.file(f"{PROJECT}/deploy.lock").exists,
    }


def rotate_to_third(tmp_path: Path, **extra: object) -> tuple[int, str, subprocess.CompletedProcess[str]]:
    """playbooks/rotate_db_password.yml with the THIRD_ passwords as the new vault values,
    from a vars file (0600): no secret on the controller's argv."""
    path = tmp_path / "rotate.json"
    path.write_text(
        json.dumps(
            {"stack_db_password": THIRD_DB_PASSWORD, "stack_db_app_password": THIRD_APP_PASSWORD, **extra}
        )
    )
    path.chmod(0o600)
    result = ansible_playbook(PLAYBOOKS / "rotate_db_password.yml", INVENTORY, "-e", f"@{path}")
    out = result.stdout + result.stderr
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with (ARTIFACTS / "rotate_db_password-faults.log").open("a") as log:
        log.write(f"$ ansible-playbook playbooks/rotate_db_password.yml -e {sorted(extra)}\n{out}\n")
    assert_no_secret(out, "the output of rotate_db_password.yml")
    return result.returncode, " ".join(out.split()), result


def test_rotation_refuses_a_database_that_does_not_answer(host: testinfra.host.Host, tmp_path: Path) -> None:
    """The database container paused (`docker pause` on the host): the rotation fails
    before any change; the app keeps the old password and keeps running.

    Seen to fail when roles/ops rotate_db_password.yml wrote the release first (the
    order of before: files, then ALTER ROLE): the secret file held the third password
    and a new release was written, while the database kept the old one.
    """
    expected = rotation_state(host)
    assert expected["database takes the rotated password"]
    assert not expected["database takes the third password"]
    assert expected["app role takes the rotated password"]
    assert not expected["app role takes the third password"]
    app = app_started(host)
    run_ok(host, "docker pause algo-trade-db-1")
    try:
        rc, out, _result = rotate_to_third(tmp_path)
    finally:
        run_ok(host, "docker unpause algo-trade-db-1")
    assert rc != 0, out[-3000:]
    assert "The database of algo-trade on backup-a does not answer a login" in out, out[-3000:]
    assert "Nothing was changed" in out
    assert rotation_state(host) == expected
    assert app_started(host) == app, "the app was restarted"
    wait_healthy(host, timeout=60)


def test_rotation_whose_alter_role_fails_changes_nothing(host: testinfra.host.Host, tmp_path: Path) -> None:
    """ALTER ROLE fails (the role's new sessions read-only, as a database protected from a
    full disk is): the run fails naming psql's error; the database, the secret file and the
    releases are as they were, the app runs on untouched and healthy.

    Seen to fail when roles/ops rotate_db_password.yml wrote the release first (the
    order of before): the secret file held the third password and a new release was
    written.
    """
    expected = rotation_state(host)
    app = app_started(host)
    psql = f"{COMPOSE} exec -T db psql -X -q -U algo -d algo_trade"
    run_ok(host, f"{psql} -c 'ALTER ROLE algo SET default_transaction_read_only = on'")
    try:
        rc, out, _result = rotate_to_third(tmp_path)
    finally:
        # The SET first: this session is read-only too.
        run_ok(
            host,
            f"{psql} -c 'SET default_transaction_read_only = off'"
            " -c 'ALTER ROLE algo RESET default_transaction_read_only'",
        )
    assert rc != 0, out[-3000:]
    assert "ALTER ROLE (admin) failed (ERROR: cannot execute ALTER ROLE in a read-only transaction)" in out, (
        out[-3000:]
    )
    assert "The database takes the old passwords (checked by logging in)." in out
    assert "The app was not restarted: it runs on as before." in out
    assert rotation_state(host) == expected
    assert app_started(host) == app, "the app was restarted"
    wait_healthy(host, timeout=30)


def test_rotation_whose_restart_fails_puts_the_old_password_back(
    host: testinfra.host.Host, tmp_path: Path
) -> None:
    """The database took the third password and the files were written, then the new
    release fails its health gate (a health path the API does not serve): the database
    and the secret file get the rotated password back, the release with the third is
    removed and the running release runs again, healthy, on the password it has.

    Seen to fail when the rescue in roles/ops rotate_db_password.yml put no password
    back on the database (its ALTER skipped): the database took the third password only
    ("NOT put back: the database does not take the old password").
    """
    expected = rotation_state(host)
    # A gate made to fail waits its timeout out: 45 s, not the default 180.
    rc, out, _result = rotate_to_third(tmp_path, stack_health_path="/api/not-served", stack_health_timeout=45)
    assert rc != 0, out[-3000:]
    assert "The password rotation failed on backup-a at" in out, out[-3000:]
    assert "The database takes the old passwords (checked by logging in)." in out
    assert "Put back: the secret files hold the old passwords." in out
    assert f"Put back: release {expected['current release']}" in out
    assert rotation_state(host) == expected
    # No file keeps a password that was never applied (the new release's app config).
    for form, value in [*secret_forms(THIRD_DB_PASSWORD).items(), *secret_forms(THIRD_APP_PASSWORD).items()]:
        found = host.run("grep -rqaF -e %s %s", value, PROJECT).rc != 1
        assert not found, f"a third password ({form}) is in a file under {PROJECT} (or grep failed)"
    wait_healthy(host, timeout=60)
    assert api_version(host) == "sample-1"


def test_rotation_refuses_another_app_role_and_changes_nothing(
    host: testinfra.host.Host, tmp_path: Path
) -> None:
    """stack_db_app_user other than the running release's role: the new release would log
    in as a role whose password was not rotated. Refused before any change.

    Seen to fail without the check in roles/ops rotate_db_password.yml: the role algo_app got
    the third password, the release named other_app failed its gate and was put back."""
    expected = rotation_state(host)
    app = app_started(host)
    rc, out, _result = rotate_to_third(tmp_path, stack_db_app_user="other_app")
    assert rc != 0, out[-3000:]
    assert "stack_db_app_user=other_app on backup-a, but the running release" in out, out[-3000:]
    assert f"logs in as {APP_ROLE}" in out
    assert rotation_state(host) == expected
    assert app_started(host) == app, "the app was restarted"


def put_on_host(host: testinfra.host.Host, path: str, content: str) -> None:
    """Writes a root-only file from stdin (no secret on an argv)."""
    result = run_with_stdin(host, f"umask 0377; cat > {path}.new && mv {path}.new {path}", content)
    assert result.returncode == 0, result.stderr


def test_rotation_stopped_before_its_switch_is_finished_by_the_next_run(
    host: testinfra.host.Host, tmp_path: Path
) -> None:
    """A rotation that stopped after the database and the secret files took the third
    passwords, before the app's new release ran (the controller lost, say): the next run
    finds both current, and still switches to a release with them, the app's config
    holding the third password. Then the rotated passwords come back, as the later tests
    expect them.

    Seen to fail when only the database and the files were compared: "the passwords were
    current already, nothing changed", the app's config keeping a password the database
    refuses."""
    psql = f"{COMPOSE} exec -T db psql -X -q -v ON_ERROR_STOP=1 -U algo -d algo_trade"
    before = rotation_state(host)
    subprocess.run(
        ["docker", "exec", "-i", instance_name(host), "sh", "-c", psql],
        input="SET log_statement = 'none';"
        f" ALTER ROLE algo PASSWORD '{THIRD_DB_PASSWORD.replace(chr(39), chr(39) * 2)}';"
        f" ALTER ROLE {APP_ROLE} PASSWORD '{THIRD_APP_PASSWORD.replace(chr(39), chr(39) * 2)}';",
        text=True,
        check=True,
        capture_output=True,
    )
    put_on_host(host, f"{PROJECT}/secrets/db_password", THIRD_DB_PASSWORD)
    put_on_host(host, f"{PROJECT}/secrets/db_app_password", THIRD_APP_PASSWORD)
    try:
        rc, out, _result = rotate_to_third(tmp_path)
        assert rc == 0, out[-3000:]
        assert "the app runs a release with the new passwords" in out, out[-3000:]
        current = json.loads(host.file(f"{PROJECT}/current/release.json").content_string)
        assert current["id"] != before["current release"]
        assert current["db_app_password_sha1"] == hashlib.sha1(THIRD_APP_PASSWORD.encode()).hexdigest()  # noqa: S324
        wait_healthy(host, timeout=60)
    finally:
        rc, out, _run = playbook("rotate_db_password")
    assert rc == 0, out[-3000:]
    assert db_login(host, NEW_DB_PASSWORD)
    assert db_login(host, NEW_APP_PASSWORD, APP_ROLE)
    wait_healthy(host, timeout=60)


def test_deploy_refuses_a_secret_file_the_database_does_not_take(host: testinfra.host.Host) -> None:
    """The database set to another password behind the files' back (as a rotation stopped
    between ALTER ROLE and the files would leave it): a deploy refuses in its preflight,
    naming the rotation, and the app runs on untouched.

    Seen to fail without the login check in roles/checks' deployed.yml: the deploy went on
    (its secret file equals the vault's value), failed its health gate and its put-back
    ("put back on ..., unhealthy"), the app restarting, locked out.
    """
    app = app_started(host)
    psql = f"{COMPOSE} exec -T db psql -X -q -v ON_ERROR_STOP=1 -U algo -d algo_trade"

    def set_database_password(password: str) -> None:
        # The statement on stdin: no password on an argv.
        subprocess.run(
            ["docker", "exec", "-i", instance_name(host), "sh", "-c", psql],
            input=f"SET log_statement = 'none'; ALTER ROLE CURRENT_USER PASSWORD '{password}'",
            text=True,
            check=True,
            capture_output=True,
        )

    set_database_password(THIRD_DB_PASSWORD)
    try:
        rc, out, _run = playbook("stack")
    finally:
        set_database_password(NEW_DB_PASSWORD)
    assert rc != 0, out[-3000:]
    assert "The database on backup-a refuses the password in /opt/algo-trade/secrets/db_password" in out, out[
        -3000:
    ]
    assert "with the rotate_db_password playbook" in out
    assert app_started(host) == app
    new_works = db_login(host, NEW_DB_PASSWORD)
    assert new_works, "the database did not get the rotated password back"


# --- Refusals: each leaves the running stack alone ----------------------------------


def test_restore_refuses_without_confirmation(host: testinfra.host.Host) -> None:
    started = run_ok(host, f"docker inspect -f '{{{{.State.StartedAt}}}}' {APP}")
    rc, out, _run = playbook("restore")
    assert rc != 0
    assert "run again with -e backup_restore_confirm=true" in out
    assert run_ok(host, f"docker inspect -f '{{{{.State.StartedAt}}}}' {APP}") == started


def test_restore_refuses_another_timescaledb_version(host: testinfra.host.Host) -> None:
    name = scenario(host)["backup"]
    fake = "20000101T000000Z"
    run_ok(host, f"cp -a {BACKUPS}/{name} {BACKUPS}/{fake}")
    try:
        edit = 's/"timescaledb": "[^"]*"/"timescaledb": "9.9.9"/'
        run_ok(host, f"sed -i '{edit}' {BACKUPS}/{fake}/manifest.json")
        started = run_ok(host, f"docker inspect -f '{{{{.State.StartedAt}}}}' {APP}")
        rc, out, _run = playbook("restore", backup_restore_confirm=True, backup_restore_name=fake)
        assert rc != 0
        assert "was taken with TimescaleDB 9.9.9" in out
        assert "provides 2." in out
        assert run_ok(host, f"docker inspect -f '{{{{.State.StartedAt}}}}' {APP}") == started
    finally:
        host.run(f"rm -rf {BACKUPS}/{fake}")


@pytest.mark.parametrize("damaged", SQLITE_COPIES.values())
def test_restore_refuses_a_damaged_backup(host: testinfra.host.Host, damaged: str) -> None:
    name = scenario(host)["backup"]
    fake = "20000101T000001Z"
    run_ok(host, f"cp -a {BACKUPS}/{name} {BACKUPS}/{fake} && printf x >> {BACKUPS}/{fake}/{damaged}")
    try:
        rc, out, _run = playbook("restore", backup_restore_confirm=True, backup_restore_name=fake)
        assert rc != 0
        assert f"{fake}/{damaged} is missing or its sha256 differs from manifest.json" in out
    finally:
        host.run(f"rm -rf {BACKUPS}/{fake}")


def test_restore_refuses_a_manifest_whose_databases_leave_the_volume(host: testinfra.host.Host) -> None:
    """A manifest that would put a copy outside /data (or read one it does not checksum) is
    refused before anything changes."""
    name = scenario(host)["backup"]
    fake = "20000101T000008Z"
    started = run_ok(host, f"docker inspect -f '{{{{.State.StartedAt}}}}' {APP}")
    copy_backup(
        host,
        name,
        fake,
        "m['sqlite']['/data/../../etc/cron.d/x'] = m['sqlite'].pop('/data/bots.db');"
        " m['tables']['sqlite']['/data/../../etc/cron.d/x'] = m['tables']['sqlite'].pop('/data/bots.db')",
    )
    try:
        rc, out, _run = playbook("restore", backup_restore_confirm=True, backup_restore_name=fake)
    finally:
        host.run(f"rm -rf {BACKUPS}/{fake}")
    assert rc != 0, out[-3000:]
    assert "does not describe its SQLite databases as this collection writes them" in out, out[-3000:]
    assert "'/data/../../etc/cron.d/x' is not a plain path in /data" in out
    assert run_ok(host, f"docker inspect -f '{{{{.State.StartedAt}}}}' {APP}") == started


def test_rollback_refuses_an_unknown_build(host: testinfra.host.Host) -> None:
    rc, out, _run = playbook("rollback", ops_rollback_to="0000000000000000")
    assert rc != 0
    assert "ops_rollback_to=0000000000000000 is not a release (id or image) on backup-a" in out


def test_restore_keeps_the_app_stopped_on_a_row_count_mismatch(host: testinfra.host.Host) -> None:
    """A backup whose dump holds other rows than its manifest counted (the manifest's
    count of public.trades one higher; the checksums cover the files, not the manifest):
    the restore fails after pg_restore and leaves the app stopped.

    Seen to fail when the row-count check in roles/backup restore.yml always passed
    (`that: true`): the restore passed and started the app.
    """
    name = scenario(host)["backup"]
    fake = "20000101T000002Z"
    edit = (
        "import json, sys; path = sys.argv[1]; m = json.load(open(path));"
        " m['tables']['timescaledb']['public.trades'] += 1; json.dump(m, open(path, 'w'))"
    )
    run_ok(host, f"cp -a {BACKUPS}/{name} {BACKUPS}/{fake}")
    try:
        run_ok(host, f"python3 -c {json.dumps(edit)} {BACKUPS}/{fake}/manifest.json")
        rc, out, _run = playbook("restore", backup_restore_confirm=True, backup_restore_name=fake)
        assert rc != 0, out[-3000:]
        assert "The app stays stopped; look into it before starting it." in out
        assert app_state(host) == "exited"
        assert not host.file(f"{PROJECT}/deploy.lock").exists
    finally:
        host.run(f"rm -rf {BACKUPS}/{fake}")
        # The database holds the backup's rows (the same dump): the app may start again.
        run_ok(host, f"{COMPOSE} up -d --wait --wait-timeout 180")
    wait_healthy(host, timeout=60)


def test_restore_whose_app_role_fails_names_the_backup_of_the_replaced_data(
    host: testinfra.host.Host,
) -> None:
    """The app role cannot get its rights back after the dump is restored (the running
    release names a schema the database lacks): the restore fails naming the backup of
    the data it replaced, as for any failure after the drop, and leaves the app stopped.
    The release put right, a second restore passes.

    Seen to fail when the role's step ran after roles/backup restore_data.yml's block: the
    failure named the role only, not how to get the replaced data back."""
    name = scenario(host)["backup"]
    release = f"{PROJECT}/current/release.json"
    edit = (
        "import json, sys; path = sys.argv[1]; r = json.load(open(path));"
        " r['db_app']['schemas'].append('no_such_schema'); json.dump(r, open(path, 'w'))"
    )
    run_ok(host, f"cp -a {release} /root/release.json.kept")
    try:
        run_ok(host, f"python3 -c {shlex.quote(edit)} {release}")
        rc, out, _run = playbook("restore", backup_restore_confirm=True, backup_restore_name=name)
        assert rc != 0, out[-3000:]
        assert f"The restore of {name} failed on backup-a at" in out, out[-3000:]
        assert "could not be made or put back" in out
        assert "no_such_schema" in out
        assert f"The data it replaced is in {BACKUPS}/before-restore/" in out
        assert app_state(host) == "exited"
    finally:
        run_ok(host, f"cp -a /root/release.json.kept {release}")
    rc, out, _run = playbook("restore", backup_restore_confirm=True, backup_restore_name=name)
    assert rc == 0, out[-3000:]
    wait_healthy(host, timeout=60)


def copy_backup(host: testinfra.host.Host, name: str, fake: str, edit: str) -> None:
    """A copy of backup `name` as `fake`, its manifest changed by Python code on `m`."""
    script = (
        f"import json, sys; path = sys.argv[1]; m = json.load(open(path)); {edit};"
        " json.dump(m, open(path, 'w'))"
    )
    run_ok(host, f"cp -a {BACKUPS}/{name} {BACKUPS}/{fake}")
    run_ok(host, f"python3 -c {shlex.quote(script)} {BACKUPS}/{fake}/manifest.json")


def test_restore_refuses_another_hosts_or_projects_backup(host: testinfra.host.Host) -> None:
    """A backup whose manifest names another host, another project, or none (a manifest
    without them) is refused before anything changes, naming backup_restore_foreign.

    Seen to fail without the origin check in roles/backup restore_checks.yml: the first
    copy (another host's) was restored.
    """
    name = scenario(host)["backup"]
    cases = {
        "20000101T000003Z": (
            "m['host'] = 'elsewhere'",
            "was made by project algo-trade on host elsewhere; this is project algo-trade on host backup-a",
        ),
        "20000101T000004Z": (
            "m['project'] = 'other-stack'",
            "was made by project other-stack on host backup-a; this is project algo-trade on host backup-a",
        ),
        "20000101T000005Z": ("del m['host'], m['project']", "names no host or project"),
    }
    started = run_ok(host, f"docker inspect -f '{{{{.State.StartedAt}}}}' {APP}")
    safety = host.run(f"ls {BACKUPS}/before-restore").stdout.split()
    try:
        for fake, (edit, said) in cases.items():
            copy_backup(host, name, fake, edit)
            rc, out, _run = playbook("restore", backup_restore_confirm=True, backup_restore_name=fake)
            assert rc != 0, out[-3000:]
            assert f"Backup {fake} {said}" in out, out[-3000:]
            assert "run again with -e backup_restore_foreign=true" in out
    finally:
        for fake in cases:
            host.run(f"rm -rf {BACKUPS}/{fake}")
    assert run_ok(host, f"docker inspect -f '{{{{.State.StartedAt}}}}' {APP}") == started
    assert host.run(f"ls {BACKUPS}/before-restore").stdout.split() == safety, "a refusal took a backup"


def test_a_backup_of_before_restores_bots_db_and_leaves_the_other_databases(
    host: testinfra.host.Host,
) -> None:
    """A backup made by the collection of before (manifest format 1: one bots.db, its row
    counts flat in tables.sqlite), made here from the scenario's backup, restores: the
    daemon's bots.db is the backup's again (a bot added since is gone), checked against
    the manifest, and the backtest daemon's database, which such a backup knows nothing
    of, is left as it was (a bot added to it here stays)."""
    name = scenario(host)["backup"]
    fake = "20000101T000007Z"
    copy_backup(
        host,
        name,
        fake,
        "m['format'] = 1; m['tables']['sqlite'] = m['tables']['sqlite']['/data/bots.db'];"
        " del m['sqlite'], m['files']['backtest-daemon__bots.db']",
    )
    run_ok(host, f"rm {BACKUPS}/{fake}/{SQLITE_COPIES[BACKTEST_DB]}")
    post = (
        "import urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:8080/api/bots', method='POST',"
        ' data=b\'{"bot_id": "after-backup-bot", "symbol": "SOL", "strategy": "quad_ma"}\','
        " headers={'Content-Type': 'application/json'}))"
    )
    run_ok(host, f"python3 -c {shlex.quote(post)}")
    add_backtest_bot(host, "bt-late")
    backtest = backtest_bots(host)
    assert "bt-late" in backtest
    try:
        rc, out, _run = playbook("restore", backup_restore_confirm=True, backup_restore_name=fake)
    finally:
        host.run(f"rm -rf {BACKUPS}/{fake}")
    assert rc == 0, out[-3000:]
    taken = manifest(host, name)
    rows = ", ".join(f"{table}={n}" for table, n in sorted(taken["tables"]["sqlite"][DAEMON_DB].items()))
    assert f"SQLite rows equal the manifest: /data/bots.db: {rows}" in out
    assert "no SQLite database removed" in out
    kept = sqlite_rows(host, f"{BACKUPS}/{name}/bots.db", BOT_IDS_SQL, in_app=False)
    assert sorted(bot["bot_id"] for bot in bots(host)) == [row[0] for row in kept]
    assert backtest_bots(host) == backtest
    assert restored_counts(host, taken) == taken["tables"]["timescaledb"]


def test_restore_keeps_a_safety_backup_that_a_second_restore_can_use(host: testinfra.host.Host) -> None:
    """A restore (here of a backup without origin, allowed with backup_restore_foreign)
    first backs up the data it replaces, root-only, under before-restore/; a second
    restore of that backup puts the replaced data back. A marker row (in fills, which no
    service writes) and a bot added before the first restore tell the two apart; they
    stay (later tests compare with backups taken after them). The services that keep
    writing to the database are stopped first, so that the count before is the safety
    backup's (the restore starts them again).

    The SQLite databases likewise, as a whole: the backtest daemon's goes back to the
    backup's bots and then to those it had; a bot database made after the backup (a
    service added since, LATE_DB) is removed by the first restore, kept in the safety
    backup and put back by the second.

    Seen to fail when roles/backup restore.yml took that backup after the restore
    instead of before the drop: it held the restored rows, not the marker.
    """
    name = scenario(host)["backup"]
    fake = "20000101T000006Z"
    marker = "INSERT INTO fills VALUES (now(), 0, 'BEFORE-RESTORE-MARKER', 0, 0, 'buy')"
    psql = f"{COMPOSE} exec -T db psql -X -q -U algo -d algo_trade"
    run_ok(host, f"{psql} -c {shlex.quote(marker)}")
    post = (
        "import urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:8080/api/bots', method='POST',"
        ' data=b\'{"bot_id": "before-restore-bot", "symbol": "BTC", "strategy": "quad_ma"}\','
        " headers={'Content-Type': 'application/json'}))"
    )
    run_ok(host, f"python3 -c {shlex.quote(post)}")
    late = (
        "import os, sqlite3, sys; os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True);"
        " db = sqlite3.connect(sys.argv[1]);"
        " db.execute('CREATE TABLE bot_configs (bot_id TEXT PRIMARY KEY)');"
        " db.execute(\"INSERT INTO bot_configs VALUES ('late-1')\"); db.commit()"
    )
    run_ok(host, f"docker exec {APP} python3 -c {shlex.quote(late)} {LATE_DB}")
    backtest = backtest_bots(host)
    run_ok(host, f"{COMPOSE} stop {' '.join(WRITING_SERVICES)}")
    markers = f"{psql} -tA -c \"SELECT count(*) FROM fills WHERE symbol = 'BEFORE-RESTORE-MARKER'\""  # noqa: S608
    counts, names = table_counts(host), sorted(bot["bot_id"] for bot in bots(host))
    safety = host.run(f"ls {BACKUPS}/before-restore").stdout.split()
    copy_backup(host, name, fake, "del m['host'], m['project']")
    try:
        rc, out, _run = playbook(
            "restore", backup_restore_confirm=True, backup_restore_name=fake, backup_restore_foreign=True
        )
    finally:
        host.run(f"rm -rf {BACKUPS}/{fake}")
    assert rc == 0, out[-3000:]
    assert run_ok(host, markers).strip() == "0", "the marker row is gone"
    assert restored_counts(host, manifest(host, name)) == manifest(host, name)["tables"]["timescaledb"]
    assert backtest_bots(host) == ["bt-alpha", "bt-beta"]
    assert not in_volume(host, LATE_DB), f"{LATE_DB} is not in the backup: the restore removes it"
    assert f"removed (not in the backup): {LATE_DB}" in out
    new = sorted(set(run_ok(host, f"ls {BACKUPS}/before-restore").split()) - set(safety))
    assert len(new) == 1, new
    kept = f"before-restore/{new[0]}"
    assert f"the data it replaced: {BACKUPS}/{kept} (-e backup_restore_name={kept} puts it back)" in out
    assert (host.file(f"{BACKUPS}/before-restore").user, host.file(f"{BACKUPS}/before-restore").mode) == (
        "root",
        0o700,
    )
    for entry in run_ok(host, f"find {BACKUPS}/{kept} -mindepth 1 -printf '%u %m %p\\n'").splitlines():
        assert entry.startswith("root 600 "), entry
    taken = json.loads(host.file(f"{BACKUPS}/{kept}/manifest.json").content_string)
    assert (taken["kind"], taken["host"], taken["project"]) == ("before-restore", HOST, "algo-trade")
    assert taken["tables"]["timescaledb"] == counts
    assert bot_rows(taken) == len(names)
    assert taken["sqlite"] == {**SQLITE_COPIES, LATE_DB: "late-service__bots.db"}
    assert bot_rows(taken, BACKTEST_DB) == len(backtest)
    assert taken["tables"]["sqlite"][LATE_DB] == {"bot_configs": 1}
    rc, out, _run = playbook("restore", backup_restore_confirm=True, backup_restore_name=kept)
    assert rc == 0, out[-3000:]
    assert "no SQLite database removed" in out
    assert restored_counts(host, taken) == counts
    assert run_ok(host, markers).strip() == "1"
    assert sorted(bot["bot_id"] for bot in bots(host)) == names
    assert backtest_bots(host) == backtest
    assert sqlite_rows(host, LATE_DB, "SELECT bot_id FROM bot_configs") == [["late-1"]]


def test_backup_moments_are_what_the_docs_say(host: testinfra.host.Host) -> None:
    """docs/operations.md: the database as of its snapshot (the manifest's
    moments.timescaledb, read in the statement that took it), bots.db as of a moment in
    moments.sqlite_from..sqlite_to, which begins after it. A backup taken here while the
    side effect's writers write (trades into TimescaleDB, bots through the API): no
    writer trade in its dump is newer than the database's moment, no bot in its bots.db
    newer than the end of the SQLite copies (created_at: whole seconds since the epoch).
    The backup is removed after (retention may have dropped the oldest: keep
    backup_keep > 2).

    Seen to fail when the backup script copied bots.db before it exported the snapshot
    (sqlite_to before the database's moment).
    """
    run_ok(host, "rm -f /root/writer.stop; nohup /root/writer.sh >/dev/null 2>&1 &")
    try:
        sql = "SELECT count(*) FROM trades WHERE symbol = 'WRITER'"
        written = int(
            run_ok(host, f"{COMPOSE} exec -T db psql -X -U algo -d algo_trade -tAc {json.dumps(sql)}")
        )
        wait_for(
            "the writer's next trades",
            lambda: (
                int(
                    run_ok(host, f"{COMPOSE} exec -T db psql -X -U algo -d algo_trade -tAc {json.dumps(sql)}")
                )
                >= written + 50
            ),
            timeout=60,
        )
        path = run_ok(host, "/usr/local/sbin/algo-trade-backup").strip().splitlines()[-1]
    finally:
        run_ok(host, "touch /root/writer.stop")
    try:
        taken = json.loads(host.file(f"{path}/manifest.json").content_string)
        moments = taken["moments"]
        assert moments["timescaledb"] <= moments["sqlite_from"] <= moments["sqlite_to"], moments
        # The dump's rows as text (hypertables keep them in chunks: every COPY block).
        rows = run_ok(host, f"{COMPOSE} exec -T db pg_restore --data-only -f - < {path}/db.dump")
        times = [line.split("\t")[0] for line in rows.splitlines() if "\tWRITER\t" in line]
        assert len(times) > written, "the dump holds the writer's trades"
        newest_trade = max(datetime.fromisoformat(t).timestamp() for t in times)
        assert newest_trade <= moments["timescaledb"], (newest_trade, moments)
        query = (
            "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]);"
            " print(db.execute('SELECT max(created_at) FROM bot_configs').fetchone()[0])"
        )
        newest_bot = int(run_ok(host, f"python3 -c {shlex.quote(query)} {path}/bots.db").strip())
        assert newest_bot <= moments["sqlite_to"], (newest_bot, moments)
    finally:
        run_ok(host, f"rm -rf {path}")


BAD_BUILD = "0badc0de0badc0de"
ELSEWHERE = "/opt/algo-trade-elsewhere"


def second_host(tmp_path: Path, project_dir: str = ELSEWHERE) -> Path:
    """An inventory of backup-b: the same machine under another name, its stack in
    `project_dir` (by default none there: its checks refuse). It comes after backup-a: in
    a batch of its own at serial 1."""
    path = tmp_path / "backup-b.yml"
    # Reached as backup-a is (over SSH as deploy, with sudo), under another name.
    host_vars = {
        **{key: VARS[key] for key in REACH if key in VARS},
        "ansible_become": True,
        "ops_project_dir": project_dir,
        "backup_project_dir": project_dir,
    }
    path.write_text(json.dumps({"all": {"hosts": {"backup-b": host_vars}}}))
    return path


@contextlib.contextmanager
def release_failing_its_gate(host: testinfra.host.Host) -> Iterator[str]:
    """A release BAD_BUILD beside the running one: its files with an image of the same app
    that never answers. Yields the running release's id."""
    v1 = run_ok(host, f"docker inspect -f '{{{{.Config.Image}}}}' {APP}").strip()
    current = json.loads(host.file(f"{PROJECT}/current/release.json").content_string)
    bad = f"{PROJECT}/releases/{BAD_BUILD}"
    dockerfile = [f"FROM {v1}", 'ENTRYPOINT ["/usr/bin/tini", "--", "sleep", "infinity"]']
    run_ok(
        host,
        f"printf '%s\\n' {' '.join(shlex.quote(line) for line in dockerfile)}"
        f" | docker build -q -t algo-trade/app:{BAD_BUILD} -"
        f" && cp -a {PROJECT}/current/ {bad}"
        f" && sed -i 's|image: {v1}|image: algo-trade/app:{BAD_BUILD}|' {bad}/compose.yaml"
        f" && sed -i 's|{current['id']}|{BAD_BUILD}|; s|{v1}|algo-trade/app:{BAD_BUILD}|' {bad}/release.json",
    )
    try:
        yield str(current["id"])
    finally:
        host.run(f"docker image rm algo-trade/app:{BAD_BUILD}; rm -rf {bad}")


def after_play(out: str, play: str) -> str:
    """The output from the first banner of `play` on ('' when it never started)."""
    return out[out.index(f"PLAY [{play}]") :] if f"PLAY [{play}]" in out else ""


def test_rollback_to_a_release_failing_its_gate_puts_the_running_one_back(
    host: testinfra.host.Host, tmp_path: Path
) -> None:
    """The first failed host stops the run (one host at a time by default) and gets its
    running release back whole, running and healthy. backup-b (the same stack under another
    name) passes the checks of every host first, and never starts its batch.

    Seen to fail when roles/ops rollback.yml passed no running release to the switch
    (`switch_fallback: {}`): the broken release stayed, unhealthy; and when
    playbooks/rollback.yml ran both hosts in one batch (`serial: 2`): backup-b's
    refusal stopped the run before backup-a's rollback.
    """
    v1 = run_ok(host, f"docker inspect -f '{{{{.Config.Image}}}}' {APP}").strip()
    with release_failing_its_gate(host) as current:
        rc, out, _run = playbook(
            "rollback", second_host(tmp_path, PROJECT), ops_rollback_to=BAD_BUILD, stack_health_timeout=45
        )
        assert rc != 0, out[-3000:]
        assert f"The release {BAD_BUILD} (algo-trade/app:{BAD_BUILD}) failed on backup-a" in out
        assert f"Put back: release {current} ({v1}), running and healthy." in out
        assert "[backup-b]" not in after_play(out, "Roll the trading app back"), (
            "the run went on to the next host"
        )
        assert run_ok(host, f"docker inspect -f '{{{{.Config.Image}}}}' {APP}").strip() == v1
        assert json.loads(host.file(f"{PROJECT}/current/release.json").content_string)["id"] == current
        wait_healthy(host, timeout=60)
        assert api_version(host) == "sample-1"
        assert not host.file(f"{PROJECT}/deploy.lock").exists


def test_rollback_refused_on_one_host_changes_no_host(host: testinfra.host.Host, tmp_path: Path) -> None:
    """Every host's checks pass before the first batch: backup-b (no stack) is refused, and
    backup-a, first in the inventory and in a batch of its own, is not rolled back.

    Seen to fail without the check play of playbooks/rollback.yml: backup-a's batch ran
    first and switched to the release (it failed its gate and was put back: the app
    restarted)."""
    with release_failing_its_gate(host):
        app_id = app_started(host)
        rc, out, _run = playbook("rollback", second_host(tmp_path), ops_rollback_to=BAD_BUILD)
    assert rc != 0, out[-3000:]
    assert f"There is no stack in ops_project_dir={ELSEWHERE} on backup-b" in out
    assert after_play(out, "Roll the trading app back") == "", "a batch started"
    assert app_started(host) == app_id
    assert not host.file(f"{PROJECT}/deploy.lock").exists


def test_restore_refused_on_one_host_restores_no_host(host: testinfra.host.Host, tmp_path: Path) -> None:
    """Every host's checks pass before any host's data is replaced: backup-b (no stack) is
    refused, and backup-a keeps its data, its app and its backups.

    Seen to fail without the check play of playbooks/restore.yml: backup-a went on alone
    and restored (a backup of the replaced data, the app restarted)."""
    app_id = app_started(host)
    safety = host.run(f"ls {BACKUPS}/before-restore").stdout.split()
    rc, out, _run = playbook(
        "restore", second_host(tmp_path), target="backup-a,backup-b", backup_restore_confirm=True
    )
    assert rc != 0, out[-3000:]
    assert f"There is no stack in backup_project_dir={ELSEWHERE} on backup-b" in out
    assert after_play(out, "Restore the trading stack from a backup") == "", "the restore started"
    assert app_started(host) == app_id
    assert host.run(f"ls {BACKUPS}/before-restore").stdout.split() == safety
    assert not host.file(f"{PROJECT}/deploy.lock").exists


def test_rollback_serial_sets_the_batch(host: testinfra.host.Host, tmp_path: Path) -> None:
    """rollback_serial=2 puts both hosts in one batch: one banner of the rollback's play.
    backup-b passes the checks (a copy of the running release's files in a project
    directory of its own) and is then refused by the deploy lock another run holds there,
    which stops the run after its batch (max_fail_percentage 0).

    Seen to fail when playbooks/rollback.yml ignored rollback_serial (`serial: 1`):
    two batches, two banners.
    """
    current = json.loads(host.file(f"{PROJECT}/current/release.json").content_string)
    holder = {"id": "another-run", "by": "someone@desk", "since": "2026-01-01T00:00:00Z", "version": "deploy"}
    run_ok(
        host,
        f"install -d -m 0750 {ELSEWHERE}/releases {ELSEWHERE}/secrets"
        f" && touch {ELSEWHERE}/compose.yaml"
        f" && cp -a {PROJECT}/current/ {ELSEWHERE}/releases/{current['id']}"
        f" && ln -s releases/{current['id']} {ELSEWHERE}/current"
        f" && cp -a {PROJECT}/secrets/db_password {PROJECT}/secrets/db_app_password {ELSEWHERE}/secrets/"
        f" && printf '%s' {shlex.quote(json.dumps(holder))} > {ELSEWHERE}/deploy.lock",
    )
    try:
        app_id = app_started(host)
        rc, out, result = playbook(
            "rollback", second_host(tmp_path), ops_rollback_to=current["id"], rollback_serial=2
        )
    finally:
        run_ok(host, f"rm -rf {ELSEWHERE}")
    assert rc != 0, out[-3000:]
    assert "backup-b is locked by another deploy: someone@desk" in out, out[-3000:]
    assert result.stdout.count("PLAY [Roll the trading app back]") == 1, "one batch"
    assert f"backup-a: runs release {current['id']} already, nothing changed" in out
    assert app_started(host) == app_id
    assert not host.file(f"{PROJECT}/deploy.lock").exists


# --- Status, logs, schedule ---------------------------------------------------------


def test_status_reports_version_health_disk_and_backup_age(host: testinfra.host.Host) -> None:
    rc, out, _run = playbook("status")
    assert rc == 0, out[-3000:]
    v1 = manifest(host, scenario(host)["backup"])["app"]["image"]
    assert f"{v1}, version sample-1" in out
    assert "algo-trade-db-1: running, healthy, restarts 0" in out
    assert "algo-trade-app-1: running, healthy, restarts 0" in out
    assert "algo-trade_db-data " in out
    assert "/var/lib/docker: " in out
    assert " free of " in out
    assert "min ago (" in out


def test_logs_prints_the_last_lines_per_service(host: testinfra.host.Host) -> None:
    # A request of its own through the proxy, for the proxy's log: the tests before this
    # one recreate the proxy (a rollback's put-back) without a health gate asking it.
    published = run_ok(host, f"{COMPOSE} port proxy 7681").strip()
    script = (
        "import ssl, sys, urllib.error, urllib.request as u\n"
        "try: u.urlopen('https://' + sys.argv[1] + '/', context=ssl._create_unverified_context())\n"
        "except urllib.error.HTTPError: pass"
    )
    run_ok(host, f"python3 -c {shlex.quote(script)} {published}")
    rc, out, _run = playbook("logs", ops_logs_lines=20)
    assert rc == 0, out[-3000:]
    assert "Trading system daemon sample-1 listening" in out
    assert " LOG: " in out
    assert "GET /" in out
    assert "[2K" not in out


def test_changing_operations_wait_for_the_deploy_lock(host: testinfra.host.Host) -> None:
    """Rollback, rotation, teardown and restore refuse while another run holds the lock; status reads."""
    lock = f"{PROJECT}/deploy.lock"
    assert not host.file(lock).exists, "an earlier operation left its lock behind"
    held = {"id": "fedcba9876543210", "by": "other@elsewhere", "since": "2026-01-01T00:00:00Z"}
    app_id = run_ok(host, f"docker inspect -f '{{{{.Id}}}}' {APP}")
    run_ok(host, f"echo '{json.dumps(held)}' > {lock}")
    try:
        for name, extra in (
            ("rollback", {}),
            ("rotate_db_password", {}),
            ("teardown", {"ops_teardown_confirm": True}),
            ("restore", {"backup_restore_confirm": True}),
        ):
            rc, out, _run = playbook(name, **extra)
            assert rc != 0, out[-3000:]
            assert "backup-a is locked by another deploy: other@elsewhere" in out, name
        rc, out, _run = playbook("status")
        assert rc == 0, out[-3000:]
        assert json.loads(host.file(lock).content_string) == held
    finally:
        run_ok(host, f"rm -f {lock}")
    assert run_ok(host, f"docker inspect -f '{{{{.Id}}}}' {APP}") == app_id


def test_no_backup_while_a_restore_holds_the_lock(host: testinfra.host.Host) -> None:
    """The timer's backup (the same script) refuses while a restore replaces the data."""
    lock = f"{PROJECT}/deploy.lock"
    restoring = {"id": "fedcba9876543210", "by": "other@elsewhere", "since": "2026-01-01T00:00:00Z"}
    before = backups(host)
    run_ok(host, f"echo '{json.dumps({**restoring, 'version': 'restore'})}' > {lock}")
    try:
        result = host.run("/usr/local/sbin/algo-trade-backup")
        assert result.rc != 0, result.stdout
        assert "a restore is running on this host" in result.stderr
        assert backups(host) == before
        # Another holder (a deploy) does not stop backups.
        run_ok(
            host, f"echo '{json.dumps({**restoring, 'version': 'algo-trade/app:0123456789abcdef'})}' > {lock}"
        )
        run_ok(host, "/usr/local/sbin/algo-trade-backup")
        assert len(set(backups(host)) - set(before)) == 1
    finally:
        run_ok(host, f"rm -f {lock}")


def test_scheduled_backup_runs_the_same_script_with_retention(host: testinfra.host.Host) -> None:
    rc, out, _run = playbook("backup_schedule")
    assert rc == 0, out[-3000:]
    assert host.service("algo-trade-backup.timer").is_enabled
    assert host.service("algo-trade-backup.timer").is_running
    before = backups(host)
    for _attempt in range(3):
        # A oneshot service: `systemctl start` returns when the backup is done.
        run_ok(host, "systemctl start algo-trade-backup.service")
        latest = backups(host)[-1]
        # Backups are named by the second: the next one starts in a later second.
        wait_for(
            f"the host's clock past {latest}",
            lambda: host.run("date -u +%Y%m%dT%H%M%SZ").stdout.strip() > latest,  # noqa: B023
            timeout=5,
            interval=0.2,
        )
    after = backups(host)
    assert len(after) == VARS["backup_keep"] == 3
    assert set(after) - set(before), "the timer's service took new backups"
    newest = manifest(host, after[-1])
    assert newest["tables"]["timescaledb"] == restored_counts(host, newest)
    _rc, _out, again = playbook("backup_schedule")
    assert recap(again, HOST)["changed"] == 0


# --- Teardown (last) ----------------------------------------------------------------


def test_teardown_refuses_without_confirmation(host: testinfra.host.Host) -> None:
    rc, out, _run = playbook("teardown")
    assert rc != 0
    assert "run again with -e ops_teardown_confirm=true" in out
    wait_healthy(host, timeout=10)


def test_teardown_keeps_the_volumes(host: testinfra.host.Host) -> None:
    rc, out, _run = playbook("teardown", ops_teardown_confirm=True)
    assert rc == 0, out[-3000:]
    assert run_ok(host, f"{COMPOSE} ps -a -q").strip() == ""
    volumes = run_ok(host, "docker volume ls -q").split()
    assert {"algo-trade_db-data", "algo-trade_app-data"} <= set(volumes)
    assert "volumes kept: " in out
    # Its nightly run would start the database of a stack that is gone.
    assert "the backup timer is removed" in out
    assert not host.file("/etc/systemd/system/algo-trade-backup.timer").exists
    # Nothing runs: the stack role's local fact is withdrawn (another project may come).
    assert not host.file("/etc/ansible/facts.d/algotrade_deploy.fact").exists
    assert host.run("systemctl is-enabled algo-trade-backup.timer").rc != 0


def test_teardown_deleting_the_data_leaves_a_final_backup(host: testinfra.host.Host) -> None:
    """The final backup holds the data: every row of the database (the stack is down since
    the test before, so nothing writes; its database started here to count them) and the
    bot databases as the newest backup (the timer's) has them, no bot changed since."""
    before = backups(host)
    sqlite = manifest(host, before[-1])["tables"]["sqlite"]
    assert set(SQLITE_COPIES) <= set(sqlite)
    run_ok(host, f"{COMPOSE} up -d --wait db")
    counts = table_counts(host)
    rc, out, _run = playbook("teardown", ops_teardown_confirm=True, ops_teardown_delete_volumes=True)
    assert rc == 0, out[-3000:]
    volumes = run_ok(host, "docker volume ls -q").split()
    assert "algo-trade_db-data" not in volumes
    assert "algo-trade_app-data" not in volumes
    final = backups(host)[-1]
    assert final not in before
    assert f"final backup: {BACKUPS}/{final}" in out
    assert manifest(host, final)["tables"] == {"timescaledb": counts, "sqlite": sqlite}


def test_teardown_deleting_again_changes_nothing(host: testinfra.host.Host) -> None:
    """No volume left: no final backup (it would start the database on new, empty volumes)."""
    before = backups(host)
    rc, out, result = playbook("teardown", ops_teardown_confirm=True, ops_teardown_delete_volumes=True)
    assert rc == 0, out[-3000:]
    assert recap(result, HOST)["changed"] == 0
    assert backups(host) == before
    assert "volumes deleted: none left" in out
    assert not [v for v in run_ok(host, "docker volume ls -q").split() if v.startswith("algo-trade_")]
