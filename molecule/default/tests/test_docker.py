"""The docker role on two Debian 13 hosts: engine, plugins, daemon settings, users."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testinfra.host
from testlib import REPO, ansible_playbook, docker_json, expected_hosts, run_ok, sideload_image, until

testinfra_hosts = expected_hosts(os.environ["MOLECULE_INVENTORY_FILE"], "all", ["docker-a", "docker-b"])


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.strip().lstrip("v").split("+")[0].split("-")[0].split("."))


def test_docker_enabled_and_running(host: testinfra.host.Host) -> None:
    service = host.service("docker")
    assert service.is_enabled
    assert service.is_running


def test_compose_v2_at_least_2_18(host: testinfra.host.Host) -> None:
    assert _version(run_ok(host, "docker compose version --short")) >= (2, 18)


def test_buildx_present(host: testinfra.host.Host) -> None:
    assert "buildx" in run_ok(host, "docker buildx version")


def test_python_requests_for_docker_api_modules(host: testinfra.host.Host) -> None:
    assert host.package("python3-requests").is_installed


def test_daemon_json_is_root_owned_and_not_writable_by_others(host: testinfra.host.Host) -> None:
    daemon_json = host.file("/etc/docker/daemon.json")
    assert daemon_json.user == "root"
    assert daemon_json.group == "root"
    assert daemon_json.mode == 0o644


def test_daemon_settings_in_effect(host: testinfra.host.Host) -> None:
    info = docker_json(host, "docker info --format '{{json .}}'")
    assert info["LiveRestoreEnabled"] is True
    assert info["LoggingDriver"] == "json-file"
    assert "name=no-new-privileges" in info["SecurityOptions"]


def test_containers_get_rotated_logs(host: testinfra.host.Host) -> None:
    sideload_image(host)
    run_ok(host, "docker run -d --name logcheck local/busybox:test true")
    try:
        log_config = docker_json(host, "docker inspect -f '{{json .HostConfig.LogConfig}}' logcheck")
    finally:
        host.run("docker rm -f logcheck")
    assert log_config == {"Type": "json-file", "Config": {"max-file": "5", "max-size": "10m"}}


def test_trader_in_docker_group(host: testinfra.host.Host) -> None:
    assert "docker" in host.user("trader").groups
    assert host.run("sudo -u trader docker info --format '{{.ServerVersion}}'").rc == 0


def test_container_reaches_the_network() -> None:
    """A container on docker-a fetches a page that a container on docker-b publishes."""
    client, server = (
        testinfra.host.get_host(f"ansible://{name}?ansible_inventory={os.environ['MOLECULE_INVENTORY_FILE']}")
        for name in ("docker-a", "docker-b")
    )
    for host in (client, server):
        sideload_image(host)
    server.run("docker rm -f web")
    run_ok(
        server,
        "docker run -d --name web -p 8000:8000 local/busybox:test "
        "sh -c 'mkdir /www && echo hello-from-docker-b > /www/index.html && httpd -f -p 8000 -h /www'",
    )
    try:
        address = server.interface("eth0").addresses[0]
        # The server listens once httpd inside the container has bound its port.
        until(
            lambda: server.run("docker exec web netstat -ltn | grep -q ':8000 '").rc == 0,
            30,
            "httpd in the container web on docker-b listening on 8000",
        )
        page = run_ok(client, f"docker run --rm local/busybox:test wget -qO- http://{address}:8000/")
        assert page.strip() == "hello-from-docker-b"
        # userland-proxy: false - the port is published by NAT rules, not a proxy process.
        assert not server.process.filter(comm="docker-proxy")
    finally:
        server.run("docker rm -f web")


def test_container_survives_daemon_restart(host: testinfra.host.Host) -> None:
    """live-restore: the daemon restarts under a running container without touching it."""
    sideload_image(host)
    host.run("docker rm -f survivor")
    container_id = run_ok(host, "docker run -d --name survivor local/busybox:test sleep 3600").strip()
    try:
        started = run_ok(host, "docker inspect -f '{{.State.StartedAt}}' survivor").strip()
        run_ok(host, "systemctl restart docker")
        state = docker_json(host, "docker inspect -f '{{json .State}}' survivor")
        assert state["Running"] is True
        assert state["StartedAt"] == started
        assert run_ok(host, "docker inspect -f '{{.Id}}' survivor").strip() == container_id
    finally:
        host.run("docker rm -f survivor")


ROLE_TASKS = REPO / "roles" / "docker" / "tasks"

# What a run of the role could change on a host: packages, apt sources and pins, the
# signing keyring, daemon.json, users and groups, and the running daemon.
HOST_STATE = (
    "dpkg-query -W -f '${Package} ${Version} ${db:Status-Status}\\n';"
    " ls -la --time-style=full-iso /etc/apt/sources.list.d /etc/apt/preferences.d /etc/apt/keyrings 2>&1;"
    " sha256sum /etc/docker/daemon.json /etc/passwd /etc/group;"
    " systemctl show -p MainPID -p ExecMainStartTimestampMonotonic docker; true"
)


@pytest.fixture(scope="module")
def docker_a() -> testinfra.host.Host:
    """docker-a, where the tests that run the role again act."""
    return testinfra.host.get_host(
        f"ansible://docker-a?ansible_inventory={os.environ['MOLECULE_INVENTORY_FILE']}"
    )


def role_run(
    *args: str, extra_vars: dict[str, Any]
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """The docker playbook on docker-a, its output as the ansible.posix.json callback's document."""
    result = ansible_playbook(
        REPO / "playbooks" / "docker.yml",
        os.environ["MOLECULE_INVENTORY_FILE"],
        "--limit",
        "docker-a",
        *args,
        extra_vars=extra_vars,
        env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"},
    )
    start = result.stdout.find("{\n")
    assert start >= 0, result.stdout + result.stderr
    document, _end = json.JSONDecoder().raw_decode(result.stdout, start)
    assert isinstance(document, dict)
    return result, document


