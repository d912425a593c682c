"""The filter plugin algotrade.deploy.postgres_url, and the app's database URL the stack
role renders with it into Config.toml: hostile values come back whole from an RFC 3986
parser.

Seen to fail against the URL of before (Jinja's urlencode, which leaves "/" raw: the
parser split the URL at the password's first "/" and found no user, password or host;
the database name was not encoded at all).
"""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from testlib import REPO, collection_plugin

postgres_url = collection_plugin("filter", "postgres_url").postgres_url

HOSTILE = [
    "a/b",
    "p+q=r",
    "user@host",
    "colon:in:it",
    "100%",
    "hash#tag",
    "query?x=1",
    "open base64/+==",
    "trailing newline\n",
    "all of / + = @ : % # ? [ ] and ünïcode 🔑",
]


def parsed(url: str) -> tuple[str, str, str, str, int | None]:
    parts = urlsplit(url)
    assert parts.username is not None, url
    assert parts.password is not None, url
    assert parts.hostname is not None, url
    return (
        unquote(parts.username),
        unquote(parts.password),
        unquote(parts.path.removeprefix("/")),
        parts.hostname,
        parts.port,
    )


@pytest.mark.parametrize("value", HOSTILE)
def test_every_part_comes_back_whole(value: str) -> None:
    url = postgres_url({"user": value, "password": value, "host": "db", "port": 5432, "database": value})
    assert parsed(url) == (value, value, value, "db", 5432)
    userinfo = url.removeprefix("postgresql://").rsplit("@", 1)[0]
    assert all(c.isalnum() or c in "-._~%:" for c in userinfo), userinfo
    assert userinfo.count(":") == 1


def test_an_ipv6_host_is_bracketed() -> None:
    url = postgres_url({"user": "u", "password": "p", "host": "fd00::5", "port": "6432", "database": "d"})
    assert url == "postgresql://u:p@[fd00::5]:6432/d"
    assert urlsplit(url).hostname == "fd00::5"


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ({"user": "u", "password": "p", "host": "db", "port": 5432}, "needs database"),
        ({"user": "u", "password": "p", "host": "db", "port": 70000, "database": "d"}, "not a TCP port"),
    ],
)
def test_missing_or_wrong_parts_are_refused(parts: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        postgres_url(parts)


def test_the_app_config_carries_a_hostile_password_whole(tmp_path: Path) -> None:
    """The stack role's Config.toml, rendered as the role renders it, through the filter
    as Ansible loads it from the collection."""
    password = HOSTILE[-1]
    out = tmp_path / "Config.toml"
    extra = {
        "stack_db_password": password,
        "stack_db_user": "algo user",
        "stack_db_name": "algo/trade",
        "stack_tui_password": "y" * 24,
        "stack_api_password": "z" * 24,
    }
    role = REPO / "roles" / "stack"
    result = subprocess.run(
        [
            "ansible",
            "localhost",
            "-m",
            "ansible.builtin.template",
            "-a",
            f"src={role / 'templates' / 'Config.toml.j2'} dest={out}",
            "-e",
            f"@{role / 'defaults' / 'main.yml'}",
            "-e",
            f"@{role / 'vars' / 'main.yml'}",
            "-e",
            json.dumps(extra),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    url = tomllib.loads(out.read_text())["database"]["url"]
    assert parsed(url) == ("algo user", password, "algo/trade", "db", 5432)
