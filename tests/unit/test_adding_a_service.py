"""docs/adding-a-service.md, followed to the letter: a service added the way it says (a
few lines of inventory) is rendered by the role with no template change: its files get
their digest, their directory and their compose secrets, the release lists them, a change
of its secret changes only its digest, and an empty secret is not deployed.

Seen to fail when render.yml digested only the app's and the proxy's files (the render
failed: the compose file had no digest for the new service).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from testlib import REPO

GUIDE = REPO / "docs" / "adding-a-service.md"
ROLE = REPO / "roles" / "stack"
# The release role renders from within the stack role (its settings and templates): the
# test's own entry point, in a copy of the stack role.
PROBE = """\
- name: render_probe | Render the release
  ansible.builtin.include_role:
    name: algotrade.deploy.release
    tasks_from: render
"""

PLAYBOOK = """\
- name: Render a release with the stack role's settings
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Render
      ansible.builtin.include_role:
        name: "{{ role }}"
        tasks_from: render_probe
    - name: Keep what render.yml fixed
      ansible.builtin.copy:
        content: "{{ {'compose': __release_compose, 'release': __release_rendered,
                      'digests': __release_input_digests} | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
"""
# What the release role's host.yml reads on a host, and secrets that pass the role's rules.
SETTINGS = {
    "__image_tag": "0123456789abcdef",
    "__release_migrations": [],
    "__release_tls_cert_pem": "",
    "stack_db_password": "x" * 24,
    "stack_tui_password": "y" * 24,
    "stack_api_password": "z" * 24,
    "stack_tui_bind": "192.0.2.10",
}


def render(tmp_path: Path, **overrides: object) -> dict[str, Any]:
    playbook, out, role = tmp_path / "render.yml", tmp_path / "out.json", tmp_path / "roles" / "stack"
    if not role.exists():
        shutil.copytree(ROLE, role)
        (role / "tasks" / "render_probe.yml").write_text(PROBE)
    playbook.write_text(PLAYBOOK)
    extra = {**SETTINGS, "role": str(role), "out": str(out), **overrides}
    extra["ansible_python_interpreter"] = sys.executable
    result = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", str(playbook), "-e", json.dumps(extra)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    document: dict[str, Any] = json.loads(out.read_text())
    document["compose"] = yaml.safe_load(document["compose"])
    return document


def guide_settings() -> dict[str, Any]:
    """The inventory lines of the guide's first step, as YAML."""
    block = re.search(r"```yaml\n(.*?)```", GUIDE.read_text(), re.DOTALL)
    assert block, "the guide's example moved"
    settings: dict[str, Any] = yaml.safe_load(block.group(1))
    return settings


def test_the_guide_names_only_inventory_files() -> None:
    files = re.findall(r"^\d+\. \*{0,2}`([^`]+)`", GUIDE.read_text(), re.MULTILINE)
    assert files == ["inventories/prod/group_vars/all/vars.yml", "inventories/prod/group_vars/all/vault.yml"]
    assert all((REPO / f).exists() for f in files), files


def test_a_service_added_by_the_guide_is_rendered_whole(tmp_path: Path) -> None:
    settings = guide_settings()
    secrets = {"vault_report_token": "first-token-0123456789", "vault_cryptopanic_api_key": "cp-0123456789"}
    before = render(tmp_path, **settings, **secrets)
    compose = before["compose"]
    assert "backtest-daemon" not in compose["services"]
    assert "signal-collector" in compose["services"]
    digest = before["digests"]["reporter"]
    directory = f"/opt/algo-trade/inputs/reporter-{digest}"
    assert compose["secrets"]["reporter-env_REPORT_TOKEN"] == {"file": f"{directory}/env_REPORT_TOKEN"}
    reporter = compose["services"]["reporter"]
    assert {"source": "reporter-env_REPORT_TOKEN", "target": "env_REPORT_TOKEN"} in reporter["secrets"]
    assert reporter["labels"]["org.algotrade.inputs"] == digest
    assert reporter["command"] == ["run-app", "report", "--daily"]
    assert reporter["environment"]["REPORT_TZ"] == "UTC"
    assert reporter["stop_signal"] == "SIGINT"
    assert reporter["stop_grace_period"] == "20s"
    assert reporter["read_only"] is True
    assert reporter["cap_drop"] == ["ALL"]
    assert f"reporter-{digest}" in before["release"]["inputs"]
    assert "first-token" not in json.dumps(compose)

    after = render(tmp_path, **settings, **{**secrets, "vault_report_token": "second-token-0123456789"})
    assert after["digests"]["reporter"] != digest, "a new token recreates the reporter"
    assert {k: v for k, v in after["digests"].items() if k != "reporter"} == {
        k: v for k, v in before["digests"].items() if k != "reporter"
    }, "and no other service"
    assert after["release"]["id"] != before["release"]["id"]

    # Without its token the reporter has its config only: no env_REPORT_TOKEN anywhere.
    empty = render(tmp_path, **settings, **{**secrets, "vault_report_token": ""})
    assert "reporter-env_REPORT_TOKEN" not in empty["compose"]["secrets"]
    assert "reporter-app_config" in empty["compose"]["secrets"]
