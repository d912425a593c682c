"""Faults a host really sees: each ends with the stack healthy and no data lost.

Bounds: the app is healthy again within 60 s of a kill -9 of its main process, and
within 120 s of the database coming back; a whole-host restart within 180 s.
"""

from __future__ import annotations

import subprocess
import time

import pytest
import testinfra.host
from stackenv import APP, COMPOSE, DB, INVENTORY, STACK_HOSTS, api, container_ids, health, wait_healthy
from testlib import REPO, ansible_playbook, failed_task, run_ok

testinfra_hosts = STACK_HOSTS
pytestmark = pytest.mark.disruptive


def psql(host: testinfra.host.Host, sql: str) -> str:
    return run_ok(host, f'{COMPOSE} exec -T db psql -U algo -d algo_trade -tAc "{sql}"').strip()


def restart_count(host: testinfra.host.Host) -> int:
    return int(run_ok(host, f"docker inspect -f '{{{{.RestartCount}}}}' {APP}"))


def test_kill_9_of_the_daemon_restarts_the_container(host: testinfra.host.Host) -> None:
    before = restart_count(host)
    top = run_ok(host, f"docker top {APP} -eo pid,args").splitlines()
    pid = next(line.split()[0] for line in top if "algo-trade run" in line)
    run_ok(host, f"kill -9 {pid}")
    deadline = time.monotonic() + 30
    while restart_count(host) == before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert restart_count(host) == before + 1, "the restart policy did not restart the app"
    took = wait_healthy(host, timeout=60)
    print(f"healthy again {took:.0f} s after the restart")


def test_docker_restart_keeps_the_containers_running(host: testinfra.host.Host) -> None:
    before = container_ids(host)
    run_ok(host, "systemctl restart docker")
    assert container_ids(host) == before  # same IDs, same start times: live-restore
    wait_healthy(host, timeout=60)


def test_database_stop_is_seen_by_the_checks_not_the_api(host: testinfra.host.Host) -> None:
    """The API answers 200 from memory without PostgreSQL (as upstream's does): the app
    container's health check and the deploy's health gate must notice the database.

    Seen to fail with the health check's database probe removed from the entrypoint (the
    app stayed healthy with the database stopped)."""
    run_ok(host, f"docker stop {DB}")
    try:
        assert api(host, "GET", "/api/bots").startswith("200 ")  # the stand-in is not the check
        deadline = time.monotonic() + 90
        while health(host)[APP] != "unhealthy" and time.monotonic() < deadline:
            time.sleep(2)
        assert health(host)[APP] == "unhealthy", "the app's health check must report the database's loss"
        gate = ansible_playbook(REPO / "molecule" / "stack" / "gate_only.yml", INVENTORY)
        assert gate.returncode != 0
        assert failed_task(gate).endswith("health | Check the database accepts the application's login")
    finally:
        run_ok(host, f"docker start {DB}")
    took = wait_healthy(host, timeout=120)
    print(f"healthy again {took:.0f} s after the database came back")
    gate = ansible_playbook(REPO / "molecule" / "stack" / "gate_only.yml", INVENTORY)
    assert gate.returncode == 0, gate.stdout[-3000:]


def engine_answers(host: testinfra.host.Host) -> bool:
    try:
        return bool(host.run("docker info").rc == 0)
    except RuntimeError:  # ssh exited 255: the host does not take connections yet
        return False


def test_host_restart_keeps_bots_and_rows(host: testinfra.host.Host) -> None:
    name = f"restart-{int(time.time())}"
    api(host, "POST", "/api/bots", {"bot_id": name, "symbol": "ETH", "strategy": "quad_ma"})
    psql(host, "INSERT INTO ohlcv VALUES (now(), 'RST', 1, 2, 0.5, 1.5, 10)")
    rows = psql(host, "SELECT count(*) FROM ohlcv")
    subprocess.run(["docker", "restart", "stack-a"], check=True, capture_output=True)
    # The host boots again: its SSH server comes up with the rest (testinfra's SSH backend
    # raises while the connection is refused), then its engine.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not engine_answers(host):
        time.sleep(2)
    wait_healthy(host, timeout=180)
    assert name in api(host, "GET", "/api/bots")
    assert psql(host, "SELECT count(*) FROM ohlcv") == rows
