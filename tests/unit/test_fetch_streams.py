"""Files come to the controller streamed: one fetch in the roles, the fetch role's, and it
runs without become.

With become, ansible.builtin.fetch reads the file through slurp, base64 in memory on the
host and the controller (a 261 MB image archive: about 9 minutes and 1.4 GB resident over
SSH with sudo); without it the connection streams the file. The roles' plays run with
become, so the fetch says become: false, and ansible_become: false among its vars (an
inventory's ansible_become outranks the keyword; tests/integration/test_fetch_role.py
runs it so). Seen to fail with the image role's export fetch as it was (no become: false).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from testlib import REPO, playbook_tasks


def _fetches() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (path, task)
        for path in sorted(REPO.glob("roles/*/tasks/*.yml"))
        for task in playbook_tasks(yaml.safe_load(path.read_text()))
        if "ansible.builtin.fetch" in task
    ]


def test_only_the_fetch_role_fetches() -> None:
    assert [path.relative_to(REPO).as_posix() for path, _task in _fetches()] == ["roles/fetch/tasks/main.yml"]


def _id(value: object) -> str:
    return value.name if isinstance(value, Path) else str(value["name"])  # type: ignore[index]


@pytest.mark.parametrize(("path", "task"), _fetches(), ids=_id)
def test_each_fetch_streams_without_become(path: Path, task: dict[str, Any]) -> None:
    assert task.get("become") is False, f"{path.relative_to(REPO)}: {task['name']} fetches with become"
    assert task.get("vars", {}).get("ansible_become") is False, f"{task['name']}: an inventory's become wins"
