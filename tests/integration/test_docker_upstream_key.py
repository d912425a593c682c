"""Docker's signing key is used only when it is the pinned key and no other.

Docker's repository cannot be reached here, so the key is served from a directory
on the host (a file:// URL) and nothing past the key check is expected to work.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from testlib import HOST_PREFIX, REPO, ansible_playbook, in_container

HOST = HOST_PREFIX + "docker-upstream-key"
PLAYBOOK = REPO / "playbooks" / "docker.yml"
KEYRING = "/etc/apt/keyrings/docker.asc"
SOURCE = "/etc/apt/sources.list.d/docker.sources"


def _new_key(home: Path, algo: str, usage: str) -> tuple[str, str]:
    """A new OpenPGP key in its own GNUPGHOME: (primary fingerprint, armoured public key)."""
    gpg = ["gpg", "--batch", "--homedir", str(home), "--passphrase", ""]
    subprocess.run(
        [*gpg, "--quick-gen-key", "Test <t@example.invalid>", algo, usage, "never"],
        check=True,
        capture_output=True,
    )
    listing = subprocess.run(
        [*gpg, "--with-colons", "--list-keys"], check=True, capture_output=True, text=True
    ).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    armoured = subprocess.run(
        [*gpg, "--armor", "--export"], check=True, capture_output=True, text=True
    ).stdout
    return fingerprint, armoured


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The key to pin. Like Docker's, it has a subkey, which must not count as another key."""
    fingerprint, armoured = _new_key(tmp_path_factory.mktemp("gnupg"), "future-default", "default")
    assert armoured.count("-----BEGIN PGP PUBLIC KEY BLOCK-----") == 1
    return fingerprint, armoured


@pytest.fixture(scope="module")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return _new_key(tmp_path_factory.mktemp("gnupg-other"), "ed25519", "sign")


def _on_host(command: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return in_container(HOST, command, stdin)


def _run(inventory: Path, fingerprint: str) -> subprocess.CompletedProcess[str]:
    return ansible_playbook(
        PLAYBOOK,
        inventory,
        extra_vars={
            "docker_source": "upstream",
            "docker_upstream_repo_url": "file:///srv/mirror",
            "docker_upstream_key_fingerprint": fingerprint,
        },
    )


def test_a_key_with_another_fingerprint_is_removed_and_no_source_written(
    fresh_host: Path, signing_key: tuple[str, str]
) -> None:
    armoured = signing_key[1]
    assert _on_host("mkdir -p /srv/mirror/debian && cat > /srv/mirror/debian/gpg", armoured).returncode == 0
    result = _run(fresh_host, "9DC858229FC7DD38854AE2D88D81803C0EBFCD88")
    out = " ".join(result.stdout.split())
    assert result.returncode != 0
    assert "failed verification" in out
    assert "docker_upstream_key_fingerprint (9DC858229FC7DD38854AE2D88D81803C0EBFCD88), and no other" in out
    assert _on_host(f"test -e {KEYRING}").returncode == 1
    assert _on_host(f"test -e {SOURCE}").returncode == 1


def test_the_pinned_key_is_kept_and_the_source_written(
    fresh_host: Path, signing_key: tuple[str, str]
) -> None:
    fingerprint, armoured = signing_key
    assert _on_host("mkdir -p /srv/mirror/debian && cat > /srv/mirror/debian/gpg", armoured).returncode == 0
    result = _run(fresh_host, fingerprint.lower())
    # The run gets past the key check; fetching the (absent) repository then fails.
    assert "failed verification" not in result.stdout
    assert _on_host(f"cmp {KEYRING} /srv/mirror/debian/gpg").returncode == 0
    source = _on_host(f"cat {SOURCE}").stdout
    assert "URIs: file:///srv/mirror/debian" in source
    assert f"Signed-By: {KEYRING}" in source


def test_the_pinned_key_with_another_key_is_removed_and_no_source_written(
    fresh_host: Path, signing_key: tuple[str, str], other_key: tuple[str, str]
) -> None:
    """Seen to pass the check before (its rule was: the pinned fingerprint is among them)."""
    fingerprint, armoured = signing_key
    both = armoured + other_key[1]
    assert _on_host("rm -f /etc/apt/sources.list.d/docker.sources").returncode == 0
    assert _on_host("mkdir -p /srv/mirror/debian && cat > /srv/mirror/debian/gpg", both).returncode == 0
    result = _run(fresh_host, fingerprint)
    out = " ".join(result.stdout.split())
    assert result.returncode != 0
    assert "failed verification" in out
    assert f"it must hold exactly one key, docker_upstream_key_fingerprint ({fingerprint})" in out
    assert f"it holds 2: {fingerprint}, {other_key[0]}" in out
    assert _on_host(f"test -e {KEYRING}").returncode == 1
    assert _on_host(f"test -e {SOURCE}").returncode == 1
