"""Jinja filters: the app's services as data, and what is wrong with them.

``stack_services | algotrade.deploy.services(stack_services_overrides, terminals=stack_tui_enabled)``
gives the enabled services, each with every key filled in; ``stack_services |
algotrade.deploy.service_problems(...)`` names each broken rule with the setting to fix
(documentation in services.yml and service_problems.yml).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

# Every key a service may have, with its value when the service does not say.
DEFAULTS: dict[str, Any] = {
    "enabled": True,
    "command": [],
    "environment": {},
    "secrets": [],
    "data": False,
    "bots": False,
    "api": False,
    "terminal": None,
    "stop_signal": "SIGTERM",
    "stop_grace_period": 30,
}
TERMINAL_KEYS = {"port", "user", "password"}
SIGNALS = ("SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2")
# Compose services of the stack's own beside the app's.
RESERVED = ("db", "proxy")
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
BOT_DATABASE_DEFAULT = "sqlite://data/bots.db"
SETTING = "stack_services"


def _merged(definitions: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Each service's keys, the override's replacing the definition's (environment and
    terminal merged key by key); a service only in the overrides is added."""
    merged: dict[str, Any] = {}
    for name in [*definitions, *[n for n in overrides or {} if n not in definitions]]:
        base = definitions.get(name) or {}
        extra = (overrides or {}).get(name) or {}
        if not isinstance(base, Mapping) or not isinstance(extra, Mapping):
            merged[name] = extra if not isinstance(extra, Mapping) else base
            continue
        service = {**base, **extra}
        for key in ("environment", "terminal"):
            if isinstance(base.get(key), Mapping) and isinstance(extra.get(key), Mapping):
                service[key] = {**base[key], **extra[key]}
        merged[name] = service
    return merged


def _truth(value: object) -> bool:
    return str(value).strip().lower() in ("true", "yes", "on", "1")


def services(
    definitions: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    terminals: object = True,
    login: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """The enabled services by name, every key filled in; terminals (web terminals served by
    ttyd) left out when terminals is false; a terminal's user and password default to login's
    (own_login: whether it names its own password)."""
    resolved: dict[str, dict[str, Any]] = {}
    for name, spec in _merged(definitions, overrides).items():
        if not isinstance(spec, Mapping):
            continue
        service = {**DEFAULTS, **spec}
        if not _truth(service["enabled"]):
            continue
        if service["terminal"] is not None:
            if not _truth(terminals):
                continue
            own = "password" in service["terminal"]
            service["terminal"] = {**(login or {}), **service["terminal"], "own_login": own}
        service["enabled"] = True
        for key in ("data", "bots", "api"):
            service[key] = _truth(service[key])
        service["command"] = [str(arg) for arg in service["command"] or []]
        service["environment"] = {str(k): str(v) for k, v in (service["environment"] or {}).items()}
        service["secrets"] = [str(s) for s in service["secrets"] or []]
        resolved[str(name)] = service
    return resolved


def compose_literal(value: object) -> str:
    """The value as one literal YAML string in a compose file: JSON-quoted, every $ doubled
    (Compose interpolates ${VAR} and $VAR in values; $$ is one $)."""
    return json.dumps(str(value).replace("$", "$$"))


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _service_problems(name: str, spec: Mapping[str, Any], secrets: list[str]) -> list[str]:
    """What is wrong with one service's keys on their own."""
    where = f"{SETTING}.{name}"
    problems = []
    unknown = sorted(set(spec) - set(DEFAULTS))
    if unknown:
        problems.append(
            f"{where} has unknown keys {', '.join(unknown)}; a service knows {', '.join(DEFAULTS)}"
        )
    command = spec.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(a, (str, int)) for a in command):
        problems.append(f"{where}.command must be the app's subcommand and its flags as a list, e.g. [run]")
    environment = spec.get("environment") or {}
    if not isinstance(environment, Mapping):
        problems.append(f"{where}.environment must be a mapping of variable names to values")
    else:
        for key, value in environment.items():
            if not ENV_NAME.fullmatch(str(key)):
                problems.append(f"{where}.environment: {key!r} is not a variable name (letters, digits, _)")
            elif not isinstance(value, (str, int, float, bool)):
                problems.append(
                    f"{where}.environment.{key} must be a string or number, not a {type(value).__name__}"
                )
    named = spec.get("secrets") or []
    if not isinstance(named, list):
        problems.append(f"{where}.secrets must be a list of secret variable names, e.g. [DATABASE_URL]")
    else:
        for secret in named:
            if str(secret) not in secrets:
                problems.append(
                    f"{where}.secrets names {secret}, which is no secret the role has: one of "
                    f"{', '.join(secrets)}, or add it to stack_secret_environment (from the vault)"
                )
    if str(spec.get("stop_signal", "SIGTERM")) not in SIGNALS:
        problems.append(f"{where}.stop_signal must be one of {', '.join(SIGNALS)}")
    grace = _int(spec.get("stop_grace_period", 30))
    if grace is None or not 1 <= grace <= 3600:
        problems.append(f"{where}.stop_grace_period must be a number of seconds from 1 to 3600")
    terminal = spec.get("terminal")
    if terminal is not None:
        if not isinstance(terminal, Mapping) or set(terminal) - TERMINAL_KEYS:
            problems.append(f"{where}.terminal must be a mapping of {', '.join(sorted(TERMINAL_KEYS))}")
        elif (_int(terminal.get("port")) or 0) not in range(1, 65536):
            problems.append(f"{where}.terminal.port must be a port between 1 and 65535")
        elif "user" in terminal and not re.fullmatch(r"[A-Za-z0-9._-]+", str(terminal["user"])):
            problems.append(
                f"{where}.terminal.user must be a login name of letters, digits, dot, dash or underscore"
            )
        if _truth(spec.get("api", False)):
            problems.append(f"{where}: a web terminal cannot also serve the API; make them two services")
        if _truth(spec.get("data", False)):
            problems.append(
                f"{where}: a web terminal cannot have data: true (it runs as stack_tui_uid, and /data with "
                f"the bot databases belongs to the app services); leave data out, or make a service "
                f"without a terminal"
            )
    if _truth(spec.get("bots", False)) and not _truth(spec.get("data", False)):
        problems.append(f"{where}.bots needs data: true (the bot database lives in /data)")
    return problems


