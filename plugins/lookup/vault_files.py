# Copyright: algotrade.deploy maintainers
# MIT License (see LICENSE)
"""Lookup: the vault files of inventory directories, each with whether it is encrypted and
whether a public example password opens it (in-process on the controller: no module runs)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: vault_files
author: algotrade.deploy maintainers (@algotrade)
version_added: 0.1.0
short_description: The vault files of inventory directories, encrypted or not, and with what
description:
  - >-
    Finds every C(vault.yml) and C(vault.yaml) under the given directories (recursively, symbolic
    links not followed) and tells for each whether it is encrypted with Ansible Vault and, if so,
    whether one of the example password files opens it.
  - >-
    Runs on the controller inside Ansible's own process: the inventory's checks cost no module run.
    Decrypted content is never returned.
options:
  _terms:
    description: The directories to search (an inventory's C(group_vars) and C(host_vars)).
    type: list
    elements: path
    required: true
  example_passwords:
    description: >-
      Files holding vault passwords that are public (examples); each is tried on each encrypted
      file.
    type: list
    elements: path
    default: []
"""

EXAMPLES = r"""
- name: Refuse a vault file in clear text
  vars:
    vaults: "{{ query('algotrade.deploy.vault_files', 'inventories/prod/group_vars') }}"
  ansible.builtin.assert:
    that: vaults | rejectattr('encrypted') | list | length == 0
"""

RETURN = r"""
_list:
  description: One entry per vault file, sorted by path.
  type: list
  elements: dict
  contains:
    path:
      description: The file's path.
      type: str
    encrypted:
      description: Whether it starts with an Ansible Vault header.
      type: bool
    example_password_file:
      description: The example password file that opens it, or the empty string.
      type: str
"""

import os  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from ansible.errors import AnsibleError  # noqa: E402
from ansible.parsing.vault import VaultLib, VaultSecret, is_encrypted  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402

NAMES = ("vault.yml", "vault.yaml")


def vault_files(directories: list[str]) -> list[str]:
    """Every vault file under the directories, sorted."""
    found: set[str] = set()
    for directory in directories:
        for root, _dirs, files in os.walk(directory):
            found.update(str(Path(root) / name) for name in files if name in NAMES)
    return sorted(found)


def opened_by(data: bytes, password_files: list[str]) -> str:
    """The first password file whose password decrypts the vault data, or ""."""
    for password_file in password_files:
        secret = VaultSecret(Path(password_file).read_bytes().strip())
        try:
            VaultLib([("example", secret)]).decrypt(data)
        except AnsibleError:
            continue
        return password_file
    return ""


def describe(path: str, password_files: list[str]) -> dict[str, Any]:
    data = Path(path).read_bytes()
    encrypted = bool(is_encrypted(data))
    return {
        "path": path,
        "encrypted": encrypted,
        "example_password_file": opened_by(data, password_files) if encrypted else "",
    }


class LookupModule(LookupBase):  # type: ignore[misc]  # Ansible's classes are untyped
    def run(
        self,
        terms: list[Any],
        variables: dict[str, Any] | None = None,
        **kwargs: Any,  # noqa: ANN401
    ) -> list[dict[str, Any]]:
        self.set_options(var_options=variables, direct=kwargs)
        password_files = [str(p) for p in self.get_option("example_passwords") or []]
        return [describe(path, password_files) for path in vault_files([str(t) for t in terms])]
