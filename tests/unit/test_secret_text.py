"""The collection's one rule for single-line secrets (filter algotrade.deploy.secret_text):
trailing line breaks go, as the PostgreSQL image's $(< file) drops them, everywhere a secret
lands; nothing else changes. test_stack_templates.py checks the database URL in Config.toml.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from passlib.hash import sha512_crypt
from testlib import REPO, collection_plugin

secret_text = collection_plugin("filter", "secret_text").secret_text

# Each of / + = @ : % # ? & and a trailing newline, as encrypt_string --stdin-name stores it.
HOSTILE_PASSWORD = "pw/+=@:%#?&x-0123456789\n"  # noqa: S105


@pytest.mark.parametrize(
    ("given", "read"),
    [
        ("s3cret\n", "s3cret"),
        ("s3cret\n\n", "s3cret"),
        ("s3cret\r\n", "s3cret"),
        ("s3cret", "s3cret"),
        (" spaced secret \t", " spaced secret \t"),
        ("\tleading", "\tleading"),
        ("two\nlines\n", "two\nlines"),
        (HOSTILE_PASSWORD, HOSTILE_PASSWORD[:-1]),
        ("\n", ""),
        ("", ""),
        (None, ""),
        (1234, "1234"),
    ],
)
def test_only_trailing_line_breaks_go(given: object, read: str) -> None:
    assert secret_text(given) == read


# The single-line secrets and where a raw use would let a trailing newline through.
SECRETS = re.compile(
    r"(?<![\w.])(stack_db_password|stack_db_app_password|stack_tui_password|stack_api_password"
    r"|stack_hyperliquid_private_key|stack_hyperliquid_api_wallet_key|stack_hyperliquid_account_address)\b"
)
THROUGH_THE_RULE = re.compile(r"\s*(\|\s*default\([^()]*\)\s*)?\|\s*algotrade\.deploy\.secret_text\b")
CONDITIONS = {"when", "that", "failed_when", "changed_when", "until"}
JINJA = re.compile(r"\{\{(.*?)\}\}|\{%(.*?)%\}", re.DOTALL)


def expressions(node: object, key: str = "") -> Iterator[str]:
    """The Jinja expressions of a loaded YAML document: inside {{ }} and {% %}, and whole
    conditions (when:, that:, ...)."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from expressions(v, str(k))
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item, key)
    elif isinstance(node, str):
        if key in CONDITIONS:
            yield node
        for match in JINJA.finditer(node):
            yield match.group(1) or match.group(2) or ""


def raw_uses(path: Path) -> list[str]:
    if path.suffix == ".j2":
        found = [m.group(1) or m.group(2) or "" for m in JINJA.finditer(path.read_text())]
    else:
        found = list(expressions(yaml.safe_load(path.read_text())))
    return [
        f"{path.relative_to(REPO)}: {' '.join(expr.split())}"
        for expr in found
        for use in SECRETS.finditer(expr)
        if not THROUGH_THE_RULE.match(expr, use.end())
    ]


def test_every_use_of_a_secret_goes_through_the_rule() -> None:
    """Every Jinja expression of the roles and playbooks that reads a single-line secret
    applies algotrade.deploy.secret_text to it (defaults and argument specs only name them).
    Seen to fail against the roles of before: the release role's password file and
    release.json digest, the checks role's deployed-password guard and key rules, the switch
    role's health-gate logins, the stack's login hashes and key files, and the rotation's
    stdin and ALTER ROLE used them raw (24 uses)."""
    files = [
        path
        for path in [
            *REPO.glob("roles/*/*/*.yml"),
            *REPO.glob("roles/*/templates/*.j2"),
            *REPO.glob("playbooks/*.yml"),
        ]
        if path.parent.name not in {"defaults", "meta"}
    ]
    assert len(files) > 40, files
    uses = [use for path in files for use in raw_uses(path)]
    assert uses == [], "\n".join(uses)


def role_values(expression: str, **settings: object) -> dict[str, Any]:
    """An expression over the stack role's defaults and vars, as Ansible evaluates it."""
    role = REPO / "roles" / "stack"
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_STDOUT_CALLBACK": "json",
    }
    result = subprocess.run(
        ["ansible", "localhost", "-m", "ansible.builtin.debug", "-a", f"msg={{{{ {expression} }}}}",
         "-e", f"@{role / 'defaults' / 'main.yml'}", "-e", f"@{role / 'vars' / 'main.yml'}",
         "-e", json.dumps({"stack_config_template": str(role / "templates" / "Config.toml.j2"), **settings})],
        capture_output=True, text=True, check=False, cwd=REPO, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    values = json.loads(result.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]
    assert isinstance(values, dict), values
    return values


def test_the_role_writes_and_hashes_secrets_without_their_newline() -> None:
    """The database's password file and release.json's digest of it, the key files and the
    web terminal's and API's login hashes get the secrets without the trailing newline
    (the database URL: test_stack_templates.py). Seen to fail against vars/main.yml of
    before: the key files kept the newline and the hashes did not verify the password."""
    key, address = "0x" + "ab" * 32, "0x" + "cd" * 20
    values = role_values(
        "{'db': __stack_db_password, 'app': __stack_release_files.app | items2dict('name', 'content'),"
        " 'tui': (__stack_release_files.proxy | items2dict('name', 'content'))['htpasswd_live-bot-tui'],"
        " 'api': __stack_api_htpasswd}",
        stack_db_password=HOSTILE_PASSWORD,
        stack_tui_password="tui/+=@:%#?&-password\n",  # noqa: S106
        stack_api_password="api/+=@:%#?&-password\r\n",  # noqa: S106
        stack_hyperliquid_private_key=key + "\n",
        stack_hyperliquid_api_wallet_key=key + "\n\n",
        stack_hyperliquid_account_address=address + "\n",
    )
    assert values["db"] == HOSTILE_PASSWORD[:-1]
    app = values["app"]
    assert (app["env_HYPERLIQUID_PRIVATE_KEY"], app["env_HYPERLIQUID_API_WALLET_KEY"]) == (key, key)
    assert app["env_HYPERLIQUID_ACCOUNT_ADDRESS"] == address
    assert "%0A" not in app["env_DATABASE_URL"], "the URL's password without its newline"
    tui_user, tui_hash = values["tui"].split(":", 1)
    assert tui_user == "trader"
    assert sha512_crypt.verify("tui/+=@:%#?&-password", tui_hash)
    assert sha512_crypt.verify("api/+=@:%#?&-password", values["api"].split(":", 1)[1])


def test_login_hashes_are_quick_for_the_proxy_to_check() -> None:
    """The web terminal's and the API's login hashes have crypt's default 5000 rounds: nginx
    checks them in its event loop, and at passlib's 656000 about three wrong logins a second
    stalled every terminal and the API. Seen to fail before (656000 rounds)."""
    values = role_values(
        "{'tui': (__stack_release_files.proxy | items2dict('name', 'content'))['htpasswd_live-bot-tui'],"
        " 'api': __stack_api_htpasswd}",
        stack_tui_password="tui-login-password-for-rounds",  # noqa: S106
        stack_api_password="api-login-password-for-rounds",  # noqa: S106
    )
    for name in ("tui", "api"):
        login_hash = values[name].split(":", 1)[1]
        assert sha512_crypt.from_string(login_hash).rounds == 5000, (name, login_hash)
        assert sha512_crypt.verify(f"{name}-login-password-for-rounds", login_hash)
