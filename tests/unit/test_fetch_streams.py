"""Files come to the controller streamed: every fetch in the roles runs without become.

With become, ansible.builtin.fetch reads the file through slurp, base64 in memory on the
host and the controller (a 261 MB image archive: about 9 minutes and 1.4 GB resident over
SSH with sudo); without it the connection streams the file. The roles' plays run with
become, so each fetch must say become: false (and fetch from a copy its login user owns).
Seen to fail with the image role's export fetch as it was (no become: false).
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


def test_the_roles_fetch_something() -> None:
    assert len(_fetches()) >= 2


def _id(value: object) -> str:
    return value.name if isinstance(value, Path) else str(value["name"])  # type: ignore[index]


@pytest.mark.parametrize(("path", "task"), _fetches(), ids=_id)
def test_each_fetch_streams_without_become(path: Path, task: dict[str, Any]) -> None:
    assert task.get("become") is False, f"{path.relative_to(REPO)}: {task['name']} fetches with become"
