"""The built collection holds the product and nothing of the test bed, and Galaxy takes it."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

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


def test_galaxy_importer_accepts_it(tarball: Path) -> None:
    result = subprocess.run(
        ["python", "-m", "galaxy_importer.main", str(tarball)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Importer processing completed successfully" in result.stdout + result.stderr