def tasks_run(document: dict[str, Any], host: str) -> list[dict[str, Any]]:
    """The tasks that ran on a host (skipped ones left out): name, role file, result."""
    return [
        {"name": task["task"]["name"], "file": task["task"]["path"].rsplit(":", 1)[0], "result": result}
        for play in document["plays"]
        for task in play["tasks"]
        if (result := task["hosts"].get(host)) is not None and not result.get("skipped")
    ]


@pytest.mark.parametrize(
    ("extra_vars", "expected"),
    [
        pytest.param(
            {"docker_source": "upstream"},
            [
                "docker.io, docker-cli, docker-compose, docker-buildx installed on docker-a",
                "docker_source=upstream",
                "apt-get purge docker.io",
            ],
            id="upstream-over-distro-packages",
        ),
        pytest.param(
            {"docker_users": ["trader", "nosuchuser"]},
            ["docker_users names users that do not exist on docker-a: nosuchuser"],
            id="missing-docker-user",
        ),
    ],
)
def test_preflight_refuses_before_changing_anything(
    docker_a: testinfra.host.Host, extra_vars: dict[str, object], expected: list[str]
) -> None:
    """The refusal comes from the preflight phase, and the host is exactly as it was.

    Which tasks ran is read from the role's task files (the JSON callback's task paths),
    not their names. Seen to fail (missing-docker-user) when the docker users check was
    moved to the top of users.yml: the refusal came from users.yml, after the install,
    configure and service phases had run.
    """
    before = run_ok(docker_a, HOST_STATE)
    result, document = role_run(extra_vars=extra_vars)
    assert result.returncode != 0, result.stdout
    ran = tasks_run(document, "docker-a")
    failed = [task for task in ran if task["result"].get("failed")]
    assert len(failed) == 1, failed
    for text in expected:
        assert text in failed[0]["result"]["msg"]
    assert Path(failed[0]["file"]).resolve() == ROLE_TASKS / "preflight.yml", failed[0]
    # Nothing of the role ran but its table of contents and its preflight phase.
    role_files = {f for task in ran if (f := Path(task["file"]).resolve()).is_relative_to(ROLE_TASKS)}
    assert role_files == {ROLE_TASKS / "main.yml", ROLE_TASKS / "preflight.yml"}, role_files
    assert document["stats"]["docker-a"]["changed"] == 0
    assert document["stats"]["docker-a"]["failures"] == 1
    assert run_ok(docker_a, HOST_STATE) == before


