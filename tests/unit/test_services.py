"""The app's services as data (filters algotrade.deploy.services and service_problems, in
plugins/filter/services.py): every key filled in, overrides merged service by service,
every broken rule named with the setting to fix, and the compose file they render:
one container per service, secret variables only as files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from test_stack_templates import compose
from testlib import REPO, collection_plugin

services_filter = collection_plugin("filter", "services")
DEFAULTS = yaml.safe_load((REPO / "roles" / "stack" / "defaults" / "main.yml").read_text())
# As Ansible templates them: the live-bot TUI's port is stack_tui_port.
SERVICES: dict[str, Any] = {
    **DEFAULTS["stack_services"],
    "live-bot-tui": {**DEFAULTS["stack_services"]["live-bot-tui"], "terminal": {"port": 7681}},
}
SECRETS = [
    "DATABASE_URL",
    "HYPERLIQUID_PRIVATE_KEY",
    "HYPERLIQUID_ACCOUNT_ADDRESS",
    "HYPERLIQUID_API_WALLET_KEY",
]
COMMON = {"BOT_DATABASE_URL": "sqlite:///data/bots.db"}


def problems(overrides: dict[str, Any], **extra: object) -> list[str]:
    settings: dict[str, object] = {"secrets": SECRETS, "environment": COMMON, **extra}
    result: list[str] = services_filter.service_problems(SERVICES, overrides, **settings)
    return result


def test_the_defaults_are_upstreams_services_and_valid() -> None:
    enabled = services_filter.services(SERVICES, {}, True, {"user": "trader", "password": "p"})
    assert list(enabled) == [
        "app",
        "live-bot-tui",
        "backtest-manager",
        "scheduled-backtest",
        "backtest-daemon",
    ]
    assert enabled["app"]["command"][0] == "run"
    assert enabled["live-bot-tui"]["terminal"] == {
        "port": 7681,
        "user": "trader",
        "password": "p",
        "own_login": False,
    }
    own = services_filter.services(
        SERVICES, {"backtest-manager": {"terminal": {"password": "q"}}}, True, {"password": "p"}
    )
    assert own["backtest-manager"]["terminal"]["own_login"] is True
    assert enabled["backtest-manager"]["terminal"]["port"] == 7682
    assert enabled["backtest-daemon"]["stop_signal"] == "SIGINT"
    assert "signal-collector" not in enabled, "off by default"
    assert problems({}, taken_ports={"stack_api_port": 8080}) == []


def test_overrides_switch_off_change_and_add_services() -> None:
    overrides = {
        "backtest-daemon": {"enabled": False},
        "scheduled-backtest": {"environment": {"RUST_LOG": "debug"}},
        "signal-collector": {"enabled": True},
        "reporter": {"command": ["report", "--daily"], "stop_signal": "SIGINT"},
    }
    enabled = services_filter.services(SERVICES, overrides)
    assert "backtest-daemon" not in enabled
    assert enabled["scheduled-backtest"]["environment"] == {"RUST_LOG": "debug"}
    assert enabled["scheduled-backtest"]["command"][0] == "scheduled-backtest", (
        "the rest of the service stays"
    )
    assert enabled["signal-collector"]["secrets"] == ["DATABASE_URL", "CRYPTOPANIC_API_KEY"]
    assert enabled["reporter"]["command"] == ["report", "--daily"]
    assert enabled["reporter"]["stop_grace_period"] == 30


def test_terminals_go_with_stack_tui_enabled_false() -> None:
    enabled = services_filter.services(SERVICES, {}, False)
    assert [name for name, s in enabled.items() if s["terminal"]] == []
    assert "app" in enabled


@pytest.mark.parametrize(
    ("overrides", "extra", "expected"),
    [
        ({"Bad Name": {"command": ["run"]}}, {}, "'Bad Name' cannot name a service"),
        ({"db": {"command": ["run"]}}, {}, "'db' cannot name a service"),
        ({"x": {"command": "run"}}, {}, "stack_services.x.command must be the app's subcommand"),
        ({"x": {"command": ["run"], "comand": ["y"]}}, {}, "stack_services.x has unknown keys comand"),
        ({"x": {"command": ["run"], "environment": {"A-B": "1"}}}, {}, "'A-B' is not a variable name"),
        (
            {"x": {"command": ["run"], "secrets": ["KALSHI_PASSWORD"]}},
            {},
            "names KALSHI_PASSWORD, which is no secret",
        ),
        (
            {"x": {"command": ["run"], "stop_signal": "SIGKILL"}},
            {},
            "stack_services.x.stop_signal must be one of",
        ),
        (
            {"x": {"command": ["run"], "stop_grace_period": "soon"}},
            {},
            "x.stop_grace_period must be a number",
        ),
        ({"x": {"command": ["run"], "terminal": {"port": 0}}}, {}, "x.terminal.port must be a port"),
        (
            {"x": {"command": ["run"], "terminal": {"port": 7690, "user": "a b"}}},
            {},
            "x.terminal.user must be",
        ),
        ({"x": {"command": ["run"], "bots": True}}, {}, "stack_services.x.bots needs data: true"),
        (
            {"x": {"command": ["run"], "terminal": {"port": 7690}, "data": True}},
            {},
            "stack_services.x: a web terminal cannot have data: true (it runs as stack_tui_uid",
        ),
        ({"x": {"command": ["run"], "api": True}}, {}, "exactly one enabled service must serve the API"),
        ({"app": {"enabled": False}}, {}, "not 0 (none)"),
        ({"x": {"command": ["run"], "terminal": {"port": 7682}}}, {}, "publish the same port 7682"),
        ({}, {"taken_ports": {"stack_api_port": 7682}}, "and stack_api_port publish the same port 7682"),
        ({"backtest-daemon": {"environment": {}}}, {}, "app and backtest-daemon would both trade the bots"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_each_broken_rule_names_the_setting(
    overrides: dict[str, Any], extra: dict[str, Any], expected: str
) -> None:
    # backtest-daemon without its own BOT_DATABASE_URL shares the daemon's: environment
    # is merged key by key, so the override above drops it by replacing the service's.
    if "backtest-daemon" in overrides:
        base = {**SERVICES, "backtest-daemon": {**SERVICES["backtest-daemon"], "environment": {}}}
        found = services_filter.service_problems(base, {}, secrets=SECRETS, environment=COMMON)
    else:
        found = problems(overrides, **extra)
    assert any(expected in problem for problem in found), found


def test_shared_bots_pass_only_when_the_operator_says_so() -> None:
    base = {**SERVICES, "backtest-daemon": {**SERVICES["backtest-daemon"], "environment": {}}}
    shared = services_filter.service_problems(base, {}, secrets=SECRETS, environment=COMMON, share_bots=True)
    assert shared == []


def test_compose_literal_doubles_dollars_for_compose() -> None:
    """Compose interpolates $VAR and ${VAR} in values: a value holding them reaches the
    container as given. Seen to fail with plain to_json (Compose substituted ${HOME})."""
    assert services_filter.compose_literal('a$b ${HOME} "q"') == '"a$$b $${HOME} \\"q\\""'


def test_release_files_hold_each_named_secret_and_the_config() -> None:
    enabled = services_filter.services(SERVICES, {"signal-collector": {"enabled": True}})
    files = services_filter.release_files(
        enabled, {"DATABASE_URL": "postgresql://u:p@db:5432/d", "CRYPTOPANIC_API_KEY": ""}, "[server]", 10001
    )
    names = {service: [f["name"] for f in service_files] for service, service_files in files.items()}
    assert names["app"][0] == "app_config"
    assert "env_DATABASE_URL" in names["app"]
    assert names["live-bot-tui"] == ["app_config"], "a terminal never gets the exchange keys"
    collector = {f["name"]: f for f in files["signal-collector"]}
    assert collector["env_CRYPTOPANIC_API_KEY"]["content"] == "", "empty: not deployed"
    assert all(f["mode"] == "0400" and f["uid"] == 10001 for fs in files.values() for f in fs)


def test_a_terminals_files_belong_to_the_terminals_user() -> None:
    """With terminal_uid, a web terminal's files are its user's, every other service's the
    app's. Seen to fail with one owner for all (the terminal could not read its config)."""
    enabled = services_filter.services(SERVICES, {}, True, {"user": "trader", "password": "p"})
    files = services_filter.release_files(
        enabled, {"DATABASE_URL": "u"}, "[server]", 10001, terminal_uid=10002
    )
    owners = {service: {f["uid"] for f in service_files} for service, service_files in files.items()}
    terminals = {name for name, service in enabled.items() if service["terminal"]}
    assert terminals, "the default services have web terminals"
    assert owners == {name: {10002} if name in terminals else {10001} for name in enabled}


