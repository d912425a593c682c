"""The scenario reaches its hosts as operators reach theirs: over SSH as the unprivileged
user deploy, root through sudo, each host's key checked against known_hosts."""

from __future__ import annotations

import os
import subprocess
import tempfile

import testinfra.host
from testlib import REPO, expected_hosts, in_container, run_ok

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
testinfra_hosts = expected_hosts(INVENTORY, "all", ["docker-a", "docker-b"])


def test_commands_run_as_root_through_deploys_sudo(host: testinfra.host.Host) -> None:
    assert run_ok(host, "id -un").strip() == "root"
    assert run_ok(host, "printenv SUDO_USER").strip() == "deploy"


def test_the_host_takes_no_password_and_no_root_login(host: testinfra.host.Host) -> None:
    settings = run_ok(host, "sshd -T")
    assert "passwordauthentication no" in settings
    assert "permitrootlogin no" in settings


def _ping(host: str) -> subprocess.CompletedProcess[str]:
    """A new SSH connection (a control socket of its own: no master of an earlier run
    answers for the host), as ansible-playbook would open it. The socket's directory is
    short: a UNIX socket's path has at most 107 bytes."""
    with tempfile.TemporaryDirectory(prefix="cp-", dir="/tmp") as control_dir:
        return subprocess.run(
            ["ansible", "-i", INVENTORY, host, "-m", "ansible.builtin.ping"],
            capture_output=True,
            text=True,
            check=False,
            cwd=REPO,
            env={**os.environ, "ANSIBLE_SSH_CONTROL_PATH_DIR": control_dir, "ANSIBLE_NOCOLOR": "1"},
        )


def _ok(name: str, command: str) -> str:
    result = in_container(name, command)
    assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
    return result.stdout


def test_a_host_answering_with_another_key_is_refused() -> None:
    """docker-b gets new host keys (what another machine answering for its address shows):
    Ansible refuses to talk to it; with its own keys back it answers again."""
    before = _ping("docker-b")
    assert before.returncode == 0, before.stdout + before.stderr
    _ok("docker-b", "mkdir -p /root/hostkeys && cp -a /etc/ssh/ssh_host_* /root/hostkeys/")
    try:
        _ok("docker-b", "rm -f /etc/ssh/ssh_host_* && systemctl restart ssh")
        refused = _ping("docker-b")
        out = refused.stdout + refused.stderr
        assert refused.returncode != 0, out
        assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in out, out
        assert "pong" not in out
    finally:
        _ok("docker-b", "cp -a /root/hostkeys/ssh_host_* /etc/ssh/ && systemctl restart ssh")
    after = _ping("docker-b")
    assert after.returncode == 0, after.stdout + after.stderr
