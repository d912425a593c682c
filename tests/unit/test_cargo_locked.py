"""The build's cargo-locked.sh, rendered as the role renders it and run under dash (the
builder's /bin/sh) with a stand-in cargo that fails as cargo does when the crate index's
copy is older than the lock."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from testlib import render_template as render

# As cargo 1.95 says it (test_real_cargo_on_a_lock_the_index_lacks).
STALE = (
    'error: failed to select a version for the requirement `anstyle-parse = "^1"` (locked to 1.0.1)\n'
    "candidate versions found which didn't match: 1.0.0, 0.2.7\n"
    "location searched: crates.io index\n"
)
TYPE_ERROR = "error[E0308]: mismatched types\n"


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cargo-locked")
    path = directory / "cargo-locked.sh"
    path.write_text(render("cargo-locked.sh.j2", directory))
    return path


def fake_cargo(tmp_path: Path, failures: list[str]) -> Path:
    """A cargo that prints and fails with failures[n] on its n-th run, then succeeds; it
    records each run's arguments and SQLX_OFFLINE in runs.log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for n, text in enumerate(failures):
        (tmp_path / f"failure{n}").write_text(text)
    cargo = bin_dir / "cargo"
    cargo.write_text(
        "#!/bin/sh\n"
        f"cd {tmp_path}\n"
        "n=$(cat count 2>/dev/null || echo 0); echo $((n + 1)) > count\n"
        'printf "%s|" "$@" >> runs.log; echo "SQLX_OFFLINE=${SQLX_OFFLINE:-}" >> runs.log\n'
        'echo "Compiling run $n"\n'
        'if [ -f "failure$n" ]; then cat "failure$n" >&2; exit 101; fi\n'
    )
    cargo.chmod(cargo.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def run(script: Path, bin_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "CARGO_LOCKED_WAITS": "0 0",
        "SQLX_OFFLINE": "true",
    }
    return subprocess.run(
        ["dash", str(script), "cargo", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def runs(tmp_path: Path) -> list[str]:
    return (tmp_path / "runs.log").read_text().splitlines()


def test_a_stale_index_copy_is_waited_out(script: Path, tmp_path: Path) -> None:
    result = run(script, fake_cargo(tmp_path, [STALE]), "build", "--locked", "--bin", "algo trade")
    assert result.returncode == 0, result.stdout + result.stderr
    # The same command and environment again, both attempts' output shown as cargo printed it.
    assert runs(tmp_path) == ["build|--locked|--bin|algo trade|SQLX_OFFLINE=true"] * 2
    assert "failed to select a version" in result.stdout
    assert "Compiling run 0" in result.stdout
    assert "Compiling run 1" in result.stdout
    assert "the crate index's copy lacks a version the lock names" in result.stderr


def test_any_other_failure_fails_at_once(script: Path, tmp_path: Path) -> None:
    result = run(script, fake_cargo(tmp_path, [TYPE_ERROR]), "build", "--locked")
    assert result.returncode == 101
    assert len(runs(tmp_path)) == 1
    assert "mismatched types" in result.stdout
    assert result.stderr == ""


def test_an_index_that_stays_stale_fails_after_the_last_wait(script: Path, tmp_path: Path) -> None:
    result = run(script, fake_cargo(tmp_path, [STALE] * 5), "chef", "cook", "--locked")
    assert result.returncode == 101
    assert len(runs(tmp_path)) == 3, "the first attempt and one after each of the two waits"


def test_a_success_runs_once(script: Path, tmp_path: Path) -> None:
    result = run(script, fake_cargo(tmp_path, []), "build", "--locked")
    assert result.returncode == 0
    assert len(runs(tmp_path)) == 1


def test_rendered_script_is_shellcheck_clean(script: Path) -> None:
    result = subprocess.run(
        ["shellcheck", "-s", "sh", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_real_cargo_on_a_lock_the_index_lacks(script: Path, tmp_path: Path) -> None:
    """The machine's cargo, a lock naming a version the crate index has never had: the
    script knows cargo's failure (three attempts), and fails with cargo's status."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.rs").write_text("fn main() {}\n")
    (tmp_path / "Cargo.toml").write_text(
        '[package]\nname = "stale"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\nitoa = "1"\n'
    )
    (tmp_path / "Cargo.lock").write_text(
        "version = 4\n\n"
        '[[package]]\nname = "itoa"\nversion = "1.0.999"\n'
        'source = "registry+https://github.com/rust-lang/crates.io-index"\n\n'
        '[[package]]\nname = "stale"\nversion = "0.1.0"\ndependencies = ["itoa"]\n'
    )
    env = {**os.environ, "CARGO_LOCKED_WAITS": "0 0", "CARGO_TARGET_DIR": str(tmp_path / "target")}
    result = subprocess.run(
        ["dash", str(script), "cargo", "build", "--locked"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 101, result.stdout + result.stderr
    assert result.stdout.count("(locked to 1.0.999)") == 3
    assert result.stderr.count("the crate index's copy lacks a version the lock names") == 2
