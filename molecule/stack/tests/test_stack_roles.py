"""The app's database role: every app service logs in as stack_db_app_user, a role that is
not superuser, cannot make roles, databases or schema objects, and may only read and write
the tables (new chunks of hypertables too); the admin (stack_db_user) owns everything. A
role changed by hand is put back by the next deploy, the app left running.

Logged in as the daemon logs in: with the DATABASE_URL of its process, over the network.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import testinfra.host
from stackenv import (
    APP,
    APP_SERVICES,
    DB,
    INVENTORY,
    PROJECT,
    STACK_HOSTS,
    VARS,
    assert_no_secret,
    wait_healthy,
)
from test_services import process_environment
from testlib import REPO, ansible_playbook, recap, run_ok, run_with_stdin

testinfra_hosts = STACK_HOSTS

APP_ROLE = "algo_app"
ROLLOUT = REPO / "molecule" / "stack" / "rollout.yml"


def admin_sql(host: testinfra.host.Host, sql: str) -> str:
    """One statement as the admin over the database container's local socket."""
    return run_ok(host, f"docker exec {DB} psql -X -At -U algo -d algo_trade -c {shlex.quote(sql)}").strip()


# psql in the database container, its password on standard input: user, database, statement.
APP_PSQL = (
    "IFS= read -r PGPASSWORD; export PGPASSWORD;"
    ' exec psql -X -At -v ON_ERROR_STOP=1 -h db -U "$1" -d "$2" -c "$3"'
)


def app_sql(host: testinfra.host.Host, sql: str, password: str | None = None) -> tuple[int, str]:
    """One statement as the daemon logs in: its process's URL (user and password, or the
    password given), to the service name db. The exit status and what psql printed,
    errors included."""
    url = urlsplit(process_environment(host, APP, "algo-trade run")["DATABASE_URL"])
    words = [unquote(url.username or ""), url.path.lstrip("/"), sql]
    result = run_with_stdin(
        host,
        f"docker exec -i {DB} sh -c {shlex.quote(APP_PSQL)} psql {shlex.join(words)}",
        f"{unquote(url.password or '') if password is None else password}\n",
    )
    return result.returncode, (result.stdout + result.stderr).strip()


ATTRIBUTES = (
    "SELECT row_to_json(r) FROM (SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication,"
    " rolbypassrls, rolcanlogin,"
    " (SELECT count(*) FROM pg_auth_members m WHERE m.member = a.oid) AS memberships"
    " FROM pg_roles a WHERE rolname = 'algo_app') r"
)


def role_attributes(host: testinfra.host.Host) -> dict[str, object]:
    return dict(json.loads(admin_sql(host, ATTRIBUTES)))


LEAST = {
    "rolname": APP_ROLE,
    "rolsuper": False,
    "rolcreaterole": False,
    "rolcreatedb": False,
    "rolreplication": False,
    "rolbypassrls": False,
    "rolcanlogin": True,
    "memberships": 0,
}


def test_the_daemon_logs_in_as_a_role_without_the_admins_rights(host: testinfra.host.Host) -> None:
    """The issue's must-show: rolsuper, rolcreaterole and rolcreatedb false for the role the
    daemon's own URL logs in as. Seen to fail with the URL of before (algo: the image's
    bootstrap superuser)."""
    rc, out = app_sql(
        host,
        "SELECT json_build_object('user', current_user, 'super', rolsuper, 'createrole', rolcreaterole,"
        " 'createdb', rolcreatedb) FROM pg_roles WHERE rolname = current_user",
    )
    assert rc == 0, out
    assert json.loads(out) == {"user": APP_ROLE, "super": False, "createrole": False, "createdb": False}
    assert role_attributes(host) == LEAST


@pytest.mark.parametrize(
    ("statement", "refusal"),
    [
        ("COPY (SELECT 1) TO PROGRAM 'id'", "permission denied to COPY to or from an external program"),
        ("CREATE TABLE app_made (i int)", "permission denied for schema public"),
        ("DROP TABLE ohlcv", "must be owner of table ohlcv"),
        ("ALTER TABLE ohlcv ADD COLUMN app_made int", "must be owner of table ohlcv"),
        ("CREATE ROLE app_made", "permission denied to create role"),
        ("CREATE DATABASE app_made", "permission denied to create database"),
        (
            "INSERT INTO algotrade_schema_history (file, checksum) VALUES ('x', 'y')",
            "permission denied for table",
        ),
        (
            "SELECT count(*) FROM algotrade_schema_history",
            "permission denied for table algotrade_schema_history",
        ),
        ("SELECT rolpassword FROM pg_authid", "permission denied for table pg_authid"),
        ("ALTER ROLE algo PASSWORD 'x'", "permission denied to alter role"),
    ],
    ids=[
        "program",
        "create",
        "drop",
        "alter",
        "role",
        "database",
        "history-write",
        "history-read",
        "authid",
        "admin-password",
    ],
)
def test_the_app_role_cannot_run_programs_nor_change_the_schema(
    host: testinfra.host.Host, statement: str, refusal: str
) -> None:
    """What an SQL injection in the app could do as the superuser of before: each refused.
    Seen to pass every statement (and run `id` on the database host) as algo."""
    rc, out = app_sql(host, statement)
    assert rc != 0, out
    assert refusal in out, out


