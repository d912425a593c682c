"""The stack on a Debian 13 host: built there, healthy, confined, secret-tight, durable.

Tests that stop, restart or redeploy are marked disruptive: they run last and leave
the stack healthy.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import testinfra.host
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from stackenv import (
    APP,
    APP_SERVICES,
    BACKTEST_TUI,
    COMPOSE,
    CONTAINERS,
    DB,
    INVENTORY,
    LIVE_TUI,
    PROJECT,
    PROXY,
    STACK_HOSTS,
    TERMINALS,
    VARS,
    api,
    assert_no_secret,
    current_release,
    locked_sample,
    primary_address,
    release_file,
    wait_healthy,
)
from testlib import REPO, ansible_playbook, docker_json, leaked_secrets, recap, run_ok, streamed_events

testinfra_hosts = STACK_HOSTS


def test_every_service_healthy(host: testinfra.host.Host) -> None:
    wait_healthy(host, timeout=10)


def test_health_checks_run_every_second_until_first_healthy(host: testinfra.host.Host) -> None:
    """The host's engine (26) takes start_interval: a release passes its gate in seconds,
    not after the 10 s interval of each check in a chain (terminals, then the proxy)."""
    checked = [APP, LIVE_TUI, BACKTEST_TUI, DB, PROXY]
    for container in checked:
        check = docker_json(host, f"docker inspect -f '{{{{json .Config.Healthcheck}}}}' {container}")
        assert check.get("StartInterval") == 1_000_000_000, (container, check)


def test_app_image_built_on_the_host_and_tagged_with_its_input_digest(host: testinfra.host.Host) -> None:
    image = run_ok(host, f"docker inspect -f '{{{{.Config.Image}}}}' {APP}").strip()
    repository, tag = image.split(":")
    assert repository == "algo-trade/app"
    assert re.fullmatch(r"[0-9a-f]{16}", tag)
    labels = docker_json(host, f"docker image inspect -f '{{{{json .Config.Labels}}}}' {image}")
    assert labels["org.algotrade.build"] == tag
    # Built here with the default strategy, cargo-chef: this engine's BuildKit holds the
    # build's sccache cache mount. An image loaded from elsewhere leaves none.
    cache = run_ok(host, "docker buildx du --verbose")
    assert "algo-trade-sccache" in cache, cache[-2000:]


def test_api_answers_with_the_changed_version(host: testinfra.host.Host) -> None:
    status = api(host, "GET", "/api/bots").splitlines()[0]
    assert status == "200 sample-2", "the side effect's one-line change must be deployed"


def test_only_the_proxy_publishes_ports(host: testinfra.host.Host) -> None:
    """With stack_api_remote, the API too goes through the proxy; ttyd never has a port."""
    for container in APP_SERVICES:
        bindings = docker_json(host, f"docker inspect -f '{{{{json .HostConfig.PortBindings}}}}' {container}")
        assert bindings == {}, container
    proxy = docker_json(host, f"docker inspect -f '{{{{json .HostConfig.PortBindings}}}}' {PROXY}")
    address = primary_address(host)
    assert proxy == {
        "7681/tcp": [{"HostIp": address, "HostPort": "7681"}],
        "7682/tcp": [{"HostIp": address, "HostPort": "7682"}],
        "8443/tcp": [{"HostIp": address, "HostPort": "8080"}],
    }
    # No TCP listener in the web terminals' containers: only their shared UNIX sockets (and
    # Docker's DNS resolver on 127.0.0.11, in every container of a user-defined network).
    for container in TERMINALS:
        table = run_ok(host, f"docker exec {container} cat /proc/net/tcp /proc/net/tcp6").splitlines()
        # State 0A is LISTEN; 0B00007F is 127.0.0.11. Connections the TUI makes are not listeners.
        listeners = [
            line
            for line in table
            if ":" in line.split()[0]
            and line.split()[3] == "0A"
            and not line.split()[1].startswith("0B00007F:")
        ]
        assert listeners == [], (container, table)


@pytest.mark.parametrize("container", APP_SERVICES)
def test_app_processes_run_as_10001_and_the_web_terminals_as_10002(
    host: testinfra.host.Host, container: str
) -> None:
    top = run_ok(host, f"docker top {container} -eo pid,uid,comm").splitlines()[1:]
    assert {line.split()[1] for line in top} == {"10002" if container in TERMINALS else "10001"}


def test_data_volume_writable_by_the_app(host: testinfra.host.Host) -> None:
    run_ok(host, f"docker exec {APP} sh -c 'touch /data/.probe && rm /data/.probe'")
    assert host.run(f"docker exec {APP} touch /app/probe").rc != 0, "root filesystem must be read-only"


@pytest.mark.parametrize("container", APP_SERVICES)
def test_app_container_confinement(host: testinfra.host.Host, container: str) -> None:
    config = docker_json(host, f"docker inspect -f '{{{{json .HostConfig}}}}' {container}")
    assert config["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in config["SecurityOpt"]
    assert config["ReadonlyRootfs"] is True
    assert config["PidsLimit"] == 256
    assert config["Memory"] == 1024**3
    assert config["Privileged"] is False


def test_db_not_published(host: testinfra.host.Host) -> None:
    db_ports = docker_json(host, f"docker inspect -f '{{{{json .NetworkSettings.Ports}}}}' {DB}")
    assert all(binding is None for binding in db_ports.values())


def test_proxy_reaches_the_app_but_not_the_database(host: testinfra.host.Host) -> None:
    networks = docker_json(host, f"docker inspect -f '{{{{json .NetworkSettings.Networks}}}}' {PROXY}")
    assert sorted(networks) == ["algo-trade-edge", "algo-trade_api"]
    assert host.run(f"docker exec {PROXY} getent hosts db").rc != 0


@pytest.mark.parametrize(
    ("service", "name", "owner"),
    [
        ("", "secrets/db_password", 70),
        ("", "secrets/db_app_password", 0),
        ("app", "app_config", 10001),
        ("app", "env_HYPERLIQUID_PRIVATE_KEY", 10001),
        ("app", "env_DATABASE_URL", 10001),
        ("scheduled-backtest", "app_config", 10001),
        ("live-bot-tui", "app_config", 10002),
        ("proxy", "htpasswd_live-bot-tui", 101),
        ("proxy", "htpasswd_backtest-manager", 101),
        ("proxy", "api_htpasswd", 101),
        ("tls", "private_key.pem", 101),
    ],
)
def test_secret_files_0400_owned_by_their_reader(
    host: testinfra.host.Host, service: str, name: str, owner: int
) -> None:
    secret = host.file(release_file(host, service, name) if service else f"{PROJECT}/{name}")
    assert secret.mode == 0o400
    assert secret.uid == owner
    assert secret.gid == owner


def test_release_files_are_root_only(host: testinfra.host.Host) -> None:
    """The release's directories and its description are root's: other users on the host
    see neither the services' files nor which release runs."""
    for path in ("releases", "inputs", "secrets", f"releases/{current_release(host)['id']}"):
        directory = host.file(f"{PROJECT}/{path}")
        assert (directory.uid, directory.mode) == (0, 0o750), path
    description = host.file(f"{PROJECT}/current/release.json")
    assert (description.uid, description.mode) == (0, 0o600)


