"""The collection declares what an execution environment needs, and the documented
definition is one ansible-builder takes (docs/platforms.md, "Execution environment").

Seen to fail without bindep.txt (no system requirement of algotrade.deploy), with the
collection already on the collections path (ansible-galaxy installed nothing: hence
--force) and with the definition naming another tarball than galaxy.yml's version.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from testlib import REPO

VERSION = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
TARBALL = f"algotrade-deploy-{VERSION}.tar.gz"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ee") / "collections"
    subprocess.run(
        ["ansible-galaxy", "collection", "build", "--output-path", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    return out / TARBALL


def test_installed_collection_declares_its_requirements(built: Path, tmp_path: Path) -> None:
    subprocess.run(
        ["ansible-galaxy", "collection", "install", "--no-deps", "--force", "-p", str(tmp_path), str(built)],
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        ["ansible-builder", "introspect", str(tmp_path)], check=True, capture_output=True, text=True
    ).stdout
    found = yaml.safe_load(out[out.index("---") :])
    ours = {
        kind: [line.split("#")[0].strip() for line in found[kind] if "algotrade.deploy" in line]
        for kind in found
    }
    assert ours["python"] == [
        line
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert "tar [platform:dpkg platform:rpm]" in ours["system"]
    assert "openssh-client [platform:dpkg]" in ours["system"]


def test_documented_definition_builds_a_context(built: Path, tmp_path: Path) -> None:
    definition = REPO / "docs" / "execution-environment.yml"
    shutil.copy(definition, tmp_path)
    shutil.copytree(built.parent, tmp_path / "collections")
    result = subprocess.run(
        ["ansible-builder", "create", "-f", "execution-environment.yml", "--context", "context"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    requirements = yaml.safe_load((tmp_path / "context" / "_build" / "requirements.yml").read_text())
    assert {"name": f"collections/{TARBALL}", "type": "file"} in requirements["collections"]
    assert (tmp_path / "context" / "_build" / "collections" / TARBALL).is_file()
