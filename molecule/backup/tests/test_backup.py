"""Operations on one host after the side effect: a backup taken under load, the volumes
lost and restored, v2 rolled back to v1, the database password rotated.

The side effect leaves /root/scenario.json (the backup it took, the counts before the
loss). Tests run in file order; the last ones tear the stack down.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import testinfra.host
import testinfra.utils.ansible_runner
from testlib import REPO, ansible_playbook, expected_hosts, recap, run_ok

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
OLD_DB_PASSWORD = VARS["stack_db_password"]
NEW_DB_PASSWORD = VARS["rotated_db_password"]
SECRETS = [OLD_DB_PASSWORD, NEW_DB_PASSWORD, VARS["stack_tui_password"]]
# Later playbook runs must know the rotated password, as an operator's vault would.
ROTATED = {"stack_db_password": NEW_DB_PASSWORD}

# The daemon's TCP login, as the app makes it (to the service name: the official image
# trusts 127.0.0.1 without a password); the password comes on stdin.
DB_LOGIN = (
    f"{COMPOSE} exec -T db sh -c 'IFS= read -r PGPASSWORD; export PGPASSWORD;"
    ' psql -X -At -h db -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c "SELECT 1"\''
)
COUNTS_SQL = (
    "SELECT json_object_agg(format('%I.%I', schemaname, tablename), (xpath('/row/n/text()',"
    " query_to_xml(format('SELECT count(*) AS n FROM %I.%I', schemaname, tablename), false, true, '')))[1]"
    "::text::bigint) FROM pg_tables WHERE schemaname = 'public'"
)


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


def table_counts(host: testinfra.host.Host) -> dict[str, int]:
    out = run_ok(host, f"{COMPOSE} exec -T db psql -U algo -d algo_trade -tAc {json.dumps(COUNTS_SQL)}")
    value = json.loads(out)
    assert isinstance(value, dict)
    return value


def bots(host: testinfra.host.Host) -> list[dict[str, Any]]:
    script = (
        "import json,urllib.request as u;print(u.urlopen('http://127.0.0.1:8080/api/bots').read().decode())"
    )
    value = json.loads(run_ok(host, f"python3 -c {json.dumps(script)}"))
    assert isinstance(value, list)
    return value


def api_version(host: testinfra.host.Host) -> str:
    script = (
        "import urllib.request as u;"
        "print(u.urlopen('http://127.0.0.1:8080/api/bots').headers['X-Algo-Trade-Version'])"
    )
    return run_ok(host, f"python3 -c {json.dumps(script)}").strip()


def db_login(host: testinfra.host.Host, password: str) -> bool:
    result = host.run(f"printf '%s\\n' {password} | {DB_LOGIN}")
    return bool(result.rc == 0)


def wait_healthy(host: testinfra.host.Host, timeout: int = 120) -> None:
    deadline = time.time() + timeout
    states = ""
    while time.time() < deadline:
        states = host.run(f"{COMPOSE} ps --format '{{{{.Service}}}}={{{{.Health}}}}'").stdout
        if states.split() and all(s.endswith("=healthy") for s in states.split()):
            return
        time.sleep(2)
    raise AssertionError(f"not healthy: {states}\n{host.run(f'{COMPOSE} logs --tail 30').stdout}")


def playbook(name: str, **extra_vars: object) -> tuple[int, str, subprocess.CompletedProcess[str]]:
    """Run one of the collection's playbooks; no secret may reach its output."""
    result = ansible_playbook(PLAYBOOKS / f"{name}.yml", INVENTORY, extra_vars={**ROTATED, **extra_vars})
    out = result.stdout + result.stderr
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with (ARTIFACTS / f"{name}.log").open("a") as log:
        log.write(f"$ ansible-playbook playbooks/{name}.yml -e {json.dumps(extra_vars)}\n{out}\n")
    for secret in SECRETS:
        assert secret not in out, f"a secret reached the output of {name}.yml"
    # Whitespace normalised: the YAML callback folds long lines.
    return result.returncode, " ".join(out.split()), result


# --- The backup taken while writers wrote, and its restore -------------------------


def test_backup_files_match_the_manifest_checksums(host: testinfra.host.Host) -> None:
    name = scenario(host)["backup"]
    files = manifest(host, name)["files"]
    assert set(files) == {"db.dump", "globals.sql", "bots.db"}
    for file, entry in files.items():
        path = f"{BACKUPS}/{name}/{file}"
        assert host.file(path).sha256sum == entry["sha256"], path
        assert host.file(path).size == entry["bytes"], path


