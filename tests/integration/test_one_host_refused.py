"""One host's refused setting stops the run before any host changes: site.yml on two new
hosts, one of them with a database name PostgreSQL cannot take, leaves both as they were
(no Docker installed on the good one, no project directory on either).

Seen to fail without any_errors_fatal on the preflight's settings play: only the refused
host left the run, and the docker play went on to install Docker Engine on the other one
(changed=22 on it).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import testinfra
from testlib import HOST_PREFIX, REPO, ansible_playbook, recap, throwaway_hosts

GOOD, BAD = HOST_PREFIX + "refused-good", HOST_PREFIX + "refused-bad"
DEMO = REPO / "inventories" / "demo" / "group_vars" / "all"


def test_one_host_refused_stops_the_run_on_every_host(tmp_path: Path) -> None:
    with throwaway_hosts([GOOD, BAD], tmp_path, scenario=HOST_PREFIX.strip("-")) as inventory:
        hosts = json.loads(inventory.read_text())
        hosts["all"]["hosts"][BAD]["stack_db_name"] = "al'go"
        inventory.write_text(json.dumps(hosts))
        # The demo's settings and vault, beside the inventory (its group_vars).
        group_vars = tmp_path / "group_vars" / "all"
        group_vars.mkdir(parents=True)
        for name in ("vars.yml", "vault.yml"):
            shutil.copy(DEMO / name, group_vars / name)
        result = ansible_playbook(
            REPO / "playbooks" / "site.yml", inventory, extra_vars={"demo_root": str(REPO)}
        )
        out = result.stdout + result.stderr
        assert result.returncode != 0, out[-3000:]
        assert f"fatal: [{BAD}]: FAILED!" in out, out[-3000:]
        assert "stack_db_name: must be a PostgreSQL name" in out, out[-3000:]
        assert recap(result, GOOD)["changed"] == 0
        assert recap(result, GOOD)["failed"] == 0
        for name in (GOOD, BAD):
            host = testinfra.get_host(f"docker://{name}")
            assert not host.exists("dockerd"), f"{name} got Docker Engine"
            assert not host.file("/opt/algo-trade").exists, f"{name} got a project directory"
