"""The stack on a Debian 13 host: built there, healthy, confined, secret-tight, durable.

Tests that stop, restart or redeploy run last (file order) and leave the stack healthy.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pyte
import pytest
import testinfra.host
import testinfra.utils.ansible_runner
from testlib import REPO, ansible_playbook, docker_json, recap, run_ok

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
testinfra_hosts = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_hosts("all")

PROJECT = "/opt/algo-trade"
COMPOSE = f"docker compose --project-directory {PROJECT}"
APP, DB, PROXY = "algo-trade-app-1", "algo-trade-db-1", "algo-trade-proxy-1"
VARS = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY).get_variables("stack-a")
SECRETS = [VARS["stack_db_password"], VARS["stack_hyperliquid_private_key"], VARS["stack_tui_password"]]
LOGIN = f"{VARS['stack_tui_user']}:{VARS['stack_tui_password']}"

# Speaks ttyd's protocol to the proxy published on the host's loopback, from the
# host: prints the WebSocket upgrade's status without the login, then (base64) what
# the terminal sent in its first seconds with it. Runs on Python and tornado, which
# the test bed host gets for this test (python3-tornado).
WS_CLIENT = r"""
import asyncio, base64, json, sys
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

async def main():
    url = "ws://127.0.0.1:7681/ws"
    try:
        await websocket_connect(HTTPRequest(url), subprotocols=["tty"])
        print("no-login-status-101")
    except HTTPClientError as e:
        print(f"no-login-status-{e.code}")
    login = base64.b64encode(sys.argv[1].encode()).decode()
    req = HTTPRequest(url, headers={"Authorization": "Basic " + login})
    ws = await websocket_connect(req, subprotocols=["tty"])
    await ws.write_message(json.dumps({"AuthToken": "", "columns": 100, "rows": 30}).encode(), binary=True)
    screen = b""
    loop = asyncio.get_running_loop()
    end = loop.time() + 4
    while loop.time() < end:
        try:
            msg = await asyncio.wait_for(ws.read_message(), 1)
        except asyncio.TimeoutError:
            continue
        if msg is None:
            break
        if msg[:1] == b"0":
            screen += msg[1:]
    print(base64.b64encode(screen).decode())