def test_backup_is_root_only_and_holds_no_password(host: testinfra.host.Host) -> None:
    name = scenario(host)["backup"]
    assert host.file(BACKUPS).mode == 0o700
    for file in ("db.dump", "globals.sql", "bots.db", "manifest.json"):
        entry = host.file(f"{BACKUPS}/{name}/{file}")
        assert (entry.user, entry.mode) == ("root", 0o600), file
    globals_sql = host.file(f"{BACKUPS}/{name}/globals.sql").content_string
    assert "CREATE ROLE algo" in globals_sql
    assert "SCRAM-SHA-256$" not in globals_sql
    for secret in SECRETS:
        assert host.run("grep -rqaF -e %s %s", secret, f"{BACKUPS}/{name}").rc == 1


def test_backup_was_taken_while_the_writers_wrote(host: testinfra.host.Host) -> None:
    record = scenario(host)
    taken = manifest(host, record["backup"])
    trades = taken["tables"]["timescaledb"]["public.trades"]
    seeded = 1441  # the side effect's generate_series: 10 days every 10 minutes, both ends
    assert trades >= seeded + 50, "the writer had written before the backup started"
    assert record["trades_before_loss"] > trades, "the writer kept writing after the snapshot"
    assert record["bots_before_loss"] > taken["tables"]["sqlite"]["bots"] > 3


def test_restored_rows_equal_the_manifest(host: testinfra.host.Host) -> None:
    taken = manifest(host, scenario(host)["backup"])
    assert table_counts(host) == taken["tables"]["timescaledb"]
    assert set(taken["tables"]["timescaledb"]) == {
        "public.ohlcv",
        "public.trades",
        "public.fills",
        "public.backtest_results",
    }


def test_restored_hypertables_are_hypertables(host: testinfra.host.Host) -> None:
    query = "'SELECT hypertable_name FROM timescaledb_information.hypertables ORDER BY 1'"
    out = run_ok(host, f"{COMPOSE} exec -T db psql -U algo -d algo_trade -tAc {query}")
    assert out.split() == ["backtest_results", "fills", "ohlcv", "trades"]
    show = "'SHOW timescaledb.restoring'"
    restoring = run_ok(host, f"{COMPOSE} exec -T db psql -U algo -d algo_trade -tAc {show}")
    assert restoring.strip() == "off", "timescaledb_post_restore() ran"


def test_bots_are_back(host: testinfra.host.Host) -> None:
    taken = manifest(host, scenario(host)["backup"])
    names = [bot["name"] for bot in bots(host)]
    assert {"seed-alpha", "seed-beta", "seed-gamma"} <= set(names)
    assert len(names) == taken["tables"]["sqlite"]["bots"]


def test_backup_fetched_to_the_controller(host: testinfra.host.Host) -> None:
    name = scenario(host)["backup"]
    local = Path(VARS["backup_fetch_dir"]) / HOST / name
    files = manifest(host, name)["files"]
    for file, entry in files.items():
        assert hashlib.sha256((local / file).read_bytes()).hexdigest() == entry["sha256"]
    # The trading data on the controller: readable by its owner only.
    for path in [local.parent, local, *local.iterdir()]:
        assert path.stat().st_mode & 0o077 == 0, f"{path}: {oct(path.stat().st_mode)}"


# --- Rollback and password rotation (side effect) ----------------------------------


def test_rollback_runs_v1_again(host: testinfra.host.Host) -> None:
    v1 = manifest(host, scenario(host)["backup"])["app"]["image"]
    running = run_ok(host, f"docker inspect -f '{{{{.Config.Image}}}}' {APP}").strip()
    assert running == v1
    assert api_version(host) == "sample-1"
    tags = run_ok(host, "docker images algo-trade/app --format '{{.Repository}}:{{.Tag}}'").split()
    assert v1 in tags
    assert len(tags) >= 2, "v2 stays on the host for a roll forward"


