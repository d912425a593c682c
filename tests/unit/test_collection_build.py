"""The built collection holds the product and nothing of the test bed, and Galaxy takes it."""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

import pytest
from testlib import REPO

LEFT_OUT = ("molecule/", "tests/", "tools/", ".ci/", ".collections/", ".config/", ".venv/", "build/")


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build")
    subprocess.run(
        ["ansible-galaxy", "collection", "build", "--output-path", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("algotrade-deploy-*.tar.gz")
    return built


def test_tarball_leaves_out_tests_and_tooling(tarball: Path) -> None:
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "roles/docker/tasks/main.yml" in names
    assert "meta/runtime.yml" in names
    assert [n for n in names if n.startswith(LEFT_OUT) or n in {"ansible.cfg", "Makefile"}] == []


def vault_password_patterns() -> list[str]:
    """The .gitignore's patterns of vault password files (its lines that name vault passwords)."""
    lines = (REPO / ".gitignore").read_text().splitlines()
    named = [line for line in lines if re.search(r"vault.?pass", line) and line[:1] not in "#!"]
    patterns = [line.lstrip("/") for line in named]
    assert len(patterns) >= 4, patterns  # the section is there and still read right
    return patterns


def test_tarball_holds_no_inventory_and_no_vault_password_file(tarball: Path) -> None:
    """The demo and example inventories hold vault password files (and the demo's is the real
    key to its vault): none of it ships."""
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    patterns = vault_password_patterns()
    password_files = [n for n in names if any(fnmatch(PurePosixPath(n).name, p) for p in patterns)]
    assert password_files == []
    assert [n for n in names if n.split("/")[0] in {"inventories", "prod", "staging"}] == []


def test_galaxy_importer_accepts_it(tarball: Path) -> None:
    # Without the importer's own ansible-lint pass (two thirds of its CPU time): its
    # findings are warnings that fail no import, and `make lint` runs ansible-lint with the
    # stricter production profile on the same files.
    result = subprocess.run(
        ["python", "-m", "galaxy_importer.main", str(tarball)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "GALAXY_IMPORTER_RUN_ANSIBLE_LINT": "false"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Importer processing completed successfully" in result.stdout + result.stderr