def service_problems(
    definitions: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    secrets: list[str] | None = None,
    environment: Mapping[str, Any] | None = None,
    share_bots: object = False,
    taken_ports: Mapping[str, Any] | None = None,
    terminals: object = True,
) -> list[str]:
    """Every broken rule of the services, each naming the setting and the fix. secrets: the
    secret variables the role can give; environment: what every service gets; taken_ports:
    other published ports by setting name."""
    problems: list[str] = []
    merged = _merged(definitions or {}, overrides)
    for name, spec in merged.items():
        if not NAME.fullmatch(str(name)) or name in RESERVED:
            problems.append(
                f"{SETTING}: {name!r} cannot name a service: lowercase letters, digits, - and _, at most 40, "
                f"not {' or '.join(RESERVED)} (the stack's own)"
            )
        elif not isinstance(spec, Mapping):
            problems.append(
                f"{SETTING}.{name} must be a mapping of a service's keys, e.g. {{command: [run]}}"
            )
        elif _truth(spec.get("enabled", True)):
            problems += _service_problems(str(name), spec, [str(s) for s in secrets or []])
    if problems:
        return problems
    enabled = services(definitions, overrides, terminals)
    apis = [name for name, s in enabled.items() if s["api"]]
    if len(apis) != 1:
        problems.append(
            f"{SETTING}: exactly one enabled service must serve the API (api: true), not "
            f"{len(apis)} ({', '.join(apis) or 'none'}): the health gate asks it"
        )
    ports = {
        f"{SETTING}.{n}.terminal.port": _int(s["terminal"]["port"])
        for n, s in enabled.items()
        if s["terminal"]
    }
    ports |= {k: _int(v) for k, v in (taken_ports or {}).items()}
    for port in sorted({p for p in ports.values() if list(ports.values()).count(p) > 1}, key=str):
        problems.append(
            f"{' and '.join(k for k, p in ports.items() if p == port)} publish the same port {port}: "
            "give each its own"
        )
    common = {str(k): str(v) for k, v in (environment or {}).items()}
    by_bots: dict[str, list[str]] = {}
    for name, service in enabled.items():
        if service["bots"]:
            url = {**common, **service["environment"]}.get("BOT_DATABASE_URL", BOT_DATABASE_DEFAULT)
            by_bots.setdefault(url, []).append(name)
    for url, names in by_bots.items():
        if len(names) > 1 and not _truth(share_bots):
            problems.append(
                f"{SETTING}: {' and '.join(names)} would both trade the bots of {url}: give each its own "
                f"BOT_DATABASE_URL in its environment, disable one (enabled: false), or set "
                f"stack_services_share_bots: true if they must share them"
            )
    return problems