@pytest.mark.parametrize(
    "where",
    [
        f"docker inspect {' '.join(CONTAINERS)}",
        f"{COMPOSE} config",
        "; ".join(f"docker logs {c} 2>&1" for c in CONTAINERS),
        "ps auxww",
        "docker history --no-trunc $(docker inspect -f '{{.Image}}' " + APP + ")",
        f"cat {PROJECT}/compose.yaml {PROJECT}/current/release.json {PROJECT}/build/Dockerfile"
        f" {PROJECT}/build/entrypoint.sh {PROJECT}/inputs/proxy-*/nginx.conf"
        f" {PROJECT}/inputs/proxy-*/*htpasswd*",
    ],
)
def test_secrets_absent(host: testinfra.host.Host, where: str) -> None:
    assert_no_secret(run_ok(host, where))


def test_secrets_absent_from_the_web_terminals_environment(host: testinfra.host.Host) -> None:
    """ttyd and what it runs never hold the exchange keys or passwords (read from the host)."""
    top = [line for c in TERMINALS for line in run_ok(host, f"docker top {c} -eo pid,args").splitlines()[1:]]
    pids = [line.split()[0] for line in top if "ttyd" in line or "tui" in line]
    assert len(pids) >= 4, top
    for pid in pids:
        environment = run_ok(host, f"cat /proc/{pid}/environ").replace("\0", "\n")
        # The exchange's URLs are every service's setting; its keys are the daemon's only.
        names = [line.split("=", 1)[0] for line in environment.splitlines()]
        assert not [n for n in names if n.startswith("HYPERLIQUID_") and not n.endswith("_URL")], names
        assert_no_secret(environment)


def test_secrets_absent_from_the_app_images_layers(host: testinfra.host.Host) -> None:
    """Every layer of the running image, files deleted in a later layer included (docker save
    writes them uncompressed): no secret in any form."""
    image = run_ok(host, f"docker inspect -f '{{{{.Image}}}}' {APP}").strip()
    saved = subprocess.run(
        ["docker", "exec", "stack-a", "docker", "save", image], capture_output=True, check=True
    ).stdout
    assert len(saved) > 1_000_000
    assert_no_secret(saved.decode("latin-1"))


