"""Every entry point one role or playbook calls in another role is declared there.

The roles hand work to each other through include_role/import_role with tasks_from;
each such entry point is in the called role's meta/argument_specs.yml (with its inputs),
and each declared entry point has its task file. Seen to fail with the stack role's
`switch` entry removed from its spec, and with a call to an undeclared `render_all`.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from testlib import REPO, playbook_tasks

CALLERS = sorted([*REPO.glob("roles/*/tasks/*.yml"), *REPO.glob("playbooks/*.yml"), REPO / "site.yml"])
PREFIX = "algotrade.deploy."


def calls() -> list[tuple[str, str, str]]:
    """(calling file, role, entry point) for each call into another role of the collection."""
    out = []
    for path in CALLERS:
        for task in playbook_tasks(yaml.safe_load(path.read_text())):
            for action in ("ansible.builtin.include_role", "ansible.builtin.import_role"):
                call = task.get(action)
                if not isinstance(call, dict) or not str(call.get("name", "")).startswith(PREFIX):
                    continue
                role = call["name"].removeprefix(PREFIX)
                if path.parent != REPO / "roles" / role / "tasks":
                    entry = str(call.get("tasks_from", "main")).removesuffix(".yml")
                    out.append((str(path.relative_to(REPO)), role, entry))
    return out


def declared(role: str) -> dict[str, Any]:
    path = REPO / "roles" / role / "meta" / "argument_specs.yml"
    specs: dict[str, Any] = yaml.safe_load(path.read_text())["argument_specs"]
    return specs


def test_calls_found() -> None:
    """Guards the test below against running on nothing."""
    assert ("roles/ops/tasks/rollback.yml", "stack", "switch") in calls()
    assert ("playbooks/stack.yml", "image", "build") in calls()


@pytest.mark.parametrize(("caller", "role", "entry"), calls(), ids=str)
def test_every_called_entry_point_is_declared(caller: str, role: str, entry: str) -> None:
    assert entry in declared(role), (
        f"{caller} calls {role}:{entry}: declare it in roles/{role}/meta/argument_specs.yml"
    )


ROLES = sorted(p.parent.parent.name for p in REPO.glob("roles/*/meta/argument_specs.yml"))


@pytest.mark.parametrize("role", ROLES)
def test_every_declared_entry_point_has_its_task_file(role: str) -> None:
    missing = [e for e in declared(role) if not (REPO / "roles" / role / "tasks" / f"{e}.yml").exists()]
    assert missing == []


@pytest.mark.parametrize("role", sorted(p.name for p in (REPO / "roles").iterdir()))
def test_each_role_is_small(role: str) -> None:
    """A role a newcomer can read: at most eight task files (a ninth means a new role or a merge)."""
    files = sorted(p.name for p in (REPO / "roles" / role / "tasks").glob("*.yml"))
    assert len(files) <= 8, files
