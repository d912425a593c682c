"""The binaries of a Cargo workspace (filter algotrade.deploy.cargo_bins), as the preflight
reads a fork's source: upstream's layout, a package whose bin is its own name, and what
names nothing."""

from __future__ import annotations

from testlib import REPO, collection_plugin

cargo_bins = collection_plugin("filter", "cargo_bins").cargo_bins


def test_the_sample_app_builds_algo_trade() -> None:
    sample = REPO / "tests" / "sample-app"
    manifests = {
        str(p.relative_to(sample)): p.read_text()
        for p in sample.rglob("Cargo.toml")
        if "target" not in p.parts
    }
    manifests |= {
        str(p.relative_to(sample)): "" for p in sample.rglob("src/main.rs") if "target" not in p.parts
    }
    assert "algo-trade" in cargo_bins(manifests)


def test_a_package_without_bin_tables_builds_its_own_name() -> None:
    manifests = {"crates/cli/Cargo.toml": '[package]\nname = "algo-trade"\n', "crates/cli/src/main.rs": ""}
    assert cargo_bins(manifests) == ["algo-trade"]


def test_a_library_a_workspace_root_and_broken_toml_name_nothing() -> None:
    manifests = {
        "Cargo.toml": '[workspace]\nmembers = ["crates/*"]\n',
        "crates/core/Cargo.toml": '[package]\nname = "core"\n',
        "crates/bad/Cargo.toml": "[package\nname = 'x'",
        "crates/cli/Cargo.toml": (
            '[package]\nname = "algo-trade-cli"\n[[bin]]\nname = "other"\npath = "src/main.rs"\n'
        ),
        "crates/cli/src/main.rs": "",
    }
    assert cargo_bins(manifests) == ["other"]