def daemon(host: testinfra.host.Host) -> dict[str, str]:
    """The dockerd process (its PID and start time) and the daemon.json it reads."""
    return {
        "daemon.json": run_ok(host, "sha256sum /etc/docker/daemon.json").split()[0],
        "pid": run_ok(host, "systemctl show -p MainPID --value docker").strip(),
        "started": run_ok(host, "systemctl show -p ExecMainStartTimestampMonotonic --value docker").strip(),
    }


@pytest.fixture
def sentinel(docker_a: testinfra.host.Host) -> Iterator[dict[str, Any]]:
    """A running container on the host; yields its state (ID, Pid, StartedAt) before the test."""
    sideload_image(docker_a)
    docker_a.run("docker rm -f sentinel")
    run_ok(docker_a, "docker run -d --name sentinel local/busybox:test sleep 3600")
    state = docker_json(docker_a, "docker inspect -f '{{json .State}}' sentinel")
    assert state["Running"] is True
    yield state
    docker_a.run("docker rm -f sentinel")


def assert_still_running(host: testinfra.host.Host, sentinel: dict[str, Any]) -> None:
    state = docker_json(host, "docker inspect -f '{{json .State}}' sentinel")
    assert state["Running"] is True
    assert (state["Pid"], state["StartedAt"]) == (sentinel["Pid"], sentinel["StartedAt"])


@pytest.mark.parametrize(
    ("options", "refusal"),
    [
        pytest.param(
            {"no-such-option": True},
            "the following directives don't match any configuration option: no-such-option",
            id="unknown-key",
        ),
        pytest.param(
            {"max-concurrent-downloads": -1},
            "invalid max concurrent downloads: -1",
            id="invalid-value",
        ),
        # Passes `dockerd --validate` on its own: the service starts dockerd with -H fd://.
        pytest.param(
            {"hosts": ["unix:///run/docker-extra.sock"]},
            "the following directives are specified both as a flag and in the configuration file: hosts",
            id="repeats-a-service-flag",
        ),
    ],
)
def test_daemon_json_that_dockerd_refuses_is_not_installed(
    docker_a: testinfra.host.Host, sentinel: dict[str, Any], options: dict[str, Any], refusal: str
) -> None:
    """A daemon.json dockerd refuses fails the run before it is installed: the daemon
    keeps its file, is not restarted, and its containers keep running.

    Seen to fail (unknown-key) when the copy's validate was removed: the file was
    installed and the restarted daemon did not start. Seen to fail (all three cases
    were run) against the role's former `dockerd --validate` without the service's
    flags: repeats-a-service-flag was installed and the restarted daemon did not start.
    """
    before = daemon(docker_a)
    result, document = role_run(extra_vars={"docker_daemon_options": options})
    assert result.returncode != 0, result.stdout
    failed = [task for task in tasks_run(document, "docker-a") if task["result"].get("failed")]
    assert len(failed) == 1, failed
    assert Path(failed[0]["file"]).resolve() == ROLE_TASKS / "configure.yml", failed[0]
    assert refusal in json.dumps(failed[0]["result"]), failed[0]["result"]
    assert document["stats"]["docker-a"]["changed"] == 0
    assert daemon(docker_a) == before
    assert docker_a.service("docker").is_running
    assert_still_running(docker_a, sentinel)