def test_rollback_again_changes_nothing(host: testinfra.host.Host) -> None:
    """The target is the build before the newest: a second run does not go one further back."""
    running = run_ok(host, f"docker inspect -f '{{{{.Config.Image}}}}' {APP}").strip()
    rc, out, result = playbook("rollback")
    assert rc == 0, out[-3000:]
    assert f"runs {running} already, nothing changed" in out
    assert recap(result, HOST)["changed"] == 0
    assert run_ok(host, f"docker inspect -f '{{{{.Config.Image}}}}' {APP}").strip() == running


def test_rotated_password_works_and_the_old_one_is_refused(host: testinfra.host.Host) -> None:
    wait_healthy(host, timeout=30)
    assert db_login(host, NEW_DB_PASSWORD)
    assert not db_login(host, OLD_DB_PASSWORD)
    assert host.file(f"{PROJECT}/secrets/db_password").content_string == NEW_DB_PASSWORD
    assert host.file(f"{PROJECT}/secrets/db_password").mode == 0o400


def test_rotation_kept_the_data_and_the_password_out_of_logs(host: testinfra.host.Host) -> None:
    taken = manifest(host, scenario(host)["backup"])
    assert table_counts(host) == taken["tables"]["timescaledb"]
    assert len(bots(host)) == taken["tables"]["sqlite"]["bots"]
    logs = run_ok(host, f"{COMPOSE} logs --no-color 2>&1; ps auxww")
    for secret in SECRETS:
        assert secret not in logs


def test_rotation_again_changes_nothing(host: testinfra.host.Host) -> None:
    started = run_ok(host, f"docker inspect -f '{{{{.State.StartedAt}}}}' {APP}")
    rc, out, _run = playbook("rotate_db_password")
    assert rc == 0, out[-3000:]
    assert "the password was current already, nothing changed" in out
    assert run_ok(host, f"docker inspect -f '{{{{.State.StartedAt}}}}' {APP}") == started


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


def test_restore_refuses_a_damaged_backup(host: testinfra.host.Host) -> None:
    name = scenario(host)["backup"]
    fake = "20000101T000001Z"
    run_ok(host, f"cp -a {BACKUPS}/{name} {BACKUPS}/{fake} && printf x >> {BACKUPS}/{fake}/bots.db")
    try:
        rc, out, _run = playbook("restore", backup_restore_confirm=True, backup_restore_name=fake)
        assert rc != 0
        assert f"{fake}/bots.db is missing or its sha256 differs from manifest.json" in out
    finally:
        host.run(f"rm -rf {BACKUPS}/{fake}")


def test_rollback_refuses_an_unknown_build(host: testinfra.host.Host) -> None:
    rc, out, _run = playbook("rollback", ops_rollback_to="0000000000000000")
    assert rc != 0
    assert "ops_rollback_to=0000000000000000 is not a build on backup-a" in out


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
        run_ok(host, "systemctl start algo-trade-backup.service")
        time.sleep(1)  # backups are named by the second
    after = backups(host)
    assert len(after) == VARS["backup_keep"] == 3
    assert set(after) - set(before), "the timer's service took new backups"
    newest = manifest(host, after[-1])
    assert newest["tables"]["timescaledb"] == table_counts(host)
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


def test_teardown_deleting_the_data_leaves_a_final_backup(host: testinfra.host.Host) -> None:
    before = backups(host)
    # The newest backup, taken by the timer, holds what the restore put back.
    restored = manifest(host, before[-1])["tables"]
    rc, out, _run = playbook("teardown", ops_teardown_confirm=True, ops_teardown_delete_volumes=True)
    assert rc == 0, out[-3000:]
    volumes = run_ok(host, "docker volume ls -q").split()
    assert "algo-trade_db-data" not in volumes
    assert "algo-trade_app-data" not in volumes
    final = backups(host)[-1]
    assert final not in before
    assert f"final backup: {BACKUPS}/{final}" in out
    assert manifest(host, final)["tables"] == restored


def test_teardown_deleting_again_changes_nothing(host: testinfra.host.Host) -> None:
    """No volume left: no final backup (it would start the database on new, empty volumes)."""
    before = backups(host)
    rc, out, result = playbook("teardown", ops_teardown_confirm=True, ops_teardown_delete_volumes=True)
    assert rc == 0, out[-3000:]
    assert recap(result, HOST)["changed"] == 0
    assert backups(host) == before
    assert "volumes deleted: none left" in out
    assert not [v for v in run_ok(host, "docker volume ls -q").split() if v.startswith("algo-trade_")]
