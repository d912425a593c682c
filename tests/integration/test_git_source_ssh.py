"""A git checkout over SSH trusts the git server's host key only when stack_source_git_known_hosts
holds it: the right key checks out, another key is refused and the run says so, and no key is
taken on first use or from the host's own known_hosts files.

The host serves a bare repository over SSH to itself (user git, key-only login) and checks
it out with the image role's git step (playbooks/git_source.yml).

Before any deploy lock, the preflight's last play asks the git server for the ref from the
host with the checkout's SSH options: the stack playbook stops there, naming the setting to
fix, with no lock taken and nothing made under the project directory. Each refusal below was
seen to fail without that play (the run went on to the lock, which made the directory).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from testlib import HOST_PREFIX, REPO, ansible_playbook, failed_task, in_container, leaked_secrets, recap

HOST = HOST_PREFIX + "git-source-ssh"
PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "git_source.yml"
CHECKOUT = "/opt/algo-trade/build/src"
REPO_URL = f"git@{HOST}:/srv/git/app.git"
PROJECT = "/opt/algo-trade"
# What the preflight needs besides the git settings.
SETTINGS = {
    "stack_ttyd_source": "image",
    "stack_db_password": "db-password-9f8e7d6c5b4a",
    "stack_db_app_password": "db-app-password-3c2b1a0f9e",
    "stack_tui_password": "tui-password-0a1b2c3d4e5f",
    "stack_source": "git",
}


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


def _run(
    playbook: str, inventory: Path, deploy_key: str, *args: str, **git: str
) -> subprocess.CompletedProcess[str]:
    """The collection's playbook on a host with no project directory yet, the git settings
    given; the key nowhere in the output, no temporary directory left behind."""
    _ok(f"rm -rf {PROJECT} /tmp/algotrade-git-*")
    settings = {**SETTINGS, "stack_source_git_key": deploy_key, **git}
    result = ansible_playbook(REPO / "playbooks" / f"{playbook}.yml", inventory, *args, extra_vars=settings)
    keys = [settings["stack_source_git_key"], deploy_key]
    bodies = ["".join(line for line in k.splitlines() if "PRIVATE KEY" not in line) for k in keys]
    assert leaked_secrets(result.stdout + result.stderr, bodies) == []
    assert _ok("ls -d /tmp/algotrade-git-* 2>/dev/null || true") == ""
    return result


def test_the_preflight_reaches_the_git_server_with_the_pinned_keys(git_server: tuple[Path, str, str]) -> None:
    """A branch, and a commit's SHA (which ls-remote cannot list), in a run, check mode and a
    second run: each passes, changes nothing and makes nothing under the project directory."""
    inventory, deploy_key, host_key = git_server
    sha = _ok("git -C /srv/work rev-parse --short=12 HEAD").strip()
    for version, args in (("main", ()), ("main", ("--check",)), ("main", ()), (sha, ())):
        result = _run(
            "preflight",
            inventory,
            deploy_key,
            *args,
            stack_source_git_repo=REPO_URL,
            stack_source_git_known_hosts=host_key,
            stack_source_git_version=version,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        listed = result.stdout.partition(f"reach | Ask the git server for {version}]")[2].partition("TASK [")[
            0
        ]
        assert f"ok: [{HOST}]" in listed, result.stdout[-3000:]
        assert recap(result, HOST)["changed"] == 0, result.stdout[-3000:]
        assert _on_host(f"test -e {PROJECT}").returncode == 1


def test_check_mode_without_git_asks_nothing_and_says_so(git_server: tuple[Path, str, str]) -> None:
    """Check mode installs nothing: without git the preflight passes, naming what it did not ask."""
    inventory, deploy_key, host_key = git_server
    _ok("mv /usr/bin/git /usr/bin/git.away")
    try:
        result = _run(
            "preflight",
            inventory,
            deploy_key,
            "--check",
            stack_source_git_repo=REPO_URL,
            stack_source_git_known_hosts=host_key,
        )
    finally:
        _ok("mv /usr/bin/git.away /usr/bin/git")
    out = " ".join(result.stdout.split())
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert (
        f"git is not installed on {HOST} yet and check mode installs nothing, so {REPO_URL} was not asked"
        in out
    )
    assert recap(result, HOST)["changed"] == 0
    assert _on_host(f"test -e {PROJECT}").returncode == 1


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param(
            "host-key",
            f"The git server of {REPO_URL} showed {HOST} a host key that is not in"
            " stack_source_git_known_hosts, so it was refused (before any deploy lock).",
            id="another-host-key",
        ),
        pytest.param(
            "deploy-key",
            f"The git server of {REPO_URL} refused the deploy key stack_source_git_key from {HOST}.",
            id="another-deploy-key",
        ),
        pytest.param(
            "version",
            f"stack_source_git_version=no-such-branch: {REPO_URL} has no branch or tag of that name",
            id="missing-ref",
        ),
        pytest.param(
            "unreachable",
            f"stack_source_git_repo=ssh://git@{HOST}:2/srv/git/app.git: {HOST} cannot read a git"
            " repository there",
            id="unreachable-server",
        ),
        pytest.param(
            "no-repository",
            f"stack_source_git_repo=git@{HOST}:/srv/git/none.git: {HOST} cannot read a git repository there",
            id="no-repository",
        ),
    ],
)
def test_the_stack_playbook_stops_before_the_lock_naming_the_setting(
    git_server: tuple[Path, str, str], tmp_path: Path, case: str, expected: str
) -> None:
    inventory, deploy_key, host_key = git_server
    other_private, other_public = _new_key(tmp_path, "other")
    git = {
        "stack_source_git_repo": REPO_URL,
        "stack_source_git_known_hosts": host_key,
        "stack_source_git_version": "main",
        **{
            "host-key": {"stack_source_git_known_hosts": f"{HOST} {' '.join(other_public.split()[:2])}"},
            "deploy-key": {"stack_source_git_key": other_private},
            "version": {"stack_source_git_version": "no-such-branch"},
            "unreachable": {
                "stack_source_git_repo": f"ssh://git@{HOST}:2/srv/git/app.git",
                "stack_source_git_known_hosts": f"[{HOST}]:2 {' '.join(host_key.split()[1:])}",
            },
            "no-repository": {"stack_source_git_repo": f"git@{HOST}:/srv/git/none.git"},
        }[case],
    }
    result = _run("stack", inventory, deploy_key, **git)
    out = " ".join(result.stdout.split())
    assert result.returncode != 0
    assert expected in out, out[-3000:]
    assert failed_task(result).startswith("algotrade.deploy.checks : reach | "), out[-3000:]
    # The lock file lies in the project directory, which the lock's first step makes.
    assert _on_host(f"test -e {PROJECT}/deploy.lock").returncode == 1
    assert _on_host(f"test -e {PROJECT}").returncode == 1, _ok(f"find {PROJECT}")


def test_no_host_is_asked_while_another_host_of_the_run_failed_its_checks(
    git_server: tuple[Path, str, str], tmp_path: Path
) -> None:
    """The ask may install git: nothing on any host changes before every host passed its checks.
    A second host of the run (never reached: its checks fail on the controller) has a bad setting."""
    inventory, deploy_key, host_key = git_server
    hosts = yaml.safe_load(inventory.read_text())["all"]["hosts"]
    hosts["ghost"] = {"ansible_connection": "community.docker.docker", "stack_project_name": "Bad Name"}
    two_hosts = tmp_path / "inventory.yml"
    two_hosts.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    result = _run(
        "preflight",
        two_hosts,
        deploy_key,
        stack_source_git_repo=REPO_URL,
        stack_source_git_known_hosts=host_key,
    )
    out = " ".join(result.stdout.split())
    assert result.returncode != 0
    assert "stack_project_name" in out, out[-3000:]
    assert recap(result, HOST)["failed"] == 0, out[-3000:]
    assert "reach | " not in out, out[-3000:]
