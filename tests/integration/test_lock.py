"""The deploy lock role on a local host: a stale lock is broken only by its own run id (or,
for a lock file no run can be read from, by "corrupt"), and every refusal says which.

Seen to fail against the lock role of before: its lock_break was a boolean, so no run id
could be named (3 of these 4 role tests failed at its argument check), and a lock cut
short ended in a from_json template error instead of a refusal (run by hand, lock_break
false).
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest
from testlib import ansible_playbook, collection_plugin

lock_holder = collection_plugin("filter", "lock_holder").lock_holder

STALE = {"id": "0123456789abcdef", "by": "ghost@elsewhere", "since": "2026-01-01T00:00:00Z", "version": "v0"}

PLAYBOOK = """\
- name: Take and release the deploy lock
  hosts: all
  gather_facts: false
  tasks:
    - name: Hold it
      block:
        - name: Take it
          ansible.builtin.import_role:
            name: algotrade.deploy.lock
          vars:
            lock_for: the lock test
      always:
        - name: Release it
          ansible.builtin.import_role:
            name: algotrade.deploy.lock
            tasks_from: release
"""


def run(tmp_path: Path, lock: Path, lock_break: str) -> tuple[int, str]:
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(f"h1 ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    playbook = tmp_path / "lock.yml"
    playbook.write_text(PLAYBOOK)
    result = ansible_playbook(
        playbook, inventory, extra_vars={"lock_file": str(lock), "lock_break": lock_break}
    )
    return result.returncode, " ".join((result.stdout + result.stderr).split())


def test_a_stale_lock_is_broken_by_its_run_id_only(tmp_path: Path) -> None:
    lock = tmp_path / "deploy.lock"
    lock.write_text(json.dumps(STALE))
    rc, out = run(tmp_path, lock, "")
    assert rc != 0
    assert "h1 is locked by another deploy: ghost@elsewhere since 2026-01-01T00:00:00Z, for v0" in out
    assert "run again with -e stack_break_lock=0123456789abcdef." in out
    rc, out = run(tmp_path, lock, "fedcba9876543210")
    assert rc != 0, "another run's id breaks nothing"
    assert json.loads(lock.read_text()) == STALE
    rc, out = run(tmp_path, lock, STALE["id"])
    assert rc == 0, out[-3000:]
    assert not lock.exists(), "broken, then taken and released by this run"


def test_the_first_lock_makes_its_directory_and_says_so(tmp_path: Path) -> None:
    """A host deployed to for the first time: the lock's directory is made (0750), the one
    change the lock reports; after that, taking and releasing it change nothing."""
    lock = tmp_path / "project" / "deploy.lock"
    rc, out = run(tmp_path, lock, "")
    assert rc == 0, out[-3000:]
    assert "h1 : ok=" in out
    assert " changed=1 " in out, out[-1000:]
    assert (lock.parent.stat().st_mode & 0o777) == 0o750
    assert not lock.exists()
    rc, out = run(tmp_path, lock, "")
    assert rc == 0, out[-3000:]
    assert " changed=0 " in out, out[-1000:]


@pytest.mark.parametrize(("content", "why"), [("", "empty"), ('{"id": "01234', "not JSON (cut short?)")])
def test_a_corrupt_lock_is_refused_by_name_and_broken_by_corrupt(
    tmp_path: Path, content: str, why: str
) -> None:
    lock = tmp_path / "deploy.lock"
    lock.write_text(content)
    rc, out = run(tmp_path, lock, STALE["id"])
    assert rc != 0
    assert f"The deploy lock {lock} on h1 is {why}: no run can be named from it." in out
    assert "run again with -e stack_break_lock=corrupt." in out
    assert lock.read_text() == content
    rc, out = run(tmp_path, lock, "corrupt")
    assert rc == 0, out[-3000:]
    assert not lock.exists()


def test_corrupt_is_no_key_to_a_readable_lock(tmp_path: Path) -> None:
    lock = tmp_path / "deploy.lock"
    lock.write_text(json.dumps(STALE))
    rc, _out = run(tmp_path, lock, "corrupt")
    assert rc != 0
    assert json.loads(lock.read_text()) == STALE


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (json.dumps({**STALE, "host": "h1", "extra": 1}).encode(), {**STALE, "host": "h1"}),
        (b"", {"corrupt": "empty"}),
        (b"  \n", {"corrupt": "empty"}),
        (b'{"id": "01', {"corrupt": "not JSON (cut short?)"}),
        (b'{"by": "x"}', {"corrupt": "no run id"}),
        (b'["0123456789abcdef"]', {"corrupt": "no run id"}),
        (b"\xff\xfe", {"corrupt": "not text"}),
    ],
)
def test_lock_holder_reads_what_it_can_and_names_what_it_cannot(raw: bytes, expected: dict[str, str]) -> None:
    assert lock_holder(base64.b64encode(raw).decode()) == expected


def test_lock_holder_refuses_what_is_no_base64() -> None:
    assert lock_holder("not base64!") == {"corrupt": "not text"}
