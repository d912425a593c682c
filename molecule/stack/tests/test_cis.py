"""The Docker CIS benchmark items that apply to a deployed host (docker-bench-security).

Exceptions, each explicit below and in the security model (docs/security.md):
- db: starts as root (the image's entrypoint fixes the data directory's ownership, then
  drops to postgres) and keeps its default capabilities for that.
Every container has memory, process and CPU limits, a read-only root and a health check;
the default bridge allows no traffic between containers; the app image has a HEALTHCHECK.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import testinfra.host
from stackenv import APP, APP_SERVICES, CONTAINERS, DB, PROXY, STACK_HOSTS, TERMINALS, primary_address
from testlib import docker_json, run_ok

testinfra_hosts = STACK_HOSTS

ROOT_START = {DB}  # starts as root, drops privileges itself
KEEP_CAPS = {DB: None}
WRITABLE_ROOT: set[str] = set()
# (processes, memory bytes, CPUs in units of 10^-9): the defaults of stack_*_pids_limit,
# stack_*_memory_limit and stack_*_cpus.
LIMITS = {
    **dict.fromkeys(APP_SERVICES, (256, 1024**3, 10**9)),
    DB: (512, 2 * 1024**3, 10**9),
    PROXY: (64, 64 * 1024**2, 5 * 10**8),
}


def inspect(host: testinfra.host.Host, container: str) -> dict[str, Any]:
    return json.loads(run_ok(host, f"docker inspect {container}"))[0]  # type: ignore[no-any-return]


def test_2_daemon_json_settings_in_effect(host: testinfra.host.Host) -> None:
    """2.x: live-restore, no userland proxy (real client addresses), no-new-privileges, log rotation."""
    daemon = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert daemon["live-restore"] is True
    assert daemon["userland-proxy"] is False
    assert daemon["no-new-privileges"] is True
    assert daemon["log-driver"] == "json-file"
    assert "max-size" in daemon["log-opts"]
    info = docker_json(host, "docker info --format '{{json .}}'")
    assert info["LiveRestoreEnabled"] is True
    assert info["LoggingDriver"] == "json-file"
    assert host.process.filter(comm="docker-proxy") == []


def test_every_running_container_of_the_stack_is_checked(host: testinfra.host.Host) -> None:
    """The checks below run for each of CONTAINERS: a container the stack gains (a new
    service) fails here until it is in that list, and so under the checks."""
    running = run_ok(
        host, "docker ps --filter label=com.docker.compose.project=algo-trade --format '{{.Names}}'"
    ).split()
    assert sorted(running) == sorted(CONTAINERS)


def test_2_1_no_traffic_between_containers_on_the_default_bridge(host: testinfra.host.Host) -> None:
    """2.1 (icc): set in daemon.json and in effect on the default bridge."""
    assert json.loads(host.file("/etc/docker/daemon.json").content_string)["icc"] is False
    bridge = docker_json(host, "docker network inspect --format '{{json .Options}}' bridge")
    assert bridge["com.docker.network.bridge.enable_icc"] == "false", bridge


@pytest.mark.parametrize("container", CONTAINERS)
def test_2_1_no_container_of_the_stack_is_on_the_default_bridge(
    host: testinfra.host.Host, container: str
) -> None:
    """The stack's containers talk over their own Compose networks only."""
    networks = inspect(host, container)["NetworkSettings"]["Networks"]
    assert "bridge" not in networks, (container, sorted(networks))


def test_4_6_app_image_has_a_health_check(host: testinfra.host.Host) -> None:
    """4.6: the image the collection builds checks the daemon as the compose file does."""
    image = run_ok(host, f"docker inspect -f '{{{{.Config.Image}}}}' {APP}").strip()
    check = docker_json(host, f"docker image inspect -f '{{{{json .Config.Healthcheck}}}}' {image}")
    assert check["Test"] == ["CMD", "/usr/local/bin/entrypoint.sh", "healthcheck-api"], check


