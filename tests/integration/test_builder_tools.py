"""The cargo-chef strategy (the default) gets its tools where the builder image lacks them.

The official rust images carry neither cargo-chef nor sccache; the test bed's builder
carries both, so the scenarios never take this path. Here the chef stage of the rendered
Dockerfile is built alone on this machine's engine (its classic builder: the stage
uses nothing of BuildKit's), from the test bed's
builder with both tools taken out (and its RUSTC_WRAPPER unset, as in the official
images): sccache comes from Debian, cargo-chef is compiled from the Rust crate registry
(65 s here, idle machine). Seen to fail with the template's install step removed
("cargo chef --version" not found in the built stage).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from testlib import render_template as render

BUILDER = "local/rust-builder:trixie"


def docker(*args: str, stdin: str | None = None) -> str:
    result = subprocess.run(["docker", *args], input=stdin, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"docker {' '.join(args)}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def bare_builder() -> Iterator[str]:
    """The test bed's builder without cargo-chef and sccache, as an official rust image is."""
    name = f"algotrade-test/bare-builder:{uuid.uuid4().hex[:8]}"
    docker(
        "build",
        "-t",
        name,
        "-",
        stdin=(
            f"FROM {BUILDER}\n"
            "ENV RUSTC_WRAPPER=\n"
            "RUN rm /usr/local/cargo/bin/cargo-chef && dpkg --purge sccache && rm -rf /sccache\n"
        ),
    )
    yield name
    subprocess.run(["docker", "rmi", "-f", name], capture_output=True, check=False)


def test_the_chef_stage_installs_cargo_chef_and_sccache_where_the_builder_lacks_them(
    tmp_path: Path, bare_builder: str
) -> None:
    absent = subprocess.run(
        ["docker", "run", "--rm", bare_builder, "sh", "-c", "command -v sccache || cargo chef --version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert absent.returncode != 0, "the bare builder still has a tool: " + absent.stdout
    dockerfile = render(
        "Dockerfile.j2", tmp_path, stack_builder_image=bare_builder, stack_builder_packages=[]
    )
    chef_stage = dockerfile.split("FROM chef AS planner")[0]
    (tmp_path / "context").mkdir()
    (tmp_path / "context" / "Dockerfile").write_text(chef_stage)
    tag = f"algotrade-test/chef:{uuid.uuid4().hex[:8]}"
    docker("build", "-t", tag, str(tmp_path / "context"))
    try:
        versions = docker("run", "--rm", tag, "sh", "-c", "cargo chef --version && sccache --version")
        assert "0.1.78" in versions, versions
        assert "sccache" in versions, versions
        # The registry cargo-chef was fetched with is not left in the layer.
        left = docker("run", "--rm", tag, "sh", "-c", "ls -A /usr/local/cargo/registry 2>/dev/null | wc -l")
        assert left.strip() == "0", left
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)
