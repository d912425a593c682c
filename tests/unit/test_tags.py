"""The tags of docs/operations.md run what their step needs, and nothing of the other steps.

Read from `ansible-playbook --list-tasks --tags TAG` (what Ansible would run, includes
named, not opened). Each documented tag has a row here, and each row's tag is documented.
Seen to fail before the tags were set so: `--tags docker_configure` listed no preflight
(configure then failed on a variable that preflight sets), and `--tags stack_build`
listed no deploy lock.
"""

from __future__ import annotations

import re

import pytest
from testlib import REPO, ansible_playbook

DOCKER_STEPS = ["Install", "Configure", "Service", "Users"]
LOCK = "algotrade.deploy.lock : Take the deploy lock"
DEPLOY = "release | Deploy the release"
PRUNE = "release | Prune old releases"

# tag: (playbook, tasks it must list, tasks it must not list); a task is "role : name" or a name.
ROWS: dict[str, tuple[str, list[str], list[str]]] = {
    "docker": ("site.yml", [f"algotrade.deploy.docker : {s}" for s in ["Preflight", *DOCKER_STEPS]], [LOCK]),
    **{
        f"docker_{step.lower()}": (
            "site.yml",
            [
                "preflight | Check the settings, secrets and rollout",
                "algotrade.deploy.docker : Preflight",
                f"algotrade.deploy.docker : {step}",
            ],
            [f"algotrade.deploy.docker : {other}" for other in DOCKER_STEPS if other != step] + [LOCK],
        )
        for step in ["Install", "Configure", "Service", "Users"]
    },
    "stack": (
        "site.yml",
        [LOCK, "prepare | Check the host", DEPLOY, PRUNE, "release | Build the image"],
        ["algotrade.deploy.docker : Install"],
    ),
    "stack_build": (
        "playbooks/stack.yml",
        [
            LOCK,
            "prepare | Check the host",
            "prepare | Name the image after the source (a git source is checked out on the host)",
            "plan | Start the image's build",
            "release | Build the image",
            "release | Ship the image from the build host",
            "Stop the rollout before the next batch when a host failed",
        ],
        [DEPLOY, PRUNE],
    ),
    "stack_prune": ("playbooks/stack.yml", [PRUNE], []),
    **{
        f"backup_{action}": (
            f"playbooks/{playbook}.yml",
            [
                "algotrade.deploy.backup : Preflight",
                "algotrade.deploy.backup : Tools",
                "Take the deploy lock",
                "algotrade.deploy.backup : Run the {{ backup_action }}",
            ],
            [],
        )
        for action, playbook in [
            ("backup", "backup"),
            ("restore", "restore"),
            ("schedule", "backup_schedule"),
        ]
    },
    **{
        f"ops_{action}": (
            f"playbooks/{action}.yml",
            [
                "algotrade.deploy.ops : Preflight",
                "Take the deploy lock",
                "algotrade.deploy.ops : Run {{ ops_action }}",
            ],
            [],
        )
        for action in ["status", "logs", "rollback", "rotate_db_password", "teardown"]
    },
    "backup_preflight": (
        "playbooks/backup.yml",
        ["algotrade.deploy.backup : Preflight"],
        ["algotrade.deploy.backup : Tools", "algotrade.deploy.backup : Run the {{ backup_action }}"],
    ),
    "backup_tools": (
        "playbooks/backup.yml",
        ["algotrade.deploy.backup : Tools"],
        ["algotrade.deploy.backup : Preflight", "algotrade.deploy.backup : Run the {{ backup_action }}"],
    ),
    "ops_preflight": (
        "playbooks/status.yml",
        ["algotrade.deploy.ops : Preflight"],
        ["algotrade.deploy.ops : Run {{ ops_action }}"],
    ),
}


def documented() -> set[str]:
    text = (REPO / "docs" / "operations.md").read_text().split("## Tags", 1)[1]
    rows = [line.split("|")[1] for line in text.splitlines() if line.startswith("| `")]
    return {tag for row in rows for tag in re.findall(r"`([a-z_]+)`", row)}


def listed(playbook: str, tag: str) -> list[str]:
    result = ansible_playbook(REPO / playbook, "h1,", "--list-tasks", "--tags", tag)
    assert result.returncode == 0, result.stderr
    return [line.split("\tTAGS:")[0].strip() for line in result.stdout.splitlines() if "\tTAGS:" in line]


def test_every_documented_tag_is_checked() -> None:
    assert documented() == set(ROWS)


@pytest.mark.parametrize("tag", sorted(ROWS))
def test_tag_runs_its_step_with_what_it_needs(tag: str) -> None:
    playbook, present, absent = ROWS[tag]
    tasks = listed(playbook, tag)
    assert [task for task in present if task not in tasks] == [], tasks
    assert [task for task in absent if task in tasks] == [], tasks
