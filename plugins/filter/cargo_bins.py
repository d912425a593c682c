"""Jinja filter: the binaries a Cargo workspace builds, from its manifests' text.

``manifests | algotrade.deploy.cargo_bins`` (documentation in cargo_bins.yml).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath


def cargo_bins(manifests: Mapping[str, str]) -> list[str]:
    """The names of the binary targets of the packages among manifests (path -> Cargo.toml
    text): each [[bin]] name, and the package's own name where it has src/main.rs (listed
    beside the manifests as path -> "" by the caller) and no [[bin]] of that path. A manifest
    TOML cannot read names nothing (cargo will say why)."""
    bins: set[str] = set()
    for path, text in manifests.items():
        if PurePosixPath(path).name != "Cargo.toml":
            continue
        try:
            manifest = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            continue
        package = manifest.get("package")
        if not isinstance(package, dict) or "name" not in package:
            continue
        declared = [b for b in manifest.get("bin", []) if isinstance(b, dict)]
        bins.update(str(b["name"]) for b in declared if "name" in b)
        main = str(PurePosixPath(path).parent / "src" / "main.rs")
        if main in manifests and not any(b.get("path") == "src/main.rs" for b in declared):
            bins.add(str(package["name"]))
    return sorted(bins)


class FilterModule:
    """Ansible's entry point for filter plugins."""

    def filters(self) -> dict[str, Callable[[Mapping[str, str]], list[str]]]:
        return {"cargo_bins": cargo_bins}
