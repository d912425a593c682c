"""The app's services as data, on the host: each service runs its own command under tini,
its secret variables reach its process's environment only (from files, never Compose's
environment), and each stops on its own signal within its grace period.
"""

from __future__ import annotations

import json
import time
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

import pytest
import testinfra.host
from stackenv import (
    APP,
    APP_SERVICES,
    BACKTEST_DAEMON,
    COLLECTOR,
    COMPOSE,
    LIVE_TUI,
    SCHEDULED,
    STACK_HOSTS,
    TERMINALS,
    VARS,
    wait_healthy,
)
from testlib import run_ok

testinfra_hosts = STACK_HOSTS


def config_env(host: testinfra.host.Host, container: str) -> list[str]:
    """The container's configured environment (`docker inspect`: what Compose gave it)."""
    value = json.loads(run_ok(host, f"docker inspect -f '{{{{json .Config.Env}}}}' {container}"))
    assert isinstance(value, list), value
    return [str(entry) for entry in value]


def program(args: str) -> str:
    """A process's arguments from its program's name on: without the program's directory,
    nor an interpreter that runs a script (the test bed's ttyd stand-in is Python)."""
    words = args.split()
    if PurePosixPath(words[0]).name.startswith("python") and len(words) > 1:
        words = words[1:]
    return " ".join([PurePosixPath(words[0]).name, *words[1:]])


def process_environment(host: testinfra.host.Host, container: str, command: str) -> dict[str, str]:
    """The environment of the container's process whose program and arguments start with
    command, read from the host (as root: no other user may read it)."""
    top = run_ok(host, f"docker top {container} -eo pid,args").splitlines()[1:]
    pids = [line.split(None, 1)[0] for line in top if program(line.split(None, 1)[1]).startswith(command)]
    assert len(pids) == 1, top
    environ = run_ok(host, f"cat /proc/{pids[0]}/environ").split("\0")
    return dict(entry.split("=", 1) for entry in environ if "=" in entry)


def test_the_daemon_gets_the_database_url_in_its_process_only(host: testinfra.host.Host) -> None:
    """DATABASE_URL, every part encoded, is in the daemon's environment, read from its
    secret file by the entrypoint; Compose's environment (docker inspect) has none of it."""
    environment = process_environment(host, APP, "algo-trade run")
    url = urlsplit(environment["DATABASE_URL"])
    # The role's default database (the scenario's inventory does not set it).
    assert (url.hostname, url.port, url.path) == ("db", 5432, "/algo_trade")
    # The app's own role, not the admin's (test_stack_roles.py checks its rights).
    assert (unquote(url.username or ""), unquote(url.password or "")) == (
        "algo_app",
        VARS["stack_db_app_password"].rstrip("\r\n"),
    )
    assert environment["HYPERLIQUID_PRIVATE_KEY"] == VARS["stack_hyperliquid_private_key"]
    for container in APP_SERVICES:
        configured = config_env(host, container)
        assert not [e for e in configured if e.startswith(("DATABASE_URL=", "HYPERLIQUID_PRIVATE"))], (
            container
        )


@pytest.mark.parametrize("container", [c for c in APP_SERVICES if c != APP])
def test_other_services_hold_no_exchange_key(host: testinfra.host.Host, container: str) -> None:
    """A service gets the secret variables its secrets list names, no others: the web
    terminals and the backtests never see the exchange keys (nor the collector's key), and
    only the signal collector gets the database's URL besides the daemon."""
    environment = process_environment(host, container, "ttyd" if container in TERMINALS else "algo-trade")
    assert not [name for name in environment if name.startswith("HYPERLIQUID_") and "URL" not in name]
    assert ("DATABASE_URL" in environment) == (container == COLLECTOR)
    assert ("CRYPTOPANIC_API_KEY" in environment) == (container == COLLECTOR)
    assert environment["BOT_DATABASE_URL"].startswith("sqlite:///data/")


def test_a_secret_variable_reaches_its_service_process_only(host: testinfra.host.Host) -> None:
    """stack_secret_environment's CRYPTOPANIC_API_KEY, named in the signal collector's
    secrets: in that process's environment, and in no container's configuration."""
    key = VARS["stack_secret_environment"]["CRYPTOPANIC_API_KEY"]
    assert process_environment(host, COLLECTOR, "algo-trade")["CRYPTOPANIC_API_KEY"] == key
    assert "CRYPTOPANIC_API_KEY: set" in run_ok(host, f"docker logs {COLLECTOR} 2>&1")
    for container in APP_SERVICES:
        configured = config_env(host, container)
        assert not [e for e in configured if e.startswith("CRYPTOPANIC_API_KEY=")], container


def test_each_service_runs_under_tini(host: testinfra.host.Host) -> None:
    for container in APP_SERVICES:
        first = run_ok(host, f"docker top {container} -eo pid,ppid,args").splitlines()[1]
        assert "tini" in first, (container, first)


def test_the_backtest_daemon_keeps_its_own_bots(host: testinfra.host.Host) -> None:
    """Upstream's backtest-daemon restores the daemon's bots; the default gives it a bot
    database of its own, so that no bot is traded twice."""
    daemon = process_environment(host, APP, "algo-trade run")["BOT_DATABASE_URL"]
    backtest = process_environment(host, BACKTEST_DAEMON, "algo-trade")["BOT_DATABASE_URL"]
    assert daemon == "sqlite:///data/bots.db"
    assert backtest == "sqlite:///data/backtest-daemon/bots.db"


# What each service logs when it stops cleanly on its stop signal; None: it handles none
# (upstream's scheduled-backtest), so the signal ends it at once.
CLEAN_EXITS = {
    APP: "Trading system daemon stopped",
    BACKTEST_DAEMON: "Backtest daemon stopped",
    COLLECTOR: "Received SIGINT, stopping signal collection",
    SCHEDULED: None,
    LIVE_TUI: None,
}


@pytest.mark.disruptive
@pytest.mark.parametrize(("container", "line"), CLEAN_EXITS.items(), ids=str)
def test_each_service_stops_on_its_signal_within_its_grace_period(
    host: testinfra.host.Host, container: str, line: str | None
) -> None:
    """`docker compose stop` sends the service's stop_signal (SIGINT for backtest-daemon,
    which handles nothing else); tini hands it to the process, which stops well within the
    grace period instead of being killed (exit 137) when it runs out."""
    service = container.removeprefix("algo-trade-").removesuffix("-1")
    grace = int(run_ok(host, f"docker inspect -f '{{{{.Config.StopTimeout}}}}' {container}"))
    since = run_ok(host, "date -u +%Y-%m-%dT%H:%M:%S.%NZ").strip()
    start = time.monotonic()
    try:
        run_ok(host, f"{COMPOSE} stop {service}")
        took = time.monotonic() - start
        code = int(run_ok(host, f"docker inspect -f '{{{{.State.ExitCode}}}}' {container}"))
        logs = run_ok(host, f"docker logs --since {since} {container} 2>&1")
    finally:
        run_ok(host, f"{COMPOSE} start {service}")
    assert took < min(grace, 30) - 5, f"{service} took {took:.1f} s of its {grace} s"
    assert code != 137, f"{service} was killed at the end of its grace period"
    if line is not None:
        assert code == 0, logs[-2000:]
        assert line in logs, logs[-2000:]
    wait_healthy(host, timeout=120)
