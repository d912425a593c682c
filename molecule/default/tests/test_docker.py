"""The docker role on two Debian 13 hosts: engine, plugins, daemon settings, users."""

from __future__ import annotations

import os
import time

import pytest
import testinfra.host
from testlib import REPO, ansible_playbook, docker_json, expected_hosts, recap, run_ok, sideload_image

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
        page = ""
        for _attempt in range(20):
            result = client.run(f"docker run --rm local/busybox:test wget -qO- http://{address}:8000/")
            if result.rc == 0:
                page = result.stdout
                break
            time.sleep(0.5)
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
    extra_vars: dict[str, object], expected: list[str]
) -> None:
    result = ansible_playbook(
        REPO / "playbooks" / "docker.yml",
        os.environ["MOLECULE_INVENTORY_FILE"],
        "--limit",
        "docker-a",
        extra_vars=extra_vars,
    )
    out = result.stdout
    assert result.returncode != 0, out
    for text in expected:
        assert text in out
    assert recap(result, "docker-a")["changed"] == 0
    assert "TASK [algotrade.deploy.docker : install |" not in out