def test_hypertables_exist(host: testinfra.host.Host) -> None:
    query = "'SELECT hypertable_name FROM timescaledb_information.hypertables ORDER BY 1'"
    out = run_ok(host, COMPOSE + " exec -T db psql -U algo -d algo_trade -tAc " + query)
    assert out.split() == ["backtest_results", "fills", "ohlcv", "signals", "trades"]


def test_check_mode_on_the_deployed_host_reports_no_change(host: testinfra.host.Host) -> None:
    started = run_ok(host, f"docker inspect -f '{{{{.State.StartedAt}}}}' {APP}")
    result = ansible_playbook(REPO / "molecule" / "stack" / "converge.yml", INVENTORY, "--check", "--diff")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert recap(result, "stack-a")["changed"] == 0
    assert_no_secret(out)
    assert run_ok(host, f"docker inspect -f '{{{{.State.StartedAt}}}}' {APP}") == started


def published(host: testinfra.host.Host) -> dict[str, object]:
    """The stack role's local fact, as ops and backup gather it."""
    fact = host.file("/etc/ansible/facts.d/algotrade_deploy.fact")
    assert (fact.user, fact.group, fact.mode) == ("root", "root", 0o644)
    return dict(json.loads(fact.content_string))


def test_the_stack_is_published_for_the_operations_roles(host: testinfra.host.Host) -> None:
    """The stack role publishes where the stack lives and what runs as one local fact,
    ansible_local.algotrade_deploy; status finds the stack by it even when the
    inventory's stack_project_dir points elsewhere (ops no longer copies the stack's
    defaults). Seen to fail against the roles of before the fact (the file is absent
    on a host they deployed, and their status reads stack_project_dir)."""
    running = current_release(host)
    assert published(host) == {
        "project_dir": PROJECT,
        "project_name": "algo-trade",
        "app_image_repository": "algo-trade/app",
        "runtime_image": VARS["stack_runtime_image"],
        "current_release": running["id"],
        "image": running["image"],
        "api_url": running["api_url"],
        "health_path": "/api/bots",
        "health_timeout": running["health_timeout"],
        # The app's database role: the preflight refuses another stack_db_app_user.
        "db_app": {"user": "algo_app", "schemas": ["public"]},
    }
    rc, out = ops_playbook("status", stack_project_dir="/srv/not-the-stack")
    assert rc == 0, out[-3000:]
    assert re.search(rf'"?running_release"?: "?{running["id"]}', out), out[-3000:]


# --- Disruptive tests (run last): each leaves the stack healthy. ---------------


def now(host: testinfra.host.Host) -> str:
    """The host's clock, for `docker logs --since` (a window counted back from the end of
    a test could reach into the test before)."""
    return run_ok(host, "date -u +%Y-%m-%dT%H:%M:%S.%NZ").strip()


@pytest.mark.disruptive
def test_compose_stop_is_clean(host: testinfra.host.Host) -> None:
    since = now(host)
    run_ok(host, f"{COMPOSE} stop")
    try:
        assert run_ok(host, f"docker inspect -f '{{{{.State.ExitCode}}}}' {APP}").strip() == "0"
        logs = run_ok(host, f"docker logs --since {since} {APP} 2>&1")
        for line in (
            "Received SIGTERM, initiating graceful shutdown",
            "Shutting down all bots...",
            "Trading system daemon stopped",
        ):
            assert line in logs
    finally:
        run_ok(host, f"{COMPOSE} up -d --wait")
    db_logs = run_ok(host, f"docker logs --since {since} {DB} 2>&1")
    assert "database system was shut down at" in db_logs
    assert "not properly shut down" not in db_logs
    assert "automatic recovery" not in db_logs


@pytest.mark.disruptive
def test_bot_survives_compose_down_up(host: testinfra.host.Host) -> None:
    """A host restart is in test_faults.py."""
    name = f"survivor-{int(time.time())}"
    api(host, "POST", "/api/bots", {"bot_id": name, "symbol": "ETH", "strategy": "quad_ma"})
    run_ok(host, f"{COMPOSE} down")
    run_ok(host, f"{COMPOSE} up -d --wait")
    assert name in api(host, "GET", "/api/bots")


APP_SERVICE = "label=com.docker.compose.service=app"


@contextmanager
def app_containers_running(host: testinfra.host.Host) -> Iterator[list[int]]:
    """How many app containers ran after each start or death while the body ran, from the
    engine's own events (no sampling): the list's max is the most at once."""

    def running() -> int:
        return len(run_ok(host, f"docker ps -q --filter {APP_SERVICE}").split())

    counts = [running()]
    with streamed_events(
        host,
        f"--filter type=container --filter {APP_SERVICE} --filter event=start --filter event=die",
        "{{.Action}} {{.Actor.ID}}",
    ) as events:
        yield counts
    for event in events:
        counts.append(counts[-1] + (1 if event.startswith("start ") else -1))
    assert counts[-1] == running(), f"the events do not add up to what runs: {events}; now: " + run_ok(
        host, f"docker ps -a --no-trunc --filter {APP_SERVICE} --format '{{{{.ID}}}} {{{{.Status}}}}'"
    )


