"""The fetch role over SSH as an unprivileged user with sudo: the file goes through the
connection's transfer, never slurp (which under become holds the whole file base64-encoded
in memory on both ends), also when the inventory sets ansible_become, which outranks the
tasks' become keyword. The login user's private copy is gone after. Logged in as root,
the file itself is fetched, with no copy.

Seen to fail with the role's tasks saying only `become: false`: with the inventory's
ansible_become the fetch ran AnsiballZ_slurp as root (in the fleet scenario over SSH, for the
261 MB image archive: 1.4 GB resident on the host).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import testinfra
from testlib import HOST_PREFIX, REPO, ansible_playbook, run_ok, throwaway_hosts

PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "fetch.yml"
HOST = HOST_PREFIX + "fetch-ssh"


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    workdir = tmp_path_factory.mktemp(HOST)
    with throwaway_hosts([HOST], workdir, scenario=HOST_PREFIX.strip("-"), transport="ssh") as path:
        yield path


@pytest.mark.parametrize("inventory_become", [False, True], ids=["keyword", "inventory-become"])
def test_the_file_is_streamed_from_a_private_copy(
    inventory: Path, tmp_path: Path, inventory_become: bool
) -> None:
    hosts = json.loads(inventory.read_text())
    if inventory_become:  # else the play's become keyword, as the collection's playbooks say
        hosts["all"]["hosts"][HOST]["ansible_become"] = True
    run_inventory = tmp_path / "inventory.yml"
    run_inventory.write_text(json.dumps(hosts))
    result = ansible_playbook(PLAYBOOK, run_inventory, "-vvv", extra_vars={"fetch_test_dest": str(tmp_path)})
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "AnsiballZ_slurp" not in out
    fetched = [line for line in out.splitlines() if "FETCH " in line and "fetched.bin" in line]
    # From the login user's private copy (numbered in its directory), not root's file.
    assert [line for line in fetched if "FETCH /home/deploy/.algo-trade-fetch." in line], out[-3000:]
    host = testinfra.get_host(f"ansible://{HOST}?ansible_inventory={inventory}", sudo=True)
    copy = hashlib.sha256((tmp_path / "fetched.bin").read_bytes()).hexdigest()
    assert copy == host.file("/root/fetched.bin").sha256sum
    assert ".algo-trade-fetch" not in run_ok(host, "ls -a /home/deploy")


@pytest.fixture(scope="module")
def root_inventory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    name = HOST + "-root"
    with throwaway_hosts([name], tmp_path_factory.mktemp(name), scenario=HOST_PREFIX.strip("-")) as path:
        yield path


def test_as_root_the_file_itself_is_streamed(root_inventory: Path, tmp_path: Path) -> None:
    """Logged in as root (docker exec here), no copy: root's file goes as it is."""
    result = ansible_playbook(PLAYBOOK, root_inventory, "-vvv", extra_vars={"fetch_test_dest": str(tmp_path)})
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert "AnsiballZ_slurp" not in out
    assert f"FETCH /root/fetched.bin TO {tmp_path}/fetched.bin" in out, out[-3000:]
    assert "algo-trade-fetch." not in out  # no private copy made
