# Copyright: algotrade.deploy maintainers
# MIT License (see LICENSE)
"""Lookup: the Cargo manifests of a source directory and its packages' src/main.rs files,
what the filter cargo_bins needs to tell the binaries the source builds (in-process on the
controller: no module runs)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: cargo_manifests
author: algotrade.deploy maintainers (@algotrade)
version_added: 0.1.0
short_description: The Cargo manifests of a source directory, with their text, and its src/main.rs files
description:
  - >-
    Walks each given directory down to O(depth) levels (symbolic links not followed; C(target) and
    C(.git) directories left out) and returns its C(Cargo.toml) files with their text and its
    C(src/main.rs) files by path only (a package's default binary), each path relative to the
    directory: the input of the filter P(algotrade.deploy.cargo_bins#filter).
  - Runs on the controller inside Ansible's own process, as the preflight's checks do.
options:
  _terms:
    description: The source directories (a Cargo workspace's or package's root).
    type: list
    elements: path
    required: true
  depth:
    description: How many directory levels down a file may be (C(crates/cli/src/main.rs) is 4).
    type: int
    default: 4
"""

EXAMPLES = r"""
- name: Refuse a source that builds no algo-trade binary
  vars:
    manifests: >-
      {{ query('algotrade.deploy.cargo_manifests', stack_source_dir)
         | items2dict(key_name='path', value_name='text') }}
  ansible.builtin.assert:
    that: "'algo-trade' in manifests | algotrade.deploy.cargo_bins"
"""

RETURN = r"""
_list:
  description: One entry per file, sorted by path.
  type: list
  elements: dict
  contains:
    path:
      description: The file's path relative to its source directory.
      type: str
    text:
      description: A manifest's text; the empty string for a C(src/main.rs).
      type: str
"""

import os  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from ansible.plugins.lookup import LookupBase  # noqa: E402

SKIPPED_DIRS = ("target", ".git")


def cargo_manifests(directory: str, depth: int) -> list[dict[str, str]]:
    """The Cargo.toml files (with their text) and src/main.rs files (without) under the directory."""
    root = Path(directory)
    found = []
    for current, dirs, files in os.walk(root):
        here = Path(current)
        level = len(here.relative_to(root).parts) + 1  # the level of the files in it
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and level < depth]
        for name in files:
            path = here / name
            if name == "Cargo.toml":
                found.append({"path": str(path.relative_to(root)), "text": path.read_text(encoding="utf-8")})
            elif name == "main.rs" and here.name == "src":
                found.append({"path": str(path.relative_to(root)), "text": ""})
    return sorted(found, key=lambda entry: entry["path"])


class LookupModule(LookupBase):  # type: ignore[misc]  # Ansible's classes are untyped
    def run(
        self,
        terms: list[Any],
        variables: dict[str, Any] | None = None,
        **kwargs: Any,  # noqa: ANN401
    ) -> list[dict[str, str]]:
        self.set_options(var_options=variables, direct=kwargs)
        depth = int(self.get_option("depth"))
        return [entry for term in terms for entry in cargo_manifests(str(term), depth)]