def image_of(host: testinfra.host.Host, container: str) -> str:
    return run_ok(host, f"docker inspect -f '{{{{.Config.Image}}}}' {container}").strip()


def app_inputs(host: testinfra.host.Host) -> str:
    """The digest of the app's files its container was made with (a label)."""
    label = '{{index .Config.Labels "org.algotrade.inputs"}}'
    return run_ok(host, f"docker inspect -f '{label}' {APP}").strip()


def release_state(host: testinfra.host.Host) -> dict[str, object]:
    """What says which release runs: the current release, the containers' IDs and images,
    the app's inputs label and the releases on the host."""
    return {
        "release": current_release(host),
        "ids": ids(host),
        "images": {c: image_of(host, c) for c in CONTAINERS},
        "app_inputs": app_inputs(host),
        "releases": sorted(releases(host)),
    }


def assert_put_back(host: testinfra.host.Host, before: dict[str, object], out: str) -> None:
    """The run failed and the host runs the release of before, whole and healthy."""
    release = before["release"]
    assert isinstance(release, dict)
    assert f"Put back: release {release['id']} ({release['image']}), running and healthy." in out, out[-4000:]
    wait_healthy(host, timeout=60)
    after = release_state(host)
    assert after["release"] == release
    assert after["images"] == before["images"]
    assert after["app_inputs"] == before["app_inputs"]
    assert after["releases"] == before["releases"], "the failed release is not kept"
    assert api(host, "GET", "/api/bots").startswith("200 ")


@pytest.mark.disruptive
def test_a_release_whose_daemon_exits_is_put_back_whole(host: testinfra.host.Host, tmp_path: Path) -> None:
    """A release of a new image (a new version line) and new settings whose daemon exits
    at start (a config template without [database] url): the run fails and the previous
    release runs again whole, its image with its own files, not the new ones; the
    database, which the release does not touch, is the same container throughout.

    The new release also names the certificate for another name: the release put back
    serves the certificate it was made with. Seen to fail while the self-signed
    certificate lay outside the releases (tls/, made anew for the new names before the
    gate): the put-back served the failed release's certificate.

    Two swaps happen (to the new release, back to the previous one): at no moment do two
    app containers run, counted on the engine's start/die events. Run with -vvv --diff,
    the same run shows that no secret reaches Ansible's output.

    Seen to fail (the settings alone) with the put-back of before whole releases (the
    previous image, the new files): the app kept exiting and the host stayed unhealthy."""
    before = release_state(host)
    changed = tmp_path / "sample-app"
    shutil.copytree(VARS["sample_app_dir"], changed)
    main = changed / "crates" / "cli" / "src" / "main.rs"
    main.write_text(
        re.sub(
            r'pub const VERSION: &str = ".*";',
            'pub const VERSION: &str = "sample-rejected";',
            main.read_text(),
        )
    )
    template = tmp_path / "Config.toml.j2"
    template.write_text('[server]\nhost = "0.0.0.0"\nport = 8080\n')
    certificate = served_certificate(host, 7681)
    with app_containers_running(host) as counts:
        result = ansible_playbook(
            REPO / "molecule" / "stack" / "converge.yml",
            INVENTORY,
            "-vvv",
            "--diff",
            extra_vars={
                "stack_source_dir": str(changed),
                "stack_config_template": str(template),
                "stack_tls_names": ["renamed.stack-a.example"],
                "stack_health_timeout": 60,
            },
        )
    assert max(counts) == 1, counts
    assert len(counts) >= 5, f"expected the new release to start and die, then the old one: {counts}"
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    # The sample's configuration lookup (as upstream's figment) names the missing table.
    assert "Failed to load configuration: [database]" in out
    assert_no_secret(out)
    assert_put_back(host, before, out)
    assert ids(host)[DB] == before["ids"][DB]  # type: ignore[index]
    assert api(host, "GET", "/api/bots").startswith("200 sample-2")
    assert served_certificate(host, 7681) == certificate, "the release put back serves its own certificate"