def release_files(
    enabled: Mapping[str, Mapping[str, Any]],
    secrets: Mapping[str, Any],
    config: str,
    uid: object,
    terminal_uid: object = None,
) -> dict[str, list[dict[str, Any]]]:
    """Each service's files: the app's config and env_NAME for each secret variable it names
    (the entrypoint exports it into the service's process only), all 0400 owned by the
    user the service runs as: uid, or terminal_uid for a web terminal (when given).
    A file with no content (an empty secret) is not deployed."""
    files: dict[str, list[dict[str, Any]]] = {}
    for name, service in enabled.items():
        owner = terminal_uid if service.get("terminal") and terminal_uid is not None else uid
        files[name] = [{"name": "app_config", "content": config, "uid": owner, "mode": "0400"}] + [
            {"name": f"env_{secret}", "content": str(secrets.get(secret, "")), "uid": owner, "mode": "0400"}
            for secret in service["secrets"]
        ]
    return files


# crypt's own default: nginx checks a login in its event loop, and at passlib's 656000 rounds
# a few wrong logins a second stalled every terminal and the API. A login's strength is its
# password's length (16 characters at least, the checks role's settings rules).
LOGIN_HASH_ROUNDS = 5000


def terminal_login_files(
    terminals: Mapping[str, Mapping[str, Any]], salt_key: str, uid: object
) -> list[dict[str, Any]]:
    """Each web terminal's login file for the proxy (htpasswd_<service>, 0400 owned by uid):
    one line, the user and the SHA-512 crypt hash the proxy checks, salted per terminal and
    salt_key (host and project) so that an unchanged password renders an unchanged file."""
    from ansible.plugins.filter.core import get_encrypted_password  # only where Ansible runs
    from ansible_collections.algotrade.deploy.plugins.filter.secret_text import secret_text

    files = []
    for name, service in terminals.items():
        terminal = service["terminal"]
        # A salt, not a secret: sha1 only spreads the names over 16 characters.
        salt = hashlib.sha1(f"{salt_key}{name}".encode(), usedforsecurity=False).hexdigest()[:16]
        crypt = get_encrypted_password(
            secret_text(terminal.get("password", "")), "sha512", salt=salt, rounds=LOGIN_HASH_ROUNDS
        )
        files.append(
            {"name": f"htpasswd_{name}", "content": f"{terminal['user']}:{crypt}", "uid": uid, "mode": "0400"}
        )
    return files


def terminal_checks(terminals: Mapping[str, Mapping[str, Any]], url: str) -> list[dict[str, Any]]:
    """The health gate's checks of each web terminal through the proxy, for
    algotrade.deploy.http_checks: refused without its login (401), answered with it (200),
    and its page's WebSocket accepted with it (101: the browser's request, with the Origin
    the proxy and ttyd check and ttyd's subprotocol)."""
    from ansible_collections.algotrade.deploy.plugins.filter.secret_text import secret_text

    checks = []
    for name, service in terminals.items():
        terminal = service["terminal"]
        origin = f"{url}:{terminal['port']}"
        login = {"user": terminal["user"], "password": secret_text(terminal.get("password", ""))}
        # Each asked again twice: a proxy that checks several logins at once on a busy host
        # may answer one of them after the read timeout (seen under load: every one timed out).
        checks += [
            {
                "name": f"web terminal {name} without its login",
                "url": f"{origin}/",
                "status": 401,
                "retries": 2,
            },
            {
                "name": f"web terminal {name} with its login",
                "url": f"{origin}/",
                "status": 200,
                "retries": 2,
                **login,
            },
            {
                "name": f"web terminal {name}'s WebSocket with its login",
                "url": f"{origin}/ws",
                "status": 101,
                "retries": 2,
                **login,
                "headers": {
                    "Origin": origin,
                    "Connection": "Upgrade",
                    "Upgrade": "websocket",
                    "Sec-WebSocket-Version": "13",
                    # Any 16 bytes in base64: ttyd only checks there is one.
                    "Sec-WebSocket-Key": base64.b64encode(b"algotrade-health").decode(),
                    "Sec-WebSocket-Protocol": "tty",
                },
            },
        ]
    return checks


class FilterModule:
    """Ansible's entry point for filter plugins."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "services": services,
            "compose_literal": compose_literal,
            "service_problems": service_problems,
            "service_release_files": release_files,
            "terminal_login_files": terminal_login_files,
            "terminal_checks": terminal_checks,
        }
