"""Preflight of the backup and ops roles refuses bad input, naming the variable and the fix.

The host is the controller itself; a refusal comes before anything on it is read
beyond the stack's compose file, or changed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from testlib import REPO, ansible_playbook, check_described_host


@pytest.mark.parametrize(
    ("role", "extra_vars", "expected"),
    [
        pytest.param("backup", {"backup_keep": 0}, ["backup_keep=0 must be at least 1"], id="keep-none"),
        pytest.param(
            "backup",
            {"backup_dir": "/var/"},
            ["backup_dir=/var/ must be an absolute directory of its own"],
            id="shared-dir",
        ),
        pytest.param(
            "backup",
            {"backup_dir": "/tmp"},  # noqa: S108 (the refusal is the point)
            ["backup_dir=/tmp must be an absolute directory of its own", "made private (0700)"],
            id="system-dir",
        ),
        pytest.param(
            "backup",
            {"backup_project_dir": "/nonexistent/algo-trade"},
            ["There is no stack in backup_project_dir=/nonexistent/algo-trade", "playbooks/site.yml"],
            id="no-stack",
        ),
        pytest.param(
            "backup",
            {"backup_action": "restore"},
            ["A restore replaces the database and the SQLite (bot) databases", "backup_restore_confirm=true"],
            id="restore-unconfirmed",
        ),
        pytest.param(
            "backup",
            {"backup_action": "restore", "backup_restore_confirm": True, "backup_restore_name": "yesterday"},
            ["backup_restore_name=yesterday must be latest, the name of a backup"],
            id="restore-bad-name",
        ),
        pytest.param(
            "backup",
            {"backup_action": "backup", "backup_fetch_dir": "backups"},
            ["backup_fetch_dir=backups must be an absolute directory on the controller"],
            id="relative-fetch-dir",
        ),
        pytest.param(
            "ops",
            {"ops_action": "teardown"},
            ["teardown stops and removes the algo-trade stack", "-e ops_teardown_confirm=true"],
            id="teardown-unconfirmed",
        ),
        pytest.param(
            "ops",
            {"ops_action": "rotate_db_password", "stack_db_password": "changeme-0123456789"},
            ["rotate_db_password applies stack_db_password", "on described is a placeholder", "openssl rand"],
            id="rotate-to-placeholder",
        ),
        pytest.param(
            "ops",
            {"ops_action": "rotate_db_password", "stack_db_password": " " * 24},
            ["stack_db_password on described is empty", "openssl rand"],
            id="rotate-to-blank",
        ),
        pytest.param(
            "ops",
            {"ops_action": "rotate_db_password", "stack_db_password": "Zq8-short"},
            ["stack_db_password on described is shorter than 16 characters"],
            id="rotate-to-short",
        ),
        pytest.param(
            "ops",
            {
                "ops_action": "rotate_db_password",
                "stack_db_password": "a-real-db-password-42",
                "stack_db_app_password": "a-real-db-password-42",
            },
            ["stack_db_app_password on described is the same as stack_db_password"],
            id="rotate-app-to-the-admins",
        ),
        pytest.param(
            "ops",
            {"ops_action": "rotate_db_password", "stack_db_password": "a-real-db-password-42"},
            ["rotate_db_password applies stack_db_app_password", "on described is empty"],
            id="rotate-without-an-app-password",
        ),
        pytest.param(
            "ops",
            {"ops_action": "logs", "ops_logs_lines": 0},
            ["ops_logs_lines=0 must be a positive number"],
            id="logs-no-lines",
        ),
        pytest.param(
            "ops",
            {"ops_action": "rollback", "ops_rollback_to": "v1; rm -rf /"},
            ["ops_rollback_to=v1; rm -rf / must be empty"],
            id="rollback-odd-reference",
        ),
    ],
)
def test_operations_preflight_refuses(
    tmp_path: Path, role: str, extra_vars: dict[str, object], expected: list[str]
) -> None:
    project = tmp_path / "algo-trade"
    project.mkdir()
    (project / "compose.yaml").write_text("services: {}\n")
    result = check_described_host(
        tmp_path,
        {
            f"{role}_project_dir": str(project),
            **extra_vars,
            "described_role": f"algotrade.deploy.{role}",
            "described_facts": {},
        },
    )
    out = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, out
    for text in expected:
        assert text in out, f"{text!r} not in:\n{out}"
    assert "changed=0" in out
    # Each refusal is its own message, not an error of the check itself (2.19 templates
    # an assert's message for the items that pass too).
    assert "Finalization of task args" not in out, out
    password = str(extra_vars.get("stack_db_password", "")).strip()
    assert not password or password not in out


@pytest.mark.parametrize("playbook", ["restore", "teardown"])
def test_restore_and_teardown_refuse_hosts_the_run_does_not_name(tmp_path: Path, playbook: str) -> None:
    """Two hosts and no target: refused before either host is read. Seen to fail before
    the guard (the run went on to both hosts' preflight)."""
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        "[trading]\n"
        + "".join(
            f"{h} ansible_connection=local ansible_python_interpreter={sys.executable}\n"
            for h in ("h1", "h2")
        )
    )
    refused = ansible_playbook(REPO / "playbooks" / f"{playbook}.yml", inventory)
    out = refused.stdout + refused.stderr
    assert refused.returncode != 0, out
    assert "2 hosts (h1, h2) that it does not name. Name them: -e target=HOST" in " ".join(out.split()), out
    assert "Read what the stack role published" not in out, "refused before any host was read"
    named = ansible_playbook(REPO / "playbooks" / f"{playbook}.yml", inventory, extra_vars={"target": "h1"})
    out = named.stdout + named.stderr
    # Named, the run goes on to h1 alone: its role's own preflight (no stack here) answers.
    assert "that it does not name" not in out
    assert "There is no stack in" in out, out[-3000:]
    assert "h2" not in out