@pytest.mark.disruptive
def test_a_settings_only_release_the_app_rejects_is_put_back_whole(
    host: testinfra.host.Host, tmp_path: Path
) -> None:
    """Only a setting changes (the image stays), and the daemon rejects it at start (a config
    template without [database]): the run fails, and the previous release runs again with its
    own files, healthy; the database, whose files did not change, is the same container
    throughout. The new settings never reach the put-back."""
    before = release_state(host)
    template = tmp_path / "Config.toml.j2"
    template.write_text('[server]\nhost = "0.0.0.0"\nport = 8080\n')
    result = ansible_playbook(
        REPO / "molecule" / "stack" / "converge.yml",
        INVENTORY,
        extra_vars={"stack_config_template": str(template), "stack_health_timeout": 60},
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    assert "Failed to load configuration: [database]" in out
    assert_put_back(host, before, out)  # the same image throughout, the release's own files
    assert ids(host)[DB] == before["ids"][DB]  # type: ignore[index]


@pytest.mark.disruptive
def test_database_image_that_fails_puts_the_previous_release_back_with_the_data(
    host: testinfra.host.Host,
) -> None:
    """A database image that does not start (the app's image under another name): the
    previous release's database image runs again on the same volume, the bots kept."""
    before = release_state(host)
    name = f"db-image-probe-{int(time.time())}"
    api(host, "POST", "/api/bots", {"bot_id": name, "symbol": "ETH", "strategy": "quad_ma"})
    broken = "local/not-a-database:probe"
    run_ok(host, f"docker tag {before['images'][APP]} {broken}")  # type: ignore[index]
    try:
        result = ansible_playbook(
            REPO / "molecule" / "stack" / "converge.yml",
            INVENTORY,
            extra_vars={"stack_db_image": broken, "stack_health_timeout": 30},
        )
        out = result.stdout + result.stderr
        assert result.returncode != 0, out[-3000:]
        assert "algo-trade-db-1 is unhealthy" in out or "algo-trade-db-1 exited" in out, out[-4000:]
        assert_put_back(host, before, out)
    finally:
        host.run(f"docker image rm {broken}")
    assert name in api(host, "GET", "/api/bots")


def ops_playbook(name: str, **extra_vars: object) -> tuple[int, str]:
    """One of the collection's operations playbooks on the scenario's stack host (the
    attacker has no stack)."""
    result = ansible_playbook(
        REPO / "playbooks" / f"{name}.yml", INVENTORY, extra_vars={"target": "stack", **extra_vars}
    )
    out = result.stdout + result.stderr
    assert_no_secret(out)
    return result.returncode, " ".join(out.split())


@pytest.mark.disruptive
def test_rollback_runs_a_named_older_release_whole_and_status_lists_the_releases(
    host: testinfra.host.Host,
) -> None:
    """rollback with ops_rollback_to=<release id> runs that release as it was made (its
    image and files); status lists every kept release and says which runs. The host
    stays on it: the next test starts the project directory afresh."""
    running = current_release(host)
    older = max(
        (r for r in releases(host).values() if r["id"] != running["id"]), key=lambda r: str(r["created"])
    )
    db = ids(host)[DB]
    rc, out = ops_playbook("status")
    assert rc == 0, out[-3000:]
    for release in releases(host).values():
        assert f"{release['id']} {release['image']} {release['created']}" in out
    assert re.search(rf'"?running_release"?: "?{running["id"]}', out), out[-3000:]
    rc, out = ops_playbook("rollback", ops_rollback_to=older["id"])
    assert rc == 0, out[-3000:]
    assert f"rolled back from release {running['id']} ({running['image']}) to {older['id']}" in out
    assert current_release(host)["id"] == older["id"]
    assert published(host)["current_release"] == older["id"], "the rollback publishes what runs"
    assert image_of(host, APP) == older["image"]
    assert f"app-{app_inputs(host)}" in older["inputs"]  # type: ignore[operator]
    assert ids(host)[DB] == db, "a rollback that does not change the database keeps its container"
    wait_healthy(host, timeout=60)
    assert api(host, "GET", "/api/bots").startswith("200 ")


@contextmanager
def engine_events(host: testinfra.host.Host) -> Iterator[list[str]]:
    """The stack's container starts and destroys while the body runs, as `<service>
    <action>` lines, from the engine's own events."""
    with streamed_events(
        host,
        "--filter type=container --filter event=start --filter event=destroy",
        '{{index .Actor.Attributes "com.docker.compose.service"}} {{.Action}}',
    ) as events:
        yield events


def test_the_build_resolved_the_lock_and_kept_it_with_the_release(host: testinfra.host.Host) -> None:
    """The sample commits no Cargo.lock (as upstream): the build host resolved the versions
    once and keeps the lock per image tag; the staged source stays as it came (no lock
    written into it). The side effect's one-line change left the Cargo.toml files as they
    were: its image took the first release's lock (copied with its time), not one resolved
    again."""
    tag = image_of(host, APP).rsplit(":", maxsplit=1)[-1]
    locks = f"{PROJECT}/build/locks"
    lock = host.file(f"{locks}/{tag}.lock")
    assert lock.exists
    assert (lock.uid, lock.mode) == (0, 0o640)
    assert 'name = "sqlx"' in lock.content_string
    assert not host.file(f"{PROJECT}/build/src/Cargo.lock").exists
    (first,) = [
        name.removesuffix(".lock")
        for name in run_ok(host, f"ls {locks}").split()
        if name.endswith(".lock") and name != f"{tag}.lock"
    ]
    assert host.file(f"{locks}/{first}.lock").content_string == lock.content_string
    assert host.file(f"{locks}/{first}.lock").mtime == lock.mtime, "resolved again"
    manifests = host.file(f"{locks}/{tag}.manifests").content_string
    assert manifests == host.file(f"{locks}/{first}.manifests").content_string


def test_the_build_database_left_no_trace(host: testinfra.host.Host) -> None:
    """The sample commits no .sqlx/ (as upstream): its one compile-time checked query was
    checked against a throwaway build database, which is gone after the build, and whose
    URL is in no layer of the image nor its history."""
    assert host.run("docker inspect algo-trade-build-db").rc != 0, "the build database was removed"
    history = run_ok(host, "docker history --no-trunc " + image_of(host, APP))
    assert "postgresql://" not in history
    assert "DATABASE_URL=postgres" not in history
    # The build stage (not in the image's history) mounted the URL as a secret, by id only.
    dockerfile = host.file(f"{PROJECT}/build/Dockerfile").content_string
    assert "--mount=type=secret,id=database_url,required=true" in dockerfile
    assert "postgresql://" not in dockerfile


@pytest.mark.disruptive
def test_source_from_git_deploys_the_checked_out_revision(host: testinfra.host.Host, tmp_path: Path) -> None:
    """stack_source: git, from a repository on the host (file://) that commits its
    Cargo.lock and sqlx's query cache: the revision goes live, built --locked to that lock
    with no lock resolved and no build database."""
    repo = "/srv/sample-app.git"
    host.run(f"rm -rf {repo} /srv/sample-work")
    subprocess.run(
        ["docker", "cp", str(locked_sample(tmp_path)), "stack-a:/srv/sample-work"],
        check=True,
        capture_output=True,
    )
    run_ok(
        host,
        "cd /srv/sample-work && rm -rf .algotrade-source .git"
        " && sed -i 's/^pub const VERSION.*/pub const VERSION: \\&str = \"sample-git\";/'"
        " crates/cli/src/main.rs"
        " && git init -q -b main . && git add -A && git add -f Cargo.lock .sqlx"
        " && git -c user.name=t -c user.email=t@example.invalid commit -qm sample"
        f" && git clone -q --bare . {repo}",
    )
    since = now(host)
    result = ansible_playbook(
        REPO / "molecule" / "stack" / "converge.yml",
        INVENTORY,
        extra_vars={"stack_source": "git", "stack_source_git_repo": f"file://{repo}"},
    )
    failure = result.stdout[result.stdout.find("fatal:") :] if "fatal:" in result.stdout else ""
    assert result.returncode == 0, failure[:4000] or result.stdout[-3000:]
    assert_no_secret(result.stdout + result.stderr)  # a normal deploy's output
    wait_healthy(host, timeout=30)
    assert api(host, "GET", "/api/bots").startswith("200 sample-git")
    # The repository commits its lock and query cache: --locked to its lock, no lock
    # resolved, and sqlx's offline data instead of a build database.
    tag = image_of(host, APP).rsplit(":", maxsplit=1)[-1]
    assert not host.file(f"{PROJECT}/build/locks/{tag}.lock").exists
    created = run_ok(
        host,
        f"docker events --since {since} --until {now(host)} --filter type=container --filter event=create"
        " --format '{{.Actor.Attributes.name}}'",
    ).split()
    assert "algo-trade-build-db" not in created, created


def byo_certificate(names: list[str], address: str) -> tuple[str, str]:
    """An operator's own certificate and key (PEM), made on the controller."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    alt = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(address))]
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def served_certificate(host: testinfra.host.Host, port: int) -> str:
    """The proxy's certificate on a published port, as PEM (asked on the host's address)."""
    address = primary_address(host)
    return run_ok(
        host, f"openssl s_client -connect {address}:{port} </dev/null 2>/dev/null | openssl x509"
    ).strip()


def ids(host: testinfra.host.Host) -> dict[str, str]:
    return {c: run_ok(host, f"docker inspect -f '{{{{.Id}}}}' {c}").strip() for c in (APP, DB, PROXY)}


def secret_digest(host: testinfra.host.Host, container: str, name: str) -> str:
    return run_ok(host, f"docker exec {container} sha256sum /run/secrets/{name}").split()[0]


def releases(host: testinfra.host.Host) -> dict[str, dict[str, object]]:
    """Every release on the host by id, from its release.json."""
    ids = run_ok(host, f"ls {PROJECT}/releases").split()
    return {i: json.loads(host.file(f"{PROJECT}/releases/{i}/release.json").content_string) for i in ids}


def changed_sample(where: Path, version: str, query_suffix: str = "") -> Path:
    """A copy of the scenario's sample app with another version line and, with
    query_suffix, its one compile-time checked query's text changed."""
    changed = where / f"sample-{version}"
    shutil.copytree(VARS["sample_app_dir"], changed, ignore=shutil.ignore_patterns("target"))
    for name, old, new in [
        ("cli/src/main.rs", r'pub const VERSION: &str = ".*";', f'pub const VERSION: &str = "{version}";'),
        ("backtest-scheduler/src/lib.rs", r"RETURNING id\"", f'RETURNING id{query_suffix}"'),
    ]:
        source = changed / "crates" / name
        text = source.read_text()
        assert re.search(old, text), (name, old)
        source.write_text(re.sub(old, new, text))
    return changed


