"""The image role's controller source (source_controller.yml) on three local hosts of one
run, two of them sharing a source directory: each host gets its own directory's source,
and each directory is packed once.

Seen to fail against the role that packed once per run from the first host's
stack_source_dir (host b got a's source).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from testlib import REPO

PLAYBOOK = """\
- name: Stage the controller source
  hosts: all
  gather_facts: false
  tasks:
    # The image role works with the stack's settings: the import gives them to the play.
    - name: Give the play the stack's settings (none of its tasks run)
      ansible.builtin.import_role:
        name: algotrade.deploy.stack
        tasks_from: switch
      when: false

    - name: Stage
      ansible.builtin.include_role:
        name: algotrade.deploy.image
        tasks_from: source_controller
"""


def test_each_host_gets_its_own_source_directory_packed_once(tmp_path: Path) -> None:
    sources = {}
    for name in ("a", "b"):
        source = tmp_path / f"source-{name}"
        source.mkdir()
        (source / "Cargo.toml").write_text(f'[package]\nname = "{name}"\n')
        sources[name] = source
    hosts = {"a": sources["a"], "b": sources["b"], "c": sources["a"]}
    inventory = {
        "all": {
            "hosts": {
                name: {"stack_project_dir": str(tmp_path / f"host-{name}"), "stack_source_dir": str(source)}
                for name, source in hosts.items()
            },
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        }
    }
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    (tmp_path / "stage.yml").write_text(PLAYBOOK)
    result = subprocess.run(
        ["ansible-playbook", "-i", str(tmp_path / "inventory.json"), str(tmp_path / "stage.yml")],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    for name, source in hosts.items():
        staged = tmp_path / f"host-{name}" / "build" / "src" / "Cargo.toml"
        assert staged.read_text() == (source / "Cargo.toml").read_text(), name
    packs = out[out.index("Pack the sources") : out.index("Take the host's archive")]
    assert packs.count("=> (item=") == 2, packs
