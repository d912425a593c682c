"""What the stack scenario's tests share: names, test secrets, and small probes."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import testinfra
import testinfra.host
import testinfra.utils.ansible_runner
import yaml
from testlib import REPO, expected_hosts, leaked_secrets, run_ok

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(INVENTORY)
# The stack host of the scenario these helpers serve: the stack scenario's, or the upgrade
# scenario's (molecule/upgrade), which has no attacker.
STACK_HOST = {"stack": "stack-a", "upgrade": "upgrade-a"}[os.environ.get("MOLECULE_SCENARIO_NAME", "stack")]
STACK_HOSTS = expected_hosts(INVENTORY, "stack", [STACK_HOST])
VARS = RUNNER.get_variables(STACK_HOST)

PROJECT = "/opt/algo-trade"
COMPOSE = f"docker compose --project-directory {PROJECT}"
APP, DB, PROXY = "algo-trade-app-1", "algo-trade-db-1", "algo-trade-proxy-1"
# The other services of the default set (stack_services): the two web terminals, and two
# services that serve nothing to ask (their health check: their process runs).
LIVE_TUI, BACKTEST_TUI = "algo-trade-live-bot-tui-1", "algo-trade-backtest-manager-1"
SCHEDULED, BACKTEST_DAEMON = "algo-trade-scheduled-backtest-1", "algo-trade-backtest-daemon-1"
# Off by default; the scenario turns it on with a secret variable (CRYPTOPANIC_API_KEY).
COLLECTOR = "algo-trade-signal-collector-1"
TERMINALS = {LIVE_TUI: 7681, BACKTEST_TUI: 7682}
APP_SERVICES = (APP, LIVE_TUI, BACKTEST_TUI, SCHEDULED, BACKTEST_DAEMON, COLLECTOR)
CONTAINERS = (*APP_SERVICES, DB, PROXY)

TUI_LOGIN = f"{VARS['stack_tui_user']}:{VARS['stack_tui_password']}"
BACKTEST_TERMINAL = VARS["stack_services_overrides"]["backtest-manager"]["terminal"]
BACKTEST_LOGIN = f"{BACKTEST_TERMINAL['user']}:{BACKTEST_TERMINAL['password']}"
API_LOGIN = f"{VARS['stack_api_user']}:{VARS['stack_api_password']}"
SECRETS = [
    VARS["stack_db_password"],
    VARS["stack_db_app_password"],
    VARS["stack_hyperliquid_private_key"],
    VARS["stack_tui_password"],
    BACKTEST_TERMINAL["password"],
    VARS["stack_api_password"],
    VARS["stack_secret_environment"]["CRYPTOPANIC_API_KEY"],
]


def setting(name: str) -> Any:  # noqa: ANN401 (a setting is any YAML value)
    """A stack role setting as the stack host has it: the scenario's inventory, else the role's default."""
    if name in VARS:
        return VARS[name]
    return yaml.safe_load((REPO / "roles" / "stack" / "defaults" / "main.yml").read_text())[name]


def current_release(host: testinfra.host.Host) -> dict[str, object]:
    """The running release's release.json (the role's current -> releases/<id>)."""
    return dict(json.loads(host.file(f"{PROJECT}/current/release.json").content_string))


def release_file(host: testinfra.host.Host, service: str, name: str) -> str:
    """Where the running release keeps one of a service's files (inputs/<service>-<digest>/)."""
    inputs = current_release(host)["inputs"]
    assert isinstance(inputs, list)
    (directory,) = [d for d in inputs if str(d).startswith(f"{service}-")]
    return f"{PROJECT}/inputs/{directory}/{name}"


def assert_no_secret(text: str) -> None:
    """None of the scenario's secrets, in any encoded form, is in the text."""
    leaks = leaked_secrets(text, SECRETS)
    assert not leaks, f"found {leaks}"


def attacker() -> testinfra.host.Host:
    """The second host on the stack host's network."""
    return testinfra.get_host(f"ansible://stack-attacker?ansible_inventory={INVENTORY}")


def api(host: testinfra.host.Host, method: str, path: str, body: dict[str, str] | None = None) -> str:
    """HTTP to the daemon's API inside its container: what it says, not who may ask.

    Prints the status and the X-Algo-Trade-Version header, then the body.
    """
    script = (
        "import json,sys,urllib.request as u;"
        f"r=u.Request('http://127.0.0.1:8080{path}',method='{method}',"
        f"data={json.dumps(body).encode() if body else None!r},"
        "headers={'Content-Type':'application/json'});"
        "x=u.urlopen(r);print(x.status,x.headers['X-Algo-Trade-Version']);print(x.read().decode())"
    )
    return run_ok(host, f"docker exec {APP} python3 -c {json.dumps(script)}")


def health(host: testinfra.host.Host, containers: tuple[str, ...] = CONTAINERS) -> dict[str, str]:
    """Each container's health status, or its state for one without a health check
    ("running"), "" for a missing container."""
    state = "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}"
    return {c: host.run(f"docker inspect -f '{state}' {c}").stdout.strip() for c in containers}


def wait_healthy(
    host: testinfra.host.Host, timeout: float = 180, containers: tuple[str, ...] = CONTAINERS
) -> float:
    """Wait until every container (of the stack's, by default) is healthy; return the
    seconds it took."""
    start = time.monotonic()
    states: dict[str, str] = {}
    while time.monotonic() - start < timeout:
        states = health(host, containers)
        if all(states[c] == "healthy" for c in containers):
            return time.monotonic() - start
        time.sleep(1)
    logs = host.run(f"{COMPOSE} logs --tail 30").stdout
    raise AssertionError(f"not healthy after {timeout}s: {states}\n{logs}")


def primary_address(host: testinfra.host.Host) -> str:
    """The host's primary IPv4 address (the scenario binds the published ports to it)."""
    facts = host.ansible("setup", "gather_subset=!all,network")["ansible_facts"]
    return str(facts["ansible_default_ipv4"]["address"])


def container_ids(host: testinfra.host.Host) -> dict[str, str]:
    return {
        c: run_ok(host, f"docker inspect -f '{{{{.Id}}}} {{{{.State.StartedAt}}}}' {c}").strip()
        for c in CONTAINERS
    }


def locked_sample(where: Path) -> Path:
    """A copy of the scenario's sample app with a Cargo.lock and sqlx's offline query data
    (molecule/resources/sample-app-locked): how a fork that commits both looks, and the one
    form a collection of before (always --locked, no build database) can build."""
    copy = where / "sample-app-locked"
    shutil.copytree(
        VARS["sample_app_dir"], copy, ignore=shutil.ignore_patterns("target", ".algotrade-source")
    )
    shutil.copytree(REPO / "molecule" / "resources" / "sample-app-locked", copy, dirs_exist_ok=True)
    (copy / "README.md").unlink()
    shutil.copy(Path(VARS["sample_app_dir"]) / "README.md", copy / "README.md")
    return copy
