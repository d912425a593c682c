"""The docker role in check mode on a fresh host: runs through, changes nothing, shows its plan."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

from testlib import HOST_PREFIX, REPO, ansible_playbook, recap

HOST = HOST_PREFIX + "docker-check-mode"
PLAYBOOK = REPO / "playbooks" / "docker.yml"
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}[platform.machine()]
SNAPSHOT = (
    "dpkg-query -W -f '${Package} ${Version}\\n'; ls -la /etc/apt/sources.list.d /etc/apt/preferences.d;"
    " ls -la /etc/docker /etc/apt/keyrings 2>&1; getent group docker; true"
)


def _snapshot() -> str:
    return subprocess.run(
        ["docker", "exec", HOST, "sh", "-c", SNAPSHOT], capture_output=True, text=True, check=True
    ).stdout


def test_distro_check_mode_runs_through_and_changes_nothing(fresh_host: Path) -> None:
    before = _snapshot()
    result = ansible_playbook(PLAYBOOK, fresh_host, "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    counts = recap(result, HOST)
    assert counts["failed"] == 0
    assert counts["changed"] > 0, "check mode should report the install it would do"
    assert _snapshot() == before


def test_upstream_check_mode_shows_the_source_key_and_pin(fresh_host: Path) -> None:
    # Docker's repository is out of reach here, and get_url looks at the URL even in
    # check mode: point the role at a local "mirror" that holds only a key file.
    subprocess.run(
        [
            "docker",
            "exec",
            HOST,
            "sh",
            "-c",
            "mkdir -p /srv/mirror/debian && echo key > /srv/mirror/debian/gpg",
        ],
        check=True,
    )
    before = _snapshot()
    result = ansible_playbook(
        PLAYBOOK,
        fresh_host,
        "--check",
        "--diff",
        extra_vars={
            "docker_source": "upstream",
            "docker_version_pin": "5:28.5.*",
            "docker_upstream_repo_url": "file:///srv/mirror",
        },
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for line in (
        "+Types: deb",
        "+URIs: file:///srv/mirror/debian",
        "+Suites: trixie",
        "+Components: stable",
        f"+Architectures: {ARCH}",
        "+Signed-By: /etc/apt/keyrings/docker.asc",
        "+Package: docker-ce docker-ce-cli",
        "+Pin: version 5:28.5.*",
        "+Pin-Priority: 1001",
    ):
        assert line in out, f"{line!r} not in the diff:\n{out}"
    assert _snapshot() == before