SECRET_VALUES = {
    "stack_db_password": "db-pw/+=@:%#?-0123456789",
    "stack_hyperliquid_private_key": "0x" + "ab" * 32,
    "stack_secret_environment": {"CRYPTOPANIC_API_KEY": "cp-key-$HOME-0123456789"},
    "stack_services_overrides": {"signal-collector": {"enabled": True}},
}


def test_compose_carries_no_secret_only_secret_files(tmp_path: Path) -> None:
    """Every service: its environment holds no secret value (DATABASE_URL included), its
    secrets are files named env_NAME, and the commands are the configured ones."""
    rendered = compose(tmp_path, **SECRET_VALUES)
    text = yaml.safe_dump(rendered)
    for secret in ("db-pw", "0x" + "ab" * 32, "cp-key"):
        assert secret not in text
    services = rendered["services"]
    assert "DATABASE_URL" not in services["app"]["environment"]
    targets = {s["target"] for s in services["app"]["secrets"]}
    assert {"app_config", "env_DATABASE_URL", "env_HYPERLIQUID_PRIVATE_KEY"} <= targets
    assert {s["target"] for s in services["signal-collector"]["secrets"]} == {
        "app_config",
        "env_DATABASE_URL",
        "env_CRYPTOPANIC_API_KEY",
    }
    assert services["app"]["command"] == ["run-app", "run", "--config", "config/Config.toml"]
    assert services["live-bot-tui"]["command"] == [
        "run-terminal",
        "/run/ttyd/live-bot-tui.sock",
        "live-bot-tui",
    ]
    assert services["backtest-daemon"]["stop_signal"] == "SIGINT"
    assert (
        services["backtest-daemon"]["environment"]["BOT_DATABASE_URL"]
        == "sqlite:///data/backtest-daemon/bots.db"
    )
    # Its own check, not the image's (the API's): `compose up --wait` refuses a disabled one.
    assert services["scheduled-backtest"]["healthcheck"]["test"] == [
        "CMD",
        "/usr/local/bin/entrypoint.sh",
        "healthcheck-process",
    ]
    assert "volumes" not in services["scheduled-backtest"]
    assert services["app"]["volumes"] == ["app-data:/data"]
