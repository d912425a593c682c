"""The verifiers' shared guard: a scenario whose hosts are missing fails, never skips."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import quote

import pytest
from testlib import expected_hosts, leaked_secrets


def inventory(tmp_path: Path, text: str) -> str:
    path = tmp_path / "inventory.yml"
    path.write_text(text)
    return str(path)


def test_the_expected_hosts_pass(tmp_path: Path) -> None:
    inv = inventory(tmp_path, "all:\n  children:\n    stack:\n      hosts: {stack-a: {}}\n")
    assert expected_hosts(inv, "stack", ["stack-a"]) == ["stack-a"]


@pytest.mark.parametrize(
    "text",
    [
        # no stack host: every host test would skip
        "all:\n  children:\n    attackers:\n      hosts: {x: {}}\n",
        "all:\n  children:\n    stack:\n      hosts: {other: {}}\n",
        "all:\n  children:\n    stack:\n      hosts: {stack-a: {}, stack-b: {}}\n",
    ],
    ids=["empty", "another-host", "one-more"],
)
def test_a_group_without_exactly_the_expected_hosts_fails(tmp_path: Path, text: str) -> None:
    with pytest.raises(RuntimeError, match="the tests expect"):
        expected_hosts(inventory(tmp_path, text), "stack", ["stack-a"])


SECRET = "s3cr/t+pw=@:%#?-7f3a9c2e51"  # noqa: S105 (a test value)


@pytest.mark.parametrize(
    "text",
    [
        f"password={SECRET}",
        f"postgresql://algo:{quote(SECRET, safe='')}@db/algo_trade",
        "Authorization: Basic " + base64.b64encode(f"trader:{SECRET}".encode()).decode(),
        "Authorization: Basic " + base64.b64encode(f"u:{SECRET}".encode()).decode(),
        "Authorization: Basic " + base64.b64encode(f"ab:{SECRET}".encode()).decode(),
        base64.b64encode(SECRET.encode()).decode(),
        SECRET.encode().hex(),
    ],
    ids=["plain", "in-a-url", "basic-auth-0", "basic-auth-1", "basic-auth-2", "base64", "hex"],
)
def test_every_encoded_form_of_a_secret_is_found(text: str) -> None:
    assert leaked_secrets(f"...{text}...", ["another-secret-value", SECRET])


def test_text_without_the_secret_passes() -> None:
    assert leaked_secrets("Basic dHJhZGVyOm5vdC10aGUtc2VjcmV0 algo:***@db", [SECRET]) == []
