"""The lookup algotrade.deploy.vault_files: which vault files an inventory holds, whether each
is encrypted, and whether a public example password opens it."""

from __future__ import annotations

import json
from pathlib import Path

from ansible.parsing.vault import VaultLib, VaultSecret
from testlib import ansible_playbook, collection_plugin

lookup = collection_plugin("lookup", "vault_files")

# The lookup as Ansible loads it (its options from its documentation).
PLAYBOOK = """\
- name: Read the vault files
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Print them
      ansible.builtin.debug:
        msg: "{{ query('algotrade.deploy.vault_files', *dirs, example_passwords=examples) }}"
"""


def encrypt(text: str, password: str, vault_id: str = "prod") -> bytes:
    return bytes(VaultLib([(vault_id, VaultSecret(password.encode()))]).encrypt(text, vault_id=vault_id))


def test_each_vault_file_is_told_encrypted_or_not_and_by_which_example(tmp_path: Path) -> None:
    group_vars = tmp_path / "group_vars"
    (group_vars / "all").mkdir(parents=True)
    (group_vars / "web").mkdir()
    host_vars = tmp_path / "host_vars" / "h1"
    host_vars.mkdir(parents=True)
    example = tmp_path / "example-vault-password.txt"
    example.write_text("public-example\n")
    (group_vars / "all" / "vault.yml").write_bytes(encrypt("x: 1\n", "public-example"))
    (group_vars / "web" / "vault.yaml").write_bytes(encrypt("x: 1\n", "a-real-password"))
    (host_vars / "vault.yml").write_text("x: in clear text\n")
    (group_vars / "all" / "vars.yml").write_text("y: 2\n")  # not a vault file
    # A symbolic link to a directory is not followed (as find's default).
    (tmp_path / "host_vars" / "link").symlink_to(group_vars / "web")
    # Not beside the inventory's group_vars, which Ansible would load as the playbook's.
    (tmp_path / "play").mkdir()
    playbook = tmp_path / "play" / "read.yml"
    playbook.write_text(PLAYBOOK)

    result = ansible_playbook(
        playbook,
        "localhost,",
        extra_vars={"dirs": [str(group_vars), str(tmp_path / "host_vars")], "examples": [str(example)]},
        env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"},
    )

    assert result.returncode == 0, result.stdout + result.stderr
    found = json.loads(result.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]
    assert found == [
        {
            "path": str(group_vars / "all" / "vault.yml"),
            "encrypted": True,
            "example_password_file": str(example),
        },
        {"path": str(group_vars / "web" / "vault.yaml"), "encrypted": True, "example_password_file": ""},
        {"path": str(host_vars / "vault.yml"), "encrypted": False, "example_password_file": ""},
    ]
    assert "x: 1" not in repr(found), "no decrypted content"


def test_no_directories_no_files() -> None:
    assert lookup.vault_files([]) == []