@pytest.mark.disruptive
def test_a_build_of_a_kept_schema_needs_no_build_database_and_a_changed_query_gets_one(
    host: testinfra.host.Host, tmp_path: Path
) -> None:
    """The sample commits no .sqlx/: the scenario's builds asked a build database and kept
    what sqlx learnt of the query under the schema's key. A one-line change of the same
    schema compiles from that data: no build database is created. A change of the query's
    text (the schema as it was) finds no data for it: the run says so and builds against a
    build database, which is removed after. Neither release brings the database (the
    running release's) up again.

    Such a build runs while the release is written: a source that does not compile fails
    the run before the switch, the release written for it is removed, and the release
    that ran runs on. The first change goes as operators roll out (site.yml): the plan
    starts the build, the host's batch waits for it before the switch."""
    marker = host.file(f"{PROJECT}/build/.algotrade-sqlx-queries")
    assert marker.exists
    assert (marker.uid, marker.mode) == (0, 0o640)
    key = marker.content_string.strip()
    assert re.fullmatch(r"[0-9a-f]{16}", key), key
    converge = REPO / "molecule" / "stack" / "converge.yml"
    rollout = REPO / "molecule" / "stack" / "rollout.yml"
    builds = [("sample-kept", "", False, rollout), ("sample-query", " AS id", True, converge)]
    # The release writes a password file only where it differs from what it writes: the
    # app's, whose mode drifted, is put back; the admin's is left as it is.
    app_secret = f"{PROJECT}/secrets/db_app_password"
    run_ok(host, f"chmod 0640 {app_secret}")
    for version, query_suffix, fallback, playbook in builds:
        source = changed_sample(tmp_path, version, query_suffix)
        with streamed_events(
            host, "--filter type=container --filter event=create", "{{.Actor.Attributes.name}}"
        ) as created:
            result = ansible_playbook(playbook, INVENTORY, extra_vars={"stack_source_dir": str(source)})
        out = result.stdout + result.stderr
        assert result.returncode == 0, out[-3000:]
        if playbook == rollout:
            plan, batch = out.split("PLAY [Plan the rollout on every host]", 1)[1].split(
                "PLAY [Roll out the trading stack]", 1
            )
            started = re.search(r"build \| Build the application image [^\]]*\] \**\n(\w+):", plan)
            waited = re.search(r"build \| Wait for the build\] \**\n(\w+):", batch)
            assert started, plan[-3000:]
            assert started.group(1) == "changed", plan[-3000:]
            assert waited, batch[-3000:]
            assert waited.group(1) == "ok", batch[-3000:]
            written = batch.split("write | Write the database's passwords]", 1)[1].split("TASK [", 1)[0]
            assert written.count("changed: ") == 1, written
            assert written.count("skipping: ") == 1, written
            assert (host.file(app_secret).mode, host.file(app_secret).uid) == (0o400, 0)
        kept_build = out[out.find("Take the build's result") :][:4000]
        # The message, not the task's title (printed when skipped too).
        assert ("(a query that changed?)" in out) == fallback, kept_build
        assert ("algo-trade-build-db" in created) == fallback, created
        assert host.run("docker inspect algo-trade-build-db").rc != 0, "the build database was removed"
        assert api(host, "GET", "/api/bots").startswith(f"200 {version}")
        assert marker.content_string.strip() == key, "the schema did not change"
        # The release's database is the running one's, healthy: it is not brought up again.
        db_up = re.search(r"Bring the release's database up and wait until it is healthy\] \**\n(\w+):", out)
        assert db_up, out[-3000:]
        assert db_up.group(1) == "skipping", db_up

    running = releases(host)
    app = ids(host)[APP]
    broken = changed_sample(tmp_path, "sample-broken")
    main = broken / "crates" / "cli" / "src" / "main.rs"
    main.write_text(main.read_text() + '\ncompile_error!("this source does not build");\n')
    result = ansible_playbook(converge, INVENTORY, extra_vars={"stack_source_dir": str(broken)})
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    assert "this source does not build" in out
    assert re.search(r"The image of release \w+ \(.*\) did not build on stack-a", out), out[-3000:]
    assert releases(host) == running, "the broken source's release was removed"
    assert ids(host)[APP] == app, "nothing of it was started"
    assert api(host, "GET", "/api/bots").startswith(f"200 {builds[-1][0]}")
    assert host.run("docker inspect algo-trade-build-db").rc != 0, "the build database was removed"


