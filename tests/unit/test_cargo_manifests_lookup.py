"""The lookup algotrade.deploy.cargo_manifests: a source directory's Cargo manifests with their
text and its src/main.rs files, down to four levels, without target/ and .git/, the input
of the filter cargo_bins (the host checks' "builds no algo-trade binary")."""

from __future__ import annotations

from pathlib import Path

from testlib import collection_plugin, run_json

lookup = collection_plugin("lookup", "cargo_manifests")
cargo_bins = collection_plugin("filter", "cargo_bins").cargo_bins

# The lookup as Ansible loads it (its options from its documentation), as the check uses it.
PLAYBOOK = """\
- name: Read the manifests
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Print them
      ansible.builtin.debug:
        msg: >-
          {{ query('algotrade.deploy.cargo_manifests', source)
             | items2dict(key_name='path', value_name='text') }}
"""


def write(path: Path, text: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_manifests_and_main_files_down_to_four_levels(tmp_path: Path) -> None:
    source = tmp_path / "source"
    write(source / "Cargo.toml", '[workspace]\nmembers = ["crates/*"]\n')
    write(source / "crates" / "cli" / "Cargo.toml", '[package]\nname = "algo-trade-cli"\n')
    write(source / "crates" / "cli" / "src" / "main.rs", "fn main() {}\n")
    # Not read: a fifth level, build output, git's data, a main.rs outside a src/.
    write(source / "crates" / "deep" / "a" / "b" / "Cargo.toml", '[package]\nname = "deep"\n')
    write(source / "target" / "release" / "Cargo.toml", '[package]\nname = "built"\n')
    write(source / ".git" / "Cargo.toml", '[package]\nname = "git"\n')
    write(source / "crates" / "cli" / "main.rs", "fn main() {}\n")
    playbook = tmp_path / "read.yml"
    playbook.write_text(PLAYBOOK)

    result, document = run_json(playbook, "localhost,", extra_vars={"source": str(source)})

    assert result.returncode == 0, result.stdout + result.stderr
    found = document["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]
    assert found == {
        "Cargo.toml": '[workspace]\nmembers = ["crates/*"]\n',
        "crates/cli/Cargo.toml": '[package]\nname = "algo-trade-cli"\n',
        "crates/cli/src/main.rs": "",
    }
    assert cargo_bins(found) == ["algo-trade-cli"]


def test_the_depth_is_an_option(tmp_path: Path) -> None:
    write(tmp_path / "Cargo.toml", "[workspace]\n")
    write(tmp_path / "crates" / "cli" / "Cargo.toml", "[package]\n")
    assert [entry["path"] for entry in lookup.cargo_manifests(str(tmp_path), 2)] == ["Cargo.toml"]
    assert [entry["path"] for entry in lookup.cargo_manifests(str(tmp_path), 3)] == [
        "Cargo.toml",
        "crates/cli/Cargo.toml",
    ]