def test_the_app_role_writes_and_reads_the_tables_and_a_new_chunk(host: testinfra.host.Host) -> None:
    """An INSERT as the app into a hypertable at a time no chunk holds (TimescaleDB makes the
    chunk as the table's owner), read back, and a sequence used (scheduled_backtest_runs' BIGSERIAL). Seen
    to fail without the grants (permission denied for table ohlcv)."""
    try:
        rc, out = app_sql(host, "INSERT INTO ohlcv VALUES ('2001-01-01', 'ROLES-TEST', 1, 2, 0.5, 1.5, 10)")
        assert rc == 0, out
        rc, out = app_sql(host, "SELECT count(*) FROM ohlcv WHERE symbol = 'ROLES-TEST'")
        assert (rc, out) == (0, "1")
        rc, out = app_sql(host, "SELECT nextval(pg_get_serial_sequence('scheduled_backtest_runs', 'id')) > 0")
        assert (rc, out) == (0, "t"), out
    finally:
        admin_sql(host, "DELETE FROM ohlcv WHERE symbol = 'ROLES-TEST'")


def test_the_admin_owns_the_database_and_everything_in_it(host: testinfra.host.Host) -> None:
    """The app owns nothing: not the database, a table, a chunk nor a sequence."""
    assert (
        admin_sql(host, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'algo_trade'")
        == "algo"
    )
    owners = admin_sql(
        host,
        "SELECT string_agg(DISTINCT pg_get_userbyid(c.relowner), ',') FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' OR n.nspname LIKE '\\_timescaledb%'",
    )
    assert owners == "algo"


def test_the_app_services_write_without_permission_errors(host: testinfra.host.Host) -> None:
    """The scheduled backtests and the backtest daemon write their rows as the app role, and
    no app service logs a refusal."""
    count = "SELECT count(*) FROM scheduled_backtest_runs"
    deadline = time.monotonic() + 90
    while admin_sql(host, count) == "0" and time.monotonic() < deadline:
        time.sleep(2)
    assert admin_sql(host, count) != "0"
    for container in APP_SERVICES:
        logs = host.run(f"docker logs {container} 2>&1").stdout
        assert "permission denied" not in logs.lower(), (container, logs[-2000:])


def started_at(host: testinfra.host.Host) -> dict[str, str]:
    return {c: run_ok(host, f"docker inspect -f '{{{{.State.StartedAt}}}}' {c}") for c in APP_SERVICES}


# Rights a hand (or an attacker with the admin's login) may give the app's role beyond the
# release's, and whether the role holds each (one row, |-separated).
EXTRA_RIGHTS = (
    "GRANT TRUNCATE ON signals TO algo_app",
    "ALTER TABLE fills OWNER TO algo_app",
    "GRANT CREATE ON DATABASE algo_trade TO algo_app",
    "GRANT EXECUTE ON FUNCTION pg_read_file(text) TO algo_app",
    "GRANT SELECT ON signals TO algo_app WITH GRANT OPTION",
    "ALTER DEFAULT PRIVILEGES FOR ROLE algo IN SCHEMA public GRANT TRUNCATE ON TABLES TO algo_app",
    "ALTER ROLE algo_app SET default_transaction_isolation = 'serializable'",
    "ALTER ROLE algo_app VALID UNTIL '2099-01-01'",
)
HELD_EXTRA_RIGHTS = (
    "SELECT has_table_privilege('algo_app', 'signals', 'TRUNCATE'),"
    " pg_get_userbyid((SELECT relowner FROM pg_class WHERE oid = 'fills'::regclass)) = 'algo_app',"
    " has_database_privilege('algo_app', 'algo_trade', 'CREATE'),"
    " has_function_privilege('algo_app', 'pg_read_file(text)', 'EXECUTE'),"
    " has_table_privilege('algo_app', 'signals', 'SELECT WITH GRANT OPTION'),"
    " EXISTS (SELECT 1 FROM pg_default_acl d, aclexplode(d.defaclacl) a"
    "         WHERE a.grantee = 'algo_app'::regrole AND a.privilege_type = 'TRUNCATE'),"
    " EXISTS (SELECT 1 FROM pg_db_role_setting WHERE setrole = 'algo_app'::regrole),"
    " (SELECT rolvaliduntil IS NOT NULL AND rolvaliduntil <> 'infinity'"
    "  FROM pg_roles WHERE rolname = 'algo_app')"
)


@pytest.mark.disruptive
def test_a_role_changed_by_hand_is_put_back_by_the_next_rollout_and_the_app_runs_on(
    host: testinfra.host.Host,
) -> None:
    """SUPERUSER, a membership of pg_read_server_files and a revoked INSERT, and rights
    beyond the release's (EXTRA_RIGHTS), made by hand on a host that runs this release: the
    next rollout (site.yml, whose plan leaves a host with nothing to change out of the
    batches) takes the host in, repairs them all without restarting an app service, and
    the run after it changes nothing. Seen to fail without the plan's read of the role (the
    host was not due: the superuser stayed), and, for the extra rights, when the read saw
    missing rights only."""
    before = ansible_playbook(ROLLOUT, INVENTORY)
    assert before.returncode == 0, before.stdout[-3000:]
    assert recap(before, "stack-a")["changed"] == 0, before.stdout[-3000:]
    started = started_at(host)
    admin_sql(host, "ALTER ROLE algo_app SUPERUSER")
    admin_sql(host, "GRANT pg_read_server_files TO algo_app")
    admin_sql(host, "REVOKE INSERT ON signals FROM algo_app")
    for grant in EXTRA_RIGHTS:
        admin_sql(host, grant)
    assert admin_sql(host, HELD_EXTRA_RIGHTS) == "t|t|t|t|t|t|t|t"
    result = ansible_playbook(ROLLOUT, INVENTORY)
    out = result.stdout + result.stderr
    assert_no_secret(out)
    assert result.returncode == 0, out[-3000:]
    assert "The database role algo_app has other rights than the release gives it" in " ".join(out.split())
    assert recap(result, "stack-a")["changed"] >= 1
    assert role_attributes(host) == LEAST
    assert admin_sql(host, "SELECT has_table_privilege('algo_app', 'signals', 'INSERT')") == "t"
    assert admin_sql(host, HELD_EXTRA_RIGHTS) == "f|f|f|f|f|f|f|f"
    assert started_at(host) == started
    again = ansible_playbook(ROLLOUT, INVENTORY)
    assert again.returncode == 0, again.stdout[-3000:]
    assert recap(again, "stack-a")["changed"] == 0, again.stdout[-3000:]
    wait_healthy(host, timeout=60)


def alter_app_password(password: str) -> str:
    """The app role's password set by hand, the literal encoded as SQL's (quotes doubled)."""
    literal = password.replace("'", "''")
    return f"SET log_statement = 'none'; ALTER ROLE algo_app PASSWORD '{literal}'"


@pytest.mark.disruptive
def test_a_password_rotated_after_the_preflight_is_caught_under_the_deploy_lock(
    host: testinfra.host.Host, tmp_path: Path
) -> None:
    """Another run rotates the app's password between this run's preflight (which reads the
    host before any lock) and its rollout: the release, under the deploy lock, reads the
    deployed stack again and refuses before it writes anything; the app runs on untouched
    with the rotated password. Seen to fail without the second read in the stack role's
    release.yml: the release wrote the old password into the secret file and the app's URL,
    and its app was locked out."""
    rotated = "rotated-behind-our-back/9c'2e"
    project = str(PROJECT)
    playbook = tmp_path / "raced.yml"
    playbook.write_text(
        f"""
- name: Learn the attacker's address
  hosts: attackers
  gather_facts: false
  tasks:
    - ansible.builtin.setup:
        gather_subset: ["!all", network]
- ansible.builtin.import_playbook: {REPO}/playbooks/preflight.yml
  vars: {{target: stack}}
- name: Another run rotates the app's password
  hosts: stack
  gather_facts: false
  tasks:
    - ansible.builtin.command:
        argv: [docker, exec, -i, {DB}, psql, -X, -q, -v, ON_ERROR_STOP=1, -U, algo, -d, algo_trade]
        stdin: "{alter_app_password(rotated)}"
      no_log: true
    - ansible.builtin.copy:
        content: "{rotated}"
        dest: {project}/secrets/db_app_password
        mode: "0400"
      no_log: true
- ansible.builtin.import_playbook: {REPO}/playbooks/stack.yml
  vars: {{target: stack}}
"""
    )
    started = started_at(host)
    given = VARS["stack_db_app_password"].rstrip("\r\n")
    try:
        # A setting that makes a new release: the host takes part in the rollout.
        result = ansible_playbook(playbook, INVENTORY, extra_vars={"stack_rust_log": "debug"})
        out = " ".join((result.stdout + result.stderr).split())
        assert result.returncode != 0, out[-3000:]
        assert "stack_db_app_password differs from the password the database on stack-a runs with" in out, (
            out[-3000:]
        )
        assert host.file(f"{PROJECT}/secrets/db_app_password").content_string == rotated
        assert started_at(host) == started
        # The role keeps the password the other run gave it.
        rc, found = app_sql(host, "SELECT 1", password=rotated)
        assert (rc, found) == (0, "1"), found
    finally:
        # On standard input: no password on an argv.
        put = run_with_stdin(
            host,
            f"docker exec -i {DB} psql -X -q -v ON_ERROR_STOP=1 -U algo -d algo_trade",
            alter_app_password(given),
        )
        assert put.returncode == 0, put.stderr
        put = run_with_stdin(host, f"cat > {PROJECT}/secrets/db_app_password", given)
        assert put.returncode == 0, put.stderr
    wait_healthy(host, timeout=60)