@pytest.mark.parametrize(("path", "mode"), [("/etc/docker/daemon.json", 0o644), ("/run/docker.sock", 0o660)])
def test_3_daemon_files_owned_by_root_and_not_world_writable(
    host: testinfra.host.Host, path: str, mode: int
) -> None:
    """3.17/3.15: daemon.json and docker.sock ownership and modes."""
    f = host.file(path)
    assert f.user == "root"
    assert f.mode & ~mode == 0, oct(f.mode)


@pytest.mark.parametrize("container", CONTAINERS)
class TestContainerRuntime:
    """5.x: each container of the stack."""

    def test_not_privileged_nor_sharing_host_namespaces(
        self, host: testinfra.host.Host, container: str
    ) -> None:
        config = inspect(host, container)["HostConfig"]
        assert config["Privileged"] is False
        assert config["NetworkMode"] != "host"
        assert config["PidMode"] == ""
        assert config["IpcMode"] in ("private", "shareable", "")
        assert config["UTSMode"] == ""
        assert config["UsernsMode"] == ""

    def test_no_docker_socket_or_host_system_dirs_mounted(
        self, host: testinfra.host.Host, container: str
    ) -> None:
        for mount in inspect(host, container)["Mounts"]:
            source = mount.get("Source", "")
            assert "docker.sock" not in source
            assert source.split("/")[1:2] not in (["etc"], ["proc"], ["sys"], ["boot"], ["dev"], ["usr"]), (
                source
            )

    def test_user_is_not_root_unless_documented(self, host: testinfra.host.Host, container: str) -> None:
        user = inspect(host, container)["Config"]["User"]
        if container in ROOT_START:
            assert user in ("", "0", "root"), f"{container} is a documented root start, now {user!r}"
        else:
            assert user, "runs as the image's default user"
            assert not user.startswith(("0", "root")), user

    def test_processes_drop_root(self, host: testinfra.host.Host, container: str) -> None:
        """No process of the container's own runs as root, the database's included once it
        started (its entrypoint drops to postgres). Seen to fail with the proxy of before,
        whose nginx master stayed root.

        Its own: its init and what descends from it. A docker exec (a health check, run as
        the container's user: root for the database's documented root start) is the
        engine's, started beside them: its runc:[2:INIT] and then its command (the db's
        health check, sh) were each caught once in a full run under load."""
        init = int(inspect(host, container)["State"]["Pid"])
        table = run_ok(host, f"docker top {container} -eo pid,ppid,uid,comm").splitlines()[1:]
        rows = {
            int(pid): (int(ppid), uid, comm.strip())
            for pid, ppid, uid, comm in (line.split(None, 3) for line in table)
        }

        def own(pid: int) -> bool:
            while pid in rows and pid != init:
                pid = rows[pid][0]
            return pid == init

        assert init in rows, f"no init of {container} among its processes: {rows}"
        root = [comm for pid, (_ppid, uid, comm) in rows.items() if uid == "0" and own(pid)]
        assert root == [], f"root processes in {container}: {root}"

    def test_capabilities_dropped(self, host: testinfra.host.Host, container: str) -> None:
        config = inspect(host, container)["HostConfig"]
        if KEEP_CAPS.get(container, []) is None:
            # Documented exception: the database keeps the image's default set, no more.
            assert (config["CapDrop"] or [], config["CapAdd"] or []) == ([], [])
        else:
            assert config["CapDrop"] == ["ALL"]
            assert sorted(config["CapAdd"] or []) == KEEP_CAPS.get(container, [])

    def test_no_new_privileges(self, host: testinfra.host.Host, container: str) -> None:
        assert "no-new-privileges:true" in inspect(host, container)["HostConfig"]["SecurityOpt"]

    def test_read_only_root_where_possible(self, host: testinfra.host.Host, container: str) -> None:
        assert inspect(host, container)["HostConfig"]["ReadonlyRootfs"] is (container not in WRITABLE_ROOT)

    def test_pids_memory_and_cpu_limits(self, host: testinfra.host.Host, container: str) -> None:
        """5.10, 5.11/5.12, 5.28: the settings' defaults, CPUs as NanoCpus (Compose's cpus)
        or as a CFS quota per period."""
        config = inspect(host, container)["HostConfig"]
        quota = config["CpuQuota"] * 10**9 // config["CpuPeriod"] if config["CpuPeriod"] else 0
        cpus = config["NanoCpus"] or quota
        assert (config["PidsLimit"], config["Memory"], cpus) == LIMITS[container]

    def test_health_check_defined_and_healthy(self, host: testinfra.host.Host, container: str) -> None:
        """5.27: every container, those that serve nothing to ask included (their process runs)."""
        state = inspect(host, container)
        assert state["Config"]["Healthcheck"]["Test"][0] in ("CMD", "CMD-SHELL")
        assert state["State"]["Health"]["Status"] == "healthy"

    def test_restart_policy_unless_stopped(self, host: testinfra.host.Host, container: str) -> None:
        assert inspect(host, container)["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"

    def test_logs_rotate(self, host: testinfra.host.Host, container: str) -> None:
        log = inspect(host, container)["HostConfig"]["LogConfig"]
        assert log["Type"] == "json-file"
        assert log["Config"] == {"max-size": "10m", "max-file": "5"}

    def test_published_ports_bind_to_the_hosts_own_address(
        self, host: testinfra.host.Host, container: str
    ) -> None:
        """5.14: every published port binds the one address the scenario configures (the
        host's primary address, for the web terminal and the API), never every interface.

        Seen to fail while the scenario set stack_api_bind: 0.0.0.0 (8443/tcp bound to
        0.0.0.0), which the former allowed set took from the scenario itself."""
        address = primary_address(host)
        for port, bindings in (inspect(host, container)["HostConfig"]["PortBindings"] or {}).items():
            for binding in bindings:
                assert binding["HostIp"] == address, f"{container} {port}: {binding}"


def daemon_pid(host: testinfra.host.Host) -> str:
    """The host's PID of the daemon's process (tini's child, where the entrypoint exported
    the keys): its /proc entry is the host's view of that process."""
    tini = run_ok(host, f"docker inspect -f '{{{{.State.Pid}}}}' {APP}").strip()
    return run_ok(host, f"pgrep -P {tini} -f 'algo-trade run'").split()[0]


def test_the_web_terminals_run_as_a_user_that_cannot_read_the_daemons_keys(host: testinfra.host.Host) -> None:
    """A terminal (ttyd and the TUI: it runs what is typed) that escaped its container as
    its own UID cannot read the daemon's environment (its exchange keys) nor its key files:
    on the host, as 10002 (stack_tui_uid) the environment is refused, as 10001 (the
    daemon's UID, which the terminals had before) it is read, which shows the check can
    fail; the key file is the daemon's alone (10001, 0400), so another UID cannot read it
    even where it may reach its directory. Inside, the terminal's processes run as 10002
    and its secrets hold no key."""
    environ = f"/proc/{daemon_pid(host)}/environ"
    sources = run_ok(
        host, f"docker inspect -f '{{{{range .Mounts}}}}{{{{.Source}}}} {{{{end}}}}' {APP}"
    ).split()
    (key,) = [source for source in sources if source.endswith("/env_HYPERLIQUID_PRIVATE_KEY")]
    as_daemon = "setpriv --reuid 10001 --regid 10001 --clear-groups"
    as_terminal = "setpriv --reuid 10002 --regid 10002 --clear-groups"
    assert "HYPERLIQUID_PRIVATE_KEY=" in run_ok(host, f"{as_daemon} cat {environ} | tr '\\0' '\\n'")
    refused = host.run(f"{as_terminal} cat {environ}")
    assert refused.rc != 0, environ
    assert "Permission denied" in refused.stderr, refused.stderr
    key_file = host.file(key)
    assert (key_file.uid, key_file.gid, key_file.mode) == (10001, 10001, 0o400)
    for terminal in TERMINALS:
        users = {
            line.split()[1]
            for line in run_ok(host, f"docker top {terminal} -eo pid,uid,comm").splitlines()[1:]
        }
        assert users == {"10002"}, (terminal, users)
        assert "hyperliquid" not in run_ok(host, f"docker exec {terminal} ls /run/secrets").lower()
