"""The verifiers' shared guard: a scenario whose hosts are missing fails, never skips."""

from __future__ import annotations

from pathlib import Path

import pytest
from testlib import expected_hosts


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
        "all:\n  children:\n    attackers:\n      hosts: {x: {}}\n",  # no stack host: every host test would skip
        "all:\n  children:\n    stack:\n      hosts: {other: {}}\n",
        "all:\n  children:\n    stack:\n      hosts: {stack-a: {}, stack-b: {}}\n",
    ],
    ids=["empty", "another-host", "one-more"],
)
def test_a_group_without_exactly_the_expected_hosts_fails(tmp_path: Path, text: str) -> None:
    with pytest.raises(RuntimeError, match="the tests expect"):
        expected_hosts(inventory(tmp_path, text), "stack", ["stack-a"])