asyncio.run(main())
"""


def api(host: testinfra.host.Host, method: str, path: str, body: dict[str, str] | None = None) -> str:
    """HTTP to the API from the host itself (where it is published on loopback)."""
    script = (
        "import json,sys,urllib.request as u;"
        f"r=u.Request('http://127.0.0.1:8080{path}',method='{method}',"
        f"data={json.dumps(body).encode() if body else None!r},"
        "headers={'Content-Type':'application/json'});"
        "x=u.urlopen(r);print(x.status,x.headers['X-Algo-Trade-Version']);print(x.read().decode())"
    )
    return run_ok(host, f"python3 -c {json.dumps(script)}")


def wait_healthy(host: testinfra.host.Host, timeout: int = 180) -> None:
    deadline = time.time() + timeout
    states: dict[str, str] = {}
    while time.time() < deadline:
        states = {
            c: host.run(f"docker inspect -f '{{{{.State.Health.Status}}}}' {c}").stdout.strip()
            for c in (APP, DB, PROXY)
        }
        if set(states.values()) == {"healthy"}:
            return
        time.sleep(2)
    logs = host.run(f"{COMPOSE} logs --tail 30").stdout
    raise AssertionError(f"not healthy: {states}\n{logs}")


def test_every_service_healthy(host: testinfra.host.Host) -> None:
    wait_healthy(host, timeout=10)


def test_app_image_built_on_the_host_and_tagged_with_its_input_digest(host: testinfra.host.Host) -> None:
    image = run_ok(host, f"docker inspect -f '{{{{.Config.Image}}}}' {APP}").strip()
    repository, tag = image.split(":")
    assert repository == "algo-trade/app"
    assert re.fullmatch(r"[0-9a-f]{16}", tag)
    labels = docker_json(host, f"docker image inspect -f '{{{{json .Config.Labels}}}}' {image}")
    assert labels["org.algotrade.build"] == tag
    # Built here: the builder stage's image is only on this host's engine.
    assert host.run("docker image inspect local/rust-builder:trixie").rc == 0


def test_api_answers_with_the_changed_version(host: testinfra.host.Host) -> None:
    status, _ = api(host, "GET", "/api/bots").splitlines()[:2]
    assert status == "200 sample-2", "the side effect's one-line change must be deployed"


def test_previous_build_is_kept_for_rollback(host: testinfra.host.Host) -> None:
    tags = run_ok(host, "docker images algo-trade/app --format '{{.Tag}}'").split()
    assert len(tags) >= 2


@pytest.fixture(scope="module")
def ws_client(host: testinfra.host.Host) -> str:
    if not host.package("python3-tornado").is_installed:
        run_ok(host, "apt-get install -y -qq --no-install-recommends python3-tornado")
    host.run("cat > /root/ws_client.py <<'EOF'\n" + WS_CLIENT + "\nEOF")
    return "python3 /root/ws_client.py"


def test_web_terminal_refuses_a_client_without_the_login(host: testinfra.host.Host) -> None:
    status = run_ok(host, "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:7681/")
    assert status == "401"
    assert (
        run_ok(host, f"curl -s -o /dev/null -w '%{{http_code}}' -u {LOGIN} http://127.0.0.1:7681/") == "200"
    )
    wrong = run_ok(
        host, "curl -s -o /dev/null -w '%{http_code}' -u trader:wrong-password http://127.0.0.1:7681/"
    )
    assert wrong == "401"


def test_web_terminal_serves_the_tui_over_its_websocket(host: testinfra.host.Host, ws_client: str) -> None:
    status, output = run_ok(host, f"{ws_client} {LOGIN}").split()
    assert status == "no-login-status-401"
    # A real terminal emulator turns the byte stream into the screen a person sees.
    screen = pyte.Screen(100, 30)
    pyte.ByteStream(screen).feed(base64.b64decode(output))
    text = "\n".join(screen.display)
    assert "algo-trade live bot TUI sample-2" in text, text
    assert "q quit" in text, text


def test_ttyd_is_reachable_only_through_the_proxy(host: testinfra.host.Host) -> None:
    ports = docker_json(host, f"docker inspect -f '{{{{json .NetworkSettings.Ports}}}}' {APP}")
    assert set(ports) == {"8080/tcp"}
    proxy = docker_json(host, f"docker inspect -f '{{{{json .NetworkSettings.Ports}}}}' {PROXY}")
    assert proxy == {"7681/tcp": [{"HostIp": "127.0.0.1", "HostPort": "7681"}]}
    # No TCP listener for ttyd in the app container: only the shared UNIX socket.
    assert ":1E01 " not in run_ok(host, f"docker exec {APP} cat /proc/net/tcp /proc/net/tcp6")


def test_app_processes_run_as_10001(host: testinfra.host.Host) -> None:
    uids = {line.split()[1] for line in run_ok(host, f"docker top {APP} -eo pid,uid,comm").splitlines()[1:]}
    assert uids == {"10001"}


def test_data_volume_writable_by_the_app(host: testinfra.host.Host) -> None:
    run_ok(host, f"docker exec {APP} sh -c 'touch /data/.probe && rm /data/.probe'")
    assert host.run(f"docker exec {APP} touch /app/probe").rc != 0, "root filesystem must be read-only"


def test_app_container_confinement(host: testinfra.host.Host) -> None:
    config = docker_json(host, f"docker inspect -f '{{{{json .HostConfig}}}}' {APP}")
    assert config["CapDrop"] == ["ALL"]
    assert "no-new-privileges:true" in config["SecurityOpt"]
    assert config["ReadonlyRootfs"] is True
    assert config["PidsLimit"] == 256
    assert config["Memory"] == 1024**3
    assert config["Privileged"] is False


def test_db_not_published_and_api_on_loopback_only(host: testinfra.host.Host) -> None:
    db_ports = docker_json(host, f"docker inspect -f '{{{{json .NetworkSettings.Ports}}}}' {DB}")
    assert all(binding is None for binding in db_ports.values())
    app_ports = docker_json(host, f"docker inspect -f '{{{{json .NetworkSettings.Ports}}}}' {APP}")
    assert app_ports["8080/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": "8080"}]


@pytest.mark.parametrize(
    ("path", "owner"),
    [("db_password", 70), ("app_config", 10001), ("hyperliquid_private_key", 10001), ("tui_htpasswd", 101)],
)
def test_secret_files_0400_owned_by_their_reader(host: testinfra.host.Host, path: str, owner: int) -> None:
    secret = host.file(f"{PROJECT}/secrets/{path}")
    assert secret.mode == 0o400
    assert secret.uid == owner


@pytest.mark.parametrize(
    "where",
    [
        f"docker inspect {APP} {DB} {PROXY}",
        f"{COMPOSE} config",
        f"docker logs {APP} 2>&1; docker logs {DB} 2>&1; docker logs {PROXY} 2>&1",
        "ps auxww",
        "docker history --no-trunc $(docker inspect -f '{{.Image}}' " + APP + ")",
        f"cat {PROJECT}/compose.yaml {PROJECT}/build/Dockerfile {PROJECT}/build/entrypoint.sh"
        f" {PROJECT}/proxy/nginx.conf {PROJECT}/secrets/tui_htpasswd",
    ],
)
def test_secrets_absent(host: testinfra.host.Host, where: str) -> None:
    out = run_ok(host, where)
    for secret in SECRETS:
        assert secret not in out


def test_hypertables_exist(host: testinfra.host.Host) -> None:
    query = "'SELECT hypertable_name FROM timescaledb_information.hypertables ORDER BY 1'"
    out = run_ok(host, COMPOSE + " exec -T db psql -U algo -d algo_trade -tAc " + query)
    assert out.split() == ["backtest_results", "fills", "ohlcv", "trades"]


def test_check_mode_on_the_deployed_host_reports_no_change(host: testinfra.host.Host) -> None:
    started = run_ok(host, f"docker inspect -f '{{{{.State.StartedAt}}}}' {APP}")
    result = ansible_playbook(REPO / "molecule" / "stack" / "converge.yml", INVENTORY, "--check", "--diff")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert recap(result, "stack-a")["changed"] == 0
    for secret in SECRETS:
        assert secret not in out
    assert run_ok(host, f"docker inspect -f '{{{{.State.StartedAt}}}}' {APP}") == started


# --- Disruptive tests: each leaves the stack healthy. --------------------------


def test_compose_stop_is_clean(host: testinfra.host.Host) -> None:
    run_ok(host, f"{COMPOSE} stop")
    try:
        assert run_ok(host, f"docker inspect -f '{{{{.State.ExitCode}}}}' {APP}").strip() == "0"
        logs = run_ok(host, f"docker logs {APP} 2>&1")
        for line in (
            "Received SIGTERM, initiating graceful shutdown",
            "Shutting down all bots...",
            "Trading system daemon stopped",
        ):
            assert line in logs
    finally:
        run_ok(host, f"{COMPOSE} up -d --wait")
    db_logs = run_ok(host, f"docker logs --since 2m {DB} 2>&1")
    assert "database system was shut down at" in db_logs
    assert "not properly shut down" not in db_logs
    assert "automatic recovery" not in db_logs


def test_bot_survives_compose_down_up_and_a_host_restart(host: testinfra.host.Host) -> None:
    name = f"survivor-{int(time.time())}"
    api(host, "POST", "/api/bots", {"name": name, "symbol": "ETH"})
    run_ok(host, f"{COMPOSE} down")
    run_ok(host, f"{COMPOSE} up -d --wait")
    assert name in api(host, "GET", "/api/bots")
    subprocess.run(["docker", "restart", "stack-a"], check=True, capture_output=True)
    deadline = time.time() + 120
    while time.time() < deadline and host.run("docker info").rc != 0:
        time.sleep(2)
    wait_healthy(host)
    assert name in api(host, "GET", "/api/bots")


def test_failed_release_keeps_the_previous_one_running(host: testinfra.host.Host, tmp_path: Path) -> None:
    """A release whose daemon cannot start: previous image back, healthy, host failed with logs.

    Two swaps happen (to the new image, back to the previous one): at no moment do two
    app containers run.

    Run with -vvv --diff, the same run shows that no secret reaches Ansible's output.
    """
    running = run_ok(host, f"docker inspect -f '{{{{.Config.Image}}}}' {APP}").strip()
    broken = tmp_path / "sample-app"
    shutil.copytree(VARS["sample_app_dir"], broken)
    main = broken / "crates" / "cli" / "src" / "main.rs"
    main.write_text(
        main.read_text().replace(
            'Some("run") => daemon::run(),',
            'Some("run") => { eprintln!("sample fault: refusing to start"); ExitCode::from(3) }',
        )
    )
    # Meanwhile, count the running app containers: never two trading daemons at once.
    most_at_once = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal most_at_once
        while not done.is_set():
            listing = subprocess.run(
                [
                    "docker",
                    "exec",
                    "stack-a",
                    "docker",
                    "ps",
                    "-q",
                    "--filter",
                    "label=com.docker.compose.service=app",
                ],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.split()
            most_at_once = max(most_at_once, len(listing))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = ansible_playbook(
            REPO / "molecule" / "stack" / "converge.yml",
            INVENTORY,
            "-vvv",
            "--diff",
            extra_vars={"stack_source_dir": str(broken), "stack_health_timeout": 60},
        )
    finally:
        done.set()
        watcher.join()
    assert most_at_once == 1
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"Put back: {running}, running and healthy." in out
    assert "sample fault: refusing to start" in out
    for secret in SECRETS:
        assert secret not in out
    wait_healthy(host, timeout=30)
    assert run_ok(host, f"docker inspect -f '{{{{.Config.Image}}}}' {APP}").strip() == running
    assert api(host, "GET", "/api/bots").startswith("200 sample-2")


def test_source_from_git_deploys_the_checked_out_revision(host: testinfra.host.Host) -> None:
    """stack_source: git, from a repository on the host (file://): the revision goes live."""
    repo = "/srv/sample-app.git"
    host.run(f"rm -rf {repo} /srv/sample-work")
    subprocess.run(
        ["docker", "cp", VARS["sample_app_dir"], "stack-a:/srv/sample-work"], check=True, capture_output=True
    )
    run_ok(
        host,
        "cd /srv/sample-work && rm -rf .algotrade-source .git"
        " && sed -i 's/^pub const VERSION.*/pub const VERSION: \\&str = \"sample-git\";/'"
        " crates/cli/src/main.rs"
        " && git init -q -b main . && git add -A"
        " && git -c user.name=t -c user.email=t@example.invalid commit -qm sample"
        f" && git clone -q --bare . {repo}",
    )
    result = ansible_playbook(
        REPO / "molecule" / "stack" / "converge.yml",
        INVENTORY,
        extra_vars={"stack_source": "git", "stack_source_git_repo": f"file://{repo}"},
    )
    failure = result.stdout[result.stdout.find("fatal:") :] if "fatal:" in result.stdout else ""
    assert result.returncode == 0, failure[:4000] or result.stdout[-3000:]
    wait_healthy(host, timeout=30)
    assert api(host, "GET", "/api/bots").startswith("200 sample-git")
