"""Upgrades in place, one test per change of the on-host layout: a collection of before
(its tree from git, at the last commit before the change) deploys, then this collection
takes the host over with at most one restart of the stack and without data loss, and its
second run changes nothing. In file order, from a bare host: the first layout (before
whole releases), before schema migrations, before the app's database role; then the
prune takes the releases of before with their files.

Apart from the stack scenario (molecule/upgrade), so that the two run side by side; the
stack scenario's helpers serve both (stackenv picks the scenario's host).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import testinfra.host
from stackenv import (
    APP,
    APP_SERVICES,
    COMPOSE,
    DB,
    INVENTORY,
    PROJECT,
    PROXY,
    STACK_HOST,
    STACK_HOSTS,
    TERMINALS,
    VARS,
    api,
    assert_no_secret,
    current_release,
    locked_sample,
    wait_healthy,
)
from test_services import process_environment
from test_stack import engine_events, releases, served_certificate
from test_stack_migrations import (
    APPLIED,
    CONVERGE,
    SCRIPTS,
    SETUP,
    db_mounts,
    deploy,
    psql,
    recorded,
    scenario_list,
    sha256,
)
from test_stack_roles import LEAST, admin_sql, app_sql, role_attributes
from testlib import REPO, ansible_playbook, recap, run_ok

testinfra_hosts = STACK_HOSTS

# The last commit whose stack role kept the first layout (compose.yaml and its files in
# the project directory), before whole releases.
FIRST_LAYOUT = "6811067"
# The last commit whose stack role ran the setup script as the database's init script
# (before schema migrations).
BEFORE_MIGRATIONS = "64b7f55"
# The last commit before the app's database role (its app logged in as the admin).
BEFORE_APP_ROLE = "c3bd802"
# How the collections of before build the sample's locked form here: with cache-mounts, whose
# build step sees the test bed builder's compiler cache (their cargo-chef step mounts an empty
# one over it: seen compiling every dependency, most of the scenario's 44 minutes).
LOCKED_BUILD_OF_BEFORE = {"stack_build_strategy": "cache-mounts"}
# The version the scenario's sample app reports (its X-Algo-Trade-Version).
SOURCE_VERSION = re.search(
    r'pub const VERSION: &str = "([^"]+)"',
    (Path(VARS["sample_app_dir"]) / "crates" / "cli" / "src" / "main.rs").read_text(),
)[1]  # type: ignore[index]


def playbook_of_before(
    commit: str, tmp_path: Path, playbook: str, **extra_vars: object
) -> subprocess.CompletedProcess[str]:
    """A playbook of the collection at `commit` (its tree from git, with its own
    ansible.cfg and collection path), against this scenario's inventory."""
    old = tmp_path / f"collection-{commit}"
    if not old.exists():
        old.mkdir()
        archive = subprocess.run(["git", "archive", commit], cwd=REPO, check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
        (old / "docker.yml").write_text(
            "- {hosts: stack, gather_facts: false, roles: [algotrade.deploy.docker]}\n"
        )
    env = {"ANSIBLE_CONFIG": str(old / "ansible.cfg"), "ANSIBLE_COLLECTIONS_PATH": str(old / ".collections")}
    return ansible_playbook(old / playbook, INVENTORY, env=env, extra_vars=extra_vars)


def converge_of_before(commit: str, tmp_path: Path, **extra_vars: object) -> subprocess.CompletedProcess[str]:
    """The stack scenario's converge.yml of the collection at `commit`."""
    return playbook_of_before(commit, tmp_path, "molecule/stack/converge.yml", **extra_vars)


def side_load_under_docker_of_before(commit: str, tmp_path: Path) -> None:
    """The Docker role of the collection at `commit` on the bare host, then the test bed's
    images side-loaded (molecule/resources/side_load.yml): its converge then finds them
    and loads no archive, as it loads only those the host lacks (the same images in the
    engine, without 3.3 GB copied through the connection under the suite's load)."""
    docker = playbook_of_before(commit, tmp_path, "docker.yml")
    assert docker.returncode == 0, docker.stdout[-3000:]
    loaded = ansible_playbook(REPO / "molecule" / "resources" / "side_load.yml", INVENTORY)
    assert loaded.returncode == 0, loaded.stdout[-3000:]


def test_a_host_of_the_first_layout_is_taken_over_in_place(host: testinfra.host.Host, tmp_path: Path) -> None:
    """The collection of before whole releases (its tree at FIRST_LAYOUT, from git)
    deploys the stack on the bare host as it did; this collection then takes the host over: the data
    stays, the database container starts once more (without the init script's mount of
    before schema migrations; the volume's history table is kept), the app and the proxy
    start once, the proxy serves the same self-signed certificate (tls/ of before, taken
    into a release), that layout becomes a release (legacy-*) and a second run changes
    nothing.

    Seen to fail without roles/release/tasks/adopt.yml (then roles/stack's): the first
    release had nothing to put back and left the first layout's files behind."""
    bot = f"first-layout-{int(time.time())}"
    if host.file(PROJECT).exists:  # a verify run again: the stack of the tests below goes
        run_ok(host, f"{COMPOSE} down")
        run_ok(host, f"find {PROJECT} -mindepth 1 -maxdepth 1 ! -name build ! -name tls -exec rm -rf {{}} +")
    side_load_under_docker_of_before(FIRST_LAYOUT, tmp_path)
    first = converge_of_before(
        FIRST_LAYOUT, tmp_path, **LOCKED_BUILD_OF_BEFORE, stack_source_dir=str(locked_sample(tmp_path))
    )
    assert first.returncode == 0, first.stdout[-3000:]
    assert not host.file(f"{PROJECT}/compose.yaml").is_symlink
    assert host.file(f"{PROJECT}/build/src.tar").exists, "its staging kept the source's archive"
    # The collection of before runs the daemon (with its TUI), the database and the proxy.
    wait_healthy(host, timeout=60, containers=(APP, DB, PROXY))
    api(host, "POST", "/api/bots", {"bot_id": bot, "symbol": "ETH", "strategy": "quad_ma"})
    certificate = served_certificate(host, 7681)
    engine = run_ok(host, "pidof dockerd").strip()

    with engine_events(host) as events:
        result = ansible_playbook(REPO / "molecule" / "stack" / "converge.yml", INVENTORY)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert_no_secret(out)
    assert events.count("app start") == 1, events
    assert events.count("proxy start") <= 1, events
    assert events.count("db start") == 1, events
    # The collection of before left icc on: the engine restarted once for daemon.json,
    # under the running stack (live-restore), which the counts above saw restarted once,
    # not twice. (A live-restored engine keeps its default bridge as it was: icc is off
    # there from the engine's next start without running containers, a reboot.)
    assert run_ok(host, "pidof dockerd").strip() != engine
    assert not host.file(f"{PROJECT}/build/src.tar").exists, "the prune takes the archive of before"
    assert json.loads(host.file("/etc/docker/daemon.json").content_string)["icc"] is False

    legacy = [r for r in releases(host).values() if str(r["id"]).startswith("legacy-")]
    assert len(legacy) == 1, sorted(releases(host))
    kept = host.file(f"{PROJECT}/releases/{legacy[0]['id']}/compose.yaml").content_string
    assert "./secrets/app_config" in kept
    assert current_release(host)["id"] != legacy[0]["id"]
    assert run_ok(host, f"readlink {PROJECT}/compose.yaml {PROJECT}/current").split() == [
        "current/compose.yaml",
        f"releases/{current_release(host)['id']}",
    ]
    wait_healthy(host, timeout=60)
    assert bot in api(host, "GET", "/api/bots")
    assert api(host, "GET", "/api/bots").startswith(f"200 {SOURCE_VERSION}")
    assert served_certificate(host, 7681) == certificate, "the certificate its users trust is kept"

    again = ansible_playbook(REPO / "molecule" / "stack" / "converge.yml", INVENTORY)
    assert again.returncode == 0, again.stdout[-3000:]
    # The scenario's idempotence check (its test sequence has no idempotence step).
    assert recap(again, STACK_HOST)["changed"] == 0, again.stdout[-3000:]


def test_a_host_deployed_before_migrations_is_taken_over_with_the_setup_as_baseline(
    host: testinfra.host.Host, tmp_path: Path
) -> None:
    """A database made by the collection of before migrations (BEFORE_MIGRATIONS, from git):
    the setup script ran as its init script, no history table. This collection records the
    setup script as applied without running it (baseline: it is not re-runnable), says so,
    and applies V001..V004; the data stays, the database container is recreated once
    (without the init script's mount), and the next run changes nothing."""
    run_ok(host, f"{COMPOSE} down")
    run_ok(host, "docker volume rm algo-trade_db-data")
    first = converge_of_before(
        BEFORE_MIGRATIONS, tmp_path, **LOCKED_BUILD_OF_BEFORE, stack_source_dir=str(locked_sample(tmp_path))
    )
    assert first.returncode == 0, first.stdout[-3000:]
    # The collection of before runs the daemon (with its TUI), the database and the proxy.
    wait_healthy(host, timeout=60, containers=(APP, DB, PROXY))
    assert psql(host, "SELECT to_regclass('algotrade_schema_history')") == ""
    assert psql(host, "SELECT to_regclass('signals')") == ""
    assert any("docker-entrypoint-initdb.d" in m for m in db_mounts(host))
    psql(host, "INSERT INTO ohlcv VALUES (now(), 'TAKEOVER', 1, 2, 0.5, 1.5, 10)")

    with engine_events(host) as events:
        result, out = deploy()
    assert result.returncode == 0, out[-3000:]
    assert (
        f"recorded {SETUP} as applied without running it (baseline: no history table, and the database holds"
        " the tables it creates, ohlcv, trades, fills, backtest_results" in out
    ), out[-3000:]
    assert f"applied {', '.join(APPLIED)}." in out
    baseline = [(SETUP, None, sha256(SCRIPTS / SETUP), True), *scenario_list()[1:]]
    assert recorded(host) == baseline
    assert psql(host, "SELECT count(*) FROM ohlcv WHERE symbol = 'TAKEOVER'") == "1"
    assert events.count("db start") == 1, events
    assert not [m for m in db_mounts(host) if "docker-entrypoint-initdb.d" in m]
    wait_healthy(host, timeout=60)
    assert api(host, "GET", "/api/bots").startswith("200 ")

    again, out = deploy()
    assert again.returncode == 0, out[-3000:]
    assert recap(again, STACK_HOST)["changed"] == 0, out[-3000:]
    assert recorded(host) == baseline


def test_a_host_whose_app_logged_in_as_the_admin_is_taken_over_with_one_restart(
    host: testinfra.host.Host, tmp_path: Path
) -> None:
    """The collection of before the app's role (BEFORE_APP_ROLE, from git; before the web
    terminals' own UID too) deploys; its app logs in as algo, the superuser. This
    collection then makes algo_app with its rights, restarts each app service once (their
    URL changed) and not the database, keeps the data, runs the terminals as
    stack_tui_uid and the proxy as stack_proxy_uid (same certificate), and the next run
    changes nothing. The release of before stays on the host, marked as
    having no role of its own (release.json without db_app)."""
    # The same source and image template as this collection's: the image is not built again.
    first = converge_of_before(BEFORE_APP_ROLE, tmp_path)
    assert first.returncode == 0, first.stdout[-3000:]
    wait_healthy(host, timeout=90)
    assert urlsplit(process_environment(host, APP, "algo-trade run")["DATABASE_URL"]).username == "algo"
    # What that collection left on a host it made: no app role, no file of its password.
    admin_sql(host, "DROP OWNED BY algo_app; DROP ROLE algo_app")
    run_ok(host, f"rm {PROJECT}/secrets/db_app_password")
    old_release = current_release(host)
    assert "db_app" not in old_release
    # Its proxy started as root, the self-signed key root's.
    certificate = served_certificate(host, 7681)
    admin_sql(host, "INSERT INTO ohlcv VALUES (now(), 'UPGRADE', 1, 2, 0.5, 1.5, 10)")

    with engine_events(host) as events:
        result = ansible_playbook(CONVERGE, INVENTORY)
    out = result.stdout + result.stderr
    assert_no_secret(out)
    assert result.returncode == 0, out[-3000:]
    for container in APP_SERVICES:
        service = container.removeprefix("algo-trade-").removesuffix("-1")
        assert events.count(f"{service} start") == 1, (service, events)
    assert events.count("db start") == 0, events
    assert role_attributes(host) == LEAST
    rc, found = app_sql(host, "SELECT count(*) FROM ohlcv WHERE symbol = 'UPGRADE'")
    assert (rc, found) == (0, "1"), found
    assert current_release(host)["db_app"] == {"user": "algo_app", "schemas": ["public"]}
    assert host.file(f"{PROJECT}/releases/{old_release['id']}/release.json").exists
    # The web terminals of before ran as the daemon's UID, their sockets on a volume of
    # their own: now as stack_tui_uid, on a tmpfs volume of that user; the old one is gone.
    volumes = run_ok(host, "docker volume ls -q").split()
    assert "algo-trade_tui-sockets-10002" in volumes, volumes
    assert "algo-trade_tui-socket" not in volumes, volumes
    for terminal in TERMINALS:
        users = {
            line.split()[1] for line in run_ok(host, f"docker top {terminal} -eo pid,uid").splitlines()[1:]
        }
        assert users == {"10002"}, (terminal, users)
    wait_healthy(host, timeout=60)
    assert api(host, "GET", "/api/bots").startswith("200 ")
    # The proxy runs as nginx's UID from its first process, with the same certificate: its key
    # copied for that user; the root-owned one stays for the release of before.
    proxy_users = {
        line.split()[1] for line in run_ok(host, f"docker top {PROXY} -eo pid,uid").splitlines()[1:]
    }
    assert proxy_users == {"101"}, proxy_users
    assert served_certificate(host, 7681) == certificate, "the certificate its users trust is kept"

    again = ansible_playbook(CONVERGE, INVENTORY)
    assert again.returncode == 0, again.stdout[-3000:]
    assert recap(again, STACK_HOST)["changed"] == 0, again.stdout[-3000:]
    admin_sql(host, "DELETE FROM ohlcv WHERE symbol = 'UPGRADE'")


def test_the_prune_takes_the_releases_of_before_with_their_files(host: testinfra.host.Host) -> None:
    """After the takeovers above, the runs' prunes keep the newest stack_release_keep (3):
    the first layout's release (legacy-*) went with the files only it used (proxy/, tls/).
    With stack_release_keep: 2, the release of before migrations goes too, with the init
    script it mounted (schema/); the running one and the newest other stay, and the stack
    runs on."""
    assert not [i for i in releases(host) if i.startswith("legacy-")], sorted(releases(host))
    assert not host.file(f"{PROJECT}/proxy").exists
    assert not host.file(f"{PROJECT}/tls").exists, "the certificate of the first layout went with its release"
    assert host.file(f"{PROJECT}/schema").exists, "a kept release of before migrations mounts it"
    result = ansible_playbook(CONVERGE, INVENTORY, extra_vars={"stack_release_keep": 2})
    assert result.returncode == 0, result.stdout[-3000:]
    kept = releases(host)
    assert len(kept) == 2, sorted(kept)
    assert current_release(host)["id"] in kept
    assert run_ok(host, f"ls {PROJECT}/secrets").split() == ["db_app_password", "db_password"]
    assert not host.file(f"{PROJECT}/schema").exists, "the init script of before went with its last release"
    wait_healthy(host, timeout=60)