@pytest.mark.disruptive
def test_changed_settings_reach_the_containers_that_read_them_and_the_scenario_release_returns_pruned(
    host: testinfra.host.Host,
) -> None:
    """A new exchange key and bots (the app's), the operator's own certificate and the web
    terminal off (the proxy's and the app's): those two containers are recreated with
    them, the database is not.

    Then the scenario's settings again, with stack_release_keep: 2, after the releases
    above (sample-2, the git source, the settings change): the terminal comes back with
    the self-signed certificate the host made (not a renewed one), and exactly two releases
    are kept, the running one and the newest other; the services' files and the images
    that only removed releases used go too (the files of a collection of before: the
    upgrade scenario)."""
    before = ids(host)
    self_signed = host.file(release_file(host, "tls", "certificate.pem")).content_string.strip()
    new_key = "0x4be0c61f" + "7a" * 28  # a changed key, in the format the preflight asks
    certificate, private_key = byo_certificate(["stack-a"], primary_address(host))
    changed = {
        "stack_hyperliquid_private_key": new_key,
        "stack_bots": [{"name": "probe-bot", "symbol": "ETH"}],
        "stack_tls_certificate": certificate,
        "stack_tls_private_key": private_key,
        "stack_tui_enabled": False,
    }
    config = secret_digest(host, APP, "app_config")
    result = ansible_playbook(REPO / "molecule" / "stack" / "converge.yml", INVENTORY, extra_vars=changed)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    leaks = leaked_secrets(out, [new_key, private_key.splitlines()[1]])
    assert not leaks, leaks
    after = ids(host)
    assert after[DB] == before[DB], "the database reads none of these settings"
    assert after[APP] != before[APP]
    assert after[PROXY] != before[PROXY]
    key_digest = hashlib.sha256(new_key.encode()).hexdigest()
    assert secret_digest(host, APP, "env_HYPERLIQUID_PRIVATE_KEY") == key_digest
    assert secret_digest(host, APP, "app_config") != config
    assert served_certificate(host, 8080) == certificate.strip()
    assert host.run(f"docker inspect {LIVE_TUI}").rc != 0, "no web terminal runs"
    assert host.run(f"docker inspect {BACKTEST_TUI}").rc != 0
    ports = docker_json(host, f"docker inspect -f '{{{{json .HostConfig.PortBindings}}}}' {PROXY}")
    assert sorted(ports) == ["8443/tcp"]

    kept_before = releases(host)
    assert len(kept_before) >= 3, kept_before
    back = ansible_playbook(
        REPO / "molecule" / "stack" / "converge.yml", INVENTORY, extra_vars={"stack_release_keep": 2}
    )
    assert back.returncode == 0, back.stdout[-3000:]
    wait_healthy(host, timeout=60)
    assert ids(host)[DB] == before[DB]
    assert "ttyd" in run_ok(host, f"docker top {LIVE_TUI} -eo pid,args")
    assert served_certificate(host, 7681) == self_signed
    assert secret_digest(host, APP, "app_config") == config
    assert api(host, "GET", "/api/bots").startswith("200 sample-2")

    kept = releases(host)
    running = current_release(host)
    assert len(kept) == 2, sorted(kept)
    assert running["id"] in kept
    others = [r for r in kept_before.values() if r["id"] != running["id"]]
    newest_other = max(others, key=lambda r: str(r["created"]))
    assert newest_other["id"] in kept
    inputs = set(run_ok(host, f"ls {PROJECT}/inputs").split())
    assert inputs == {d for r in kept.values() for d in r["inputs"]}  # type: ignore[attr-defined]
    # Each file a kept release's compose file names is there still, not only its directory.
    mounted = f"grep -ho '{PROJECT}/[a-z]*/[^\":]*' {PROJECT}/releases/*/compose.yaml | sort -u"
    named = run_ok(host, mounted).split()
    assert len(named) > len(kept), named
    assert not [path for path in named if not host.file(path).exists], named
    images = set(run_ok(host, "docker images algo-trade/app --format '{{.Repository}}:{{.Tag}}'").split())
    assert images == {str(r["image"]) for r in kept.values()}
    assert run_ok(host, f"ls {PROJECT}/secrets").split() == ["db_app_password", "db_password"]