def test_daemon_restarts_only_when_daemon_json_changes(
    docker_a: testinfra.host.Host, sentinel: dict[str, Any]
) -> None:
    """A changed daemon.json restarts the daemon (live-restore keeps the containers);
    an unchanged one leaves the daemon alone.

    Seen to fail when the copy did not notify the handler (the daemon kept its PID
    after the change) and when service.yml restarted the daemon on every run (the
    unchanged run reported a change).
    """
    before = daemon(docker_a)
    try:
        result, document = role_run(extra_vars={"docker_daemon_options": {"debug": True}})
        assert result.returncode == 0, result.stdout
        changed = daemon(docker_a)
        assert changed["daemon.json"] != before["daemon.json"]
        assert changed["pid"] != before["pid"]
        assert docker_json(docker_a, "docker info --format '{{json .}}'")["Debug"] is True
        assert_still_running(docker_a, sentinel)
    finally:
        result, document = role_run(extra_vars={})
        assert result.returncode == 0, result.stdout
    restored = daemon(docker_a)
    assert restored["daemon.json"] == before["daemon.json"]
    assert docker_json(docker_a, "docker info --format '{{json .}}'")["Debug"] is False
    # Unchanged: no restart.
    result, document = role_run(extra_vars={})
    assert result.returncode == 0, result.stdout
    assert document["stats"]["docker-a"]["changed"] == 0
    assert daemon(docker_a) == restored
    assert_still_running(docker_a, sentinel)


def test_what_was_changed_by_hand_is_put_back_and_only_that(
    docker_a: testinfra.host.Host, sentinel: dict[str, Any]
) -> None:
    """Preflight reads the host once (packages, version hold, /etc/docker, daemon.json,
    the service, the versions, the docker group) and a step runs only where that read
    says the host differs: each thing an operator changed by hand is put back by its own
    step, the others do not run, and the run after that changes nothing.

    Seen to fail with the enable step gated on a read that never differs (`when: false`):
    the other four steps and the restart put theirs back, the service stayed disabled."""
    before = daemon(docker_a)
    run_ok(
        docker_a,
        "touch /etc/apt/preferences.d/algotrade-docker.pref && chmod 0700 /etc/docker"
        " && systemctl disable docker && gpasswd -d trader docker"
        ' && sed -i \'s/"live-restore": true/"live-restore": true, "debug": false/\' /etc/docker/daemon.json',
    )
    try:
        result, document = role_run(extra_vars={})
        assert result.returncode == 0, result.stdout
        changed = sorted(
            t["name"].split(" : ")[-1] for t in tasks_run(document, "docker-a") if t["result"].get("changed")
        )
        assert changed == [
            "Restart docker",
            "configure | Create /etc/docker",
            "configure | Write daemon.json",
            "install | Release any engine version hold",
            "service | Enable Docker at boot and start it",
            "users | Add the docker users to the docker group",
        ]
        assert not docker_a.file("/etc/apt/preferences.d/algotrade-docker.pref").exists
        assert docker_a.file("/etc/docker").mode == 0o755
        assert docker_a.service("docker").is_enabled
        assert "docker" in docker_a.user("trader").groups
        assert daemon(docker_a)["daemon.json"] == before["daemon.json"]
        assert_still_running(docker_a, sentinel)
        # The read itself and the checks run; nothing else on the host.
        again, document = role_run(extra_vars={})
        assert again.returncode == 0, again.stdout
        assert document["stats"]["docker-a"]["changed"] == 0
        ran = {t["name"].split(" : ")[-1] for t in tasks_run(document, "docker-a")}
        assert not ran & set(changed), ran & set(changed)
    finally:
        docker_a.run("systemctl enable docker; chmod 0755 /etc/docker; adduser trader docker")
