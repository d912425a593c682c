"""The committed reference (docs/reference/) is what antsibull-docs writes from the roles'
argument specs and the plugins' documentation today: `make docs` into a temporary directory,
compared file by file."""

from __future__ import annotations

import difflib
import subprocess
from pathlib import Path

import pytest
from testlib import REPO

COMMITTED = REPO / "docs" / "reference"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # antsibull-docs writes only into a directory that only its owner can write to: mktemp's is.
    out = tmp_path_factory.mktemp("reference")
    result = subprocess.run(
        ["make", "--no-print-directory", "-s", "-C", str(REPO), "docs", f"DOCS_DIR={out}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def _pages(directory: Path) -> dict[str, str]:
    return {page.name: page.read_text() for page in sorted(directory.iterdir())}


def test_every_role_has_a_page(generated: Path) -> None:
    roles = sorted(spec.parents[1].name for spec in REPO.glob("roles/*/meta/argument_specs.yml"))
    assert "stack" in roles
    assert [role for role in roles if not (generated / f"{role}_role.rst").is_file()] == []


def test_reference_is_fresh(generated: Path) -> None:
    committed, fresh = _pages(COMMITTED), _pages(generated)
    assert sorted(committed) == sorted(fresh), "run `make docs`: the reference's pages differ"
    stale = [name for name in fresh if committed[name] != fresh[name]]
    if stale:
        diff = difflib.unified_diff(
            committed[stale[0]].splitlines(),
            fresh[stale[0]].splitlines(),
            f"docs/reference/{stale[0]} (committed)",
            f"{stale[0]} (generated)",
            lineterm="",
            n=1,
        )
        pytest.fail(f"stale, run `make docs`: {', '.join(stale)}\n" + "\n".join(list(diff)[:40]))
