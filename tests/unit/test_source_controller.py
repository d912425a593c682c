"""The image role's controller source on three local hosts of one run, two of them sharing
a source directory: the image is named after each directory's digest, packed once per
directory (source.yml), and each host gets its own directory's source to build
(source_controller.yml), packed again and refused if it changed in between.

Seen to fail against the role that packed once per run from the first host's
stack_source_dir (host b got a's source).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from testlib import REPO

PLAYBOOK = """\
- name: Stage the controller source
  hosts: all
  # The image's name renders the build files, which need the hosts' architecture.
  gather_facts: true
  gather_subset: [min]
  tasks:
    # The image role works with the stack's settings: the import gives them to the play.
    - name: Give the play the stack's settings (none of its tasks run)
      ansible.builtin.import_role:
        name: algotrade.deploy.stack
        tasks_from: switch
      when: false

    - name: Name the image
      ansible.builtin.include_role:
        name: algotrade.deploy.image
        tasks_from: source

    - name: Change the source after its image was named
      ansible.builtin.copy:
        content: "changed"
        dest: "{{ stack_source_dir }}/changed.txt"
        mode: "0644"
      when: change_after_naming | default(false)

    - name: Stage
      ansible.builtin.include_role:
        name: algotrade.deploy.image
        tasks_from: source_controller
      when: stack_source | default('controller') == 'controller'
"""


def stage(
    tmp_path: Path,
    hosts: dict[str, Path],
    first: dict[str, dict[str, str]] | None = None,
    **extra_vars: object,
) -> tuple[str, int]:
    """Runs the playbook on local hosts (each with its source directory, after the hosts
    of `first` with their own variables); scratch files go to tmp_path/scratch, which the
    run must leave empty."""
    inventory = {
        "all": {
            "hosts": {
                **(first or {}),
                **{
                    name: {
                        "stack_project_dir": str(tmp_path / f"host-{name}"),
                        "stack_source_dir": str(source),
                    }
                    for name, source in hosts.items()
                },
            },
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        }
    }
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    (tmp_path / "stage.yml").write_text(PLAYBOOK)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    result = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            str(tmp_path / "inventory.json"),
            str(tmp_path / "stage.yml"),
            "-e",
            json.dumps(extra_vars),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert not list(scratch.glob("*.algo-trade-src.tar")), "a scratch file was left"
    return result.stdout + result.stderr, result.returncode


def source_dir(tmp_path: Path, name: str) -> Path:
    source = tmp_path / f"source-{name}"
    source.mkdir()
    (source / "Cargo.toml").write_text(f'[package]\nname = "{name}"\n')
    return source


def test_each_host_gets_its_own_source_directory_packed_once(tmp_path: Path) -> None:
    sources = {name: source_dir(tmp_path, name) for name in ("a", "b")}
    hosts = {"a": sources["a"], "b": sources["b"], "c": sources["a"]}
    out, returncode = stage(tmp_path, hosts)
    assert returncode == 0, out[-4000:]
    for name, source in hosts.items():
        staged = tmp_path / f"host-{name}" / "build" / "src" / "Cargo.toml"
        assert staged.read_text() == (source / "Cargo.toml").read_text(), name
    packs = out[out.index("Pack the sources") : out.index("Keep the source digest")]
    assert packs.count("=> (item=") == 2, packs


def test_a_source_changed_after_its_image_was_named_is_refused(tmp_path: Path) -> None:
    """Seen to fail when the staging packed without comparing the digest (the image's
    name would not be the digest of what it was built from)."""
    out, returncode = stage(tmp_path, {"a": source_dir(tmp_path, "a")}, change_after_naming=True)
    assert returncode != 0
    assert "changed during this run" in out, out[-4000:]
    assert not (tmp_path / "host-a" / "build" / "src").exists()


def test_a_git_source_first_in_the_play_leaves_the_others_their_digest(tmp_path: Path) -> None:
    """The pack runs once for the play (run_once): with a host of a git source first, the
    hosts of the controller's source still get their digest and their source.

    Seen to fail when the pack had the condition stack_source == 'controller' (run_once
    took the git host's, and skipped the pack for every host)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "Cargo.toml").write_text('[package]\nname = "from-git"\n')
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-C", str(repo)]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "source"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    git_host = {
        "stack_project_dir": str(tmp_path / "host-g"),
        "stack_source": "git",
        "stack_source_git_repo": f"file://{repo}",
        "stack_source_git_version": "main",
    }
    out, returncode = stage(tmp_path, {"a": source_dir(tmp_path, "a")}, first={"g": git_host})
    assert returncode == 0, out[-4000:]
    assert (tmp_path / "host-a" / "build" / "src" / "Cargo.toml").read_text() == '[package]\nname = "a"\n'
    assert (
        tmp_path / "host-g" / "build" / "src" / "Cargo.toml"
    ).read_text() == '[package]\nname = "from-git"\n'
