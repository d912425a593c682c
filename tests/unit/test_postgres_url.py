"""The filter plugin algotrade.deploy.postgres_url: hostile values come back whole from an
RFC 3986 parser (test_stack_templates.py renders them through the app's Config.toml).

Seen to fail against the URL of before (Jinja's urlencode, which leaves "/" raw: the
parser split the URL at the password's first "/" and found no user, password or host;
the database name was not encoded at all).
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest
from testlib import collection_plugin

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
