"""A git checkout over SSH trusts the git server's host key only when stack_source_git_known_hosts
holds it: the right key checks out, another key is refused and the run says so, and no key is
taken on first use or from the host's own known_hosts files.

The host serves a bare repository over SSH to itself (user git, key-only login) and checks
it out with the image role's git step (playbooks/git_source.yml).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from testlib import HOST_PREFIX, REPO, ansible_playbook, in_container, leaked_secrets

HOST = HOST_PREFIX + "git-source-ssh"
PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "git_source.yml"
CHECKOUT = "/opt/algo-trade/build/src"
REPO_URL = f"git@{HOST}:/srv/git/app.git"


def _on_host(command: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return in_container(HOST, command, stdin)


def _ok(command: str, stdin: str | None = None) -> str:
    result = _on_host(command, stdin)
    assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
    return result.stdout


def _new_key(tmp_path: Path, name: str) -> tuple[str, str]:
    """A new ed25519 key pair: (private key, public key line)."""
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True)
    return path.read_text(), path.with_suffix(".pub").read_text().strip()


@pytest.fixture(scope="module")
def git_server(fresh_host: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """The host with sshd serving /srv/git/app.git to the deploy key alone: (inventory, deploy
    key, the server's ed25519 host key line as ssh-keyscan prints it)."""
    deploy_key, deploy_public = _new_key(tmp_path_factory.mktemp("keys"), "deploy")
    _ok("apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssh-server git")
    _ok(
        "useradd --create-home --shell /usr/bin/git-shell git && install -d -o git -m 0700 /home/git/.ssh"
        " && cat > /home/git/.ssh/authorized_keys && chown git /home/git/.ssh/authorized_keys"
        " && printf 'PasswordAuthentication no\\nKbdInteractiveAuthentication no\\n'"
        " > /etc/ssh/sshd_config.d/key-only.conf && systemctl restart ssh",
        deploy_public + "\n",
    )
    _ok(
        "mkdir -p /srv/work && cd /srv/work && git init -q -b main && echo served-over-ssh > marker"
        " && git add marker && git -c user.name=t -c user.email=t@example.invalid commit -qm one"
        " && git clone -q --bare /srv/work /srv/git/app.git && chown -R git /srv/git"
    )
    host_key = _ok("cat /etc/ssh/ssh_host_ed25519_key.pub").split()[:2]
    return fresh_host, deploy_key, f"{HOST} {' '.join(host_key)}"


def _checkout(inventory: Path, deploy_key: str, known_hosts: str) -> subprocess.CompletedProcess[str]:
    _ok(f"rm -rf {CHECKOUT}")
    result = ansible_playbook(
        PLAYBOOK,
        inventory,
        extra_vars={
            "stack_source": "git",
            "stack_source_git_repo": REPO_URL,
            "stack_source_git_key": deploy_key,
            "stack_source_git_known_hosts": known_hosts,
        },
    )
    body = "".join(line for line in deploy_key.splitlines() if "PRIVATE KEY" not in line)
    assert leaked_secrets(result.stdout + result.stderr, [body]) == []
    return result


def test_the_pinned_host_key_checks_out(git_server: tuple[Path, str, str]) -> None:
    inventory, deploy_key, host_key = git_server
    result = _checkout(inventory, deploy_key, f"# from the server itself\n{host_key}\n")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert _ok(f"cat {CHECKOUT}/marker").strip() == "served-over-ssh"
    assert _ok("cat /opt/algo-trade/build/git_known_hosts").strip().endswith(host_key)


def test_another_host_key_is_refused_even_if_the_host_knows_the_right_one(
    git_server: tuple[Path, str, str], tmp_path: Path
) -> None:
    """The host's own known_hosts files hold the server's real key: only the setting counts."""
    inventory, deploy_key, host_key = git_server
    _ok(
        "mkdir -p /root/.ssh && cat > /root/.ssh/known_hosts"
        " && cp /root/.ssh/known_hosts /etc/ssh/ssh_known_hosts",
        host_key + "\n",
    )
    other = _new_key(tmp_path, "other")[1].split()
    result = _checkout(inventory, deploy_key, f"{HOST} {other[0]} {other[1]}\n")
    out = " ".join(result.stdout.split())
    assert result.returncode != 0
    assert (
        f"The git server of {REPO_URL} showed a host key that is not in stack_source_git_known_hosts,"
        " so the checkout was refused." in out
    ), out[-3000:]
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in out
    assert _on_host(f"test -e {CHECKOUT}/marker").returncode == 1


def test_no_host_key_is_taken_on_first_use(git_server: tuple[Path, str, str]) -> None:
    """Without the setting (the checks refuse that for an SSH URL; here the step runs alone)
    the server's key is not accepted, nor written anywhere."""
    inventory, deploy_key, _host_key = git_server
    _ok("rm -f /root/.ssh/known_hosts /etc/ssh/ssh_known_hosts")
    result = _checkout(inventory, deploy_key, "")
    out = " ".join(result.stdout.split())
    assert result.returncode != 0
    assert "showed a host key that is not in stack_source_git_known_hosts" in out, out[-3000:]
    assert _on_host(f"test -e {CHECKOUT}/marker").returncode == 1
    assert _on_host("test -s /root/.ssh/known_hosts").returncode == 1
